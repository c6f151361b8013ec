using System.Globalization;
using Monitor.Contracts.V1;

namespace Monitor.Analysis.Rules;

/// <summary>
/// Saturated activation (smdebug <c>SaturatedActivation</c>): fires for a tanh or sigmoid layer in which more than
/// <see cref="ThresholdLayer"/> percent of the units are saturated, a unit being saturated when its input lies inside
/// the function's non-saturated band in fewer than <see cref="ThresholdInactivity"/> percent of the samples.
/// </summary>
/// <remarks>
/// <para><b>Band.</b> An input x is active when <c>min &lt; x &lt; max</c>, with (<see cref="ThresholdSigmoidMin"/>,
/// <see cref="ThresholdSigmoidMax"/>) for tensors whose name contains <c>sigmoid</c> (any case) and
/// (<see cref="ThresholdTanhMin"/>, <see cref="ThresholdTanhMax"/>) for every other selected tensor. Monitor traces module outputs, so by default the selected
/// tensors are taken as the functions' outputs y and the band is mapped through the function: tanh(min) &lt; y &lt;
/// tanh(max), σ(min) &lt; y &lt; σ(max). Both functions are monotonic, so this is the same test on the same elements
/// up to float32 rounding of the outputs near 1, where one float32 step (6e-8) covers a range of inputs: at the
/// default bounds a tanh output counts as saturated from |x| ≈ 9.02 (where it rounds to ±1.0) instead of 9.4999,
/// a sigmoid output from x ≈ 17.33 instead of 16.99999; the sigmoid's lower bound is exact. Set <see cref="TensorsAreInputs"/> when the selector picks the pre-activations, as
/// smdebug's <c>.*tanh_input</c> does.</para>
/// <para><b>Formula with raw values</b> (exact), per selected tensor of each rank on each traced step: with the first
/// dimension as the batch of <c>n</c> samples and every position of the others as a unit, <c>saturated(j) = 100 *
/// #{i : x[i, j] in band} / n &lt; threshold_inactivity</c>; holds when <c>100 * #saturated / #units &gt;
/// threshold_layer</c>. Truncated raw values are used for the complete samples they hold.</para>
/// <para><b>Without raw values</b> the log2 histogram cannot place every element against the bounds (a bucket spans
/// a factor of two), and it cannot tell units apart. The rule then fires only when the summary proves the raw
/// verdict: it counts the elements certainly outside the band (histogram buckets wholly beyond a bound, or
/// <c>min</c>/<c>max</c> beyond it) and requires their share to exceed <c>1 - TI * (1 - TL)</c> (99.5% with the
/// defaults; see <see cref="DeadReluRule"/> for why). For tanh and sigmoid outputs at the default upper bounds the
/// histogram is exact (the saturated outputs are exactly ±1.0, the lower edge of a bucket); the sigmoid's lower
/// bound σ(-23) ≈ 1e-10 falls inside the innermost bucket, so only exact zeros count there. The observed value is
/// then the proven saturated percentage of elements.</para>
/// <para>Parameters follow the SageMaker developer guide, "List of Debugger Built-in Rules", section
/// SaturatedActivation (awsdocs/amazon-sagemaker-developer-guide, doc_source/debugger-built-in-rules.md):
/// <c>collection_names</c>/<c>tensor_regex</c> (default <c>.*tanh_input|.*sigmoid_input</c>) → <see cref="Selector"/>,
/// <c>threshold_tanh_min</c>/<c>_max</c> (-9.4999, 9.4999), <c>threshold_sigmoid_min</c>/<c>_max</c> (-23, 16.99999),
/// <c>threshold_inactivity</c> (percent, 1.0), <c>threshold_layer</c> (percent, 50.0). Module names need not say the
/// module is a tanh or sigmoid (<c>layer1.output</c>): point the selector at them when they do not. No window.</para>
/// </remarks>
public sealed class SaturatedActivationRule : PerTensorRule
{
    private int[] _scratch = [];
    private Bands? _bands;

    /// <summary>Lower bound of tanh's active input band. Default -9.4999 (smdebug's <c>threshold_tanh_min</c>).</summary>
    public double ThresholdTanhMin { get; init => field = Finite(value, nameof(ThresholdTanhMin)); } = -9.4999;

    /// <summary>Upper bound of tanh's active input band. Default 9.4999 (smdebug's <c>threshold_tanh_max</c>).</summary>
    public double ThresholdTanhMax { get; init => field = Finite(value, nameof(ThresholdTanhMax)); } = 9.4999;

    /// <summary>Lower bound of the sigmoid's active input band. Default -23 (smdebug's
    /// <c>threshold_sigmoid_min</c>).</summary>
    public double ThresholdSigmoidMin { get; init => field = Finite(value, nameof(ThresholdSigmoidMin)); } = -23;

    /// <summary>Upper bound of the sigmoid's active input band. Default 16.99999 (smdebug's
    /// <c>threshold_sigmoid_max</c>).</summary>
    public double ThresholdSigmoidMax { get; init => field = Finite(value, nameof(ThresholdSigmoidMax)); } = 16.99999;

    /// <summary>Activity, in percent of the samples, below which a unit is saturated. Default 1.0 (smdebug's
    /// <c>threshold_inactivity</c>).</summary>
    public double ThresholdInactivity
    {
        get;
        init => field = value is >= 0 and <= 100 ? value : throw new ArgumentOutOfRangeException(nameof(ThresholdInactivity), value, "ThresholdInactivity is a percentage in [0, 100]");
    } = 1.0;

    /// <summary>Percentage of saturated units above which the rule fires. Default 50.0 (smdebug's
    /// <c>threshold_layer</c>).</summary>
    public double ThresholdLayer
    {
        get;
        init => field = value is >= 0 and < 100 ? value : throw new ArgumentOutOfRangeException(nameof(ThresholdLayer), value, "ThresholdLayer is a percentage in [0, 100)");
    } = 50.0;

    /// <summary>
    /// Whether the selected tensors are the functions' inputs (pre-activations), compared with the thresholds as
    /// they are. Default false: they are the outputs (what Monitor traces) and the band is mapped through the function.
    /// </summary>
    public bool TensorsAreInputs { get; init; }

    /// <summary>Tensors looked at. Default collection activations, names containing <c>tanh</c> or <c>sigmoid</c> (any
    /// case).</summary>
    public override TensorSelector Selector
    {
        get;
        init => field = value ?? throw new ArgumentNullException(nameof(Selector));
    } = new TensorSelector([Collection.Activations], [@"(?i)tanh|sigmoid"]);

    /// <inheritdoc />
    public override string Name { get; init; } = "SaturatedActivation";

    /// <inheritdoc />
    public override IReadOnlyList<TensorRequirement> Requirements =>
        RuleSupport.Requirements(Selector, raw: true, "per-unit share of inputs near the saturation bounds needs raw values; the log2 histogram cannot resolve the bounds");

    private protected override string Healthy => "enough units in the active band";

    /// <exception cref="InvalidOperationException">A band's minimum is not below its maximum.</exception>
    private protected override void EvaluateTensor(StepRecord record, TensorRecord tensor, RuleContext context)
    {
        Bands bands = _bands ??= BuildBands();
        bool sigmoid = tensor.Name.Contains("sigmoid", StringComparison.OrdinalIgnoreCase);
        double lower = sigmoid ? bands.SigmoidLower : bands.TanhLower;
        double upper = sigmoid ? bands.SigmoidUpper : bands.TanhUpper;
        bool holds;
        double value;
        double threshold;
        string? description = null;
        if (RuleSupport.TryCountInactiveNeurons(tensor, lower, upper, ThresholdInactivity, ref _scratch,
            out long saturated, out long units, out long samples))
        {
            value = RuleSupport.Percent(saturated, units);
            threshold = ThresholdLayer;
            holds = value > threshold;
            if (holds)
            {
                description = string.Create(CultureInfo.InvariantCulture,
                    $"{value:G4}% of {tensor.Name}'s {units} units are saturated at step {record.Step} (inside the {(sigmoid ? "sigmoid" : "tanh")} band ({lower:G8}, {upper:G8}) in fewer than {ThresholdInactivity:G4}% of {samples} samples; threshold {ThresholdLayer:G4}%)");
            }
        }
        else if (tensor.Summary is { Count: > 0 } summary)
        {
            ulong outside = RuleSupport.CountAtMostLowerBound(summary, lower) + RuleSupport.CountAtLeastLowerBound(summary, upper);
            value = Math.Min(100, RuleSupport.Percent(outside, summary.Count));
            threshold = RuleSupport.ProvenInactivePercent(ThresholdInactivity, ThresholdLayer);
            holds = value > threshold;
            if (holds)
            {
                description = string.Create(CultureInfo.InvariantCulture,
                    $"at least {value:G4}% of {tensor.Name}'s elements are outside the {(sigmoid ? "sigmoid" : "tanh")} band ({lower:G8}, {upper:G8}) at step {record.Step}, which proves more than {ThresholdLayer:G4}% of its units saturated (summary only: above {threshold:G4}%)");
            }
        }
        else
        {
            return;
        }

        if (description is not null)
        {
            Problem(context, tensor, value, threshold, description);
        }
        else
        {
            Passing(context, tensor, value, threshold);
        }
    }

    private static double Finite(double value, string name) =>
        double.IsFinite(value) ? value : throw new ArgumentOutOfRangeException(name, value, name + " must be a finite number");

    private static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));

    private Bands BuildBands()
    {
        if (!(ThresholdTanhMin < ThresholdTanhMax) || !(ThresholdSigmoidMin < ThresholdSigmoidMax))
        {
            throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                $"{Name}: each band's minimum must be below its maximum (tanh ({ThresholdTanhMin}, {ThresholdTanhMax}), sigmoid ({ThresholdSigmoidMin}, {ThresholdSigmoidMax}))"));
        }

        return TensorsAreInputs
            ? new Bands(ThresholdTanhMin, ThresholdTanhMax, ThresholdSigmoidMin, ThresholdSigmoidMax)
            : new Bands(Math.Tanh(ThresholdTanhMin), Math.Tanh(ThresholdTanhMax), Sigmoid(ThresholdSigmoidMin), Sigmoid(ThresholdSigmoidMax));
    }

    private sealed record Bands(double TanhLower, double TanhUpper, double SigmoidLower, double SigmoidUpper);
}
