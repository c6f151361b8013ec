using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;

namespace Monitor.IntegrationTests;

/// <summary>
/// A real Alertmanager (Debian's <c>prometheus-alertmanager</c>) run as a child process for one test: on 127.0.0.1
/// and a free port, clustering off (<c>--cluster.listen-address=</c>), its configuration and its storage in a fresh
/// temp directory, so it never writes outside it. <see cref="StartNewAsync"/> returns once <c>/-/ready</c> answers 200.
/// Dispose kills it and deletes the directory; should the test host exit without disposing, a process-exit hook still
/// kills it.
/// </summary>
internal sealed class AlertmanagerProcess : IAsyncDisposable
{
    /// <summary>What the tests say when the binary is missing; they never skip instead.</summary>
    public const string NotFoundMessage =
        "prometheus-alertmanager not found: install it with `apt-get install -y prometheus-alertmanager` (tests/install-test-servers.sh does)";

    /// <summary>How long a start may take until <c>/-/ready</c> answers.</summary>
    public static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);

    private const int FreePortAttempts = 5;
    private const int OutputLinesKept = 40;
    // Debian's name first, then the upstream release's.
    private static readonly string[] BinaryNames = ["prometheus-alertmanager", "alertmanager"];
    private static readonly string[] WellKnownDirectories = ["/usr/bin", "/usr/sbin", "/usr/local/bin"];
    private static readonly ConcurrentDictionary<Process, bool> Live = new();

    private readonly Queue<string> _output = new();
    private readonly DirectoryInfo _directory;
    private Process? _process;
    private int _disposed;

    static AlertmanagerProcess()
    {
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            foreach (Process process in Live.Keys)
            {
                process.Kill();
            }
        };
    }

    private AlertmanagerProcess(int port, string configuration)
    {
        Port = port;
        _directory = Directory.CreateTempSubdirectory("monitor-alertmanager-");
        ConfigFile = Path.Combine(_directory.FullName, "alertmanager.yml");
        File.WriteAllText(ConfigFile, configuration);
        Directory.CreateDirectory(StoragePath);
    }

    public int Port { get; }

    /// <summary><c>http://127.0.0.1:{Port}/</c>.</summary>
    public Uri BaseAddress => new($"http://127.0.0.1:{Port.ToString(CultureInfo.InvariantCulture)}/");

    /// <summary>The configuration file given to <c>--config.file</c>.</summary>
    public string ConfigFile { get; }

    /// <summary>The temp directory holding the configuration and the storage; deleted on dispose.</summary>
    public string TempDirectory => _directory.FullName;

    /// <summary>Process id while running.</summary>
    public int? ProcessId => _process?.Id;

    private string StoragePath => Path.Combine(_directory.FullName, "data");

    /// <summary>Starts Alertmanager with <paramref name="configuration"/> (YAML) on a free port; returns once it is ready.</summary>
    /// <exception cref="InvalidOperationException">No binary (see <see cref="NotFoundMessage"/>), or it did not become ready.</exception>
    public static async Task<AlertmanagerProcess> StartNewAsync(string configuration, CancellationToken cancellationToken = default)
    {
        string binary = FindBinary(BinaryNames);
        for (int attempt = 1; ; attempt++)
        {
            var server = new AlertmanagerProcess(Ports.Free(), configuration);
            try
            {
                await server.StartAsync(binary, cancellationToken);
                return server;
            }
            catch (Exception e)
            {
                await server.DisposeAsync();
                // Another process may have taken the free port before Alertmanager bound it: then try another.
                if (attempt == FreePortAttempts || !e.Message.Contains("address already in use", StringComparison.OrdinalIgnoreCase))
                {
                    throw;
                }
            }
        }
    }

    /// <summary>The first executable of one of <paramref name="names"/> on PATH or in /usr/bin, /usr/sbin, /usr/local/bin.</summary>
    /// <exception cref="InvalidOperationException">None; the message says what to install.</exception>
    public static string FindBinary(IEnumerable<string> names) => FindExecutable(names) ?? throw new InvalidOperationException(NotFoundMessage);

    /// <summary>Debian's <c>amtool</c> (comes with the package), or null.</summary>
    public static string? FindAmtool() => FindExecutable(["amtool"]);

    /// <summary>Runs <c>amtool check-config</c> on the configuration file; returns its exit code and output.</summary>
    public async Task<(int ExitCode, string Output)> CheckConfigAsync(string amtool, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo(amtool) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add("check-config");
        start.ArgumentList.Add(ConfigFile);
        using Process process = Process.Start(start)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        Task<string> stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(TimeSpan.FromSeconds(30));
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill();
            throw;
        }

        return (process.ExitCode, await stdout + await stderr);
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await StopProcessAsync();
        _directory.Delete(recursive: true);
    }

    private async Task StartAsync(string binary, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo(binary)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = _directory.FullName,
        };
        foreach (string argument in (string[])[
            "--config.file=" + ConfigFile,
            "--storage.path=" + StoragePath,
            "--web.listen-address=127.0.0.1:" + Port.ToString(CultureInfo.InvariantCulture),
            // Empty: no gossip port, no peers; a single instance as in Prometheus' own tests.
            "--cluster.listen-address=",
            "--log.level=info"])
        {
            start.ArgumentList.Add(argument);
        }

        var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => Remember(e.Data);
        process.ErrorDataReceived += (_, e) => Remember(e.Data);
        process.Start();
        Live[process] = true;
        _process = process;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        await WaitUntilReadyAsync(process, cancellationToken);
    }

    private async Task WaitUntilReadyAsync(Process process, CancellationToken cancellationToken)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var ready = new Uri(BaseAddress, "-/ready");
        var clock = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                using HttpResponseMessage response = await http.GetAsync(ready, cancellationToken);
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (Exception e) when (e is HttpRequestException || (e is TaskCanceledException && !cancellationToken.IsCancellationRequested))
            {
                // Not listening yet, or not answering within the attempt's timeout.
            }

            if (process.HasExited)
            {
                await process.WaitForExitAsync(cancellationToken);
                throw new InvalidOperationException(
                    $"Alertmanager on 127.0.0.1:{Port} exited with code {process.ExitCode} before it was ready. Its output:\n{Output()}");
            }

            if (clock.Elapsed > StartTimeout)
            {
                throw new InvalidOperationException(
                    $"Alertmanager on 127.0.0.1:{Port} was not ready within {StartTimeout.TotalSeconds} s. Its output:\n{Output()}");
            }

            await Task.Delay(20, cancellationToken);
        }
    }

    private async Task StopProcessAsync()
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

    private static string? FindExecutable(IEnumerable<string> names)
    {
        string[] directories = [.. (Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Concat(WellKnownDirectories)
            .Distinct(StringComparer.Ordinal)];
        return names.SelectMany(n => directories.Select(d => Path.Combine(d, n))).FirstOrDefault(IsExecutable);
    }

    private static bool IsExecutable(string path) =>
        File.Exists(path)
        && (OperatingSystem.IsWindows() || (File.GetUnixFileMode(path) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0);
}
