using System.Net;
using System.Text.RegularExpressions;

namespace Monitor.IntegrationTests;

/// <summary>
/// A real <c>monitor serve</c> (or <c>monitor archive</c>) process (the built <c>monitor.dll</c>) listening on a free
/// port of 127.0.0.1, with helpers to read its HTTP endpoints. Killed on dispose.
/// </summary>
internal sealed partial class ServeProcess : IAsyncDisposable
{
    private readonly ChildServer _server;
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(5) };

    private ServeProcess(string command, int port)
    {
        // The service's own lines (restores, handovers) are few and tests look for them after many alert lines.
        _server = new ChildServer("monitor " + command) { Keep = line => line.Contains("Monitor.Service.MonitorService[", StringComparison.Ordinal) };
        BaseAddress = new Uri($"http://127.0.0.1:{port}/");
    }

    public Uri BaseAddress { get; }

    public bool IsRunning => _server.IsRunning;

    /// <summary>Launches <c>monitor serve --listen http://127.0.0.1:{free port} ARGUMENTS</c> and waits until /healthz answers.</summary>
    public static Task<ServeProcess> StartAsync(IEnumerable<string> arguments, CancellationToken cancellationToken) =>
        StartAsync("serve", arguments, cancellationToken);

    /// <summary>Launches <c>monitor COMMAND --listen http://127.0.0.1:{free port} ARGUMENTS</c> and waits until /healthz answers.</summary>
    public static async Task<ServeProcess> StartAsync(string command, IEnumerable<string> arguments, CancellationToken cancellationToken)
    {
        var serve = new ServeProcess(command, Ports.Free());
        serve._server.Launch("dotnet", Repository.Root,
            [Path.Combine(AppContext.BaseDirectory, "monitor.dll"), command, "--listen", serve.BaseAddress.ToString().TrimEnd('/'), .. arguments]);
        await serve._server.WaitUntilReadyAsync(serve.BaseAddress.ToString(), async token => (await serve.GetAsync("healthz", token)).Status == HttpStatusCode.OK,
            "answering /healthz", TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(100), cancellationToken);
        return serve;
    }

    /// <summary>Status and body of a GET; status 0 when nothing answers.</summary>
    public async Task<(HttpStatusCode Status, string Body)> GetAsync(string path, CancellationToken cancellationToken)
    {
        try
        {
            using HttpResponseMessage response = await _http.GetAsync(new Uri(BaseAddress, path), cancellationToken);
            return (response.StatusCode, await response.Content.ReadAsStringAsync(cancellationToken));
        }
        catch (HttpRequestException)
        {
            return (0, "");
        }
        catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return (0, "");
        }
    }

    /// <summary>Every line of the service's own log category (<c>Monitor.Service.MonitorService</c>) it printed.</summary>
    public IReadOnlyList<string> ServiceLines() => _server.KeptLines();

    /// <summary>The last 40 lines it printed.</summary>
    public string Output() => _server.Output();

    /// <summary>Lines of the output in librdkafka's own format (<c>%4|1700000000.123|FAIL|rdkafka#consumer-1| ...</c>),
    /// which appear when a client has no log handler.</summary>
    public IReadOnlyList<string> RawLibrdkafkaLines() => [.. Output().Split('\n').Where(l => RawLibrdkafkaLine().IsMatch(l))];

    public async ValueTask DisposeAsync()
    {
        await _server.StopAsync();
        _http.Dispose();
    }

    [GeneratedRegex(@"^%\d\|\d+\.\d+\|")]
    private static partial Regex RawLibrdkafkaLine();
}
