using System.Globalization;
using Monitor.Contracts.V1;

namespace Monitor.Analysis.Rules;

/// <summary>
/// Dead ReLU (smdebug <c>DeadRelu</c>): fires for a ReLU layer in which more than <see cref="ThresholdLayer"/>
/// percent of the units are dead, a unit being dead when it is active (positive) in fewer than
/// <see cref="ThresholdInactivity"/> percent of the samples of the batch.
/// </summary>
/// <remarks>
/// <para><b>Formula with raw values</b> (exact), per selected tensor of each rank on each traced step: with the first
/// dimension as the batch of <c>n</c> samples and every position of the other dimensions as a unit,
/// <c>dead(j) = 100 * #{i : x[i, j] &gt; 0} / n &lt; threshold_inactivity</c>, and the rule holds when
/// <c>100 * #dead / #units &gt; threshold_layer</c>. Works on ReLU outputs (inactive = 0) and inputs (inactive =
/// x &lt;= 0) alike. Truncated raw values (the selection's <c>limitSize</c>) are used for the complete samples they
/// hold.</para>
/// <para><b>Without raw values</b> the summary cannot tell units apart, only how many elements are inactive. The rule
/// then fires only when the summary proves the raw verdict: units that are not dead are active in at least
/// <c>TI</c> of the samples, so an inactive share of all elements above <c>1 - TI * (1 - TL)</c> (99.5% with the
/// defaults) forces more than <c>TL</c> of the units to be dead. The inactive count is a lower bound from
/// <c>zero_count</c>, the histogram's non-positive buckets and <c>max</c>. It misses layers with a dead majority
/// and a lively rest (e.g. 60% dead, the rest active half the time), never reports a healthy one. The observed value
/// is then the inactive percentage of elements, the threshold that bound.</para>
/// <para>Parameters follow the SageMaker developer guide, "List of Debugger Built-in Rules", section DeadRelu
/// (awsdocs/amazon-sagemaker-developer-guide, doc_source/debugger-built-in-rules.md): <c>tensor_regex</c> (default
/// <c>.*relu_output</c>) → <see cref="Selector"/>, <c>threshold_inactivity</c> (percent, 1.0) →
/// <see cref="ThresholdInactivity"/>, <c>threshold_layer</c> (percent, 50.0) → <see cref="ThresholdLayer"/>.
/// Monitor's activations are module outputs named after the module (<c>layer2.output</c>), which need not say that the
/// module is a ReLU: the default selects activations whose name contains <c>relu</c>; point the selector at your
/// ReLU modules otherwise. No window: a verdict per traced step, like smdebug.</para>
/// </remarks>
public sealed class DeadReluRule : PerTensorRule
{
    private int[] _scratch = [];

    /// <summary>Activity, in percent of the samples, below which a unit is dead. Default 1.0 (smdebug's
    /// <c>threshold_inactivity</c>).</summary>
    public double ThresholdInactivity
    {
        get;
        init => field = value is >= 0 and <= 100 ? value : throw new ArgumentOutOfRangeException(nameof(ThresholdInactivity), value, "ThresholdInactivity is a percentage in [0, 100]");
    } = 1.0;

    /// <summary>Percentage of dead units above which the rule fires. Default 50.0 (smdebug's
    /// <c>threshold_layer</c>).</summary>
    public double ThresholdLayer
    {
        get;
        init => field = value is >= 0 and < 100 ? value : throw new ArgumentOutOfRangeException(nameof(ThresholdLayer), value, "ThresholdLayer is a percentage in [0, 100)");
    } = 50.0;

    /// <summary>
    /// Tensors looked at. Default collection activations, names containing <c>relu</c> (any case) but not
    /// <c>leaky</c> or <c>prelu</c>, whose negative side is not flat.
    /// </summary>
    public override TensorSelector Selector
    {
        get;
        init => field = value ?? throw new ArgumentNullException(nameof(Selector));
    } = new TensorSelector([Collection.Activations], [@"(?i)relu"], [@"(?i)leaky|prelu"]);

    /// <inheritdoc />
    public override string Name { get; init; } = "DeadRelu";

    /// <inheritdoc />
    public override IReadOnlyList<TensorRequirement> Requirements =>
        RuleSupport.Requirements(Selector, raw: true, "per-unit activity over the batch needs raw values; summaries only prove near-total death");

    private protected override string Healthy => "enough active units";

    private protected override void EvaluateTensor(StepRecord record, TensorRecord tensor, RuleContext context)
    {
        double value;
        double threshold;
        if (RuleSupport.TryCountInactiveNeurons(tensor, 0, double.PositiveInfinity, ThresholdInactivity, ref _scratch,
            out long dead, out long units, out long samples))
        {
            value = RuleSupport.Percent(dead, units);
            threshold = ThresholdLayer;
            if (value > threshold)
            {
                Problem(context, tensor, value, threshold, string.Create(CultureInfo.InvariantCulture,
                    $"{value:G4}% of {tensor.Name}'s {units} units are dead at step {record.Step} (active in fewer than {ThresholdInactivity:G4}% of {samples} samples; threshold {ThresholdLayer:G4}%)"));
                return;
            }
        }
        else if (tensor.Summary is { Count: > 0 } summary)
        {
            value = RuleSupport.Percent(RuleSupport.CountAtMostLowerBound(summary, 0), summary.Count);
            threshold = RuleSupport.ProvenInactivePercent(ThresholdInactivity, ThresholdLayer);
            if (value > threshold)
            {
                Problem(context, tensor, value, threshold, string.Create(CultureInfo.InvariantCulture,
                    $"at least {value:G4}% of {tensor.Name}'s elements are inactive (<= 0) at step {record.Step}, which proves more than {ThresholdLayer:G4}% of its units dead (summary only: above {threshold:G4}%)"));
                return;
            }
        }
        else
        {
            return;
        }

        Passing(context, tensor, value, threshold);
    }
}
