using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Monitor.Analysis;
using Monitor.Analysis.Rules;
using Monitor.Contracts;
using Monitor.Contracts.Transport;
using Monitor.Contracts.V1;

namespace Monitor.Service.Tests;

/// <summary>
/// Activity listeners are process-wide: the tests that attach one run on their own, not in parallel with the others.
/// </summary>
[CollectionDefinition(nameof(ActivityListenerTests), DisableParallelization = true)]
public sealed class ActivityListenerTests;

/// <summary>
/// The service's <c>process</c> CONSUMER span, linked to the worker's span through the record's <c>traceparent</c>,
/// and the trace id that alerts carry, on the in-process bus.
/// </summary>
[Collection(nameof(ActivityListenerTests))]
public sealed class MonitorServiceOpenTelemetryTests
{
    private static readonly ActivityContext Worker = new(
        ActivityTraceId.CreateFromString("4bf92f3577b34da6a3ce929d0e0e4736"), ActivitySpanId.CreateFromString("00f067aa0ba902b7"), ActivityTraceFlags.Recorded);

    [Fact]
    public async Task Process_RunsInAConsumerSpanLinkedToTheWorkersSpan_AndTheAlertCarriesTheWorkersTraceId()
    {
        using var spans = new SpanCollector(MonitorService.ActivitySourceName);
        await using ServiceHarness harness = await ServiceHarness.StartAsync(rules: [new RuleBinding { Rule = new NonFiniteTensorRule() }]);

        harness.Send(NaNRecord("otel-run", 4), TraceContextHeaders.Create(Worker));
        await harness.WaitForProcessedAsync(1);
        await Eventually.TrueAsync(() => spans.Count == 1, "the process span ended");

        Activity span = Assert.Single(spans.Stopped);
        Assert.Equal("process monitor.steps", span.OperationName);
        Assert.Equal(ActivityKind.Consumer, span.Kind);
        // Linked, not parented: the record's processing is a trace of its own.
        Assert.Equal(default, span.ParentSpanId);
        Assert.NotEqual(Worker.TraceId, span.TraceId);
        ActivityLink link = Assert.Single(span.Links);
        Assert.Equal(Worker.TraceId, link.Context.TraceId);
        Assert.Equal(Worker.SpanId, link.Context.SpanId);
        Assert.Equal("kafka", span.GetTagItem("messaging.system"));
        Assert.Equal("process", span.GetTagItem("messaging.operation.type"));
        Assert.Equal(MonitorTopics.Steps, span.GetTagItem("messaging.destination.name"));
        Assert.Equal("0", span.GetTagItem("messaging.destination.partition.id"));
        Assert.Equal(0L, span.GetTagItem("messaging.kafka.offset"));
        Assert.Equal("otel-run/0", span.GetTagItem("messaging.kafka.message.key"));
        // The in-process bus has no consumer groups.
        Assert.Null(span.GetTagItem("messaging.consumer.group.name"));
        Assert.Equal(4L, span.GetTagItem("monitor.step"));
        ActivityEvent alertEvent = Assert.Single(span.Events);
        Assert.Equal("monitor.alert", alertEvent.Name);
        Assert.Contains(new KeyValuePair<string, object?>("alertname", "NonFiniteTensor"), alertEvent.Tags);
        Assert.Contains(new KeyValuePair<string, object?>("state", "firing"), alertEvent.Tags);

        AlertTransition fired = Assert.Single(harness.Alerts);
        Assert.Equal(AlertState.Firing, fired.State);
        Assert.Equal(new TraceContext(Worker.TraceId.ToHexString(), Worker.SpanId.ToHexString()), fired.TraceContext);
        using JsonDocument api = JsonDocument.Parse(await harness.ScrapeAsync("api/alerts"));
        Assert.Contains(Worker.TraceId.ToHexString(), api.RootElement.GetRawText(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AlertsFiredCounter_HasTheWorkersTraceAsExemplar_InOpenMetrics()
    {
        await using ServiceHarness harness = await ServiceHarness.StartAsync(rules: [new RuleBinding { Rule = new NonFiniteTensorRule() }]);

        harness.Send(NaNRecord("otel-exemplar", 1), TraceContextHeaders.Create(Worker));
        await harness.WaitForProcessedAsync(1);
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(harness.Service.BaseAddress!, "metrics"));
        request.Headers.Accept.Add(MediaTypeWithQualityHeaderValue.Parse("application/openmetrics-text; version=1.0.0"));
        using HttpResponseMessage response = await http.SendAsync(request, TestContext.Current.CancellationToken);
        string exposition = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);

        string line = Assert.Single(exposition.Split('\n'), l => l.StartsWith("monitor_alerts_fired_total{alertname=\"NonFiniteTensor\"}", StringComparison.Ordinal));
        Assert.Contains($"# {{trace_id=\"{Worker.TraceId.ToHexString()}\",span_id=\"{Worker.SpanId.ToHexString()}\"}}", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Process_IgnoresAMalformedTraceParent_AndStillAnalysesTheRecord()
    {
        using var spans = new SpanCollector(MonitorService.ActivitySourceName);
        await using ServiceHarness harness = await ServiceHarness.StartAsync(rules: [new RuleBinding { Rule = new NonFiniteTensorRule() }]);

        harness.Send(NaNRecord("otel-bad", 2), [new(TraceContextHeaders.TraceParent, Encoding.ASCII.GetBytes("00-not-a-trace-parent"))]);
        await harness.WaitForProcessedAsync(1);
        await Eventually.TrueAsync(() => spans.Count == 1, "the process span ended");

        Assert.Empty(Assert.Single(spans.Stopped).Links);
        AlertTransition fired = Assert.Single(harness.Alerts);
        Assert.True(fired.TraceContext.IsEmpty);
        Assert.Equal(1, harness.Service.Statistics.Decoded);
    }

    [Fact]
    public async Task UndecodableRecord_FailsItsSpan_AndKeepsTheTraceParentInTheDeadLetterTopic()
    {
        using var spans = new SpanCollector(MonitorService.ActivitySourceName);
        await using ServiceHarness harness = await ServiceHarness.StartAsync();
        IRecordConsumer deadLetters = harness.Bus.CreateConsumer(MonitorTopics.StepsDeadLetter);

        harness.SendRaw("otel-dlq/0", [0x0A, 0xFF, 0xFF], TraceContextHeaders.Create(Worker));
        await harness.WaitForProcessedAsync(1);
        await Eventually.TrueAsync(() => spans.Count == 1, "the process span ended");

        Activity span = Assert.Single(spans.Stopped);
        Assert.Equal(ActivityStatusCode.Error, span.Status);
        Assert.Equal("Malformed", span.GetTagItem("error.type"));
        TransportMessage dead = deadLetters.Consume(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken)!;
        Assert.True(TraceContextHeaders.TryExtract(dead.Headers, out ActivityContext carried));
        Assert.Equal(Worker.SpanId, carried.SpanId);
    }

    private static StepRecord NaNRecord(string run, long step)
    {
        StepRecord record = ServiceHarness.Record(run, 0, step, ("loss", Collection.Losses, 1.0));
        record.Tensors[0].Summary.NanCount = 1;
        return record;
    }
}

/// <summary>An <see cref="ActivityListener"/> that records every span of the given sources once it has ended.</summary>
internal sealed class SpanCollector : IDisposable
{
    private readonly ActivityListener _listener;
    private readonly List<Activity> _stopped = [];

    public SpanCollector(params string[] sources)
    {
        _listener = new ActivityListener
        {
            ShouldListenTo = source => sources.Contains(source.Name),
            Sample = (ref _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activity =>
            {
                lock (_stopped)
                {
                    _stopped.Add(activity);
                }
            },
        };
        ActivitySource.AddActivityListener(_listener);
    }

    public IReadOnlyList<Activity> Stopped
    {
        get
        {
            lock (_stopped)
            {
                return [.. _stopped];
            }
        }
    }

    public int Count => Stopped.Count;

    public void Dispose() => _listener.Dispose();
}
