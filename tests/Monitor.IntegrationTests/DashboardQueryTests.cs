using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace Monitor.IntegrationTests;

/// <summary>
/// The dashboards proven against a real Prometheus scraping a running demo: every variable resolves as Grafana would
/// resolve it, every query of every panel returns data, and every rule of monitor.rules.yaml evaluates without error.
/// </summary>
[Collection(SharedDemoWithPrometheus.Name)]
public sealed class DashboardQueryTests(DemoWithPrometheus demo)
{
    private static readonly TimeSpan DataDeadline = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task EveryPanelQuery_ReturnsData_WhileADemoRuns()
    {
        IReadOnlyList<GrafanaDashboard> dashboards = GrafanaDashboard.LoadAll();
        var clock = Stopwatch.StartNew();
        List<string> missing;
        int checkedQueries;
        while (true)
        {
            (missing, checkedQueries) = await CheckAsync(dashboards);
            if (missing.Count == 0 || clock.Elapsed > DataDeadline)
            {
                break;
            }

            await Task.Delay(DemoWithPrometheus.ScrapeInterval, TestContext.Current.CancellationToken);
        }

        Assert.True(missing.Count == 0,
            $"after {clock.Elapsed.TotalSeconds:F0} s, {missing.Count} of {checkedQueries} queries still return no data:\n  "
            + string.Join("\n  ", missing) + "\nDemo output:\n" + demo.DemoOutput);
    }

    [Fact]
    public async Task EveryRule_EvaluatesWithoutError()
    {
        JsonElement[] rules = [];
        await Eventually.TrueAsync(() =>
        {
            JsonElement data = demo.Prometheus.ApiAsync("rules", TestContext.Current.CancellationToken).GetAwaiter().GetResult();
            rules = [.. data.GetProperty("groups").EnumerateArray().SelectMany(g => g.GetProperty("rules").EnumerateArray())];
            return rules.Length > 0 && rules.All(r => r.GetProperty("health").GetString() != "unknown"
                && r.GetProperty("lastEvaluation").GetDateTimeOffset() > demo.StartedAt);
        }, "Prometheus has evaluated every rule", seconds: 60);

        // Every rule of the file, recording and alerting.
        Assert.Equal(File.ReadAllLines(Path.Combine(GrafanaDashboard.Directory, "prometheus", "monitor.rules.yaml"))
            .Count(l => l.TrimStart().StartsWith("- record:", StringComparison.Ordinal) || l.TrimStart().StartsWith("- alert:", StringComparison.Ordinal)), rules.Length);
        Assert.All(rules, r => Assert.True(
            r.GetProperty("health").GetString() == "ok" && (!r.TryGetProperty("lastError", out JsonElement e) || string.IsNullOrEmpty(e.GetString())),
            $"rule {r.GetProperty("name")}: health {r.GetProperty("health")}, error {(r.TryGetProperty("lastError", out JsonElement error) ? error.GetString() : "")}"));
    }

    /// <summary>
    /// One pass over every dashboard: the queries that return no data, and how many were checked. Bad PromQL, or a variable left unresolved, fails at once.
    /// </summary>
    private async Task<(List<string> Missing, int Checked)> CheckAsync(IReadOnlyList<GrafanaDashboard> dashboards)
    {
        CancellationToken token = TestContext.Current.CancellationToken;
        var missing = new List<string>();
        int checkedQueries = 0;
        foreach (GrafanaDashboard dashboard in dashboards)
        {
            DateTimeOffset end = DateTimeOffset.UtcNow;
            DateTimeOffset start = end - dashboard.Range;
            IReadOnlyDictionary<string, string> variables;
            try
            {
                variables = await GrafanaInterpolation.ResolveVariablesAsync(dashboard, demo.Prometheus, start, end, token);
            }
            catch (InvalidOperationException ex)
            {
                missing.Add(ex.Message);
                checkedQueries += dashboard.Queries.Count;
                continue;
            }

            foreach (PanelQuery query in dashboard.Queries)
            {
                checkedQueries++;
                (TimeSpan interval, IReadOnlyDictionary<string, string> builtIns) = GrafanaInterpolation.BuiltIns(dashboard.Range, query, DemoWithPrometheus.ScrapeInterval);
                string expr = GrafanaInterpolation.Interpolate(GrafanaInterpolation.Interpolate(query.Expr, builtIns), variables);
                Assert.DoesNotContain("$", expr, StringComparison.Ordinal);
                string what = $"{dashboard.Name} / {query.Panel} / {query.RefId}: {expr}";
                string path = query.Instant
                    ? $"query?query={Uri.EscapeDataString(expr)}&time={GrafanaInterpolation.Unix(end)}"
                    : $"query_range?query={Uri.EscapeDataString(expr)}&start={GrafanaInterpolation.Unix(start)}&end={GrafanaInterpolation.Unix(end)}&step={interval.TotalSeconds.ToString(CultureInfo.InvariantCulture)}";
                JsonElement data;
                try
                {
                    data = await demo.Prometheus.ApiAsync(path, token);
                }
                catch (PrometheusQueryException ex)
                {
                    Assert.Fail($"{what}\nPrometheus refused it: {ex.Message}");
                    throw;
                }

                if (!HasData(data) && !query.MayBeEmpty)
                {
                    missing.Add(what);
                }
            }
        }

        return (missing, checkedQueries);
    }

    private static bool HasData(JsonElement data) =>
        data.GetProperty("resultType").GetString() switch
        {
            "matrix" => data.GetProperty("result").EnumerateArray().Any(s => s.GetProperty("values").GetArrayLength() > 0),
            "vector" => data.GetProperty("result").GetArrayLength() > 0,
            _ => true,
        };
}
