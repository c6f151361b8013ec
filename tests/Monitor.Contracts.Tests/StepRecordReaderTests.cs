using Google.Protobuf;
using Monitor.Contracts.V1;
using Monitor.Testing;

namespace Monitor.Contracts.Tests;

/// <summary>
/// StepRecordReader against Google.Protobuf: the same records, the same error kinds, no allocation once warm.
/// </summary>
public sealed class StepRecordReaderTests
{
    [Fact]
    public void TryRead_SetsEveryFieldOfTheSchema_WhenTheRecordHasThemAll()
    {
        // If this fails after a field was added to step_record.proto (e.g. Histogram.sample_size): read it in
        // StepRecordReader (the Read* method of its message, e.g. ReadHistogram: a `case` for its tag) and reset it
        // where that message is reset (ResetRecord, RentTensor, ResetSummary, the histogram reset in ReadSummary, the
        // raw reset in ReadTensor, RentThinned, RentArtifact, the run_end reset); if the contract constrains it,
        // give it a valid value in EveryFieldRecords.MakeValid.
        StepRecord[] records = EveryFieldRecords.Both();
        var set = new SortedSet<string>(StringComparer.Ordinal);
        foreach (StepRecord r in records)
        {
            EveryFieldRecords.SetFields(r, set);
        }

        Assert.Equal(EveryFieldRecords.AllFields(), set);

        var reader = new StepRecordReader();
        foreach (StepRecord expected in records)
        {
            Assert.True(reader.TryRead(expected.ToByteArray(), out StepRecord? read, out DecodeError error), error.ToString());
            Assert.Null(EveryFieldRecords.FirstDifference(expected, read, "StepRecord"));
            Assert.Equal(expected, read);
        }
    }

    [Fact]
    public void TryRead_LeavesNothingBehind_WhenARecordWithEveryFieldIsFollowedByAMinimalOne()
    {
        var reader = new StepRecordReader();
        var minimal = new StepRecord { SchemaVersion = 1, RunId = "r", WorldSize = 1 };
        minimal.Tensors.Add(new TensorRecord { Name = "t" });
        foreach (StepRecord full in EveryFieldRecords.Both())
        {
            Assert.True(reader.TryRead(full.ToByteArray(), out _, out DecodeError error), error.ToString());
            Assert.True(reader.TryRead(minimal.ToByteArray(), out StepRecord? read, out error), error.ToString());
            Assert.Null(EveryFieldRecords.FirstDifference(minimal, read, "StepRecord"));
            Assert.Equal(minimal, read);
        }
    }

    [Fact]
    public void TryRead_EqualsGoogleProtobuf_ForRandomRecordsReadInSequence()
    {
        Random random = Fuzz.NewRandom(5_150_001);
        var reader = new StepRecordReader();
        StepRecord? previous = null;
        for (int i = 0; i < 2_000; i++)
        {
            StepRecord original = RandomRecord(random);
            byte[] bytes = original.ToByteArray();
            StepRecord expected = StepRecord.Parser.ParseFrom(bytes);

            Assert.True(reader.TryRead(bytes, out StepRecord? read, out DecodeError error), $"#{i}: {error}");
            Assert.True(expected.Equals(read), $"#{i}: {EveryFieldRecords.FirstDifference(expected, read, "StepRecord")}");
            Assert.True(previous is null || ReferenceEquals(previous, read), "the reader refills one record");
            previous = read;
        }
    }

    [Fact]
    public void TryRead_MergesARepeatedSubMessageAndKeepsTheLastScalar_AsGoogleProtobufDoes()
    {
        StepRecord a = ValidRecords.Full();
        var second = new StepRecord { Step = 99, RunEnd = null };
        var tensor = new TensorRecord { Name = "extra", Summary = new TensorSummary { Count = 3, Histogram = new Histogram { Layout = HistogramLayout.Explicit } } };
        second.Tensors.Add(tensor);
        // A second record appended: its scalars win, its tensors are appended.
        byte[] bytes = [.. a.ToByteArray(), .. second.ToByteArray()];
        var reader = new StepRecordReader();

        Assert.Equal(StepRecordDecoder.TryDecode(bytes, out StepRecord? expected, out DecodeError expectedError), reader.TryRead(bytes, out StepRecord? read, out DecodeError error));
        Assert.Equal(expectedError.Kind, error.Kind);
        Assert.Equal(expected, read);

        // A tensor whose summary comes in two parts: merged into one.
        var part1 = new TensorRecord { Name = "w", Summary = new TensorSummary { Count = 10, Min = -1 } };
        var part2 = new TensorRecord { Summary = new TensorSummary { Max = 2, Histogram = new Histogram { Layout = HistogramLayout.Explicit, Edges = { 0, 1 }, Counts = { 10 } } } };
        byte[] tensorBytes = [.. part1.ToByteArray(), .. part2.ToByteArray()];
        var header = new StepRecord { SchemaVersion = 1, RunId = "r", WorldSize = 1 };
        var output = new MemoryStream();
        header.WriteTo(output);
        var writer = new CodedOutputStream(output, leaveOpen: true);
        writer.WriteTag(10, WireFormat.WireType.LengthDelimited);
        writer.WriteBytes(ByteString.CopyFrom(tensorBytes));
        writer.Flush();
        byte[] merged = output.ToArray();

        Assert.True(reader.TryRead(merged, out read, out error), error.ToString());
        Assert.Equal(StepRecord.Parser.ParseFrom(merged), read);
        Assert.Equal(-1, read.Tensors[0].Summary.Min);
        Assert.Equal(2, read.Tensors[0].Summary.Max);
    }

    [Theory]
    [InlineData("08FFFFFFFFFFFFFFFFFFFF01", "varint longer than 10 bytes")]
    [InlineData("0F", "field 1 with invalid wire type 7")]
    [InlineData("0E", "field 1 with invalid wire type 6")]
    [InlineData("0C", "end-group (wire type 4) without a start")]
    [InlineData("0B", "start-group (wire type 3) never ended")]
    [InlineData("0B1C", "start-group of field 1 ended as field 3")]
    [InlineData("00", "tag 0")]
    [InlineData("120561", "run_id declares 5 bytes, has 1")]
    [InlineData("12FFFFFFFF0F", "run_id declares 4 GiB")]
    [InlineData("12FFFFFFFF07", "run_id declares 2 GiB")]
    [InlineData("520A0A05", "tensors[0] truncated inside its name")]
    [InlineData("5203320110", "tensors[0].summary declares more bytes than the tensor holds")]
    [InlineData("520432020A01", "histogram edges packed with 1 byte")]
    [InlineData("1D0000", "fixed32 field truncated")]
    [InlineData("19000000", "fixed64 field truncated")]
    [InlineData("0A0100", "schema_version sent length-delimited: unknown, so missing")]
    [InlineData("", "empty")]
    public void TryRead_GivesTheDecodersErrorKind_WhenBytesAreNotAValidRecord(string hex, string what)
    {
        byte[] bytes = Convert.FromHexString(hex);
        Assert.False(StepRecordDecoder.TryDecode(bytes, out _, out DecodeError expected), what);

        bool read = new StepRecordReader().TryRead(bytes, out StepRecord? record, out DecodeError error);

        Assert.False(read, what);
        Assert.Null(record);
        Assert.Equal(expected.Kind, error.Kind);
        Assert.False(string.IsNullOrWhiteSpace(error.Reason), what);
    }

    [Theory]
    [InlineData("A0062A", "field 100, varint")]
    [InlineData("FA0103616263", "field 31, length-delimited")]
    [InlineData("FDFF0701020304", "field 16383, fixed32")]
    [InlineData("F1FFFFFF0F0102030405060708", "field 536870910, fixed64")]
    [InlineData("A306A80601A406", "field 100, group holding field 101")]
    [InlineData("A306A306A406A406", "field 100, group in a group")]
    [InlineData("A0062AA0062B", "field 100 twice")]
    [InlineData("1005", "run_id as a varint")]
    public void TryRead_SkipsUnknownFields_AsGoogleProtobufDoes(string unknownHex, string what)
    {
        StepRecord original = ValidRecords.Full();
        byte[] payload = [.. original.ToByteArray(), .. Convert.FromHexString(unknownHex)];

        Assert.True(new StepRecordReader().TryRead(payload, out StepRecord? record, out DecodeError error), $"{what}: {error}");
        Assert.Equal(original, record);
    }

    [Theory]
    [InlineData(0, 99, true)]
    [InlineData(0, 100, true)]
    [InlineData(0, 101, false)]
    [InlineData(1, 99, true)]
    [InlineData(1, 100, false)]
    [InlineData(3, 97, true)]
    [InlineData(3, 98, false)]
    public void TryRead_NestsGroupsAsDeepAsGoogleProtobuf(int messageDepth, int groups, bool accepted)
    {
        // Groups at the top level (0), in a tensor (1) or in a histogram (3), nested `groups` deep.
        var nested = new List<byte>();
        for (int g = 0; g < groups; g++)
        {
            nested.AddRange([0xA3, 0x06]);
        }

        for (int g = 0; g < groups; g++)
        {
            nested.AddRange([0xA4, 0x06]);
        }

        byte[] payload = WithUnknownAt(messageDepth, [.. nested]);
        Assert.Equal(accepted, StepRecordDecoder.TryDecode(payload, out StepRecord? expected, out _));

        bool read = new StepRecordReader().TryRead(payload, out StepRecord? record, out DecodeError error);

        Assert.Equal(accepted, read);
        if (accepted)
        {
            Assert.NotNull(expected);
            Assert.Null(EveryFieldRecords.FirstDifference(expected, record!, "StepRecord"));
        }
        else
        {
            Assert.Equal(DecodeErrorKind.Malformed, error.Kind);
        }
    }

    [Fact]
    public void TryRead_ReturnsTooLarge_WhenPayloadExceedsMaxPayloadBytes()
    {
        byte[] large = new byte[StepRecordDecoder.MaxPayloadBytes + 1];

        Assert.False(new StepRecordReader().TryRead(large, out StepRecord? record, out DecodeError error));
        Assert.Null(record);
        Assert.Equal(DecodeErrorKind.TooLarge, error.Kind);
    }

    [Fact]
    public void TryRead_ReturnsTheSameRecordAfterAFailure_WhenTheNextPayloadIsValid()
    {
        var reader = new StepRecordReader();
        byte[] valid = ValidRecords.FullBytes();
        Assert.False(reader.TryRead(valid.AsSpan(0, valid.Length / 2), out _, out _));

        Assert.True(reader.TryRead(valid, out StepRecord? record, out DecodeError error), error.ToString());
        Assert.Equal(ValidRecords.Full(), record);
    }

    [Fact]
    public void TryRead_InternsRepeatedStrings_AndStaysCorrect_WhenNamesNeverRepeat()
    {
        var reader = new StepRecordReader(internCapacity: 64);
        StepRecord original = ValidRecords.Full();
        byte[] bytes = original.ToByteArray();
        Assert.True(reader.TryRead(bytes, out StepRecord? first, out _));
        string name = first.Tensors[0].Name;
        string run = first.RunId;
        Assert.True(reader.TryRead(bytes, out StepRecord? second, out _));
        Assert.Same(name, second.Tensors[0].Name);
        Assert.Same(run, second.RunId);

        // A stream of names never seen again: each is decoded, the cache (4 entries) keeps evicting, results stay right.
        reader = new StepRecordReader(internCapacity: 4);
        for (int i = 0; i < 1_000; i++)
        {
            StepRecord fresh = original.Clone();
            fresh.Tensors[0].Name = $"tensor-{i}";
            fresh.Tensors[1].Name = $"tensor-{i}.grad";
            Assert.True(reader.TryRead(fresh.ToByteArray(), out StepRecord? read, out DecodeError error), error.ToString());
            Assert.Equal(fresh, read);
        }
    }

    [Fact]
    public void Constructor_Throws_WhenTheInternCapacityIsNotAPowerOfTwo()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new StepRecordReader(internCapacity: 1000));
        Assert.Throws<ArgumentOutOfRangeException>(() => new StepRecordReader(internCapacity: 2));
    }

    [Fact]
    public void Fuzz_TryRead_GivesTheDecodersOutcome_WhenBytesAreRandom()
    {
        Random random = Fuzz.NewRandom(20_260_512);
        var reader = new StepRecordReader();
        Fuzz.Run("reader, random bytes", Fuzz.Inputs(20_000), i =>
        {
            byte[] payload = new byte[random.Next(0, 200)];
            random.NextBytes(payload);
            return AssertSameOutcome(reader, payload, $"random #{i}: {Convert.ToHexString(payload)}");
        }, TimeSpan.FromSeconds(1));
    }

    [Fact]
    public void Fuzz_TryRead_GivesTheDecodersOutcome_WhenValidPayloadsAreMutatedOrTruncated()
    {
        Random random = Fuzz.NewRandom(8_121_990);
        var reader = new StepRecordReader();
        byte[][] valid = [ValidRecords.FullBytes(), .. EveryFieldRecords.Both().Select(r => r.ToByteArray())];
        Dictionary<string, int> outcomes = Fuzz.Run("reader, mutated records", Fuzz.Inputs(30_000), i =>
        {
            byte[] payload = Mutate(valid[i % valid.Length], random);
            return AssertSameOutcome(reader, payload, $"mutation #{i}: {Convert.ToHexString(payload)}");
        }, TimeSpan.FromSeconds(1));

        Assert.True(outcomes.GetValueOrDefault("decoded") > 0);
        Assert.True(outcomes.GetValueOrDefault(nameof(DecodeErrorKind.Malformed)) > 0);
        Assert.True(outcomes.GetValueOrDefault(nameof(DecodeErrorKind.Invalid)) > 0);
    }

    [Fact]
    public void TryRead_AllocatesNothing_ForWarmRecordsWithoutRawValues()
    {
        StepRecord big = ValidRecords.Full();
        foreach (TensorRecord t in big.Tensors)
        {
            t.Raw = null;
        }

        for (int i = 0; i < 30; i++)
        {
            TensorRecord extra = big.Tensors[i % 2].Clone();
            extra.Name = $"layer{i}.weight";
            big.Tensors.Add(extra);
        }

        big.Thinned.Add(new ThinnedCollection { Collection = Collection.Gradients, Stride = 2, SkippedTensors = 3 });
        StepRecord small = big.Clone();
        small.Tensors.RemoveAt(0);
        while (small.Tensors.Count > 5)
        {
            small.Tensors.RemoveAt(small.Tensors.Count - 1);
        }

        small.Tensors[1].Summary = null;
        small.Thinned.Clear();
        byte[] bigBytes = big.ToByteArray();
        byte[] smallBytes = small.ToByteArray();
        var reader = new StepRecordReader();
        int tensors = 0;
        void Pass()
        {
            for (int i = 0; i < 200; i++)
            {
                tensors += reader.TryRead(i % 3 == 0 ? smallBytes : bigBytes, out StepRecord? r, out _) ? r.Tensors.Count : -1_000_000;
            }
        }

        Pass();
        long bytes = SteadyStateAllocation.LeastBytes(Pass);

        Assert.True(tensors > 0);
        Assert.Equal(0, bytes);
    }

    private static string AssertSameOutcome(StepRecordReader reader, byte[] payload, string what)
    {
        bool expectedOk = StepRecordDecoder.TryDecode(payload, out StepRecord? expected, out DecodeError expectedError);
        bool ok;
        StepRecord? record;
        DecodeError error;
        try
        {
            ok = reader.TryRead(payload, out record, out error);
        }
        catch (Exception ex)
        {
            Assert.Fail($"TryRead threw {ex.GetType().Name} for {what}: {ex.Message}");
            throw;
        }

        Assert.True(expectedOk == ok, $"{what}: decoder {(expectedOk ? "decoded" : expectedError.ToString())}, reader {(ok ? "read" : error.ToString())}");
        if (ok)
        {
            // Field by field: Equals would also compare the unknown fields Google.Protobuf keeps and the reader skips.
            Assert.Null(EveryFieldRecords.FirstDifference(expected!, record!, "StepRecord"));
            return "decoded";
        }

        Assert.Null(record);
        Assert.True(expectedError.Kind == error.Kind, $"{what}: decoder {expectedError}, reader {error}");
        Assert.False(string.IsNullOrWhiteSpace(error.Reason), what);
        return error.Kind.ToString();
    }

    /// <summary>A valid record with the unknown bytes inside its top level (0), its first tensor (1) or that tensor's
    /// histogram (3).</summary>
    private static byte[] WithUnknownAt(int depth, byte[] unknown)
    {
        var record = new StepRecord { SchemaVersion = 1, RunId = "r", WorldSize = 1 };
        if (depth == 0)
        {
            return [.. record.ToByteArray(), .. unknown];
        }

        var histogram = new Histogram { Layout = HistogramLayout.Explicit };
        byte[] histogramBytes = depth == 3 ? [.. histogram.ToByteArray(), .. unknown] : histogram.ToByteArray();
        byte[] summaryBytes = Nest(new TensorSummary().ToByteArray(), 12, histogramBytes);
        byte[] tensorBytes = Nest(new TensorRecord { Name = "t" }.ToByteArray(), 6, summaryBytes);
        if (depth == 1)
        {
            tensorBytes = [.. tensorBytes, .. unknown];
        }

        return Nest(record.ToByteArray(), 10, tensorBytes);
    }

    private static byte[] Nest(byte[] outer, int field, byte[] inner)
    {
        var output = new MemoryStream();
        output.Write(outer);
        var writer = new CodedOutputStream(output, leaveOpen: true);
        writer.WriteTag(field, WireFormat.WireType.LengthDelimited);
        writer.WriteBytes(ByteString.CopyFrom(inner));
        writer.Flush();
        return output.ToArray();
    }

    /// <summary>A valid record with random content: 0 to 8 tensors, each sub-message present or not.</summary>
    private static StepRecord RandomRecord(Random random)
    {
        uint world = (uint)random.Next(1, 64);
        var record = new StepRecord
        {
            SchemaVersion = 1,
            RunId = $"run-{random.Next(4)}",
            WorldSize = world,
            Rank = (uint)random.Next((int)world),
            Step = random.Next(0, 3) == 0 ? 0 : random.NextInt64(0, long.MaxValue),
            Mode = (Mode)random.Next(0, 4),
            EventTimeUnixNanos = random.NextInt64(long.MinValue, long.MaxValue),
            Sequence = (ulong)random.NextInt64(),
            SelectionVersion = random.NextInt64(-5, 5),
            DroppedBefore = (ulong)random.Next(3),
            RawPartsTrimmed = (ulong)random.Next(3),
            OverheadRatio = random.Next(3) == 0 ? 0 : random.NextDouble(),
            RunMetadata = random.Next(5) == 0 ? "{\"hyperparameters\":{\"lr\":\"0.1\"}}" : "",
        };
        if (random.Next(8) == 0)
        {
            record.RunEnd = new RunEnd { Reason = (RunEndReason)random.Next(4) };
            return record;
        }

        record.AtBegin = random.Next(6) == 0;
        int tensors = random.Next(0, 9);
        for (int t = 0; t < tensors; t++)
        {
            record.Tensors.Add(RandomTensor(random, t));
        }

        for (int c = random.Next(0, 3); c > 0; c--)
        {
            record.Thinned.Add(new ThinnedCollection { Collection = (Collection)random.Next(11), Stride = 1u << random.Next(1, 5), SkippedTensors = (uint)random.Next(10) });
        }

        for (int a = random.Next(0, 3) / 2; a > 0; a--)
        {
            record.Artifacts.Add(new ArtifactEvent
            {
                Path = $"/ckpt/{random.Next(100)}.pt",
                Hash = random.Next(2) == 0 ? "" : "sha256:ab",
                Step = random.Next(1000),
                Direction = (ArtifactDirection)random.Next(3),
                Type = "checkpoint",
                TimeUnixNanos = random.NextInt64(),
            });
        }

        return record;
    }

    private static TensorRecord RandomTensor(Random random, int index)
    {
        var tensor = new TensorRecord { Name = $"layer{index}.{(random.Next(2) == 0 ? "weight" : "weight.grad")}", Dtype = (DType)random.Next(11) };
        for (int c = random.Next(0, 3); c > 0; c--)
        {
            tensor.Collections.Add((Collection)random.Next(1, 11));
        }

        if (random.Next(3) == 0)
        {
            tensor.CustomCollections.Add($"custom{random.Next(3)}");
        }

        long rows = random.Next(1, 6);
        long columns = random.Next(1, 4);
        if (random.Next(4) != 0)
        {
            tensor.Shape.Add([rows, columns]);
        }

        if (random.Next(4) != 0)
        {
            ulong count = (ulong)random.Next(0, 1000);
            ulong nan = count == 0 ? 0 : (ulong)random.NextInt64(0, (long)count + 1);
            var summary = new TensorSummary
            {
                Count = count,
                NanCount = nan,
                InfCount = count - nan == 0 ? 0 : (ulong)random.NextInt64(0, (long)(count - nan) + 1),
                ZeroCount = (ulong)random.Next(3),
                Min = -random.NextDouble(),
                Max = random.NextDouble(),
                Mean = random.NextDouble() - 0.5,
                Variance = random.Next(5) == 0 ? double.NaN : random.NextDouble(),
                L1 = random.NextDouble() * 10,
                L2 = random.NextDouble() * 3,
                AbsMean = random.NextDouble(),
            };
            switch (random.Next(3))
            {
                case 0:
                    var log2 = new Histogram { Layout = HistogramLayout.Log2Magnitude, FirstBucket = (uint)random.Next(0, 40) };
                    for (int b = random.Next(0, 50); b > 0; b--)
                    {
                        log2.Counts.Add((ulong)random.Next(1000));
                    }

                    summary.Histogram = log2;
                    break;
                case 1:
                    var explicitHistogram = new Histogram { Layout = HistogramLayout.Explicit };
                    int buckets = random.Next(1, 6);
                    for (int b = 0; b <= buckets; b++)
                    {
                        explicitHistogram.Edges.Add(b - 0.5);
                    }

                    for (int b = 0; b < buckets; b++)
                    {
                        explicitHistogram.Counts.Add((ulong)random.Next(100));
                    }

                    summary.Histogram = explicitHistogram;
                    break;
                default:
                    break;
            }

            tensor.Summary = summary;
        }

        if (random.Next(3) == 0)
        {
            long elements = tensor.Shape.Count == 0 ? 1 : rows * columns;
            int values = random.Next(0, (int)elements + 1);
            var raw = new RawValues { TotalElements = (ulong)elements, Truncated = values < elements, Trimmed = random.Next(5) == 0 };
            if (tensor.Shape.Count > 0 && random.Next(2) == 0)
            {
                raw.SampleRows = (uint)random.Next(1, (int)rows + 1);
                values = (int)(raw.SampleRows * columns);
                for (int c = 0; c < columns; c++)
                {
                    tensor.FeatureNames.Add($"x{c}");
                }
            }

            byte[] floats = new byte[values * sizeof(float)];
            random.NextBytes(floats);
            raw.Float32Le = ByteString.CopyFrom(floats);
            tensor.Raw = raw;
        }

        return tensor;
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
                case 0:
                    bytes[at] ^= (byte)(1 << random.Next(8));
                    break;
                case 1:
                    bytes[at] = (byte)random.Next(256);
                    break;
                case 2:
                    bytes.RemoveRange(at, bytes.Count - at);
                    break;
                case 3:
                    bytes.RemoveRange(at, Math.Min(random.Next(1, 8), bytes.Count - at));
                    break;
                case 4:
                    byte[] insert = new byte[random.Next(1, 8)];
                    random.NextBytes(insert);
                    bytes.InsertRange(at, insert);
                    break;
                default:
                    int length = Math.Min(random.Next(1, 32), bytes.Count - at);
                    bytes.AddRange(bytes.GetRange(at, length));
                    break;
            }
        }

        return [.. bytes];
    }
}
