using Monitor.Contracts;
using Monitor.Contracts.Transport;
using Monitor.Contracts.V1;
using Monitor.ControlPlane;
using Monitor.Service;
using Monitor.Tracing;
using Monitor.Tracing.Control;
using StackExchange.Redis;

namespace Monitor.IntegrationTests;

/// <summary>
/// <c>monitor_worker_heartbeat_timestamp_seconds</c> end to end: a worker's heartbeats reach the service's /metrics
/// through the control plane, and a worker that stops on purpose leaves a last heartbeat marked stopped, so its
/// series goes instead of ageing into a "heartbeat lost" alert.
/// </summary>
public sealed class WorkerHeartbeatMetricsTests
{
    [Theory, RedisBackends]
    public async Task Heartbeat_IsExported_ThenRemoved_WhenTheWorkerStops(string backend)
    {
        await using IRedisEndpoint redis = await RedisEndpoints.StartAsync(backend, TestContext.Current.CancellationToken);
        var keys = new RunKeys();
        var bus = new InProcessBus();
        await using var service = new MonitorService(
            new MonitorServiceOptions { ListenUrl = "http://127.0.0.1:0", Redis = redis.ConnectionString, HeartbeatInterval = TimeSpan.FromMilliseconds(100) },
            bus.CreateConsumer(MonitorTopics.Steps), bus.CreateProducer());
        await service.StartAsync(TestContext.Current.CancellationToken);
        await using var tracer = new StepTracer(new TracerOptions { RunId = keys.Run, Rank = 0 }, bus.CreateProducer());
        TracerControlPlane control = TracerControlPlane.Start(tracer, new ControlPlaneOptions { Redis = redis.ConnectionString, HeartbeatInterval = TimeSpan.FromMilliseconds(100) });
        string series = $"monitor_worker_heartbeat_timestamp_seconds{{run=\"{keys.Run}\",rank=\"0\"}}";
        using var http = new HttpClient();
        string Scrape() => http.GetStringAsync(new Uri(service.BaseAddress!, "metrics"), TestContext.Current.CancellationToken).GetAwaiter().GetResult();
        try
        {
            tracer.BeginStep(0);
            tracer.AddScalar("loss", CollectionSet.Of(Collection.Losses), 1.0);
            tracer.EndStep();

            await Eventually.TrueAsync(() => Prometheus.Samples(Scrape(), series).Count == 1, "the heartbeat is exported");
            double at = Prometheus.Samples(Scrape(), series)[0];
            Assert.InRange(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0 - at, -5, 30);
        }
        finally
        {
            await control.DisposeAsync();
        }

        await using ConnectionMultiplexer client = await RedisEndpoints.ConnectAsync(redis);
        Assert.True((await new SelectionStore(client).WorkersAsync(keys.Run)).Single().Stopped);
        await Eventually.TrueAsync(() => Prometheus.Samples(Scrape(), series).Count == 0, "the stopped worker's heartbeat series is gone");
    }
}
