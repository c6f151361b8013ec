using System.Globalization;
using System.Text;

namespace Monitor.Service.Drift;

/// <summary>A problem in a CSV file, with where it is.</summary>
public sealed class CsvFormatException : Exception
{
    /// <summary>Creates the exception.</summary>
    public CsvFormatException(string message) : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public CsvFormatException()
    {
    }

    /// <summary>Creates the exception.</summary>
    public CsvFormatException(string message, Exception innerException) : base(message, innerException)
    {
    }
}

/// <summary>
/// Reads numeric CSV files with a header row into columns: what <c>monitor drift test</c> compares and what a drift
/// monitor's <c>referenceFile</c> holds. Fields may be quoted (RFC 4180: <c>"a ""b"""</c>); cells are numbers in
/// invariant culture (<c>1.5</c>, <c>-2e-3</c>, <c>nan</c>, <c>inf</c>); an empty cell is a missing value (NaN, dropped
/// before testing as Evidently drops it).
/// </summary>
public static class CsvColumns
{
    /// <summary>Reads <paramref name="path"/>.</summary>
    /// <returns>The column names in file order and each column's values.</returns>
    /// <exception cref="CsvFormatException">The file cannot be read, has no header or no rows, repeats a column name, has
    /// a row of the wrong width or a cell that is not a number; the message names the file, line and column.</exception>
    public static (IReadOnlyList<string> Names, IReadOnlyDictionary<string, double[]> Columns) Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new CsvFormatException($"{path}: {ex.Message}", ex);
        }

        return Parse(text, path);
    }

    /// <summary>Parses CSV text; <paramref name="source"/> names it in messages.</summary>
    /// <exception cref="CsvFormatException">See <see cref="Read"/>.</exception>
    public static (IReadOnlyList<string> Names, IReadOnlyDictionary<string, double[]> Columns) Parse(string text, string source)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(source);
        List<string>? header = null;
        List<double>[] values = [];
        int line = 0;
        int rows = 0;
        var fields = new List<string>();
        foreach ((int number, string row) in Lines(text))
        {
            line = number;
            if (row.Length == 0 || row.Trim().Length == 0)
            {
                continue;
            }

            Split(row, source, line, fields);
            if (header is null)
            {
                header = [.. fields.Select(f => f.Trim())];
                for (int c = 0; c < header.Count; c++)
                {
                    if (header[c].Length == 0)
                    {
                        throw new CsvFormatException($"{source}:{line}: column {c + 1} of the header has no name");
                    }

                    int first = header.IndexOf(header[c]);
                    if (first != c)
                    {
                        throw new CsvFormatException($"{source}:{line}: column {c + 1} repeats the name '{header[c]}' of column {first + 1}");
                    }
                }

                values = [.. header.Select(_ => new List<double>())];
                continue;
            }

            if (fields.Count != header.Count)
            {
                throw new CsvFormatException($"{source}:{line}: {fields.Count} fields, but the header names {header.Count} columns");
            }

            for (int c = 0; c < fields.Count; c++)
            {
                values[c].Add(ParseCell(fields[c], source, line, header[c]));
            }

            rows++;
        }

        if (header is null)
        {
            throw new CsvFormatException($"{source}: the file is empty; it needs a header row naming the columns and at least one row of values");
        }

        if (rows == 0)
        {
            throw new CsvFormatException($"{source}: the file has a header but no rows of values");
        }

        var columns = new Dictionary<string, double[]>(StringComparer.Ordinal);
        for (int c = 0; c < header.Count; c++)
        {
            columns[header[c]] = [.. values[c]];
        }

        return (header, columns);
    }

    private static double ParseCell(string field, string source, int line, string column)
    {
        string cell = field.Trim();
        if (cell.Length == 0)
        {
            return double.NaN;
        }

        if (double.TryParse(cell, NumberStyles.Float, CultureInfo.InvariantCulture, out double value))
        {
            return value;
        }

        switch (cell.ToUpperInvariant())
        {
            case "NAN":
                return double.NaN;
            case "INF" or "+INF" or "INFINITY" or "+INFINITY":
                return double.PositiveInfinity;
            case "-INF" or "-INFINITY":
                return double.NegativeInfinity;
            default:
                throw new CsvFormatException($"{source}:{line}: column '{column}': '{Shorten(cell)}' is not a number");
        }
    }

    private static string Shorten(string text) => text.Length <= 40 ? text : text[..40] + "...";

    private static IEnumerable<(int Number, string Text)> Lines(string text)
    {
        int number = 0;
        int start = 0;
        while (start <= text.Length)
        {
            int end = text.IndexOf('\n', start);
            number++;
            if (end < 0)
            {
                if (start < text.Length)
                {
                    yield return (number, text[start..].TrimEnd('\r'));
                }

                yield break;
            }

            yield return (number, text[start..end].TrimEnd('\r'));
            start = end + 1;
        }
    }

    private static void Split(string row, string source, int line, List<string> fields)
    {
        fields.Clear();
        var field = new StringBuilder();
        bool quoted = false;
        for (int i = 0; i < row.Length; i++)
        {
            char c = row[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < row.Length && row[i + 1] == '"')
                {
                    field.Append('"');
                    i++;
                }
                else if (c == '"')
                {
                    quoted = false;
                }
                else
                {
                    field.Append(c);
                }
            }
            else if (c == '"' && field.ToString().Trim().Length == 0)
            {
                field.Clear();
                quoted = true;
            }
            else if (c == ',')
            {
                fields.Add(field.ToString());
                field.Clear();
            }
            else
            {
                field.Append(c);
            }
        }

        if (quoted)
        {
            throw new CsvFormatException($"{source}:{line}: a quoted field is not closed (quoted line breaks are not supported)");
        }

        fields.Add(field.ToString());
    }
}
