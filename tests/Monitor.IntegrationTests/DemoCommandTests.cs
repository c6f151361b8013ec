using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using Monitor.Cli;
using Monitor.Samples.Training;

namespace Monitor.IntegrationTests;

/// <summary>
/// <c>monitor demo</c> end to end: the real TorchSharp job, the tracer, a transport and the service with its
/// /metrics, as a user runs it.
/// </summary>
public sealed partial class DemoCommandTests
{
    [GeneratedRegex(@"^ALERT FIRING\s+(?<rule>\w+) .* step=(?<step>\d+) ", RegexOptions.Multiline)]
    private static partial Regex FiringLine();

    [Fact]
    public async Task MonitorDemo_VanishingGradients_PrintsAlertAfterTheFault_ServesMetrics_AndExitsZero()
    {
        int port = Ports.Free();
        var output = new StringBuilder();
        using var process = new Process
        {
            StartInfo = new ProcessStartInfo("dotnet")
            {
                ArgumentList =
                {
                    Path.Combine(AppContext.BaseDirectory, "monitor.dll"), "demo", "--steps", "300", "--fault", "vanishing-gradients",
                    "--fault-at", "150", "--metrics-port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--step-delay-ms", "10",
                },
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            },
        };
        process.OutputDataReceived += (_, e) =>
        {
            lock (output)
            {
                output.AppendLine(e.Data);
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            lock (output)
            {
                output.AppendLine(e.Data);
            }
        };
        Assert.True(process.Start());
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            // Scrape while it runs: tensor series first, then the firing alert.
            using var http = new HttpClient();
            string metrics = "";
            await Eventually.TrueAsync(() =>
            {
                try
                {
                    metrics = http.GetStringAsync(new Uri($"http://127.0.0.1:{port}/metrics")).GetAwaiter().GetResult();
                }
                catch (HttpRequestException)
                {
                    return false;
                }

                return metrics.Contains("monitor_alerts{alertname=\"VanishingGradient\",alertstate=\"firing\"", StringComparison.Ordinal);
            }, "/metrics shows a firing VanishingGradient alert", seconds: 120);
            Assert.NotEmpty(Prometheus.Samples(metrics, "monitor_tensor_abs_mean{run=\"demo\",rank=\"0\",tensor=\"fc1.weight.grad\"}"));

            await process.WaitForExitAsync(TestContext.Current.CancellationToken).WaitAsync(TimeSpan.FromMinutes(2), TestContext.Current.CancellationToken);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }

        process.WaitForExit();
        string text;
        lock (output)
        {
            text = output.ToString();
        }

        Assert.True(process.ExitCode == 0, text);
        Assert.Contains("Metrics:   http://127.0.0.1:" + port + "/metrics", text, StringComparison.Ordinal);
        MatchCollection firing = FiringLine().Matches(text);
        Assert.NotEmpty(firing);
        Assert.All(firing, m => Assert.True(int.Parse(m.Groups["step"].Value, System.Globalization.CultureInfo.InvariantCulture) >= 150, m.Value));
        Assert.Contains(firing, m => m.Groups["rule"].Value == "VanishingGradient"
            && int.Parse(m.Groups["step"].Value, System.Globalization.CultureInfo.InvariantCulture) is >= 150 and <= 200);
        Assert.Contains("Summary: 300 steps", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task DemoRunner_OverMockKafka_AnalysesEveryRecord()
    {
        var output = new StringWriter();
        var runner = new DemoRunner(new DemoOptions { Steps = 60, MetricsPort = 0, Kafka = "mock", Fault = Fault.VanishingGradients, FaultAt = 20, RunId = "mock-demo" }, output);

        DemoResult result = await runner.RunAsync(TestContext.Current.CancellationToken);

        Assert.True(result.ExitCode == 0, output.ToString());
        // 60 training steps, a validation pass every 10, and the end-of-run record.
        Assert.Equal(67, result.Service.Decoded);
        Assert.Contains("librdkafka mock cluster", output.ToString(), StringComparison.Ordinal);
        Assert.Contains(result.Fired, a => a.RuleName == "VanishingGradient" && a.Step is >= 20 and <= 30);
    }
}
