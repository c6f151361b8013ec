using System.Globalization;
using System.Runtime.InteropServices;
using Monitor.Analysis.State;
using Monitor.Contracts.V1;

namespace Monitor.Analysis.Rules;

/// <summary>
/// Poor weight initialization (smdebug <c>PoorWeightInitialization</c>): during the first <see cref="Steps"/> steps
/// of a rank, and of every re-initialization of its weights, fires when the activations' variances differ too much
/// across layers, when a gradient's distribution is too narrow, or when the loss stops improving; the verdict then
/// stays for the rest of that window.
/// </summary>
/// <remarks>
/// <para>Per rank, on each traced step of the window <c>[start, start + Steps)</c>, three checks. The window starts
/// at step 0 (global step numbers) and again at every step where the weights were re-initialized: where the variance
/// of a tensor of <see cref="WeightSelector"/> changed more than <see cref="ReinitializationRatio"/>-fold (either way)
/// since that tensor's previous traced step. Training moves a layer's weight variance by a few percent per step at
/// most, a new initialization (a restart from scratch inside the same process, a model swapped in, a re-init after
/// a divergence) by orders of magnitude. smdebug only sees the first steps of a job; a re-initialization later in
/// the run would go unjudged.</para>
/// <list type="number">
/// <item><description>Activation variance spread: over the tensors of <see cref="Selector"/> (two or more, with at
/// least two finite elements), <c>max(variance) / min(variance) &gt; threshold</c> (a layer with zero variance
/// against one with some makes the ratio infinite). Exact from the summaries.</description></item>
/// <item><description>Gradient spread: over the tensors of <see cref="GradientSelector"/>,
/// <c>min over tensors of (percentile95(g) - percentile5(g)) &lt; distribution_range</c>. With raw values the
/// percentiles are numpy's (linear interpolation) over the captured values; without them the spread is bounded from
/// above with the log2 histogram (the bucket edges around the two order statistics, clamped to min and max), and a
/// tensor counts only when that bound is below the range (proven narrow; a bucket spans a factor of two, so narrow
/// tensors near the boundary are missed). Tensors with NaN or Inf or fewer than two elements are left out.</description></item>
/// <item><description>Loss convergence: per tensor of <see cref="LossSelector"/> (summary mean), the traced steps since
/// its best (lowest) value; <c>&gt;= patience</c> fails.</description></item>
/// </list>
/// <para>A failing check latches the verdict for the rank: the alert (one per rank, no tensor label) holds on every
/// later traced step of the window and, as the rule stops reporting after it, stays as it was. Poor initialization
/// is a property of the initialization, not something later steps cure; a re-initialization starts a new window and
/// resolves the old verdict unless the new weights fail too. Records after the window cost a lookup per weight
/// tensor (none with <see cref="ReinitializationRatio"/> 0). A rank whose steps go back before its window's start
/// (a restarted job) starts over at that step.</para>
/// <para>Parameters follow the SageMaker developer guide, "List of Debugger Built-in Rules", section
/// PoorWeightInitialization (awsdocs/amazon-sagemaker-developer-guide, doc_source/debugger-built-in-rules.md):
/// <c>activation_inputs_regex</c> (default <c>.*relu_input</c>) → <see cref="Selector"/>, <c>threshold</c> (10.0) →
/// <see cref="Threshold"/>, <c>distribution_range</c> (0.001) → <see cref="DistributionRange"/>, <c>patience</c> (5)
/// → <see cref="Patience"/>, <c>steps</c> (10) → <see cref="Steps"/>. Monitor traces module outputs, not the inputs
/// of ReLUs, and names them after the module: the default selects activations whose name contains <c>relu</c>, i.e.
/// ReLU outputs, whose variance is a fixed fraction of their input's for zero-mean symmetric inputs, so the ratio
/// across layers is nearly the same; point the selector at the layers feeding your ReLUs to test the inputs
/// themselves.</para>
/// </remarks>
public sealed class PoorWeightInitializationRule : ITrainingRule, IStatefulRule
{
    private readonly SeriesTable<RankState> _ranks = new();
    private float[] _scratch = [];

    /// <summary>Largest acceptable ratio of the largest to the smallest activation variance. Default 10.0 (smdebug's
    /// <c>threshold</c>).</summary>
    public double Threshold
    {
        get;
        init => field = value is >= 1 and < double.PositiveInfinity ? value : throw new ArgumentOutOfRangeException(nameof(Threshold), value, "Threshold is a ratio of variances, at least 1 and finite");
    } = 10.0;

    /// <summary>Smallest acceptable spread between a gradient's 5th and 95th percentiles. Default 0.001 (smdebug's
    /// <c>distribution_range</c>).</summary>
    public double DistributionRange
    {
        get;
        init => field = value is >= 0 and < double.PositiveInfinity ? value : throw new ArgumentOutOfRangeException(nameof(DistributionRange), value, "DistributionRange must be a non-negative, finite number");
    } = 0.001;

    /// <summary>Traced steps without a new lowest loss after which the loss counts as not decreasing. Default 5
    /// (smdebug's <c>patience</c>).</summary>
    public int Patience
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(Patience), value, "Patience must be at least 1");
    } = 5;

    /// <summary>Steps analysed: records with a step below this. Default 10 (smdebug's <c>steps</c>).</summary>
    public long Steps
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(Steps), value, "Steps must be at least 1");
    } = 10;

    /// <summary>Factor by which a weight tensor's variance must change between two of its traced steps to count as a
    /// re-initialization, which starts a new window. Default 100; 0 turns the detection off (only the run's first
    /// <see cref="Steps"/> steps are judged, as in smdebug). Otherwise greater than 1.</summary>
    public double ReinitializationRatio
    {
        get;
        init => field = value == 0 || value is > 1 and < double.PositiveInfinity ? value : throw new ArgumentOutOfRangeException(nameof(ReinitializationRatio), value, "ReinitializationRatio is a factor greater than 1, or 0 to turn the detection off");
    } = 100;

    /// <summary>Weights whose variances reveal a re-initialization. Default collection weights.</summary>
    public TensorSelector WeightSelector
    {
        get;
        init => field = value ?? throw new ArgumentNullException(nameof(WeightSelector));
    } = TensorSelector.Of(Collection.Weights);

    /// <summary>Activations whose variances are compared. Default collection activations, names containing
    /// <c>relu</c> (any case) but not <c>leaky</c> or <c>prelu</c>.</summary>
    public TensorSelector Selector
    {
        get;
        init => field = value ?? throw new ArgumentNullException(nameof(Selector));
    } = new TensorSelector([Collection.Activations], [@"(?i)relu"], [@"(?i)leaky|prelu"]);

    /// <summary>Gradients whose spread is checked. Default collection gradients.</summary>
    public TensorSelector GradientSelector
    {
        get;
        init => field = value ?? throw new ArgumentNullException(nameof(GradientSelector));
    } = TensorSelector.Of(Collection.Gradients);

    /// <summary>Losses whose convergence is checked. Default collection losses.</summary>
    public TensorSelector LossSelector
    {
        get;
        init => field = value ?? throw new ArgumentNullException(nameof(LossSelector));
    } = TensorSelector.Of(Collection.Losses);

    /// <inheritdoc />
    public string Name { get; init; } = "PoorWeightInitialization";

    /// <inheritdoc />
    public IReadOnlyList<TensorRequirement> Requirements =>
    [
        .. RuleSupport.Requirements(Selector, raw: false, "variance of each layer's activations (summary), compared across layers"),
        .. RuleSupport.Requirements(GradientSelector, raw: true, "5th and 95th percentiles of each gradient; the log2 histogram only bounds them"),
        .. RuleSupport.Requirements(LossSelector, raw: false, "loss (summary mean) must keep improving"),
        .. ReinitializationRatio > 0
            ? RuleSupport.Requirements(WeightSelector, raw: false, "variance of each weight (summary): a jump marks a re-initialization")
            : [],
    ];

    /// <inheritdoc />
    public void ForgetRank(string run, uint rank) => _ranks.Forget(run, rank);

    /// <inheritdoc />
    public int StateVersion => 1;

    /// <inheritdoc />
    public void WriteState(string run, uint rank, ref StateWriter writer) =>
        _ranks.WriteState(run, rank, ref writer, static (ref StateWriter w, RankState state) => state.WriteState(ref w));

    /// <inheritdoc />
    public Action ReadState(string run, uint rank, int version, ref StateReader reader) =>
        _ranks.ReadState(run, rank, ref reader, RankState.ReadState);

    /// <inheritdoc />
    public void Evaluate(StepRecord record, RuleContext context)
    {
        ArgumentNullException.ThrowIfNull(record);
        ArgumentNullException.ThrowIfNull(context);
        var key = new SeriesKey(record.RunId, record.Rank, "");
        if (ReinitializationRatio == 0 && record.Step >= Steps)
        {
            if (_ranks.Count != 0)
            {
                _ranks.Remove(key);
            }

            return;
        }

        ref RankState? slot = ref _ranks.GetValueRefOrAddDefault(key, out _);
        RankState state = slot ??= new RankState();
        if (record.Step < state.Start)
        {
            state.Restart(record.Step, string.Create(CultureInfo.InvariantCulture, $"the rank's steps went back from {state.Start}"));
        }

        bool hadVerdict = state.Verdict is not null;
        if (ReinitializationRatio > 0 && Reinitialized(record, state, out string? reinitialized) && record.Step > state.Start)
        {
            state.Restart(record.Step, "weights re-initialized: " + reinitialized);
        }

        if (record.Step - state.Start >= Steps)
        {
            return;
        }

        if (state.Verdict is not null)
        {
            context.Report(null, true, state.Value, state.Threshold, state.Verdict);
            return;
        }

        double minVariance = double.PositiveInfinity, maxVariance = 0, minSpread = double.PositiveInfinity;
        string? narrowest = null, flattest = null, sharpest = null;
        int layers = 0, staleSteps = 0;
        var tensors = record.Tensors;
        for (int i = 0; i < tensors.Count; i++)
        {
            TensorRecord tensor = tensors[i];
            if (tensor.Summary is not { } summary)
            {
                continue;
            }

            if (Selector.Matches(tensor) && RuleSupport.FiniteCount(summary) >= 2 && double.IsFinite(summary.Variance))
            {
                layers++;
                if (summary.Variance < minVariance)
                {
                    (minVariance, flattest) = (summary.Variance, tensor.Name);
                }

                if (summary.Variance >= maxVariance)
                {
                    (maxVariance, sharpest) = (summary.Variance, tensor.Name);
                }
            }

            if (GradientSelector.Matches(tensor))
            {
                double spread = Spread(tensor, summary);
                if (spread < minSpread)
                {
                    (minSpread, narrowest) = (spread, tensor.Name);
                }
            }

            if (LossSelector.Matches(tensor) && double.IsFinite(summary.Mean))
            {
                ref LossState? loss = ref CollectionsMarshal.GetValueRefOrAddDefault(state.Losses, tensor.Name, out bool seen);
                loss ??= new LossState { Best = summary.Mean };
                if (seen && record.Step > loss.Step)
                {
                    loss.Since = summary.Mean < loss.Best ? 0 : loss.Since + 1;
                    loss.Best = Math.Min(loss.Best, summary.Mean);
                }

                loss.Step = Math.Max(loss.Step, record.Step);
                staleSteps = Math.Max(staleSteps, loss.Since);
            }
        }

        double ratio = layers >= 2 ? (minVariance > 0 ? maxVariance / minVariance : maxVariance > 0 ? double.PositiveInfinity : 1) : double.NaN;
        if (ratio > Threshold)
        {
            Latch(state, ratio, Threshold, string.Create(CultureInfo.InvariantCulture,
                $"activation variances differ {ratio:G4}-fold across {layers} layers at step {record.Step} ({sharpest} {maxVariance:G4}, {flattest} {minVariance:G4}; threshold {Threshold:G4})"));
        }
        else if (minSpread < DistributionRange)
        {
            Latch(state, minSpread, DistributionRange, string.Create(CultureInfo.InvariantCulture,
                $"gradient {narrowest} spans only {minSpread:G4} between its 5th and 95th percentiles at step {record.Step} (distribution range {DistributionRange:G4})"));
        }
        else if (staleSteps >= Patience)
        {
            Latch(state, staleSteps, Patience, string.Create(CultureInfo.InvariantCulture,
                $"loss has not improved for {staleSteps} traced steps by step {record.Step} (patience {Patience})"));
        }

        // Within a window the verdict only goes from healthy to latched, so a healthy step has no alert to resolve,
        // except the previous window's after a re-initialization, or one this instance never saw (a reload).
        if (state.Verdict is not null)
        {
            context.Report(null, true, state.Value, state.Threshold, state.Verdict);
        }
        else if (hadVerdict || context.IsActive(null))
        {
            context.Report(null, false, double.NaN, double.NaN, string.Create(CultureInfo.InvariantCulture,
                $"new window from step {record.Step} ({state.Reason}); the new initialization is being judged"));
        }
    }

    // Compares every selected weight's variance with its previous traced value; true when one jumped by the ratio.
    private bool Reinitialized(StepRecord record, RankState state, out string? name)
    {
        name = null;
        var tensors = record.Tensors;
        for (int i = 0; i < tensors.Count; i++)
        {
            TensorRecord tensor = tensors[i];
            if (tensor.Summary is not { } summary || !double.IsFinite(summary.Variance) || !WeightSelector.Matches(tensor))
            {
                continue;
            }

            ref double previous = ref CollectionsMarshal.GetValueRefOrAddDefault(state.WeightVariances, tensor.Name, out bool seen);
            double current = summary.Variance;
            if (seen && name is null)
            {
                double low = Math.Min(previous, current), high = Math.Max(previous, current);
                if (high > 0 && (low == 0 || high / low > ReinitializationRatio))
                {
                    name = string.Create(CultureInfo.InvariantCulture, $"{tensor.Name} variance {previous:G4} -> {current:G4}");
                }
            }

            previous = current;
        }

        return name is not null;
    }

    private static void Latch(RankState state, double value, double threshold, string verdict) =>
        (state.Value, state.Threshold, state.Verdict) = (value, threshold, verdict);

    // p95 - p5 exactly from raw values, else an upper bound from the summary; NaN when neither can tell.
    private double Spread(TensorRecord tensor, TensorSummary summary)
    {
        ReadOnlySpan<float> raw = TensorValues.Raw(tensor);
        if (raw.Length >= 2 && summary.NanCount + summary.InfCount == 0)
        {
            RuleSupport.Percentiles(raw, 5, 95, ref _scratch, out double low, out double high);
            return high - low;
        }

        return RuleSupport.PercentileSpreadUpperBound(summary, 5, 95);
    }

    private sealed class RankState
    {
        public long Start;
        public string? Verdict;
        public string? Reason;
        public double Value;
        public double Threshold;

        public Dictionary<string, LossState> Losses { get; private init; } = new(StringComparer.Ordinal);

        public Dictionary<string, double> WeightVariances { get; private init; } = new(StringComparer.Ordinal);

        public void Restart(long step, string reason)
        {
            (Start, Reason, Verdict, Value, Threshold) = (step, reason, null, 0, 0);
            Losses.Clear();
        }

        public void WriteState(ref StateWriter writer)
        {
            writer.WriteVarInt(Start);
            writer.WriteOptionalString(Verdict);
            writer.WriteOptionalString(Reason);
            writer.WriteDouble(Value);
            writer.WriteDouble(Threshold);
            StateByName.Write(Losses, ref writer, static (ref StateWriter w, LossState loss) =>
            {
                w.WriteDouble(loss.Best);
                w.WriteVarInt(loss.Since);
                w.WriteVarInt(loss.Step);
            });
            StateByName.Write(WeightVariances, ref writer, static (ref StateWriter w, double variance) => w.WriteDouble(variance));
        }

        public static RankState ReadState(ref StateReader reader)
        {
            return new RankState
            {
                Start = reader.ReadVarInt("window start"),
                Verdict = reader.ReadOptionalString("verdict"),
                Reason = reader.ReadOptionalString("reason"),
                Value = reader.ReadDouble("value"),
                Threshold = reader.ReadDouble("threshold"),
                Losses = StateByName.Read(ref reader, "loss", static (ref StateReader r) => new LossState
                {
                    Best = r.ReadDouble("best loss"),
                    Since = r.ReadInt32("steps since best"),
                    Step = r.ReadVarInt("loss step"),
                }),
                WeightVariances = StateByName.Read(ref reader, "weight", static (ref StateReader r) => r.ReadDouble("weight variance")),
            };
        }
    }

    private sealed class LossState
    {
        public double Best;
        public int Since;
        public long Step = long.MinValue;
    }
}
