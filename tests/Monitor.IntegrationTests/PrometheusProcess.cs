using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;

namespace Monitor.IntegrationTests;

/// <summary>
/// A real Prometheus (Debian's <c>prometheus</c> package) run as a child process for one test class: on 127.0.0.1 and
/// a free port, its configuration and its TSDB in a fresh temp directory. <see cref="StartNewAsync"/> returns once
/// <c>/-/ready</c> answers 200. Dispose kills it and deletes the directory; should the test host exit without
/// disposing, <see cref="ChildServer"/>'s process-exit hook still kills it. Also runs <c>promtool</c>.
/// </summary>
internal sealed class PrometheusProcess : IAsyncDisposable
{
    /// <summary>What the tests say when a binary is missing; they never skip instead.</summary>
    public const string NotFoundMessage =
        "prometheus / promtool not found: install them with `apt-get install -y prometheus` (tests/install-test-servers.sh does)";

    /// <summary>How long a start may take until <c>/-/ready</c> answers.</summary>
    public static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);

    private readonly ChildServer _server = new("Prometheus");
    private readonly DirectoryInfo _directory;
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(10) };
    private int _disposed;

    private PrometheusProcess(int port, string configuration)
    {
        Port = port;
        _directory = Directory.CreateTempSubdirectory("monitor-prometheus-");
        ConfigFile = Path.Combine(_directory.FullName, "prometheus.yml");
        File.WriteAllText(ConfigFile, configuration);
    }

    public int Port { get; }

    /// <summary><c>http://127.0.0.1:{Port}/</c>.</summary>
    public Uri BaseAddress => new($"http://127.0.0.1:{Port.ToString(CultureInfo.InvariantCulture)}/");

    /// <summary>The configuration file given to <c>--config.file</c>.</summary>
    public string ConfigFile { get; }

    private string StoragePath => Path.Combine(_directory.FullName, "data");

    /// <summary>Starts Prometheus with <paramref name="configuration"/> (YAML) on a free port; returns once it is ready.</summary>
    /// <exception cref="InvalidOperationException">No binary (see <see cref="NotFoundMessage"/>), or it did not become ready.</exception>
    public static Task<PrometheusProcess> StartNewAsync(string configuration, CancellationToken cancellationToken = default)
    {
        string binary = FindBinary("prometheus");
        return ChildServer.StartOnFreePortAsync(port => new PrometheusProcess(port, configuration), (server, token) => server.StartAsync(binary, token), cancellationToken);
    }

    /// <summary>The executable <paramref name="name"/> on PATH or in /usr/bin, /usr/sbin, /usr/local/bin.</summary>
    /// <exception cref="InvalidOperationException">None; the message says what to install.</exception>
    public static string FindBinary(string name) =>
        ChildServer.FindExecutable([name], ChildServer.SearchDirectories()) ?? throw new InvalidOperationException(NotFoundMessage);

    /// <summary>Runs <c>promtool</c> with <paramref name="arguments"/>; returns its exit code and its output (stdout then stderr).</summary>
    public static async Task<(int ExitCode, string Output)> PromtoolAsync(IEnumerable<string> arguments, string workingDirectory, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        (int exitCode, string output, string error) = await Tool.RunAsync(FindBinary("promtool"), workingDirectory, [.. arguments]);
        return (exitCode, output + error);
    }

    /// <summary>GET <c>/api/v1/{path}</c>; returns the <c>data</c> element, or throws with Prometheus' error.</summary>
    public async Task<JsonElement> ApiAsync(string pathAndQuery, CancellationToken cancellationToken)
    {
        using HttpResponseMessage response = await _http.GetAsync(new Uri(BaseAddress, "api/v1/" + pathAndQuery), cancellationToken);
        JsonElement body = await response.Content.ReadFromJsonAsync<JsonElement>(cancellationToken);
        if (body.GetProperty("status").GetString() != "success")
        {
            throw new PrometheusQueryException($"{pathAndQuery}: {body.GetProperty("errorType").GetString()}: {body.GetProperty("error").GetString()}");
        }

        return body.GetProperty("data").Clone();
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _server.StopAsync();
        _http.Dispose();
        _directory.Delete(recursive: true);
    }

    private async Task StartAsync(string binary, CancellationToken cancellationToken)
    {
        _server.Launch(binary, _directory.FullName, [
            "--config.file=" + ConfigFile,
            "--storage.tsdb.path=" + StoragePath,
            "--web.listen-address=127.0.0.1:" + Port.ToString(CultureInfo.InvariantCulture),
            "--log.level=warn"]);
        var ready = new Uri(BaseAddress, "-/ready");
        await _server.WaitUntilReadyAsync($"127.0.0.1:{Port}", async token =>
        {
            try
            {
                using HttpResponseMessage response = await _http.GetAsync(ready, token);
                return response.IsSuccessStatusCode;
            }
            catch (Exception e) when (e is HttpRequestException || (e is TaskCanceledException && !token.IsCancellationRequested))
            {
                // Not listening yet, or not answering within the attempt's timeout.
                return false;
            }
        }, "ready (GET /-/ready)", StartTimeout, TimeSpan.FromMilliseconds(50), cancellationToken);
    }
}

/// <summary>Prometheus answered a query with an error (bad PromQL, bad parameters).</summary>
internal sealed class PrometheusQueryException(string message) : Exception(message);
