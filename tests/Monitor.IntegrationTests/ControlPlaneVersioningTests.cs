using Monitor.Contracts;
using Monitor.Contracts.Transport;
using Monitor.ControlPlane;
using Monitor.Tracing;
using Monitor.Tracing.Control;
using StackExchange.Redis;

namespace Monitor.IntegrationTests;

/// <summary>
/// The control plane across versions and clocks: status documents of newer versions still read, stop commands are
/// told new from old by a Redis-side id instead of the issuer's clock, and a selection's own ranks are honoured.
/// </summary>
public sealed class ControlPlaneVersioningTests
{
    private static readonly SelectionChange Alice = new("alice", "test");

    [Theory, RedisBackends]
    public async Task StopCommand_IsApplied_WhenTheIssuersClockIsAnHourBehindTheWorkers(string backend)
    {
        await using IRedisEndpoint redis = await RedisEndpoints.StartAsync(backend, TestContext.Current.CancellationToken);
        await using ConnectionMultiplexer client = await RedisEndpoints.ConnectAsync(redis);
        var keys = new RunKeys();
        var bus = new InProcessBus();
        await using var tracer = new StepTracer(new TracerOptions { RunId = keys.Run }, bus.CreateProducer());
        await using var control = TracerControlPlane.Start(tracer, new ControlPlaneOptions { Redis = redis.ConnectionString, PollInterval = TimeSpan.FromMilliseconds(100) });
        await Eventually.TrueAsync(() => control.Statistics.Refreshes > 0, "the worker read the control plane once");

        await new SelectionStore(client).IssueCommandAsync(keys.Run, new RunCommand { Reason = "late clock", IssuedAt = DateTimeOffset.UtcNow.AddHours(-1) });

        await Eventually.TrueAsync(() => control.ShouldStop, "the stop command was applied");
        Assert.Equal("late clock", control.StopCommand!.Reason);
        Assert.Equal(1, control.StopCommand.Id);
    }

    [Theory, RedisBackends]
    public async Task StopCommand_IsIgnored_WhenStoredBeforeTheWorkerStarted_EvenWithAnIssueTimeInTheFuture(string backend)
    {
        await using IRedisEndpoint redis = await RedisEndpoints.StartAsync(backend, TestContext.Current.CancellationToken);
        await using ConnectionMultiplexer client = await RedisEndpoints.ConnectAsync(redis);
        var keys = new RunKeys();
        var store = new SelectionStore(client);
        await store.IssueCommandAsync(keys.Run, new RunCommand { Reason = "old run", IssuedAt = DateTimeOffset.UtcNow.AddHours(1) });
        var bus = new InProcessBus();
        await using var tracer = new StepTracer(new TracerOptions { RunId = keys.Run }, bus.CreateProducer());
        await using var control = TracerControlPlane.Start(tracer, new ControlPlaneOptions { Redis = redis.ConnectionString, PollInterval = TimeSpan.FromMilliseconds(100) });

        await Eventually.TrueAsync(() => control.Statistics.Refreshes >= 3, "the worker read the control plane three times");
        Assert.False(control.ShouldStop);

        await store.IssueCommandAsync(keys.Run, new RunCommand { Reason = "this run", IssuedAt = DateTimeOffset.UtcNow.AddHours(-1) });
        await Eventually.TrueAsync(() => control.ShouldStop, "the new stop command was applied");
        Assert.Equal(("this run", 2L), (control.StopCommand!.Reason, control.StopCommand.Id));
    }

    [Theory, RedisBackends]
    public async Task StatusDocuments_OfANewerVersion_StillRead_AndAnUnreadableOneHidesNoOther(string backend)
    {
        await using IRedisEndpoint redis = await RedisEndpoints.StartAsync(backend, TestContext.Current.CancellationToken);
        await using ConnectionMultiplexer client = await RedisEndpoints.ConnectAsync(redis);
        var keys = new RunKeys();
        IDatabase db = client.GetDatabase();
        await db.HashSetAsync(ControlPlaneKeys.Workers(keys.Run), [
            new HashEntry(5, """{"rank":5,"host":"a","steps":5,"fieldOfANewerWorker":{"x":1}}"""),
            new HashEntry(6, "not json"),
            new HashEntry(7, """{"rank":7,"host":"c","steps":7}"""),
        ]);
        await db.ListLeftPushAsync(ControlPlaneKeys.Audit(keys.Run), """{"who":"bob","action":"set","newVersion":3,"comment":"newer"}""");
        var bus = new InProcessBus();
        await using var tracer = new StepTracer(new TracerOptions { RunId = keys.Run }, bus.CreateProducer());
        await using var control = TracerControlPlane.Start(tracer, new ControlPlaneOptions { Redis = redis.ConnectionString, PollInterval = TimeSpan.FromMilliseconds(100) });
        await Eventually.TrueAsync(() => control.Statistics.Refreshes > 0, "the worker read the control plane once");
        await db.StringSetAsync(ControlPlaneKeys.Command(keys.Run), """{"command":"stop","reason":"newer service","id":99,"priority":"high"}""");
        await db.StringSetAsync(ControlPlaneKeys.CommandSequence(keys.Run), 99);

        var store = new SelectionStore(client);
        IReadOnlyList<WorkerStatus> workers = await store.WorkersAsync(keys.Run);
        IReadOnlyList<AuditEntry> history = await store.HistoryAsync(keys.Run);

        // Rank 0 is this test's worker, heartbeating; 6 does not parse and is left out.
        Assert.Equal([(5, 5L), (7, 7L)], workers.Where(w => w.Rank > 0).Select(w => (w.Rank, w.Steps)));
        Assert.Equal(("bob", 3L), (history.Single().Who, history.Single().NewVersion));
        await Eventually.TrueAsync(() => control.ShouldStop, "the newer service's stop command was applied");
        Assert.Equal("newer service", control.StopCommand!.Reason);
    }

    [Theory, RedisBackends]
    public async Task SetAsync_HonoursTheSelectionsOwnRanks_AndRefusesRanksThatDisagree(string backend)
    {
        await using IRedisEndpoint redis = await RedisEndpoints.StartAsync(backend, TestContext.Current.CancellationToken);
        await using ConnectionMultiplexer client = await RedisEndpoints.ConnectAsync(redis);
        var store = new SelectionStore(client);
        var keys = new RunKeys();
        TraceSelection forRankOne = new() { Ranks = [1], ChiefOnly = false, Collections = new Dictionary<string, CollectionFilter> { ["losses"] = new() } };

        TraceSelection stored = await store.SetAsync(keys.Run, forRankOne, Alice, cancellationToken: TestContext.Current.CancellationToken);
        var error = await Assert.ThrowsAsync<SelectionValidationException>(() => store.SetAsync(keys.Run, forRankOne, Alice, ranks: [2], TestContext.Current.CancellationToken));

        Assert.Equal([1], stored.Ranks);
        Assert.Null(await store.GetAsync(keys.Run));
        Assert.Equal(1, (await store.GetAsync(keys.Run, 1))?.Rank);
        Assert.Null(await store.GetAsync(keys.Run, 2));
        Assert.Contains("the selection names ranks [1] but it is being stored for ranks [2]", error.Message, StringComparison.Ordinal);
    }

    [Theory, RedisBackends]
    public async Task FinishedRunsKeys_Expire_OnceEveryRankStopped_AndARerunKeepsThem(string backend)
    {
        await using IRedisEndpoint redis = await RedisEndpoints.StartAsync(backend, TestContext.Current.CancellationToken);
        await using ConnectionMultiplexer client = await RedisEndpoints.ConnectAsync(redis);
        var keys = new RunKeys();
        var store = new SelectionStore(client);
        IDatabase db = client.GetDatabase();
        await store.SetAsync(keys.Run, new TraceSelection(), Alice, cancellationToken: TestContext.Current.CancellationToken);
        var bus = new InProcessBus();
        var options = new ControlPlaneOptions { Redis = redis.ConnectionString, PollInterval = TimeSpan.FromMilliseconds(100), FinishedRunRetention = TimeSpan.FromHours(1) };
        await using var tracer0 = new StepTracer(new TracerOptions { RunId = keys.Run, Rank = 0, WorldSize = 2 }, bus.CreateProducer());
        await using var tracer1 = new StepTracer(new TracerOptions { RunId = keys.Run, Rank = 1, WorldSize = 2 }, bus.CreateProducer());
        TracerControlPlane rank0 = TracerControlPlane.Start(tracer0, options), rank1 = TracerControlPlane.Start(tracer1, options);
        await Eventually.TrueAsync(() => rank0.Statistics.Refreshes > 0 && rank1.Statistics.Refreshes > 0, "both ranks read the control plane");

        await rank0.DisposeAsync();
        Assert.Null(await db.KeyTimeToLiveAsync(ControlPlaneKeys.Workers(keys.Run)));
        await rank1.DisposeAsync();
        TimeSpan? left = await db.KeyTimeToLiveAsync(ControlPlaneKeys.Workers(keys.Run));
        Assert.InRange(left ?? TimeSpan.Zero, TimeSpan.FromMinutes(59), TimeSpan.FromHours(1));
        Assert.NotNull(await db.KeyTimeToLiveAsync(ControlPlaneKeys.Selection(keys.Run)));
        Assert.NotNull(await db.KeyTimeToLiveAsync(ControlPlaneKeys.Metadata(keys.Run)));

        // A rerun under the same id takes the keys back; once they are gone the run leaves the runs list.
        await using (var rerun = TracerControlPlane.Start(tracer0, options))
        {
            await Eventually.TrueAsync(() => rerun.Statistics.Refreshes > 0, "the rerun read the control plane");
            Assert.Null(await db.KeyTimeToLiveAsync(ControlPlaneKeys.Workers(keys.Run)));
            Assert.Null(await db.KeyTimeToLiveAsync(ControlPlaneKeys.Selection(keys.Run)));
        }

        Assert.Contains(keys.Run, await store.RunsAsync());
        await db.KeyDeleteAsync([ControlPlaneKeys.Workers(keys.Run), ControlPlaneKeys.Selection(keys.Run), ControlPlaneKeys.Audit(keys.Run),
            ControlPlaneKeys.Metadata(keys.Run), ControlPlaneKeys.Artifacts(keys.Run)]);
        Assert.DoesNotContain(keys.Run, await store.RunsAsync());
        Assert.False(await db.SetContainsAsync(ControlPlaneKeys.Runs, keys.Run));
    }
}
