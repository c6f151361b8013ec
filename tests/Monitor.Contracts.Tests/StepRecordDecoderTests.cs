using Google.Protobuf;
using Monitor.Contracts.V1;
using Monitor.Testing;

namespace Monitor.Contracts.Tests;

public sealed class StepRecordDecoderTests
{
    [Fact]
    public void TryDecode_ReturnsEqualRecord_WhenPayloadIsValid()
    {
        StepRecord original = ValidRecords.Full();

        bool decoded = StepRecordDecoder.TryDecode(original.ToByteArray(), out StepRecord? record, out DecodeError error);

        Assert.True(decoded, error.ToString());
        Assert.NotNull(record);
        Assert.Equal(default, error);
        Assert.Equal(original, record);
        Assert.Equal("fc1.weight.grad", record.Tensors[1].Name);
        Assert.Equal(Log2Histogram.BucketCount, record.Tensors[0].Summary.Histogram.Counts.Count);
    }

    [Fact]
    public void TryDecode_Accepts_ALog2HistogramThatSendsOnlyItsNonEmptySpan()
    {
        StepRecord original = ValidRecords.Full();
        Histogram histogram = original.Tensors[0].Summary.Histogram;
        histogram.Counts.Clear();
        histogram.Counts.Add([5, 0, 7]);
        histogram.FirstBucket = 40;

        Assert.True(StepRecordDecoder.TryDecode(original.ToByteArray(), out StepRecord? record, out DecodeError error), error.ToString());
        Histogram decoded = record.Tensors[0].Summary.Histogram;
        ulong[] all = HistogramBuckets.ToArray(decoded);
        Assert.Equal(Log2Histogram.BucketCount, all.Length);
        Assert.Equal(12UL, all.Aggregate(0UL, (a, b) => a + b));
        Assert.Equal(5UL, HistogramBuckets.Get(decoded, 40));
        Assert.Equal(7UL, HistogramBuckets.Get(decoded, 42));
        Assert.Equal(0UL, HistogramBuckets.Get(decoded, 39));
        Assert.Equal(0UL, HistogramBuckets.Get(decoded, 95));
    }

    [Fact]
    public void TryDecode_Succeeds_WhenRecordHasOnlyRequiredFields()
    {
        var minimal = new StepRecord { SchemaVersion = 1, RunId = "r", WorldSize = 1 };

        Assert.True(StepRecordDecoder.TryDecode(minimal.ToByteArray(), out StepRecord? record, out DecodeError error), error.ToString());
        Assert.Equal(minimal, record);
    }

    [Theory]
    [InlineData("rank is world_size - 1")]
    [InlineData("step 0")]
    [InlineData("nan + inf equal count")]
    [InlineData("tensor without summary")]
    [InlineData("summary without histogram")]
    [InlineData("explicit histogram without edges and counts")]
    [InlineData("explicit histogram with one bucket")]
    [InlineData("run_id of maximal length")]
    public void Validate_ReturnsNull_WhenRecordIsAtTheLimit(string change)
    {
        StepRecord record = ValidRecords.Full();
        ApplyValidChange(record, change);

        Assert.Null(StepRecordDecoder.Validate(record, out _));
        Assert.True(StepRecordDecoder.TryDecode(record.ToByteArray(), out _, out DecodeError error), error.ToString());
    }

    [Theory]
    [InlineData("schema_version missing", DecodeErrorKind.Invalid, "schema_version is missing")]
    [InlineData("schema_version newer", DecodeErrorKind.UnsupportedSchemaVersion, "schema_version 2 is newer than 1")]
    [InlineData("schema_version much newer", DecodeErrorKind.UnsupportedSchemaVersion, "schema_version 4294967295")]
    [InlineData("run_id empty", DecodeErrorKind.Invalid, "run_id: run id is empty")]
    [InlineData("run_id with slash", DecodeErrorKind.Invalid, "run_id: run id 'a/b' contains '/'")]
    [InlineData("run_id too long", DecodeErrorKind.Invalid, "run_id: run id is 129 characters long")]
    [InlineData("world_size 0", DecodeErrorKind.Invalid, "world_size is 0")]
    [InlineData("rank equal to world_size", DecodeErrorKind.Invalid, "rank 2 is outside world_size 2")]
    [InlineData("rank above world_size", DecodeErrorKind.Invalid, "rank 9 is outside world_size 2")]
    [InlineData("step negative", DecodeErrorKind.Invalid, "step -1 is negative")]
    [InlineData("tensor name empty", DecodeErrorKind.Invalid, "tensors[1].name is empty")]
    [InlineData("nan_count above count", DecodeErrorKind.Invalid, "tensors[0] ('fc1.weight').summary: nan_count 13 + inf_count 0 exceed count 12")]
    [InlineData("sampled_count above the non-NaN elements", DecodeErrorKind.Invalid, "tensors[0] ('fc1.weight').summary: histogram.sampled_count 12 exceeds the 11 elements that are not NaN")]
    [InlineData("nan_count + inf_count above count", DecodeErrorKind.Invalid, "tensors[0] ('fc1.weight').summary: nan_count 6 + inf_count 7 exceed count 12")]
    [InlineData("nan_count + inf_count overflow", DecodeErrorKind.Invalid, "nan_count 18446744073709551615 + inf_count 1 exceed count 18446744073709551615")]
    [InlineData("log2 histogram with 97 buckets", DecodeErrorKind.Invalid, "tensors[0] ('fc1.weight').summary: histogram with layout LOG2_MAGNITUDE has buckets 0 to 96; the layout has 96")]
    [InlineData("log2 histogram span past the last bucket", DecodeErrorKind.Invalid, "has buckets 2 to 96")]
    [InlineData("explicit histogram not starting at bucket 0", DecodeErrorKind.Invalid, "explicit histogram must start at bucket 0")]
    [InlineData("log2 histogram with explicit edges", DecodeErrorKind.Invalid, "histogram with layout LOG2_MAGNITUDE must not carry explicit edges")]
    [InlineData("explicit histogram with edges = counts", DecodeErrorKind.Invalid, "tensors[1] ('fc1.weight.grad').summary: histogram has 2 edges for 2 buckets")]
    [InlineData("explicit histogram with edges = counts + 2", DecodeErrorKind.Invalid, "histogram has 4 edges for 2 buckets")]
    [InlineData("explicit histogram with counts but no edges", DecodeErrorKind.Invalid, "histogram has 0 edges for 2 buckets")]
    [InlineData("explicit histogram with descending edges", DecodeErrorKind.Invalid, "histogram edges are not strictly ascending at index 2")]
    [InlineData("explicit histogram with repeated edge", DecodeErrorKind.Invalid, "histogram edges are not strictly ascending at index 1")]
    [InlineData("explicit histogram with NaN edge", DecodeErrorKind.Invalid, "histogram edges are not strictly ascending at index 1")]
    [InlineData("unknown histogram layout", DecodeErrorKind.Invalid, "tensors[0] ('fc1.weight').summary: histogram layout 5 is unknown to this reader")]
    public void TryDecode_ReturnsErrorNamingTheField_WhenContractIsBroken(string change, DecodeErrorKind expectedKind, string expectedReason)
    {
        StepRecord record = ValidRecords.Full();
        ApplyInvalidChange(record, change);

        bool decoded = StepRecordDecoder.TryDecode(record.ToByteArray(), out StepRecord? decodedRecord, out DecodeError error);

        Assert.False(decoded);
        Assert.Null(decodedRecord);
        Assert.Equal(expectedKind, error.Kind);
        Assert.Contains(expectedReason, error.Reason, StringComparison.Ordinal);
        Assert.Equal($"{expectedKind}: {error.Reason}", error.ToString());

        Assert.Equal(error.Reason, StepRecordDecoder.Validate(record, out DecodeErrorKind validateKind));
        Assert.Equal(expectedKind, validateKind);
    }

    [Fact]
    public void Validate_Throws_WhenRecordIsNull()
    {
        Assert.Throws<ArgumentNullException>(() => StepRecordDecoder.Validate(null!, out _));
    }

    [Fact]
    public void TryDecode_ReturnsTooLarge_WhenPayloadExceedsMaxPayloadBytes()
    {
        // The only large allocation of the test run: one array, viewed through spans of two lengths.
        byte[] large = new byte[StepRecordDecoder.MaxPayloadBytes + 1];

        Assert.False(StepRecordDecoder.TryDecode(large, out StepRecord? record, out DecodeError error));
        Assert.Null(record);
        Assert.Equal(DecodeErrorKind.TooLarge, error.Kind);
        Assert.Contains($"payload is {StepRecordDecoder.MaxPayloadBytes + 1} bytes", error.Reason, StringComparison.Ordinal);
        Assert.Contains($"at most {StepRecordDecoder.MaxPayloadBytes}", error.Reason, StringComparison.Ordinal);

        // Exactly the limit is parsed (and is malformed: a zero tag), not refused for size.
        Assert.False(StepRecordDecoder.TryDecode(large.AsSpan(0, StepRecordDecoder.MaxPayloadBytes), out _, out DecodeError atLimit));
        Assert.Equal(DecodeErrorKind.Malformed, atLimit.Kind);
    }

    [Theory]
    [InlineData("08", "tag of schema_version without its varint")]
    [InlineData("0880", "truncated varint")]
    [InlineData("08FFFFFFFFFFFFFFFFFFFF01", "varint longer than 10 bytes")]
    [InlineData("0F", "field 1 with invalid wire type 7")]
    [InlineData("0E", "field 1 with invalid wire type 6")]
    [InlineData("0C", "end-group (wire type 4) without a start")]
    [InlineData("0B", "start-group (wire type 3) never ended")]
    [InlineData("00", "tag 0")]
    [InlineData("120561", "run_id declares 5 bytes, has 1")]
    [InlineData("12FFFFFFFF0F", "run_id declares 4 GiB")]
    [InlineData("520A0A05", "tensors[0] truncated inside its name")]
    [InlineData("5203320110", "tensors[0].summary declares more bytes than the tensor holds")]
    [InlineData("1D0000", "fixed32 field truncated")]
    [InlineData("19000000", "fixed64 field truncated")]
    public void TryDecode_ReturnsMalformed_WhenBytesAreNotProtobuf(string hex, string what)
    {
        bool decoded = StepRecordDecoder.TryDecode(Convert.FromHexString(hex), out StepRecord? record, out DecodeError error);

        Assert.False(decoded, what);
        Assert.Null(record);
        Assert.Equal(DecodeErrorKind.Malformed, error.Kind);
        Assert.False(string.IsNullOrWhiteSpace(error.Reason), what);
    }

    [Fact]
    public void TryDecode_ReturnsMalformed_WhenValidPayloadIsCutInsideATensor()
    {
        // Fields are written in number order: the scalars 1-9, the tensors (10), then dropped_before (11, 2 bytes).
        StepRecord full = ValidRecords.Full();
        byte[] valid = full.ToByteArray();
        StepRecord header = full.Clone();
        header.Tensors.Clear();
        header.DroppedBefore = 0;
        StepRecord firstTensorOnly = header.Clone();
        firstTensorOnly.Tensors.Add(full.Tensors[0]);
        int tensorsStart = header.CalculateSize();
        int betweenTensors = firstTensorOnly.CalculateSize();
        int tensorsEnd = valid.Length - 2;

        for (int length = tensorsStart + 1; length < tensorsEnd; length++)
        {
            if (length == betweenTensors)
            {
                continue; // a whole number of tensors: a shorter but well-formed record
            }

            bool decoded = StepRecordDecoder.TryDecode(valid.AsSpan(0, length), out _, out DecodeError error);

            Assert.False(decoded, $"cut at {length}");
            Assert.True(error.Kind == DecodeErrorKind.Malformed, $"cut at {length}: {error}");
        }
    }

    [Fact]
    public void TryDecode_ReturnsMalformed_WhenLengthDelimitedFieldIsTruncated()
    {
        var record = new StepRecord { SchemaVersion = 1, RunId = "run-with-a-long-name", WorldSize = 1 };
        byte[] bytes = record.ToByteArray();

        // Drop the last 3 bytes of the run id: its length prefix now promises more than there is.
        bool decoded = StepRecordDecoder.TryDecode(bytes.AsSpan(0, bytes.Length - 3 - 2), out _, out DecodeError error);

        Assert.False(decoded);
        Assert.Equal(DecodeErrorKind.Malformed, error.Kind);
        Assert.Contains("ended unexpectedly", error.Reason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("A0062A", "field 100, varint")]
    [InlineData("FA0103616263", "field 31, length-delimited")]
    [InlineData("FDFF0701020304", "field 16383, fixed32")]
    [InlineData("F1FFFFFF0F0102030405060708", "field 536870910, fixed64")]
    [InlineData("A306A80601A406", "field 100, group holding field 101")]
    [InlineData("A0062AA0062B", "field 100 twice")]
    public void TryDecode_IgnoresUnknownFields_WhenAppendedToValidPayload(string unknownHex, string what)
    {
        StepRecord original = ValidRecords.Full();
        byte[] payload = [.. original.ToByteArray(), .. Convert.FromHexString(unknownHex)];

        bool decoded = StepRecordDecoder.TryDecode(payload, out StepRecord? record, out DecodeError error);

        Assert.True(decoded, $"{what}: {error}");
        Assert.NotNull(record);
        Assert.Equal(original.RunId, record.RunId);
        Assert.Equal(original.Step, record.Step);
        Assert.Equal(original.Tensors, record.Tensors);
    }

    [Fact]
    public void TryDecode_IgnoresKnownFieldNumber_WhenItArrivesWithAnotherValidWireType()
    {
        // Protobuf's rule (all official runtimes): a field whose wire type does not match the schema is kept as an
        // unknown field, not rejected. Here run_id (field 2, a string) arrives again as a varint after the real one.
        StepRecord original = ValidRecords.Full();
        byte[] payload = [.. original.ToByteArray(), 0x10, 0x05];

        Assert.True(StepRecordDecoder.TryDecode(payload, out StepRecord? record, out DecodeError error), error.ToString());
        Assert.Equal("run-1", record.RunId);
    }

    [Fact]
    public void TryDecode_ReturnsInvalid_WhenOnlyFieldHasWrongWireType()
    {
        // schema_version (field 1, varint) sent length-delimited: ignored as unknown, so the version is missing.
        Assert.False(StepRecordDecoder.TryDecode(Convert.FromHexString("0A0100"), out _, out DecodeError error));
        Assert.Equal(DecodeErrorKind.Invalid, error.Kind);
        Assert.Contains("schema_version", error.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void TryDecode_ReturnsInvalid_WhenPayloadIsEmpty()
    {
        Assert.False(StepRecordDecoder.TryDecode(ReadOnlySpan<byte>.Empty, out StepRecord? record, out DecodeError error));
        Assert.Null(record);
        Assert.Equal(DecodeErrorKind.Invalid, error.Kind);
        Assert.Contains("schema_version", error.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Fuzz_TryDecode_NeverThrows_WhenBytesAreRandom()
    {
        Random random = Fuzz.NewRandom(20_240_601);
        var kinds = new Dictionary<DecodeErrorKind, int>();
        int inputs = Fuzz.Inputs(20_000);
        Fuzz.Run("decoder, random bytes", inputs, i =>
        {
            byte[] payload = new byte[random.Next(0, 200)];
            random.NextBytes(payload);
            return AssertExactlyOneOutcome(payload, kinds, $"random #{i}: {Convert.ToHexString(payload)}") ? "decoded" : "refused";
        }, TimeSpan.FromSeconds(1));

        Assert.True(kinds.GetValueOrDefault(DecodeErrorKind.Malformed) > inputs / 2, "most random bytes are not protobuf");
    }

    [Fact]
    public void Fuzz_TryDecode_NeverThrows_WhenValidPayloadIsMutatedOrTruncated()
    {
        Random random = Fuzz.NewRandom(7_031_977);
        byte[] valid = ValidRecords.FullBytes();
        var kinds = new Dictionary<DecodeErrorKind, int>();
        int decodedCount = Fuzz.Run("decoder, mutated records", Fuzz.Inputs(20_000), i =>
        {
            byte[] payload = Mutate(valid, random);
            return AssertExactlyOneOutcome(payload, kinds, $"mutation #{i}: {Convert.ToHexString(payload)}") ? "decoded" : "refused";
        }, TimeSpan.FromSeconds(1)).GetValueOrDefault("decoded");

        // The mutations reach both sides: some leave a usable record, many break the bytes or the contract.
        Assert.True(decodedCount > 0);
        Assert.True(kinds.GetValueOrDefault(DecodeErrorKind.Malformed) > 0);
        Assert.True(kinds.GetValueOrDefault(DecodeErrorKind.Invalid) > 0);
    }

    private static bool AssertExactlyOneOutcome(byte[] payload, Dictionary<DecodeErrorKind, int> kinds, string what)
    {
        bool decoded;
        StepRecord? record;
        DecodeError error;
        try
        {
            decoded = StepRecordDecoder.TryDecode(payload, out record, out error);
        }
        catch (Exception ex)
        {
            Assert.Fail($"TryDecode threw {ex.GetType().Name} for {what}: {ex.Message}");
            throw;
        }

        if (decoded)
        {
            Assert.NotNull(record);
            Assert.Equal(default, error);
            Assert.Null(StepRecordDecoder.Validate(record, out _));
        }
        else
        {
            Assert.Null(record);
            Assert.True(Enum.IsDefined(error.Kind), what);
            Assert.False(string.IsNullOrWhiteSpace(error.Reason), what);
            kinds[error.Kind] = kinds.GetValueOrDefault(error.Kind) + 1;
        }

        return decoded;
    }

    private static byte[] Mutate(byte[] valid, Random random)
    {
        var bytes = new List<byte>(valid);
        int edits = random.Next(1, 4);
        for (int e = 0; e < edits && bytes.Count > 0; e++)
        {
            int at = random.Next(bytes.Count);
            switch (random.Next(6))
            {
                case 0: // flip one bit
                    bytes[at] ^= (byte)(1 << random.Next(8));
                    break;
                case 1: // overwrite one byte
                    bytes[at] = (byte)random.Next(256);
                    break;
                case 2: // truncate
                    bytes.RemoveRange(at, bytes.Count - at);
                    break;
                case 3: // delete a short run
                    bytes.RemoveRange(at, Math.Min(random.Next(1, 8), bytes.Count - at));
                    break;
                case 4: // insert random bytes
                    byte[] insert = new byte[random.Next(1, 8)];
                    random.NextBytes(insert);
                    bytes.InsertRange(at, insert);
                    break;
                default: // duplicate a chunk at the end (repeated fields, last-one-wins scalars)
                    int length = Math.Min(random.Next(1, 32), bytes.Count - at);
                    bytes.AddRange(bytes.GetRange(at, length));
                    break;
            }
        }

        return [.. bytes];
    }

    private static void ApplyValidChange(StepRecord record, string change)
    {
        TensorSummary summary = record.Tensors[0].Summary;
        switch (change)
        {
            case "rank is world_size - 1":
                record.Rank = record.WorldSize - 1;
                break;
            case "step 0":
                record.Step = 0;
                break;
            case "nan + inf equal count":
                summary.Count = 5;
                summary.NanCount = 2;
                summary.InfCount = 3;
                break;
            case "tensor without summary":
                record.Tensors[0].Summary = null;
                break;
            case "summary without histogram":
                summary.Histogram = null;
                break;
            case "explicit histogram without edges and counts":
                summary.Histogram = new Histogram { Layout = HistogramLayout.Explicit };
                break;
            case "explicit histogram with one bucket":
                summary.Histogram = new Histogram { Layout = HistogramLayout.Explicit, Edges = { double.NegativeInfinity, double.PositiveInfinity }, Counts = { 12 } };
                break;
            case "run_id of maximal length":
                record.RunId = new string('r', RunId.MaxLength);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(change), change, "unknown case");
        }
    }

    private static void ApplyInvalidChange(StepRecord record, string change)
    {
        TensorSummary weight = record.Tensors[0].Summary;
        Histogram explicitHistogram = record.Tensors[1].Summary.Histogram;
        switch (change)
        {
            case "schema_version missing":
                record.SchemaVersion = 0;
                break;
            case "schema_version newer":
                record.SchemaVersion = StepRecordDecoder.CurrentSchemaVersion + 1;
                break;
            case "schema_version much newer":
                record.SchemaVersion = uint.MaxValue;
                break;
            case "run_id empty":
                record.RunId = "";
                break;
            case "run_id with slash":
                record.RunId = "a/b";
                break;
            case "run_id too long":
                record.RunId = new string('r', RunId.MaxLength + 1);
                break;
            case "world_size 0":
                record.WorldSize = 0;
                record.Rank = 0;
                break;
            case "rank equal to world_size":
                record.Rank = record.WorldSize;
                break;
            case "rank above world_size":
                record.Rank = 9;
                break;
            case "step negative":
                record.Step = -1;
                break;
            case "tensor name empty":
                record.Tensors[1].Name = "";
                break;
            case "sampled_count above the non-NaN elements":
                weight.NanCount = 1;
                weight.InfCount = 0;
                weight.Histogram.SampledCount = 12;
                break;
            case "nan_count above count":
                weight.NanCount = 13;
                weight.InfCount = 0;
                break;
            case "nan_count + inf_count above count":
                weight.NanCount = 6;
                weight.InfCount = 7;
                break;
            case "nan_count + inf_count overflow":
                // A naive nan + inf wraps to 0 here and would pass.
                weight.Count = ulong.MaxValue;
                weight.NanCount = ulong.MaxValue;
                weight.InfCount = 1;
                break;
            case "log2 histogram with 97 buckets":
                weight.Histogram.Counts.Add(0);
                break;
            case "log2 histogram span past the last bucket":
                weight.Histogram.Counts.RemoveAt(0);
                weight.Histogram.FirstBucket = 2;
                break;
            case "explicit histogram not starting at bucket 0":
                explicitHistogram.FirstBucket = 1;
                break;
            case "log2 histogram with explicit edges":
                weight.Histogram.Edges.Add(Log2Histogram.Edges.ToArray());
                break;
            case "explicit histogram with edges = counts":
                explicitHistogram.Edges.RemoveAt(2);
                break;
            case "explicit histogram with edges = counts + 2":
                explicitHistogram.Edges.Add(2.0);
                break;
            case "explicit histogram with counts but no edges":
                explicitHistogram.Edges.Clear();
                break;
            case "explicit histogram with descending edges":
                explicitHistogram.Edges[2] = -0.5;
                break;
            case "explicit histogram with repeated edge":
                explicitHistogram.Edges[1] = -1.0;
                break;
            case "explicit histogram with NaN edge":
                explicitHistogram.Edges[1] = double.NaN;
                break;
            case "unknown histogram layout":
                weight.Histogram.Layout = (HistogramLayout)5;
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(change), change, "unknown case");
        }
    }
}
