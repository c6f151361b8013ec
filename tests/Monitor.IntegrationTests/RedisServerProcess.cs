using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Monitor.IntegrationTests;

/// <summary>
/// A real <c>redis-server</c> (Debian's package) run as a child process for one test: on 127.0.0.1 and a free port,
/// with no persistence (<c>--save "" --appendonly no</c>) and its working directory (<c>--dir</c>) in a fresh temp
/// directory, so it never writes into the repository. <see cref="StartNewAsync(CancellationToken)"/> returns once it answers PING.
/// <see cref="StopAsync"/> kills it (as a crash would) and <see cref="StartAsync"/> starts an empty one on the same
/// port. Dispose kills it and deletes the directory; should the test
/// host exit without disposing, a process-exit hook still kills it.
/// </summary>
internal sealed class RedisServerProcess : IRedisEndpoint
{
    /// <summary>What the tests say when the binary is missing; they never skip instead.</summary>
    public const string NotFoundMessage =
        "redis-server not found: install it with `apt-get install -y redis-server` (tests/install-test-servers.sh does)";

    /// <summary>How long a start may take until PING answers.</summary>
    public static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(15);

    private readonly string _binary;
    private readonly IReadOnlyList<string> _extraArguments;
    private readonly DirectoryInfo _directory;
    private readonly ChildServer _server = new("redis-server");
    private readonly SemaphoreSlim _lifecycle = new(1, 1);
    private bool _disposed;

    private RedisServerProcess(string binary, int port, IReadOnlyList<string> extraArguments)
    {
        _binary = binary;
        _extraArguments = extraArguments;
        Port = port;
        _directory = Directory.CreateTempSubdirectory("monitor-redis-");
    }

    public string Kind => RedisEndpoints.RedisServer;

    public int Port { get; }

    public string ConnectionString => $"127.0.0.1:{Port}";

    public bool IsRunning => _server.IsRunning;

    /// <summary>The temp directory given to <c>--dir</c>; deleted on dispose.</summary>
    public string DataDirectory => _directory.FullName;

    /// <summary>Process id of the running server, or null when stopped.</summary>
    public int? ProcessId => _server.ProcessId;

    /// <summary>Starts a redis-server on a free port and waits until it answers PING.</summary>
    /// <exception cref="InvalidOperationException">No redis-server binary (see <see cref="NotFoundMessage"/>), or it did not come up.</exception>
    public static Task<RedisServerProcess> StartNewAsync(CancellationToken cancellationToken = default) => StartNewAsync([], cancellationToken);

    /// <summary>
    /// As <see cref="StartNewAsync(CancellationToken)"/>, with more configuration on the command line, one directive
    /// per <c>--name</c> followed by its arguments, e.g. <c>["--requirepass", "pw", "--user", "alice", "on", "&gt;pw", "~*", "&amp;*", "+@all"]</c>.
    /// A server that requires a password still counts as up when it answers PING with NOAUTH.
    /// </summary>
    public static Task<RedisServerProcess> StartNewAsync(IReadOnlyList<string> extraArguments, CancellationToken cancellationToken = default)
    {
        string binary = FindBinary(ChildServer.SearchDirectories());
        return ChildServer.StartOnFreePortAsync(port => new RedisServerProcess(binary, port, extraArguments), (server, token) => server.StartAsync(token), cancellationToken);
    }

    /// <summary>The first executable <c>redis-server</c> in <paramref name="directories"/>.</summary>
    /// <exception cref="InvalidOperationException">There is none; the message says what to install.</exception>
    public static string FindBinary(IEnumerable<string> directories) =>
        ChildServer.FindExecutable(["redis-server"], directories) ?? throw new InvalidOperationException(NotFoundMessage);

    /// <summary>Starts the server on <see cref="Port"/> unless it runs; completes once it answers PING.</summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        await _lifecycle.WaitAsync(cancellationToken);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (IsRunning)
            {
                return;
            }

            await _server.StopAsync();
            _server.Launch(_binary, _directory.FullName, [
                "--port", Port.ToString(CultureInfo.InvariantCulture),
                "--bind", "127.0.0.1",
                "--protected-mode", "no",
                "--save", "",
                "--appendonly", "no",
                "--dir", _directory.FullName,
                "--daemonize", "no",
                "--logfile", "",
                "--loglevel", "warning",
                .. _extraArguments]);
            await _server.WaitUntilReadyAsync(ConnectionString, AnswersPingAsync, "answering PING", StartTimeout, TimeSpan.FromMilliseconds(5), cancellationToken);
        }
        finally
        {
            _lifecycle.Release();
        }
    }

    /// <summary>Kills the server (no shutdown, as in a crash) and waits until it has exited.</summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        await _lifecycle.WaitAsync(cancellationToken);
        try
        {
            await _server.StopAsync();
        }
        finally
        {
            _lifecycle.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _lifecycle.WaitAsync();
        try
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            await _server.StopAsync();
            _directory.Delete(recursive: true);
        }
        finally
        {
            _lifecycle.Release();
        }
    }

    private async Task<bool> AnswersPingAsync(CancellationToken cancellationToken)
    {
        using var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        attempt.CancelAfter(TimeSpan.FromSeconds(1));
        try
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, Port), attempt.Token);
            await socket.SendAsync("PING\r\n"u8.ToArray(), SocketFlags.None, attempt.Token);
            var reply = new byte[64];
            int read = 0;
            while (read < reply.Length && reply.AsSpan(0, read).IndexOf("\r\n"u8) < 0)
            {
                int n = await socket.ReceiveAsync(reply.AsMemory(read), SocketFlags.None, attempt.Token);
                if (n == 0)
                {
                    break;
                }

                read += n;
            }

            // NOAUTH: up, and asking for the password it was configured with.
            return reply.AsSpan(0, read).SequenceEqual("+PONG\r\n"u8) || reply.AsSpan(0, read).StartsWith("-NOAUTH"u8);
        }
        catch (Exception e) when (e is SocketException || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            // Not listening yet (connection refused), or accepted but not answering within the attempt's second.
            return false;
        }
    }
}
