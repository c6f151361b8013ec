using System.Text.Json;
using Monitor.Contracts;
using Monitor.ControlPlane;
using StackExchange.Redis;

namespace Monitor.IntegrationTests;

/// <summary><see cref="SelectionStore"/> against a real redis-server and Garnet.</summary>
public sealed class ControlPlaneStoreTests
{
    private static readonly SelectionChange Alice = new("alice", "test");

    private static TraceSelection Fc2Gradients => new()
    {
        Collections = new Dictionary<string, CollectionFilter> { ["gradients"] = new() { Include = ["^fc2\\."] } },
        Schedule = new TraceSchedule { EverySteps = 1 },
    };

    [Theory, RedisBackends]
    public async Task SetAsync_StoresAVersionedSelection_AuditsIt_AndPublishesANotice(string backend)
    {
        await using IRedisEndpoint redis = await RedisEndpoints.StartAsync(backend, TestContext.Current.CancellationToken);
        await using ConnectionMultiplexer client = await RedisEndpoints.ConnectAsync(redis);
        var store = new SelectionStore(client);
        var keys = new RunKeys();
        var notices = new List<string>();
        await client.GetSubscriber().SubscribeAsync(RedisChannel.Literal(ControlPlaneKeys.Control(keys.Run)), (_, message) =>
        {
            lock (notices)
            {
                notices.Add(message.ToString());
            }
        });

        TraceSelection first = await store.SetAsync(keys.Run, Fc2Gradients, Alice, cancellationToken: TestContext.Current.CancellationToken);
        TraceSelection second = await store.SetAsync(keys.Run, Fc2Gradients with { ChiefOnly = true }, new SelectionChange("bob", "cli"), cancellationToken: TestContext.Current.CancellationToken);

        Assert.Equal(1, first.Version);
        Assert.Equal(2, second.Version);
        EffectiveSelection? stored = await store.GetAsync(keys.Run);
        Assert.NotNull(stored);
        Assert.Null(stored.Rank);
        Assert.Equal(2, stored.Selection.Version);
        Assert.True(stored.Selection.ChiefOnly);
        IReadOnlyList<AuditEntry> history = await store.HistoryAsync(keys.Run);
        Assert.Equal(2, history.Count);
        Assert.Equal(("bob", "cli", "set", 1L, 2L), (history[0].Who, history[0].Source, history[0].Action, history[0].OldVersion, history[0].NewVersion));
        Assert.Equal(("alice", "test", (long?)null, 1L), (history[1].Who, history[1].Source, history[1].OldVersion, history[1].NewVersion));
        Assert.Contains(keys.Run, await store.RunsAsync());
        await Eventually.TrueAsync(() => { lock (notices) { return notices.Count == 2; } }, "two notices arrived");
        using var notice = JsonDocument.Parse(notices[1]);
        Assert.Equal("selection", notice.RootElement.GetProperty("kind").GetString());
        Assert.Equal(2, notice.RootElement.GetProperty("version").GetInt64());
    }

    [Theory, RedisBackends]
    public async Task SetAsync_ForARank_LeavesTheOtherRanksOnTheRunSelection_UntilCleared(string backend)
    {
        await using IRedisEndpoint redis = await RedisEndpoints.StartAsync(backend, TestContext.Current.CancellationToken);
        await using ConnectionMultiplexer client = await RedisEndpoints.ConnectAsync(redis);
        var store = new SelectionStore(client);
        var keys = new RunKeys();

        await store.SetAsync(keys.Run, TraceSelection.AllEveryStep, Alice, cancellationToken: TestContext.Current.CancellationToken);
        TraceSelection own = await store.SetAsync(keys.Run, Fc2Gradients, Alice, [1, 2], TestContext.Current.CancellationToken);

        Assert.Equal([1, 2], own.Ranks);
        Assert.Equal((1L, (int?)null), await VersionAndSource(store, keys.Run, 0));
        Assert.Equal((2L, (int?)1), await VersionAndSource(store, keys.Run, 1));
        Assert.Equal((2L, (int?)2), await VersionAndSource(store, keys.Run, 2));

        Assert.True(await store.ClearRankAsync(keys.Run, 1, Alice, TestContext.Current.CancellationToken));
        Assert.False(await store.ClearRankAsync(keys.Run, 1, Alice, TestContext.Current.CancellationToken));
        Assert.Equal((1L, (int?)null), await VersionAndSource(store, keys.Run, 1));
        Assert.Equal((2L, (int?)2), await VersionAndSource(store, keys.Run, 2));
        AuditEntry clear = (await store.HistoryAsync(keys.Run))[0];
        Assert.Equal(("clear", (int?)1, (long?)2, (long?)null), (clear.Action, clear.Rank, clear.OldVersion, clear.NewVersion));
    }

    [Theory]
    [InlineData("redis-server", "collections.gradients.include[0]")]
    [InlineData("garnet", "schedule.stepRange")]
    [InlineData("redis-server", "collections.bogus")]
    public async Task SetAsync_RefusesAnInvalidSelection_AndStoresNothing(string backend, string field)
    {
        await using IRedisEndpoint redis = await RedisEndpoints.StartAsync(backend, TestContext.Current.CancellationToken);
        await using ConnectionMultiplexer client = await RedisEndpoints.ConnectAsync(redis);
        var store = new SelectionStore(client);
        var keys = new RunKeys();
        TraceSelection invalid = field switch
        {
            "collections.gradients.include[0]" => new TraceSelection { Collections = new Dictionary<string, CollectionFilter> { ["gradients"] = new() { Include = ["(unclosed"] } } },
            "schedule.stepRange" => Fc2Gradients with { Schedule = new TraceSchedule { StepRange = new StepRange(10, 5) } },
            _ => new TraceSelection { Collections = new Dictionary<string, CollectionFilter> { ["bogus"] = new() } },
        };

        var error = await Assert.ThrowsAsync<SelectionValidationException>(() => store.SetAsync(keys.Run, invalid, Alice, cancellationToken: TestContext.Current.CancellationToken));

        Assert.Contains(error.Problems, p => p.StartsWith(field, StringComparison.Ordinal));
        Assert.Null(await store.GetAsync(keys.Run));
        Assert.Empty(await store.HistoryAsync(keys.Run));
        Assert.False(await client.GetDatabase().KeyExistsAsync(ControlPlaneKeys.Version(keys.Run)));
    }

    [Theory, RedisBackends]
    public async Task ConcurrentSets_GetDistinctVersions_AndTheHighestIsStored(string backend)
    {
        await using IRedisEndpoint redis = await RedisEndpoints.StartAsync(backend, TestContext.Current.CancellationToken);
        await using ConnectionMultiplexer client = await RedisEndpoints.ConnectAsync(redis);
        var store = new SelectionStore(client);
        var keys = new RunKeys();

        TraceSelection[] stored = await Task.WhenAll(Enumerable.Range(1, 12).Select(i =>
            store.SetAsync(keys.Run, Fc2Gradients with { LimitSize = i }, Alice, cancellationToken: TestContext.Current.CancellationToken)));

        Assert.Equal(12, stored.Select(s => s.Version).Distinct().Count());
        EffectiveSelection? current = await store.GetAsync(keys.Run);
        Assert.Equal(stored.Max(s => s.Version), current!.Selection.Version);
        Assert.Equal(12, (await store.HistoryAsync(keys.Run)).Count);
    }

    private static async Task<(long Version, int? Rank)> VersionAndSource(SelectionStore store, string run, int rank)
    {
        EffectiveSelection effective = (await store.GetAsync(run, rank))!;
        return (effective.Selection.Version, effective.Rank);
    }
}
