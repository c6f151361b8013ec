using System.Data.Common;
using System.Globalization;
using System.Text;
using DuckDB.NET.Data;
using Monitor.Contracts;

namespace Monitor.Archive;

/// <summary>An archive that cannot be read, or a query or export that failed; the message names the file (and row).</summary>
public sealed class ArchiveReadException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ArchiveReadException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with its cause.</summary>
    public ArchiveReadException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates the exception.</summary>
    public ArchiveReadException()
    {
    }
}

/// <summary>Finds the Parquet files of an archive directory (or takes one file).</summary>
public static class ArchiveFiles
{
    /// <summary>Runs a query over one archive file; a DuckDB error becomes an <see cref="ArchiveReadException"/> naming the file.</summary>
    internal static DbDataReader ReadFile(DbCommand command, string file)
    {
        try
        {
            return command.ExecuteReader();
        }
        catch (DuckDBException ex)
        {
            throw new ArchiveReadException($"{file}: {ex.Message}", ex);
        }
    }

    /// <summary>
    /// The completed archive files under <paramref name="from"/> (a directory, searched recursively for
    /// <c>*.parquet</c>; files being written are hidden <c>.tmp</c> files and never match), or <paramref name="from"/>
    /// itself when it is a file; sorted by path (run, rank, then the time each file was opened).
    /// </summary>
    /// <param name="from">Archive directory or one Parquet file.</param>
    /// <param name="run">Only this run's directory, when given.</param>
    /// <param name="rank">Only this rank's directories, when given.</param>
    /// <exception cref="ArchiveReadException"><paramref name="from"/> does not exist or holds no Parquet file.</exception>
    public static IReadOnlyList<string> Find(string from, string? run = null, int? rank = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(from);
        if (File.Exists(from))
        {
            return [Path.GetFullPath(from)];
        }

        if (!Directory.Exists(from))
        {
            throw new ArchiveReadException($"{from}: no such file or directory");
        }

        string root = Path.GetFullPath(from);
        List<string> files = [.. Directory.EnumerateFiles(root, "*" + ArchiveWriter.FileExtension, SearchOption.AllDirectories)
            .Where(path => !Path.GetFileName(path).StartsWith('.'))
            .Where(path => run is null || RunOf(path) == ArchiveWriter.DirectoryOf(run))
            .Where(path => rank is null || Path.GetFileName(Path.GetDirectoryName(path)) == "rank-" + rank.Value.ToString(CultureInfo.InvariantCulture))
            .Order(StringComparer.Ordinal)];
        if (files.Count == 0)
        {
            throw new ArchiveReadException($"{from}: no archive files (*.parquet){(run is null ? "" : " of run " + run)}{(rank is null ? "" : " rank " + rank.Value.ToString(CultureInfo.InvariantCulture))}");
        }

        return files;
    }

    // {root}/{run}/rank-{rank}/part-...: the run is the directory two levels above the file.
    private static string RunOf(string path) => Path.GetFileName(Path.GetDirectoryName(Path.GetDirectoryName(path))) ?? "";

    /// <summary>A DuckDB expression reading <paramref name="files"/> as one table, columns matched by name.</summary>
    internal static string ReadParquet(IEnumerable<string> files, bool rowNumbers = false) =>
        "read_parquet([" + string.Join(", ", files.Select(Literal)) + "], union_by_name = true" + (rowNumbers ? ", filename = true, file_row_number = true" : "") + ")";

    /// <summary>
    /// A DuckDB SELECT of <paramref name="files"/> with the archive's columns, <c>histogram_edges</c> filled in for
    /// log2_magnitude histograms (the files leave them out: they are fixed by the layout).
    /// </summary>
    internal static string Select(IEnumerable<string> files, bool rowNumbers = false) =>
        SelectFrom(ReadParquet(files, rowNumbers), rowNumbers);

    /// <summary>As <see cref="Select"/>, for every archive file under <paramref name="directory"/>.</summary>
    internal static string SelectGlob(string directory) =>
        SelectFrom("read_parquet(" + Literal(Path.Combine(directory, "**", "*" + ArchiveWriter.FileExtension)) + ", union_by_name = true)", rowNumbers: false);

    private static string SelectFrom(string source, bool rowNumbers) =>
        "SELECT *" + (rowNumbers ? " EXCLUDE (filename)" : "")
        + " REPLACE (CASE WHEN histogram_layout = 'log2_magnitude' AND histogram_edges IS NULL THEN list_slice(" + Log2EdgesLiteral
        + ", histogram_first_bucket + 1, histogram_first_bucket + len(histogram_counts) + 1) ELSE histogram_edges END AS histogram_edges)"
        + " FROM " + source;

    private static readonly string Log2EdgesLiteral = "[" + string.Join(", ", Log2Histogram.Edges.ToArray().Select(e =>
        double.IsNegativeInfinity(e) ? "CAST('-inf' AS DOUBLE)" : double.IsPositiveInfinity(e) ? "CAST('inf' AS DOUBLE)"
        : "CAST(" + e.ToString("R", CultureInfo.InvariantCulture) + " AS DOUBLE)")) + "]";

    /// <summary>A SQL string literal.</summary>
    internal static string Literal(string value) => "'" + value.Replace("'", "''", StringComparison.Ordinal) + "'";
}

/// <summary>
/// <c>monitor query</c>: SQL over an archive with DuckDB, embedded; the archive is the table (view) <c>steps</c>, with
/// the columns of <see cref="ArchiveSchema"/>.
/// </summary>
public static class ArchiveQuery
{
    /// <summary>Name of the view over the archive.</summary>
    public const string TableName = "steps";

    /// <summary>
    /// Runs <paramref name="sql"/> over the archive at <paramref name="from"/> and writes the result to
    /// <paramref name="output"/> as tab-separated text with a header line (NULL for nulls, lists as JSON arrays).
    /// </summary>
    /// <returns>Rows written.</returns>
    /// <exception cref="ArchiveReadException">No archive files, or DuckDB refused the query or a file (its message names it).</exception>
    public static long Run(string from, string sql, TextWriter output, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(sql);
        ArgumentNullException.ThrowIfNull(output);
        IReadOnlyList<string> files = ArchiveFiles.Find(from);
        using var connection = new DuckDBConnection("DataSource=:memory:");
        connection.Open();
        try
        {
            using (DbCommand view = connection.CreateCommand())
            {
                // A directory by its glob (hidden temporary files end in .tmp and never match), so a large archive
                // does not make a statement of every file name; DuckDB lists the files when the query runs.
                view.CommandText = $"CREATE VIEW {TableName} AS {(Directory.Exists(from) ? ArchiveFiles.SelectGlob(Path.GetFullPath(from)) : ArchiveFiles.Select(files))}";
                view.ExecuteNonQuery();
            }

            using DbCommand command = connection.CreateCommand();
            command.CommandText = sql;
            using DbDataReader reader = command.ExecuteReader();
            var line = new StringBuilder();
            for (int i = 0; i < reader.FieldCount; i++)
            {
                line.Append(i == 0 ? "" : "\t").Append(reader.GetName(i));
            }

            output.WriteLine(line);
            long rows = 0;
            while (reader.Read())
            {
                cancellationToken.ThrowIfCancellationRequested();
                line.Clear();
                for (int i = 0; i < reader.FieldCount; i++)
                {
                    line.Append(i == 0 ? "" : "\t").Append(reader.IsDBNull(i) ? "NULL" : ValueText.Plain(reader.GetValue(i)));
                }

                output.WriteLine(line);
                rows++;
            }

            return rows;
        }
        catch (DuckDBException ex)
        {
            throw new ArchiveReadException(ex.Message, ex);
        }
    }
}

/// <summary>How values are written as text by the query and the CSV/JSON exports.</summary>
internal static class ValueText
{
    /// <summary>A value as text: numbers invariant and round-trippable, non-finite ones as inf/-inf/nan, lists as JSON arrays.</summary>
    public static string Plain(object value) => value switch
    {
        string text => text,
        double number => Number(number),
        float number => Number(number),
        bool flag => flag ? "true" : "false",
        IFormattable formattable => formattable.ToString(null, CultureInfo.InvariantCulture),
        System.Collections.IEnumerable items => JsonArray(items),
        _ => value.ToString() ?? "",
    };

    /// <summary>A number for CSV: shortest round-trip form; inf, -inf and nan (what pandas reads as floats).</summary>
    public static string Number(double value) =>
        double.IsNaN(value) ? "nan" : double.IsPositiveInfinity(value) ? "inf" : double.IsNegativeInfinity(value) ? "-inf" : value.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>A number for JSON: NaN, Infinity and -Infinity for the non-finite ones (as Python's json reads them).</summary>
    public static string JsonNumber(double value) =>
        double.IsNaN(value) ? "NaN" : double.IsPositiveInfinity(value) ? "Infinity" : double.IsNegativeInfinity(value) ? "-Infinity" : value.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>A JSON value.</summary>
    public static string Json(object? value) => value switch
    {
        null or DBNull => "null",
        string text => JsonString(text),
        double number => JsonNumber(number),
        float number => JsonNumber(number),
        bool flag => flag ? "true" : "false",
        IFormattable formattable => formattable.ToString(null, CultureInfo.InvariantCulture),
        System.Collections.IEnumerable items => JsonArray(items),
        _ => JsonString(value.ToString() ?? ""),
    };

    public static string JsonArray(System.Collections.IEnumerable items)
    {
        var text = new StringBuilder("[");
        bool first = true;
        foreach (object? item in items)
        {
            text.Append(first ? "" : ",").Append(Json(item));
            first = false;
        }

        return text.Append(']').ToString();
    }

    public static string JsonString(string text) => System.Text.Json.JsonSerializer.Serialize(text);
}
