using StackExchange.Redis;
using Xunit.v3;

namespace Monitor.IntegrationTests;

/// <summary>
/// A Redis-protocol server that a test started for itself on 127.0.0.1 and a free port: a <c>redis-server</c> child
/// process (<see cref="RedisServerProcess"/>) or an in-process Garnet (<see cref="GarnetServerHandle"/>). Both keep
/// nothing on disk, so a restarted server is empty, and both free their port and everything else on dispose.
/// </summary>
internal interface IRedisEndpoint : IAsyncDisposable
{
    /// <summary><see cref="RedisEndpoints.RedisServer"/> or <see cref="RedisEndpoints.Garnet"/>.</summary>
    string Kind { get; }

    /// <summary>The TCP port on 127.0.0.1; the same across <see cref="StopAsync"/> and <see cref="StartAsync"/>.</summary>
    int Port { get; }

    /// <summary>StackExchange.Redis configuration string, <c>127.0.0.1:PORT</c>.</summary>
    string ConnectionString { get; }

    /// <summary>Whether the server is up (started and not stopped since).</summary>
    bool IsRunning { get; }

    /// <summary>Stops the server: clients' connections drop, the port is free when the task completes. Idempotent.</summary>
    Task StopAsync(CancellationToken cancellationToken = default);

    /// <summary>Starts an empty server on the same port and completes once it answers; no-op while it runs.</summary>
    Task StartAsync(CancellationToken cancellationToken = default);
}

/// <summary>
/// How to write one test against both backends: make it a <c>[Theory, RedisBackends]</c> taking
/// <c>string backend</c>, and start its own server as its first line:
/// <code>
/// [Theory, RedisBackends]
/// public async Task Something_Works_WhenX(string backend)
/// {
///     await using IRedisEndpoint redis = await RedisEndpoints.StartAsync(backend, TestContext.Current.CancellationToken);
///     await using ConnectionMultiplexer client = await RedisEndpoints.ConnectAsync(redis);
///     var keys = new RunKeys();
///     ...
/// }
/// </code>
/// Why a theory with a server per test rather than a shared class fixture: the test explorer shows each backend as
/// its own row (<c>Something_Works_WhenX(backend: "garnet")</c>); a test may stop and restart its server without
/// disturbing any other test; no generic fixture base classes are needed; and starting costs little (redis-server
/// answers PING within tens of milliseconds, Garnet in-process within a few after the first one).
/// </summary>
internal static class RedisEndpoints
{
    /// <summary>Debian's <c>redis-server</c> (7.0.15 on Debian 12), started as a child process.</summary>
    public const string RedisServer = "redis-server";

    /// <summary>Microsoft.Garnet in this process (the server <c>monitor demo</c> embeds).</summary>
    public const string Garnet = "garnet";

    /// <summary>Both backends, as theory data (used by <see cref="RedisBackendsAttribute"/>).</summary>
    public static TheoryData<string> Backends => [RedisServer, Garnet];

    /// <summary>Starts a server of the given kind on a free port; completes once it answers.</summary>
    public static async Task<IRedisEndpoint> StartAsync(string kind, CancellationToken cancellationToken = default) => kind switch
    {
        RedisServer => await RedisServerProcess.StartNewAsync(cancellationToken),
        Garnet => GarnetServerHandle.Start(),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, $"expected \"{RedisServer}\" or \"{Garnet}\""),
    };

    /// <summary>
    /// Client settings a worker would use: <see cref="ConfigurationOptions.AbortOnConnectFail"/> off, so the
    /// multiplexer keeps reconnecting in the background when the server goes away, and everything else default.
    /// </summary>
    public static ConfigurationOptions ClientOptions(IRedisEndpoint endpoint)
    {
        ConfigurationOptions options = ConfigurationOptions.Parse(endpoint.ConnectionString);
        options.AbortOnConnectFail = false;
        options.ClientName = "monitor-it-" + endpoint.Kind;
        return options;
    }

    /// <summary>A connected multiplexer with <see cref="ClientOptions"/>.</summary>
    public static async Task<ConnectionMultiplexer> ConnectAsync(IRedisEndpoint endpoint) =>
        await ConnectionMultiplexer.ConnectAsync(ClientOptions(endpoint));
}

/// <summary>Runs a theory once per backend in <see cref="RedisEndpoints.Backends"/>, passing its name.</summary>
[AttributeUsage(AttributeTargets.Method)]
internal sealed class RedisBackendsAttribute : MemberDataAttributeBase
{
    public RedisBackendsAttribute()
        : base(nameof(RedisEndpoints.Backends), [])
    {
        MemberType = typeof(RedisEndpoints);
    }
}

/// <summary>
/// Keys of one test's own run, as the control plane lays them out: <c>monitor:{RUN}:suffix</c>, with the run id as
/// hash tag so that all of a run's keys fall into one cluster slot. The run id is fresh per instance.
/// </summary>
internal sealed class RunKeys
{
    public string Run { get; } = "it-" + Guid.NewGuid().ToString("N")[..12];

    public RedisKey Key(string suffix) => $"monitor:{{{Run}}}:{suffix}";

    public RedisChannel Control => RedisChannel.Literal($"monitor:{{{Run}}}:control");
}
