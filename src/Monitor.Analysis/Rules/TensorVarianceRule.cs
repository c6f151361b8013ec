using System.Globalization;
using Monitor.Contracts.V1;

namespace Monitor.Analysis.Rules;

/// <summary>
/// Tensor variance (smdebug <c>TensorVariance</c>): fires for a tensor whose variance is above
/// <see cref="MaxThreshold"/> or below <see cref="MinThreshold"/> at a traced step.
/// </summary>
/// <remarks>
/// <para>Formula, per selected tensor of each rank, on each traced step: <c>variance &gt; max_threshold or variance
/// &lt; min_threshold</c>, with the population variance of the finite elements (numpy's <c>var</c>, which the summary
/// carries exactly). Tensors with fewer than two finite elements have no spread to judge and are skipped. No
/// window.</para>
/// <para>Parameters follow the SageMaker developer guide, "List of Debugger Built-in Rules", section TensorVariance
/// (awsdocs/amazon-sagemaker-developer-guide, doc_source/debugger-built-in-rules.md): <c>collection_names</c> and
/// <c>tensor_regex</c> → <see cref="Selector"/>, <c>max_threshold</c> → <see cref="MaxThreshold"/>,
/// <c>min_threshold</c> → <see cref="MinThreshold"/>. Difference: smdebug's thresholds default to None (the rule
/// does nothing until given one) and it needs a collection or regex; our defaults are the guide's example
/// configuration (collection weights, max 10, min 1e-5), and null switches a side off.</para>
/// </remarks>
public sealed class TensorVarianceRule : PerTensorRule
{

    /// <summary>Upper bound on the variance; null for none. Default 10 (the guide's example; smdebug: None).</summary>
    public double? MaxThreshold
    {
        get;
        init => field = value is null or (>= 0 and < double.PositiveInfinity) ? value : throw new ArgumentOutOfRangeException(nameof(MaxThreshold), value, "MaxThreshold must be a finite, non-negative number or null");
    } = 10;

    /// <summary>Lower bound on the variance; null for none. Default 1e-5 (the guide's example; smdebug: None).</summary>
    public double? MinThreshold
    {
        get;
        init => field = value is null or (>= 0 and < double.PositiveInfinity) ? value : throw new ArgumentOutOfRangeException(nameof(MinThreshold), value, "MinThreshold must be a finite, non-negative number or null");
    } = 1e-5;

    /// <summary>Tensors looked at. Default every tensor of collection weights.</summary>
    public override TensorSelector Selector
    {
        get;
        init => field = value ?? throw new ArgumentNullException(nameof(Selector));
    } = TensorSelector.Of(Collection.Weights);

    /// <inheritdoc />
    public override string Name { get; init; } = "TensorVariance";

    /// <inheritdoc />
    public override IReadOnlyList<TensorRequirement> Requirements =>
        RuleSupport.Requirements(Selector, raw: false, "summary variance");

    private protected override string Healthy => "variance within bounds";

    private protected override void EvaluateTensor(StepRecord record, TensorRecord tensor, RuleContext context)
    {
        if (tensor.Summary is not { } summary || RuleSupport.FiniteCount(summary) < 2 || double.IsNaN(summary.Variance))
        {
            return;
        }

        double max = MaxThreshold ?? double.PositiveInfinity;
        double min = MinThreshold ?? double.NegativeInfinity;
        double variance = summary.Variance;
        bool tooHigh = variance > max;
        double bound = tooHigh || MinThreshold is null ? max : min;
        if (tooHigh || variance < min)
        {
            Problem(context, tensor, variance, bound, string.Create(CultureInfo.InvariantCulture,
                $"variance of {tensor.Name} is {variance:G4} at step {record.Step}, {(tooHigh ? "above the maximum" : "below the minimum")} {bound:G4}"));
        }
        else
        {
            Passing(context, tensor, variance, bound);
        }
    }
}
