using System.Text;
using System.Text.Json;
using Google.Protobuf;
using Monitor.Contracts;
using Monitor.Contracts.V1;

namespace Monitor.Service.Tests;

public sealed class StepRecordFileTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("monitor-records-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string PathOf(string name) => Path.Combine(_directory, name);

    /// <summary>Records that exercise every kind of field: 64-bit integers, enums, bytes, repeated fields, histograms.</summary>
    private static List<StepRecord> Records()
    {
        var records = new List<StepRecord>();
        for (int i = 0; i < 5; i++)
        {
            var histogram = new Histogram { Layout = HistogramLayout.Log2Magnitude, FirstBucket = 40 };
            histogram.Counts.Add([1, 2, (ulong)i]);
            var weight = new TensorRecord
            {
                Name = "fc1.weight",
                Dtype = DType.Float32,
                Summary = new TensorSummary
                {
                    Count = 12,
                    Min = -0.5,
                    Max = 0.75 + i,
                    Mean = 0.1 / 3,
                    Variance = 1e-300,
                    L1 = 2.5,
                    L2 = double.Epsilon,
                    AbsMean = 0.2,
                    ZeroCount = 1,
                    NanCount = 1,
                    InfCount = 1,
                    Histogram = histogram,
                },
                Raw = new RawValues { TotalElements = 12, Truncated = true, Float32Le = ByteString.CopyFrom([0x00, 0x00, 0x00, 0x3F, 0x00, 0x00, 0x80, 0xBE]) },
            };
            weight.Collections.Add([Collection.Weights, Collection.Custom]);
            weight.CustomCollections.Add("mine");
            weight.Shape.Add([3, 4]);
            var loss = new TensorRecord { Name = "loss", Dtype = DType.Float64, Summary = new TensorSummary { Count = 1, Mean = 2.5 - i } };
            loss.Collections.Add(Collection.Losses);

            var record = new StepRecord
            {
                SchemaVersion = StepRecordDecoder.CurrentSchemaVersion,
                RunId = "run-1",
                Rank = (uint)(i % 2),
                WorldSize = 2,
                Step = (1L << 40) + i,
                Mode = i == 4 ? Mode.Eval : Mode.Train,
                EventTimeUnixNanos = 1_735_689_600_123_456_789 + i,
                Sequence = ulong.MaxValue - (ulong)i,
                SelectionVersion = 3,
                DroppedBefore = (ulong)i,
                AtBegin = i == 0,
            };
            record.Tensors.Add([weight, loss]);
            records.Add(record);
        }

        return records;
    }

    private static StepRecord Minimal(long step, uint rank = 0, uint worldSize = 1) => new()
    {
        SchemaVersion = StepRecordDecoder.CurrentSchemaVersion,
        RunId = "run-1",
        Rank = rank,
        WorldSize = worldSize,
        Step = step,
        Mode = Mode.Train,
    };

    private static string JsonLine(StepRecord record) => JsonFormatter.Default.Format(record);

    private string Write(string name, IEnumerable<StepRecord> records, StepRecordFileFormat? format = null)
    {
        string path = PathOf(name);
        using StepRecordWriter writer = StepRecordFile.CreateWriter(path, format);
        foreach (StepRecord record in records)
        {
            writer.Write(record);
        }

        return path;
    }

    [Theory]
    [InlineData("steps.jsonl")]
    [InlineData("steps.json")]
    [InlineData("steps.pb")]
    [InlineData("steps.bin")]
    [InlineData("steps.PB")]
    public void Read_ReturnsTheRecordsWritten_InTheFormatOfTheExtension(string name)
    {
        List<StepRecord> records = Records();

        string path = Write(name, records);

        Assert.Equal(records, StepRecordFile.Read(path));
    }

    [Theory]
    [InlineData("steps.jsonl", StepRecordFileFormat.JsonLines)]
    [InlineData("steps.txt", StepRecordFileFormat.JsonLines)]
    [InlineData("steps", StepRecordFileFormat.JsonLines)]
    [InlineData("steps.pb", StepRecordFileFormat.Protobuf)]
    [InlineData("steps.Bin", StepRecordFileFormat.Protobuf)]
    public void FormatOf_FollowsTheExtension(string name, StepRecordFileFormat expected)
    {
        Assert.Equal(expected, StepRecordFile.FormatOf(name));
    }

    [Theory]
    [InlineData(StepRecordFileFormat.JsonLines)]
    [InlineData(StepRecordFileFormat.Protobuf)]
    public void Read_UsesTheGivenFormat_OverTheExtension(StepRecordFileFormat format)
    {
        List<StepRecord> records = Records();

        string path = Write("steps.data", records, format);

        Assert.Equal(records, StepRecordFile.Read(path, format));
        Assert.Equal(format == StepRecordFileFormat.JsonLines, File.ReadAllText(path).StartsWith('{'));
    }

    [Fact]
    public void Writer_CountsTheRecordsWritten()
    {
        string path = PathOf("steps.pb");
        using StepRecordWriter writer = StepRecordFile.CreateWriter(path);

        writer.Write(Minimal(1));
        writer.Write(Minimal(2));

        Assert.Equal(2, writer.Count);
    }

    [Fact]
    public void Writer_TruncatesAnExistingFile()
    {
        string path = Write("steps.jsonl", Records());

        Write("steps.jsonl", [Minimal(7)]);

        Assert.Equal([Minimal(7)], StepRecordFile.Read(path));
    }

    [Fact]
    public void JsonLines_AreProtobufJson_OneRecordPerLine()
    {
        List<StepRecord> records = Records();
        string path = Write("steps.jsonl", records);

        string text = File.ReadAllText(path);
        string[] lines = text.Split('\n');

        Assert.EndsWith("\n", text, StringComparison.Ordinal);
        Assert.Equal(records.Count + 1, lines.Length);
        Assert.Equal("", lines[^1]);
        for (int i = 0; i < records.Count; i++)
        {
            using var line = JsonDocument.Parse(lines[i]);
            JsonElement root = line.RootElement;

            // Protobuf's canonical JSON: camelCase names, 64-bit integers as strings, enums by name, bytes in base64.
            Assert.Equal(1, root.GetProperty("schemaVersion").GetInt32());
            Assert.Equal("run-1", root.GetProperty("runId").GetString());
            Assert.Equal(2, root.GetProperty("worldSize").GetInt32());
            Assert.Equal(((1L << 40) + i).ToString(System.Globalization.CultureInfo.InvariantCulture), root.GetProperty("step").GetString());
            Assert.Equal(i == 4 ? "MODE_EVAL" : "MODE_TRAIN", root.GetProperty("mode").GetString());
            Assert.Equal(JsonValueKind.String, root.GetProperty("eventTimeUnixNanos").ValueKind);
            JsonElement weight = root.GetProperty("tensors")[0];
            Assert.Equal(["COLLECTION_WEIGHTS", "COLLECTION_CUSTOM"], weight.GetProperty("collections").EnumerateArray().Select(c => c.GetString()));
            Assert.Equal(0.2, weight.GetProperty("summary").GetProperty("absMean").GetDouble());
            Assert.Equal("AAAAPwAAgL4=", weight.GetProperty("raw").GetProperty("float32Le").GetString());
            Assert.Equal("HISTOGRAM_LAYOUT_LOG2_MAGNITUDE", weight.GetProperty("summary").GetProperty("histogram").GetProperty("layout").GetString());
            Assert.DoesNotContain("run_id", lines[i], StringComparison.Ordinal);
            Assert.DoesNotContain("abs_mean", lines[i], StringComparison.Ordinal);
        }

        // Default values are left out: rank 0 and at_begin false do not appear.
        Assert.False(JsonDocument.Parse(lines[2]).RootElement.TryGetProperty("rank", out _));
        Assert.False(JsonDocument.Parse(lines[2]).RootElement.TryGetProperty("atBegin", out _));
        Assert.True(JsonDocument.Parse(lines[0]).RootElement.GetProperty("atBegin").GetBoolean());
    }

    [Fact]
    public void Read_AcceptsJsonLinesWrittenByOtherTools()
    {
        string path = PathOf("steps.jsonl");
        File.WriteAllText(path, """
            {"schemaVersion":1,"runId":"r","worldSize":1,"step":"7","mode":"MODE_EVAL","futureField":{"x":1}}
            {"schema_version":1,"run_id":"r","world_size":1,"step":8}
            {"schemaVersion":1,"runId":"r","worldSize":1,"step":"9","mode":"MODE_FROM_THE_FUTURE"}
            """);

        StepRecord[] read = [.. StepRecordFile.Read(path)];

        Assert.Equal([7L, 8L, 9L], read.Select(r => r.Step));
        Assert.Equal([Mode.Eval, Mode.Unspecified, Mode.Unspecified], read.Select(r => r.Mode));
    }

    [Fact]
    public void Read_SkipsBlankLines_AndCountsThemInLineNumbers()
    {
        string path = PathOf("steps.jsonl");
        File.WriteAllText(path, "\n" + JsonLine(Minimal(1)) + "\n   \n\t\n" + JsonLine(Minimal(2)) + "\r\n\n");

        Assert.Equal([Minimal(1), Minimal(2)], StepRecordFile.Read(path));

        File.AppendAllText(path, "{oops\n");
        InvalidDataException ex = Assert.Throws<InvalidDataException>(() => StepRecordFile.Read(path).ToList());
        Assert.StartsWith($"{path}:7: ", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{not json", "not JSON: ")]
    [InlineData("[1, 2]", "")]
    [InlineData("{\"step\": \"abc\"}", "not a step record: ")]
    public void Read_NamesFileAndLine_WhenALineIsMalformed(string line, string reason)
    {
        string path = PathOf("steps.jsonl");
        File.WriteAllText(path, JsonLine(Minimal(1)) + "\n" + line + "\n" + JsonLine(Minimal(3)) + "\n");
        var read = new List<StepRecord>();

        InvalidDataException ex = Assert.Throws<InvalidDataException>(() =>
        {
            foreach (StepRecord record in StepRecordFile.Read(path))
            {
                read.Add(record);
            }
        });

        Assert.StartsWith($"{path}:2: {reason}", ex.Message, StringComparison.Ordinal);
        Assert.NotNull(ex.InnerException);
        Assert.Equal([Minimal(1)], read);
    }

    [Fact]
    public void Read_GivesTheDecodersReason_WhenALineParsesToAnIncompleteRecord()
    {
        string path = PathOf("steps.jsonl");
        File.WriteAllText(path, "{\"runId\": \"r\"}\n");

        InvalidDataException ex = Assert.Throws<InvalidDataException>(() => StepRecordFile.Read(path).ToList());

        Assert.Equal($"{path}:1: schema_version is missing (0)", ex.Message);
    }

    [Fact]
    public void Read_GivesTheDecodersReason_WhenAJsonRecordIsInvalid()
    {
        string path = PathOf("steps.jsonl");
        File.WriteAllText(path, JsonLine(Minimal(1, rank: 2, worldSize: 2)) + "\n");

        InvalidDataException ex = Assert.Throws<InvalidDataException>(() => StepRecordFile.Read(path).ToList());

        Assert.Equal($"{path}:1: rank 2 is outside world_size 2", ex.Message);
    }

    [Theory]
    [InlineData("")]
    [InlineData("run/1")]
    public void Read_GivesTheDecodersReason_WhenTheRunIdIsInvalid(string runId)
    {
        StepRecord record = Minimal(1);
        record.RunId = runId;
        string path = PathOf("steps.jsonl");
        File.WriteAllText(path, JsonLine(record) + "\n");

        InvalidDataException ex = Assert.Throws<InvalidDataException>(() => StepRecordFile.Read(path).ToList());

        Assert.Equal($"{path}:1: run_id: {RunId.Check(runId)}", ex.Message);
    }

    [Fact]
    public void Read_GivesTheDecodersReasonAndIndex_WhenAProtobufRecordIsInvalid()
    {
        string path = Write("steps.pb", [Minimal(1), Minimal(2), Minimal(3, rank: 5, worldSize: 2)]);

        InvalidDataException ex = Assert.Throws<InvalidDataException>(() => StepRecordFile.Read(path).ToList());

        Assert.Equal($"{path}: record 2: rank 5 is outside world_size 2", ex.Message);
    }

    [Fact]
    public void Read_NamesTheRecord_WhenAProtobufFileIsTruncated()
    {
        string path = Write("steps.pb", Records());
        byte[] bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^10]);

        InvalidDataException ex = Assert.Throws<InvalidDataException>(() => StepRecordFile.Read(path).ToList());

        Assert.StartsWith($"{path}: record 4: ", ex.Message, StringComparison.Ordinal);
        Assert.IsType<InvalidProtocolBufferException>(ex.InnerException);
    }

    [Theory]
    [InlineData("steps.jsonl")]
    [InlineData("steps.pb")]
    public void Read_ReturnsNothing_WhenTheFileIsEmpty(string name)
    {
        string path = PathOf(name);
        File.WriteAllBytes(path, []);

        Assert.Empty(StepRecordFile.Read(path));
    }

    [Fact]
    public void Read_ThrowsFileNotFound_WhenTheFileIsMissing()
    {
        Assert.Throws<FileNotFoundException>(() => StepRecordFile.Read(PathOf("missing.jsonl")).ToList());
    }

    [Fact]
    public void Protobuf_IsLengthDelimited()
    {
        List<StepRecord> records = Records();
        string path = Write("steps.pb", records);

        using var expected = new MemoryStream();
        foreach (StepRecord record in records)
        {
            record.WriteDelimitedTo(expected);
        }

        Assert.Equal(expected.ToArray(), File.ReadAllBytes(path));
    }

    [Fact]
    public void JsonLines_AreUtf8_WithoutByteOrderMark()
    {
        StepRecord record = Minimal(1);
        record.Tensors.Add(new TensorRecord { Name = "größe.weight" });
        string path = Write("steps.jsonl", [record]);

        byte[] bytes = File.ReadAllBytes(path);

        Assert.Equal((byte)'{', bytes[0]);
        Assert.Contains("größe.weight", Encoding.UTF8.GetString(bytes), StringComparison.Ordinal);
        Assert.Equal([record], StepRecordFile.Read(path));
    }
}
