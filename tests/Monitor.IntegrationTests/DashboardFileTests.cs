using System.Text.Json;
using YamlDotNet.RepresentationModel;

namespace Monitor.IntegrationTests;

/// <summary>
/// The Grafana dashboards in dashboards/ are well formed for provisioning: current schema, unique uids, every panel
/// and variable on the <c>datasource</c> variable (default uid <c>prometheus</c>), query variables from
/// <c>label_values</c>, every referenced variable defined, panels on the grid without overlap; and the provisioning
/// files point Grafana at them. Whether their queries return data is DashboardQueryTests' business.
/// </summary>
public sealed class DashboardFileTests
{
    private static readonly HashSet<string> BuiltIns = new(StringComparer.Ordinal)
    {
        "__interval", "__interval_ms", "__rate_interval", "__range", "__range_s", "__range_ms",
    };

    public static TheoryData<string> Dashboards()
    {
        var data = new TheoryData<string>();
        foreach (GrafanaDashboard dashboard in GrafanaDashboard.LoadAll())
        {
            data.Add(dashboard.Name);
        }

        return data;
    }

    [Fact]
    public void Dashboards_AreTheFiveOfTheReadme_WithUniqueUids()
    {
        IReadOnlyList<GrafanaDashboard> dashboards = GrafanaDashboard.LoadAll();

        Assert.Equal(["drift.json", "monitor-health.json", "rules-and-alerts.json", "tensor-statistics.json", "training-overview.json"], dashboards.Select(d => d.Name));
        Assert.Equal(dashboards.Count, dashboards.Select(d => d.Root.GetProperty("uid").GetString()).Distinct().Count());
    }

    [Theory]
    [MemberData(nameof(Dashboards))]
    public void Dashboard_IsWellFormed(string name)
    {
        GrafanaDashboard dashboard = GrafanaDashboard.Load(Path.Combine(GrafanaDashboard.Directory, name));
        JsonElement root = dashboard.Root;

        Assert.True(root.GetProperty("schemaVersion").GetInt32() >= 39, "schemaVersion must be 39 or later");
        Assert.StartsWith("monitor-", root.GetProperty("uid").GetString(), StringComparison.Ordinal);
        Assert.StartsWith("Monitor / ", root.GetProperty("title").GetString(), StringComparison.Ordinal);
        Assert.Contains("monitor", root.GetProperty("tags").EnumerateArray().Select(t => t.GetString()));

        TemplateVariable datasource = dashboard.Variables[0];
        Assert.Equal(("datasource", "datasource", "prometheus", "prometheus"), (datasource.Name, datasource.Type, datasource.Query, datasource.Current));
        foreach (JsonElement variable in root.GetProperty("templating").GetProperty("list").EnumerateArray().Skip(1))
        {
            string variableName = variable.GetProperty("name").GetString()!;
            Assert.Equal("query", variable.GetProperty("type").GetString());
            AssertOnDatasourceVariable(variable, $"variable {variableName}");
            string query = variable.GetProperty("query").GetProperty("query").GetString()!;
            Assert.Matches(GrafanaDashboard.LabelValues(), query);
            Assert.Equal(query, variable.GetProperty("definition").GetString());
        }

        var defined = dashboard.Variables.Select(v => v.Name).ToHashSet(StringComparer.Ordinal);
        var ids = new HashSet<int>();
        var cells = new HashSet<(int X, int Y)>();
        foreach (JsonElement panel in GrafanaDashboard.Panels(root))
        {
            string title = panel.GetProperty("title").GetString()!;
            Assert.True(ids.Add(panel.GetProperty("id").GetInt32()), $"panel id {panel.GetProperty("id")} is used twice");
            JsonElement grid = panel.GetProperty("gridPos");
            int x = grid.GetProperty("x").GetInt32(), y = grid.GetProperty("y").GetInt32(), w = grid.GetProperty("w").GetInt32(), h = grid.GetProperty("h").GetInt32();
            Assert.True(x >= 0 && w > 0 && x + w <= 24 && h > 0, $"panel '{title}' is off the 24-column grid");
            for (int cx = x; cx < x + w; cx++)
            {
                for (int cy = y; cy < y + h; cy++)
                {
                    Assert.True(cells.Add((cx, cy)), $"panel '{title}' overlaps another at ({cx}, {cy})");
                }
            }

            if (panel.GetProperty("type").GetString() == "row")
            {
                continue;
            }

            Assert.False(string.IsNullOrWhiteSpace(title));
            Assert.False(string.IsNullOrWhiteSpace(panel.GetProperty("description").GetString()), $"panel '{title}' has no description");
            AssertOnDatasourceVariable(panel, $"panel '{title}'");
            JsonElement[] targets = [.. panel.GetProperty("targets").EnumerateArray()];
            Assert.NotEmpty(targets);
            Assert.Equal(targets.Length, targets.Select(t => t.GetProperty("refId").GetString()).Distinct().Count());
            foreach (JsonElement target in targets)
            {
                AssertOnDatasourceVariable(target, $"panel '{title}' target {target.GetProperty("refId")}");
                string expr = target.GetProperty("expr").GetString()!;
                Assert.False(string.IsNullOrWhiteSpace(expr));
                foreach (System.Text.RegularExpressions.Match reference in GrafanaDashboard.VariableReference().Matches(expr))
                {
                    string variable = reference.Groups["name"].Value;
                    Assert.True(defined.Contains(variable) || BuiltIns.Contains(variable), $"panel '{title}' uses ${variable}, which {name} does not define");
                }
            }
        }
    }

    [Fact]
    public void Provisioning_LoadsTheDashboardsFromFiles_AndTheDatasourceHasUidPrometheus()
    {
        YamlMappingNode datasources = LoadYaml(Path.Combine(GrafanaDashboard.Directory, "provisioning", "datasources", "prometheus.yaml"));
        YamlMappingNode providers = LoadYaml(Path.Combine(GrafanaDashboard.Directory, "provisioning", "dashboards", "monitor.yaml"));

        var datasource = (YamlMappingNode)((YamlSequenceNode)datasources["datasources"]).Single();
        Assert.Equal("prometheus", datasource["uid"].ToString());
        Assert.Equal("prometheus", datasource["type"].ToString());
        var provider = (YamlMappingNode)((YamlSequenceNode)providers["providers"]).Single();
        Assert.Equal("file", provider["type"].ToString());
        Assert.False(string.IsNullOrWhiteSpace(((YamlMappingNode)provider["options"])["path"].ToString()));
    }

    private static void AssertOnDatasourceVariable(JsonElement element, string what)
    {
        JsonElement datasource = element.GetProperty("datasource");
        Assert.True(datasource.GetProperty("type").GetString() == "prometheus" && datasource.GetProperty("uid").GetString() == "${datasource}",
            $"{what} must use the datasource variable: {{\"type\": \"prometheus\", \"uid\": \"${{datasource}}\"}}, not {datasource}");
    }

    private static YamlMappingNode LoadYaml(string file)
    {
        var stream = new YamlStream();
        using var reader = new StreamReader(file);
        stream.Load(reader);
        return (YamlMappingNode)stream.Documents[0].RootNode;
    }
}
