using System.Data.Common;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using DuckDB.NET.Data;
using Parquet;

namespace Monitor.Archive;

/// <summary>Output formats of <see cref="ArchiveExport"/>.</summary>
public enum ExportFormat
{
    /// <summary>Parquet with the archive's schema (<see cref="ArchiveSchema"/>), Snappy-compressed.</summary>
    Parquet,

    /// <summary>CSV (RFC 4180) with a header line; lists as JSON arrays; non-finite numbers as inf, -inf, nan.</summary>
    Csv,

    /// <summary>One JSON object per line; non-finite numbers as NaN, Infinity, -Infinity (as Python's json reads them).</summary>
    JsonLines,
}

/// <summary>What <see cref="ArchiveExport"/> exports and where.</summary>
public sealed class ArchiveExportOptions
{
    /// <summary>Archive directory or one archive Parquet file. Required.</summary>
    public required string From { get; init; }

    /// <summary>The file to write; replaced atomically when the export completes. Required.</summary>
    public required string Out { get; init; }

    /// <summary>Output format. Default Parquet.</summary>
    public ExportFormat Format { get; init; } = ExportFormat.Parquet;

    /// <summary>Only this run; null: every run.</summary>
    public string? Run { get; init; }

    /// <summary>Only this rank; null: every rank.</summary>
    public int? Rank { get; init; }

    /// <summary>Only tensors whose name matches (a search, not a full match; .NET syntax); null: every tensor.</summary>
    public Regex? Tensor { get; init; }

    /// <summary>First step exported (inclusive); null: from the first.</summary>
    public long? FirstStep { get; init; }

    /// <summary>End of the steps exported (exclusive, as Python's slices); null: to the last.</summary>
    public long? EndStep { get; init; }
}

/// <summary>Progress of an export: after each file and at most every second within one.</summary>
/// <param name="FilesDone">Archive files read completely.</param>
/// <param name="Files">Archive files to read.</param>
/// <param name="RowsRead">Rows read so far (before the tensor filter).</param>
/// <param name="RowsWritten">Rows written so far.</param>
public readonly record struct ExportProgress(int FilesDone, int Files, long RowsRead, long RowsWritten);

/// <summary>
/// <c>monitor export</c>: the rows of an archive that match a run, rank, tensor pattern and step range, as one flat
/// table in Parquet, CSV or JSON lines, with the columns of <see cref="ArchiveSchema"/> in that order.
/// </summary>
/// <remarks>
/// Files are read one at a time with DuckDB (the run and rank select directories first); rows come out in archive order
/// (run, rank, file time, then row). The output is written under a temporary name and renamed at the end, so a failed
/// or cancelled export leaves no partial file at <see cref="ArchiveExportOptions.Out"/>.
/// </remarks>
public static class ArchiveExport
{
    private const int RowGroupRows = 65_536;

    /// <summary>Runs the export.</summary>
    /// <returns>The rows written.</returns>
    /// <exception cref="ArchiveReadException">A file cannot be read, or a row of it not converted: the message names the
    /// file (and the row, counted from 0 in that file).</exception>
    /// <exception cref="IOException">The output cannot be written.</exception>
    public static async Task<long> RunAsync(ArchiveExportOptions options, IProgress<ExportProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        IReadOnlyList<string> files = ArchiveFiles.Find(options.From, options.Run, options.Rank);
        string output = Path.GetFullPath(options.Out);
        if (files.Contains(output, StringComparer.Ordinal))
        {
            throw new ArchiveReadException($"{options.Out}: the output is one of the archive's files");
        }

        string temporary = Path.Combine(Path.GetDirectoryName(output)!, "." + Path.GetFileName(output) + "." + Guid.NewGuid().ToString("N")[..8] + ArchiveWriter.TemporaryExtension);
        long read = 0, written = 0;
        long nextReport = Stopwatch.GetTimestamp() + Stopwatch.Frequency;
        try
        {
            await using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16))
            {
                await using IRowSink sink = options.Format switch
                {
                    ExportFormat.Parquet => await ParquetSink.CreateAsync(stream, cancellationToken).ConfigureAwait(false),
                    ExportFormat.Csv => new TextSink(stream, csv: true),
                    _ => new TextSink(stream, csv: false),
                };
                using var connection = new DuckDBConnection("DataSource=:memory:");
                connection.Open();
                for (int f = 0; f < files.Count; f++)
                {
                    string file = files[f];
                    using DbCommand command = connection.CreateCommand();
                    command.CommandText = $"{ArchiveFiles.Select([file], rowNumbers: true)}{Where(options)} ORDER BY file_row_number";
                    DbDataReader reader = ArchiveFiles.ReadFile(command, file);
                    using (reader)
                    {
                        int rowNumber = reader.GetOrdinal("file_row_number");
                        int tensor = reader.GetOrdinal("tensor");
                        while (true)
                        {
                            long row = -1;
                            try
                            {
                                if (!reader.Read())
                                {
                                    break;
                                }

                                row = reader.GetInt64(rowNumber);
                                read++;
                                if (options.Tensor is { } pattern && !pattern.IsMatch(reader.GetString(tensor)))
                                {
                                    continue;
                                }

                                await sink.AddAsync(reader, cancellationToken).ConfigureAwait(false);
                                written++;
                            }
                            catch (Exception ex) when (ex is DuckDBException or InvalidCastException or FormatException or OverflowException or IndexOutOfRangeException or ArgumentException)
                            {
                                throw new ArchiveReadException(row < 0 ? $"{file}: {ex.Message}" : $"{file} row {row.ToString(CultureInfo.InvariantCulture)}: {ex.Message}", ex);
                            }

                            if (Stopwatch.GetTimestamp() > nextReport)
                            {
                                nextReport = Stopwatch.GetTimestamp() + Stopwatch.Frequency;
                                progress?.Report(new ExportProgress(f, files.Count, read, written));
                            }
                        }
                    }

                    cancellationToken.ThrowIfCancellationRequested();
                    progress?.Report(new ExportProgress(f + 1, files.Count, read, written));
                }

                await sink.CompleteAsync(cancellationToken).ConfigureAwait(false);
                stream.Flush(flushToDisk: true);
            }

            File.Move(temporary, output, overwrite: true);
            return written;
        }
        finally
        {
            if (File.Exists(temporary))
            {
                File.Delete(temporary);
            }
        }
    }

    /// <summary>The filters DuckDB applies (the tensor pattern is applied here, with .NET's regular expressions).</summary>
    private static string Where(ArchiveExportOptions options)
    {
        var conditions = new List<string>();
        if (options.Run is { } run)
        {
            conditions.Add("run_id = " + ArchiveFiles.Literal(run));
        }

        if (options.Rank is { } rank)
        {
            conditions.Add(string.Create(CultureInfo.InvariantCulture, $"rank = {rank}"));
        }

        if (options.FirstStep is { } first)
        {
            conditions.Add(string.Create(CultureInfo.InvariantCulture, $"step >= {first}"));
        }

        if (options.EndStep is { } end)
        {
            conditions.Add(string.Create(CultureInfo.InvariantCulture, $"step < {end}"));
        }

        return conditions.Count == 0 ? "" : " WHERE " + string.Join(" AND ", conditions);
    }

    private interface IRowSink : IAsyncDisposable
    {
        ValueTask AddAsync(DbDataReader reader, CancellationToken cancellationToken);

        Task CompleteAsync(CancellationToken cancellationToken);
    }

    private sealed class ParquetSink(ParquetWriter writer) : IRowSink
    {
        private readonly ArchiveBatch _batch = new();
        private bool _disposed;

        public static async Task<ParquetSink> CreateAsync(Stream stream, CancellationToken cancellationToken) =>
            new(await ParquetWriter.CreateAsync(ArchiveSchema.Parquet, stream, ArchiveSchema.WriterOptions(CompressionMethod.Snappy), cancellationToken: cancellationToken).ConfigureAwait(false));

        public async ValueTask AddAsync(DbDataReader reader, CancellationToken cancellationToken)
        {
            _batch.Add(reader);
            if (_batch.Rows >= RowGroupRows)
            {
                await _batch.WriteAsync(writer, cancellationToken).ConfigureAwait(false);
                _batch.Clear();
            }
        }

        public async Task CompleteAsync(CancellationToken cancellationToken)
        {
            if (_batch.Rows > 0)
            {
                await _batch.WriteAsync(writer, cancellationToken).ConfigureAwait(false);
            }

            await DisposeAsync().ConfigureAwait(false);
        }

        public async ValueTask DisposeAsync()
        {
            if (!_disposed)
            {
                _disposed = true;
                await writer.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private sealed class TextSink(Stream stream, bool csv) : IRowSink
    {
        private readonly StreamWriter _writer = new(stream, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false), 1 << 16, leaveOpen: true) { NewLine = "\n" };
        private readonly StringBuilder _line = new();
        private bool _headerWritten;

        public async ValueTask AddAsync(DbDataReader reader, CancellationToken cancellationToken)
        {
            if (csv && !_headerWritten)
            {
                await _writer.WriteLineAsync(string.Join(",", ArchiveSchema.Columns.Select(c => c.Name))).ConfigureAwait(false);
                _headerWritten = true;
            }

            _line.Clear();
            if (!csv)
            {
                _line.Append('{');
            }

            for (int i = 0; i < ArchiveSchema.Columns.Count; i++)
            {
                string name = ArchiveSchema.Columns[i].Name;
                int ordinal = reader.GetOrdinal(name);
                object? value = reader.IsDBNull(ordinal) ? null : reader.GetValue(ordinal);
                if (csv)
                {
                    _line.Append(i == 0 ? "" : ",").Append(value is null ? "" : Csv(value));
                }
                else
                {
                    _line.Append(i == 0 ? "" : ",").Append(ValueText.JsonString(name)).Append(':').Append(ValueText.Json(value));
                }
            }

            if (!csv)
            {
                _line.Append('}');
            }

            await _writer.WriteLineAsync(_line, cancellationToken).ConfigureAwait(false);
        }

        public async Task CompleteAsync(CancellationToken cancellationToken)
        {
            if (csv && !_headerWritten)
            {
                await _writer.WriteLineAsync(string.Join(",", ArchiveSchema.Columns.Select(c => c.Name))).ConfigureAwait(false);
            }

            await _writer.FlushAsync(cancellationToken).ConfigureAwait(false);
        }

        public ValueTask DisposeAsync() => _writer.DisposeAsync();

        private static string Csv(object value)
        {
            string text = ValueText.Plain(value);
            return text.AsSpan().IndexOfAny(",\"\n\r") >= 0 ? "\"" + text.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : text;
        }
    }
}
