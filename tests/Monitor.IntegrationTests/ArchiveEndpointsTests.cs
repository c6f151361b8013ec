using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Google.Protobuf;
using Monitor.Archive;
using Monitor.Contracts;
using Monitor.Contracts.Transport;
using Monitor.Service;
using Monitor.Transport.Kafka;
using static Monitor.IntegrationTests.ArchiveSupport;

namespace Monitor.IntegrationTests;

/// <summary>
/// <c>monitor archive --listen</c>: a real <c>monitor archive</c> process over a librdkafka mock cluster, scraped and
/// probed as Prometheus and Kubernetes would; its metrics against the README's archive table.
/// </summary>
public sealed class ArchiveEndpointsTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("monitor-archive-endpoints-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task MonitorArchive_MetricsMoveWithTheRecordsSent_AndProbesAnswer()
    {
        using var cluster = new MockKafkaCluster();
        string topic = "it-archive-metrics-" + Guid.NewGuid().ToString("N")[..8];
        string archive = Path.Combine(_directory, "archive");
        const int records = 24, junk = 3;
        Produce(cluster, topic, 0, records, junk);
        await using ServeProcess process = await ServeProcess.StartAsync("archive",
            ["--kafka", cluster.BootstrapServers, "--topic", topic, "--group", topic + "-archive", "--dir", archive, "--max-file-age", "1s",
                "--kafka-property", "topic.metadata.refresh.interval.ms=500"],
            TestContext.Current.CancellationToken);

        // Ready once the group assigned the partitions; healthy throughout.
        await Eventually.TrueAsync(() => Get(process, "readyz").Status == HttpStatusCode.OK, "/readyz answers 200", explain: process.Output);
        Assert.Matches(@"^ready: \d+ partition\(s\) of 'it-archive-metrics-[0-9a-f]+' assigned by group", Get(process, "readyz").Body);
        Assert.Equal((HttpStatusCode.OK, "ok"), Get(process, "healthz"));

        string metrics = "";
        await Eventually.TrueAsync(() =>
        {
            metrics = Get(process, "metrics").Body;
            return Value(metrics, "monitor_archive_records_total") == records && Value(metrics, "monitor_archive_files_open") == 0
                && Value(metrics, "monitor_archive_committed_offset") == records + junk;
        }, "every record is archived in closed files and committed", explain: () => metrics + process.Output());
        Assert.Equal(records + junk, Value(metrics, "monitor_archive_records_consumed_total"));
        Assert.Equal(records * 3, Value(metrics, "monitor_archive_rows_total"));
        Assert.Equal(junk, Value(metrics, "monitor_archive_records_failed_total", "reason=\"malformed\""));
        Assert.Equal(0, Value(metrics, "monitor_archive_records_failed_total", "reason=\"invalid\""));
        Assert.Equal(0, Value(metrics, "monitor_archive_write_failures_total"));
        Assert.Equal(0, Value(metrics, "monitor_archive_consumer_lag_records"));
        long onDisk = Directory.EnumerateFiles(archive, "*.parquet", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
        Assert.Equal(onDisk, Value(metrics, "monitor_archive_written_bytes_total"));
        Assert.Equal(Directory.EnumerateFiles(archive, "*.parquet", SearchOption.AllDirectories).Count(), Value(metrics, "monitor_archive_files_closed_total"));
        Assert.True(Value(metrics, "monitor_archive_commits_total") >= 1, metrics);
        double committedAt = Value(metrics, "monitor_archive_last_commit_timestamp_seconds");
        Assert.InRange(committedAt, DateTimeOffset.UtcNow.AddMinutes(-5).ToUnixTimeSeconds(), DateTimeOffset.UtcNow.AddMinutes(1).ToUnixTimeSeconds());

        // More records: the counters move on by as many.
        Produce(cluster, topic, records, 8, 0);
        await Eventually.TrueAsync(() =>
        {
            metrics = Get(process, "metrics").Body;
            return Value(metrics, "monitor_archive_records_total") == records + 8 && Value(metrics, "monitor_archive_committed_offset") == records + junk + 8;
        }, "the next records are counted and committed", explain: () => metrics + process.Output());
        Assert.Equal((records + 8) * 3, Value(metrics, "monitor_archive_rows_total"));
        Assert.True(Value(metrics, "monitor_archive_last_commit_timestamp_seconds") >= committedAt);
        Assert.Equal((HttpStatusCode.OK, "ok"), Get(process, "healthz"));
    }

    [Fact]
    public async Task ReadmeArchiveMetricReference_MatchesWhatMonitorArchiveExposes()
    {
        using var cluster = new MockKafkaCluster();
        string topic = "it-archive-reference-" + Guid.NewGuid().ToString("N")[..8];
        Produce(cluster, topic, 0, 8, 1);
        await using ServeProcess process = await ServeProcess.StartAsync("archive",
            ["--kafka", cluster.BootstrapServers, "--topic", topic, "--group", topic + "-archive", "--dir", Path.Combine(_directory, "archive"), "--max-file-age", "1s",
                "--kafka-property", "topic.metadata.refresh.interval.ms=500"],
            TestContext.Current.CancellationToken);
        Dictionary<string, MetricReferenceTests.Metric> exposed = [];
        // The per-partition series appear at the first check after the assignment, the commit's after the first file closed.
        await Eventually.TrueAsync(() =>
        {
            exposed = MetricReferenceTests.Exposed(Get(process, "metrics").Body);
            return exposed.Values.All(m => m.HasSamples) && exposed.ContainsKey("monitor_archive_committed_offset") && exposed.ContainsKey("monitor_archive_consumer_lag_records");
        }, "monitor archive exposes a sample of every metric", explain: process.Output);
        MetricReferenceTests.AssertSame(MetricReferenceTests.ReadmeReference("## Archive, export and query"), exposed);
    }

    [Fact]
    public async Task MonitorArchive_IsNotReady_WhileNoBrokerAnswers_ButHealthy()
    {
        // Nothing listens on port 1: the group never assigns partitions.
        await using ServeProcess process = await ServeProcess.StartAsync("archive",
            ["--kafka", "127.0.0.1:1", "--dir", Path.Combine(_directory, "archive")], TestContext.Current.CancellationToken);
        (HttpStatusCode status, string body) = Get(process, "readyz");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
        Assert.StartsWith("not ready: ", body, StringComparison.Ordinal);
        Assert.Equal((HttpStatusCode.OK, "ok"), Get(process, "healthz"));
        Assert.Contains("# TYPE monitor_archive_records_total counter", Get(process, "metrics").Body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Healthz_Answers503_OnceTheArchiverHasFailed()
    {
        using var cluster = new MockKafkaCluster();
        string topic = "it-archive-failure-" + Guid.NewGuid().ToString("N")[..8];
        string archive = Path.Combine(_directory, "archive");
        Directory.CreateDirectory(archive);
        // A file where the run's directory must go: the first write fails (as root too, unlike a read-only directory).
        await File.WriteAllTextAsync(Path.Combine(archive, "kafka-run"), "in the way", TestContext.Current.CancellationToken);
        Produce(cluster, topic, 0, 4, 0);
        using var consumer = new KafkaRecordConsumer(new KafkaConsumerOptions { BootstrapServers = cluster.BootstrapServers, Topic = topic, GroupId = topic + "-archive" });
        await using var archiver = new StepArchiver(consumer, new ArchiveOptions { Directory = archive });
        await using OperationsEndpoints endpoints = await Monitor.Cli.ArchiveCommands.StartEndpointsAsync(archiver, consumer, "http://127.0.0.1:0", null, null, null, TestContext.Current.CancellationToken);
        using var http = new HttpClient { BaseAddress = endpoints.BaseAddress, Timeout = TimeSpan.FromSeconds(5) };
        Assert.Equal("ok", await http.GetStringAsync(new Uri("healthz", UriKind.Relative), TestContext.Current.CancellationToken));
        archiver.Start();

        HttpResponseMessage? health = null;
        await Eventually.TrueAsync(() =>
        {
            health?.Dispose();
            health = http.GetAsync(new Uri("healthz", UriKind.Relative), TestContext.Current.CancellationToken).GetAwaiter().GetResult();
            return health.StatusCode == HttpStatusCode.ServiceUnavailable;
        }, "/healthz answers 503");
        using (health)
        {
            Assert.StartsWith("archiver failed: writing under " + archive, await health!.Content.ReadAsStringAsync(TestContext.Current.CancellationToken), StringComparison.Ordinal);
        }

        using HttpResponseMessage ready = await http.GetAsync(new Uri("readyz", UriKind.Relative), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        Assert.StartsWith("not ready: archiver failed: ", await ready.Content.ReadAsStringAsync(TestContext.Current.CancellationToken), StringComparison.Ordinal);
        string metrics = await http.GetStringAsync(new Uri("metrics", UriKind.Relative), TestContext.Current.CancellationToken);
        Assert.Equal(1, Value(metrics, "monitor_archive_write_failures_total"));
    }

    [Theory]
    [InlineData("not-a-url", "listen URL 'not-a-url' is not an absolute http:// or https:// URL")]
    [InlineData("ftp://127.0.0.1:9464", "listen URL 'ftp://127.0.0.1:9464' is not an absolute http:// or https:// URL")]
    [InlineData("https://127.0.0.1:9464", "listen URL 'https://127.0.0.1:9464' is https but no TLS certificate is given (--tls-cert)")]
    public async Task MonitorArchive_RefusesABadListenUrl_WithExitCode2(string listen, string expected)
    {
        (int exitCode, _, string error) = await InvokeAsync("archive", "--kafka", "127.0.0.1:1", "--dir", Path.Combine(_directory, "archive"), "--listen", listen);
        Assert.Equal(2, exitCode);
        Assert.Contains("monitor archive: " + expected, error, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(_directory, "archive")), "nothing is created before the options are checked");
    }

    [Fact]
    public async Task MonitorArchive_RefusesAListenAddressInUse_WithExitCode2()
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        string listen = $"http://127.0.0.1:{((IPEndPoint)taken.LocalEndpoint).Port}";
        (int exitCode, _, string error) = await InvokeAsync("archive", "--kafka", "127.0.0.1:1", "--dir", Path.Combine(_directory, "archive"), "--listen", listen);
        Assert.Equal(2, exitCode);
        Assert.Contains($"monitor archive: cannot listen on {listen}: ", error, StringComparison.Ordinal);
    }

    private static (HttpStatusCode Status, string Body) Get(ServeProcess process, string path) =>
        process.GetAsync(path, TestContext.Current.CancellationToken).GetAwaiter().GetResult();

    /// <summary>The sum of a metric's samples (those whose labels contain <paramref name="labels"/>); 0 when there are none.</summary>
    private static double Value(string exposition, string name, string? labels = null) => exposition.Split('\n')
        .Where(l => (l.StartsWith(name + " ", StringComparison.Ordinal) || l.StartsWith(name + "{", StringComparison.Ordinal))
            && (labels is null || l.Contains(labels, StringComparison.Ordinal)))
        .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture));

    /// <summary>
    /// Produces records <paramref name="first"/> to first + count - 1 of run kafka-run over ranks 0-3, and
    /// <paramref name="junk"/> messages that are not step records, and waits for their delivery.
    /// </summary>
    /// <summary>Sends records `first`..`first + count - 1` of run `kafka-run` (four ranks, rank = i % 4, step = i / 4) and `junk` undecodable messages, and waits until all are delivered.</summary>
    internal static void Produce(MockKafkaCluster cluster, string topic, int first, int count, int junk)
    {
        using var producer = new KafkaRecordProducer(new KafkaProducerOptions { BootstrapServers = cluster.BootstrapServers });
        int delivered = 0;
        void Delivered(DeliveryReport report)
        {
            if (report.Delivered)
            {
                Interlocked.Increment(ref delivered);
            }
        }

        for (int i = first; i < first + count; i++)
        {
            var record = Record("kafka-run", (uint)(i % 4), i / 4, start: TimeProvider.System.GetUtcNow());
            producer.Produce(topic, RecordKey.Format(record.RunId, (int)record.Rank), record.ToByteArray(), null, Delivered);
        }

        for (int i = 0; i < junk; i++)
        {
            producer.Produce(topic, "junk/" + i.ToString(CultureInfo.InvariantCulture), [0xff, 0xff, 0xff, (byte)i], null, Delivered);
        }

        Assert.Equal(0, producer.Flush(TimeSpan.FromSeconds(30)));
        Assert.Equal(count + junk, Volatile.Read(ref delivered));
    }
}
