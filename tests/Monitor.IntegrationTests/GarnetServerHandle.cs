using Monitor.Cli;

namespace Monitor.IntegrationTests;

/// <summary>
/// The demo's own in-process Garnet (<see cref="EmbeddedRedis"/>) as an <see cref="IRedisEndpoint"/>. Garnet can be
/// stopped and started again on the same port: <see cref="EmbeddedRedis.Stop"/> disposes the Garnet server, which
/// closes its listening socket at once, and <see cref="EmbeddedRedis.Start"/> builds a new one on that port (a Garnet
/// server object cannot be restarted itself). Like a redis-server without persistence, the new one is empty.
/// </summary>
internal sealed class GarnetServerHandle : IRedisEndpoint
{
    private readonly EmbeddedRedis _server;

    private GarnetServerHandle(EmbeddedRedis server) => _server = server;

    public string Kind => RedisEndpoints.Garnet;

    public int Port => _server.Port;

    public string ConnectionString => _server.ConnectionString;

    public bool IsRunning => _server.IsRunning;

    /// <summary>Starts Garnet on a free port; it listens when this returns.</summary>
    public static GarnetServerHandle Start() => new(new EmbeddedRedis());

    public Task StopAsync(CancellationToken cancellationToken = default)
    {
        _server.Stop();
        return Task.CompletedTask;
    }

    public Task StartAsync(CancellationToken cancellationToken = default)
    {
        _server.Start();
        return Task.CompletedTask;
    }

    public ValueTask DisposeAsync()
    {
        _server.Dispose();
        return ValueTask.CompletedTask;
    }
}
