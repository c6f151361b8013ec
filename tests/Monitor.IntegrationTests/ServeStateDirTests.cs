using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Text.Json;
using Monitor.Cli;
using Monitor.Contracts;
using Monitor.Contracts.V1;
using Monitor.Service;
using Monitor.Tracing;
using Monitor.Transport.Kafka;

namespace Monitor.IntegrationTests;

/// <summary>
/// <c>monitor serve --state-dir</c> across restarts, through librdkafka's mock cluster (which outlives the services):
/// a clean stop and a killed process resume where the saved state left off, so every alert fires once, resolves once,
/// and a window that spans the restart fills at the step it would have without one.
/// </summary>
public sealed class ServeStateDirTests : IDisposable
{
    // VanishingGradient over 4 steps: the 4th vanishing step fires it, the first healthy one resolves it.
    private const string Rules = "rules:\n  - rule: VanishingGradient\n    parameters: { windowSteps: 4 }\n";
    private const float Vanishing = 1e-12f;
    private const float Healthy = 1f;

    private readonly string _root = Path.Combine(Path.GetTempPath(), "it-state-" + Guid.NewGuid().ToString("N")[..8]);

    public ServeStateDirTests() => Directory.CreateDirectory(_root);

    private static CancellationToken Cancellation => TestContext.Current.CancellationToken;

    private string StateDir => Path.Combine(_root, "state");

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public async Task Serve_StoppedCleanlyAndRestarted_ResolvesTheRestoredAlertOnce_AndReadsNoRecordTwice()
    {
        using var cluster = new MockKafkaCluster();
        string topic = "it-state-" + Guid.NewGuid().ToString("N")[..8];
        string[] args = await ServeArgumentsAsync(cluster, topic, "--state-interval", "1h");
        using var alerts = new AlertsTopic(cluster);
        await using var tracer = NewTracer(cluster, topic, "it-state-clean");

        await using (var first = await InProcessServe.StartAsync(args))
        {
            await TraceAsync(tracer, 0, 6, Vanishing);
            await Eventually.TrueAsync(() => alerts.Poll().Any(a => a.Status == "firing"), "the alert fired", explain: first.Output);
            await Eventually.TrueAsync(() => first.Metric($"monitor_records_consumed_total{{topic=\"{topic}\"}}") == 6, "the first service consumed 6 records", explain: first.Output);
            Assert.Equal(0, await first.StopAsync());
        }

        // Only the final save of the clean stop (the interval is an hour).
        Assert.Equal(["gen-0000000001"], Directory.GetDirectories(StateDir).Select(Path.GetFileName));
        await using (var second = await InProcessServe.StartAsync(args))
        {
            Assert.Equal(1, second.Metric("monitor_state_keys"));
            Assert.Equal(0, second.Metric("monitor_state_restore_failures_total"));
            Assert.Equal(1, second.Metric("monitor_alerts{alertname=\"VanishingGradient\",alertstate=\"firing\""));
            await TraceAsync(tracer, 6, 4, Healthy);
            await Eventually.TrueAsync(() => alerts.Poll().Any(a => a.Status == "resolved"), "the restored alert resolved", explain: second.Output);
            await Eventually.TrueAsync(() => second.Metric($"monitor_records_consumed_total{{topic=\"{topic}\"}}") == 4, "the second service consumed the 4 new records", explain: second.Output);
            // The resolution did not count as a new firing, and nothing the first service analysed was read again.
            Assert.Equal(0, second.Metric("monitor_alerts_fired_total{alertname=\"VanishingGradient\"}"));
            Assert.Equal(0, second.Metric("monitor_records_duplicate_total"));
            Assert.Equal(0, await second.StopAsync());
        }

        alerts.Poll();
        AlertMessage fired = Assert.Single(alerts.Messages, a => a.Status == "firing");
        AlertMessage resolved = Assert.Single(alerts.Messages, a => a.Status == "resolved");
        Assert.Equal(3, fired.Step);
        Assert.Equal(6, resolved.Step);
    }

    [Fact]
    public async Task Serve_KilledAndRestarted_ContinuesTheWindowFromTheIntervalSave_AndFiresOnceAtTheRightStep()
    {
        using var cluster = new MockKafkaCluster();
        string topic = "it-kill-" + Guid.NewGuid().ToString("N")[..8];
        // The killed member's session must expire before the restarted one is given the partitions.
        string[] args = await ServeArgumentsAsync(cluster, topic, "--state-interval", "200ms", "--kafka-property", "session.timeout.ms=6000");
        using var alerts = new AlertsTopic(cluster);
        await using var tracer = NewTracer(cluster, topic, "it-state-kill");

        await using (ServeProcess first = await ServeProcess.StartAsync(args, Cancellation))
        {
            await TraceAsync(tracer, 0, 2, Vanishing);
            // An interval save (no clean stop follows) that reflects both records.
            await Eventually.TrueAsync(() => SavedRecords() == 2, "an interval save covers the 2 records", explain: first.Output);
        }

        await using (ServeProcess second = await ServeProcess.StartAsync(args, Cancellation))
        {
            await TraceAsync(tracer, 2, 2, Vanishing);
            await Eventually.TrueAsync(() => alerts.Poll().Any(a => a.Status == "firing"), "the alert fired after the restart", explain: second.Output);
            await TraceAsync(tracer, 4, 2, Healthy);
            await Eventually.TrueAsync(() => alerts.Poll().Any(a => a.Status == "resolved"), "the alert resolved", explain: second.Output);
            string metrics = (await second.GetAsync("metrics", Cancellation)).Body;
            Assert.Equal([4.0], Prometheus.Samples(metrics, $"monitor_records_consumed_total{{topic=\"{topic}\"}}"));
        }

        alerts.Poll();
        // Steps 0 and 1 came from the saved window: without them the 4-step window would fill at step 5.
        Assert.Equal(3, Assert.Single(alerts.Messages, a => a.Status == "firing").Step);
        Assert.Equal(4, Assert.Single(alerts.Messages, a => a.Status == "resolved").Step);
    }

    [Fact]
    public async Task Serve_WithACorruptKeySnapshot_StartsThatKeyEmpty_RestoresTheOthers_AndCountsIt()
    {
        using var cluster = new MockKafkaCluster();
        string topic = "it-corrupt-" + Guid.NewGuid().ToString("N")[..8];
        string[] args = await ServeArgumentsAsync(cluster, topic);
        await using (var first = await InProcessServe.StartAsync(args))
        {
            await using (var a = NewTracer(cluster, topic, "it-corrupt-a"))
            await using (var b = NewTracer(cluster, topic, "it-corrupt-b"))
            {
                await TraceAsync(a, 0, 2, Vanishing);
                await TraceAsync(b, 0, 2, Vanishing);
                await Eventually.TrueAsync(() => first.Metric($"monitor_records_consumed_total{{topic=\"{topic}\"}}") >= 4, "the service consumed the records", explain: first.Output);
                Assert.Equal(0, await first.StopAsync());
            }
        }

        // Flip a byte in the middle of run a's snapshot: its checksum no longer matches.
        string generation = Directory.GetDirectories(StateDir).Single();
        using (JsonDocument checkpoint = JsonDocument.Parse(await File.ReadAllBytesAsync(Path.Combine(generation, "checkpoint.json"), Cancellation)))
        {
            JsonElement key = checkpoint.RootElement.GetProperty("keys").EnumerateArray().Single(k => k.GetProperty("run").GetString() == "it-corrupt-a");
            string snapshots = Path.Combine(generation, "snapshots.bin");
            byte[] bytes = await File.ReadAllBytesAsync(snapshots, Cancellation);
            bytes[key.GetProperty("offset").GetInt32() + (key.GetProperty("length").GetInt32() / 2)] ^= 0xFF;
            await File.WriteAllBytesAsync(snapshots, bytes, Cancellation);
        }

        await using var second = await InProcessServe.StartAsync(args);
        Assert.Equal(1, second.Metric("monitor_state_restore_failures_total"));
        Assert.Equal(1, second.Metric("monitor_state_keys"));
        Assert.True(second.IsRunning);
        Assert.Equal(0, await second.StopAsync());
    }

    [Fact]
    public async Task Serve_WithAnUnwritableStateDir_Exits2_SayingSo()
    {
        using var cluster = new MockKafkaCluster();
        string file = Path.Combine(_root, "a-file");
        await File.WriteAllTextAsync(file, "", Cancellation);
        // Below a regular file no directory can be made, whoever runs the test (root ignores permission bits).
        (int exitCode, string error) = await InProcessServe.RunAsync(
            ["serve", "--kafka", cluster.BootstrapServers, "--listen", $"http://127.0.0.1:{Ports.Free()}", "--state-dir", Path.Combine(file, "state")]);
        Assert.Equal(2, exitCode);
        Assert.Contains("state directory", error, StringComparison.Ordinal);
        Assert.Contains("is not writable", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_WithTheStateOfAnotherGroup_Exits2_NamingIt()
    {
        using var cluster = new MockKafkaCluster();
        string topic = "it-group-" + Guid.NewGuid().ToString("N")[..8];
        string[] args = await ServeArgumentsAsync(cluster, topic);
        await using (var first = await InProcessServe.StartAsync(args))
        {
            Assert.Equal(0, await first.StopAsync());
        }

        string[] otherGroup = [.. args.Select(a => a == "g-" + topic ? "other-" + topic : a)];
        (int exitCode, string error) = await InProcessServe.RunAsync(otherGroup);
        Assert.Equal(2, exitCode);
        Assert.Contains($"holds the state of consumer group 'g-{topic}'", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_WithAStateIntervalButNoStateDir_Exits2()
    {
        (int exitCode, string error) = await InProcessServe.RunAsync(["--kafka", "127.0.0.1:9", "--state-interval", "10s"]);
        Assert.Equal(2, exitCode);
        Assert.Contains("--state-interval needs --state-dir", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ServeHelp_ShowsTheStateOptions_WithTheDefaultInterval()
    {
        var output = new StringWriter();
        Assert.Equal(0, await MonitorCommand.InvokeAsync(["serve", "--help"], new InvocationConfiguration { Output = output, Error = output }, cancellationToken: Cancellation));
        string help = output.ToString();
        Assert.Contains("--state-dir", help, StringComparison.Ordinal);
        Assert.Contains("--state-interval", help, StringComparison.Ordinal);
        Assert.Contains(new MonitorServiceOptions().StateInterval.ToString("c", CultureInfo.InvariantCulture), help, StringComparison.Ordinal);
    }

    /// <summary>The sum over partitions of the next offsets in the newest generation's checkpoint (0: none yet).</summary>
    private long SavedRecords()
    {
        if (!Directory.Exists(StateDir)
            || Directory.GetDirectories(StateDir, "gen-*").Where(d => !d.EndsWith(".tmp", StringComparison.Ordinal)).Order(StringComparer.Ordinal).LastOrDefault() is not { } newest)
        {
            return 0;
        }

        try
        {
            using JsonDocument checkpoint = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(newest, "checkpoint.json")));
            return checkpoint.RootElement.GetProperty("offsets").EnumerateArray().Sum(o => o.GetProperty("nextOffset").GetInt64());
        }
        catch (Exception ex) when (ex is IOException or JsonException)
        {
            // Deleted as an older generation meanwhile.
            return 0;
        }
    }

    private async Task<string[]> ServeArgumentsAsync(MockKafkaCluster cluster, string topic, params string[] extra)
    {
        string rules = Path.Combine(_root, "rules.yaml");
        await File.WriteAllTextAsync(rules, Rules, Cancellation);
        return
        [
            "--kafka", cluster.BootstrapServers, "--kafka-property", "topic.metadata.refresh.interval.ms=500", "--topic", topic, "--group", "g-" + topic,
            "--rules", rules, "--state-dir", StateDir, .. extra,
        ];
    }

    private static StepTracer NewTracer(MockKafkaCluster cluster, string topic, string run) =>
        new(new TracerOptions { RunId = run, Topic = topic }, new KafkaRecordProducer(new KafkaProducerOptions { BootstrapServers = cluster.BootstrapServers }), ownsProducer: true);

    private static async Task TraceAsync(StepTracer tracer, int from, int count, float value)
    {
        CollectionSet gradients = CollectionSet.Of(Collection.Gradients);
        for (int step = from; step < from + count; step++)
        {
            tracer.BeginStep(step);
            tracer.AddValues("fc1.weight.grad", gradients, DType.Float32, [2], [value, -value]);
            tracer.EndStep();
        }

        Assert.True(await tracer.FlushAsync(TimeSpan.FromSeconds(30), Cancellation));
    }

    private sealed record AlertMessage(string Status, string AlertName, long Step);

    /// <summary>The messages of the alerts topic, read by a consumer group of its own from the beginning.</summary>
    private sealed class AlertsTopic(MockKafkaCluster cluster) : IDisposable
    {
        private readonly KafkaRecordConsumer _consumer = new(new KafkaConsumerOptions
        {
            BootstrapServers = cluster.BootstrapServers,
            Topic = MonitorTopics.Alerts,
            GroupId = "it-alerts-" + Guid.NewGuid().ToString("N")[..8],
            Properties = new Dictionary<string, string> { ["topic.metadata.refresh.interval.ms"] = "500" },
        });

        public List<AlertMessage> Messages { get; } = [];

        /// <summary>Reads what has arrived (a short wait when nothing has).</summary>
        public List<AlertMessage> Poll()
        {
            while (_consumer.Consume(TimeSpan.FromMilliseconds(50), Cancellation) is { } message)
            {
                using JsonDocument json = JsonDocument.Parse(message.Value);
                JsonElement root = json.RootElement;
                Messages.Add(new AlertMessage(root.GetProperty("status").GetString()!, root.GetProperty("labels").GetProperty("alertname").GetString()!, root.GetProperty("step").GetInt64()));
            }

            return Messages;
        }

        public void Dispose() => _consumer.Dispose();
    }

    /// <summary><c>monitor serve</c> invoked in this process (the real command line), stopped by cancelling it as Ctrl+C does.</summary>
    private sealed class InProcessServe : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly StringWriter _output = new();
        private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(5) };
        private Task<int>? _run;

        private InProcessServe(int port) => BaseAddress = new Uri($"http://127.0.0.1:{port}/");

        public Uri BaseAddress { get; }

        public bool IsRunning => _run is { IsCompleted: false };

        public static async Task<InProcessServe> StartAsync(string[] arguments)
        {
            var serve = new InProcessServe(Ports.Free());
            serve._run = MonitorCommand.InvokeAsync(["serve", "--listen", serve.BaseAddress.ToString().TrimEnd('/'), .. arguments],
                new InvocationConfiguration { Output = serve._output, Error = serve._output }, cancellationToken: serve._stop.Token);
            await Eventually.TrueAsync(() => serve._run.IsCompleted || serve.Status("readyz") == HttpStatusCode.OK, "monitor serve is ready", explain: serve.Output);
            Assert.False(serve._run.IsCompleted, "monitor serve exited: " + serve.Output());
            return serve;
        }

        /// <summary>Runs a command line to its end (one expected to exit at once).</summary>
        public static async Task<(int ExitCode, string Error)> RunAsync(string[] arguments)
        {
            var error = new StringWriter();
            int exitCode = await MonitorCommand.InvokeAsync(arguments[0] == "serve" ? arguments : ["serve", "--listen", $"http://127.0.0.1:{Ports.Free()}", .. arguments],
                new InvocationConfiguration { Output = error, Error = error }, cancellationToken: Cancellation);
            return (exitCode, error.ToString());
        }

        public string Output() => _output.ToString();

        /// <summary>The one sample whose line starts with <paramref name="prefix"/>, NaN when there is none.</summary>
        public double Metric(string prefix)
        {
            string exposition = _http.GetStringAsync(new Uri(BaseAddress, "metrics"), Cancellation).GetAwaiter().GetResult();
            IReadOnlyList<double> samples = Prometheus.Samples(exposition, prefix);
            return samples.Count == 1 ? samples[0] : double.NaN;
        }

        public async Task<int> StopAsync()
        {
            await _stop.CancelAsync();
            return await _run!;
        }

        public async ValueTask DisposeAsync()
        {
            if (_run is { IsCompleted: false })
            {
                await StopAsync();
            }

            _stop.Dispose();
            _http.Dispose();
        }

        private HttpStatusCode Status(string path)
        {
            try
            {
                using HttpResponseMessage response = _http.GetAsync(new Uri(BaseAddress, path), Cancellation).GetAwaiter().GetResult();
                return response.StatusCode;
            }
            catch (HttpRequestException)
            {
                return 0;
            }
        }
    }
}
