using System.Text.Json;
using Microsoft.Extensions.Time.Testing;
using Monitor.Analysis;
using Monitor.Contracts;
using Monitor.Contracts.Transport;
using Monitor.Service.Notifications;

namespace Monitor.Service.Tests;

/// <summary>The trace id of the record that caused a transition, in each notification payload.</summary>
public sealed class AlertPayloadTraceContextTests : IAsyncLifetime
{
    private const string TraceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    private const string SpanId = "00f067aa0ba902b7";

    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2025, 3, 1, 12, 0, 0, TimeSpan.Zero));
    private HttpReceiver _receiver = null!;

    public async ValueTask InitializeAsync() => _receiver = await HttpReceiver.StartAsync();

    public async ValueTask DisposeAsync() => await _receiver.DisposeAsync();

    [Fact]
    public async Task Alertmanager_GetsTheTraceAsAnnotations_WithTheSameLabels()
    {
        await using var dispatcher = new AlertDispatcher(new NotificationOptions { AlertmanagerUrls = [_receiver.BaseAddress] }, timeProvider: _time);
        AlertTransition untraced = AlertDispatcherTests.Firing("run-1");
        AlertTransition traced = untraced with { TraceContext = new TraceContext(TraceId, SpanId) };

        dispatcher.Publish(traced);
        JsonElement alert = Assert.Single((await NextRequestAsync(1)).Json.EnumerateArray().ToList());

        // Alertmanager takes no other fields; annotations do not change its identity of the alert, nor ours.
        Assert.Equal(["annotations", "endsAt", "labels", "startsAt"], alert.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
        JsonElement annotations = alert.GetProperty("annotations");
        Assert.Equal(TraceId, annotations.GetProperty("trace_id").GetString());
        Assert.Equal(SpanId, annotations.GetProperty("span_id").GetString());
        Assert.Equal("gradients vanish", annotations.GetProperty("summary").GetString());
        Assert.False(alert.GetProperty("labels").TryGetProperty("trace_id", out _));
        Assert.Equal(untraced.Identity.Fingerprint, traced.Identity.Fingerprint);
    }

    [Fact]
    public async Task Webhook_GetsTraceIdAndSpanIdPerAlert_AndNothingWhenThereIsNone()
    {
        await using var dispatcher = new AlertDispatcher(new NotificationOptions { Webhooks = [new WebhookTarget { Url = _receiver.Url("hook") }] }, timeProvider: _time);

        dispatcher.Publish(AlertDispatcherTests.Firing("run-1") with { TraceContext = new TraceContext(TraceId, SpanId) });
        JsonElement traced = Assert.Single((await NextRequestAsync(1)).Json.GetProperty("alerts").EnumerateArray().ToList());
        dispatcher.Publish(AlertDispatcherTests.Firing("run-2"));
        JsonElement untraced = Assert.Single((await NextRequestAsync(2)).Json.GetProperty("alerts").EnumerateArray().ToList());

        Assert.Equal(TraceId, traced.GetProperty("traceId").GetString());
        Assert.Equal(SpanId, traced.GetProperty("spanId").GetString());
        // The webhook's annotations are the rule's: the ids are fields of their own there.
        Assert.False(traced.GetProperty("annotations").TryGetProperty("trace_id", out _));
        Assert.False(untraced.TryGetProperty("traceId", out _));
        Assert.False(untraced.TryGetProperty("spanId", out _));
    }

    [Fact]
    public async Task Kafka_GetsTraceIdAndSpanId_AndTheJsonOfTheApiToo()
    {
        var bus = new InProcessBus();
        using IRecordProducer producer = bus.CreateProducer();
        using IRecordConsumer consumer = bus.CreateConsumer(MonitorTopics.Alerts);
        await using var dispatcher = new AlertDispatcher(new NotificationOptions(), producer, _time);
        AlertTransition traced = AlertDispatcherTests.Firing("run-1") with { TraceContext = new TraceContext(TraceId, SpanId) };

        dispatcher.Publish(traced);
        TransportMessage message = consumer.Consume(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken)!;

        using JsonDocument document = JsonDocument.Parse(message.Value);
        Assert.Equal(TraceId, document.RootElement.GetProperty("traceId").GetString());
        Assert.Equal(SpanId, document.RootElement.GetProperty("spanId").GetString());
        Assert.Equal(traced.Identity.Fingerprint, message.Key);
        using JsonDocument api = JsonDocument.Parse(AlertJson.Serialize(traced));
        Assert.Equal(TraceId, api.RootElement.GetProperty("traceId").GetString());
        using JsonDocument untraced = JsonDocument.Parse(AlertJson.Serialize(AlertDispatcherTests.Firing("run-1")));
        Assert.False(untraced.RootElement.TryGetProperty("traceId", out _));
    }

    private async Task<ReceivedRequest> NextRequestAsync(int count)
    {
        await Eventually.TrueAsync(() => _receiver.Requests.Count >= count, $"{count} requests arrived");
        return _receiver.Requests[count - 1];
    }
}
