using System.Text.RegularExpressions;

namespace Monitor.IntegrationTests;

/// <summary>
/// The README's metric reference (section "Metrics") and the archive's table (section "Archive, export and query")
/// name exactly the <c>monitor_*</c> metrics a running <c>demo --archive</c>'s /metrics exposes, each with its type and
/// label names. (The archive's table alone is held equal to a running <c>monitor archive</c> by
/// <see cref="ArchiveEndpointsTests"/> with the same helpers.)
/// </summary>
[Collection(SharedDemoWithPrometheus.Name)]
public sealed partial class MetricReferenceTests(DemoWithPrometheus demo)
{
    [GeneratedRegex(@"^\| `(?<name>monitor_[a-z0-9_]+)` \| (?<type>counter|gauge) \| (?<labels>[^|]*) \| [^|]+ \| [^|]+ \|$")]
    private static partial Regex ReferenceRow();

    [GeneratedRegex(@"^(?<name>monitor_[a-z0-9_]+)(\{(?<labels>[^}]*)\})? ")]
    private static partial Regex SampleLine();

    [GeneratedRegex(@"(?<label>[a-zA-Z_][a-zA-Z0-9_]*)=""(?:[^""\\]|\\.)*""")]
    private static partial Regex LabelPair();

    [Fact]
    public async Task ReadmeMetricReference_MatchesWhatMetricsExposes()
    {
        // The demo archives too (DemoWithPrometheus), so its /metrics has the archive's metrics, documented in their section.
        Dictionary<string, Metric> documented = ReadmeReference("## Metrics");
        foreach ((string name, Metric metric) in ReadmeReference("## Archive, export and query"))
        {
            Assert.True(documented.TryAdd(name, metric), $"{name} is documented in both sections");
        }

        using var http = new HttpClient();
        Dictionary<string, Metric> exposed = [];
        // Alerts and heartbeats appear a few seconds into the demo.
        await Eventually.TrueAsync(() =>
        {
            exposed = Exposed(http.GetStringAsync(demo.DemoMetrics, TestContext.Current.CancellationToken).GetAwaiter().GetResult());
            return exposed.Values.All(m => m.HasSamples) && exposed.ContainsKey("monitor_alerts") && exposed.ContainsKey("monitor_worker_heartbeat_timestamp_seconds")
                && exposed.ContainsKey("monitor_drift_p_value");
        }, "the demo exposes a sample of every metric, alerts, heartbeats and drift tests included", seconds: 90);

        AssertSame(documented, exposed);
    }

    /// <summary>Asserts that the README rows and the exposition name the same metrics, with the same types and labels.</summary>
    internal static void AssertSame(Dictionary<string, Metric> documented, Dictionary<string, Metric> exposed)
    {
        string[] undocumented = [.. exposed.Keys.Except(documented.Keys).Order(StringComparer.Ordinal)];
        string[] notExposed = [.. documented.Keys.Except(exposed.Keys).Order(StringComparer.Ordinal)];
        Assert.True(undocumented.Length == 0, "exposed but not in the README's metric reference: " + string.Join(", ", undocumented));
        Assert.True(notExposed.Length == 0, "in the README's metric reference but not exposed: " + string.Join(", ", notExposed));
        foreach ((string name, Metric metric) in exposed)
        {
            Metric row = documented[name];
            Assert.True(row.Type == metric.Type, $"{name} is a {metric.Type}, the README says {row.Type}");
            Assert.True(row.Labels.SetEquals(metric.Labels),
                $"{name} has labels [{string.Join(", ", metric.Labels.Order(StringComparer.Ordinal))}], the README says [{string.Join(", ", row.Labels.Order(StringComparer.Ordinal))}]");
        }
    }

    /// <summary>The metric rows of the tables in a section of the README (its "## " heading).</summary>
    internal static Dictionary<string, Metric> ReadmeReference(string heading)
    {
        string[] lines = File.ReadAllLines(Path.Combine(AppContext.BaseDirectory, "README.md"));
        int section = Array.IndexOf(lines, heading);
        Assert.True(section >= 0, $"README.md has no '{heading}' section");
        var rows = new Dictionary<string, Metric>(StringComparer.Ordinal);
        foreach (string line in lines.Skip(section + 1).TakeWhile(l => !l.StartsWith("## ", StringComparison.Ordinal)))
        {
            if (!line.StartsWith("| `monitor_", StringComparison.Ordinal))
            {
                continue;
            }

            Match row = ReferenceRow().Match(line);
            Assert.True(row.Success, $"README metric row is not | `name` | counter or gauge | labels | meaning | cardinality |: {line}");
            string labels = row.Groups["labels"].Value.Trim();
            Assert.True(rows.TryAdd(row.Groups["name"].Value, new Metric(row.Groups["type"].Value,
                labels.Length == 0 ? [] : [.. labels.Split(',', StringSplitOptions.TrimEntries)], HasSamples: false)),
                $"{row.Groups["name"].Value} has two rows");
        }

        Assert.NotEmpty(rows);
        return rows;
    }

    /// <summary>Every monitor_* metric of an exposition: type from its # TYPE line, label names from its samples.</summary>
    internal static Dictionary<string, Metric> Exposed(string exposition)
    {
        var metrics = new Dictionary<string, Metric>(StringComparer.Ordinal);
        foreach (string line in exposition.Split('\n'))
        {
            if (line.StartsWith("# TYPE monitor_", StringComparison.Ordinal))
            {
                string[] parts = line.Split(' ');
                metrics[parts[2]] = new Metric(parts[3], [], HasSamples: false);
            }
            else if (SampleLine().Match(line) is { Success: true } sample && metrics.TryGetValue(sample.Groups["name"].Value, out Metric? metric))
            {
                metric.Labels.UnionWith(LabelPair().Matches(sample.Groups["labels"].Value).Select(m => m.Groups["label"].Value));
                metrics[sample.Groups["name"].Value] = metric with { HasSamples = true };
            }
        }

        return metrics;
    }

    internal sealed record Metric(string Type, HashSet<string> Labels, bool HasSamples);
}
