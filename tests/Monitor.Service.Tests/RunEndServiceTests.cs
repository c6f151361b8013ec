using Microsoft.Extensions.Time.Testing;
using Monitor.Analysis;
using Monitor.Analysis.Rules;
using Monitor.Contracts;
using Monitor.Contracts.Transport;
using Monitor.Contracts.V1;

namespace Monitor.Service.Tests;

/// <summary>The service at a run's end: the rank's alerts resolve as "run ended" and its per-run series go.</summary>
public sealed class RunEndServiceTests
{
    [Fact]
    public async Task EndOfRunRecord_ResolvesTheRanksAlerts_AndRemovesItsSeries()
    {
        await using ServiceHarness harness = await ServiceHarness.StartAsync(
            rules: [new RuleBinding { Rule = new VanishingGradientRule { WindowSteps = 1 }, KeepFiringFor = TimeSpan.FromHours(1) }]);
        // Rank 0 has a vanishing gradient (firing); rank 1 of the same run is healthy and keeps running.
        harness.Send(ServiceHarness.Record("run-end", 0, 1, ("fc1.weight.grad", Collection.Gradients, 0), ("loss", Collection.Losses, 0.5)));
        harness.Send(ServiceHarness.Record("run-end", 1, 1, ("fc1.weight.grad", Collection.Gradients, 0.1), ("loss", Collection.Losses, 0.5)));
        await harness.WaitForProcessedAsync(2);
        string before = await harness.ScrapeAsync();
        Assert.Equal(0.5, ServiceHarness.Sample(before, "monitor_loss{run=\"run-end\",rank=\"0\",mode=\"train\",tensor=\"loss\"}"));
        Assert.Equal(1, ServiceHarness.Sample(before, "monitor_worker_step{run=\"run-end\",rank=\"0\"}"));

        StepRecord end = ServiceHarness.Record("run-end", 0, 1);
        end.Mode = Mode.Unspecified;
        end.Sequence = 2;
        end.EventTimeUnixNanos += 1_000_000_000;
        end.RunEnd = new RunEnd { Reason = RunEndReason.Stopped };
        harness.Send(end);
        await harness.WaitForProcessedAsync(3);

        AlertTransition resolved;
        lock (harness.Alerts)
        {
            resolved = harness.Alerts[^1];
        }

        Assert.True(resolved.IsResolution);
        Assert.Equal(("VanishingGradient", "0", "run ended (stopped by the monitor) at step 1"), (resolved.RuleName, resolved.Identity[AlertLabels.Rank], resolved.Description));
        Assert.Empty(harness.Service.ActiveAlerts);
        string after = await harness.ScrapeAsync();
        string[] rank0 = [.. after.Split('\n').Where(l => !l.StartsWith('#') && l.Contains("run=\"run-end\",rank=\"0\"", StringComparison.Ordinal))];
        Assert.Empty(rank0);
        Assert.Equal(0.5, ServiceHarness.Sample(after, "monitor_loss{run=\"run-end\",rank=\"1\",mode=\"train\",tensor=\"loss\"}"));
        Assert.Equal(1, ServiceHarness.Sample(after, "monitor_ranks_ended_total"));

        // A redelivered end brings nothing back.
        harness.Send(end);
        await harness.WaitForProcessedAsync(4);
        string again = await harness.ScrapeAsync();
        Assert.DoesNotContain("run=\"run-end\",rank=\"0\"", again, StringComparison.Ordinal);
        Assert.Equal(1, ServiceHarness.Sample(again, "monitor_ranks_ended_total"));
    }

    [Fact]
    public async Task StalledTraining_WaitsForTheServiceToCatchUp_BeforeJudgingSilenceByTheClock()
    {
        // The service starts an hour behind: its backlog's event times are an hour old.
        DateTimeOffset backlog = DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000);
        var time = new FakeTimeProvider(backlog.AddHours(1));
        var bus = new InProcessBus();
        var consumer = new LaggingConsumer(bus.CreateConsumer(MonitorTopics.Steps)) { Lag = 5_000 };
        var options = new MonitorServiceOptions
        {
            ListenUrl = "http://127.0.0.1:0",
            TimeProvider = time,
            TickInterval = TimeSpan.FromSeconds(5),
            // Only the ticks ask for the lag (after the first gauge update), so each call marks one tick.
            LagInterval = TimeSpan.FromDays(1),
        };
        await using var service = new MonitorService(options, consumer, bus.CreateProducer(),
            rules: [new RuleBinding { Rule = new StalledTrainingRule { Threshold = TimeSpan.FromMinutes(1) } }]);
        var alerts = new List<AlertTransition>();
        service.AlertChanged += a =>
        {
            lock (alerts)
            {
                alerts.Add(a);
            }
        };
        await service.StartAsync(TestContext.Current.CancellationToken);
        using IRecordProducer producer = bus.CreateProducer();
        for (long step = 0; step < 10; step++)
        {
            StepRecord record = ServiceHarness.Record("run-lag", 0, step, ("loss", Collection.Losses, 1.0));
            record.EventTimeUnixNanos = (backlog.AddSeconds(step) - DateTimeOffset.UnixEpoch).Ticks * 100;
            producer.Produce(MonitorTopics.Steps, RecordKey.Format("run-lag", 0), Google.Protobuf.MessageExtensions.ToByteArray(record), null, _ => { });
        }

        await Eventually.TrueAsync(() => service.Statistics.Processed >= 10, "the backlog processed");

        // Ticks while the consumer reports lag: silence is measured in event time, and the rank is not silent there.
        for (int tick = 0; tick < 3; tick++)
        {
            await TickAsync(time, consumer);
        }

        lock (alerts)
        {
            Assert.Empty(alerts);
        }

        // Caught up: the clock applies, and the rank has sent nothing for an hour.
        consumer.Lag = 0;
        await TickAsync(time, consumer);
        await Eventually.TrueAsync(() =>
        {
            lock (alerts)
            {
                return alerts.Any(a => a.State == AlertState.Firing && a.RuleName == "StalledTraining");
            }
        }, "StalledTraining fired once caught up");
    }

    // Advances the clock by a tick interval and waits until the pipeline asked for the lag (the tick's first act), and
    // then for the next loop round, so that the tick's transitions have been handled.
    private static async Task TickAsync(FakeTimeProvider time, LaggingConsumer consumer)
    {
        int before = consumer.LagCalls;
        time.Advance(TimeSpan.FromSeconds(5));
        await Eventually.TrueAsync(() => consumer.LagCalls > before, "the pipeline ticked");
        int ticked = consumer.LagCalls;
        time.Advance(TimeSpan.FromSeconds(5));
        await Eventually.TrueAsync(() => consumer.LagCalls > ticked, "the pipeline ticked again");
    }

    /// <summary>An in-process consumer that reports the lag it is told (a service behind its topic).</summary>
    private sealed class LaggingConsumer(IRecordConsumer inner) : IRecordConsumer
    {
        private int _lagCalls;
        private long _lag;

        public long Lag
        {
            get => Volatile.Read(ref _lag);
            set => Volatile.Write(ref _lag, value);
        }

        public int LagCalls => Volatile.Read(ref _lagCalls);

        public TransportMessage? Consume(TimeSpan maxWait, CancellationToken cancellationToken) =>
            inner.Consume(TimeSpan.FromMilliseconds(10), cancellationToken);

        public void MarkProcessed(TransportMessage message) => inner.MarkProcessed(message);

        public void Commit() => inner.Commit();

        public IReadOnlyList<PartitionLag> GetLag()
        {
            Interlocked.Increment(ref _lagCalls);
            return [new PartitionLag(MonitorTopics.Steps, 0, Lag)];
        }

        public void Dispose() => inner.Dispose();
    }
}
