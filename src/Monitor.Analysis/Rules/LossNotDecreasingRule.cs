using System.Globalization;
using Monitor.Analysis.State;
using Monitor.Contracts;
using Monitor.Contracts.V1;

namespace Monitor.Analysis.Rules;

/// <summary>
/// Loss not decreasing (smdebug <c>LossNotDecreasing</c>): every <see cref="NumSteps"/> traced steps of
/// <see cref="Mode"/>, compares the mean loss of those steps with the mean of the <see cref="NumSteps"/> before, and
/// fires when it has not gone down by at least <see cref="DiffPercent"/> percent, or when it has risen more than
/// <see cref="IncreaseThresholdPercent"/> percent above the lowest block mean so far.
/// </summary>
/// <remarks>
/// <para>Formula, per loss tensor of each rank, on tumbling blocks of <c>n = NumSteps</c> traced steps, with block
/// means <c>previous</c>, <c>current</c> and <c>best</c> (the lowest so far, before <c>current</c>):
/// <c>required = |previous| * DiffPercent / 100</c>; not decreasing when <c>previous - current &lt; required</c>, or, with
/// <c>DiffPercent = 0</c>, when <c>current &gt;= previous</c>; increasing when
/// <c>current - best &gt; |best| * IncreaseThresholdPercent / 100</c>. The condition holds when either does; the rule
/// reports once per block, from the second block on.</para>
/// <para>Parameters and defaults follow the SageMaker developer guide, "List of Debugger Built-in Rules",
/// LossNotDecreasing (<c>collection_names</c>/<c>tensor_regex</c> → <see cref="Selector"/>,
/// <c>use_losses_collection</c>, <c>num_steps</c>, <c>diff_percent</c>, <c>mode</c>). <c>increase_threshold_percent</c>
/// is not in the snapshot of that list this rule was written from; it, and its default 5, follow the guide's current
/// LossNotDecreasing page as far as known here, and should be checked against it.</para>
/// <para>Differences from smdebug. smdebug compares single loss values <c>num_steps</c> apart; comparing block means
/// is the same test with the batch-to-batch noise of the loss averaged out, which otherwise makes the single-value
/// comparison fire at random on a healthy, noisy loss. The guide does not say what <c>increase_threshold_percent</c>
/// is measured from; here it is the best block so far, which catches a loss that drifts up while an occasional
/// block still beats the one before. smdebug's default mode (none: EVAL if present, else TRAIN, else GLOBAL) cannot
/// be decided on a stream; the default here is TRAIN, as in the rule configuration SageMaker ships
/// (<c>smdebug_rulesconfig</c>), and <see cref="Mode.Unspecified"/> stands for GLOBAL.</para>
/// </remarks>
public sealed class LossNotDecreasingRule : ITrainingRule, IStatefulRule
{
    private const string Decreasing = "the loss decreased by at least the required amount";

    private static readonly TensorRequirement[] Needs =
        [new(CollectionNames.Losses, Raw: false, "mean loss per block of traced steps")];

    private readonly SeriesTable<Blocks> _series = new();

    /// <summary>Traced steps per block. Default 10 (smdebug's <c>num_steps</c>).</summary>
    public int NumSteps
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(NumSteps), value, "NumSteps must be at least 1");
    } = 10;

    /// <summary>
    /// Minimum relative decrease between blocks, in percent, in [0, 100). Default 0: the loss only has to go down
    /// (smdebug's <c>diff_percent</c>).
    /// </summary>
    public double DiffPercent
    {
        get;
        init => field = value is >= 0 and < 100 ? value : throw new ArgumentOutOfRangeException(nameof(DiffPercent), value, "DiffPercent must be in [0, 100)");
    }

    /// <summary>
    /// How far, in percent, the block mean may rise above the best block mean so far. Default 5 (smdebug's
    /// <c>increase_threshold_percent</c>); <see cref="double.PositiveInfinity"/> turns the check off.
    /// </summary>
    public double IncreaseThresholdPercent
    {
        get;
        init => field = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(IncreaseThresholdPercent), value, "IncreaseThresholdPercent must not be negative");
    } = 5;

    /// <summary>
    /// Whether tensors in the <c>losses</c> collection are looked at besides those <see cref="Selector"/> matches.
    /// Default true (smdebug's <c>use_losses_collection</c>).
    /// </summary>
    public bool UseLossesCollection { get; init; } = true;

    /// <summary>
    /// Which tensors are losses (smdebug's <c>collection_names</c> and <c>tensor_regex</c>). Default: the
    /// <c>losses</c> collection. Only the summary mean is used, so non-scalar (per-sample) losses work too.
    /// </summary>
    public TensorSelector Selector { get; init; } = TensorSelector.Of(Collection.Losses);

    /// <summary>
    /// The mode whose records are looked at (smdebug's <c>mode</c>). Default <see cref="Mode.Train"/>;
    /// <see cref="Mode.Unspecified"/> looks at every record as one series (smdebug's <c>GLOBAL</c>). Records
    /// without a mode count as training records.
    /// </summary>
    public Mode Mode { get; init; } = Mode.Train;

    /// <inheritdoc />
    public string Name { get; init; } = "LossNotDecreasing";

    /// <inheritdoc />
    public IReadOnlyList<TensorRequirement> Requirements => Needs;

    /// <inheritdoc />
    public void ForgetRank(string run, uint rank) => _series.Forget(run, rank);

    /// <inheritdoc />
    public int StateVersion => 1;

    /// <inheritdoc />
    public void WriteState(string run, uint rank, ref StateWriter writer) =>
        _series.WriteState(run, rank, ref writer, static (ref StateWriter w, Blocks blocks) =>
        {
            w.WriteDouble(blocks.Sum);
            w.WriteVarInt(blocks.Count);
            w.WriteBool(blocks.HasPrevious);
            w.WriteDouble(blocks.Previous);
            w.WriteDouble(blocks.Best);
        });

    /// <inheritdoc />
    public Action ReadState(string run, uint rank, int version, ref StateReader reader) =>
        _series.ReadState(run, rank, ref reader, static (ref StateReader r) => new Blocks
        {
            Sum = r.ReadDouble("block sum"),
            Count = r.ReadInt32("block count"),
            HasPrevious = r.ReadBool("has previous block"),
            Previous = r.ReadDouble("previous block mean"),
            Best = r.ReadDouble("best block mean"),
        });

    /// <inheritdoc />
    public void Evaluate(StepRecord record, RuleContext context)
    {
        ArgumentNullException.ThrowIfNull(record);
        ArgumentNullException.ThrowIfNull(context);
        if (!RuleSupport.InMode(record, Mode))
        {
            return;
        }

        // Indexed: foreach over a RepeatedField allocates an enumerator per record.
        for (int index = 0; index < record.Tensors.Count; index++)
        {
            TensorRecord tensor = record.Tensors[index];
            if (tensor.Summary is not { } summary || !double.IsFinite(summary.Mean) || !IsLoss(tensor))
            {
                continue;
            }

            var key = new SeriesKey(record.RunId, record.Rank, tensor.Name);
            if (!_series.TryGetValue(key, out Blocks? blocks))
            {
                blocks = new Blocks();
                _series[key] = blocks;
            }

            blocks.Sum += summary.Mean;
            if (++blocks.Count < NumSteps)
            {
                continue;
            }

            double current = blocks.Sum / blocks.Count;
            blocks.Sum = 0;
            blocks.Count = 0;
            if (!blocks.HasPrevious)
            {
                blocks.HasPrevious = true;
                blocks.Previous = current;
                blocks.Best = current;
                continue;
            }

            double previous = blocks.Previous;
            double best = blocks.Best;
            blocks.Previous = current;
            blocks.Best = Math.Min(best, current);

            double required = Math.Abs(previous) * DiffPercent / 100;
            double decrease = previous - current;
            bool notDecreasing = required > 0 ? decrease < required : decrease <= 0;
            double allowed = best + (Math.Abs(best) * IncreaseThresholdPercent / 100);
            bool increasing = current > allowed;
            if (notDecreasing)
            {
                context.Report(tensor.Name, true, current, previous - required, string.Create(CultureInfo.InvariantCulture,
                    $"mean {tensor.Name} over the last {NumSteps} traced steps is {current:G4}, previous {NumSteps}: {previous:G4} (needed a decrease of at least {DiffPercent}%)"));
            }
            else if (increasing)
            {
                context.Report(tensor.Name, true, current, allowed, string.Create(CultureInfo.InvariantCulture,
                    $"mean {tensor.Name} over the last {NumSteps} traced steps is {current:G4}, more than {IncreaseThresholdPercent}% above its best block mean {best:G4}"));
            }
            else
            {
                context.Report(tensor.Name, false, current, previous - required, Decreasing);
            }
        }
    }

    private bool IsLoss(TensorRecord tensor) =>
        (UseLossesCollection && tensor.Collections.Contains(Collection.Losses)) || Selector.Matches(tensor);

    private sealed class Blocks
    {
        public double Sum;
        public int Count;
        public bool HasPrevious;
        public double Previous;
        public double Best;
    }
}
