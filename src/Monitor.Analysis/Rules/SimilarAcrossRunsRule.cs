using System.Globalization;
using Monitor.Analysis.State;
using Monitor.Contracts.V1;

namespace Monitor.Analysis.Rules;

/// <summary>
/// Similar across runs (smdebug <c>SimilarAcrossRuns</c>): compares each tensor of a run with the same tensor of
/// <see cref="OtherRun"/> at the same step, mode and rank, and fires when they differ.
/// </summary>
/// <remarks>
/// <para>Formula, per tensor of each rank of the compared run, at every step both runs traced: the tensors are the
/// same when their summaries are: equal <c>count</c>, <c>nan_count</c> and <c>inf_count</c>, and
/// <c>|a - b| &lt;= Atol + Rtol * |b|</c> (numpy's <c>allclose</c>, <c>b</c> from <see cref="OtherRun"/>) for
/// <c>min</c>, <c>max</c>, <c>mean</c>, <c>variance</c> and <c>l2</c>. The reported value is the largest
/// <c>|a - b| / (Atol + Rtol * |b|)</c>, different when above 1.</para>
/// <para>Records of either run may come first: each side keeps the summaries of its last
/// <see cref="MaxBufferedSteps"/> traced steps per rank until the other side's step arrives; steps that fall out of
/// that buffer are not compared. A run compared with a finished reference run therefore needs the reference replayed
/// alongside (or the runs to be concurrent).</para>
/// <para>Parameters follow the SageMaker developer guide, "List of Debugger Built-in Rules", SimilarAcrossRuns
/// (<c>other_trial</c> → <see cref="OtherRun"/>, <c>collection_names</c>/<c>tensor_regex</c> → <see cref="Selector"/>,
/// default every tensor).</para>
/// <para>Differences from smdebug: smdebug compares full tensor values; this rule compares the summaries every record
/// carries, which raw values are not (a tensor with the same summary statistics but permuted elements passes).
/// <see cref="Rtol"/>, <see cref="Atol"/>, <see cref="BaseRun"/> and <see cref="MaxBufferedSteps"/> are ours.
/// Tensors present in only one of the runs are not compared.</para>
/// <para>State snapshots (<see cref="IStatefulRule"/>): the rule compares two keys, (run, rank) and
/// (<see cref="OtherRun"/>, rank), but what it buffers belongs to one key each, the steps that key traced and the other
/// has not yet: that buffer is the key's snapshot, so each key is restored with its own partition. Comparing still
/// needs both keys on the same engine (both runs' ranks on one partition, or one replica), as it always did.</para>
/// </remarks>
public sealed class SimilarAcrossRunsRule : ITrainingRule, IStatefulRule
{
    private const string Similar = "the tensor matches the other run";

    private readonly Dictionary<(string Run, uint Rank), Side> _sides = [];
    private readonly Stack<Dictionary<string, Stats>> _pool = new();

    /// <summary>The run compared with (smdebug's <c>other_trial</c>). Default empty: the rule compares nothing until set.</summary>
    public string OtherRun
    {
        get;
        init => field = value ?? throw new ArgumentNullException(nameof(OtherRun));
    } = "";

    /// <summary>The run compared (smdebug's <c>base_trial</c>). Default null: every run other than <see cref="OtherRun"/>.</summary>
    public string? BaseRun { get; init; }

    /// <summary>Which tensors are compared (smdebug's <c>collection_names</c>, <c>tensor_regex</c>). Default: every tensor.</summary>
    public TensorSelector Selector { get; init; } = new([]);

    /// <summary>Relative tolerance. Default 1e-5 (numpy's <c>allclose</c>; ours).</summary>
    public double Rtol
    {
        get;
        init => field = value >= 0 && double.IsFinite(value) ? value : throw new ArgumentOutOfRangeException(nameof(Rtol), value, "Rtol must be finite and not negative");
    } = 1e-5;

    /// <summary>Absolute tolerance. Default 1e-8 (numpy's <c>allclose</c>; ours).</summary>
    public double Atol
    {
        get;
        init => field = value >= 0 && double.IsFinite(value) ? value : throw new ArgumentOutOfRangeException(nameof(Atol), value, "Atol must be finite and not negative");
    } = 1e-8;

    /// <summary>Traced steps per rank and run kept while waiting for the other run's same step. Default 1000 (ours).</summary>
    public int MaxBufferedSteps
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(MaxBufferedSteps), value, "MaxBufferedSteps must be at least 1");
    } = 1000;

    /// <inheritdoc />
    public string Name { get; init; } = "SimilarAcrossRuns";

    /// <inheritdoc />
    public void ForgetRank(string run, uint rank) => _sides.Remove((run, rank));

    /// <inheritdoc />
    public int StateVersion => 1;

    /// <inheritdoc />
    public void WriteState(string run, uint rank, ref StateWriter writer)
    {
        if (!_sides.TryGetValue((run, rank), out Side? side))
        {
            return;
        }

        // The order of arrival as it is (a step compared and buffered again appears twice), then the buffered steps.
        writer.WriteVarUInt((ulong)side.Order.Count);
        foreach ((long step, Mode mode) in side.Order)
        {
            writer.WriteVarInt(step);
            writer.WriteVarInt((long)mode);
        }

        (long Step, Mode Mode)[] buffered = [.. side.Snapshots.Keys];
        Array.Sort(buffered);
        writer.WriteVarUInt((ulong)buffered.Length);
        foreach ((long Step, Mode Mode) at in buffered)
        {
            writer.WriteVarInt(at.Step);
            writer.WriteVarInt((long)at.Mode);
            Dictionary<string, Stats> snapshot = side.Snapshots[at];
            string[] tensors = [.. snapshot.Keys];
            Array.Sort(tensors, StringComparer.Ordinal);
            writer.WriteVarUInt((ulong)tensors.Length);
            foreach (string tensor in tensors)
            {
                writer.WriteString(tensor);
                snapshot[tensor].WriteState(ref writer);
            }
        }
    }

    /// <inheritdoc />
    public Action ReadState(string run, uint rank, int version, ref StateReader reader)
    {
        if (reader.Remaining == 0)
        {
            return () => _sides.Remove((run, rank));
        }

        var side = new Side();
        for (int i = reader.ReadCount("buffered steps in order", 2); i > 0; i--)
        {
            side.Order.Enqueue((reader.ReadVarInt("step"), ReadMode(ref reader)));
        }

        for (int i = reader.ReadCount("buffered steps", 3); i > 0; i--)
        {
            var at = (reader.ReadVarInt("step"), ReadMode(ref reader));
            var snapshot = new Dictionary<string, Stats>(StringComparer.Ordinal);
            for (int t = reader.ReadCount("buffered tensors", 1 + Stats.MinBytes); t > 0; t--)
            {
                string tensor = reader.ReadString("tensor name");
                if (!snapshot.TryAdd(tensor, Stats.ReadState(ref reader)))
                {
                    throw reader.Invalid("tensor name", "repeated");
                }
            }

            if (!side.Snapshots.TryAdd(at, snapshot) || !side.Order.Contains(at))
            {
                throw reader.Invalid("buffered step", "repeated, or not in the order of arrival");
            }
        }

        return () => _sides[(run, rank)] = side;

        static Mode ReadMode(ref StateReader reader) => (Mode)reader.ReadVarInt("mode", (long)Mode.Unspecified, (long)Mode.Predict);
    }

    /// <inheritdoc />
    public void Evaluate(StepRecord record, RuleContext context)
    {
        ArgumentNullException.ThrowIfNull(record);
        ArgumentNullException.ThrowIfNull(context);
        if (OtherRun.Length == 0)
        {
            return;
        }

        var at = (record.Step, record.Mode);
        if (record.RunId == OtherRun)
        {
            Dictionary<string, Stats> reference = Buffer(record);
            foreach (((string run, uint rank), Side side) in _sides)
            {
                if (rank != record.Rank || run == OtherRun || !side.Snapshots.Remove(at, out Dictionary<string, Stats>? waiting))
                {
                    continue;
                }

                foreach ((string tensor, Stats stats) in waiting)
                {
                    if (reference.TryGetValue(tensor, out Stats other))
                    {
                        Compare(context, run, record.Rank, record.Step, tensor, stats, other);
                    }
                }

                Return(waiting);
            }

            return;
        }

        if (BaseRun is not null && record.RunId != BaseRun)
        {
            return;
        }

        if (_sides.TryGetValue((OtherRun, record.Rank), out Side? otherSide) && otherSide.Snapshots.TryGetValue(at, out Dictionary<string, Stats>? snapshot))
        {
            // Indexed: foreach over a RepeatedField allocates an enumerator per record.
            for (int index = 0; index < record.Tensors.Count; index++)
            {
                TensorRecord tensor = record.Tensors[index];
                if (tensor.Summary is { } summary && snapshot.TryGetValue(tensor.Name, out Stats other) && Selector.Matches(tensor))
                {
                    Compare(context, record.RunId, record.Rank, record.Step, tensor.Name, new Stats(summary), other);
                }
            }

            return;
        }

        Buffer(record);
    }

    private void Compare(RuleContext context, string run, uint rank, long step, string tensor, Stats stats, Stats other)
    {
        (double score, string field, double a, double b) = stats.Difference(other, Rtol, Atol);
        if (score > 1)
        {
            context.ReportFor(run, rank, step, tensor, true, score, 1, string.Create(CultureInfo.InvariantCulture,
                $"{tensor} at step {step} differs from run {OtherRun}: {field} {a:G6} vs {b:G6} (rtol {Rtol:G3}, atol {Atol:G3})"));
        }
        else
        {
            context.ReportFor(run, rank, step, tensor, false, score, 1, Similar);
        }
    }

    private Dictionary<string, Stats> Buffer(StepRecord record)
    {
        var key = (record.RunId, record.Rank);
        if (!_sides.TryGetValue(key, out Side? side))
        {
            side = new Side();
            _sides[key] = side;
        }

        Dictionary<string, Stats> snapshot = _pool.Count > 0 ? _pool.Pop() : new Dictionary<string, Stats>(StringComparer.Ordinal);
        // Indexed: foreach over a RepeatedField allocates an enumerator per record.
        for (int index = 0; index < record.Tensors.Count; index++)
        {
            TensorRecord tensor = record.Tensors[index];
            if (tensor.Summary is { } summary && Selector.Matches(tensor))
            {
                snapshot[tensor.Name] = new Stats(summary);
            }
        }

        var at = (record.Step, record.Mode);
        if (side.Snapshots.Remove(at, out Dictionary<string, Stats>? replaced))
        {
            Return(replaced);
        }
        else
        {
            side.Order.Enqueue(at);
        }

        side.Snapshots[at] = snapshot;
        while (side.Order.Count > MaxBufferedSteps)
        {
            if (side.Snapshots.Remove(side.Order.Dequeue(), out Dictionary<string, Stats>? evicted))
            {
                Return(evicted);
            }
        }

        return snapshot;
    }

    private void Return(Dictionary<string, Stats> snapshot)
    {
        snapshot.Clear();
        _pool.Push(snapshot);
    }

    private sealed class Side
    {
        public readonly Queue<(long Step, Mode Mode)> Order = new();
        public readonly Dictionary<(long Step, Mode Mode), Dictionary<string, Stats>> Snapshots = [];
    }

    private readonly record struct Stats(ulong Count, ulong NanCount, ulong InfCount, double Min, double Max, double Mean, double Variance, double L2)
    {
        // Three varints of at least one byte and five doubles.
        public const int MinBytes = 3 + (5 * 8);

        public Stats(TensorSummary summary)
            : this(summary.Count, summary.NanCount, summary.InfCount, summary.Min, summary.Max, summary.Mean, summary.Variance, summary.L2)
        {
        }

        /// <summary>The worst field: its score (above 1 means different), name and both values.</summary>
        public static Stats ReadState(ref StateReader reader) => new(
            reader.ReadVarUInt("count"), reader.ReadVarUInt("NaN count"), reader.ReadVarUInt("Inf count"), reader.ReadDouble("min"),
            reader.ReadDouble("max"), reader.ReadDouble("mean"), reader.ReadDouble("variance"), reader.ReadDouble("l2"));

        public void WriteState(ref StateWriter writer)
        {
            writer.WriteVarUInt(Count);
            writer.WriteVarUInt(NanCount);
            writer.WriteVarUInt(InfCount);
            writer.WriteDouble(Min);
            writer.WriteDouble(Max);
            writer.WriteDouble(Mean);
            writer.WriteDouble(Variance);
            writer.WriteDouble(L2);
        }

        public (double Score, string Field, double A, double B) Difference(Stats other, double rtol, double atol)
        {
            if (Count != other.Count)
            {
                return (double.PositiveInfinity, "count", Count, other.Count);
            }

            if (NanCount != other.NanCount)
            {
                return (double.PositiveInfinity, "nan_count", NanCount, other.NanCount);
            }

            if (InfCount != other.InfCount)
            {
                return (double.PositiveInfinity, "inf_count", InfCount, other.InfCount);
            }

            (double Score, string Field, double A, double B) worst = (0, "mean", Mean, other.Mean);
            Worst(ref worst, "min", Min, other.Min, rtol, atol);
            Worst(ref worst, "max", Max, other.Max, rtol, atol);
            Worst(ref worst, "mean", Mean, other.Mean, rtol, atol);
            Worst(ref worst, "variance", Variance, other.Variance, rtol, atol);
            Worst(ref worst, "l2", L2, other.L2, rtol, atol);
            return worst;
        }

        private static void Worst(ref (double Score, string Field, double A, double B) worst, string field, double a, double b, double rtol, double atol)
        {
            double score;
            if (a.Equals(b))
            {
                // Equal, including NaN == NaN and the same infinity.
                score = 0;
            }
            else
            {
                double tolerance = atol + (rtol * Math.Abs(b));
                double difference = Math.Abs(a - b);
                score = double.IsNaN(difference) ? double.PositiveInfinity
                    : tolerance == 0 ? double.PositiveInfinity
                    : difference / tolerance;
            }

            if (score > worst.Score)
            {
                worst = (score, field, a, b);
            }
        }
    }
}
