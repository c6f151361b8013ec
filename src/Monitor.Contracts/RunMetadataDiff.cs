using System.Text.Json.Serialization;

namespace Monitor.Contracts;

/// <summary>One difference between two runs' metadata.</summary>
/// <param name="Section"><c>hyperparameter</c>, <c>dataset</c>, <c>code</c>, <c>version</c>, <c>host</c>, <c>devices</c>, <c>parentRun</c> or <c>worldSize</c>.</param>
/// <param name="Name">What differs within the section (the hyperparameter, data set or component name).</param>
/// <param name="Change"><c>changed</c>, <c>added</c> (only in the second run) or <c>removed</c> (only in the first).</param>
/// <param name="Before">The first run's value, or null when it has none.</param>
/// <param name="After">The second run's value, or null when it has none.</param>
public sealed record RunMetadataChange(
    [property: JsonPropertyName("section")] string Section,
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("change")] string Change,
    [property: JsonPropertyName("before")] string? Before,
    [property: JsonPropertyName("after")] string? After);

/// <summary>What changed between two runs' metadata (what <c>monitor runs diff</c> prints).</summary>
public static class RunMetadataDiff
{
    /// <summary>
    /// The differences from <paramref name="before"/> to <paramref name="after"/>: hyperparameters, data sets (by name:
    /// URI and hash), code version, library versions, host, devices, parent run and world size, in that order and by
    /// name within a section. Run ids, ranks and start times are not compared: they always differ.
    /// </summary>
    public static IReadOnlyList<RunMetadataChange> Compare(RunMetadata before, RunMetadata after)
    {
        ArgumentNullException.ThrowIfNull(before);
        ArgumentNullException.ThrowIfNull(after);
        var changes = new List<RunMetadataChange>();
        Dictionaries(changes, "hyperparameter", before.Hyperparameters, after.Hyperparameters);
        Dictionaries(changes, "dataset",
            before.Datasets.GroupBy(d => d.Name).ToDictionary(g => g.Key, g => Describe(g.Last())),
            after.Datasets.GroupBy(d => d.Name).ToDictionary(g => g.Key, g => Describe(g.Last())));
        Value(changes, "code", "commit", before.Code?.Commit, after.Code?.Commit);
        Value(changes, "code", "branch", before.Code?.Branch, after.Code?.Branch);
        Dictionaries(changes, "version", before.Versions, after.Versions);
        Value(changes, "host", "host", Empty(before.Host), Empty(after.Host));
        Value(changes, "devices", "devices", Empty(string.Join(",", before.Devices)), Empty(string.Join(",", after.Devices)));
        Value(changes, "parentRun", "parentRun", before.ParentRun, after.ParentRun);
        Value(changes, "worldSize", "worldSize", before.WorldSize.ToString(System.Globalization.CultureInfo.InvariantCulture),
            after.WorldSize.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return changes;
    }

    private static string Describe(DatasetReference dataset) => dataset.Hash is { } hash ? $"{dataset.Uri} ({hash})" : dataset.Uri;

    private static string? Empty(string value) => value.Length == 0 ? null : value;

    private static void Dictionaries(List<RunMetadataChange> changes, string section, IReadOnlyDictionary<string, string> before, IReadOnlyDictionary<string, string> after)
    {
        foreach (string name in before.Keys.Union(after.Keys).Order(StringComparer.Ordinal))
        {
            Value(changes, section, name, before.GetValueOrDefault(name), after.GetValueOrDefault(name));
        }
    }

    private static void Value(List<RunMetadataChange> changes, string section, string name, string? before, string? after)
    {
        if (before == after)
        {
            return;
        }

        string change = before is null ? "added" : after is null ? "removed" : "changed";
        changes.Add(new RunMetadataChange(section, name, change, before, after));
    }
}
