using Monitor.Analysis;
using Monitor.Contracts;
using Monitor.Contracts.Transport;
using Monitor.Contracts.V1;
using Monitor.Samples.Training;
using Monitor.Service;
using Monitor.Tracing;
using Monitor.Tracing.TorchSharp;
using Monitor.Transport.Kafka;

namespace Monitor.IntegrationTests;

/// <summary>
/// The Kafka path against librdkafka's mock cluster (real Kafka protocol on 127.0.0.1; no broker can be installed
/// here): a real TorchSharp job produces, the service's consumer group consumes. Each test has its own cluster,
/// topics and group.
/// </summary>
public sealed class KafkaPipelineTests
{
    [Fact]
    public async Task TorchSharpJob_ThroughMockKafka_IsAnalysedByTheConsumerGroup_AndScraped()
    {
        using var cluster = new MockKafkaCluster();
        string topic = "it-steps-" + Guid.NewGuid().ToString("N")[..8];
        var alerts = new List<AlertTransition>();
        var serviceOptions = new MonitorServiceOptions
        {
            StepsTopic = topic,
            DeadLetterTopic = topic + ".dlq",
            ListenUrl = "http://127.0.0.1:0",
        };
        var consumer = new KafkaRecordConsumer(new KafkaConsumerOptions
        {
            BootstrapServers = cluster.BootstrapServers,
            Topic = topic,
            GroupId = "it-" + topic,
            // The topic appears with the first produced record; look for it often.
            Properties = new Dictionary<string, string> { ["topic.metadata.refresh.interval.ms"] = "500" },
        });
        await using var service = new MonitorService(serviceOptions, consumer, new KafkaRecordProducer(new KafkaProducerOptions { BootstrapServers = cluster.BootstrapServers }),
            rules: [new RuleBinding { Rule = new Monitor.Analysis.Rules.VanishingGradientRule { WindowSteps = 3 } }]);
        service.AlertChanged += a =>
        {
            lock (alerts)
            {
                alerts.Add(a);
            }
        };
        await service.StartAsync(TestContext.Current.CancellationToken);

        const int steps = 60;
        await using (var tracer = new StepTracer(
            // The default budget may thin this model's weights, depending on the machine's load; the rule reads the
            // gradients, pinned as the README tells, so the alert comes at the same step whatever the budget does.
            new TracerOptions { RunId = "it-kafka", Topic = topic, Selection = TraceSelection.AllEveryStep with { Pin = ["\\.grad$"] } },
            new KafkaRecordProducer(new KafkaProducerOptions { BootstrapServers = cluster.BootstrapServers }),
            ownsProducer: true))
        {
            var job = new TrainingJob(new TrainingJobOptions { Steps = steps, Fault = Fault.VanishingGradients, FaultAt = 30, EvalEvery = 0 });
            await job.RunAsync((model, optimizer) => TorchSharpTracer.Attach(tracer, model, optimizer), cancellationToken: TestContext.Current.CancellationToken);
            Assert.True(await tracer.FlushAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken));
            Assert.Equal(steps, tracer.Statistics.Delivered);

            await Eventually.TrueAsync(() => service.Statistics.Processed >= steps, $"the service processed {steps} records");
            using var http = new HttpClient();
            string metrics = await http.GetStringAsync(new Uri(service.BaseAddress!, "metrics"), TestContext.Current.CancellationToken);

            Assert.Equal(steps, service.Statistics.Decoded);
            Assert.Equal(0, service.Statistics.Failed);
            Assert.Single(Prometheus.Samples(metrics, "monitor_tensor_abs_mean{run=\"it-kafka\",rank=\"0\",tensor=\"fc1.weight.grad\"}"));
            Assert.Equal([59.0], Prometheus.Samples(metrics, "monitor_worker_step{run=\"it-kafka\",rank=\"0\"}"));
            Assert.Contains(1.0, Prometheus.Samples(metrics, "monitor_alerts{alertname=\"VanishingGradient\",alertstate=\"firing\""));
            AlertTransition first = alerts.First(a => a.State == AlertState.Firing);
            Assert.Equal("VanishingGradient", first.RuleName);
            Assert.Equal(32, first.Step);
            Assert.DoesNotContain(alerts, a => a.Step < 30);
        }

        // Disposing the tracer sent the end of the run: its alert resolves as "run ended" and its series go.
        await Eventually.TrueAsync(() => service.Statistics.Processed >= steps + 1, "the service processed the end-of-run record");
        using var client = new HttpClient();
        string ended = await client.GetStringAsync(new Uri(service.BaseAddress!, "metrics"), TestContext.Current.CancellationToken);
        AlertTransition resolved;
        lock (alerts)
        {
            resolved = alerts[^1];
        }

        Assert.True(resolved.IsResolution);
        Assert.Equal("run ended (done) at step 59", resolved.Description);
        Assert.Empty(service.ActiveAlerts);
        Assert.Empty(Prometheus.Samples(ended, "monitor_worker_step{run=\"it-kafka\",rank=\"0\"}"));
        Assert.Empty(Prometheus.Samples(ended, "monitor_tensor_abs_mean{run=\"it-kafka\",rank=\"0\",tensor=\"fc1.weight.grad\"}"));
        Assert.Empty(Prometheus.Samples(ended, "monitor_alerts{alertname=\"VanishingGradient\",alertstate=\"firing\""));
    }

    [Fact]
    public async Task RestartedConsumer_ResumesAfterTheLastProcessedRecord()
    {
        using var cluster = new MockKafkaCluster();
        string topic = "it-resume-" + Guid.NewGuid().ToString("N")[..8];
        string group = "it-group-" + topic;
        const int total = 40;
        using (var producer = new KafkaRecordProducer(new KafkaProducerOptions { BootstrapServers = cluster.BootstrapServers }))
        {
            int delivered = 0;
            for (int i = 0; i < total; i++)
            {
                var record = new StepRecord { SchemaVersion = 1, RunId = "resume", Rank = (uint)(i % 4), WorldSize = 4, Step = i / 4 };
                producer.Produce(topic, RecordKey.Format(record.RunId, (int)record.Rank), Google.Protobuf.MessageExtensions.ToByteArray(record), null,
                    report => Interlocked.Add(ref delivered, report.Delivered ? 1 : 0));
            }

            Assert.Equal(0, producer.Flush(TimeSpan.FromSeconds(30)));
            Assert.Equal(total, delivered);
        }

        var first = new List<TransportMessage>();
        using (var consumer = NewConsumer(cluster, topic, group))
        {
            while (first.Count < total / 2)
            {
                if (consumer.Consume(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken) is { } message)
                {
                    first.Add(message);
                    consumer.MarkProcessed(message);
                }
            }
        }

        var second = new List<TransportMessage>();
        using (var consumer = NewConsumer(cluster, topic, group))
        {
            while (second.Count < total - first.Count)
            {
                TransportMessage? message = consumer.Consume(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);
                Assert.NotNull(message);
                second.Add(message);
            }

            // Nothing else: not a record of the first consumer again.
            Assert.Null(consumer.Consume(TimeSpan.FromSeconds(2), TestContext.Current.CancellationToken));
        }

        var firstPositions = first.Select(m => (m.Partition, m.Offset)).ToHashSet();
        var secondPositions = second.Select(m => (m.Partition, m.Offset)).ToHashSet();
        Assert.Equal(second.Count, secondPositions.Count);
        Assert.Empty(firstPositions.Intersect(secondPositions));
        Assert.Equal(total, firstPositions.Union(secondPositions).Count());
        foreach (IGrouping<int, TransportMessage> partition in second.GroupBy(m => m.Partition))
        {
            long resumeAt = first.Where(m => m.Partition == partition.Key).Select(m => m.Offset + 1).DefaultIfEmpty(0).Max();
            Assert.Equal(resumeAt, partition.Min(m => m.Offset));
        }
    }

    [Fact]
    public async Task RawCaptureOverKafkasMessageLimit_ArrivesWithEverySummary_AndTheLargestRawPartsLeftOut()
    {
        // 4 MB of raw values in one step, against the producer's default 1,000,000-byte limit: without the tracer's
        // byte budget the whole record, summaries included, would fail its delivery.
        using var cluster = new MockKafkaCluster();
        string topic = "it-budget-" + Guid.NewGuid().ToString("N")[..8];
        var selection = new TraceSelection
        {
            Collections = new Dictionary<string, CollectionFilter> { [CollectionNames.Weights] = new() { Raw = true } },
            LimitSize = 250_000,
        };
        CollectionSet weights = CollectionSet.Of(Collection.Weights);
        await using (var tracer = new StepTracer(
            new TracerOptions { RunId = "it-budget", Topic = topic, Selection = selection },
            new KafkaRecordProducer(new KafkaProducerOptions { BootstrapServers = cluster.BootstrapServers }),
            ownsProducer: true))
        {
            tracer.BeginStep(0);
            tracer.AddValues("w.large", weights, DType.Float32, [250_000], Enumerable.Range(0, 250_000).Select(i => (float)i).ToArray());
            foreach (string name in new[] { "w.a", "w.b", "w.c" })
            {
                tracer.AddValues(name, weights, DType.Float32, [200_000], Enumerable.Range(0, 200_000).Select(i => i * 0.5f).ToArray());
            }

            tracer.AddValues("w.small", weights, DType.Float32, [100], Enumerable.Range(0, 100).Select(i => (float)i).ToArray());
            tracer.EndStep();
            Assert.True(await tracer.FlushAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken));
            Assert.Equal((1L, 0L, 3L), (tracer.Statistics.Delivered, tracer.Statistics.DeliveryFailed, tracer.Statistics.RawPartsTrimmed));
        }

        using var consumer = NewConsumer(cluster, topic, "it-group-" + topic);
        TransportMessage? message = consumer.Consume(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);
        Assert.NotNull(message);
        Assert.True(StepRecordDecoder.TryDecode(message.Value, out StepRecord? record, out DecodeError error), error.ToString());
        Assert.Equal(5, record.Tensors.Count);
        Assert.All(record.Tensors, t => Assert.Equal(t.Raw.TotalElements, t.Summary.Count));
        // The largest part and two of the three 800 KB ones gave way; one 800 KB part and the small one fit.
        Assert.True(record.Tensors.Single(t => t.Name == "w.large").Raw.Trimmed);
        Assert.Equal(2, record.Tensors.Count(t => t.Name is "w.a" or "w.b" or "w.c" && t.Raw.Trimmed));
        Assert.Equal(message.Value.Length, record.CalculateSize());
        Assert.True(message.Value.Length <= TracerOptions.DefaultMaxRecordBytes);
        Assert.Equal(3ul, record.RawPartsTrimmed);
        Assert.Equal(100 * sizeof(float), record.Tensors.Single(t => t.Name == "w.small").Raw.Float32Le.Length);
    }

    private static KafkaRecordConsumer NewConsumer(MockKafkaCluster cluster, string topic, string group) =>
        new(new KafkaConsumerOptions
        {
            BootstrapServers = cluster.BootstrapServers,
            Topic = topic,
            GroupId = group,
            // The mock coordinator drops a closed member only when its session expires (45 s by default), so the
            // restarted member would wait that long for its assignment.
            Properties = new Dictionary<string, string> { ["session.timeout.ms"] = "6000", ["heartbeat.interval.ms"] = "500" },
        });
}
