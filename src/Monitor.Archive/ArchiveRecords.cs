using System.Data.Common;
using System.Globalization;
using System.Runtime.InteropServices;
using DuckDB.NET.Data;
using Google.Protobuf;
using Monitor.Contracts;
using Monitor.Contracts.V1;

namespace Monitor.Archive;

/// <summary>
/// The step records of an archive, rebuilt from its rows: the inverse of what the archive writes, for the trials
/// (<c>Monitor.Trials</c>) and <c>monitor rules run --trial</c>.
/// </summary>
/// <remarks>
/// <para>What comes back is what the archive holds: every field of the record and of each tensor (summary, histogram,
/// raw values, feature names), with <see cref="StepRecord.SchemaVersion"/> set to the current one. Not archived, so
/// never rebuilt: records without tensors (in particular the end-of-run record, <see cref="StepRecord.RunEnd"/>),
/// <see cref="StepRecord.RawPartsTrimmed"/> and <see cref="RawValues.Trimmed"/>. An explicit histogram comes back with
/// the edges of the buckets that were sent and <see cref="Histogram.FirstBucket"/> 0 (the same buckets).</para>
/// <para>Rows of one record are adjacent in a file (a record's rows are written together); a record is the run of
/// adjacent rows with the same run, rank, step, mode, sequence and at-begin flag, and a tensor name seen twice starts
/// the next one (a record archived twice in a row). Records come out file by file (run, rank, then the time each file
/// was opened), each file's in row order; the at-least-once archive may hold a record twice (same sequence).</para>
/// </remarks>
public static class ArchiveRecords
{
    /// <summary>Reads the records of the archive at <paramref name="from"/> (a directory or one Parquet file).</summary>
    /// <param name="from">Archive directory or one archive Parquet file.</param>
    /// <param name="run">Only this run, when given.</param>
    /// <param name="rank">Only this rank, when given.</param>
    /// <param name="cancellationToken">Stops between rows.</param>
    /// <returns>The records, lazily, one file open at a time.</returns>
    /// <exception cref="ArchiveReadException">No archive files, or a file or row cannot be read: the message names the
    /// file (and the row, counted from 0 in that file).</exception>
    public static IEnumerable<StepRecord> Read(string from, string? run = null, int? rank = null, CancellationToken cancellationToken = default)
    {
        IReadOnlyList<string> files = ArchiveFiles.Find(from, run, rank);
        using var connection = new DuckDBConnection("DataSource=:memory:");
        connection.Open();
        foreach (string file in files)
        {
            foreach (StepRecord record in ReadFile(connection, file, run, rank, cancellationToken))
            {
                yield return record;
            }
        }
    }

    private static IEnumerable<StepRecord> ReadFile(DuckDBConnection connection, string file, string? run, int? rank, CancellationToken cancellationToken)
    {
        using DbCommand command = connection.CreateCommand();
        string where = (run is null ? "" : " AND run_id = " + ArchiveFiles.Literal(run))
            + (rank is null ? "" : string.Create(CultureInfo.InvariantCulture, $" AND rank = {rank.Value}"));
        command.CommandText = $"SELECT * EXCLUDE (filename) FROM {ArchiveFiles.ReadParquet([file], rowNumbers: true)} WHERE true{where} ORDER BY file_row_number";
        DbDataReader reader = ArchiveFiles.ReadFile(command, file);
        using (reader)
        {
            StepRecord? current = null;
            var names = new HashSet<string>(StringComparer.Ordinal);
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                long row = -1;
                StepRecord? completed = null;
                try
                {
                    if (!reader.Read())
                    {
                        break;
                    }

                    row = reader.GetInt64(reader.GetOrdinal("file_row_number"));
                    TensorRecord tensor = Tensor(reader);
                    if (current is null || !SameRecord(current, reader) || !names.Add(tensor.Name))
                    {
                        completed = current;
                        current = Record(reader);
                        names.Clear();
                        names.Add(tensor.Name);
                    }

                    current.Tensors.Add(tensor);
                }
                catch (Exception ex) when (ex is DuckDBException or InvalidCastException or FormatException or OverflowException or IndexOutOfRangeException or ArgumentException)
                {
                    throw new ArchiveReadException(row < 0 ? $"{file}: {ex.Message}" : $"{file} row {row.ToString(CultureInfo.InvariantCulture)}: {ex.Message}", ex);
                }

                if (completed is not null)
                {
                    yield return completed;
                }
            }

            if (current is not null)
            {
                yield return current;
            }
        }
    }

    private static bool SameRecord(StepRecord record, DbDataReader reader) =>
        record.Step == reader.GetInt64(reader.GetOrdinal("step"))
        && (long)record.Sequence == reader.GetInt64(reader.GetOrdinal("sequence"))
        && record.Rank == Convert.ToUInt32(reader.GetValue(reader.GetOrdinal("rank")), CultureInfo.InvariantCulture)
        && record.AtBegin == reader.GetBoolean(reader.GetOrdinal("at_begin"))
        && ArchiveBatch.ModeName(record.Mode) == reader.GetString(reader.GetOrdinal("mode"))
        && record.RunId == reader.GetString(reader.GetOrdinal("run_id"));

    private static StepRecord Record(DbDataReader reader) => new()
    {
        SchemaVersion = StepRecordDecoder.CurrentSchemaVersion,
        RunId = reader.GetString(reader.GetOrdinal("run_id")),
        Rank = Convert.ToUInt32(reader.GetValue(reader.GetOrdinal("rank")), CultureInfo.InvariantCulture),
        WorldSize = Convert.ToUInt32(reader.GetValue(reader.GetOrdinal("world_size")), CultureInfo.InvariantCulture),
        Step = reader.GetInt64(reader.GetOrdinal("step")),
        Mode = ModeOf(reader.GetString(reader.GetOrdinal("mode"))),
        EventTimeUnixNanos = reader.GetInt64(reader.GetOrdinal("event_time_unix_nanos")),
        Sequence = checked((ulong)reader.GetInt64(reader.GetOrdinal("sequence"))),
        SelectionVersion = reader.GetInt64(reader.GetOrdinal("selection_version")),
        AtBegin = reader.GetBoolean(reader.GetOrdinal("at_begin")),
        DroppedBefore = checked((ulong)reader.GetInt64(reader.GetOrdinal("dropped_before"))),
    };

    private static TensorRecord Tensor(DbDataReader reader)
    {
        var tensor = new TensorRecord
        {
            Name = reader.GetString(reader.GetOrdinal("tensor")),
            Dtype = DtypeOf(reader.GetString(reader.GetOrdinal("dtype"))),
        };
        foreach (string name in reader.GetString(reader.GetOrdinal("collections")).Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            if (CollectionNames.TryParse(name, out Collection collection))
            {
                tensor.Collections.Add(collection);
            }
            else
            {
                tensor.CustomCollections.Add(name);
            }
        }

        tensor.Shape.AddRange(ArchiveBatch.List<long>(reader, "shape") ?? []);
        if (ArchiveBatch.Nullable<long>(reader, "count") is { } count)
        {
            var summary = new TensorSummary
            {
                Count = checked((ulong)count),
                Min = ArchiveBatch.Nullable<double>(reader, "min") ?? 0,
                Max = ArchiveBatch.Nullable<double>(reader, "max") ?? 0,
                Mean = ArchiveBatch.Nullable<double>(reader, "mean") ?? 0,
                Variance = ArchiveBatch.Nullable<double>(reader, "variance") ?? 0,
                L1 = ArchiveBatch.Nullable<double>(reader, "l1") ?? 0,
                L2 = ArchiveBatch.Nullable<double>(reader, "l2") ?? 0,
                AbsMean = ArchiveBatch.Nullable<double>(reader, "abs_mean") ?? 0,
                ZeroCount = checked((ulong)(ArchiveBatch.Nullable<long>(reader, "zero_count") ?? 0)),
                NanCount = checked((ulong)(ArchiveBatch.Nullable<long>(reader, "nan_count") ?? 0)),
                InfCount = checked((ulong)(ArchiveBatch.Nullable<long>(reader, "inf_count") ?? 0)),
            };
            int layoutColumn = reader.GetOrdinal("histogram_layout");
            if (!reader.IsDBNull(layoutColumn))
            {
                var histogram = new Histogram();
                if (reader.GetString(layoutColumn) == "log2_magnitude")
                {
                    histogram.Layout = HistogramLayout.Log2Magnitude;
                    histogram.FirstBucket = checked((uint)(ArchiveBatch.Nullable<int>(reader, "histogram_first_bucket") ?? 0));
                }
                else
                {
                    histogram.Layout = HistogramLayout.Explicit;
                    histogram.Edges.AddRange(ArchiveBatch.List<double>(reader, "histogram_edges") ?? []);
                }

                foreach (long bucket in ArchiveBatch.List<long>(reader, "histogram_counts") ?? [])
                {
                    histogram.Counts.Add(checked((ulong)bucket));
                }

                histogram.SampledCount = checked((ulong)(ArchiveBatch.OptionalNullable<long>(reader, "histogram_sampled_count") ?? 0));

                summary.Histogram = histogram;
            }

            tensor.Summary = summary;
        }

        if (ArchiveBatch.List<float>(reader, "raw_values") is { } values)
        {
            tensor.Raw = new RawValues
            {
                Float32Le = ByteString.CopyFrom(MemoryMarshal.AsBytes(values.AsSpan())),
                TotalElements = checked((ulong)(ArchiveBatch.Nullable<long>(reader, "raw_total_elements") ?? values.Length)),
                Truncated = ArchiveBatch.Nullable<bool>(reader, "raw_truncated") ?? false,
                SampleRows = checked((uint)(ArchiveBatch.Nullable<int>(reader, "raw_sample_rows") ?? 0)),
            };
        }

        int featureColumn = reader.GetOrdinal("feature_names");
        if (!reader.IsDBNull(featureColumn))
        {
            tensor.FeatureNames.AddRange(reader.GetString(featureColumn).Split(','));
        }

        return tensor;
    }

    /// <summary>The wire mode of a <c>mode</c> column value (<see cref="ArchiveBatch.ModeName"/>'s inverse).</summary>
    internal static Mode ModeOf(string name) => name switch
    {
        "train" => Mode.Train,
        "eval" => Mode.Eval,
        "predict" => Mode.Predict,
        _ => Mode.Unspecified,
    };

    private static DType DtypeOf(string name) => name switch
    {
        "float32" => DType.Float32,
        "float64" => DType.Float64,
        "float16" => DType.Float16,
        "bfloat16" => DType.Bfloat16,
        "int8" => DType.Int8,
        "int16" => DType.Int16,
        "int32" => DType.Int32,
        "int64" => DType.Int64,
        "uint8" => DType.Uint8,
        "bool" => DType.Bool,
        _ => DType.Unspecified,
    };
}
