using System.Diagnostics;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using Monitor.Analysis;
using Monitor.Contracts;
using Monitor.Contracts.Transport;
using Monitor.Service.Notifications;

namespace Monitor.Service.Tests;

public sealed class AlertDispatcherTests : IAsyncLifetime
{
    private static readonly DateTimeOffset T0 = new(2025, 3, 1, 12, 0, 0, TimeSpan.Zero);
    // NotificationOptions' default resend interval.
    private static readonly TimeSpan Resend = TimeSpan.FromMinutes(1);

    private readonly FakeTimeProvider _time = new(T0);
    private HttpReceiver _receiver = null!;

    public async ValueTask InitializeAsync() => _receiver = await HttpReceiver.StartAsync();

    public async ValueTask DisposeAsync() => await _receiver.DisposeAsync();

    [Fact]
    public async Task Alertmanager_ReceivesV2AlertArray_WhenAnAlertFires()
    {
        await using var dispatcher = new AlertDispatcher(new NotificationOptions
        {
            AlertmanagerUrls = [_receiver.BaseAddress],
            ExternalLabels = new Dictionary<string, string> { ["cluster"] = "c1", ["run"] = "ignored: the alert has its own" },
            GeneratorUrlBase = new Uri("http://monitor.example:9464/"),
        }, timeProvider: _time);
        AlertTransition firing = Firing("run-1");

        dispatcher.Publish(firing);
        ReceivedRequest request = await NextRequestAsync(1);

        Assert.Equal("POST", request.Method);
        Assert.Equal("/api/v2/alerts", request.Path);
        Assert.StartsWith("application/json", request.Headers["Content-Type"], StringComparison.Ordinal);
        JsonElement alert = Assert.Single(request.Json.EnumerateArray().ToList());
        Assert.Equal(["annotations", "endsAt", "generatorURL", "labels", "startsAt"], alert.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
        Assert.Equal(
            new Dictionary<string, string>
            {
                ["alertname"] = "VanishingGradient", ["run"] = "run-1", ["rank"] = "0", ["tensor"] = "fc1.weight.grad",
                ["severity"] = "warning", ["team"] = "ml", ["cluster"] = "c1",
            },
            Map(alert.GetProperty("labels")));
        Assert.Equal(new Dictionary<string, string> { ["summary"] = "gradients vanish", ["description"] = "abs mean 1e-09 < 1e-07" }, Map(alert.GetProperty("annotations")));
        Assert.Equal(firing.ActiveSince, Time(alert, "startsAt"));
        Assert.Equal(T0 + (4 * Resend), Time(alert, "endsAt"));
        Assert.Equal($"http://monitor.example:9464/api/alerts/{firing.Identity.Fingerprint}", alert.GetProperty("generatorURL").GetString());
    }

    [Fact]
    public async Task Alertmanager_ResendsFiringAlertEveryInterval_WithEndsAtFourIntervalsAhead()
    {
        await using var dispatcher = new AlertDispatcher(new NotificationOptions { AlertmanagerUrls = [_receiver.BaseAddress] }, timeProvider: _time);
        AlertTransition firing = Firing("run-1");

        dispatcher.Publish(firing);
        JsonElement first = Assert.Single((await NextRequestAsync(1)).Json.EnumerateArray().ToList());
        _time.Advance(Resend);
        JsonElement second = Assert.Single((await NextRequestAsync(2)).Json.EnumerateArray().ToList());
        _time.Advance(Resend);
        JsonElement third = Assert.Single((await NextRequestAsync(3)).Json.EnumerateArray().ToList());

        Assert.Equal(T0 + (4 * Resend), Time(first, "endsAt"));
        Assert.Equal(T0 + Resend + (4 * Resend), Time(second, "endsAt"));
        Assert.Equal(T0 + (2 * Resend) + (4 * Resend), Time(third, "endsAt"));
        Assert.All([first, second, third], a => Assert.Equal(firing.ActiveSince, Time(a, "startsAt")));
        Assert.All([first, second, third], a => Assert.Equal("run-1", a.GetProperty("labels").GetProperty("run").GetString()));
        Assert.Equal(1, dispatcher.Statistics.FiringAlerts);
        // The receiver has the request before the sender has read the response and counted it.
        await Eventually.TrueAsync(() => dispatcher.Statistics.Alertmanager.Sent == 3, "three sends were counted");
    }

    [Fact]
    public async Task Alertmanager_SendsResolutionOnceWithEndsAt_AndStopsResending()
    {
        await using var dispatcher = new AlertDispatcher(new NotificationOptions { AlertmanagerUrls = [_receiver.BaseAddress] }, timeProvider: _time);
        AlertTransition firing = Firing("run-1");
        dispatcher.Publish(firing);
        await NextRequestAsync(1);

        AlertTransition resolved = Resolved(firing, at: T0 - TimeSpan.FromSeconds(5));
        dispatcher.Publish(resolved);
        JsonElement resolution = Assert.Single((await NextRequestAsync(2)).Json.EnumerateArray().ToList());
        _time.Advance(Resend);
        _time.Advance(Resend);
        // A marker: the sender is FIFO, so once this arrives, whatever the two ticks queued has been sent before it.
        dispatcher.Publish(Firing("run-marker"));
        await Eventually.TrueAsync(() => _receiver.Requests.Any(r => r.Body.Contains("run-marker", StringComparison.Ordinal)), "the marker alert arrived");

        Assert.Equal(resolved.At, Time(resolution, "endsAt"));
        Assert.Equal(firing.ActiveSince, Time(resolution, "startsAt"));
        List<JsonElement> run1 = [.. _receiver.Requests.SelectMany(r => r.Json.EnumerateArray()).Where(a => a.GetProperty("labels").GetProperty("run").GetString() == "run-1")];
        Assert.Equal(2, run1.Count);
        Assert.Equal(1, dispatcher.Statistics.FiringAlerts);
    }

    [Fact]
    public async Task Alertmanager_ClampsTimesToTheDispatcherClock_WhenEventTimesAreAhead()
    {
        await using var dispatcher = new AlertDispatcher(new NotificationOptions { AlertmanagerUrls = [_receiver.BaseAddress] }, timeProvider: _time);
        AlertTransition firing = Firing("run-1", activeSince: T0 + TimeSpan.FromHours(1), at: T0 + TimeSpan.FromHours(1));

        dispatcher.Publish(firing);
        JsonElement fired = Assert.Single((await NextRequestAsync(1)).Json.EnumerateArray().ToList());
        dispatcher.Publish(Resolved(firing, at: T0 + TimeSpan.FromHours(2)));
        JsonElement resolution = Assert.Single((await NextRequestAsync(2)).Json.EnumerateArray().ToList());

        Assert.Equal(T0, Time(fired, "startsAt"));
        Assert.Equal(T0 + (4 * Resend), Time(fired, "endsAt"));
        Assert.Equal(T0, Time(resolution, "startsAt"));
        Assert.Equal(T0, Time(resolution, "endsAt"));
    }

    [Fact]
    public async Task Alertmanager_IsNotSentPendingTransitions()
    {
        await using var dispatcher = new AlertDispatcher(new NotificationOptions { AlertmanagerUrls = [_receiver.BaseAddress] }, timeProvider: _time);

        dispatcher.Publish(Transition("run-pending", AlertState.Pending, AlertState.Inactive));
        dispatcher.Publish(Transition("run-pending", AlertState.Inactive, AlertState.Pending));
        dispatcher.Publish(Firing("run-1"));
        await NextRequestAsync(1);

        Assert.DoesNotContain(_receiver.Requests, r => r.Body.Contains("run-pending", StringComparison.Ordinal));
        await Eventually.TrueAsync(() => dispatcher.Statistics.Alertmanager.Sent == 1, "one send was counted");
    }

    [Fact]
    public async Task Webhook_ReceivesAlertmanagerStylePayload_WithTokenAndHeaders_ForFiringAndResolvedOnly()
    {
        await using var dispatcher = new AlertDispatcher(new NotificationOptions
        {
            Webhooks = [new WebhookTarget { Url = _receiver.Url("hooks/monitor"), BearerToken = "s3cret", Headers = new Dictionary<string, string> { ["X-Api-Key"] = "k1" } }],
            GeneratorUrlBase = new Uri("http://monitor.example:9464"),
        }, timeProvider: _time);
        AlertTransition firing = Firing("run-1");

        dispatcher.Publish(Transition("run-1", AlertState.Pending, AlertState.Inactive));
        dispatcher.Publish(firing);
        ReceivedRequest fired = await NextRequestAsync(1);
        dispatcher.Publish(Resolved(firing, at: T0));
        ReceivedRequest resolved = await NextRequestAsync(2);

        Assert.Equal("/hooks/monitor", fired.Path);
        Assert.Equal("Bearer s3cret", fired.Headers["Authorization"]);
        Assert.Equal("k1", fired.Headers["X-Api-Key"]);
        JsonElement document = fired.Json;
        Assert.Equal("4", document.GetProperty("version").GetString());
        Assert.Equal("firing", document.GetProperty("status").GetString());
        Assert.Equal("monitor", document.GetProperty("receiver").GetString());
        Assert.Equal("{}:{}", document.GetProperty("groupKey").GetString());
        Assert.Equal(0, document.GetProperty("truncatedAlerts").GetInt32());
        Assert.Empty(document.GetProperty("groupLabels").EnumerateObject());
        Assert.Equal("run-1", document.GetProperty("commonLabels").GetProperty("run").GetString());
        Assert.Equal("gradients vanish", document.GetProperty("commonAnnotations").GetProperty("summary").GetString());
        Assert.Equal("http://monitor.example:9464/", document.GetProperty("externalURL").GetString());
        JsonElement alert = Assert.Single(document.GetProperty("alerts").EnumerateArray().ToList());
        Assert.Equal(
            ["annotations", "at", "endsAt", "fingerprint", "generatorURL", "labels", "startsAt", "status", "step", "threshold", "value"],
            alert.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
        Assert.Equal("firing", alert.GetProperty("status").GetString());
        Assert.Equal("VanishingGradient", alert.GetProperty("labels").GetProperty("alertname").GetString());
        Assert.Equal(firing.Identity.Fingerprint, alert.GetProperty("fingerprint").GetString());
        Assert.Equal("0001-01-01T00:00:00Z", alert.GetProperty("endsAt").GetString());
        Assert.Equal(firing.ActiveSince, Time(alert, "startsAt"));
        Assert.Equal(firing.At, Time(alert, "at"));
        Assert.Equal(120, alert.GetProperty("step").GetInt64());
        Assert.Equal(1e-9, alert.GetProperty("value").GetDouble());
        Assert.Equal(1e-7, alert.GetProperty("threshold").GetDouble());
        Assert.Equal($"http://monitor.example:9464/api/alerts/{firing.Identity.Fingerprint}", alert.GetProperty("generatorURL").GetString());

        Assert.Equal("resolved", resolved.Json.GetProperty("status").GetString());
        JsonElement resolution = Assert.Single(resolved.Json.GetProperty("alerts").EnumerateArray().ToList());
        Assert.Equal("resolved", resolution.GetProperty("status").GetString());
        Assert.Equal(T0, Time(resolution, "endsAt"));
        Assert.Equal(2, _receiver.Requests.Count);
        await Eventually.TrueAsync(() => dispatcher.Statistics.Webhook.Sent == 2, "two sends were counted");
    }

    [Fact]
    public async Task Kafka_ReceivesOneMessagePerTransition_KeyedByFingerprint()
    {
        var bus = new InProcessBus();
        using IRecordProducer producer = bus.CreateProducer();
        using IRecordConsumer consumer = bus.CreateConsumer(MonitorTopics.Alerts);
        await using var dispatcher = new AlertDispatcher(new NotificationOptions { ExternalLabels = new Dictionary<string, string> { ["cluster"] = "c1" } }, producer, _time);
        AlertTransition pending = Transition("run-1", AlertState.Pending, AlertState.Inactive);
        AlertTransition firing = Transition("run-1", AlertState.Firing, AlertState.Pending, value: double.NaN);
        AlertTransition resolved = Resolved(firing, at: T0);

        dispatcher.Publish(pending);
        dispatcher.Publish(firing);
        dispatcher.Publish(resolved);
        List<TransportMessage> messages = [];
        while (messages.Count < 3 && consumer.Consume(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken) is { } message)
        {
            messages.Add(message);
        }

        Assert.Equal(3, messages.Count);
        Assert.All(messages, m => Assert.Equal(firing.Identity.Fingerprint, m.Key));
        JsonElement[] documents = [.. messages.Select(m => JsonDocument.Parse(m.Value).RootElement)];
        Assert.Equal(["pending", "firing", "resolved"], documents.Select(d => d.GetProperty("status").GetString()));
        Assert.Equal(["pending", "firing", "inactive"], documents.Select(d => d.GetProperty("state").GetString()));
        Assert.Equal(["inactive", "pending", "firing"], documents.Select(d => d.GetProperty("previousState").GetString()));
        JsonElement fired = documents[1];
        Assert.Equal(
            ["actions", "activeSince", "annotations", "at", "description", "fingerprint", "labels", "previousState", "schemaVersion", "state", "status", "step", "threshold", "value"],
            fired.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
        Assert.Equal(1, fired.GetProperty("schemaVersion").GetInt32());
        Assert.Equal("c1", fired.GetProperty("labels").GetProperty("cluster").GetString());
        Assert.Equal("fc1.weight.grad", fired.GetProperty("labels").GetProperty("tensor").GetString());
        Assert.Equal("gradients vanish", fired.GetProperty("annotations").GetProperty("summary").GetString());
        Assert.Equal("NaN", fired.GetProperty("value").GetString());
        Assert.Equal(1e-7, fired.GetProperty("threshold").GetDouble());
        Assert.Equal(120, fired.GetProperty("step").GetInt64());
        Assert.Equal("abs mean 1e-09 < 1e-07", fired.GetProperty("description").GetString());
        Assert.Equal(firing.ActiveSince, Time(fired, "activeSince"));
        Assert.Equal(firing.At, Time(fired, "at"));
        Assert.Equal(["stop"], fired.GetProperty("actions").EnumerateArray().Select(a => a.GetString()));
        await Eventually.TrueAsync(() => dispatcher.Statistics.Kafka.Sent == 3, "three deliveries were reported");
    }

    [Fact]
    public async Task Send_RetriesWithBackoff_WhenTargetAnswers503ThenSucceeds()
    {
        _receiver.Respond(503, 503, 200);
        await using var dispatcher = new AlertDispatcher(new NotificationOptions { AlertmanagerUrls = [_receiver.BaseAddress], Retry = FastRetry(5) });

        dispatcher.Publish(Firing("run-1"));
        await Eventually.TrueAsync(() => dispatcher.Statistics.Alertmanager.Sent == 1, "the third attempt succeeded");

        NotificationTargetStatistics statistics = dispatcher.Statistics.Alertmanager;
        Assert.Equal(2, statistics.Retries);
        Assert.Equal(3, statistics.Requests);
        Assert.Equal(0, statistics.Failed);
        Assert.Equal(3, _receiver.Requests.Count);
        Assert.All(_receiver.Requests, r => Assert.Equal("run-1", Assert.Single(r.Json.EnumerateArray().ToList()).GetProperty("labels").GetProperty("run").GetString()));
    }

    [Fact]
    public async Task Send_RetriesAfterTheServersDelay_WhenTargetAnswers429WithRetryAfter()
    {
        _receiver.RespondWithRetryAfter(429, "0");
        await using var dispatcher = new AlertDispatcher(new NotificationOptions
        {
            Webhooks = [new WebhookTarget { Url = _receiver.Url("hook") }],
            // Without Retry-After the wait would be an hour: only the server's 0 s lets this test finish.
            Retry = new NotificationRetryPolicy { MaxAttempts = 3, InitialBackoff = TimeSpan.FromHours(1), MaxBackoff = TimeSpan.FromHours(1) },
        });

        dispatcher.Publish(Firing("run-1"));
        await Eventually.TrueAsync(() => dispatcher.Statistics.Webhook.Sent == 1, "the retry succeeded");

        Assert.Equal(1, dispatcher.Statistics.Webhook.Retries);
        Assert.Equal(2, _receiver.Requests.Count);
    }

    [Fact]
    public async Task Send_DoesNotRetry_WhenTargetAnswers400()
    {
        _receiver.Respond(400);
        await using var dispatcher = new AlertDispatcher(new NotificationOptions { AlertmanagerUrls = [_receiver.BaseAddress], Retry = FastRetry(5) });

        dispatcher.Publish(Firing("run-refused"));
        await Eventually.TrueAsync(() => dispatcher.Statistics.Alertmanager.Failed == 1, "the refusal was counted");
        dispatcher.Publish(Firing("run-accepted"));
        await Eventually.TrueAsync(() => dispatcher.Statistics.Alertmanager.Sent == 1, "the next alert was sent");

        Assert.Equal(0, dispatcher.Statistics.Alertmanager.Retries);
        Assert.Equal(2, _receiver.Requests.Count);
        Assert.Contains("run-refused", _receiver.Requests[0].Body, StringComparison.Ordinal);
        Assert.Contains("run-accepted", _receiver.Requests[1].Body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Send_GivesUpAfterMaxAttempts_WhenTargetIsUnreachable()
    {
        var nobody = new Uri($"http://127.0.0.1:{FreePort()}/");
        await using var dispatcher = new AlertDispatcher(new NotificationOptions { AlertmanagerUrls = [nobody], Retry = FastRetry(3) });

        dispatcher.Publish(Firing("run-1"));
        await Eventually.TrueAsync(() => dispatcher.Statistics.Alertmanager.Failed == 1, "the alert was given up");

        Assert.Equal(2, dispatcher.Statistics.Alertmanager.Retries);
        Assert.Equal(3, dispatcher.Statistics.Alertmanager.Requests);
        Assert.Equal(0, dispatcher.Statistics.Alertmanager.Sent);
    }

    [Fact]
    public async Task FailingTarget_DelaysNeitherOtherTargetsNorShutdown()
    {
        var nobody = new Uri($"http://127.0.0.1:{FreePort()}/");
        await using var dispatcher = new AlertDispatcher(new NotificationOptions
        {
            // The failing Alertmanager waits in an hour-long backoff on the fake clock, which never moves here.
            AlertmanagerUrls = [nobody, _receiver.Url("healthy/")],
            Webhooks = [new WebhookTarget { Url = _receiver.Url("hook") }],
            Retry = new NotificationRetryPolicy { MaxAttempts = 10, InitialBackoff = TimeSpan.FromHours(1), MaxBackoff = TimeSpan.FromHours(1) },
        }, timeProvider: _time);

        dispatcher.Publish(Firing("run-1"));
        await Eventually.TrueAsync(() => _receiver.Requests.Count == 2, "the healthy Alertmanager and the webhook got the alert");
        await Eventually.TrueAsync(() => dispatcher.Statistics.Alertmanager.Retries >= 1, "the failing Alertmanager waits to retry");
        var clock = Stopwatch.StartNew();
        await dispatcher.DisposeAsync();

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"shutdown took {clock.Elapsed}");
        Assert.Contains(_receiver.Requests, r => r.Path == "/healthy/api/v2/alerts");
        Assert.Contains(_receiver.Requests, r => r.Path == "/hook");
        NotificationStatistics statistics = dispatcher.Statistics;
        Assert.Equal(1, statistics.Alertmanager.Sent);
        Assert.Equal(1, statistics.Alertmanager.Failed);
        Assert.Equal(1, statistics.Webhook.Sent);
    }

    [Fact]
    public async Task Publish_DropsAndCountsWithoutBlocking_WhenQueueIsFull()
    {
        var bus = new InProcessBus();
        using IRecordProducer producer = bus.CreateProducer();
        await using var dispatcher = new AlertDispatcher(new NotificationOptions { QueueCapacity = 3 }, producer, _time, logger: null, start: false);

        var clock = Stopwatch.StartNew();
        for (int i = 0; i < 10; i++)
        {
            dispatcher.Publish(Firing($"run-{i}"));
        }

        TimeSpan elapsed = clock.Elapsed;
        NotificationStatistics full = dispatcher.Statistics;
        dispatcher.Start();
        await Eventually.TrueAsync(() => dispatcher.Statistics.Kafka.Sent == 3, "the queued transitions were sent");

        Assert.True(elapsed < TimeSpan.FromSeconds(1), $"10 publishes took {elapsed}");
        Assert.Equal(3, full.Queued);
        Assert.Equal(7, full.Dropped);
        Assert.Equal(3, full.QueueLength);
        Assert.Equal(3, bus.ProducedCount(MonitorTopics.Alerts));
        Assert.Equal(0, dispatcher.Statistics.QueueLength);
    }

    [Fact]
    public async Task Publish_StillDeliversAResolutionTheFullQueueDropped_AtTheNextResendTick()
    {
        await using var dispatcher = new AlertDispatcher(new NotificationOptions { AlertmanagerUrls = [_receiver.BaseAddress], QueueCapacity = 1 },
            null, _time, logger: null, start: false);
        AlertTransition firing = Firing("run-1");

        dispatcher.Publish(firing);
        dispatcher.Publish(Resolved(firing, at: T0));
        Assert.Equal(1, dispatcher.Statistics.Dropped);
        dispatcher.Start();
        _time.Advance(Resend);
        ReceivedRequest request = await NextRequestAsync(1);

        // The queued firing transition was not sent: its alert had resolved by the time it was routed.
        JsonElement alert = Assert.Single(request.Json.EnumerateArray().ToList());
        Assert.Equal(T0, Time(alert, "endsAt"));
        Assert.Equal(0, dispatcher.Statistics.FiringAlerts);
        dispatcher.Publish(Firing("run-marker"));
        await Eventually.TrueAsync(() => _receiver.Requests.Any(r => r.Body.Contains("run-marker", StringComparison.Ordinal)), "the marker alert arrived");
        Assert.Equal(2, _receiver.Requests.Count);
    }

    [Fact]
    public async Task Publish_NeverThrows_AndBadAlertsDoNotBlockGoodOnes()
    {
        await using var dispatcher = new AlertDispatcher(new NotificationOptions
        {
            AlertmanagerUrls = [_receiver.BaseAddress],
            Webhooks = [new WebhookTarget { Url = _receiver.Url("hook") }],
        }, new ThrowingProducer(), _time, new ThrowingLogger());

        dispatcher.Publish(null!);
        dispatcher.Publish(Firing("run-bad-label", extraLabels: new Dictionary<string, string> { ["bad-name"] = "x" }));
        dispatcher.Publish(Firing("run-\ud800-lone-surrogate"));
        dispatcher.Publish(Firing("run-infinite", value: double.PositiveInfinity));
        dispatcher.Publish(Firing("run-good"));
        await Eventually.TrueAsync(() => dispatcher.Statistics.Alertmanager.Sent == 2 && dispatcher.Statistics.Webhook.Sent >= 3, "the good alerts were sent");
        await dispatcher.DisposeAsync();
        dispatcher.Publish(Firing("run-late"));

        NotificationStatistics statistics = dispatcher.Statistics;
        Assert.Equal(2, statistics.Dropped);
        Assert.Equal(2, statistics.Alertmanager.Failed);
        Assert.Equal(3, statistics.Webhook.Sent);
        Assert.Equal(1, statistics.Webhook.Failed);
        Assert.Equal(4, statistics.Kafka.Failed);
        string[] alertmanagerRuns = [.. _receiver.Requests.Where(r => r.Path == "/api/v2/alerts")
            .SelectMany(r => r.Json.EnumerateArray()).Select(a => a.GetProperty("labels").GetProperty("run").GetString()!)];
        Assert.Equal(["run-good", "run-infinite"], alertmanagerRuns.Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task WebhooksSettled_IsCalledOnceEveryWebhookAnswered_AndAtOnceWhenNoWebhookWantsTheTransition()
    {
        _receiver.Respond(503, 200, 200);
        await using var dispatcher = new AlertDispatcher(new NotificationOptions
        {
            Webhooks = [new WebhookTarget { Url = _receiver.Url("hook-a") }, new WebhookTarget { Url = _receiver.Url("hook-b") }],
            Retry = FastRetry(5),
        });
        int settled = 0, pendingSettled = 0;

        dispatcher.Publish(Transition("run-1", AlertState.Pending, AlertState.Inactive), () => Interlocked.Increment(ref pendingSettled));
        Assert.Equal(1, pendingSettled);
        dispatcher.Publish(Firing("run-1"), () => Interlocked.Increment(ref settled));

        await Eventually.TrueAsync(() => Volatile.Read(ref settled) == 1, "both webhooks are done with the firing alert");
        Assert.Equal(2, dispatcher.Statistics.Webhook.Sent);
        Assert.Equal(3, _receiver.Requests.Count);
    }

    [Fact]
    public async Task WebhooksSettled_IsCalled_WhenTheWebhookRefusesForGood()
    {
        _receiver.Respond(400);
        await using var dispatcher = new AlertDispatcher(new NotificationOptions { Webhooks = [new WebhookTarget { Url = _receiver.Url("hook") }], Retry = FastRetry(5) });
        int settled = 0;

        dispatcher.Publish(Firing("run-1"), () => Interlocked.Increment(ref settled));

        await Eventually.TrueAsync(() => Volatile.Read(ref settled) == 1, "the refused alert is settled");
        Assert.Equal(1, dispatcher.Statistics.Webhook.Failed);
    }

    [Fact]
    public async Task Redeliver_SendsToTheWebhooksOnly_AndSettles()
    {
        var bus = new InProcessBus();
        using IRecordProducer producer = bus.CreateProducer();
        await using var dispatcher = new AlertDispatcher(new NotificationOptions
        {
            Webhooks = [new WebhookTarget { Url = _receiver.Url("hook") }],
            AlertmanagerUrls = [_receiver.BaseAddress],
        }, producer);
        int settled = 0;

        dispatcher.Redeliver(Firing("run-1"), () => Interlocked.Increment(ref settled));

        await Eventually.TrueAsync(() => Volatile.Read(ref settled) == 1, "the redelivered alert is settled");
        ReceivedRequest request = Assert.Single(_receiver.Requests);
        Assert.Equal("/hook", request.Path);
        Assert.Equal(0, dispatcher.Statistics.Kafka.Requests);
        Assert.Equal(0, dispatcher.Statistics.Alertmanager.Requests);
    }

    private static NotificationRetryPolicy FastRetry(int attempts) =>
        new() { MaxAttempts = attempts, InitialBackoff = TimeSpan.FromMilliseconds(5), MaxBackoff = TimeSpan.FromMilliseconds(20) };

    private async Task<ReceivedRequest> NextRequestAsync(int count)
    {
        await Eventually.TrueAsync(() => _receiver.Requests.Count >= count, $"{count} requests arrived");
        return _receiver.Requests[count - 1];
    }

    internal static AlertTransition Firing(string run, DateTimeOffset? activeSince = null, DateTimeOffset? at = null, double value = 1e-9,
        IReadOnlyDictionary<string, string>? extraLabels = null) =>
        Transition(run, AlertState.Firing, AlertState.Pending, activeSince, at, value, extraLabels);

    internal static AlertTransition Resolved(AlertTransition firing, DateTimeOffset at) =>
        firing with { State = AlertState.Inactive, PreviousState = AlertState.Firing, At = at, Step = firing.Step + 10 };

    internal static AlertTransition Transition(string run, AlertState state, AlertState previous, DateTimeOffset? activeSince = null,
        DateTimeOffset? at = null, double value = 1e-9, IReadOnlyDictionary<string, string>? extraLabels = null)
    {
        var labels = new Dictionary<string, string>(extraLabels ?? new Dictionary<string, string>(), StringComparer.Ordinal)
        {
            [AlertLabels.AlertName] = "VanishingGradient",
            [AlertLabels.Run] = run,
            [AlertLabels.Rank] = "0",
            [AlertLabels.Tensor] = "fc1.weight.grad",
            [AlertLabels.Severity] = "warning",
            ["team"] = "ml",
        };
        return new AlertTransition(new AlertIdentity(labels), state, previous, 120, value, 1e-7, "abs mean 1e-09 < 1e-07",
            activeSince ?? T0 - TimeSpan.FromSeconds(30), at ?? T0 - TimeSpan.FromSeconds(10))
        {
            Annotations = new Dictionary<string, string> { ["summary"] = "gradients vanish", ["description"] = "abs mean 1e-09 < 1e-07" },
            Actions = ["stop"],
        };
    }

    private static Dictionary<string, string> Map(JsonElement element) =>
        element.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!);

    private static DateTimeOffset Time(JsonElement element, string property) =>
        DateTimeOffset.Parse(element.GetProperty(property).GetString()!, System.Globalization.CultureInfo.InvariantCulture);

    private static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }

    private sealed class ThrowingProducer : IRecordProducer
    {
        public void Produce(string topic, string key, byte[] value, IReadOnlyList<KeyValuePair<string, byte[]>>? headers, Action<DeliveryReport> onDelivery) =>
            throw new InvalidOperationException("broker on fire");

        public int Flush(TimeSpan timeout) => 0;

        public void Dispose()
        {
        }
    }

    private sealed class ThrowingLogger : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            throw new InvalidOperationException("log sink on fire");
    }
}
