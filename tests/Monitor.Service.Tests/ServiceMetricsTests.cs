using System.Globalization;
using Monitor.Analysis;
using Monitor.Contracts;
using Monitor.Contracts.V1;
using Prometheus;
using Histogram = Monitor.Contracts.V1.Histogram;

namespace Monitor.Service.Tests;

/// <summary>
/// The series the dashboards and alert rules need: losses by mode, records per rank, L1 norms, histogram buckets
/// (capped, with a name pattern), heartbeats, and the series created at 0 so that no panel starts with no data.
/// </summary>
public sealed class ServiceMetricsTests
{
    private const string Labels = "run=\"run-h\",rank=\"0\",tensor=\"fc1.weight\"";

    [Fact]
    public async Task Metrics_ExposeSeriesAtZero_BeforeAnyRecord()
    {
        await using ServiceHarness harness = await ServiceHarness.StartAsync(rules: [new RuleBinding { Rule = new Monitor.Analysis.Rules.VanishingGradientRule() }]);

        string metrics = await harness.ScrapeAsync();

        foreach (string reason in new[] { "malformed", "invalid", "unsupportedschemaversion", "toolarge" })
        {
            Assert.Equal(0, ServiceHarness.Sample(metrics, $"monitor_records_failed_total{{reason=\"{reason}\"}}"));
        }

        foreach (string result in new[] { "issued", "failed", "no_control_plane" })
        {
            Assert.Equal(0, ServiceHarness.Sample(metrics, $"monitor_actions_total{{action=\"stop\",result=\"{result}\"}}"));
        }

        Assert.Equal(0, ServiceHarness.Sample(metrics, "monitor_alerts_fired_total{alertname=\"VanishingGradient\"}"));
        Assert.Equal(0, ServiceHarness.Sample(metrics, "monitor_tensor_histograms"));
        Assert.Equal(32, ServiceHarness.Sample(metrics, "monitor_tensor_histograms_limit"));
    }

    [Fact]
    public async Task Record_ExportsLossByMode_RecordsPerRank_AndL1Norm()
    {
        await using ServiceHarness harness = await ServiceHarness.StartAsync();
        StepRecord train = ServiceHarness.Record("run-l", 2, 5, ("loss", Collection.Losses, 0.5), ("fc1.weight", Collection.Weights, 0.25));
        StepRecord eval = ServiceHarness.Record("run-l", 2, 5, ("loss", Collection.Losses, 0.75));
        eval.Mode = Mode.Eval;
        eval.Sequence = train.Sequence + 1;

        harness.Send(train);
        harness.Send(eval);
        await harness.WaitForProcessedAsync(2);
        string metrics = await harness.ScrapeAsync();

        Assert.Equal(0.5, ServiceHarness.Sample(metrics, "monitor_loss{run=\"run-l\",rank=\"2\",mode=\"train\",tensor=\"loss\"}"));
        Assert.Equal(0.75, ServiceHarness.Sample(metrics, "monitor_loss{run=\"run-l\",rank=\"2\",mode=\"eval\",tensor=\"loss\"}"));
        // Only tensors of the losses collection are losses.
        Assert.DoesNotContain("tensor=\"fc1.weight\"", string.Join('\n', metrics.Split('\n').Where(l => l.StartsWith("monitor_loss{", StringComparison.Ordinal))), StringComparison.Ordinal);
        Assert.Equal(2, ServiceHarness.Sample(metrics, "monitor_worker_records_total{run=\"run-l\",rank=\"2\"}"));
        Assert.Equal(2.5, ServiceHarness.Sample(metrics, "monitor_tensor_l1_norm{run=\"run-l\",rank=\"2\",tensor=\"fc1.weight\"}"));
    }

    [Fact]
    public async Task Record_ExportsTheOverheadRatioAndTheThinnedTensors_OfTheRanksLastRecord()
    {
        await using ServiceHarness harness = await ServiceHarness.StartAsync();
        StepRecord thinned = ServiceHarness.Record("run-o", 1, 7, ("loss", Collection.Losses, 0.5));
        thinned.OverheadRatio = 0.0125;
        thinned.Thinned.Add(new ThinnedCollection { Collection = Collection.Weights, Stride = 8, SkippedTensors = 5 });
        thinned.Thinned.Add(new ThinnedCollection { Collection = Collection.Gradients, Stride = 4, SkippedTensors = 3 });
        StepRecord full = ServiceHarness.Record("run-o", 1, 8, ("loss", Collection.Losses, 0.5));
        full.Sequence = thinned.Sequence + 1;
        full.OverheadRatio = 0.004;

        harness.Send(thinned);
        await harness.WaitForProcessedAsync(1);
        string first = await harness.ScrapeAsync();
        harness.Send(full);
        await harness.WaitForProcessedAsync(2);
        string second = await harness.ScrapeAsync();

        Assert.Equal(0.0125, ServiceHarness.Sample(first, "monitor_worker_overhead_ratio{run=\"run-o\",rank=\"1\"}"));
        Assert.Equal(8, ServiceHarness.Sample(first, "monitor_worker_thinned_tensors{run=\"run-o\",rank=\"1\"}"));
        Assert.Equal(0.004, ServiceHarness.Sample(second, "monitor_worker_overhead_ratio{run=\"run-o\",rank=\"1\"}"));
        Assert.Equal(0, ServiceHarness.Sample(second, "monitor_worker_thinned_tensors{run=\"run-o\",rank=\"1\"}"));
    }

    [Fact]
    public async Task Histogram_Sampled_IsExportedAsElementsOfTheWholeTensor()
    {
        await using ServiceHarness harness = await ServiceHarness.StartAsync();
        StepRecord record = ServiceHarness.Record("run-h", 0, 1, ("fc1.weight", Collection.Weights, 0.25));
        // A sample of 4 elements of a tensor of 4,000 (one NaN, not counted): 1 in [-1, -0.5), 3 in [0.25, 0.5).
        int negativeHalf = Log2Histogram.BucketOf(-0.75), quarter = Log2Histogram.BucketOf(0.3);
        record.Tensors[0].Summary.Count = 4001;
        record.Tensors[0].Summary.NanCount = 1;
        record.Tensors[0].Summary.Histogram = Log2(first: negativeHalf, (negativeHalf, 1), (quarter, 3));
        record.Tensors[0].Summary.Histogram.SampledCount = 4;

        harness.Send(record);
        await harness.WaitForProcessedAsync(1);
        string metrics = await harness.ScrapeAsync();

        double[] edges = Log2Histogram.Edges.ToArray();
        Assert.Equal(1000, Bucket(metrics, edges[negativeHalf + 1]));
        Assert.Equal(4000, ServiceHarness.Sample(metrics, $"monitor_tensor_histogram_elements{{{Labels},le=\"+Inf\"}}"));
    }

    [Fact]
    public async Task Histogram_IsExportedCumulativelyPerUpperEdge_ForTheLog2Layout()
    {
        await using ServiceHarness harness = await ServiceHarness.StartAsync();
        StepRecord record = ServiceHarness.Record("run-h", 0, 1, ("fc1.weight", Collection.Weights, 0.25));
        // Two elements in the bucket [-1, -0.5), three in [0.25, 0.5), one in [2^15, +inf).
        int negativeHalf = Log2Histogram.BucketOf(-0.75), quarter = Log2Histogram.BucketOf(0.3), top = Log2Histogram.BucketCount - 1;
        record.Tensors[0].Summary.Histogram = Log2(first: negativeHalf, (negativeHalf, 2), (quarter, 3), (top, 1));

        harness.Send(record);
        await harness.WaitForProcessedAsync(1);
        string metrics = await harness.ScrapeAsync();

        double[] edges = Log2Histogram.Edges.ToArray();
        string[] bucketLines = [.. metrics.Split('\n').Where(l => l.StartsWith("monitor_tensor_histogram_elements{", StringComparison.Ordinal))];
        Assert.Equal(Log2Histogram.BucketCount, bucketLines.Length);
        Assert.Equal(0, Bucket(metrics, edges[negativeHalf]));
        Assert.Equal(2, Bucket(metrics, edges[negativeHalf + 1]));
        Assert.Equal(2, Bucket(metrics, 0));
        Assert.Equal(5, Bucket(metrics, edges[quarter + 1]));
        Assert.Equal(5, Bucket(metrics, edges[top]));
        Assert.Equal(6, ServiceHarness.Sample(metrics, $"monitor_tensor_histogram_elements{{{Labels},le=\"+Inf\"}}"));
        Assert.Equal(1, ServiceHarness.Sample(metrics, "monitor_tensor_histograms"));
    }

    [Fact]
    public async Task Histogram_FollowsThePatternAndTheCap_AndGoesWithItsTensor()
    {
        await using ServiceHarness harness = await ServiceHarness.StartAsync(new MonitorServiceOptions { HistogramTensors = "grad$", MaxHistogramTensors = 2 });
        string[] names = ["a.grad", "b", "c.grad", "d.grad"];
        StepRecord Step(long step, params string[] traced)
        {
            StepRecord record = ServiceHarness.Record("run-p", 0, step, [.. traced.Select(n => (n, Collection.Gradients, 1.0))]);
            foreach (TensorRecord tensor in record.Tensors)
            {
                tensor.Summary.Histogram = Log2(first: 50, (50, 10));
            }

            return record;
        }

        harness.Send(Step(1, names));
        await harness.WaitForProcessedAsync(1);
        string capped = await harness.ScrapeAsync();
        // A new selection without a.grad: its series go, and the freed place goes to d.grad at its next record.
        StepRecord next = Step(2, "b", "c.grad", "d.grad");
        next.SelectionVersion = 1;
        harness.Send(next);
        await harness.WaitForProcessedAsync(2);
        string after = await harness.ScrapeAsync();

        Assert.Equal(["a.grad", "c.grad"], HistogramTensors(capped));
        Assert.Equal(2, ServiceHarness.Sample(capped, "monitor_tensor_histograms"));
        Assert.Equal(["c.grad", "d.grad"], HistogramTensors(after));
        Assert.Equal(2, ServiceHarness.Sample(after, "monitor_tensor_histograms"));
        Assert.Null(ServiceHarness.Sample(after, "monitor_tensor_mean{run=\"run-p\",rank=\"0\",tensor=\"a.grad\"}"));
    }

    [Theory]
    [InlineData("(a)\\1", "histogram tensor pattern")]
    [InlineData(null, null)]
    public void Options_Validate_RejectsAPatternTheNonBacktrackingEngineCannotRun(string? pattern, string? expected)
    {
        var options = new MonitorServiceOptions { HistogramTensors = pattern };
        if (expected is null)
        {
            options.Validate();
            return;
        }

        Assert.Contains(expected, Assert.Throws<ArgumentException>(options.Validate).Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Heartbeats_ExportSeenRanks_AndDropStoppedOrVanishedOnes()
    {
        var metrics = new ServiceMetrics(Metrics.NewCustomRegistry(), new MonitorServiceOptions());
        metrics.Record(ServiceHarness.Record("run-w", 0, 1));
        metrics.Record(ServiceHarness.Record("run-w", 1, 1));
        var at = new DateTimeOffset(2025, 1, 2, 3, 4, 5, 500, TimeSpan.Zero);

        metrics.Heartbeats("run-w", [new WorkerStatus { Rank = 0, At = at }, new WorkerStatus { Rank = 1, At = at }, new WorkerStatus { Rank = 7, At = at }]);
        string both = await ScrapeAsync(metrics);
        metrics.Heartbeats("run-w", [new WorkerStatus { Rank = 0, At = at.AddSeconds(2), Stopped = true }, new WorkerStatus { Rank = 1, At = at.AddSeconds(2) }]);
        string stopped = await ScrapeAsync(metrics);
        metrics.Heartbeats("run-w", []);
        string vanished = await ScrapeAsync(metrics);

        Assert.Equal(["run-w"], metrics.RunsSeen);
        Assert.Equal(at.ToUnixTimeMilliseconds() / 1000.0, ServiceHarness.Sample(both, "monitor_worker_heartbeat_timestamp_seconds{run=\"run-w\",rank=\"0\"}"));
        // Rank 7 sent no record here: another replica reports it.
        Assert.Null(ServiceHarness.Sample(both, "monitor_worker_heartbeat_timestamp_seconds{run=\"run-w\",rank=\"7\"}"));
        Assert.Null(ServiceHarness.Sample(stopped, "monitor_worker_heartbeat_timestamp_seconds{run=\"run-w\",rank=\"0\"}"));
        Assert.Equal(at.AddSeconds(2).ToUnixTimeMilliseconds() / 1000.0, ServiceHarness.Sample(stopped, "monitor_worker_heartbeat_timestamp_seconds{run=\"run-w\",rank=\"1\"}"));
        Assert.DoesNotContain("monitor_worker_heartbeat_timestamp_seconds{", vanished, StringComparison.Ordinal);
    }

    [Fact]
    public void Record_AllocatesNothing_ForARankAndTensorsAlreadyExported()
    {
        var metrics = new ServiceMetrics(Metrics.NewCustomRegistry(), new MonitorServiceOptions());
        StepRecord record = ServiceHarness.Record("run-a", 0, 1, ("loss", Collection.Losses, 0.5), ("fc1.weight", Collection.Weights, 0.25), ("fc1.weight.grad", Collection.Gradients, 1e-3));
        foreach (TensorRecord tensor in record.Tensors)
        {
            tensor.Summary.Histogram = Log2(first: 40, (40, 3), (60, 7));
        }

        metrics.Record(record);
        metrics.Record(record);

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++)
        {
            record.Step = i + 2;
            metrics.Record(record);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    private static Histogram Log2(int first, params (int Bucket, ulong Count)[] counts)
    {
        var histogram = new Histogram { Layout = HistogramLayout.Log2Magnitude, FirstBucket = (uint)first };
        int last = counts.Max(c => c.Bucket);
        for (int bucket = first; bucket <= last; bucket++)
        {
            histogram.Counts.Add(counts.Where(c => c.Bucket == bucket).Select(c => c.Count).FirstOrDefault());
        }

        return histogram;
    }

    private static double? Bucket(string metrics, double upperEdge) =>
        ServiceHarness.Sample(metrics, $"monitor_tensor_histogram_elements{{{Labels},le=\"{(upperEdge == 0 ? "0" : upperEdge.ToString("R", CultureInfo.InvariantCulture))}\"}}");

    private static string[] HistogramTensors(string metrics) =>
    [
        .. metrics.Split('\n')
            .Where(l => l.StartsWith("monitor_tensor_histogram_elements{", StringComparison.Ordinal))
            .Select(l => l[(l.IndexOf("tensor=\"", StringComparison.Ordinal) + 8)..])
            .Select(l => l[..l.IndexOf('"', StringComparison.Ordinal)])
            .Distinct()
            .Order(StringComparer.Ordinal),
    ];

    private static async Task<string> ScrapeAsync(ServiceMetrics metrics)
    {
        using var stream = new MemoryStream();
        await metrics.Registry.CollectAndExportAsTextAsync(stream, TestContext.Current.CancellationToken);
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }
}
