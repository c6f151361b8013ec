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

    // Debian's name first, then the upstream release's.
    private static readonly string[] BinaryNames = ["prometheus-alertmanager", "alertmanager"];

    private readonly ChildServer _server = new("Alertmanager");
    private readonly DirectoryInfo _directory;
    private int _disposed;

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
    public int? ProcessId => _server.ProcessId;

    private string StoragePath => Path.Combine(_directory.FullName, "data");

    /// <summary>Starts Alertmanager with <paramref name="configuration"/> (YAML) on a free port; returns once it is ready.</summary>
    /// <exception cref="InvalidOperationException">No binary (see <see cref="NotFoundMessage"/>), or it did not become ready.</exception>
    public static Task<AlertmanagerProcess> StartNewAsync(string configuration, CancellationToken cancellationToken = default)
    {
        string binary = FindBinary(BinaryNames);
        return ChildServer.StartOnFreePortAsync(port => new AlertmanagerProcess(port, configuration), (server, token) => server.StartAsync(binary, token), cancellationToken);
    }

    /// <summary>The first executable of one of <paramref name="names"/> on PATH or in /usr/bin, /usr/sbin, /usr/local/bin.</summary>
    /// <exception cref="InvalidOperationException">None; the message says what to install.</exception>
    public static string FindBinary(IEnumerable<string> names) =>
        ChildServer.FindExecutable(names, ChildServer.SearchDirectories()) ?? throw new InvalidOperationException(NotFoundMessage);

    /// <summary>Debian's <c>amtool</c> (comes with the package), or null.</summary>
    public static string? FindAmtool() => ChildServer.FindExecutable(["amtool"], ChildServer.SearchDirectories());

    /// <summary>Runs <c>amtool check-config</c> on the configuration file; returns its exit code and output.</summary>
    public async Task<(int ExitCode, string Output)> CheckConfigAsync(string amtool, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        (int exitCode, string output, string error) = await Tool.RunAsync(amtool, Path.GetDirectoryName(ConfigFile) ?? ".", "check-config", ConfigFile);
        return (exitCode, output + error);
    }

    /// <summary>Stops the server (its port stays this instance's); <see cref="RestartAsync"/> brings it back.</summary>
    public Task StopAsync() => _server.StopAsync();

    /// <summary>Starts the server again on the same port and configuration; returns once it is ready.</summary>
    public Task RestartAsync(CancellationToken cancellationToken = default) => StartAsync(FindBinary(BinaryNames), cancellationToken);

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _server.StopAsync();
        _directory.Delete(recursive: true);
    }

    private async Task StartAsync(string binary, CancellationToken cancellationToken)
    {
        _server.Launch(binary, _directory.FullName, [
            "--config.file=" + ConfigFile,
            "--storage.path=" + StoragePath,
            "--web.listen-address=127.0.0.1:" + Port.ToString(CultureInfo.InvariantCulture),
            // Empty: no gossip port, no peers; a single instance as in Prometheus' own tests.
            "--cluster.listen-address=",
            "--log.level=info"]);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var ready = new Uri(BaseAddress, "-/ready");
        await _server.WaitUntilReadyAsync($"127.0.0.1:{Port}", async token =>
        {
            try
            {
                using HttpResponseMessage response = await http.GetAsync(ready, token);
                return response.IsSuccessStatusCode;
            }
            catch (Exception e) when (e is HttpRequestException || (e is TaskCanceledException && !token.IsCancellationRequested))
            {
                // Not listening yet, or not answering within the attempt's timeout.
                return false;
            }
        }, "ready (GET /-/ready)", StartTimeout, TimeSpan.FromMilliseconds(20), cancellationToken);
    }
}
