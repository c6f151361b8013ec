using System.Collections.Concurrent;
using System.Text;
using Google.Protobuf;
using Monitor.Contracts;
using Monitor.Contracts.Transport;
using Monitor.Contracts.V1;

namespace Monitor.Service.Tests;

/// <summary>The pipeline goes on past records it cannot decode or process, and commits their offsets only once the
/// dead-letter topic has them.</summary>
public sealed class DeadLetterPipelineTests
{
    [Fact]
    public async Task ProcessingException_DeadLettersTheRecordWithTheException_AndAnalysisGoesOn()
    {
        // Recording to a full disk throws inside processing: a real fault no decoder check can catch. A record larger
        // than the recorder's 64 KiB buffer is written through at once, so it fails alone.
        Assert.SkipUnless(File.Exists("/dev/full"), "needs /dev/full");
        await using ServiceHarness harness = await ServiceHarness.StartAsync(new MonitorServiceOptions { RecordFile = "/dev/full" });
        IRecordConsumer deadLetters = harness.Bus.CreateConsumer(MonitorTopics.StepsDeadLetter);

        StepRecord big = ServiceHarness.Record("run-p", 0, 1, ("loss", Collection.Losses, 1.0));
        big.Tensors[0].Raw = new RawValues { Float32Le = ByteString.CopyFrom(new byte[400_000]), TotalElements = 100_000 };
        big.Tensors[0].Shape[0] = 100_000;
        big.Tensors[0].Summary.Count = 100_000;
        harness.Send(big);
        harness.Send(ServiceHarness.Record("run-p", 0, 2, ("loss", Collection.Losses, 1.0)));
        await harness.WaitForProcessedAsync(2);

        TransportMessage dead = deadLetters.Consume(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken)!;
        var headers = dead.Headers.ToDictionary(h => h.Key, h => Encoding.UTF8.GetString(h.Value));
        Assert.Equal("ProcessingFailed", headers[DeadLetterHeaders.ErrorKind]);
        Assert.StartsWith("System.IO.IOException: ", headers[DeadLetterHeaders.Reason], StringComparison.Ordinal);
        Assert.Equal("0", headers[DeadLetterHeaders.SourceOffset]);
        Assert.Equal(big.ToByteArray(), dead.Value);

        string metrics = await harness.ScrapeAsync();
        Assert.Equal(1, ServiceHarness.Sample(metrics, "monitor_records_failed_total{reason=\"processing\"}"));
        Assert.Equal(1, ServiceHarness.Sample(metrics, "monitor_records_dead_lettered_total{reason=\"processing\"}"));
        Assert.Equal(2, ServiceHarness.Sample(metrics, "monitor_worker_step{run=\"run-p\",rank=\"0\"}"));
        Assert.Equal(1, harness.Service.Statistics.ProcessingFailed);
        Assert.Equal(200, await harness.StatusAsync("healthz"));
        Assert.True(harness.Service.IsReady);
    }

    [Fact]
    public async Task DeadLetterWrites_DoNotHoldUpAnalysis_AreBounded_AndHoldBackTheCommittedOffset()
    {
        var producer = new HeldProducer();
        await using ServiceHarness harness = await ServiceHarness.StartAsync(
            new MonitorServiceOptions { MaxDeadLettersInFlight = 2, LagInterval = TimeSpan.FromMilliseconds(20) }, producer);

        // Two junk records take both slots; the valid record after them is analysed without waiting for the broker.
        harness.SendRaw("run-q/0", [0xFF]);
        harness.SendRaw("run-q/0", [0xFE]);
        harness.Send(ServiceHarness.Record("run-q", 0, 1, ("loss", Collection.Losses, 1.0)));
        await harness.WaitForProcessedAsync(1);
        Assert.Equal(1, harness.Service.Statistics.Decoded);
        Assert.Equal(2, producer.Held);
        string metrics = await harness.ScrapeAsync();
        Assert.Equal(2, ServiceHarness.Sample(metrics, "monitor_dead_letters_in_flight"));
        // Nothing is committed past the first outstanding write: all three records would be read again after a crash.
        Assert.Equal(3, ServiceHarness.Sample(metrics, "monitor_consumer_lag_records{topic=\"monitor.steps\",partition=\"0\"}"));

        // A third one waits for a slot, and so does what follows it.
        harness.SendRaw("run-q/0", [0xFD]);
        harness.Send(ServiceHarness.Record("run-q", 0, 2, ("loss", Collection.Losses, 1.0)));
        await Task.Delay(200, TestContext.Current.CancellationToken);
        Assert.Equal(1, harness.Service.Statistics.Decoded);

        producer.ReleaseAll(delivered: true);
        await Eventually.TrueAsync(() => harness.Service.Statistics.Processed == 4 && producer.Held == 1, "the third write has a slot and what follows is analysed");
        producer.ReleaseAll(delivered: true);
        await Eventually.TrueAsync(() => harness.Service.Statistics.DeadLettered == 3, "the three writes are acknowledged");
        await Eventually.TrueAsync(
            () => ServiceHarness.Sample(harness.ScrapeAsync().GetAwaiter().GetResult(), "monitor_consumer_lag_records{topic=\"monitor.steps\",partition=\"0\"}") == 0,
            "every offset is committed once the dead-letter topic has the records");
        Assert.Equal(2, harness.Service.Statistics.Decoded);
        Assert.Equal(3, ServiceHarness.Sample(await harness.ScrapeAsync(), "monitor_records_dead_lettered_total{reason=\"malformed\"}"));
    }

    /// <summary>Holds every delivery report until the test releases it, like a broker that is slow to acknowledge.</summary>
    private sealed class HeldProducer : IRecordProducer
    {
        private readonly ConcurrentQueue<Action<DeliveryReport>> _held = new();

        public int Held => _held.Count;

        public void Produce(string topic, string key, byte[] value, IReadOnlyList<KeyValuePair<string, byte[]>>? headers, Action<DeliveryReport> onDelivery)
        {
            if (topic == MonitorTopics.StepsDeadLetter)
            {
                _held.Enqueue(onDelivery);
            }
            else
            {
                onDelivery(new DeliveryReport(true, null));
            }
        }

        /// <summary>Releases the reports held now. Each release frees a slot, so the pipeline may produce a write held
        /// back until then while this runs: that one stays held (draining until empty released it too, now and then).</summary>
        public void ReleaseAll(bool delivered)
        {
            for (int count = _held.Count; count > 0 && _held.TryDequeue(out Action<DeliveryReport>? report); count--)
            {
                report(new DeliveryReport(delivered, delivered ? null : "refused by the test"));
            }
        }

        public int Flush(TimeSpan timeout)
        {
            ReleaseAll(delivered: true);
            return 0;
        }

        public void Dispose()
        {
        }
    }
}
