using Monitor.Cli;
using Monitor.Contracts;
using Monitor.ControlPlane;
using StackExchange.Redis;

namespace Monitor.IntegrationTests;

/// <summary>
/// The control plane end to end in <c>monitor demo</c>: three data-parallel TorchSharp ranks, a real redis-server,
/// and a selection stored for rank 1 while they train. Each rank traces 22 tensors: the 18 of the model and optimizer,
/// and the batch: inputs, labels, predictions and the per-example losses.
/// </summary>
public sealed class DemoReconfigurationTests
{
    [Fact]
    public async Task ThreeRankDemo_TracingChangeForRank1_ReachesItsRecordsAndMetrics_OthersUnchanged()
    {
        await using IRedisEndpoint redis = await RedisEndpoints.StartAsync(RedisEndpoints.RedisServer, TestContext.Current.CancellationToken);
        var output = new StringWriter();
        var runner = new DemoRunner(new DemoOptions
        {
            Steps = 100_000,
            Ranks = 3,
            MetricsPort = 0,
            RunId = "demo-3",
            Redis = redis.ConnectionString,
            StepDelay = TimeSpan.FromMilliseconds(10),
        }, output);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        Task<DemoResult> demo = runner.RunAsync(stop.Token);
        // A failed wait must not leave 100,000 steps training in the background of the test host.
        string metrics = "";
        TraceSelection stored;
        try
        {
            await Eventually.TrueAsync(() => runner.Tracers.Count == 3 && runner.Tracers.All(t => t.Statistics.Delivered > 20), "three ranks are training");

            await using ConnectionMultiplexer client = await RedisEndpoints.ConnectAsync(redis);
            var store = new SelectionStore(client);
            await Eventually.TrueAsync(() => store.CatalogAsync("demo-3", 1).GetAwaiter().GetResult().Count == 22, "rank 1 published its 22 tensors");
            var selection = new TraceSelection
            {
                Collections = new Dictionary<string, CollectionFilter> { ["gradients"] = new() { Include = ["^fc2\\."] } },
                Schedule = new TraceSchedule { EverySteps = 1 },
            };
            stored = await store.SetAsync("demo-3", selection, new SelectionChange("test", "test"), [1], TestContext.Current.CancellationToken);
            await Eventually.TrueAsync(() => runner.Tracers[1].Statistics.SelectionVersion == stored.Version, "rank 1 took the selection");

            using var http = new HttpClient();
            await Eventually.TrueAsync(() =>
            {
                metrics = http.GetStringAsync(new Uri(runner.ServiceAddress!, "metrics")).GetAwaiter().GetResult();
                return Prometheus.Samples(metrics, "monitor_selection_version{run=\"demo-3\",rank=\"1\"}").SequenceEqual([(double)stored.Version]);
            }, "the service sees rank 1's records under the new version");
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAny(demo);
        }

        DemoResult result = await demo;

        Assert.Equal([0.0], Prometheus.Samples(metrics, "monitor_selection_version{run=\"demo-3\",rank=\"0\"}"));
        Assert.Equal([0.0], Prometheus.Samples(metrics, "monitor_selection_version{run=\"demo-3\",rank=\"2\"}"));
        string[] rank1Series = [.. metrics.Split('\n').Where(l => l.StartsWith("monitor_tensor_mean{run=\"demo-3\",rank=\"1\"", StringComparison.Ordinal))];
        Assert.Equal(2, rank1Series.Length);
        Assert.All(rank1Series, l => Assert.Contains("tensor=\"fc2.", l, StringComparison.Ordinal));
        Assert.Equal(22, metrics.Split('\n').Count(l => l.StartsWith("monitor_tensor_mean{run=\"demo-3\",rank=\"0\"", StringComparison.Ordinal)));
        Assert.Equal(22, metrics.Split('\n').Count(l => l.StartsWith("monitor_tensor_mean{run=\"demo-3\",rank=\"2\"", StringComparison.Ordinal)));
        Assert.Equal(0, result.ExitCode);
        Assert.Contains("--rank 1 --include 'gradients:^fc2\\.'", output.ToString(), StringComparison.Ordinal);
        Assert.Contains("selection r0:v0 r1:v" + stored.Version + " r2:v0", output.ToString(), StringComparison.Ordinal);
    }
}
