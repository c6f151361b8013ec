using System.Net;
using System.Net.Sockets;
using Garnet;
using Garnet.common;
using Garnet.server;
using Microsoft.Extensions.Logging;

namespace Monitor.Cli;

/// <summary>
/// An in-process Garnet server (Microsoft.Garnet 2.2.8): a real RESP server on 127.0.0.1 that StackExchange.Redis and
/// any other Redis client talk to over TCP, so <c>monitor demo</c> and the tests need no installed Redis.
/// </summary>
/// <remarks>
/// <para>
/// Settings: bound to 127.0.0.1 only; a purely in-memory store, so nothing survives <see cref="Stop"/>: no storage
/// tier, no append-only file, no periodic checkpoints, no recovery at start, no Lua, pub/sub enabled. Memory is sized
/// for a demo (a 32 MB log in 1 MB pages, a 1 MB hash index; about 30 MB resident at start). A client's <c>SAVE</c>
/// writes (or fails to write) into a directory under the system temp directory that is deleted when the server stops,
/// never into the working directory. Garnet has no Streams; strings, hashes, lists, sets, pub/sub, INCR and
/// MULTI/EXEC work as on Redis.
/// </para>
/// <para>
/// Output: nothing goes to the console. Garnet's start banner is off (quiet mode) and, without a logger factory,
/// Garnet gets no logger at all; with one, its log goes there.
/// </para>
/// <para>
/// Lifetime: the constructor starts the server and returns once it listens. <see cref="Stop"/> closes it (clients see
/// their connections drop), <see cref="Start"/> opens a new, empty server on the same port, as a restarted Redis
/// without persistence would be. A Garnet server object cannot be started again once disposed, so each start builds a
/// new one. The members may be called from any thread; they are serialised by a lock.
/// </para>
/// <para>
/// Failures: a port that is taken throws <see cref="InvalidOperationException"/> (with Garnet's exception inside)
/// from the constructor or <see cref="Start"/>. With port 0 a free port is picked; should another process take it
/// between the pick and the bind, another one is picked, up to <see cref="FreePortAttempts"/> times.
/// </para>
/// </remarks>
internal sealed class EmbeddedRedis : IDisposable
{
    /// <summary>How often port 0 picks another free port after losing a race for the previous one.</summary>
    public const int FreePortAttempts = 5;

    private readonly Lock _lock = new();
    private readonly ILoggerFactory? _loggerFactory;
    private GarnetServer? _server;
    private string? _checkpointDirectory;
    private bool _disposed;

    /// <summary>Starts the server.</summary>
    /// <param name="port">TCP port on 127.0.0.1; 0 (the default) picks a free one.</param>
    /// <param name="loggerFactory">Receives Garnet's log; null (the default) silences it.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="port"/> is not 0..65535.</exception>
    /// <exception cref="InvalidOperationException">The server could not listen on the port.</exception>
    public EmbeddedRedis(int port = 0, ILoggerFactory? loggerFactory = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(port);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(port, IPEndPoint.MaxPort);
        _loggerFactory = loggerFactory;
        if (port != 0)
        {
            Port = port;
            StartServer();
            return;
        }

        for (int attempt = 1; ; attempt++)
        {
            Port = FreeLoopbackPort();
            try
            {
                StartServer();
                return;
            }
            catch (InvalidOperationException e) when (attempt < FreePortAttempts && IsAddressInUse(e))
            {
                // Another process bound the port between our pick and Garnet's bind: pick again.
            }
        }
    }

    /// <summary>The TCP port on 127.0.0.1; stays the same across <see cref="Stop"/> and <see cref="Start"/>.</summary>
    public int Port { get; private set; }

    /// <summary>StackExchange.Redis configuration string: <c>127.0.0.1:PORT</c>.</summary>
    public string ConnectionString => $"127.0.0.1:{Port}";

    /// <summary>Whether the server is listening (started and not stopped since).</summary>
    public bool IsRunning
    {
        get
        {
            lock (_lock)
            {
                return _server is not null;
            }
        }
    }

    /// <summary>Starts a new, empty server on <see cref="Port"/>; does nothing while one is running.</summary>
    /// <exception cref="ObjectDisposedException">After <see cref="Dispose"/>.</exception>
    /// <exception cref="InvalidOperationException">The port was taken meanwhile.</exception>
    public void Start()
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_server is null)
            {
                StartServer();
            }
        }
    }

    /// <summary>
    /// Closes the server and drops its data and client connections; the port is free again when this returns.
    /// Does nothing when it is not running.
    /// </summary>
    public void Stop()
    {
        lock (_lock)
        {
            StopServer();
        }
    }

    /// <summary>Stops the server for good.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            StopServer();
        }
    }

    private void StartServer()
    {
        _checkpointDirectory = Path.Combine(Path.GetTempPath(), $"monitor-garnet-{Environment.ProcessId}-{Guid.NewGuid():N}");
        var options = new GarnetServerOptions(_loggerFactory?.CreateLogger("Garnet.Options"))
        {
            EndPoints = [new IPEndPoint(IPAddress.Loopback, Port)],
            // No banner and no "Ready to accept connections" on the console.
            QuietMode = true,
            // In memory only: no tiered log on disk, no AOF, no periodic or recovered checkpoints.
            EnableStorageTier = false,
            EnableAOF = false,
            CheckpointFrequencySecs = 0,
            Recover = false,
            // Only SAVE/BGSAVE would write here; the directory is deleted on stop (Dispose(deleteDir: true)).
            CheckpointDir = _checkpointDirectory,
            // Demo-sized memory: Garnet's defaults are a 16 GB log and a 128 MB hash index.
            LogMemorySize = "32m",
            PageSize = "1m",
            IndexMemorySize = "1m",
            EnableLua = false,
            DisablePubSub = false,
        };

        GarnetServer? server = null;
        try
        {
            server = new GarnetServer(options, _loggerFactory);
            server.Start();
            _server = server;
        }
        catch (Exception e)
        {
            server?.Dispose(deleteDir: true);
            DeleteCheckpointDirectory();
            if (e is GarnetException or SocketException)
            {
                throw new InvalidOperationException($"Garnet could not listen on 127.0.0.1:{Port}: {e.Message}", e);
            }

            throw;
        }
    }

    private void StopServer()
    {
        if (_server is null)
        {
            return;
        }

        _server.Dispose(deleteDir: true);
        _server = null;
        DeleteCheckpointDirectory();
    }

    private void DeleteCheckpointDirectory()
    {
        if (_checkpointDirectory is not null && Directory.Exists(_checkpointDirectory))
        {
            Directory.Delete(_checkpointDirectory, recursive: true);
        }

        _checkpointDirectory = null;
    }

    private static bool IsAddressInUse(Exception e)
    {
        for (Exception? inner = e; inner is not null; inner = inner.InnerException)
        {
            if (inner is SocketException { SocketErrorCode: SocketError.AddressAlreadyInUse })
            {
                return true;
            }
        }

        // Garnet 2.2.8 reports a taken port as a GarnetException whose message names the socket error.
        return e.InnerException is GarnetException g && g.Message.Contains(nameof(SocketError.AddressAlreadyInUse), StringComparison.Ordinal);
    }

    private static int FreeLoopbackPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
