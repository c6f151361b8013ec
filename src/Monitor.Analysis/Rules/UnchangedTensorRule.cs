using System.Globalization;
using Google.Protobuf.Collections;
using Monitor.Analysis.State;
using Monitor.Contracts.V1;

namespace Monitor.Analysis.Rules;

/// <summary>
/// Unchanged tensor (smdebug <c>UnchangedTensor</c>): fires for a tensor that has not changed over the last
/// <see cref="NumSteps"/> traced training steps, as judged by numpy's <c>allclose</c> with <see cref="Rtol"/>,
/// <see cref="Atol"/> and <see cref="EqualNan"/>.
/// </summary>
/// <remarks>
/// <para><b>Formula with raw values</b>, per selected tensor of each rank: each traced step is compared with the
/// previous traced one (they need not be consecutive steps), element by element, <c>|x_t - x_prev| &lt;= atol + rtol
/// * |x_prev|</c> for every element (equal infinities are close; NaN is close to NaN only with <c>equal_nan</c>). The
/// rule holds when the last <c>num_steps - 1</c> comparisons in a row found the tensor unchanged, i.e. the last
/// <c>num_steps</c> traced steps are each allclose to the one before (smdebug compares the last <c>num_steps</c>
/// available steps; chaining consecutive pairs keeps one copy of the values instead of <c>num_steps - 1</c>). Raw
/// values cut at the selection's <c>limitSize</c> cover only a leading slice: then the summaries must also be
/// unchanged (below).</para>
/// <para><b>Without raw values</b> (a documented approximation, not smdebug's test): the tensor counts as unchanged
/// when its summaries are: the same element, zero, NaN and Inf counts, the same histogram bucket counts, and min,
/// max, mean, variance, L1, L2 and mean |x| each within <c>atol + rtol * |previous|</c>. A tensor whose values move
/// while every statistic stays put (e.g. a permutation) is wrongly called unchanged; a truly unchanged tensor is
/// always caught. With NaN present and <see cref="EqualNan"/> false nothing is unchanged, as with allclose.</para>
/// <para>Only training steps are compared (mode train or unspecified): weights stand still during evaluation. Out of
/// order records are skipped. Memory: one copy of the captured values per selected tensor and rank.</para>
/// <para>Parameters follow the SageMaker developer guide, "List of Debugger Built-in Rules", section UnchangedTensor
/// (awsdocs/amazon-sagemaker-developer-guide, doc_source/debugger-built-in-rules.md): <c>collection_names</c> and
/// <c>tensor_regex</c> → <see cref="Selector"/> (smdebug requires one; our default is weights and biases),
/// <c>num_steps</c> (3) → <see cref="NumSteps"/>, <c>rtol</c> (1e-5) → <see cref="Rtol"/>, <c>atol</c> (1e-8) →
/// <see cref="Atol"/>, <c>equal_nan</c> (False) → <see cref="EqualNan"/>.</para>
/// </remarks>
public sealed class UnchangedTensorRule : PerTensorRule
{
    private readonly SeriesTable<History> _history = new();

    /// <summary>Traced steps that must all be unchanged, at least 2. Default 3 (smdebug's <c>num_steps</c>).</summary>
    public int NumSteps
    {
        get;
        init => field = value >= 2 ? value : throw new ArgumentOutOfRangeException(nameof(NumSteps), value, "NumSteps must be at least 2");
    } = 3;

    /// <summary>Relative tolerance. Default 1e-5 (smdebug's <c>rtol</c>, numpy's default).</summary>
    public double Rtol
    {
        get;
        init => field = value is >= 0 and < double.PositiveInfinity ? value : throw new ArgumentOutOfRangeException(nameof(Rtol), value, "Rtol must be a non-negative, finite number");
    } = 1e-5;

    /// <summary>Absolute tolerance. Default 1e-8 (smdebug's <c>atol</c>, numpy's default).</summary>
    public double Atol
    {
        get;
        init => field = value is >= 0 and < double.PositiveInfinity ? value : throw new ArgumentOutOfRangeException(nameof(Atol), value, "Atol must be a non-negative, finite number");
    } = 1e-8;

    /// <summary>Whether NaN compares equal to NaN. Default false (smdebug's <c>equal_nan</c>).</summary>
    public bool EqualNan { get; init; }

    /// <summary>Tensors looked at. Default every tensor of collections weights and biases.</summary>
    public override TensorSelector Selector
    {
        get;
        init => field = value ?? throw new ArgumentNullException(nameof(Selector));
    } = TensorSelector.Of(Collection.Weights, Collection.Biases);

    /// <inheritdoc />
    public override string Name { get; init; } = "UnchangedTensor";

    /// <inheritdoc />
    public override IReadOnlyList<TensorRequirement> Requirements =>
        RuleSupport.Requirements(Selector, raw: true, "allclose between traced steps needs raw values; without them equal summaries stand in");

    /// <inheritdoc />
    public override void ForgetRank(string run, uint rank) => _history.Forget(run, rank);

    /// <inheritdoc />
    public override void WriteState(string run, uint rank, ref StateWriter writer) =>
        _history.WriteState(run, rank, ref writer, static (ref StateWriter w, History history) => history.WriteState(ref w));

    /// <inheritdoc />
    public override Action ReadState(string run, uint rank, int version, ref StateReader reader) =>
        _history.ReadState(run, rank, ref reader, History.ReadState);

    private protected override string Healthy => "tensor is changing";

    private protected override bool TrainingStepsOnly => true;

    private protected override void EvaluateTensor(StepRecord record, TensorRecord tensor, RuleContext context)
    {
        ReadOnlySpan<float> raw = TensorValues.Raw(tensor);
        TensorSummary? summary = tensor.Summary;
        if (raw.IsEmpty && summary is null)
        {
            return;
        }

        var key = new SeriesKey(record.RunId, record.Rank, tensor.Name);
        ref History? slot = ref _history.GetValueRefOrAddDefault(key, out _);
        History history = slot ??= new History();
        if (record.Step <= history.Step)
        {
            return;
        }

        bool complete = TensorValues.IsComplete(tensor);
        bool? unchanged = history.Step == History.None ? null : Unchanged(history, raw, complete, summary);
        if (unchanged is { } same)
        {
            if (!same || history.Unchanged == 0)
            {
                history.Since = history.Step;
            }

            history.Unchanged = same ? history.Unchanged + 1 : 0;
            if (history.Unchanged >= NumSteps - 1)
            {
                Problem(context, tensor, history.Unchanged + 1, NumSteps, string.Create(CultureInfo.InvariantCulture,
                    $"{tensor.Name} has not changed over the last {history.Unchanged + 1} traced steps ({history.Since} to {record.Step}; allclose rtol {Rtol:G3}, atol {Atol:G3}{(raw.IsEmpty ? "; judged from equal summaries, raw values not traced" : "")})"));
            }
            else
            {
                Passing(context, tensor, history.Unchanged + 1, NumSteps);
            }
        }
        else
        {
            history.Unchanged = 0;
        }

        history.Step = record.Step;
        history.Values.Store(raw, complete);
        history.Summary.Store(summary);
    }

    private bool Unchanged(History history, ReadOnlySpan<float> raw, bool complete, TensorSummary? summary)
    {
        bool? fromSummary = summary is not null && history.Summary.Present ? history.Summary.Close(summary, Rtol, Atol, EqualNan) : null;
        if (!raw.IsEmpty && raw.Length == history.Values.Length)
        {
            if (!AllClose(raw, history.Values.Values))
            {
                return false;
            }

            // A leading slice only: the rest of the tensor must look unchanged too.
            return (complete && history.Values.Complete) || fromSummary != false;
        }

        return fromSummary ?? false;
    }

    private bool AllClose(ReadOnlySpan<float> current, ReadOnlySpan<float> previous)
    {
        for (int i = 0; i < current.Length; i++)
        {
            if (!RuleSupport.Close(current[i], previous[i], Rtol, Atol, EqualNan))
            {
                return false;
            }
        }

        return true;
    }

    private sealed class History
    {
        public const long None = long.MinValue;

        public long Step = None;
        public long Since;
        public int Unchanged;

        public ValueSnapshot Values { get; private init; } = new();

        public SummarySnapshot Summary { get; private init; } = new();

        public void WriteState(ref StateWriter writer)
        {
            writer.WriteVarInt(Step);
            writer.WriteVarInt(Since);
            writer.WriteVarInt(Unchanged);
            Values.WriteState(ref writer);
            Summary.WriteState(ref writer);
        }

        public static History ReadState(ref StateReader reader) => new()
        {
            Step = reader.ReadVarInt("last step"),
            Since = reader.ReadVarInt("unchanged since"),
            Unchanged = reader.ReadInt32("unchanged steps"),
            Values = ValueSnapshot.ReadState(ref reader),
            Summary = SummarySnapshot.ReadState(ref reader),
        };
    }

    /// <summary>The statistics of one summary, kept for the next comparison (histogram buffer reused).</summary>
    private sealed class SummarySnapshot
    {
        private ulong[] _counts = [];
        private int _countsLength;
        private uint _firstBucket;
        private HistogramLayout _layout;
        private bool _hasHistogram;
        private ulong _count, _zero, _nan, _inf;
        private double _min, _max, _mean, _variance, _l1, _l2, _absMean;

        public bool Present { get; private set; }

        public void WriteState(ref StateWriter writer)
        {
            writer.WriteBool(Present);
            if (!Present)
            {
                return;
            }

            writer.WriteVarUInt(_count);
            writer.WriteVarUInt(_zero);
            writer.WriteVarUInt(_nan);
            writer.WriteVarUInt(_inf);
            foreach (double value in (ReadOnlySpan<double>)[_min, _max, _mean, _variance, _l1, _l2, _absMean])
            {
                writer.WriteDouble(value);
            }

            writer.WriteBool(_hasHistogram);
            if (_hasHistogram)
            {
                writer.WriteVarInt((long)_layout);
                writer.WriteVarInt(_firstBucket);
                writer.WriteVarUInt((ulong)_countsLength);
                foreach (ulong count in _counts.AsSpan(0, _countsLength))
                {
                    writer.WriteVarUInt(count);
                }
            }
        }

        public static SummarySnapshot ReadState(ref StateReader reader)
        {
            var snapshot = new SummarySnapshot { Present = reader.ReadBool("summary present") };
            if (!snapshot.Present)
            {
                return snapshot;
            }

            (snapshot._count, snapshot._zero, snapshot._nan, snapshot._inf) =
                (reader.ReadVarUInt("count"), reader.ReadVarUInt("zero count"), reader.ReadVarUInt("NaN count"), reader.ReadVarUInt("Inf count"));
            (snapshot._min, snapshot._max, snapshot._mean, snapshot._variance) =
                (reader.ReadDouble("min"), reader.ReadDouble("max"), reader.ReadDouble("mean"), reader.ReadDouble("variance"));
            (snapshot._l1, snapshot._l2, snapshot._absMean) = (reader.ReadDouble("l1"), reader.ReadDouble("l2"), reader.ReadDouble("abs mean"));
            snapshot._hasHistogram = reader.ReadBool("histogram present");
            if (snapshot._hasHistogram)
            {
                snapshot._layout = (HistogramLayout)reader.ReadVarInt("histogram layout", 0, int.MaxValue);
                snapshot._firstBucket = (uint)reader.ReadVarInt("first bucket", 0, uint.MaxValue);
                snapshot._countsLength = reader.ReadCount("histogram buckets", 1);
                snapshot._counts = new ulong[snapshot._countsLength];
                for (int i = 0; i < snapshot._countsLength; i++)
                {
                    snapshot._counts[i] = reader.ReadVarUInt("bucket count");
                }
            }

            return snapshot;
        }

        public void Store(TensorSummary? summary)
        {
            Present = summary is not null;
            if (summary is null)
            {
                return;
            }

            (_count, _zero, _nan, _inf) = (summary.Count, summary.ZeroCount, summary.NanCount, summary.InfCount);
            (_min, _max, _mean, _variance) = (summary.Min, summary.Max, summary.Mean, summary.Variance);
            (_l1, _l2, _absMean) = (summary.L1, summary.L2, summary.AbsMean);
            _hasHistogram = summary.Histogram is not null;
            if (summary.Histogram is { } histogram)
            {
                // The span as sent (first non-empty bucket to last): the tracer always trims it the same way, so equal
                // histograms have equal spans.
                RepeatedField<ulong> counts = histogram.Counts;
                (_layout, _firstBucket, _countsLength) = (histogram.Layout, histogram.FirstBucket, counts.Count);
                if (_counts.Length < counts.Count)
                {
                    _counts = new ulong[counts.Count];
                }

                for (int i = 0; i < counts.Count; i++)
                {
                    _counts[i] = counts[i];
                }
            }
        }

        public bool Close(TensorSummary summary, double rtol, double atol, bool equalNan)
        {
            if (summary.Count != _count || summary.ZeroCount != _zero || summary.NanCount != _nan || summary.InfCount != _inf
                || (summary.NanCount > 0 && !equalNan))
            {
                return false;
            }

            if (!(Same(summary.Min, _min, rtol, atol) && Same(summary.Max, _max, rtol, atol) && Same(summary.Mean, _mean, rtol, atol)
                && Same(summary.Variance, _variance, rtol, atol) && Same(summary.L1, _l1, rtol, atol) && Same(summary.L2, _l2, rtol, atol)
                && Same(summary.AbsMean, _absMean, rtol, atol)))
            {
                return false;
            }

            if (summary.Histogram is not { } histogram || !_hasHistogram)
            {
                return true;
            }

            RepeatedField<ulong> counts = histogram.Counts;
            if (histogram.Layout != _layout || histogram.FirstBucket != _firstBucket || counts.Count != _countsLength)
            {
                return false;
            }

            for (int i = 0; i < counts.Count; i++)
            {
                if (counts[i] != _counts[i])
                {
                    return false;
                }
            }

            return true;
        }

        // NaN statistics (no finite element) are the same as NaN.
        private static bool Same(double current, double previous, double rtol, double atol) =>
            (double.IsNaN(current) && double.IsNaN(previous)) || RuleSupport.Close(current, previous, rtol, atol);
    }
}
