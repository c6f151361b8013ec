using System.Globalization;
using Monitor.Contracts.V1;

namespace Monitor.Analysis.Rules;

/// <summary>
/// All zero (smdebug <c>AllZero</c>): fires for a tensor in which at least <see cref="Threshold"/> percent of the
/// elements are zero at a traced step.
/// </summary>
/// <remarks>
/// <para>Formula, per selected tensor of each rank, on each traced step: <c>100 * zero_count / count &gt;=
/// threshold</c> (count includes non-finite elements). Reads summaries only; exact (the summary counts exact zeros of
/// either sign over every element), no window. Empty tensors are skipped.</para>
/// <para>Parameters follow the SageMaker developer guide, "List of Debugger Built-in Rules", section AllZero
/// (awsdocs/amazon-sagemaker-developer-guide, doc_source/debugger-built-in-rules.md): <c>collection_names</c> and
/// <c>tensor_regex</c> → <see cref="Selector"/> (smdebug requires one of them; its example uses every tensor, which
/// is our default), <c>threshold</c> (percent, default 100) → <see cref="Threshold"/>.</para>
/// </remarks>
public sealed class AllZeroRule : PerTensorRule
{

    /// <summary>
    /// Percentage of zero elements at which the rule fires, in (0, 100]. Default 100: every element is zero
    /// (smdebug's <c>threshold</c>).
    /// </summary>
    public double Threshold
    {
        get;
        init => field = value is > 0 and <= 100 ? value : throw new ArgumentOutOfRangeException(nameof(Threshold), value, "Threshold is a percentage in (0, 100]");
    } = 100;

    /// <summary>Tensors looked at. Default every traced tensor.</summary>
    public override TensorSelector Selector
    {
        get;
        init => field = value ?? throw new ArgumentNullException(nameof(Selector));
    } = new TensorSelector([]);

    /// <inheritdoc />
    public override string Name { get; init; } = "AllZero";

    /// <inheritdoc />
    public override IReadOnlyList<TensorRequirement> Requirements =>
        RuleSupport.Requirements(Selector, raw: false, "summary zero_count");

    private protected override string Healthy => "enough non-zero values";

    private protected override void EvaluateTensor(StepRecord record, TensorRecord tensor, RuleContext context)
    {
        if (tensor.Summary is not { Count: > 0 } summary)
        {
            return;
        }

        double percent = RuleSupport.Percent(summary.ZeroCount, summary.Count);
        if (percent >= Threshold)
        {
            Problem(context, tensor, percent, Threshold, string.Create(CultureInfo.InvariantCulture,
                $"{percent:G4}% of {tensor.Name}'s {summary.Count} elements are zero at step {record.Step} (threshold {Threshold:G4}%)"));
        }
        else
        {
            Passing(context, tensor, percent, Threshold);
        }
    }
}
