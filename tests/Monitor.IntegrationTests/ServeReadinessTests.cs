using System.Diagnostics;
using System.Net;
using Monitor.Contracts;
using Monitor.Contracts.V1;
using Monitor.Transport.Kafka;

namespace Monitor.IntegrationTests;

/// <summary><c>/readyz</c> of the real <c>monitor serve</c>: ready means the group assigned partitions and the brokers answer.</summary>
public sealed class ServeReadinessTests
{
    private static CancellationToken Cancellation => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Serve_WithNoBroker_IsAliveButNotReady_AndLogsLibrdkafkaOnlyThroughItsLogger()
    {
        await using ServeProcess serve = await ServeProcess.StartAsync(["--kafka", "127.0.0.1:1"], Cancellation);

        // Several broker probes long (2 s apart, 5 s timeout): never ready.
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(8))
        {
            (HttpStatusCode status, string body) = await serve.GetAsync("readyz", Cancellation);
            Assert.True(status == HttpStatusCode.ServiceUnavailable, $"/readyz answered {(int)status} {body} with no broker at 127.0.0.1:1");
            await Task.Delay(250, Cancellation);
        }

        (HttpStatusCode _, string reason) = await serve.GetAsync("readyz", Cancellation);
        Assert.Contains("127.0.0.1:1 do not answer", reason, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await serve.GetAsync("healthz", Cancellation)).Status);
        Assert.True(serve.IsRunning);
        string output = serve.Output();
        Assert.Empty(serve.RawLibrdkafkaLines());
        // The connection failures are there, through the service's logger.
        Assert.Contains("librdkafka", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_OverMockKafka_IsReadyOnceAssigned_AndNotReadyWhenTheBrokersGo()
    {
        var cluster = new MockKafkaCluster();
        try
        {
            string topic = "it-ready-" + Guid.NewGuid().ToString("N")[..8];
            await using ServeProcess serve = await ServeProcess.StartAsync(
                ["--kafka", cluster.BootstrapServers, "--topic", topic, "--dead-letter-topic", topic + ".dlq", "--group", "g-" + topic], Cancellation);

            // The topic does not exist until a worker writes to it; the group then assigns its partitions.
            // Until then there is nothing to assign, and a member whose brokers answer is ready.
            string body = "";
            await Eventually.TrueAsync(() =>
            {
                (HttpStatusCode status, body) = serve.GetAsync("readyz", Cancellation).GetAwaiter().GetResult();
                return status == HttpStatusCode.OK;
            }, "monitor serve is ready over the mock cluster before the topic exists", seconds: 60);
            Assert.Contains("does not exist yet", body, StringComparison.Ordinal);
            using (var producer = new KafkaRecordProducer(new KafkaProducerOptions { BootstrapServers = cluster.BootstrapServers }))
            {
                var record = new StepRecord { SchemaVersion = 1, RunId = "ready", Rank = 0, WorldSize = 1, Step = 0, Mode = Mode.Train };
                producer.Produce(topic, RecordKey.Format("ready", 0), Google.Protobuf.MessageExtensions.ToByteArray(record), null, _ => { });
                Assert.Equal(0, producer.Flush(TimeSpan.FromSeconds(30)));
            }

            await Eventually.TrueAsync(() =>
            {
                (HttpStatusCode status, body) = serve.GetAsync("readyz", Cancellation).GetAwaiter().GetResult();
                return status == HttpStatusCode.OK && body.Contains("assigned", StringComparison.Ordinal);
            }, "monitor serve has its partitions", seconds: 60);
            Assert.Contains($"of '{topic}' assigned", body, StringComparison.Ordinal);

            // The brokers go away: within a few probes the service says so, and stays alive.
            cluster.Dispose();
            await Eventually.TrueAsync(() =>
            {
                (HttpStatusCode status, body) = serve.GetAsync("readyz", Cancellation).GetAwaiter().GetResult();
                return status == HttpStatusCode.ServiceUnavailable;
            }, "monitor serve is not ready once the brokers are gone", seconds: 30);
            Assert.Contains("do not answer", body, StringComparison.Ordinal);
            Assert.Equal(HttpStatusCode.OK, (await serve.GetAsync("healthz", Cancellation)).Status);
            Assert.Empty(serve.RawLibrdkafkaLines());
        }
        finally
        {
            cluster.Dispose();
        }
    }
}
