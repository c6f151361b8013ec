using System.Numerics;
using System.Runtime.InteropServices;
using Google.Protobuf;
using Monitor.Contracts;
using Monitor.Contracts.V1;

namespace Monitor.Tracing;

/// <summary>
/// The step records of one tracer, reused: the training thread rents one at the start of a traced step, the sender
/// returns it once it has serialized it (or the training thread does, when the record is dropped or discarded).
/// </summary>
/// <remarks>
/// Last in, first out, so that a sender that keeps up cycles through the same two or three records. At most
/// <see cref="Retained"/> free records are kept: enough for a sender a few records behind; a burst beyond that
/// (a full queue) allocates records that go to the garbage collector afterwards, so the memory kept is a few records'
/// worth (raw values included), not the queue's capacity. Thread-safe.
/// </remarks>
internal sealed class StepRecordPool
{
    /// <summary>Free records kept.</summary>
    public const int Retained = 8;

    private readonly Lock _lock = new();
    private readonly Stack<PooledStepRecord> _free = new(Retained);

    /// <summary>A free record, or a new one when none is free. The caller owns it until it returns it.</summary>
    public PooledStepRecord Rent()
    {
        lock (_lock)
        {
            if (_free.TryPop(out PooledStepRecord? record))
            {
                return record;
            }
        }

        return new PooledStepRecord();
    }

    /// <summary>Gives a record back; the caller must not touch it afterwards.</summary>
    public void Return(PooledStepRecord record)
    {
        lock (_lock)
        {
            if (_free.Count < Retained)
            {
                _free.Push(record);
            }
        }
    }
}

/// <summary>
/// A <see cref="StepRecord"/> and the messages it is built of (tensor records, summaries, histograms, raw values and
/// their bytes), refilled in place from step to step: once its objects have grown to the selection's size, building a
/// record allocates nothing. The wire form is that of a record built from new messages: every field is set again on
/// every use, and optional messages are left unset exactly when a new record would leave them unset.
/// </summary>
/// <remarks>Owned by one thread at a time (see <see cref="StepRecordPool"/>).</remarks>
internal sealed class PooledStepRecord
{
    private readonly List<PooledTensor> _tensors = [];
    private readonly List<ThinnedCollection> _thinned = [];
    private int _used;
    private int _thinnedUsed;

    /// <summary>The record, as filled by <see cref="Begin"/> and <see cref="AddTensor"/>.</summary>
    public StepRecord Record { get; } = new();

    /// <summary>Starts the record over: the header given, every other field at its default, no tensors.</summary>
    public void Begin(string runId, int rank, int worldSize, long step, Mode mode, long selectionVersion, bool atBegin)
    {
        StepRecord record = Record;
        record.SchemaVersion = StepRecordDecoder.CurrentSchemaVersion;
        record.RunId = runId;
        record.Rank = (uint)rank;
        record.WorldSize = (uint)worldSize;
        record.Step = step;
        record.Mode = mode;
        record.EventTimeUnixNanos = 0;
        record.Sequence = 0;
        record.SelectionVersion = selectionVersion;
        record.Tensors.Clear();
        record.DroppedBefore = 0;
        record.AtBegin = atBegin;
        record.RunEnd = null;
        record.RawPartsTrimmed = 0;
        record.Thinned.Clear();
        record.OverheadRatio = 0;
        record.RunMetadata = "";
        record.Artifacts.Clear();
        _used = 0;
        _thinnedUsed = 0;
    }

    /// <summary>Notes a collection the overhead budget thins in this step, reusing the message of an earlier use.</summary>
    public void AddThinned(Collection collection, int stride, int skippedTensors)
    {
        if (_thinnedUsed == _thinned.Count)
        {
            _thinned.Add(new ThinnedCollection());
        }

        ThinnedCollection thinned = _thinned[_thinnedUsed++];
        thinned.Collection = collection;
        thinned.Stride = (uint)stride;
        thinned.SkippedTensors = (uint)skippedTensors;
        Record.Thinned.Add(thinned);
    }

    /// <summary>Adds a tensor, reusing the messages of the tensor added at this position in an earlier use.</summary>
    /// <param name="name">Its name (referenced, not copied).</param>
    /// <param name="collections">Its collections.</param>
    /// <param name="dtype">Its element type.</param>
    /// <param name="shape">Its shape.</param>
    /// <param name="statistics">Its summary.</param>
    /// <param name="buckets"><see cref="Log2Histogram"/> counts, or empty for no histogram.</param>
    /// <param name="raw">Raw values, or empty for none.</param>
    /// <param name="elements">Elements of the tensor (the raw values' <c>total_elements</c>).</param>
    /// <param name="sampleRows">Whole rows <paramref name="raw"/> holds, for a batch; else 0.</param>
    /// <param name="featureNames">Column names, or null.</param>
    public void AddTensor(string name, CollectionSet collections, DType dtype, ReadOnlySpan<long> shape, in TensorStatistics statistics,
        ReadOnlySpan<ulong> buckets, ReadOnlySpan<float> raw, long elements, int sampleRows, IReadOnlyList<string>? featureNames)
    {
        if (_used == _tensors.Count)
        {
            _tensors.Add(new PooledTensor());
        }

        Record.Tensors.Add(_tensors[_used++].Fill(name, collections, dtype, shape, statistics, buckets, raw, elements, sampleRows, featureNames));
    }
}

/// <summary>The messages of one tensor of a <see cref="PooledStepRecord"/>.</summary>
internal sealed class PooledTensor
{
    private readonly TensorRecord _tensor = new();
    private readonly TensorSummary _summary = new();
    private readonly Histogram _histogram = new();
    private readonly RawValues _raw = new();
    private byte[] _rawBuffer = [];
    // Wraps the first bytes of _rawBuffer; kept while the raw length stays the same, so steady steps allocate nothing.
    private ByteString _rawBytes = ByteString.Empty;

    public TensorRecord Fill(string name, CollectionSet collections, DType dtype, ReadOnlySpan<long> shape, in TensorStatistics statistics,
        ReadOnlySpan<ulong> buckets, ReadOnlySpan<float> raw, long elements, int sampleRows, IReadOnlyList<string>? featureNames)
    {
        TensorRecord tensor = _tensor;
        tensor.Name = name;
        tensor.Collections.Clear();
        // The members ascending, as CollectionSet.Members() gives them, without its enumerator.
        for (uint bits = collections.Bits; bits != 0; bits &= bits - 1)
        {
            tensor.Collections.Add((Collection)BitOperations.TrailingZeroCount(bits));
        }

        tensor.CustomCollections.Clear();
        tensor.Dtype = dtype;
        tensor.Shape.Clear();
        foreach (long dimension in shape)
        {
            tensor.Shape.Add(dimension);
        }

        tensor.Summary = FillSummary(statistics, buckets);
        tensor.Raw = raw.IsEmpty ? null : FillRaw(raw, elements, sampleRows);
        tensor.FeatureNames.Clear();
        if (featureNames is not null)
        {
            for (int i = 0; i < featureNames.Count; i++)
            {
                tensor.FeatureNames.Add(featureNames[i]);
            }
        }

        return tensor;
    }

    private TensorSummary FillSummary(in TensorStatistics statistics, ReadOnlySpan<ulong> buckets)
    {
        TensorSummary summary = _summary;
        summary.Count = (ulong)statistics.Count;
        summary.Min = statistics.Min;
        summary.Max = statistics.Max;
        summary.Mean = statistics.Mean;
        summary.Variance = statistics.Variance;
        summary.L1 = statistics.L1;
        summary.L2 = statistics.L2;
        summary.AbsMean = statistics.AbsMean;
        summary.ZeroCount = (ulong)statistics.ZeroCount;
        summary.NanCount = (ulong)statistics.NanCount;
        summary.InfCount = (ulong)statistics.InfCount;
        summary.Histogram = buckets.IsEmpty ? null : FillHistogram(buckets, (ulong)statistics.HistogramSampledCount);
        return summary;
    }

    private Histogram FillHistogram(ReadOnlySpan<ulong> buckets, ulong sampledCount)
    {
        Histogram histogram = _histogram;
        histogram.SampledCount = sampledCount;
        histogram.Edges.Clear();
        histogram.Counts.Clear();
        histogram.Layout = HistogramLayout.Log2Magnitude;
        histogram.FirstBucket = 0;
        // Only the span from the first to the last non-empty bucket goes on the wire (typically a fifth of them).
        ReadOnlySpan<ulong> counts = buckets[..Log2Histogram.BucketCount];
        int first = counts.IndexOfAnyExcept(0UL);
        if (first >= 0)
        {
            int last = counts.LastIndexOfAnyExcept(0UL);
            histogram.FirstBucket = (uint)first;
            foreach (ulong count in counts[first..(last + 1)])
            {
                histogram.Counts.Add(count);
            }
        }

        return histogram;
    }

    private RawValues FillRaw(ReadOnlySpan<float> values, long elements, int sampleRows)
    {
        ReadOnlySpan<byte> bytes = MemoryMarshal.AsBytes(values);
        if (_rawBuffer.Length < bytes.Length)
        {
            _rawBuffer = new byte[bytes.Length];
            _rawBytes = ByteString.Empty;
        }

        bytes.CopyTo(_rawBuffer);
        if (_rawBytes.Length != bytes.Length)
        {
            // Safe to wrap without a copy: the buffer is rewritten only while this record is rented, when no serializer
            // reads it.
            _rawBytes = UnsafeByteOperations.UnsafeWrap(_rawBuffer.AsMemory(0, bytes.Length));
        }

        RawValues raw = _raw;
        raw.Float32Le = _rawBytes;
        raw.TotalElements = (ulong)elements;
        raw.Truncated = values.Length < elements;
        raw.SampleRows = (uint)sampleRows;
        raw.Trimmed = false;
        return raw;
    }
}
