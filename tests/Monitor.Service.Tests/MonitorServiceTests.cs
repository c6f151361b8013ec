using System.Text;
using Monitor.Analysis;
using Monitor.Contracts;
using Monitor.Contracts.Transport;
using Monitor.Contracts.V1;

namespace Monitor.Service.Tests;

public sealed class MonitorServiceTests
{
    [Fact]
    public async Task Metrics_ExportsTensorSummaries_AndRecordCounters()
    {
        await using ServiceHarness harness = await ServiceHarness.StartAsync();

        harness.Send(ServiceHarness.Record("run-a", 0, 7, ("fc1.weight.grad", Collection.Gradients, 0.25)));
        await harness.WaitForProcessedAsync(1);
        string metrics = await harness.ScrapeAsync();

        Assert.Equal(0.25, ServiceHarness.Sample(metrics, "monitor_tensor_abs_mean{run=\"run-a\",rank=\"0\",tensor=\"fc1.weight.grad\"}"));
        Assert.Equal(0.75, ServiceHarness.Sample(metrics, "monitor_tensor_l2_norm{run=\"run-a\",rank=\"0\",tensor=\"fc1.weight.grad\"}"));
        Assert.Equal(7, ServiceHarness.Sample(metrics, "monitor_worker_step{run=\"run-a\",rank=\"0\"}"));
        Assert.Equal(1, ServiceHarness.Sample(metrics, "monitor_records_consumed_total{topic=\"monitor.steps\"}"));
        Assert.Equal(1, ServiceHarness.Sample(metrics, "monitor_records_decoded_total"));
        Assert.Equal(1, ServiceHarness.Sample(metrics, "monitor_tensor_series"));
        Assert.Equal(0, ServiceHarness.Sample(metrics, "monitor_consumer_lag_records{topic=\"monitor.steps\",partition=\"0\"}"));
    }

    [Fact]
    public async Task MalformedRecord_GoesToDeadLetterTopicWithReason_AndServiceKeepsGoing()
    {
        await using ServiceHarness harness = await ServiceHarness.StartAsync();
        IRecordConsumer deadLetters = harness.Bus.CreateConsumer(MonitorTopics.StepsDeadLetter);
        byte[] garbage = [0x0A, 0xFF, 0xFF, 0xFF];

        harness.SendRaw("run-b/0", garbage);
        harness.Send(ServiceHarness.Record("run-b", 0, 1, ("loss", Collection.Losses, 1.0)));
        await harness.WaitForProcessedAsync(2);

        TransportMessage dead = deadLetters.Consume(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken)!;
        Assert.Equal(garbage, dead.Value);
        Assert.Equal("run-b/0", dead.Key);
        var headers = dead.Headers.ToDictionary(h => h.Key, h => Encoding.UTF8.GetString(h.Value));
        Assert.Equal("Malformed", headers[DeadLetterHeaders.ErrorKind]);
        Assert.False(string.IsNullOrWhiteSpace(headers[DeadLetterHeaders.Reason]));
        Assert.Equal(MonitorTopics.Steps, headers[DeadLetterHeaders.SourceTopic]);
        Assert.Equal("0", headers[DeadLetterHeaders.SourceOffset]);

        string metrics = await harness.ScrapeAsync();
        Assert.Equal(1, ServiceHarness.Sample(metrics, "monitor_records_failed_total{reason=\"malformed\"}"));
        Assert.Equal(1, ServiceHarness.Sample(metrics, "monitor_records_dead_lettered_total{reason=\"malformed\"}"));
        Assert.Equal(1, ServiceHarness.Sample(metrics, "monitor_records_decoded_total"));
        Assert.Equal(200, await harness.StatusAsync("healthz"));
    }

    [Fact]
    public async Task InvalidRecord_IsDeadLetteredWithTheFieldInTheReason()
    {
        await using ServiceHarness harness = await ServiceHarness.StartAsync();
        IRecordConsumer deadLetters = harness.Bus.CreateConsumer(MonitorTopics.StepsDeadLetter);
        StepRecord record = ServiceHarness.Record("run-c", 0, 1);
        record.Rank = 5;
        record.WorldSize = 2;

        harness.Send(record);
        await harness.WaitForProcessedAsync(1);

        TransportMessage dead = deadLetters.Consume(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken)!;
        string reason = Encoding.UTF8.GetString(dead.Headers.Single(h => h.Key == DeadLetterHeaders.Reason).Value);
        Assert.Contains("world_size", reason, StringComparison.Ordinal);
        Assert.Equal(1, ServiceHarness.Sample(await harness.ScrapeAsync(), "monitor_records_failed_total{reason=\"invalid\"}"));
    }

    [Fact]
    public async Task DeadLetterFailure_IsCountedAndLogged_AndServiceKeepsGoing()
    {
        await using ServiceHarness harness = await ServiceHarness.StartAsync(deadLetters: new RefusingProducer());

        harness.SendRaw("run-d/0", [0xFF]);
        harness.Send(ServiceHarness.Record("run-d", 0, 1, ("loss", Collection.Losses, 1.0)));
        await harness.WaitForProcessedAsync(2);

        string metrics = await harness.ScrapeAsync();
        Assert.Equal(1, ServiceHarness.Sample(metrics, "monitor_dead_letter_failures_total{reason=\"malformed\"}"));
        Assert.Equal(1, harness.Service.Statistics.DeadLetterLost);
        Assert.Equal(1, ServiceHarness.Sample(metrics, "monitor_records_decoded_total"));
    }

    [Fact]
    public async Task TensorSeriesCap_LimitsExportedSeries_AndCountsTheRest()
    {
        await using ServiceHarness harness = await ServiceHarness.StartAsync(new MonitorServiceOptions { MaxTensorSeries = 3 });
        (string, Collection, double)[] tensors = Enumerable.Range(0, 5).Select(i => ($"t{i}", Collection.Weights, 1.0)).ToArray();

        harness.Send(ServiceHarness.Record("run-e", 0, 1, tensors));
        harness.Send(ServiceHarness.Record("run-e", 0, 2, tensors));
        await harness.WaitForProcessedAsync(2);

        string metrics = await harness.ScrapeAsync();
        Assert.Equal(3, ServiceHarness.Sample(metrics, "monitor_tensor_series"));
        Assert.Equal(3, ServiceHarness.Sample(metrics, "monitor_tensor_series_limit"));
        Assert.Equal(4, ServiceHarness.Sample(metrics, "monitor_tensor_series_rejected_total"));
        Assert.Equal(3, metrics.Split('\n').Count(l => l.StartsWith("monitor_tensor_mean{", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task TensorSeriesCap_EvictsTheLeastRecentlyUpdatedSeries_SoANewRunGetsItsSeries()
    {
        await using ServiceHarness harness = await ServiceHarness.StartAsync(new MonitorServiceOptions { MaxTensorSeries = 4, SeriesEvictionIdle = TimeSpan.Zero });
        (string, Collection, double)[] tensors = [("a", Collection.Weights, 1.0), ("b", Collection.Weights, 1.0)];

        harness.Send(ServiceHarness.Record("run-old", 0, 1, tensors));
        harness.Send(ServiceHarness.Record("run-busy", 0, 1, tensors));
        harness.Send(ServiceHarness.Record("run-busy", 0, 2, tensors));
        harness.Send(ServiceHarness.Record("run-new", 0, 1, tensors));
        await harness.WaitForProcessedAsync(4);

        string metrics = await harness.ScrapeAsync();
        Assert.Equal(4, ServiceHarness.Sample(metrics, "monitor_tensor_series"));
        Assert.Equal(2, ServiceHarness.Sample(metrics, "monitor_tensor_series_evicted_total"));
        Assert.Equal(0, ServiceHarness.Sample(metrics, "monitor_tensor_series_rejected_total"));
        Assert.DoesNotContain("run=\"run-old\"", string.Join('\n', metrics.Split('\n').Where(l => l.StartsWith("monitor_tensor_mean{", StringComparison.Ordinal))), StringComparison.Ordinal);
        Assert.Equal(2, metrics.Split('\n').Count(l => l.StartsWith("monitor_tensor_mean{run=\"run-new\"", StringComparison.Ordinal)));
        Assert.Equal(2, metrics.Split('\n').Count(l => l.StartsWith("monitor_tensor_mean{run=\"run-busy\"", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task TensorSeriesCap_WhileNoSeriesHasBeenIdleLongEnough_RejectsTheNewRun_AndKeepsTheExportedSeries()
    {
        await using ServiceHarness harness = await ServiceHarness.StartAsync(new MonitorServiceOptions { MaxTensorSeries = 2, SeriesEvictionIdle = TimeSpan.FromHours(1) });
        (string, Collection, double)[] tensors = [("a", Collection.Weights, 1.0), ("b", Collection.Weights, 1.0)];

        harness.Send(ServiceHarness.Record("run-live", 0, 1, tensors));
        for (int step = 1; step <= 3; step++)
        {
            harness.Send(ServiceHarness.Record("run-newer", 0, step, tensors));
        }

        await harness.WaitForProcessedAsync(4);

        string metrics = await harness.ScrapeAsync();
        Assert.Equal(2, ServiceHarness.Sample(metrics, "monitor_tensor_series"));
        Assert.Equal(0, ServiceHarness.Sample(metrics, "monitor_tensor_series_evicted_total"));
        Assert.Equal(6, ServiceHarness.Sample(metrics, "monitor_tensor_series_rejected_total"));
        Assert.Equal(2, metrics.Split('\n').Count(l => l.StartsWith("monitor_tensor_mean{run=\"run-live\"", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task VanishingGradients_FireOnce_ThenResolve_InMetricsAndEvents()
    {
        await using ServiceHarness harness = await ServiceHarness.StartAsync(rules: [new RuleBinding { Rule = new Monitor.Analysis.Rules.VanishingGradientRule { WindowSteps = 2 } }]);

        void Send(int step, double absMean) => harness.Send(ServiceHarness.Record("run-f", 1, step, ("fc1.weight.grad", Collection.Gradients, absMean)));
        const string series = "monitor_alerts{alertname=\"VanishingGradient\",alertstate=\"firing\",severity=\"warning\",run=\"run-f\",rank=\"1\",tensor=\"fc1.weight.grad\",feature=\"\"}";

        Send(0, 1e-3);
        Send(1, 1e-3);
        Send(2, 1e-9);
        Send(3, 1e-9);
        Send(4, 1e-9);
        await harness.WaitForProcessedAsync(5);
        string firing = await harness.ScrapeAsync();
        Send(5, 1e-3);
        Send(6, 1e-3);
        await harness.WaitForProcessedAsync(7);
        string resolved = await harness.ScrapeAsync();

        AlertTransition[] alerts = [.. harness.Alerts];
        Assert.Equal(2, alerts.Length);
        Assert.Equal((AlertState.Firing, 3L), (alerts[0].State, alerts[0].Step));
        Assert.True(alerts[1].IsResolution);
        Assert.Equal(5, alerts[1].Step);
        Assert.Equal(1, ServiceHarness.Sample(firing, series));
        Assert.Null(ServiceHarness.Sample(resolved, series));
        Assert.Equal(1, ServiceHarness.Sample(resolved, "monitor_alerts_fired_total{alertname=\"VanishingGradient\"}"));
    }

    [Fact]
    public async Task HealthAndReadiness_AreOk_WhileRunning()
    {
        await using ServiceHarness harness = await ServiceHarness.StartAsync();
        await Eventually.TrueAsync(() => harness.Service.IsReady, "the pipeline is running");

        Assert.Equal(200, await harness.StatusAsync("healthz"));
        Assert.Equal(200, await harness.StatusAsync("readyz"));
    }

    [Theory]
    [InlineData("ftp://x", "listen URL")]
    [InlineData("http://127.0.0.1:0", null)]
    public void Options_Validate_NamesTheProblem(string listen, string? expected)
    {
        var options = new MonitorServiceOptions { ListenUrl = listen };
        if (expected is null)
        {
            options.Validate();
            return;
        }

        Assert.Contains(expected, Assert.Throws<ArgumentException>(options.Validate).Message, StringComparison.Ordinal);
    }

    private sealed class RefusingProducer : IRecordProducer
    {
        public void Produce(string topic, string key, byte[] value, IReadOnlyList<KeyValuePair<string, byte[]>>? headers, Action<DeliveryReport> onDelivery) =>
            onDelivery(new DeliveryReport(false, "refused by the test"));

        public int Flush(TimeSpan timeout) => 0;

        public void Dispose()
        {
        }
    }
}
