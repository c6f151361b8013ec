using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Monitor.IntegrationTests;

/// <summary>
/// A real <c>redis-server</c> (Debian's package) run as a child process for one test: on 127.0.0.1 and a free port,
/// with no persistence (<c>--save "" --appendonly no</c>) and its working directory (<c>--dir</c>) in a fresh temp
/// directory, so it never writes into the repository. <see cref="StartNewAsync"/> returns once it answers PING.
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

    private const int FreePortAttempts = 5;
    private const int OutputLinesKept = 40;
    private static readonly string[] WellKnownDirectories = ["/usr/bin", "/usr/sbin", "/usr/local/bin"];
    private static readonly ConcurrentDictionary<Process, bool> Live = new();

    private readonly string _binary;
    private readonly DirectoryInfo _directory;
    private readonly Queue<string> _output = new();
    private readonly SemaphoreSlim _lifecycle = new(1, 1);
    private Process? _process;
    private bool _disposed;

    static RedisServerProcess()
    {
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            // Kill does nothing for a process that has exited; Live holds no disposed Process.
            foreach (Process process in Live.Keys)
            {
                process.Kill();
            }
        };
    }

    private RedisServerProcess(string binary, int port)
    {
        _binary = binary;
        Port = port;
        _directory = Directory.CreateTempSubdirectory("monitor-redis-");
    }

    public string Kind => RedisEndpoints.RedisServer;

    public int Port { get; }

    public string ConnectionString => $"127.0.0.1:{Port}";

    public bool IsRunning => _process is { HasExited: false };

    /// <summary>The temp directory given to <c>--dir</c>; deleted on dispose.</summary>
    public string DataDirectory => _directory.FullName;

    /// <summary>Process id of the running server, or null when stopped.</summary>
    public int? ProcessId => _process?.Id;

    /// <summary>Starts a redis-server on a free port and waits until it answers PING.</summary>
    /// <exception cref="InvalidOperationException">No redis-server binary (see <see cref="NotFoundMessage"/>), or it did not come up.</exception>
    public static async Task<RedisServerProcess> StartNewAsync(CancellationToken cancellationToken = default)
    {
        string binary = FindBinary(SearchDirectories());
        for (int attempt = 1; ; attempt++)
        {
            var server = new RedisServerProcess(binary, Ports.Free());
            try
            {
                await server.StartAsync(cancellationToken);
                return server;
            }
            catch (Exception e)
            {
                await server.DisposeAsync();
                // Another process may have taken the free port before redis-server bound it: then try another.
                if (attempt == FreePortAttempts || !e.Message.Contains("Address already in use", StringComparison.Ordinal))
                {
                    throw;
                }
            }
        }
    }

    /// <summary>The first executable <c>redis-server</c> in <paramref name="directories"/>.</summary>
    /// <exception cref="InvalidOperationException">There is none; the message says what to install.</exception>
    public static string FindBinary(IEnumerable<string> directories) =>
        directories.Select(d => Path.Combine(d, "redis-server")).FirstOrDefault(IsExecutable)
        ?? throw new InvalidOperationException(NotFoundMessage);

    /// <summary>The directories of PATH, then /usr/bin, /usr/sbin and /usr/local/bin.</summary>
    public static IEnumerable<string> SearchDirectories() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Concat(WellKnownDirectories)
            .Distinct(StringComparer.Ordinal);

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

            await StopProcessAsync();
            _process = Launch();
            await WaitUntilItAnswersAsync(_process, cancellationToken);
        }
        finally
        {
            _lifecycle.Release();
        }
    }

    /// <summary>Kills the server (no shutdown, as in a crash) and waits until it has exited and its port is free.</summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        await _lifecycle.WaitAsync(cancellationToken);
        try
        {
            await StopProcessAsync();
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
            await StopProcessAsync();
            _directory.Delete(recursive: true);
        }
        finally
        {
            _lifecycle.Release();
        }
    }

    private Process Launch()
    {
        var start = new ProcessStartInfo(_binary)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = _directory.FullName,
        };
        foreach (string argument in (string[])[
            "--port", Port.ToString(CultureInfo.InvariantCulture),
            "--bind", "127.0.0.1",
            "--protected-mode", "no",
            "--save", "",
            "--appendonly", "no",
            "--dir", _directory.FullName,
            "--daemonize", "no",
            "--logfile", "",
            "--loglevel", "warning"])
        {
            start.ArgumentList.Add(argument);
        }

        lock (_output)
        {
            _output.Clear();
        }

        var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => Remember(e.Data);
        process.ErrorDataReceived += (_, e) => Remember(e.Data);
        process.Start();
        Live[process] = true;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private async Task WaitUntilItAnswersAsync(Process process, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        while (!await AnswersPingAsync(cancellationToken))
        {
            if (process.HasExited)
            {
                // Let the output readers reach the end before quoting them.
                await process.WaitForExitAsync(cancellationToken);
                int exitCode = process.ExitCode;
                await StopProcessAsync();
                throw new InvalidOperationException($"redis-server on 127.0.0.1:{Port} exited with code {exitCode} before answering PING. Its output:\n{Output()}");
            }

            if (clock.Elapsed > StartTimeout)
            {
                await StopProcessAsync();
                throw new InvalidOperationException($"redis-server on 127.0.0.1:{Port} did not answer PING within {StartTimeout.TotalSeconds} s. Its output:\n{Output()}");
            }

            await Task.Delay(5, cancellationToken);
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
            var reply = new byte[16];
            int read = 0;
            while (read < 7)
            {
                int n = await socket.ReceiveAsync(reply.AsMemory(read), SocketFlags.None, attempt.Token);
                if (n == 0)
                {
                    break;
                }

                read += n;
            }

            return reply.AsSpan(0, read).SequenceEqual("+PONG\r\n"u8);
        }
        catch (Exception e) when (e is SocketException || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            // Not listening yet (connection refused), or accepted but not answering within the attempt's second.
            return false;
        }
    }

    private async Task StopProcessAsync()
    {
        if (_process is null)
        {
            return;
        }

        Process process = _process;
        _process = null;
        process.Kill();
        await process.WaitForExitAsync();
        Live.TryRemove(process, out _);
        process.Dispose();
    }

    private void Remember(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.Enqueue(line);
            while (_output.Count > OutputLinesKept)
            {
                _output.Dequeue();
            }
        }
    }

    private string Output()
    {
        lock (_output)
        {
            return _output.Count == 0 ? "(nothing)" : string.Join('\n', _output);
        }
    }

    private static bool IsExecutable(string path) =>
        File.Exists(path)
        && (OperatingSystem.IsWindows() || (File.GetUnixFileMode(path) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0);
}
