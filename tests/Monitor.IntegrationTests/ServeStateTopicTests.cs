using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Monitor.Contracts;
using Monitor.Transport.Kafka;

namespace Monitor.IntegrationTests;

/// <summary>
/// <c>monitor serve --state-topic</c>: two replicas in one consumer group over librdkafka's mock cluster (hosted by
/// this test process, so it outlives them), two real sample training jobs with vanishing gradients, and the replica
/// that owns a rank killed with SIGKILL while the job runs, then restarted. Every alert must fire exactly once and
/// resolve exactly once, on the alerts topic (read committed) and on a webhook. The webhook gets every notification at
/// least once; one the killed replica had delivered just before its death, but not yet tombstoned in the changelog's
/// outbox, comes again from the new owner, identical (same fingerprint, status, startsAt and endsAt).
/// </summary>
public sealed partial class ServeStateTopicTests(ITestOutputHelper output)
{
    private static CancellationToken Cancellation => TestContext.Current.CancellationToken;

    [Fact]
    public async Task TwoReplicas_OneKilledWithSigkillAndRestarted_EveryAlertFiresAndResolvesExactlyOnce_OnTheAlertsTopicAndTheWebhook()
    {
        await using var webhook = await WebhookRecorder.StartAsync();
        using var cluster = new MockKafkaCluster();
        string id = Guid.NewGuid().ToString("N")[..8];
        string topic = "it-eos-" + id;
        string run = "eos-" + id;
        string[] Arguments(string instance) =>
        [
            "--kafka", cluster.BootstrapServers, "--kafka-property", "topic.metadata.refresh.interval.ms=500",
            // The killed member's partitions move once its session expires.
            "--kafka-property", "session.timeout.ms=6000",
            "--topic", topic, "--group", "g-" + topic, "--state-topic", "state-" + id, "--commit-interval", "200ms",
            "--instance-id", instance, "--webhook", webhook.Url.ToString(),
        ];

        using var alerts = new CommittedAlerts(cluster.BootstrapServers);
        ServeProcess a = await ServeProcess.StartAsync(Arguments("a"), Cancellation);
        ServeProcess b = await ServeProcess.StartAsync(Arguments("b"), Cancellation);
        var workers = new List<ChildServer>();
        try
        {
            foreach (ServeProcess replica in (ServeProcess[])[a, b])
            {
                await Eventually.TrueAsync(() => replica.GetAsync("readyz", Cancellation).GetAwaiter().GetResult().Status == HttpStatusCode.OK, "the replica is ready", explain: replica.Output);
            }

            for (int rank = 0; rank < 2; rank++)
            {
                var worker = new ChildServer($"sample job rank {rank}");
                worker.Launch("dotnet", Repository.Root,
                [
                    Path.Combine(AppContext.BaseDirectory, "monitor-sample-training.dll"), "--kafka", cluster.BootstrapServers, "--topic", topic,
                    "--run", run, "--rank", rank.ToString(System.Globalization.CultureInfo.InvariantCulture), "--world-size", "2",
                    "--steps", "500", "--fault", "vanishing-gradients", "--fault-at", "20", "--step-delay-ms", "30",
                ]);
                workers.Add(worker);
            }

            // The replica that holds rank 0 (it exports the rank's alerts), once one of them has reached the webhook:
            // killed, it leaves firing alerts to hand over.
            string rank0 = $"run=\"{run}\",rank=\"0\"";
            ServeProcess? owner = null;
            await Eventually.TrueAsync(() => (owner = Owner(rank0, a, b)) is not null && webhook.Firing().Count > 0,
                "a replica fires an alert of rank 0 and the webhook has an alert", 120, () => a.Output() + b.Output());
            Assert.True(workers.All(w => w.IsRunning), "the jobs are still training when the replica is killed");
            await owner!.DisposeAsync();
            string killedOutput = owner.Output();
            ServeProcess restarted = await ServeProcess.StartAsync(Arguments(owner == a ? "a" : "b"), Cancellation);
            if (owner == a)
            {
                a = restarted;
            }
            else
            {
                b = restarted;
            }

            foreach (ChildServer worker in workers)
            {
                await Eventually.TrueAsync(() => !worker.IsRunning, "the job finished", 180, worker.Output);
            }

            // The jobs' end-of-run records resolve whatever still fires.
            await Eventually.TrueAsync(() =>
                {
                    List<(string Fingerprint, string Status)> topic = alerts.Poll();
                    List<(string Fingerprint, string Status)> hook = webhook.Distinct();
                    return Unresolved(hook) == 0 && Unresolved(topic) == 0 && FiredAlerts(topic).SetEquals(FiredAlerts(hook));
                },
                "every alert fired is resolved on the webhook, and the alerts topic has them all, resolved", 120,
                () => $"alerts topic: {Describe(alerts.Poll())}\nwebhook: {Describe(webhook.All())}\nthe killed replica:\n{killedOutput}\nthe replicas now:\n{a.Output()}\n{b.Output()}");
            List<(string Fingerprint, string Status)> topicAlerts = alerts.Poll();
            Assert.Contains(topicAlerts, t => t.Status == "firing");
            AssertOnce(topicAlerts, "alerts topic");
            AssertOnce(webhook.Distinct(), "webhook");
            // Only what a new owner sent again (it logs how many) may arrive twice.
            int resent = Resent().Matches(string.Join('\n', a.ServiceLines().Concat(b.ServiceLines()))).Sum(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
            int twice = webhook.All().Count - webhook.Distinct().Count;
            output.WriteLine($"{FiredAlerts(topicAlerts).Count} alerts; the new owners sent {resent} committed notifications again, {twice} of which the webhook had had");
            Assert.True(twice <= resent, $"the webhook got {twice} notifications twice, but the new owners sent only {resent} again");
        }
        finally
        {
            foreach (ChildServer worker in workers)
            {
                await worker.StopAsync();
            }

            await a.DisposeAsync();
            await b.DisposeAsync();
        }
    }

    [Fact]
    public async Task Replica_KilledWhileTheWebhookRefusedItsCommittedAlerts_TheRestartedReplicaSendsThemAgain_NoneLost()
    {
        await using var webhook = await WebhookRecorder.StartAsync();
        webhook.Refusing = true;
        using var cluster = new MockKafkaCluster();
        string id = Guid.NewGuid().ToString("N")[..8];
        string topic = "it-outbox-" + id;
        string[] arguments =
        [
            "--kafka", cluster.BootstrapServers, "--kafka-property", "topic.metadata.refresh.interval.ms=500",
            "--topic", topic, "--group", "g-" + topic, "--state-topic", "state-" + id, "--commit-interval", "200ms",
            "--instance-id", "a", "--webhook", webhook.Url.ToString(),
        ];
        using var alerts = new CommittedAlerts(cluster.BootstrapServers);
        ServeProcess replica = await ServeProcess.StartAsync(arguments, Cancellation);
        var worker = new ChildServer("sample job");
        try
        {
            await Eventually.TrueAsync(() => replica.GetAsync("readyz", Cancellation).GetAwaiter().GetResult().Status == HttpStatusCode.OK, "the replica is ready", explain: replica.Output);
            worker.Launch("dotnet", Repository.Root,
            [
                Path.Combine(AppContext.BaseDirectory, "monitor-sample-training.dll"), "--kafka", cluster.BootstrapServers, "--topic", topic,
                "--run", "outbox-" + id, "--steps", "300", "--fault", "vanishing-gradients", "--fault-at", "10", "--step-delay-ms", "30",
            ]);

            // Notifications go out only once committed: a refused one is committed, and its replica dies before any
            // webhook took it.
            await Eventually.TrueAsync(() => webhook.Refused > 0, "the replica tries to notify the webhook", 120, replica.Output);
            await replica.DisposeAsync();
            // Nothing is committed between the kill and the restart.
            List<(string Fingerprint, string Status)> committed = [];
            await Eventually.TrueAsync(() => (committed = alerts.Poll()).Any(t => t.Status == "firing"), "the alerts topic has the committed alerts");
            webhook.Refusing = false;
            replica = await ServeProcess.StartAsync(arguments, Cancellation);
            await Eventually.TrueAsync(() => !worker.IsRunning, "the job finished", 180, worker.Output);
            await Eventually.TrueAsync(() =>
                {
                    List<(string Fingerprint, string Status)> topic = alerts.Poll();
                    List<(string Fingerprint, string Status)> hook = webhook.Distinct();
                    return Unresolved(hook) == 0 && Unresolved(topic) == 0 && FiredAlerts(hook).IsSupersetOf(FiredAlerts(committed)) && FiredAlerts(topic).SetEquals(FiredAlerts(hook));
                },
                "every alert committed before the kill reaches the webhook, fired and resolved", 120,
                () => $"committed before the kill: {Describe(committed)}\nwebhook: {Describe(webhook.All())}\n{replica.Output()}");
            Assert.Contains(replica.ServiceLines(), line => Resent().IsMatch(line));
            AssertOnce(webhook.Distinct(), "webhook");
            AssertOnce(alerts.Poll(), "alerts topic");
        }
        finally
        {
            await worker.StopAsync();
            await replica.DisposeAsync();
        }
    }

    [Fact]
    public async Task Serve_StateTopicWithStateDir_OrCommitIntervalWithoutStateTopic_ExitsWith2()
    {
        var output = new StringWriter();
        var config = new System.CommandLine.InvocationConfiguration { Output = output, Error = output };
        Assert.Equal(2, await Monitor.Cli.MonitorCommand.InvokeAsync(
            ["serve", "--kafka", "127.0.0.1:1", "--state-topic", "s", "--state-dir", Path.GetTempPath()], config, TextReader.Null, Cancellation));
        Assert.Contains("--state-topic and --state-dir exclude each other", output.ToString(), StringComparison.Ordinal);
        output.GetStringBuilder().Clear();
        Assert.Equal(2, await Monitor.Cli.MonitorCommand.InvokeAsync(["serve", "--kafka", "127.0.0.1:1", "--commit-interval", "1s"], config, TextReader.Null, Cancellation));
        Assert.Contains("--commit-interval and --instance-id need --state-topic", output.ToString(), StringComparison.Ordinal);
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"; (\d+) committed notifications not known delivered are sent to the webhooks again")]
    private static partial System.Text.RegularExpressions.Regex Resent();

    /// <summary>The replica with a firing alert of the given run and rank labels.</summary>
    private static ServeProcess? Owner(string runAndRank, params ServeProcess[] replicas) =>
        replicas.FirstOrDefault(r => r.GetAsync("metrics", Cancellation).GetAwaiter().GetResult().Body.Split('\n').Any(line =>
            line.StartsWith("monitor_alerts{", StringComparison.Ordinal) && line.Contains("alertstate=\"firing\"", StringComparison.Ordinal)
            && line.Contains(runAndRank, StringComparison.Ordinal)));

    private static HashSet<string> FiredAlerts(List<(string Fingerprint, string Status)> transitions) =>
        [.. transitions.Where(t => t.Status == "firing").Select(t => t.Fingerprint)];

    private static int Unresolved(List<(string Fingerprint, string Status)> transitions) =>
        transitions.GroupBy(t => t.Fingerprint).Count(g => g.Count(t => t.Status == "firing") != g.Count(t => t.Status == "resolved"));

    private static string Describe(List<(string Fingerprint, string Status)> transitions) =>
        string.Join(", ", transitions.GroupBy(t => t.Fingerprint).Select(g => $"{g.Key}: {string.Join("/", g.Select(t => t.Status))}"));

    private static void AssertOnce(List<(string Fingerprint, string Status)> transitions, string where)
    {
        foreach (IGrouping<string, (string Fingerprint, string Status)> alert in transitions.Where(t => t.Status is "firing" or "resolved").GroupBy(t => t.Fingerprint))
        {
            Assert.True(alert.Count(t => t.Status == "firing") == 1 && alert.Count(t => t.Status == "resolved") == 1,
                $"{where}: alert {alert.Key} had {string.Join(", ", alert.Select(t => t.Status))}");
        }
    }

    /// <summary>The alerts topic as a read-committed consumer of its own group sees it, from the beginning.</summary>
    private sealed class CommittedAlerts(string bootstrap) : IDisposable
    {
        private readonly KafkaRecordConsumer _consumer = new(new KafkaConsumerOptions
        {
            BootstrapServers = bootstrap,
            Topic = MonitorTopics.Alerts,
            GroupId = "it-alerts-" + Guid.NewGuid().ToString("N")[..8],
            ExactlyOnce = true,
            Properties = new Dictionary<string, string> { ["topic.metadata.refresh.interval.ms"] = "500" },
        });

        private readonly List<(string Fingerprint, string Status)> _messages = [];

        public List<(string Fingerprint, string Status)> Poll()
        {
            while (_consumer.Consume(TimeSpan.FromMilliseconds(50), Cancellation) is { } message)
            {
                using JsonDocument json = JsonDocument.Parse(message.Value);
                _messages.Add((message.Key!, json.RootElement.GetProperty("status").GetString()!));
            }

            return [.. _messages];
        }

        public void Dispose() => _consumer.Dispose();
    }

    /// <summary>A webhook receiver (Kestrel on 127.0.0.1) that keeps every alert of every notification.</summary>
    private sealed class WebhookRecorder : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private readonly ConcurrentQueue<(string Fingerprint, string Status, string Times)> _alerts = new();
        private int _refused;

        /// <summary>While true, every request is answered 503 (retryable) and nothing is recorded.</summary>
        public bool Refusing { get; set; }

        /// <summary>Requests answered 503 so far.</summary>
        public int Refused => Volatile.Read(ref _refused);

        private WebhookRecorder(WebApplication app) => _app = app;

        public Uri Url { get; private set; } = null!;

        public static async Task<WebhookRecorder> StartAsync()
        {
            WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            var recorder = new WebhookRecorder(builder.Build());
            recorder._app.MapPost("/hook", async (HttpContext context) =>
            {
                if (recorder.Refusing)
                {
                    Interlocked.Increment(ref recorder._refused);
                    return Results.StatusCode(503);
                }

                using JsonDocument document = await JsonDocument.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted);
                foreach (JsonElement alert in document.RootElement.GetProperty("alerts").EnumerateArray())
                {
                    recorder._alerts.Enqueue((alert.GetProperty("fingerprint").GetString()!, alert.GetProperty("status").GetString()!,
                        alert.GetProperty("startsAt").GetString() + "/" + alert.GetProperty("endsAt").GetString()));
                }

                return Results.Ok();
            });
            await recorder._app.StartAsync(Cancellation);
            recorder.Url = new Uri(recorder._app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First() + "/hook");
            return recorder;
        }

        /// <summary>Every notification received, in order.</summary>
        public List<(string Fingerprint, string Status)> All() => [.. _alerts.Select(a => (a.Fingerprint, a.Status))];

        /// <summary>The notifications received, an identical one received again (a redelivery) counted once.</summary>
        public List<(string Fingerprint, string Status)> Distinct() => [.. _alerts.Distinct().Select(a => (a.Fingerprint, a.Status))];

        public List<(string Fingerprint, string Status)> Firing() => [.. _alerts.Where(a => a.Status == "firing").Select(a => (a.Fingerprint, a.Status))];

        public async ValueTask DisposeAsync()
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }
}
