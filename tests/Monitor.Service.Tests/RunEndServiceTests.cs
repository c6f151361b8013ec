using Monitor.Analysis;
using Monitor.Analysis.Rules;
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
}
