using System.Collections.Concurrent;
using System.Diagnostics;

namespace Monitor.IntegrationTests;

/// <summary>
/// The child process of a server a test runs (redis-server, Alertmanager): launched with its output kept (the last 40
/// lines, quoted when it fails to come up), polled until ready, killed on stop; should the test host exit without
/// stopping it, a process-exit hook still kills it.
/// </summary>
/// <remarks>Not thread-safe: the owner serialises <see cref="Launch"/> and <see cref="StopAsync"/>.</remarks>
/// <param name="name">The server's name in error messages.</param>
internal sealed class ChildServer(string name)
{
    private const int FreePortAttempts = 5;
    private const int OutputLinesKept = 40;
    private static readonly string[] WellKnownDirectories = ["/usr/bin", "/usr/sbin", "/usr/local/bin"];
    private static readonly ConcurrentDictionary<Process, bool> Live = new();

    private readonly Queue<string> _output = new();
    private readonly List<string> _kept = [];
    private Process? _process;

    /// <summary>Lines (of the whole run, not only the last ones) that <see cref="KeptLines"/> returns; default none.</summary>
    public Func<string, bool>? Keep { get; init; }

    /// <summary>Every line the process printed that <see cref="Keep"/> selected, in order.</summary>
    public IReadOnlyList<string> KeptLines()
    {
        lock (_output)
        {
            return [.. _kept];
        }
    }

    static ChildServer()
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

    /// <summary>Whether the process runs.</summary>
    public bool IsRunning => _process is { HasExited: false };

    /// <summary>Process id while launched, else null.</summary>
    public int? ProcessId => _process?.Id;

    /// <summary>The directories of PATH, then /usr/bin, /usr/sbin and /usr/local/bin.</summary>
    public static IEnumerable<string> SearchDirectories() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Concat(WellKnownDirectories)
            .Distinct(StringComparer.Ordinal);

    /// <summary>The first executable named one of <paramref name="names"/> in <paramref name="directories"/>, or null.</summary>
    public static string? FindExecutable(IEnumerable<string> names, IEnumerable<string> directories)
    {
        string[] searched = [.. directories];
        return names.SelectMany(n => searched.Select(d => Path.Combine(d, n))).FirstOrDefault(IsExecutable);
    }

    /// <summary>
    /// Creates a server on a free port and starts it; if another process took the port before the server bound it
    /// (the failure says "address already in use"), disposes it and tries another port, five times at most.
    /// </summary>
    public static async Task<T> StartOnFreePortAsync<T>(Func<int, T> create, Func<T, CancellationToken, Task> start, CancellationToken cancellationToken)
        where T : IAsyncDisposable
    {
        for (int attempt = 1; ; attempt++)
        {
            T server = create(Ports.Free());
            try
            {
                await start(server, cancellationToken);
                return server;
            }
            catch (Exception e)
            {
                await server.DisposeAsync();
                if (attempt == FreePortAttempts || !e.Message.Contains("address already in use", StringComparison.OrdinalIgnoreCase))
                {
                    throw;
                }
            }
        }
    }

    /// <summary>
    /// Starts <paramref name="binary"/> with <paramref name="arguments"/>, capturing its output afresh; with
    /// <paramref name="environment"/> set on top of this process's own.
    /// </summary>
    public void Launch(string binary, string workingDirectory, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(binary)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = workingDirectory,
        };
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        foreach ((string name, string value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
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
        _process = process;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    /// <summary>
    /// Polls <paramref name="isReady"/> every <paramref name="pollInterval"/> until it is true. If the process exits
    /// first or <paramref name="timeout"/> passes, stops it and throws an <see cref="InvalidOperationException"/> that
    /// quotes its output.
    /// </summary>
    /// <param name="endpoint">Where the server listens, for messages.</param>
    /// <param name="isReady">One readiness probe; false (not an exception) while the server is not up yet.</param>
    /// <param name="readiness">What ready means, for messages: "answering PING".</param>
    /// <param name="timeout">How long the server may take.</param>
    /// <param name="pollInterval">Pause between probes.</param>
    /// <param name="cancellationToken">Cancels the wait (the process keeps running).</param>
    public async Task WaitUntilReadyAsync(string endpoint, Func<CancellationToken, Task<bool>> isReady, string readiness, TimeSpan timeout,
        TimeSpan pollInterval, CancellationToken cancellationToken)
    {
        Process process = _process ?? throw new InvalidOperationException($"{name} was not launched");
        var clock = Stopwatch.StartNew();
        while (!await isReady(cancellationToken))
        {
            if (process.HasExited)
            {
                // Let the output readers reach the end before quoting them.
                await process.WaitForExitAsync(cancellationToken);
                int exitCode = process.ExitCode;
                await StopAsync();
                throw new InvalidOperationException($"{name} on {endpoint} exited with code {exitCode} before {readiness}. Its output:\n{Output()}");
            }

            if (clock.Elapsed > timeout)
            {
                await StopAsync();
                throw new InvalidOperationException($"{name} on {endpoint} was not {readiness} within {timeout.TotalSeconds} s. Its output:\n{Output()}");
            }

            await Task.Delay(pollInterval, cancellationToken);
        }
    }

    /// <summary>Kills the process (no shutdown, as in a crash) and waits until it has exited; nothing when not launched.</summary>
    public async Task StopAsync()
    {
        if (_process is not { } process)
        {
            return;
        }

        _process = null;
        process.Kill();
        await process.WaitForExitAsync();
        Live.TryRemove(process, out _);
        process.Dispose();
    }

    private static bool IsExecutable(string path) =>
        File.Exists(path)
        && (OperatingSystem.IsWindows() || (File.GetUnixFileMode(path) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0);

    private void Remember(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            if (Keep?.Invoke(line) == true)
            {
                _kept.Add(line);
            }

            _output.Enqueue(line);
            while (_output.Count > OutputLinesKept)
            {
                _output.Dequeue();
            }
        }
    }

    /// <summary>The last lines the process printed (stdout and stderr), for failure messages.</summary>
    public string Output()
    {
        lock (_output)
        {
            return _output.Count == 0 ? "(nothing)" : string.Join('\n', _output);
        }
    }
}
