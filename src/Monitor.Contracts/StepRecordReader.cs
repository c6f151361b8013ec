using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Unicode;
using Google.Protobuf;
using Monitor.Contracts.V1;

namespace Monitor.Contracts;

/// <summary>
/// Reads step records from the wire without allocating once warm: each <see cref="TryRead"/> refills ONE reused
/// <see cref="StepRecord"/> object graph in place, the same result and the same <see cref="DecodeError"/> kinds as
/// <see cref="StepRecordDecoder.TryDecode"/>.
/// </summary>
/// <remarks>
/// <para>
/// <b>The record returned is valid only until the next call on the same reader.</b> The next call clears and refills
/// the same <see cref="StepRecord"/>, its <see cref="TensorRecord"/>s, <see cref="TensorSummary"/>s,
/// <see cref="Histogram"/>s, <see cref="RawValues"/>, <see cref="ThinnedCollection"/>s, <see cref="ArtifactEvent"/>s,
/// <see cref="RunEnd"/> and their <c>RepeatedField</c>s. A consumer that keeps anything past the call must copy it
/// (<c>Clone()</c> a message, copy a repeated field's values); the strings and <see cref="ByteString"/>s in it are
/// immutable and may be kept. Do not modify the record: the reader owns it.
/// </para>
/// <para>
/// Not thread-safe: use one reader per consuming thread. Never throws for any input and never loops on it: the size is
/// checked first (<see cref="StepRecordDecoder.MaxPayloadBytes"/>), parsing is one pass over the span, unknown fields
/// (groups included, nested at most 100 deep like Google.Protobuf) are skipped, and the schema has no recursive
/// messages. Protobuf's rules are kept: a known field number with another wire type is an unknown field, a repeated
/// scalar is read packed or not, a singular message that appears twice is merged, the last singular scalar wins, a
/// string that is not valid UTF-8 makes the payload malformed.
/// </para>
/// <para>
/// Allocation once warm: none for a record whose strings were seen before and that carries no raw values; a
/// <see cref="RawValues.Float32Le"/> is copied into a new <see cref="ByteString"/> (the record may be kept, the payload
/// buffer may not). Strings up to <see cref="InternMaxBytes"/> UTF-8 bytes (tensor names, run ids, collection and
/// feature names, artifact fields) are interned in a cache of at most <see cref="InternCapacityDefault"/> entries
/// (four-way set-associative, keyed by the bytes), so a hostile stream of new names costs an allocation per name and
/// evicts older ones, never unbounded memory: at most about capacity × (3 × <see cref="InternMaxBytes"/> + 80) bytes
/// (7.6 MB at the default), and 256 KB for the table itself.
/// <c>run_metadata</c> (a JSON document sent once per rank) is never interned.
/// </para>
/// </remarks>
public sealed class StepRecordReader
{
    /// <summary>Longest string, in UTF-8 bytes, that is interned: 128, the longest run id and above the tensor names
    /// seen in practice; longer ones are decoded every time.</summary>
    public const int InternMaxBytes = 128;

    /// <summary>Entries in the intern cache when not given: 16,384 (four-way sets), so that the few thousand names of
    /// a large model (a tensor and its gradient, collections, feature names) stay cached.</summary>
    public const int InternCapacityDefault = 16_384;

    // Entries per set of the intern cache: four, so that a few names sharing a set all stay.
    private const int InternWays = 4;

    // Google.Protobuf's default recursion limit (CodedInputStream.DefaultRecursionLimit); messages and groups count.
    private const int RecursionLimit = 100;

    private readonly StepRecord _record = new();
    private readonly List<TensorSlot> _tensors = [];
    private readonly List<ThinnedCollection> _thinned = [];
    private readonly List<ArtifactEvent> _artifacts = [];
    private readonly RunEnd _runEnd = new();
    private readonly InternEntry[] _intern;
    private readonly int _internSetMask;
    private int _internVictim;
    private string? _problem;

    /// <summary>A reader with an intern cache of <see cref="InternCapacityDefault"/> entries.</summary>
    public StepRecordReader()
        : this(InternCapacityDefault)
    {
    }

    /// <summary>A reader with an intern cache of <paramref name="internCapacity"/> entries (a power of two, 4 to 2^20).</summary>
    /// <exception cref="ArgumentOutOfRangeException">The capacity is not a power of two in that range.</exception>
    public StepRecordReader(int internCapacity)
    {
        if (internCapacity is < InternWays or > 1 << 20 || (internCapacity & (internCapacity - 1)) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(internCapacity), internCapacity, "must be a power of two from 4 to 2^20");
        }

        _intern = new InternEntry[internCapacity];
        _internSetMask = (internCapacity / InternWays) - 1;
    }

    /// <summary>Decodes and validates one payload into the reader's record.</summary>
    /// <returns>True with <paramref name="record"/> set (valid only until the next call on this reader), or false
    /// with <paramref name="error"/> set.</returns>
    public bool TryRead(ReadOnlySpan<byte> payload, [NotNullWhen(true)] out StepRecord? record, out DecodeError error)
    {
        record = null;
        if (payload.Length > StepRecordDecoder.MaxPayloadBytes)
        {
            error = new DecodeError(DecodeErrorKind.TooLarge, $"payload is {payload.Length} bytes; at most {StepRecordDecoder.MaxPayloadBytes} are accepted");
            return false;
        }

        ResetRecord();
        _problem = null;
        if (!ReadStepRecord(payload))
        {
            error = new DecodeError(DecodeErrorKind.Malformed, _problem ?? "malformed protobuf");
            _problem = null;
            return false;
        }

        string? problem = StepRecordDecoder.Validate(_record, out DecodeErrorKind kind);
        if (problem is not null)
        {
            error = new DecodeError(kind, problem);
            return false;
        }

        record = _record;
        error = default;
        return true;
    }

    private void ResetRecord()
    {
        StepRecord r = _record;
        r.SchemaVersion = 0;
        r.RunId = "";
        r.Rank = 0;
        r.WorldSize = 0;
        r.Step = 0;
        r.Mode = Mode.Unspecified;
        r.EventTimeUnixNanos = 0;
        r.Sequence = 0;
        r.SelectionVersion = 0;
        r.Tensors.Clear();
        r.DroppedBefore = 0;
        r.AtBegin = false;
        r.RunEnd = null;
        r.RawPartsTrimmed = 0;
        r.Thinned.Clear();
        r.OverheadRatio = 0;
        r.RunMetadata = "";
        r.Artifacts.Clear();
    }

    private bool ReadStepRecord(ReadOnlySpan<byte> d)
    {
        StepRecord r = _record;
        int pos = 0;
        while (pos < d.Length)
        {
            if (!TryTag(d, ref pos, out uint tag))
            {
                return false;
            }

            ulong v;
            switch (tag)
            {
                case 8:
                    if (!TryVarint(d, ref pos, out v))
                    {
                        return false;
                    }

                    r.SchemaVersion = (uint)v;
                    break;
                case 18:
                    if (!TryString(d, ref pos, intern: true, out string runId))
                    {
                        return false;
                    }

                    r.RunId = runId;
                    break;
                case 24:
                    if (!TryVarint(d, ref pos, out v))
                    {
                        return false;
                    }

                    r.Rank = (uint)v;
                    break;
                case 32:
                    if (!TryVarint(d, ref pos, out v))
                    {
                        return false;
                    }

                    r.WorldSize = (uint)v;
                    break;
                case 40:
                    if (!TryVarint(d, ref pos, out v))
                    {
                        return false;
                    }

                    r.Step = (long)v;
                    break;
                case 48:
                    if (!TryVarint(d, ref pos, out v))
                    {
                        return false;
                    }

                    r.Mode = (Mode)(int)v;
                    break;
                case 56:
                    if (!TryVarint(d, ref pos, out v))
                    {
                        return false;
                    }

                    r.EventTimeUnixNanos = (long)v;
                    break;
                case 64:
                    if (!TryVarint(d, ref pos, out v))
                    {
                        return false;
                    }

                    r.Sequence = v;
                    break;
                case 72:
                    if (!TryVarint(d, ref pos, out v))
                    {
                        return false;
                    }

                    r.SelectionVersion = (long)v;
                    break;
                case 82:
                {
                    if (!TryLength(d, ref pos, out int length))
                    {
                        return false;
                    }

                    if (!ReadTensor(d.Slice(pos, length), RentTensor(r.Tensors.Count)))
                    {
                        return false;
                    }

                    pos += length;
                    break;
                }

                case 88:
                    if (!TryVarint(d, ref pos, out v))
                    {
                        return false;
                    }

                    r.DroppedBefore = v;
                    break;
                case 96:
                    if (!TryVarint(d, ref pos, out v))
                    {
                        return false;
                    }

                    r.AtBegin = v != 0;
                    break;
                case 106:
                {
                    if (!TryLength(d, ref pos, out int length))
                    {
                        return false;
                    }

                    if (r.RunEnd is null)
                    {
                        _runEnd.Reason = RunEndReason.Unspecified;
                        r.RunEnd = _runEnd;
                    }

                    if (!ReadRunEnd(d.Slice(pos, length), r.RunEnd))
                    {
                        return false;
                    }

                    pos += length;
                    break;
                }

                case 112:
                    if (!TryVarint(d, ref pos, out v))
                    {
                        return false;
                    }

                    r.RawPartsTrimmed = v;
                    break;
                case 122:
                {
                    if (!TryLength(d, ref pos, out int length))
                    {
                        return false;
                    }

                    ThinnedCollection thinned = RentThinned(r.Thinned.Count);
                    r.Thinned.Add(thinned);
                    if (!ReadThinned(d.Slice(pos, length), thinned))
                    {
                        return false;
                    }

                    pos += length;
                    break;
                }

                case 129:
                    if (!TryFixed64(d, ref pos, out v))
                    {
                        return false;
                    }

                    r.OverheadRatio = BitConverter.UInt64BitsToDouble(v);
                    break;
                case 138:
                    if (!TryString(d, ref pos, intern: false, out string metadata))
                    {
                        return false;
                    }

                    r.RunMetadata = metadata;
                    break;
                case 146:
                {
                    if (!TryLength(d, ref pos, out int length))
                    {
                        return false;
                    }

                    ArtifactEvent artifact = RentArtifact(r.Artifacts.Count);
                    r.Artifacts.Add(artifact);
                    if (!ReadArtifact(d.Slice(pos, length), artifact))
                    {
                        return false;
                    }

                    pos += length;
                    break;
                }

                default:
                    if (!SkipField(d, ref pos, tag, depth: 0))
                    {
                        return false;
                    }

                    break;
            }
        }

        return true;
    }

    /// <summary>The pooled tensor for index <paramref name="index"/>, reset and added to the record.</summary>
    private TensorSlot RentTensor(int index)
    {
        if (index == _tensors.Count)
        {
            _tensors.Add(new TensorSlot());
        }

        TensorSlot slot = _tensors[index];
        TensorRecord t = slot.Tensor;
        t.Name = "";
        t.Collections.Clear();
        t.CustomCollections.Clear();
        t.Dtype = DType.Unspecified;
        t.Shape.Clear();
        t.Summary = null;
        t.Raw = null;
        t.FeatureNames.Clear();
        _record.Tensors.Add(t);
        return slot;
    }

    private bool ReadTensor(ReadOnlySpan<byte> d, TensorSlot slot)
    {
        TensorRecord t = slot.Tensor;
        int pos = 0;
        while (pos < d.Length)
        {
            if (!TryTag(d, ref pos, out uint tag))
            {
                return false;
            }

            ulong v;
            switch (tag)
            {
                case 10:
                    if (!TryString(d, ref pos, intern: true, out string name))
                    {
                        return false;
                    }

                    t.Name = name;
                    break;
                case 16:
                    if (!TryVarint(d, ref pos, out v))
                    {
                        return false;
                    }

                    t.Collections.Add((Collection)(int)v);
                    break;
                case 18:
                {
                    if (!TryLength(d, ref pos, out int length))
                    {
                        return false;
                    }

                    ReadOnlySpan<byte> packed = d.Slice(pos, length);
                    for (int p = 0; p < packed.Length;)
                    {
                        if (!TryVarint(packed, ref p, out v))
                        {
                            return false;
                        }

                        t.Collections.Add((Collection)(int)v);
                    }

                    pos += length;
                    break;
                }

                case 26:
                    if (!TryString(d, ref pos, intern: true, out string custom))
                    {
                        return false;
                    }

                    t.CustomCollections.Add(custom);
                    break;
                case 32:
                    if (!TryVarint(d, ref pos, out v))
                    {
                        return false;
                    }

                    t.Dtype = (DType)(int)v;
                    break;
                case 40:
                    if (!TryVarint(d, ref pos, out v))
                    {
                        return false;
                    }

                    t.Shape.Add((long)v);
                    break;
                case 42:
                {
                    if (!TryLength(d, ref pos, out int length))
                    {
                        return false;
                    }

                    ReadOnlySpan<byte> packed = d.Slice(pos, length);
                    for (int p = 0; p < packed.Length;)
                    {
                        if (!TryVarint(packed, ref p, out v))
                        {
                            return false;
                        }

                        t.Shape.Add((long)v);
                    }

                    pos += length;
                    break;
                }

                case 50:
                {
                    if (!TryLength(d, ref pos, out int length))
                    {
                        return false;
                    }

                    if (t.Summary is null)
                    {
                        ResetSummary(slot.Summary);
                        t.Summary = slot.Summary;
                    }

                    if (!ReadSummary(d.Slice(pos, length), t.Summary, slot))
                    {
                        return false;
                    }

                    pos += length;
                    break;
                }

                case 58:
                {
                    if (!TryLength(d, ref pos, out int length))
                    {
                        return false;
                    }

                    if (t.Raw is null)
                    {
                        RawValues raw = slot.Raw;
                        raw.Float32Le = ByteString.Empty;
                        raw.TotalElements = 0;
                        raw.Truncated = false;
                        raw.SampleRows = 0;
                        raw.Trimmed = false;
                        t.Raw = raw;
                    }

                    if (!ReadRaw(d.Slice(pos, length), t.Raw))
                    {
                        return false;
                    }

                    pos += length;
                    break;
                }

                case 66:
                    if (!TryString(d, ref pos, intern: true, out string feature))
                    {
                        return false;
                    }

                    t.FeatureNames.Add(feature);
                    break;
                default:
                    if (!SkipField(d, ref pos, tag, depth: 1))
                    {
                        return false;
                    }

                    break;
            }
        }

        return true;
    }

    private static void ResetSummary(TensorSummary s)
    {
        s.Count = 0;
        s.Min = 0;
        s.Max = 0;
        s.Mean = 0;
        s.Variance = 0;
        s.L1 = 0;
        s.L2 = 0;
        s.AbsMean = 0;
        s.ZeroCount = 0;
        s.NanCount = 0;
        s.InfCount = 0;
        s.Histogram = null;
    }

    private bool ReadSummary(ReadOnlySpan<byte> d, TensorSummary s, TensorSlot slot)
    {
        int pos = 0;
        while (pos < d.Length)
        {
            if (!TryTag(d, ref pos, out uint tag))
            {
                return false;
            }

            ulong v;
            switch (tag)
            {
                case 8:
                    if (!TryVarint(d, ref pos, out v))
                    {
                        return false;
                    }

                    s.Count = v;
                    break;
                case 17:
                    if (!TryFixed64(d, ref pos, out v))
                    {
                        return false;
                    }

                    s.Min = BitConverter.UInt64BitsToDouble(v);
                    break;
                case 25:
                    if (!TryFixed64(d, ref pos, out v))
                    {
                        return false;
                    }

                    s.Max = BitConverter.UInt64BitsToDouble(v);
                    break;
                case 33:
                    if (!TryFixed64(d, ref pos, out v))
                    {
                        return false;
                    }

                    s.Mean = BitConverter.UInt64BitsToDouble(v);
                    break;
                case 41:
                    if (!TryFixed64(d, ref pos, out v))
                    {
                        return false;
                    }

                    s.Variance = BitConverter.UInt64BitsToDouble(v);
                    break;
                case 49:
                    if (!TryFixed64(d, ref pos, out v))
                    {
                        return false;
                    }

                    s.L1 = BitConverter.UInt64BitsToDouble(v);
                    break;
                case 57:
                    if (!TryFixed64(d, ref pos, out v))
                    {
                        return false;
                    }

                    s.L2 = BitConverter.UInt64BitsToDouble(v);
                    break;
                case 65:
                    if (!TryFixed64(d, ref pos, out v))
                    {
                        return false;
                    }

                    s.AbsMean = BitConverter.UInt64BitsToDouble(v);
                    break;
                case 72:
                    if (!TryVarint(d, ref pos, out v))
                    {
                        return false;
                    }

                    s.ZeroCount = v;
                    break;
                case 80:
                    if (!TryVarint(d, ref pos, out v))
                    {
                        return false;
                    }

                    s.NanCount = v;
                    break;
                case 88:
                    if (!TryVarint(d, ref pos, out v))
                    {
                        return false;
                    }

                    s.InfCount = v;
                    break;
                case 98:
                {
                    if (!TryLength(d, ref pos, out int length))
                    {
                        return false;
                    }

                    if (s.Histogram is null)
                    {
                        Histogram h = slot.Histogram;
                        h.Edges.Clear();
                        h.Counts.Clear();
                        h.Layout = HistogramLayout.Explicit;
                        h.FirstBucket = 0;
                        h.SampledCount = 0;
                        s.Histogram = h;
                    }

                    if (!ReadHistogram(d.Slice(pos, length), s.Histogram))
                    {
                        return false;
                    }

                    pos += length;
                    break;
                }

                default:
                    if (!SkipField(d, ref pos, tag, depth: 2))
                    {
                        return false;
                    }

                    break;
            }
        }

        return true;
    }

    private bool ReadHistogram(ReadOnlySpan<byte> d, Histogram h)
    {
        int pos = 0;
        while (pos < d.Length)
        {
            if (!TryTag(d, ref pos, out uint tag))
            {
                return false;
            }

            ulong v;
            switch (tag)
            {
                case 9:
                    if (!TryFixed64(d, ref pos, out v))
                    {
                        return false;
                    }

                    h.Edges.Add(BitConverter.UInt64BitsToDouble(v));
                    break;
                case 10:
                {
                    if (!TryLength(d, ref pos, out int length))
                    {
                        return false;
                    }

                    if (length % sizeof(double) != 0)
                    {
                        return Fail(pos, "packed histogram.edges is not a whole number of doubles");
                    }

                    ReadOnlySpan<byte> packed = d.Slice(pos, length);
                    for (int p = 0; p < packed.Length; p += sizeof(double))
                    {
                        h.Edges.Add(BinaryPrimitives.ReadDoubleLittleEndian(packed[p..]));
                    }

                    pos += length;
                    break;
                }

                case 16:
                    if (!TryVarint(d, ref pos, out v))
                    {
                        return false;
                    }

                    h.Counts.Add(v);
                    break;
                case 18:
                {
                    if (!TryLength(d, ref pos, out int length))
                    {
                        return false;
                    }

                    if (!AddPacked(d.Slice(pos, length), h.Counts))
                    {
                        return Fail(pos, "packed histogram.counts ends inside a varint");
                    }

                    pos += length;
                    break;
                }

                case 24:
                    if (!TryVarint(d, ref pos, out v))
                    {
                        return false;
                    }

                    h.Layout = (HistogramLayout)(int)v;
                    break;
                case 32:
                    if (!TryVarint(d, ref pos, out v))
                    {
                        return false;
                    }

                    h.FirstBucket = (uint)v;
                    break;
                case 40:
                    if (!TryVarint(d, ref pos, out v))
                    {
                        return false;
                    }

                    h.SampledCount = v;
                    break;
                default:
                    if (!SkipField(d, ref pos, tag, depth: 3))
                    {
                        return false;
                    }

                    break;
            }
        }

        return true;
    }

    private bool ReadRaw(ReadOnlySpan<byte> d, RawValues raw)
    {
        int pos = 0;
        while (pos < d.Length)
        {
            if (!TryTag(d, ref pos, out uint tag))
            {
                return false;
            }

            ulong v;
            switch (tag)
            {
                case 10:
                {
                    if (!TryLength(d, ref pos, out int length))
                    {
                        return false;
                    }

                    raw.Float32Le = length == 0 ? ByteString.Empty : ByteString.CopyFrom(d.Slice(pos, length));
                    pos += length;
                    break;
                }

                case 16:
                    if (!TryVarint(d, ref pos, out v))
                    {
                        return false;
                    }

                    raw.TotalElements = v;
                    break;
                case 24:
                    if (!TryVarint(d, ref pos, out v))
                    {
                        return false;
                    }

                    raw.Truncated = v != 0;
                    break;
                case 32:
                    if (!TryVarint(d, ref pos, out v))
                    {
                        return false;
                    }

                    raw.SampleRows = (uint)v;
                    break;
                case 40:
                    if (!TryVarint(d, ref pos, out v))
                    {
                        return false;
                    }

                    raw.Trimmed = v != 0;
                    break;
                default:
                    if (!SkipField(d, ref pos, tag, depth: 2))
                    {
                        return false;
                    }

                    break;
            }
        }

        return true;
    }

    private ThinnedCollection RentThinned(int index)
    {
        if (index == _thinned.Count)
        {
            _thinned.Add(new ThinnedCollection());
        }

        ThinnedCollection c = _thinned[index];
        c.Collection = Collection.Unspecified;
        c.Stride = 0;
        c.SkippedTensors = 0;
        return c;
    }

    private bool ReadThinned(ReadOnlySpan<byte> d, ThinnedCollection c)
    {
        int pos = 0;
        while (pos < d.Length)
        {
            if (!TryTag(d, ref pos, out uint tag))
            {
                return false;
            }

            ulong v;
            switch (tag)
            {
                case 8:
                    if (!TryVarint(d, ref pos, out v))
                    {
                        return false;
                    }

                    c.Collection = (Collection)(int)v;
                    break;
                case 16:
                    if (!TryVarint(d, ref pos, out v))
                    {
                        return false;
                    }

                    c.Stride = (uint)v;
                    break;
                case 24:
                    if (!TryVarint(d, ref pos, out v))
                    {
                        return false;
                    }

                    c.SkippedTensors = (uint)v;
                    break;
                default:
                    if (!SkipField(d, ref pos, tag, depth: 1))
                    {
                        return false;
                    }

                    break;
            }
        }

        return true;
    }

    private ArtifactEvent RentArtifact(int index)
    {
        if (index == _artifacts.Count)
        {
            _artifacts.Add(new ArtifactEvent());
        }

        ArtifactEvent a = _artifacts[index];
        a.Path = "";
        a.Hash = "";
        a.Step = 0;
        a.Direction = ArtifactDirection.Unspecified;
        a.Type = "";
        a.TimeUnixNanos = 0;
        return a;
    }

    private bool ReadArtifact(ReadOnlySpan<byte> d, ArtifactEvent a)
    {
        int pos = 0;
        while (pos < d.Length)
        {
            if (!TryTag(d, ref pos, out uint tag))
            {
                return false;
            }

            ulong v;
            string s;
            switch (tag)
            {
                case 10:
                    if (!TryString(d, ref pos, intern: true, out s))
                    {
                        return false;
                    }

                    a.Path = s;
                    break;
                case 18:
                    if (!TryString(d, ref pos, intern: true, out s))
                    {
                        return false;
                    }

                    a.Hash = s;
                    break;
                case 24:
                    if (!TryVarint(d, ref pos, out v))
                    {
                        return false;
                    }

                    a.Step = (long)v;
                    break;
                case 32:
                    if (!TryVarint(d, ref pos, out v))
                    {
                        return false;
                    }

                    a.Direction = (ArtifactDirection)(int)v;
                    break;
                case 42:
                    if (!TryString(d, ref pos, intern: true, out s))
                    {
                        return false;
                    }

                    a.Type = s;
                    break;
                case 48:
                    if (!TryVarint(d, ref pos, out v))
                    {
                        return false;
                    }

                    a.TimeUnixNanos = (long)v;
                    break;
                default:
                    if (!SkipField(d, ref pos, tag, depth: 1))
                    {
                        return false;
                    }

                    break;
            }
        }

        return true;
    }

    private bool ReadRunEnd(ReadOnlySpan<byte> d, RunEnd end)
    {
        int pos = 0;
        while (pos < d.Length)
        {
            if (!TryTag(d, ref pos, out uint tag))
            {
                return false;
            }

            if (tag == 8)
            {
                if (!TryVarint(d, ref pos, out ulong v))
                {
                    return false;
                }

                end.Reason = (RunEndReason)(int)v;
            }
            else if (!SkipField(d, ref pos, tag, depth: 1))
            {
                return false;
            }
        }

        return true;
    }

    // ---- wire format ----

    /// <summary>Packed varints (the histogram's counts, the hot loop: dozens a tensor, mostly 2-3 bytes) into
    /// <paramref name="into"/>; false when the last one does not end inside <paramref name="packed"/>.</summary>
    private static bool AddPacked(ReadOnlySpan<byte> packed, Google.Protobuf.Collections.RepeatedField<ulong> into)
    {
        int p = 0;
        while (p < packed.Length)
        {
            ulong b = packed[p];
            if (b < 0x80)
            {
                into.Add(b);
                p++;
                continue;
            }

            ulong value = b & 0x7F;
            int shift = 7;
            int q = p + 1;
            while (true)
            {
                if (q >= packed.Length || shift >= 70)
                {
                    return false;
                }

                b = packed[q++];
                value |= (b & 0x7F) << shift;
                if (b < 0x80)
                {
                    break;
                }

                shift += 7;
            }

            into.Add(value);
            p = q;
        }

        return true;
    }

    /// <summary>A tag: a varint whose upper 32 bits are dropped (as Google.Protobuf does), field number not 0, not an
    /// end-group (a message never holds one outside a group).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool TryTag(ReadOnlySpan<byte> d, ref int pos, out uint tag)
    {
        int p = pos;
        if ((uint)p < (uint)d.Length && d[p] is >= 8 and < 0x80 && (d[p] & 7) != 4)
        {
            tag = d[p];
            pos = p + 1;
            return true;
        }

        return TryTagSlow(d, ref pos, out tag);
    }

    private bool TryTagSlow(ReadOnlySpan<byte> d, ref int pos, out uint tag)
    {
        int at = pos;
        if (!TryVarint(d, ref pos, out ulong v))
        {
            tag = 0;
            return false;
        }

        tag = (uint)v;
        if (tag >> 3 == 0)
        {
            return Fail(at, "invalid tag (field number 0)");
        }

        if ((tag & 7) == 4)
        {
            return Fail(at, $"end-group tag of field {tag >> 3} without a start-group");
        }

        return true;
    }

    // One-byte varints (tags, small counts, enums) are most of them: read inline, the rest out of line.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool TryVarint(ReadOnlySpan<byte> d, ref int pos, out ulong value)
    {
        int p = pos;
        if ((uint)p < (uint)d.Length && d[p] < 0x80)
        {
            value = d[p];
            pos = p + 1;
            return true;
        }

        return TryVarintSlow(d, ref pos, out value);
    }

    private bool TryVarintSlow(ReadOnlySpan<byte> d, ref int pos, out ulong value)
    {
        ulong result = 0;
        int p = pos;
        for (int shift = 0; shift < 70; shift += 7)
        {
            if ((uint)p >= (uint)d.Length)
            {
                value = 0;
                return Fail(p, "the input ended unexpectedly in the middle of a varint");
            }

            byte b = d[p++];
            result |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                pos = p;
                value = result;
                return true;
            }
        }

        value = 0;
        return Fail(pos, "varint longer than 10 bytes");
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool TryFixed64(ReadOnlySpan<byte> d, ref int pos, out ulong value)
    {
        if (d.Length - pos < sizeof(ulong))
        {
            value = 0;
            return Fail(pos, "the input ended unexpectedly in the middle of a fixed64 field");
        }

        value = BinaryPrimitives.ReadUInt64LittleEndian(d[pos..]);
        pos += sizeof(ulong);
        return true;
    }

    /// <summary>A length prefix: a varint taken as a 32-bit int like Google.Protobuf, so above 2^31 it is negative.</summary>
    private bool TryLength(ReadOnlySpan<byte> d, ref int pos, out int length)
    {
        int at = pos;
        if (!TryVarint(d, ref pos, out ulong v))
        {
            length = 0;
            return false;
        }

        length = (int)(uint)v;
        if (length < 0)
        {
            return Fail(at, $"negative length {length}");
        }

        if (length > d.Length - pos)
        {
            return Fail(at, $"the input ended unexpectedly in the middle of a field: length {length}, {d.Length - pos} bytes left");
        }

        return true;
    }

    private bool TryString(ReadOnlySpan<byte> d, ref int pos, bool intern, out string value)
    {
        if (!TryLength(d, ref pos, out int length))
        {
            value = "";
            return false;
        }

        ReadOnlySpan<byte> utf8 = d.Slice(pos, length);
        if (length == 0)
        {
            value = "";
            return true;
        }

        if (intern && length <= InternMaxBytes)
        {
            value = Intern(utf8)!;
            if (value is not null)
            {
                pos += length;
                return true;
            }
        }
        else if (Utf8.IsValid(utf8))
        {
            value = Encoding.UTF8.GetString(utf8);
            pos += length;
            return true;
        }

        value = "";
        return Fail(pos, "string is invalid UTF-8");
    }

    /// <summary>The string of <paramref name="utf8"/> from the cache, else decoded and cached; null when the bytes are
    /// not valid UTF-8 (Google.Protobuf refuses such a string).</summary>
    private string? Intern(ReadOnlySpan<byte> utf8)
    {
        int set = (Hash(utf8) & _internSetMask) * InternWays;
        Span<InternEntry> ways = _intern.AsSpan(set, InternWays);
        for (int w = 0; w < ways.Length; w++)
        {
            if (ways[w].Key is { } key && utf8.SequenceEqual(key))
            {
                return ways[w].Value;
            }
        }

        // A miss: fill an empty way, else evict one in turn.
        if (!Utf8.IsValid(utf8))
        {
            return null;
        }

        string value = Encoding.UTF8.GetString(utf8);
        int victim = -1;
        for (int w = 0; w < ways.Length && victim < 0; w++)
        {
            victim = ways[w].Key is null ? w : -1;
        }

        ways[victim < 0 ? _internVictim++ & (InternWays - 1) : victim] = new InternEntry(utf8.ToArray(), value);
        return value;
    }

    /// <summary>
    /// A hash of the bytes eight at a time (a multiply-rotate mix): several times cheaper than
    /// <see cref="HashCode.AddBytes"/> on names of 20-60 bytes. It is not seeded: crafted names that share a set only
    /// evict each other (four ways, a bounded cost per name), they cannot make a lookup slower.
    /// </summary>
    private static int Hash(ReadOnlySpan<byte> bytes)
    {
        const ulong Mix = 0x9E3779B97F4A7C15;
        ulong h = (ulong)bytes.Length * Mix;
        int i = 0;
        for (; i + sizeof(ulong) <= bytes.Length; i += sizeof(ulong))
        {
            h = BitOperations.RotateLeft((h ^ BinaryPrimitives.ReadUInt64LittleEndian(bytes[i..])) * Mix, 29);
        }

        ulong tail = 0;
        for (int shift = 0; i < bytes.Length; i++, shift += 8)
        {
            tail |= (ulong)bytes[i] << shift;
        }

        h = (h ^ tail) * Mix;
        return (int)(h >> 32) ^ (int)h;
    }

    /// <summary>Skips an unknown field (or a known number with another wire type) as Google.Protobuf does.</summary>
    private bool SkipField(ReadOnlySpan<byte> d, ref int pos, uint tag, int depth)
    {
        switch (tag & 7)
        {
            case 0:
                return TryVarint(d, ref pos, out _);
            case 1:
                return TryFixed64(d, ref pos, out _);
            case 2:
                if (!TryLength(d, ref pos, out int length))
                {
                    return false;
                }

                pos += length;
                return true;
            case 3:
                return SkipGroup(d, ref pos, tag >> 3, depth);
            case 5:
                if (d.Length - pos < sizeof(uint))
                {
                    return Fail(pos, "the input ended unexpectedly in the middle of a fixed32 field");
                }

                pos += sizeof(uint);
                return true;
            default:
                return Fail(pos, $"invalid wire type {tag & 7} for field {tag >> 3}");
        }
    }

    /// <summary>Skips a group to its matching end-group tag; nested groups count against the recursion limit with the
    /// messages around them, as in Google.Protobuf.</summary>
    private bool SkipGroup(ReadOnlySpan<byte> d, ref int pos, uint field, int depth)
    {
        Span<uint> open = stackalloc uint[RecursionLimit];
        int count = 0;
        while (true)
        {
            if (depth + count >= RecursionLimit)
            {
                return Fail(pos, "groups nested deeper than the recursion limit of 100");
            }

            open[count++] = field;
            while (true)
            {
                if (pos >= d.Length)
                {
                    return Fail(pos, $"group of field {open[count - 1]} never ended");
                }

                int at = pos;
                if (!TryVarint(d, ref pos, out ulong v))
                {
                    return false;
                }

                uint tag = (uint)v;
                if (tag >> 3 == 0)
                {
                    return Fail(at, "invalid tag (field number 0)");
                }

                uint wireType = tag & 7;
                if (wireType == 3)
                {
                    field = tag >> 3;
                    break; // open a nested group
                }

                if (wireType == 4)
                {
                    if (tag >> 3 != open[count - 1])
                    {
                        return Fail(at, $"end-group of field {tag >> 3} inside the group of field {open[count - 1]}");
                    }

                    if (--count == 0)
                    {
                        return true;
                    }

                    continue;
                }

                if (!SkipField(d, ref pos, tag, depth))
                {
                    return false;
                }
            }
        }
    }

    private bool Fail(int position, string problem)
    {
        _problem ??= $"{problem} (at byte {position} of its message)";
        return false;
    }

    /// <summary>A tensor and the sub-messages the reader owns for it, kept when the tensor's record has none.</summary>
    private sealed class TensorSlot
    {
        public TensorRecord Tensor { get; } = new();

        public TensorSummary Summary { get; } = new();

        public Histogram Histogram { get; } = new();

        public RawValues Raw { get; } = new();
    }

    private readonly record struct InternEntry(byte[]? Key, string Value);
}
