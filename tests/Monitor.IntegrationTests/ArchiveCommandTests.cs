using System.Globalization;
using Confluent.Kafka;
using Google.Protobuf;
using Monitor.Archive;
using Monitor.Contracts;
using Monitor.Transport.Kafka;
using static Monitor.IntegrationTests.ArchiveSupport;

namespace Monitor.IntegrationTests;

/// <summary>
/// <c>monitor demo --archive</c>, <c>monitor archive</c>, <c>monitor export</c> and <c>monitor query</c> as a user runs
/// them; the files are read by readers that are not ours: DuckDB for Parquet, pandas for CSV and JSON lines.
/// </summary>
[Collection(DemoArchiveTests.Name)]
public sealed class ArchiveCommandTests(DemoArchiveFixture demo) : IDisposable
{
    private const string ExampleQuery = "SELECT step, tensor, abs_mean FROM steps WHERE collections LIKE '%gradients%' AND abs_mean < 1e-7 ORDER BY step, tensor";

    private readonly string _directory = Directory.CreateTempSubdirectory("monitor-archive-cli-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string PathOf(string name) => Path.Combine(_directory, name);

    [Fact]
    public async Task MonitorDemo_WithArchive_VanishingGradients_ArchiveExportAndQueryShowTheVanishedGradient()
    {
        // The demo's run is the collection's (DemoArchiveFixture): one 500-step demo for these tests and the trial tests.
        string archive = demo.Archive;
        Assert.Contains("Archive: ", demo.Output, StringComparison.Ordinal);
        string files = Files(archive);
        // The documented columns, in order.
        Assert.Equal(ArchiveSchema.Columns.Select(c => c.Name), Duck($"DESCRIBE SELECT * FROM {files}").Select(r => (string)r[0]!));
        // One row per traced (run, rank, step, mode, tensor).
        object?[] counts = Duck($"SELECT count(*), count(DISTINCT (run_id, rank, step, mode, tensor)) FROM {files}")[0];
        Assert.Equal(counts[0], counts[1]);
        List<object?[]> gradient = Duck($"SELECT step, abs_mean FROM {files} WHERE tensor = 'fc1.weight.grad' AND mode = 'train' ORDER BY step");
        Assert.Equal(Enumerable.Range(0, 500).Select(s => (long)s), gradient.Select(r => (long)r[0]!));
        Assert.All(gradient.Where(r => (long)r[0]! >= 250), r => Assert.True((double)r[1]! < 1e-7, $"step {r[0]}: {r[1]}"));
        Assert.All(gradient.Where(r => (long)r[0]! < 250), r => Assert.True((double)r[1]! > 1e-5, $"step {r[0]}: {r[1]}"));

        // The export of steps 250-500 of fc1.weight.grad, read by DuckDB.
        string exported = PathOf("fc1-grad.parquet");
        (int exitCode, _, string error) = await InvokeAsync("export", "--from", archive, "--run", "demo", "--rank", "0", "--tensor", @"^fc1\.weight\.grad$", "--steps", "250:500", "--format", "parquet", "--out", exported);
        Assert.True(exitCode == 0, error);
        // Progress: the last line has every file done (more than one when the run outlasted a file age).
        Assert.Matches(@"monitor export: (\d+)/\1 files, \d+ rows read, 250 written", error);
        Assert.Equal(ArchiveSchema.Columns.Select(c => c.Name), Duck($"DESCRIBE SELECT * FROM read_parquet('{exported}')").Select(r => (string)r[0]!));
        object?[] vanished = Duck($"SELECT count(*), min(step), max(step), max(abs_mean), count(DISTINCT tensor) FROM read_parquet('{exported}') WHERE mode = 'train'")[0];
        Assert.Equal([250L, 250L, 499L], vanished[..3]);
        Assert.True((double)vanished[3]! < 1e-7);
        Assert.Equal(1L, vanished[4]);

        // The example query: the steps where the mean |gradient| of any layer fell below 1e-7.
        (exitCode, string answer, error) = await InvokeAsync("query", "--from", archive, ExampleQuery);
        Assert.True(exitCode == 0, error);
        string[] lines = answer.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("step\ttensor\tabs_mean", lines[0]);
        long[] steps = [.. lines.Skip(1).Select(l => long.Parse(l.Split('\t')[0], CultureInfo.InvariantCulture))];
        Assert.Equal(250, steps.Min());
        Assert.Equal(499, steps.Max());
        Assert.Contains(lines, l => l.StartsWith("250\tfc1.weight.grad\t", StringComparison.Ordinal));
    }

    [Fact]
    public async Task MonitorExport_CsvAndJsonLines_ArePandasReadable_WithTheDocumentedColumns()
    {
        string archive = PathOf("archive");
        await using (var writer = new ArchiveWriter(new ArchiveOptions { Directory = archive }))
        {
            for (long step = 0; step < 30; step++)
            {
                await writer.AppendAsync(Record("run-x", 0, step, gradientAbsMean: step >= 20 ? 1e-9 : 1e-2), cancellationToken: TestContext.Current.CancellationToken);
                await writer.AppendAsync(Record("run-x", 1, step), cancellationToken: TestContext.Current.CancellationToken);
            }
        }

        string csv = PathOf("out.csv");
        string jsonl = PathOf("out.jsonl");
        (int exitCode, _, string error) = await InvokeAsync("export", "--from", archive, "--rank", "0", "--steps", "10:", "--format", "csv", "--out", csv);
        Assert.True(exitCode == 0, error);
        Assert.Contains("60 rows written", error, StringComparison.Ordinal);
        (exitCode, _, error) = await InvokeAsync("export", "--from", archive, "--tensor", "grad$|^inputs$", "--steps", ":25", "--format", "jsonl", "--out", jsonl);
        Assert.True(exitCode == 0, error);
        Assert.Contains("100 rows written", error, StringComparison.Ordinal);

        string printed = await PandasAsync($$"""
            import json, pandas as pd
            c = pd.read_csv({{Python(csv)}})
            j = pd.read_json({{Python(jsonl)}}, lines=True)
            g = c[c.tensor == "fc1.weight.grad"]
            i = c[c.tensor == "inputs"].iloc[0]
            print(json.dumps({
                "csv_columns": list(c.columns), "csv_rows": len(c), "csv_steps": [int(c.step.min()), int(c.step.max())],
                "abs_mean_dtype": str(c.abs_mean.dtype), "vanished_from": int(g[g.abs_mean < 1e-7].step.min()),
                "csv_edges": [str(x) for x in json.loads(i.histogram_edges)], "csv_raw": json.loads(i.raw_values),
                "jsonl_columns": list(j.columns), "jsonl_rows": len(j), "jsonl_ranks": sorted(int(r) for r in j["rank"].unique()),
                "jsonl_counts": [int(x) for x in j.histogram_counts.iloc[0]], "jsonl_step_dtype": str(j.step.dtype),
                "jsonl_edges": [str(x) for x in j[j.tensor == "inputs"].histogram_edges.iloc[0]],
            }))
            """);
        using var result = System.Text.Json.JsonDocument.Parse(printed);
        System.Text.Json.JsonElement r = result.RootElement;
        string[] columns = [.. ArchiveSchema.Columns.Select(c => c.Name)];
        Assert.Equal(columns, r.GetProperty("csv_columns").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(60, r.GetProperty("csv_rows").GetInt32());
        Assert.Equal([10, 29], r.GetProperty("csv_steps").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal("float64", r.GetProperty("abs_mean_dtype").GetString());
        Assert.Equal(20, r.GetProperty("vanished_from").GetInt32());
        Assert.Equal(["-inf", "0", "inf"], r.GetProperty("csv_edges").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal([-1.0, 0.5, 0.5, 2.0], r.GetProperty("csv_raw").EnumerateArray().Select(e => e.GetDouble()));
        Assert.Equal(columns, r.GetProperty("jsonl_columns").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(100, r.GetProperty("jsonl_rows").GetInt32());
        Assert.Equal(["-inf", "0", "inf"], r.GetProperty("jsonl_edges").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal([0, 1], r.GetProperty("jsonl_ranks").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal([10, 500, 514], r.GetProperty("jsonl_counts").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal("int64", r.GetProperty("jsonl_step_dtype").GetString());
    }

    [Fact]
    public async Task MonitorExportAndQuery_NameTheFile_WhenAnArchiveFileIsCorrupt_AndRefuseBadInput()
    {
        string archive = PathOf("archive");
        await using (var writer = new ArchiveWriter(new ArchiveOptions { Directory = archive }))
        {
            await writer.AppendAsync(Record("run-y", 0, 0), cancellationToken: TestContext.Current.CancellationToken);
        }

        string corrupt = Path.Combine(archive, "run-y", "rank-0", "part-20260102T030405000Z-deadbeef-000001.parquet");
        await File.WriteAllTextAsync(corrupt, "not parquet at all", TestContext.Current.CancellationToken);
        string output = PathOf("out.csv");
        (int exitCode, _, string error) = await InvokeAsync("export", "--from", archive, "--format", "csv", "--out", output);
        Assert.Equal(1, exitCode);
        Assert.Contains(corrupt, error, StringComparison.Ordinal);
        Assert.False(File.Exists(output));
        Assert.Empty(Directory.EnumerateFiles(_directory, "*.tmp"));

        (exitCode, _, error) = await InvokeAsync("query", "--from", archive, "SELECT count(*) FROM steps");
        Assert.Equal(1, exitCode);
        Assert.Contains("monitor query: ", error, StringComparison.Ordinal);
        File.Delete(corrupt);

        (exitCode, _, error) = await InvokeAsync("query", "--from", archive, "SELECT no_such_column FROM steps");
        Assert.Equal(1, exitCode);
        Assert.Contains("no_such_column", error, StringComparison.Ordinal);
        (exitCode, _, error) = await InvokeAsync("export", "--from", archive, "--steps", "9:3", "--out", output);
        Assert.NotEqual(0, exitCode);
        Assert.Contains("--steps '9:3'", error, StringComparison.Ordinal);
        (exitCode, _, error) = await InvokeAsync("export", "--from", archive, "--run", "no-such-run", "--out", output);
        Assert.Equal(1, exitCode);
        Assert.Contains("no archive files", error, StringComparison.Ordinal);
        (exitCode, _, error) = await InvokeAsync("query", "--from", PathOf("missing"), "SELECT 1");
        Assert.Equal(1, exitCode);
        Assert.Contains("no such file or directory", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MonitorArchive_OverMockKafka_WritesEveryRecord_AndCommitsItsOwnGroupsOffsets()
    {
        using var cluster = new MockKafkaCluster();
        string topic = "it-archive-" + Guid.NewGuid().ToString("N")[..8];
        string group = "it-archive-group-" + Guid.NewGuid().ToString("N")[..8];
        const int records = 40;
        Produce(cluster, topic, records);

        string archive = PathOf("archive");
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        var output = new StringWriter();
        var error = new StringWriter();
        Task<int> run = Monitor.Cli.MonitorCommand.Create()
            .Parse(["archive", "--kafka", cluster.BootstrapServers, "--topic", topic, "--group", group, "--dir", archive, "--max-file-age", "1s",
                "--kafka-property", "topic.metadata.refresh.interval.ms=500", "--listen", "http://127.0.0.1:0"])
            .InvokeAsync(new System.CommandLine.InvocationConfiguration { Output = output, Error = error }, stop.Token);

        long Committed()
        {
            using IConsumer<Ignore, Ignore> probe = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = cluster.BootstrapServers, GroupId = group }).Build();
            List<TopicPartitionOffset> offsets = probe.Committed([.. Enumerable.Range(0, 4).Select(p => new TopicPartition(topic, p))], TimeSpan.FromSeconds(10));
            return offsets.Where(o => o.Offset.Value > 0).Sum(o => o.Offset.Value);
        }

        try
        {
            await Eventually.TrueAsync(
                () => Directory.Exists(archive) && Directory.EnumerateFiles(archive, "*.parquet", SearchOption.AllDirectories).Any()
                    && (long)Duck($"SELECT count(*) FROM {Files(archive)}")[0][0]! == records * 3,
                "every record is in a closed archive file", explain: () => error.ToString());
            // Each rank has its own directory.
            Assert.Equal(4, Directory.GetDirectories(Path.Combine(archive, "kafka-run")).Length);
            await Eventually.TrueAsync(() => Committed() == records, "the archive's group committed every offset", explain: () => error.ToString());
        }
        finally
        {
            await stop.CancelAsync();
            Assert.Equal(0, await run);
        }

        Assert.Contains($"Archive: {records} records, {records * 3} rows", error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task MonitorServe_WithArchive_ArchivesInAGroupOfItsOwn_BesidesTheService()
    {
        using var cluster = new MockKafkaCluster();
        string topic = "it-serve-archive-" + Guid.NewGuid().ToString("N")[..8];
        const int records = 20;
        // Records of now: the service forgets a rank whose newest record is more than a day old once it has caught up
        // (the idle TTL), and would drop the series before the test reads them.
        Produce(cluster, topic, records, TimeProvider.System.GetUtcNow());
        string archive = PathOf("archive");
        await using ServeProcess serve = await ServeProcess.StartAsync(
            ["--kafka", cluster.BootstrapServers, "--topic", topic, "--dead-letter-topic", topic + ".dlq", "--group", topic + "-service",
                "--archive", archive, "--archive-group", topic + "-archive", "--archive-max-file-age", "1s",
                "--kafka-property", "topic.metadata.refresh.interval.ms=500"],
            TestContext.Current.CancellationToken);
        await Eventually.TrueAsync(
            () => Directory.Exists(archive) && Directory.EnumerateFiles(archive, "*.parquet", SearchOption.AllDirectories).Any()
                && (long)Duck($"SELECT count(*) FROM {Files(archive)}")[0][0]! == records * 3,
            "serve's archive holds every record");
        // The service analysed the same records in its own group; its /metrics carries the archive's too.
        await Eventually.TrueAsync(() => serve.GetAsync("metrics", TestContext.Current.CancellationToken).GetAwaiter().GetResult().Body.Contains("fc1.weight.grad", StringComparison.Ordinal), "the service exports the gradient's series", explain: serve.Output);
        string metrics = (await serve.GetAsync("metrics", TestContext.Current.CancellationToken)).Body;
        Assert.Contains($"\nmonitor_archive_records_total {records}\n", metrics, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("need --archive DIR", "--archive-retention", "7d")]
    [InlineData("--archive-max-file-mb must be at least 1", "--archive", "/tmp/x", "--archive-max-file-mb", "0")]
    [InlineData("'0s' is not a positive duration", "--archive", "/tmp/x", "--archive-max-file-age", "0s")]
    public async Task MonitorServe_RefusesInvalidArchiveOptions_NamingThem(string expected, params string[] args)
    {
        (int exitCode, _, string error) = await InvokeAsync(["serve", "--kafka", "127.0.0.1:1", .. args]);
        Assert.NotEqual(0, exitCode);
        Assert.Contains(expected, error, StringComparison.Ordinal);
    }

    [Fact]
    public void Readme_DocumentsEveryArchiveColumn()
    {
        string readme = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "README.md"));
        foreach (ArchiveColumn column in ArchiveSchema.Columns)
        {
            Assert.Contains($"| `{column.Name}` | {column.Type} | {column.Description} |", readme, StringComparison.Ordinal);
        }
    }

    /// <summary>Produces <paramref name="count"/> records of run kafka-run over ranks 0-3 (steps count/4) and waits for their delivery.</summary>
    private static void Produce(MockKafkaCluster cluster, string topic, int count, DateTimeOffset? start = null)
    {
        using var producer = new KafkaRecordProducer(new KafkaProducerOptions { BootstrapServers = cluster.BootstrapServers });
        int delivered = 0;
        for (int i = 0; i < count; i++)
        {
            var record = Record("kafka-run", (uint)(i % 4), i / 4, start: start);
            producer.Produce(topic, RecordKey.Format(record.RunId, (int)record.Rank), record.ToByteArray(), null, r =>
            {
                if (r.Delivered)
                {
                    Interlocked.Increment(ref delivered);
                }
            });
        }

        Assert.Equal(0, producer.Flush(TimeSpan.FromSeconds(30)));
        Assert.Equal(count, Volatile.Read(ref delivered));
    }

    private static string Python(string path) => "'" + path.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("'", "\\'", StringComparison.Ordinal) + "'";
}
