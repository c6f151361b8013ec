using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Monitor.Cli;
using StackExchange.Redis;

namespace Monitor.IntegrationTests;

/// <summary>
/// What the control plane needs from a Redis-protocol server, proven with StackExchange.Redis against a real
/// redis-server and against the demo's in-process Garnet alike: strings, hashes, lists, sets, INCR, MULTI/EXEC with
/// conditions (WATCH), pub/sub, hash-tagged keys, and a client that reconnects by itself after the server restarts.
/// Every test starts its own server on a free port and uses its own run's keys.
/// </summary>
public sealed class RedisEndpointTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    private static CancellationToken Cancellation => TestContext.Current.CancellationToken;

    [Theory, RedisBackends]
    public async Task StringSet_IsReadBack_WhenTheKeyCarriesTheRunHashTag(string backend)
    {
        await using IRedisEndpoint redis = await RedisEndpoints.StartAsync(backend, Cancellation);
        await using ConnectionMultiplexer client = await RedisEndpoints.ConnectAsync(redis);
        IDatabase db = client.GetDatabase();
        var keys = new RunKeys();

        Assert.True(await db.StringSetAsync(keys.Key("selection"), """{"version":1}"""));
        Assert.False(await db.StringSetAsync(keys.Key("selection"), "ignored", when: When.NotExists));

        Assert.Equal("""{"version":1}""", await db.StringGetAsync(keys.Key("selection")));
        Assert.True((await db.StringGetAsync(keys.Key("absent"))).IsNull);
    }

    [Theory, RedisBackends]
    public async Task HashGetAll_ReturnsEveryField_WhenFieldsWereSetTogether(string backend)
    {
        await using IRedisEndpoint redis = await RedisEndpoints.StartAsync(backend, Cancellation);
        await using ConnectionMultiplexer client = await RedisEndpoints.ConnectAsync(redis);
        IDatabase db = client.GetDatabase();
        RedisKey catalog = new RunKeys().Key("catalog:0");

        await db.HashSetAsync(catalog, [new("fc1.weight", "[64,784] float32"), new("fc1.bias", "[64] float32")]);
        await db.HashSetAsync(catalog, "fc2.weight", "[10,64] float32");
        Assert.True(await db.HashDeleteAsync(catalog, "fc1.bias"));

        HashEntry[] all = await db.HashGetAllAsync(catalog);
        Assert.Equal(
            [("fc1.weight", "[64,784] float32"), ("fc2.weight", "[10,64] float32")],
            all.Select(e => ((string)e.Name!, (string)e.Value!)).Order());
        Assert.Equal("[10,64] float32", await db.HashGetAsync(catalog, "fc2.weight"));
    }

    [Theory, RedisBackends]
    public async Task ListTrim_KeepsTheNewestEntries_WhenEntriesArePushedAtTheHead(string backend)
    {
        await using IRedisEndpoint redis = await RedisEndpoints.StartAsync(backend, Cancellation);
        await using ConnectionMultiplexer client = await RedisEndpoints.ConnectAsync(redis);
        IDatabase db = client.GetDatabase();
        RedisKey audit = new RunKeys().Key("audit");

        for (int change = 1; change <= 5; change++)
        {
            await db.ListLeftPushAsync(audit, $"change {change}");
        }

        await db.ListTrimAsync(audit, 0, 2);

        Assert.Equal(["change 5", "change 4", "change 3"], (await db.ListRangeAsync(audit)).Select(v => (string)v!));
        Assert.Equal(["change 5", "change 4"], (await db.ListRangeAsync(audit, 0, 1)).Select(v => (string)v!));
        Assert.Equal(3, await db.ListLengthAsync(audit));
    }

    [Theory, RedisBackends]
    public async Task SetMembers_AreDistinct_WhenAMemberIsAddedTwice(string backend)
    {
        await using IRedisEndpoint redis = await RedisEndpoints.StartAsync(backend, Cancellation);
        await using ConnectionMultiplexer client = await RedisEndpoints.ConnectAsync(redis);
        IDatabase db = client.GetDatabase();
        RedisKey collections = new RunKeys().Key("collections");

        Assert.Equal(2, await db.SetAddAsync(collections, ["gradients", "weights"]));
        Assert.False(await db.SetAddAsync(collections, "gradients"));

        Assert.Equal(["gradients", "weights"], (await db.SetMembersAsync(collections)).Select(v => (string)v!).Order());
        Assert.True(await db.SetContainsAsync(collections, "weights"));
        Assert.False(await db.SetContainsAsync(collections, "losses"));
    }

    [Theory, RedisBackends]
    public async Task StringIncrement_CountsFromOne_WhenTheCounterIsNew(string backend)
    {
        await using IRedisEndpoint redis = await RedisEndpoints.StartAsync(backend, Cancellation);
        await using ConnectionMultiplexer client = await RedisEndpoints.ConnectAsync(redis);
        IDatabase db = client.GetDatabase();
        RedisKey version = new RunKeys().Key("selection:version");

        Assert.Equal(1, await db.StringIncrementAsync(version));
        Assert.Equal(2, await db.StringIncrementAsync(version));
        Assert.Equal("2", await db.StringGetAsync(version));
    }

    [Theory, RedisBackends]
    public async Task Transaction_AppliesEveryCommand_WhenItsConditionsHold(string backend)
    {
        await using IRedisEndpoint redis = await RedisEndpoints.StartAsync(backend, Cancellation);
        await using ConnectionMultiplexer client = await RedisEndpoints.ConnectAsync(redis);
        IDatabase db = client.GetDatabase();
        var keys = new RunKeys();
        ISubscriber subscriber = client.GetSubscriber();
        ChannelMessageQueue control = await subscriber.SubscribeAsync(keys.Control);

        // First write of a selection: only if there is none yet (WATCH + EXISTS, then MULTI/EXEC).
        ITransaction first = db.CreateTransaction();
        first.AddCondition(Condition.KeyNotExists(keys.Key("selection:version")));
        Task<long> firstVersion = first.StringIncrementAsync(keys.Key("selection:version"));
        _ = first.HashSetAsync(keys.Key("selection"), [new("json", """{"include":["*.grad"]}"""), new("version", 1)]);
        _ = first.ListLeftPushAsync(keys.Key("audit"), "v1");
        _ = first.PublishAsync(keys.Control, "changed");
        Assert.True(await first.ExecuteAsync());
        Assert.Equal(1, await firstVersion);

        // A later write: only if nobody else changed the version since it was read.
        ITransaction next = db.CreateTransaction();
        next.AddCondition(Condition.StringEqual(keys.Key("selection:version"), 1));
        next.AddCondition(Condition.HashEqual(keys.Key("selection"), "version", 1));
        Task<long> nextVersion = next.StringIncrementAsync(keys.Key("selection:version"));
        _ = next.HashSetAsync(keys.Key("selection"), [new("json", """{"include":["*"]}"""), new("version", 2)]);
        _ = next.ListLeftPushAsync(keys.Key("audit"), "v2");
        Assert.True(await next.ExecuteAsync());
        Assert.Equal(2, await nextVersion);

        Assert.Equal("""{"include":["*"]}""", await db.HashGetAsync(keys.Key("selection"), "json"));
        Assert.Equal(["v2", "v1"], (await db.ListRangeAsync(keys.Key("audit"))).Select(v => (string)v!));
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Cancellation);
        timeout.CancelAfter(Deadline);
        Assert.Equal("changed", (string?)(await control.ReadAsync(timeout.Token)).Message);
    }

    [Theory, RedisBackends]
    public async Task Transaction_AppliesNothing_WhenAConditionFails(string backend)
    {
        await using IRedisEndpoint redis = await RedisEndpoints.StartAsync(backend, Cancellation);
        await using ConnectionMultiplexer client = await RedisEndpoints.ConnectAsync(redis);
        IDatabase db = client.GetDatabase();
        var keys = new RunKeys();
        await db.StringSetAsync(keys.Key("selection:version"), 3);

        ITransaction stale = db.CreateTransaction();
        stale.AddCondition(Condition.StringEqual(keys.Key("selection:version"), 2));
        Task<long> increment = stale.StringIncrementAsync(keys.Key("selection:version"));
        _ = stale.ListLeftPushAsync(keys.Key("audit"), "stale");
        ITransaction exists = db.CreateTransaction();
        exists.AddCondition(Condition.KeyNotExists(keys.Key("selection:version")));
        _ = exists.HashSetAsync(keys.Key("selection"), "json", "{}");

        Assert.False(await stale.ExecuteAsync());
        Assert.False(await exists.ExecuteAsync());
        Assert.True(increment.IsCanceled);
        Assert.Equal("3", await db.StringGetAsync(keys.Key("selection:version")));
        Assert.False(await db.KeyExistsAsync(keys.Key("audit")));
        Assert.False(await db.KeyExistsAsync(keys.Key("selection")));
    }

    [Theory, RedisBackends]
    public async Task Publish_ReachesOnlyTheRunsSubscribers_WhenTwoRunsShareTheServer(string backend)
    {
        await using IRedisEndpoint redis = await RedisEndpoints.StartAsync(backend, Cancellation);
        await using ConnectionMultiplexer worker = await RedisEndpoints.ConnectAsync(redis);
        await using ConnectionMultiplexer operatorClient = await RedisEndpoints.ConnectAsync(redis);
        var run = new RunKeys();
        var otherRun = new RunKeys();
        ChannelMessageQueue control = await worker.GetSubscriber().SubscribeAsync(run.Control);
        ChannelMessageQueue otherControl = await worker.GetSubscriber().SubscribeAsync(otherRun.Control);

        long receivers = await operatorClient.GetSubscriber().PublishAsync(run.Control, "selection changed");

        Assert.Equal(1, receivers);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Cancellation);
        timeout.CancelAfter(Deadline);
        ChannelMessage message = await control.ReadAsync(timeout.Token);
        Assert.Equal(run.Control, message.Channel);
        Assert.Equal("selection changed", (string?)message.Message);
        Assert.False(otherControl.TryRead(out _));
    }

    [Theory, RedisBackends]
    public async Task KeysOfOneRun_ShareOneClusterSlot_AndAScanForTheRunFindsExactlyThem(string backend)
    {
        await using IRedisEndpoint redis = await RedisEndpoints.StartAsync(backend, Cancellation);
        await using ConnectionMultiplexer client = await RedisEndpoints.ConnectAsync(redis);
        IDatabase db = client.GetDatabase();
        var keys = new RunKeys();
        RedisKey[] runKeys = [keys.Key("selection"), keys.Key("selection:rank:3"), keys.Key("catalog:0"), keys.Key("workers")];
        await db.StringSetAsync(keys.Key("selection"), "{}");
        await db.StringSetAsync(keys.Key("selection:rank:3"), "{}");
        await db.HashSetAsync(keys.Key("catalog:0"), "fc1.weight", "[64,784]");
        await db.HashSetAsync(keys.Key("workers"), "3", "heartbeat");
        await db.StringSetAsync(new RunKeys().Key("selection"), "another run");

        Assert.Single(runKeys.Select(client.HashSlot).Distinct());
        var found = new List<string>();
        // SCAN MATCH: the braces of the hash tag are plain characters in a glob pattern.
        await foreach (RedisKey key in client.GetServer(redis.ConnectionString).KeysAsync(pattern: $"monitor:{{{keys.Run}}}:*"))
        {
            found.Add(key!);
        }

        Assert.Equal(runKeys.Select(k => (string)k!).Order(StringComparer.Ordinal), found.Order(StringComparer.Ordinal));
    }

    [Theory, RedisBackends]
    public async Task Multiplexer_ReconnectsAndResubscribesByItself_WhenTheServerRestartsOnTheSamePort(string backend)
    {
        await using IRedisEndpoint redis = await RedisEndpoints.StartAsync(backend, Cancellation);
        await using ConnectionMultiplexer client = await RedisEndpoints.ConnectAsync(redis);
        IDatabase db = client.GetDatabase();
        var keys = new RunKeys();
        ChannelMessageQueue control = await client.GetSubscriber().SubscribeAsync(keys.Control);
        await db.StringSetAsync(keys.Key("selection"), "before the restart");
        int port = redis.Port;

        await redis.StopAsync(Cancellation);
        Assert.False(redis.IsRunning);
        await UntilAsync(() => Task.FromResult(!client.IsConnected), "the client notices that the server is gone");
        await redis.StartAsync(Cancellation);

        Assert.Equal(port, redis.Port);
        await UntilAsync(async () => await PingsAsync(db), "the client reconnects by itself");
        // A restarted server without persistence is empty, on both backends.
        Assert.False(await db.KeyExistsAsync(keys.Key("selection")));
        await db.StringSetAsync(keys.Key("selection"), "after the restart");
        Assert.Equal("after the restart", await db.StringGetAsync(keys.Key("selection")));
        // The subscription comes back without the application subscribing again.
        await UntilAsync(async () => await db.PublishAsync(keys.Control, "changed after the restart") == 1, "the client resubscribes");
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Cancellation);
        timeout.CancelAfter(Deadline);
        Assert.Equal("changed after the restart", (string?)(await control.ReadAsync(timeout.Token)).Message);
    }

    [Theory, RedisBackends]
    public async Task Dispose_StopsTheServerAndFreesItsPort_WhenTheTestEnds(string backend)
    {
        IRedisEndpoint redis = await RedisEndpoints.StartAsync(backend, Cancellation);
        int? processId = (redis as RedisServerProcess)?.ProcessId;
        string? dataDirectory = (redis as RedisServerProcess)?.DataDirectory;
        Assert.True(await AcceptsConnectionsAsync(redis.Port));
        Assert.True(redis.IsRunning);

        await redis.DisposeAsync();

        Assert.False(redis.IsRunning);
        Assert.False(await AcceptsConnectionsAsync(redis.Port));
        if (backend == RedisEndpoints.RedisServer)
        {
            Assert.NotNull(processId);
            Assert.Throws<ArgumentException>(() => Process.GetProcessById(processId.Value));
            Assert.False(Directory.Exists(dataDirectory));
        }
    }

    [Fact]
    public void EmbeddedRedis_ThrowsInvalidOperation_WhenItsPortIsTaken()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int taken = ((IPEndPoint)listener.LocalEndpoint).Port;

        var e = Assert.Throws<InvalidOperationException>(() => new EmbeddedRedis(taken));

        Assert.Contains($"127.0.0.1:{taken}", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void FindBinary_ThrowsWithWhatToInstall_WhenNoDirectoryHasRedisServer()
    {
        string empty = Directory.CreateTempSubdirectory("monitor-no-redis-").FullName;
        try
        {
            var e = Assert.Throws<InvalidOperationException>(() => RedisServerProcess.FindBinary([empty]));

            Assert.Equal("redis-server not found: install it with `apt-get install -y redis-server` (tests/install-test-servers.sh does)", e.Message);
        }
        finally
        {
            Directory.Delete(empty);
        }
    }

    private static async Task<bool> PingsAsync(IDatabase db)
    {
        try
        {
            await db.PingAsync();
            return true;
        }
        catch (Exception e) when (e is RedisConnectionException or RedisTimeoutException)
        {
            return false;
        }
    }

    private static async Task<bool> AcceptsConnectionsAsync(int port)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), Cancellation);
            return true;
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
        {
            return false;
        }
    }

    /// <summary>Polls <paramref name="condition"/> every 20 ms until it holds; fails the test after <see cref="Deadline"/>.</summary>
    private static async Task UntilAsync(Func<Task<bool>> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!await condition())
        {
            Assert.True(clock.Elapsed < Deadline, $"timed out after {Deadline.TotalSeconds} s waiting until {what}");
            await Task.Delay(20, Cancellation);
        }
    }
}
