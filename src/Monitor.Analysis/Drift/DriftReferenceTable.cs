namespace Monitor.Analysis.Drift;

/// <summary>
/// A stored reference for drift monitors: named columns of values (a data set the model was validated on, saved
/// statistics of a past run). Immutable once built; loaded by the host (the rule file's <c>referenceFile</c>, a CSV
/// file with a header row), so the engine itself does no I/O and a reference never depends on a topic's retention.
/// </summary>
public sealed class DriftReferenceTable
{
    private readonly Dictionary<string, double[]> _columns;

    /// <summary>Creates a table.</summary>
    /// <param name="source">Where it came from, for messages (e.g. the file name).</param>
    /// <param name="columns">Column name → values (the lists may differ in length: missing cells are left out).</param>
    /// <exception cref="ArgumentException">No column, or an empty name.</exception>
    public DriftReferenceTable(string source, IReadOnlyDictionary<string, double[]> columns)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(columns);
        if (columns.Count == 0)
        {
            throw new ArgumentException($"{source}: a reference needs at least one column", nameof(columns));
        }

        if (columns.Keys.Any(string.IsNullOrWhiteSpace))
        {
            throw new ArgumentException($"{source}: a reference column has an empty name", nameof(columns));
        }

        Source = source;
        Names = [.. columns.Keys];
        _columns = columns.ToDictionary(c => c.Key, c => c.Value.ToArray(), StringComparer.Ordinal);
    }

    /// <summary>Where the table came from.</summary>
    public string Source { get; }

    /// <summary>The column names, in file order.</summary>
    public IReadOnlyList<string> Names { get; }

    /// <summary>The values of a column, or null when there is no such column.</summary>
    public ReadOnlySpan<double> Column(string name) => _columns.TryGetValue(name, out double[]? values) ? values : null;

    /// <summary>Whether the table has the column.</summary>
    public bool Has(string name) => _columns.ContainsKey(name);
}
