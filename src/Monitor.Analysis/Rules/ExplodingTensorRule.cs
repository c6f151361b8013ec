using System.Globalization;
using Monitor.Contracts.V1;

namespace Monitor.Analysis.Rules;

/// <summary>
/// Exploding tensor (smdebug <c>ExplodingTensor</c>): fires for a tensor that holds a NaN, or an infinity unless
/// <see cref="OnlyNan"/>, at a traced step; resolves at the first later traced step where it holds none.
/// </summary>
/// <remarks>
/// <para>Formula, per selected tensor of each rank, on each traced step: <c>nan_count &gt; 0</c>, or
/// <c>nan_count + inf_count &gt; 0</c> unless <see cref="OnlyNan"/>. Reads summaries only (they count every element,
/// whether or not raw values were captured); exact, no window. The observed value is the number of non-finite
/// elements counted.</para>
/// <para>Parameters follow the SageMaker developer guide, "List of Debugger Built-in Rules", section ExplodingTensor
/// (awsdocs/amazon-sagemaker-developer-guide, doc_source/debugger-built-in-rules.md): <c>collection_names</c> and
/// <c>tensor_regex</c> (default none: every tensor) → <see cref="Selector"/>, <c>only_nan</c> (default False) →
/// <see cref="OnlyNan"/>. See also <see cref="NonFiniteTensorRule"/>, one alert per rank instead of per tensor.</para>
/// </remarks>
public sealed class ExplodingTensorRule : PerTensorRule
{

    /// <summary>Only NaN counts as exploding, not infinities. Default false (smdebug's <c>only_nan</c>).</summary>
    public bool OnlyNan { get; init; }

    /// <summary>Tensors looked at. Default every traced tensor (smdebug: no collection, no regex).</summary>
    public override TensorSelector Selector
    {
        get;
        init => field = value ?? throw new ArgumentNullException(nameof(Selector));
    } = new TensorSelector([]);

    /// <inheritdoc />
    public override string Name { get; init; } = "ExplodingTensor";

    /// <inheritdoc />
    public override IReadOnlyList<TensorRequirement> Requirements =>
        RuleSupport.Requirements(Selector, raw: false, "summary nan_count and inf_count");

    private protected override string Healthy => "no non-finite values";

    private protected override void EvaluateTensor(StepRecord record, TensorRecord tensor, RuleContext context)
    {
        if (tensor.Summary is not { } summary)
        {
            return;
        }

        ulong bad = OnlyNan ? summary.NanCount : summary.NanCount + summary.InfCount;
        if (bad > 0)
        {
            Problem(context, tensor, bad, 0, string.Create(CultureInfo.InvariantCulture,
                $"{tensor.Name} holds {summary.NanCount} NaN and {summary.InfCount} Inf of {summary.Count} elements at step {record.Step}"));
        }
        else
        {
            Passing(context, tensor, 0, 0);
        }
    }
}
