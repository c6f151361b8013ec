using System.Collections;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Monitor.Analysis;
using Monitor.Analysis.Rules;
using Monitor.Contracts;
using Monitor.Contracts.Transport;
using Monitor.Service;
using Monitor.Service.Notifications;
using Monitor.Tracing;
using Monitor.Transport.Kafka;
using OpenTelemetry;
using OpenTelemetry.Trace;

namespace Monitor.IntegrationTests;

/// <summary>
/// OpenTelemetry end to end over librdkafka's mock cluster: a worker's <see cref="StepTracer"/> with the Kafka
/// producer, the service's consumer group, the OpenTelemetry SDK with the in-memory exporter. The worker's
/// <c>send</c> span must reach the service through the <c>traceparent</c> header, the service's <c>process</c> span
/// must link to it, and the alert that the traced record fires must carry its trace id.
/// </summary>
/// <remarks>The SDK listens process-wide, so spans of tests running alongside are exported too: everything here is
/// picked out by this test's own topic and run id.</remarks>
public sealed class KafkaTraceContextTests
{
    private static readonly CollectionSet Losses = CollectionSet.Of(Monitor.Contracts.V1.Collection.Losses);

    [Fact]
    public async Task WorkerSendSpan_ReachesTheServiceThroughTheHeaders_AndTheAlertCarriesItsTraceId()
    {
        string suffix = Guid.NewGuid().ToString("N")[..8];
        string topic = "it-otel-" + suffix;
        string alertsTopic = topic + ".alerts";
        string group = "it-otel-group-" + suffix;
        string run = "it-otel-" + suffix;
        const int Steps = 6;
        const int NaNStep = 3;
        // The steps and the end-of-run record disposing the tracer sends (at the last step).
        const int Records = Steps + 1;
        var exported = new LockedList<Activity>();
        using TracerProvider provider = Sdk.CreateTracerProviderBuilder()
            .AddSource(StepTracer.ActivitySourceName, MonitorService.ActivitySourceName)
            .AddInMemoryExporter(exported)
            .Build();
        using var cluster = new MockKafkaCluster();
        var alerts = new List<AlertTransition>();
        var consumer = new KafkaRecordConsumer(new KafkaConsumerOptions
        {
            BootstrapServers = cluster.BootstrapServers,
            Topic = topic,
            GroupId = group,
            // The topic appears with the first produced record; look for it often.
            Properties = new Dictionary<string, string> { ["topic.metadata.refresh.interval.ms"] = "500" },
        });
        var options = new MonitorServiceOptions
        {
            StepsTopic = topic,
            DeadLetterTopic = topic + ".dlq",
            ListenUrl = "http://127.0.0.1:0",
            Notifications = new NotificationOptions { AlertsTopic = alertsTopic },
        };
        await using var service = new MonitorService(options, consumer, new KafkaRecordProducer(new KafkaProducerOptions { BootstrapServers = cluster.BootstrapServers }),
            rules: [new RuleBinding { Rule = new NonFiniteTensorRule() }]);
        service.AlertChanged += a =>
        {
            lock (alerts)
            {
                alerts.Add(a);
            }
        };
        await service.StartAsync(TestContext.Current.CancellationToken);

        await using (var tracer = new StepTracer(
            new TracerOptions { RunId = run, Topic = topic, Selection = TraceSelection.AllEveryStep },
            new KafkaRecordProducer(new KafkaProducerOptions { BootstrapServers = cluster.BootstrapServers }),
            ownsProducer: true))
        {
            for (int step = 0; step < Steps; step++)
            {
                Assert.True(tracer.BeginStep(step));
                tracer.AddScalar("loss", Losses, step == NaNStep ? double.NaN : 1.0 / (step + 1));
                tracer.EndStep();
            }

            Assert.True(await tracer.FlushAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken));
            Assert.Equal(Steps, tracer.Statistics.Delivered);
        }

        await Eventually.TrueAsync(() => service.Statistics.Processed >= Records, $"the service processed {Records} records");
        await Eventually.TrueAsync(() => service.NotificationStatistics.Kafka.Sent >= 1, "the alert message was delivered");

        // The worker's PRODUCER spans: one per record, ended by the delivery report.
        Activity[] sends = [.. exported.Snapshot().Where(a => a.Source.Name == StepTracer.ActivitySourceName && Equals(a.GetTagItem("monitor.run"), run))];
        Assert.Equal(Records, sends.Length);
        foreach (Activity send in sends)
        {
            Assert.Equal("send " + topic, send.DisplayName);
            Assert.Equal(ActivityKind.Producer, send.Kind);
            Assert.Equal(ActivityStatusCode.Unset, send.Status);
            Assert.Equal("kafka", send.GetTagItem("messaging.system"));
            Assert.Equal("send", send.GetTagItem("messaging.operation.type"));
            Assert.Equal(topic, send.GetTagItem("messaging.destination.name"));
            Assert.Equal(run + "/0", send.GetTagItem("messaging.kafka.message.key"));
            Assert.InRange(int.Parse((string)send.GetTagItem("messaging.destination.partition.id")!, CultureInfo.InvariantCulture), 0, 3);
            Assert.IsType<long>(send.GetTagItem("messaging.kafka.offset"));
        }

        Assert.Equal([.. Enumerable.Range(0, Steps).Select(s => (long)s), Steps - 1], sends.Select(s => (long)s.GetTagItem("monitor.step")!).Order());
        Activity nanSend = sends.Single(s => Equals(s.GetTagItem("monitor.step"), (long)NaNStep));

        // The headers on the wire: read the topic again with a group of its own.
        using (var reader = new KafkaRecordConsumer(new KafkaConsumerOptions { BootstrapServers = cluster.BootstrapServers, Topic = topic, GroupId = group + "-reader" }))
        {
            for (int i = 0; i < Records; i++)
            {
                TransportMessage message = reader.Consume(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken)
                    ?? throw new Xunit.Sdk.XunitException($"record {i} was not read back");
                Activity send = sends.Single(s => Equals(s.GetTagItem("messaging.kafka.offset"), message.Offset)
                    && Equals(s.GetTagItem("messaging.destination.partition.id"), message.Partition.ToString(CultureInfo.InvariantCulture)));
                KeyValuePair<string, byte[]> header = Assert.Single(message.Headers, h => h.Key == "traceparent");
                Assert.Equal($"00-{send.TraceId.ToHexString()}-{send.SpanId.ToHexString()}-01", Encoding.UTF8.GetString(header.Value));
            }
        }

        // The service's CONSUMER spans: a root each, linked to exactly the producer span of its record.
        Activity[] processes = [.. exported.Snapshot().Where(a => a.Source.Name == MonitorService.ActivitySourceName && Equals(a.GetTagItem("messaging.destination.name"), topic))];
        Assert.Equal(Records, processes.Length);
        foreach (Activity process in processes)
        {
            Assert.Equal("process " + topic, process.DisplayName);
            Assert.Equal(ActivityKind.Consumer, process.Kind);
            Assert.Equal(default, process.ParentSpanId);
            ActivityLink link = Assert.Single(process.Links);
            Activity send = Assert.Single(sends, s => s.SpanId == link.Context.SpanId);
            Assert.Equal(send.TraceId, link.Context.TraceId);
            Assert.Equal("kafka", process.GetTagItem("messaging.system"));
            Assert.Equal("process", process.GetTagItem("messaging.operation.type"));
            Assert.Equal(group, process.GetTagItem("messaging.consumer.group.name"));
            Assert.Equal(send.GetTagItem("messaging.destination.partition.id"), process.GetTagItem("messaging.destination.partition.id"));
            Assert.Equal(send.GetTagItem("messaging.kafka.offset"), process.GetTagItem("messaging.kafka.offset"));
            Assert.Equal(run + "/0", process.GetTagItem("messaging.kafka.message.key"));
            Assert.Equal(send.GetTagItem("monitor.step"), process.GetTagItem("monitor.step"));
        }

        Activity nanProcess = processes.Single(p => p.Links.Single().Context.SpanId == nanSend.SpanId);
        Assert.Contains(nanProcess.Events, e => e.Name == "monitor.alert" && e.Tags.Contains(new KeyValuePair<string, object?>("state", "firing")));

        // The alert: its transition, and its message on the alerts topic, carry the NaN record's trace.
        AlertTransition fired;
        lock (alerts)
        {
            fired = alerts.First(a => a.State == AlertState.Firing);
        }

        Assert.Equal(NaNStep, fired.Step);
        Assert.Equal(nanSend.TraceId.ToHexString(), fired.TraceContext.TraceId);
        Assert.Equal(nanSend.SpanId.ToHexString(), fired.TraceContext.SpanId);
        using var alertReader = new KafkaRecordConsumer(new KafkaConsumerOptions { BootstrapServers = cluster.BootstrapServers, Topic = alertsTopic, GroupId = group + "-alerts" });
        TransportMessage alertMessage = alertReader.Consume(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken)
            ?? throw new Xunit.Sdk.XunitException("no message on the alerts topic");
        using JsonDocument alert = JsonDocument.Parse(alertMessage.Value);
        Assert.Equal("firing", alert.RootElement.GetProperty("status").GetString());
        Assert.Equal(nanSend.TraceId.ToHexString(), alert.RootElement.GetProperty("traceId").GetString());
        Assert.Equal(nanSend.SpanId.ToHexString(), alert.RootElement.GetProperty("spanId").GetString());
    }

    /// <summary>A thread-safe collection for the exporter: spans of other tests' threads arrive while this one reads.</summary>
    private sealed class LockedList<T> : ICollection<T>
    {
        private readonly List<T> _items = [];

        public int Count
        {
            get
            {
                lock (_items)
                {
                    return _items.Count;
                }
            }
        }

        public bool IsReadOnly => false;

        public T[] Snapshot()
        {
            lock (_items)
            {
                return [.. _items];
            }
        }

        public void Add(T item)
        {
            lock (_items)
            {
                _items.Add(item);
            }
        }

        public void Clear()
        {
            lock (_items)
            {
                _items.Clear();
            }
        }

        public bool Contains(T item)
        {
            lock (_items)
            {
                return _items.Contains(item);
            }
        }

        public void CopyTo(T[] array, int arrayIndex)
        {
            lock (_items)
            {
                _items.CopyTo(array, arrayIndex);
            }
        }

        public bool Remove(T item)
        {
            lock (_items)
            {
                return _items.Remove(item);
            }
        }

        public IEnumerator<T> GetEnumerator() => ((IEnumerable<T>)Snapshot()).GetEnumerator();

        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
    }
}
