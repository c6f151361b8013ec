using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Monitor.IntegrationTests;

/// <summary>A template variable of a dashboard, as Grafana reads it from <c>templating.list</c>.</summary>
/// <param name="Name">Referenced as <c>$name</c> or <c>${name}</c>.</param>
/// <param name="Type"><c>query</c>, <c>datasource</c>, ...</param>
/// <param name="Query">The <c>label_values(...)</c> query of a query variable.</param>
/// <param name="IncludeAll">Offers "All".</param>
/// <param name="Multi">Several values may be chosen.</param>
/// <param name="AllValue">What "All" stands for (the custom all value); null: every value, joined as a regex.</param>
/// <param name="DefaultsToAll">The saved current value is All.</param>
/// <param name="Regex">Filter on the values, if any.</param>
/// <param name="Sort">Grafana's sort: 0 none, 1/2 alphabetical asc/desc, 3/4 numerical asc/desc.</param>
/// <param name="Current">The saved current value (datasource variables).</param>
internal sealed record TemplateVariable(string Name, string Type, string? Query, bool IncludeAll, bool Multi, string? AllValue, bool DefaultsToAll, string? Regex, int Sort, string? Current);

/// <summary>One query of one panel.</summary>
/// <param name="Panel">Panel title.</param>
/// <param name="RefId">Target ref id.</param>
/// <param name="Expr">PromQL with Grafana variables.</param>
/// <param name="Instant">An instant query (stat, table panels) rather than a range query.</param>
/// <param name="MaxDataPoints">Points Grafana asks for: the panel's maxDataPoints, else its width in pixels.</param>
/// <param name="MinInterval">The panel's or target's min interval, if any.</param>
/// <param name="MayBeEmpty">An annotation's query: it marks events (a run start, a selection change), so it has data
/// only when one happened in the range; it must still evaluate.</param>
internal sealed record PanelQuery(string Panel, string RefId, string Expr, bool Instant, int MaxDataPoints, TimeSpan? MinInterval, bool MayBeEmpty = false);

/// <summary>
/// A Grafana dashboard JSON file, read the way Grafana reads it for the parts that decide which PromQL is sent:
/// template variables, panels (also inside rows) and their targets, the default time range.
/// </summary>
internal sealed partial class GrafanaDashboard
{
    // Grafana lays 24 grid columns over the dashboard's width; about 1,900 px on a desktop screen.
    private const double PixelsPerColumn = 1_900.0 / 24;

    private GrafanaDashboard(string file, JsonElement root)
    {
        File = file;
        Root = root;
        Variables = [.. root.GetProperty("templating").GetProperty("list").EnumerateArray().Select(ReadVariable)];
        Queries = [.. Panels(root).SelectMany(ReadQueries), .. ReadAnnotations(root)];
    }

    /// <summary>Where the dashboard folder is in the test output (copied there by the project file).</summary>
    public static string Directory => Path.Combine(AppContext.BaseDirectory, "dashboards");

    public string File { get; }

    public string Name => Path.GetFileName(File);

    public JsonElement Root { get; }

    public IReadOnlyList<TemplateVariable> Variables { get; }

    public IReadOnlyList<PanelQuery> Queries { get; }

    /// <summary>The default time range, <c>time.from</c> (<c>now-1h</c>) to now.</summary>
    public TimeSpan Range => ParseRelative(Root.GetProperty("time").GetProperty("from").GetString()!);

    public static IReadOnlyList<GrafanaDashboard> LoadAll() =>
        [.. System.IO.Directory.GetFiles(Directory, "*.json").Order(StringComparer.Ordinal).Select(Load)];

    public static GrafanaDashboard Load(string file)
    {
        using JsonDocument document = JsonDocument.Parse(System.IO.File.ReadAllText(file));
        return new GrafanaDashboard(file, document.RootElement.Clone());
    }

    /// <summary>Every panel, rows and their nested panels included.</summary>
    public static IEnumerable<JsonElement> Panels(JsonElement root)
    {
        foreach (JsonElement panel in root.GetProperty("panels").EnumerateArray())
        {
            yield return panel;
            if (panel.TryGetProperty("panels", out JsonElement nested))
            {
                foreach (JsonElement inner in nested.EnumerateArray())
                {
                    yield return inner;
                }
            }
        }
    }

    /// <summary>Grafana's variable references: <c>$name</c>, <c>${name}</c>, <c>${name:format}</c>, <c>[[name]]</c>.</summary>
    [GeneratedRegex(@"\$(?<name>\w+)|\$\{(?<name>\w+)(?::\w+)?\}|\[\[(?<name>\w+)\]\]")]
    public static partial Regex VariableReference();

    /// <summary><c>label_values(label)</c> or <c>label_values(selector, label)</c>.</summary>
    [GeneratedRegex(@"^label_values\((?:(?<selector>.+),\s*)?(?<label>[a-zA-Z_][a-zA-Z0-9_]*)\s*\)$")]
    public static partial Regex LabelValues();

    private static TimeSpan ParseRelative(string from)
    {
        Match match = Regex.Match(from, @"^now-(?<n>\d+)(?<unit>[smhd])$");
        Assert.True(match.Success, $"time.from '{from}' is not now-N(s|m|h|d)");
        double n = double.Parse(match.Groups["n"].Value, CultureInfo.InvariantCulture);
        return match.Groups["unit"].Value switch
        {
            "s" => TimeSpan.FromSeconds(n),
            "m" => TimeSpan.FromMinutes(n),
            "h" => TimeSpan.FromHours(n),
            _ => TimeSpan.FromDays(n),
        };
    }

    private static TemplateVariable ReadVariable(JsonElement v)
    {
        string? query = v.TryGetProperty("query", out JsonElement q)
            ? q.ValueKind == JsonValueKind.Object ? q.GetProperty("query").GetString() : q.GetString()
            : null;
        bool defaultsToAll = v.TryGetProperty("current", out JsonElement current) && current.ValueKind == JsonValueKind.Object
            && current.TryGetProperty("value", out JsonElement value)
            && (value.ValueKind == JsonValueKind.Array ? value.EnumerateArray().Any(e => e.GetString() == "$__all") : value.GetString() == "$__all");
        string? currentValue = current.ValueKind == JsonValueKind.Object && current.TryGetProperty("value", out JsonElement cv) && cv.ValueKind == JsonValueKind.String
            ? cv.GetString() : null;
        return new TemplateVariable(
            v.GetProperty("name").GetString()!,
            v.GetProperty("type").GetString()!,
            query,
            v.TryGetProperty("includeAll", out JsonElement all) && all.GetBoolean(),
            v.TryGetProperty("multi", out JsonElement multi) && multi.GetBoolean(),
            v.TryGetProperty("allValue", out JsonElement allValue) && allValue.ValueKind == JsonValueKind.String && allValue.GetString() is { Length: > 0 } a ? a : null,
            defaultsToAll,
            v.TryGetProperty("regex", out JsonElement regex) && regex.GetString() is { Length: > 0 } r ? r : null,
            v.TryGetProperty("sort", out JsonElement sort) ? sort.GetInt32() : 0,
            currentValue);
    }

    /// <summary>The dashboard's Prometheus annotations (the built-in one has no query), as Grafana sends them: range
    /// queries at the annotation's step.</summary>
    private static IEnumerable<PanelQuery> ReadAnnotations(JsonElement root)
    {
        if (!root.TryGetProperty("annotations", out JsonElement annotations))
        {
            yield break;
        }

        foreach (JsonElement annotation in annotations.GetProperty("list").EnumerateArray())
        {
            if (annotation.TryGetProperty("expr", out JsonElement expr))
            {
                TimeSpan? step = annotation.TryGetProperty("step", out JsonElement s) && s.GetString() is { Length: > 0 } text ? GrafanaInterpolation.ParseDuration(text) : null;
                yield return new PanelQuery("annotation " + annotation.GetProperty("name").GetString(), "A", expr.GetString()!, Instant: false,
                    (int)(24 * PixelsPerColumn), step, MayBeEmpty: true);
            }
        }
    }

    private static IEnumerable<PanelQuery> ReadQueries(JsonElement panel)
    {
        if (!panel.TryGetProperty("targets", out JsonElement targets))
        {
            yield break;
        }

        string title = panel.GetProperty("title").GetString()!;
        int width = panel.TryGetProperty("gridPos", out JsonElement grid) ? grid.GetProperty("w").GetInt32() : 24;
        int maxDataPoints = panel.TryGetProperty("maxDataPoints", out JsonElement m) ? m.GetInt32() : (int)(width * PixelsPerColumn);
        TimeSpan? panelInterval = panel.TryGetProperty("interval", out JsonElement pi) && pi.GetString() is { Length: > 0 } p ? GrafanaInterpolation.ParseDuration(p) : null;
        foreach (JsonElement target in targets.EnumerateArray())
        {
            TimeSpan? interval = target.TryGetProperty("interval", out JsonElement ti) && ti.GetString() is { Length: > 0 } i ? GrafanaInterpolation.ParseDuration(i) : panelInterval;
            yield return new PanelQuery(
                title,
                target.GetProperty("refId").GetString()!,
                target.GetProperty("expr").GetString()!,
                target.TryGetProperty("instant", out JsonElement instant) && instant.GetBoolean(),
                maxDataPoints,
                interval);
        }
    }
}

/// <summary>
/// What Grafana does to a query before it reaches Prometheus: resolves template variables (running their
/// <c>label_values</c> through the label-values API and taking the saved All or the first value), computes
/// <c>$__interval</c>, <c>$__rate_interval</c> and <c>$__range</c>, and substitutes them.
/// </summary>
internal static class GrafanaInterpolation
{
    private const string RegexSpecials = "$^*{}[]+?.()|\\";

    /// <summary>Values of every variable, in order (later queries may use earlier values); throws naming one without values.</summary>
    public static async Task<IReadOnlyDictionary<string, string>> ResolveVariablesAsync(GrafanaDashboard dashboard, PrometheusProcess prometheus,
        DateTimeOffset start, DateTimeOffset end, CancellationToken cancellationToken)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (TemplateVariable variable in dashboard.Variables)
        {
            if (variable.Type == "datasource")
            {
                values[variable.Name] = variable.Current ?? "prometheus";
                continue;
            }

            Assert.Equal("query", variable.Type);
            Match query = GrafanaDashboard.LabelValues().Match(Interpolate(variable.Query!, values));
            Assert.True(query.Success, $"{dashboard.Name}: variable {variable.Name}: '{variable.Query}' is not label_values(...)");
            string path = $"label/{query.Groups["label"].Value}/values?start={Unix(start)}&end={Unix(end)}"
                + (query.Groups["selector"].Success ? "&match[]=" + Uri.EscapeDataString(query.Groups["selector"].Value) : "");
            JsonElement data = await prometheus.ApiAsync(path, cancellationToken);
            List<string> options = [.. data.EnumerateArray().Select(e => e.GetString()!)];
            if (variable.Regex is { } filter)
            {
                options = [.. options.Where(o => Regex.IsMatch(o, filter.Trim('/')))];
            }

            options = variable.Sort switch
            {
                1 => [.. options.Order(StringComparer.OrdinalIgnoreCase)],
                2 => [.. options.OrderDescending(StringComparer.OrdinalIgnoreCase)],
                3 => [.. options.OrderBy(o => double.TryParse(o, CultureInfo.InvariantCulture, out double d) ? d : double.NaN)],
                4 => [.. options.OrderByDescending(o => double.TryParse(o, CultureInfo.InvariantCulture, out double d) ? d : double.NaN)],
                _ => options,
            };
            if (options.Count == 0)
            {
                throw new InvalidOperationException($"{dashboard.Name}: variable {variable.Name} has no values ({path})");
            }

            values[variable.Name] = variable.IncludeAll && variable.DefaultsToAll
                ? variable.AllValue ?? (options.Count == 1 ? RegexEscape(options[0]) : "(" + string.Join('|', options.Select(RegexEscape)) + ")")
                : variable.Multi || variable.IncludeAll ? RegexEscape(options[0]) : options[0];
        }

        return values;
    }

    /// <summary>Substitutes Grafana's variable references; an unknown one is left as is (tests then find it).</summary>
    public static string Interpolate(string text, IReadOnlyDictionary<string, string> values) =>
        GrafanaDashboard.VariableReference().Replace(text, m => values.TryGetValue(m.Groups["name"].Value, out string? value) ? value : m.Value);

    /// <summary>
    /// Grafana's built-in interval variables for a query over <paramref name="range"/> ending now: <c>$__interval</c> is
    /// range / max data points rounded to a "nice" interval, at least the min interval (the panel's, else the
    /// datasource's scrape interval); <c>$__rate_interval</c> is max($__interval + scrape interval, 4 × scrape interval);
    /// <c>$__range</c> is the range in whole seconds.
    /// </summary>
    public static (TimeSpan Interval, IReadOnlyDictionary<string, string> Values) BuiltIns(TimeSpan range, PanelQuery query, TimeSpan scrapeInterval)
    {
        TimeSpan interval = RoundInterval(range / query.MaxDataPoints);
        TimeSpan floor = query.MinInterval ?? scrapeInterval;
        if (interval < floor)
        {
            interval = floor;
        }

        TimeSpan rate = interval + scrapeInterval > 4 * scrapeInterval ? interval + scrapeInterval : 4 * scrapeInterval;
        long rangeSeconds = (long)Math.Round(range.TotalSeconds);
        return (interval, new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["__interval"] = Format(interval),
            ["__interval_ms"] = ((long)interval.TotalMilliseconds).ToString(CultureInfo.InvariantCulture),
            ["__rate_interval"] = Format(rate),
            ["__range"] = rangeSeconds.ToString(CultureInfo.InvariantCulture) + "s",
            ["__range_s"] = rangeSeconds.ToString(CultureInfo.InvariantCulture),
            ["__range_ms"] = ((long)range.TotalMilliseconds).ToString(CultureInfo.InvariantCulture),
        });
    }

    /// <summary>A Grafana/Prometheus duration: <c>15s</c>, <c>1m</c>, <c>500ms</c>, <c>1h</c>.</summary>
    public static TimeSpan ParseDuration(string text)
    {
        Match match = Regex.Match(text, @"^(?<n>\d+(\.\d+)?)(?<unit>ms|s|m|h|d)$");
        Assert.True(match.Success, $"'{text}' is not a duration");
        double n = double.Parse(match.Groups["n"].Value, CultureInfo.InvariantCulture);
        return match.Groups["unit"].Value switch
        {
            "ms" => TimeSpan.FromMilliseconds(n),
            "s" => TimeSpan.FromSeconds(n),
            "m" => TimeSpan.FromMinutes(n),
            "h" => TimeSpan.FromHours(n),
            _ => TimeSpan.FromDays(n),
        };
    }

    public static string Unix(DateTimeOffset at) => (at.ToUnixTimeMilliseconds() / 1000.0).ToString("F3", CultureInfo.InvariantCulture);

    /// <summary>Grafana's prometheusSpecialRegexEscape: a backslash pair before each regex special (one for PromQL's string, one for the regex).</summary>
    private static string RegexEscape(string value)
    {
        var escaped = new StringBuilder(value.Length);
        foreach (char c in value)
        {
            if (RegexSpecials.Contains(c, StringComparison.Ordinal))
            {
                escaped.Append(@"\\");
            }

            escaped.Append(c);
        }

        return escaped.ToString();
    }

    private static string Format(TimeSpan interval) =>
        interval.TotalSeconds >= 1 && interval.TotalMilliseconds % 1000 == 0
            ? ((long)interval.TotalSeconds).ToString(CultureInfo.InvariantCulture) + "s"
            : ((long)interval.TotalMilliseconds).ToString(CultureInfo.InvariantCulture) + "ms";

    /// <summary>Grafana's rangeutil.roundInterval: the raw interval rounded to the nearest of a ladder of nice values.</summary>
    private static TimeSpan RoundInterval(TimeSpan raw)
    {
        (double Below, double To)[] ladder =
        [
            (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500), (1_500, 1_000), (3_500, 2_000), (7_500, 5_000),
            (12_500, 10_000), (17_500, 15_000), (25_000, 20_000), (45_000, 30_000), (90_000, 60_000), (210_000, 120_000),
            (450_000, 300_000), (750_000, 600_000), (1_050_000, 900_000), (1_500_000, 1_200_000), (2_700_000, 1_800_000),
            (5_400_000, 3_600_000), (9_000_000, 7_200_000), (16_200_000, 10_800_000), (32_400_000, 21_600_000),
        ];
        double ms = raw.TotalMilliseconds;
        foreach ((double below, double to) in ladder)
        {
            if (ms < below)
            {
                return TimeSpan.FromMilliseconds(to);
            }
        }

        return TimeSpan.FromHours(12);
    }
}
