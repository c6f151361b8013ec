using System.Diagnostics;
using System.Text;
using Monitor.Contracts;
using Monitor.Contracts.Transport;
using Monitor.Contracts.V1;

namespace Monitor.Tracing.Tests;

/// <summary>
/// Activity listeners are process-wide: tests that attach one, or that need none attached, run on their own, not in
/// parallel with the other tests of this assembly.
/// </summary>
[CollectionDefinition(nameof(ActivityListenerTests), DisableParallelization = true)]
public sealed class ActivityListenerTests;

/// <summary>The worker's <c>send</c> PRODUCER span and the trace context it writes into the record's headers.</summary>
[Collection(nameof(ActivityListenerTests))]
public sealed class StepTracerOpenTelemetryTests
{
    private const string Topic = "test.steps";
    private static readonly CollectionSet Losses = CollectionSet.Of(Collection.Losses);
    private static readonly ActivitySource Training = new("Monitor.Tracing.Tests.Training");

    [Fact]
    public async Task EndStep_SendsAProducerSpan_AndItsTraceParentInTheHeaders_WhenAListenerIsAttached()
    {
        using var spans = new SpanCollector(StepTracer.ActivitySourceName);
        var producer = new TestRecordProducer();
        await using var tracer = new StepTracer(Options("otel-send"), producer);

        Step(tracer, 7);
        await Poll.UntilAsync(() => tracer.Statistics.Delivered == 1 && spans.Count == 1, "the record delivered and its span ended");

        ProducedMessage message = Assert.Single(producer.Messages);
        Activity span = Assert.Single(spans.Stopped);
        Assert.Equal("send test.steps", span.OperationName);
        Assert.Equal(ActivityKind.Producer, span.Kind);
        Assert.Equal(ActivityStatusCode.Unset, span.Status);
        Assert.Equal(default, span.ParentSpanId);
        Assert.Equal("kafka", span.GetTagItem("messaging.system"));
        Assert.Equal("send", span.GetTagItem("messaging.operation.type"));
        Assert.Equal("send", span.GetTagItem("messaging.operation.name"));
        Assert.Equal(Topic, span.GetTagItem("messaging.destination.name"));
        Assert.Equal("otel-send/1", span.GetTagItem("messaging.kafka.message.key"));
        Assert.Equal(message.Value.Length, span.GetTagItem("messaging.message.body.size"));
        Assert.Equal(7L, span.GetTagItem("monitor.step"));
        Assert.Equal("otel-send", span.GetTagItem("monitor.run"));
        Assert.Equal(1, span.GetTagItem("monitor.rank"));
        // The test producer reports no partition: none is claimed.
        Assert.Null(span.GetTagItem("messaging.destination.partition.id"));

        KeyValuePair<string, byte[]> header = Assert.Single(message.Headers!);
        Assert.Equal("traceparent", header.Key);
        Assert.Equal($"00-{span.TraceId.ToHexString()}-{span.SpanId.ToHexString()}-01", Encoding.UTF8.GetString(header.Value));
    }

    [Fact]
    public async Task EndStep_MakesTheSendSpanAChildOfTheTrainingThreadsSpan_AndLeavesThatSpanCurrent()
    {
        using var spans = new SpanCollector(StepTracer.ActivitySourceName, Training.Name);
        var producer = new TestRecordProducer();
        await using var tracer = new StepTracer(Options("otel-parent"), producer);

        Activity? step;
        using (step = Training.StartActivity("train step"))
        {
            Assert.NotNull(step);
            Step(tracer, 3);
            Assert.Same(step, Activity.Current);
        }

        await Poll.UntilAsync(() => spans.Stopped.Any(s => s.Source.Name == StepTracer.ActivitySourceName), "the send span ended");
        Activity send = spans.Stopped.Single(s => s.Source.Name == StepTracer.ActivitySourceName);
        Assert.Equal(step.TraceId, send.TraceId);
        Assert.Equal(step.SpanId, send.ParentSpanId);
    }

    [Fact]
    public async Task EndStep_ThroughTheInProcessBus_CarriesTheHeaders_AndTagsPartitionAndOffset()
    {
        using var spans = new SpanCollector(StepTracer.ActivitySourceName);
        var bus = new InProcessBus();
        IRecordConsumer consumer = bus.CreateConsumer(Topic);
        await using var tracer = new StepTracer(Options("otel-bus"), bus.CreateProducer(), ownsProducer: true);

        Step(tracer, 0);
        Step(tracer, 1);
        await Poll.UntilAsync(() => spans.Count == 2, "both spans ended");

        foreach (long offset in (long[])[0, 1])
        {
            TransportMessage message = consumer.Consume(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken)!;
            Activity span = spans.Stopped.Single(s => Equals(s.GetTagItem("messaging.kafka.offset"), offset));
            Assert.Equal("0", span.GetTagItem("messaging.destination.partition.id"));
            Assert.True(TraceContextHeaders.TryExtract(message.Headers, out ActivityContext carried));
            Assert.Equal(span.TraceId, carried.TraceId);
            Assert.Equal(span.SpanId, carried.SpanId);
        }
    }

    [Fact]
    public async Task EndStep_PropagatesTheSamplingDecision_WhenTheSpanIsNotRecorded()
    {
        using var spans = new SpanCollector([StepTracer.ActivitySourceName], ActivitySamplingResult.PropagationData);
        var producer = new TestRecordProducer();
        await using var tracer = new StepTracer(Options("otel-unsampled"), producer);

        Step(tracer, 0);
        await Poll.UntilAsync(() => tracer.Statistics.Delivered == 1, "the record delivered");

        string value = Encoding.UTF8.GetString(Assert.Single(producer.Messages).Headers!.Single().Value);
        Assert.EndsWith("-00", value, StringComparison.Ordinal);
    }

    [Fact]
    public async Task EndStep_SendsNoHeaders_WhenNoListenerIsAttached()
    {
        var producer = new TestRecordProducer();
        await using var tracer = new StepTracer(Options("otel-off"), producer);

        Step(tracer, 0);
        await Poll.UntilAsync(() => tracer.Statistics.Delivered == 1, "the record delivered");

        Assert.Null(Assert.Single(producer.Messages).Headers);
    }

    [Fact]
    public async Task FailedDelivery_EndsTheSpanWithAnError()
    {
        using var spans = new SpanCollector(StepTracer.ActivitySourceName);
        var producer = new TestRecordProducer(ProducerBehavior.Fail);
        await using var tracer = new StepTracer(Options("otel-fail"), producer);

        Step(tracer, 0);
        await Poll.UntilAsync(() => tracer.Statistics.DeliveryFailed == 1 && spans.Count == 1, "the failure reported and the span ended");

        Activity span = Assert.Single(spans.Stopped);
        Assert.Equal(ActivityStatusCode.Error, span.Status);
        Assert.Equal("test producer: delivery failed", span.StatusDescription);
        Assert.Equal("_OTHER", span.GetTagItem("error.type"));
    }

    [Fact]
    public async Task ThrowingTransport_EndsTheSpanWithTheExceptionType_AndCountsTheRecordFailed()
    {
        using var spans = new SpanCollector(StepTracer.ActivitySourceName);
        var producer = new TestRecordProducer(ProducerBehavior.Throw);
        await using var tracer = new StepTracer(Options("otel-throw"), producer);

        Step(tracer, 0);
        await Poll.UntilAsync(() => tracer.Statistics.DeliveryFailed == 1 && spans.Count == 1, "the failure counted and the span ended");

        Activity span = Assert.Single(spans.Stopped);
        Assert.Equal(ActivityStatusCode.Error, span.Status);
        Assert.Equal(typeof(InvalidOperationException).FullName, span.GetTagItem("error.type"));
    }

    [Fact]
    public async Task ThrowingListener_CostsTheSpanOnly_TheRecordIsStillDelivered()
    {
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == StepTracer.ActivitySourceName,
            Sample = (ref _) => throw new InvalidOperationException("a broken sampler"),
        };
        ActivitySource.AddActivityListener(listener);
        var producer = new TestRecordProducer();
        await using var tracer = new StepTracer(Options("otel-broken"), producer);

        Step(tracer, 0);
        await Poll.UntilAsync(() => tracer.Statistics.Delivered == 1, "the record delivered");

        Assert.Null(Assert.Single(producer.Messages).Headers);
        Assert.Equal(1, tracer.Statistics.Faults);
        Assert.Contains("a broken sampler", tracer.Statistics.LastFault, StringComparison.Ordinal);
    }

    private static TracerOptions Options(string run) => new()
    {
        RunId = run,
        Rank = 1,
        WorldSize = 2,
        Topic = Topic,
        Selection = TraceSelection.AllEveryStep,
    };

    private static void Step(StepTracer tracer, long step)
    {
        Assert.True(tracer.BeginStep(step));
        tracer.AddScalar("loss", Losses, 0.5);
        tracer.EndStep();
    }
}

/// <summary>An <see cref="ActivityListener"/> that records every span of the given sources once it has ended.</summary>
internal sealed class SpanCollector : IDisposable
{
    private readonly ActivityListener _listener;
    private readonly List<Activity> _stopped = [];

    public SpanCollector(params string[] sources)
        : this(sources, ActivitySamplingResult.AllDataAndRecorded)
    {
    }

    public SpanCollector(string[] sources, ActivitySamplingResult sampling)
    {
        _listener = new ActivityListener
        {
            ShouldListenTo = source => sources.Contains(source.Name),
            Sample = (ref _) => sampling,
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
