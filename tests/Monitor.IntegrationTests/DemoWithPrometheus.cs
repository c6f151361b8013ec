using System.Globalization;

namespace Monitor.IntegrationTests;

/// <summary>
/// A running <c>monitor demo</c> (the real CLI as a child process: TorchSharp job whose inputs drift from step 100, so
/// drift alerts fire and stay up, besides the training rules' own alerts; in-process Garnet for heartbeats; an archive
/// in a temporary directory) and a real Prometheus that scrapes it every second and evaluates
/// dashboards/prometheus/monitor.rules.yaml every second. Both processes are killed
/// on dispose (and by <see cref="ChildServer"/>'s exit hook should the test host die first). Shared by the classes of
/// <see cref="SharedDemoWithPrometheus"/>, which therefore run one after the other.
/// </summary>
public sealed class DemoWithPrometheus : IAsyncLifetime
{
    /// <summary>The demo's run id.</summary>
    public const string Run = "dashboards";

    /// <summary>Scrape and rule evaluation interval; Grafana's datasource would carry it as timeInterval.</summary>
    public static readonly TimeSpan ScrapeInterval = TimeSpan.FromSeconds(1);

    private static readonly TimeSpan DemoStartTimeout = TimeSpan.FromSeconds(90);

    private readonly ChildServer _demo = new("monitor demo");
    // The demo archives too, so the dashboards' archive panels have data.
    private readonly DirectoryInfo _archive = Directory.CreateTempSubdirectory("monitor-dashboards-archive-");
    private PrometheusProcess? _prometheus;

    internal PrometheusProcess Prometheus => _prometheus ?? throw new InvalidOperationException("not started");

    /// <summary>The demo's /metrics.</summary>
    public Uri DemoMetrics { get; private set; } = null!;

    /// <summary>When the fixture was started (rules evaluated after this count).</summary>
    public DateTimeOffset StartedAt { get; private set; }

    /// <summary>The demo's last output lines, for failure messages.</summary>
    public string DemoOutput => _demo.Output();

    public async ValueTask InitializeAsync()
    {
        StartedAt = DateTimeOffset.UtcNow;
        int port = Ports.Free();
        string portText = port.ToString(CultureInfo.InvariantCulture);
        DemoMetrics = new Uri($"http://127.0.0.1:{portText}/metrics");
        _demo.Launch("dotnet", AppContext.BaseDirectory, [
            Path.Combine(AppContext.BaseDirectory, "monitor.dll"), "demo", "--run", Run, "--steps", "1000000", "--step-delay-ms", "25",
            "--fault", "input-drift", "--fault-at", "100", "--metrics-port", portText, "--archive", _archive.FullName]);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        await _demo.WaitUntilReadyAsync($"127.0.0.1:{portText}", async token =>
        {
            try
            {
                using HttpResponseMessage response = await http.GetAsync(DemoMetrics, token);
                return response.IsSuccessStatusCode;
            }
            catch (Exception e) when (e is HttpRequestException || (e is TaskCanceledException && !token.IsCancellationRequested))
            {
                return false;
            }
        }, "serving /metrics", DemoStartTimeout, TimeSpan.FromMilliseconds(100), TestContext.Current.CancellationToken);

        string rules = Path.Combine(GrafanaDashboard.Directory, "prometheus", "monitor.rules.yaml");
        string seconds = ((int)ScrapeInterval.TotalSeconds).ToString(CultureInfo.InvariantCulture) + "s";
        _prometheus = await PrometheusProcess.StartNewAsync($"""
            global:
              scrape_interval: {seconds}
              evaluation_interval: {seconds}
            rule_files:
              - '{rules}'
            scrape_configs:
              - job_name: monitor
                static_configs:
                  - targets: ['127.0.0.1:{portText}']
            """, TestContext.Current.CancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        if (_prometheus is not null)
        {
            await _prometheus.DisposeAsync();
        }

        await _demo.StopAsync();
        _archive.Delete(recursive: true);
    }
}

/// <summary>The test classes that share one <see cref="DemoWithPrometheus"/> (it takes some 10 s to start).</summary>
[CollectionDefinition(Name)]
public sealed class SharedDemoWithPrometheus : ICollectionFixture<DemoWithPrometheus>
{
    public const string Name = "demo with Prometheus";
}
