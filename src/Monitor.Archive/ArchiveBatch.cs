using System.Data.Common;
using Google.Protobuf.Collections;
using Monitor.Contracts;
using Monitor.Contracts.V1;
using Parquet;
using Parquet.Schema;

namespace Monitor.Archive;

/// <summary>
/// Rows of the archive's table held column by column until they are written as one Parquet row group.
/// </summary>
/// <remarks>Not thread-safe. Buffers are kept between row groups (<see cref="Clear"/>), so a steady stream of rows
/// allocates only when a row group is larger than any before it.</remarks>
internal sealed class ArchiveBatch
{
    private readonly Column<string> _runId = new();
    private readonly Column<int> _rank = new();
    private readonly Column<int> _worldSize = new();
    private readonly Column<long> _step = new();
    private readonly Column<string> _mode = new();
    private readonly Column<long> _eventTime = new();
    private readonly Column<long> _sequence = new();
    private readonly Column<long> _selectionVersion = new();
    private readonly Column<bool> _atBegin = new();
    private readonly Column<long> _droppedBefore = new();
    private readonly Column<string> _tensor = new();
    private readonly Column<string> _collections = new();
    private readonly Column<string> _dtype = new();
    private readonly ListColumn<long> _shape = new();
    private readonly Column<long?> _count = new();
    private readonly Column<double?> _min = new();
    private readonly Column<double?> _max = new();
    private readonly Column<double?> _mean = new();
    private readonly Column<double?> _variance = new();
    private readonly Column<double?> _l1 = new();
    private readonly Column<double?> _l2 = new();
    private readonly Column<double?> _absMean = new();
    private readonly Column<long?> _zeroCount = new();
    private readonly Column<long?> _nanCount = new();
    private readonly Column<long?> _infCount = new();
    private readonly Column<string?> _histogramLayout = new();
    private readonly Column<int?> _histogramFirstBucket = new();
    private readonly ListColumn<double> _histogramEdges = new();
    private readonly ListColumn<long> _histogramCounts = new();
    private readonly Column<long?> _histogramSampledCount = new();
    private readonly ListColumn<float> _rawValues = new();
    private readonly Column<long?> _rawTotal = new();
    private readonly Column<bool?> _rawTruncated = new();
    private readonly Column<int?> _rawSampleRows = new();
    private readonly Column<string?> _featureNames = new();

    // Tensor names and run ids of earlier rows: a row keeps the pooled string, so the decoded record's own copy dies
    // young instead of being promoted with the buffered rows (most of the archiver's garbage-collection cost).
    // Kept across Clear (a rank's names repeat every step), dropped when it grows past the bound.
    private readonly Dictionary<string, string> _strings = new(StringComparer.Ordinal);
    private const int MaxPooledStrings = 65_536;

    /// <summary>Rows held.</summary>
    public int Rows => _tensor.Count;

    /// <summary>Rough bytes the rows hold in memory (for the open files' memory bound).</summary>
    public long ApproximateBytes { get; private set; }

    /// <summary>Bytes of the column buffers allocated (held between row groups, for the pool's bound).</summary>
    public long CapacityBytes
    {
        get
        {
            long bytes = 0;
            foreach (IClearable column in Columns())
            {
                bytes += column.CapacityBytes;
            }

            return bytes;
        }
    }

    /// <summary>Adds one row per tensor of <paramref name="record"/>.</summary>
    public void Add(StepRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        string mode = ModeName(record.Mode);
        string run = Pooled(record.RunId);
        foreach (TensorRecord tensor in record.Tensors)
        {
            _runId.Add(run);
            _rank.Add((int)record.Rank);
            _worldSize.Add((int)record.WorldSize);
            _step.Add(record.Step);
            _mode.Add(mode);
            _eventTime.Add(record.EventTimeUnixNanos);
            _sequence.Add((long)record.Sequence);
            _selectionVersion.Add(record.SelectionVersion);
            _atBegin.Add(record.AtBegin);
            _droppedBefore.Add((long)record.DroppedBefore);
            _tensor.Add(Pooled(tensor.Name));
            _collections.Add(CollectionsOf(tensor));
            _dtype.Add(DtypeName(tensor.Dtype));
            _shape.Add(tensor.Shape);
            TensorSummary? s = tensor.Summary;
            _count.Add(s is null ? null : (long)s.Count);
            _min.Add(s?.Min);
            _max.Add(s?.Max);
            _mean.Add(s?.Mean);
            _variance.Add(s?.Variance);
            _l1.Add(s?.L1);
            _l2.Add(s?.L2);
            _absMean.Add(s?.AbsMean);
            _zeroCount.Add(s is null ? null : (long)s.ZeroCount);
            _nanCount.Add(s is null ? null : (long)s.NanCount);
            _infCount.Add(s is null ? null : (long)s.InfCount);
            long bytes = 200 + (tensor.Name.Length * 2);
            if (s?.Histogram is { } histogram)
            {
                _histogramLayout.Add(histogram.Layout == HistogramLayout.Log2Magnitude ? "log2_magnitude" : "explicit");
                _histogramFirstBucket.Add((int)histogram.FirstBucket);
                int first = (int)histogram.FirstBucket;
                int buckets = histogram.Counts.Count;
                if (histogram.Layout == HistogramLayout.Log2Magnitude)
                {
                    // Fixed by the layout: written by the readers (ArchiveFiles.Select), not stored 31 doubles a row.
                    _histogramEdges.AddNull();
                }
                else
                {
                    // The edges of the buckets that were sent: counts[i] spans edges[i]..edges[i+1].
                    ReadOnlySpan<double> edges = HistogramEdges.Of(histogram);
                    _histogramEdges.Add(edges.Length >= first + buckets + 1 ? edges.Slice(first, buckets + 1) : []);
                    bytes += (buckets + 1) * 16L;
                }

                _histogramCounts.Add(histogram.Counts, static count => (long)count);
                _histogramSampledCount.Add((long)histogram.SampledCount);
                bytes += buckets * 16L;
            }
            else
            {
                _histogramLayout.Add(null);
                _histogramFirstBucket.Add(null);
                _histogramEdges.AddNull();
                _histogramCounts.AddNull();
                _histogramSampledCount.Add(null);
            }

            if (tensor.Raw is { } raw)
            {
                ReadOnlySpan<byte> le = raw.Float32Le.Span;
                _rawValues.Add(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(le[..(le.Length / 4 * 4)]));
                _rawTotal.Add((long)raw.TotalElements);
                _rawTruncated.Add(raw.Truncated);
                _rawSampleRows.Add((int)raw.SampleRows);
                bytes += le.Length;
            }
            else
            {
                _rawValues.AddNull();
                _rawTotal.Add(null);
                _rawTruncated.Add(null);
                _rawSampleRows.Add(null);
            }

            _featureNames.Add(tensor.FeatureNames.Count == 0 ? null : string.Join(',', tensor.FeatureNames));
            ApproximateBytes += bytes;
        }
    }

    /// <summary>Adds the current row of <paramref name="reader"/>, a query over archive files (columns by name).</summary>
    /// <exception cref="InvalidCastException">A column has a value of another type than the schema's.</exception>
    /// <exception cref="IndexOutOfRangeException">A column is missing.</exception>
    public void Add(DbDataReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        _runId.Add(reader.GetString(reader.GetOrdinal("run_id")));
        _rank.Add(Convert.ToInt32(reader.GetValue(reader.GetOrdinal("rank")), System.Globalization.CultureInfo.InvariantCulture));
        _worldSize.Add(Convert.ToInt32(reader.GetValue(reader.GetOrdinal("world_size")), System.Globalization.CultureInfo.InvariantCulture));
        _step.Add(reader.GetInt64(reader.GetOrdinal("step")));
        _mode.Add(reader.GetString(reader.GetOrdinal("mode")));
        _eventTime.Add(reader.GetInt64(reader.GetOrdinal("event_time_unix_nanos")));
        _sequence.Add(reader.GetInt64(reader.GetOrdinal("sequence")));
        _selectionVersion.Add(reader.GetInt64(reader.GetOrdinal("selection_version")));
        _atBegin.Add(reader.GetBoolean(reader.GetOrdinal("at_begin")));
        _droppedBefore.Add(reader.GetInt64(reader.GetOrdinal("dropped_before")));
        _tensor.Add(reader.GetString(reader.GetOrdinal("tensor")));
        _collections.Add(reader.GetString(reader.GetOrdinal("collections")));
        _dtype.Add(reader.GetString(reader.GetOrdinal("dtype")));
        _shape.Add(List<long>(reader, "shape"));
        _count.Add(Nullable<long>(reader, "count"));
        _min.Add(Nullable<double>(reader, "min"));
        _max.Add(Nullable<double>(reader, "max"));
        _mean.Add(Nullable<double>(reader, "mean"));
        _variance.Add(Nullable<double>(reader, "variance"));
        _l1.Add(Nullable<double>(reader, "l1"));
        _l2.Add(Nullable<double>(reader, "l2"));
        _absMean.Add(Nullable<double>(reader, "abs_mean"));
        _zeroCount.Add(Nullable<long>(reader, "zero_count"));
        _nanCount.Add(Nullable<long>(reader, "nan_count"));
        _infCount.Add(Nullable<long>(reader, "inf_count"));
        _histogramLayout.Add(reader.IsDBNull(reader.GetOrdinal("histogram_layout")) ? null : reader.GetString(reader.GetOrdinal("histogram_layout")));
        _histogramFirstBucket.Add(Nullable<int>(reader, "histogram_first_bucket"));
        _histogramEdges.Add(List<double>(reader, "histogram_edges"));
        _histogramCounts.Add(List<long>(reader, "histogram_counts"));
        _histogramSampledCount.Add(OptionalNullable<long>(reader, "histogram_sampled_count"));
        _rawValues.Add(List<float>(reader, "raw_values"));
        _rawTotal.Add(Nullable<long>(reader, "raw_total_elements"));
        _rawTruncated.Add(Nullable<bool>(reader, "raw_truncated"));
        _rawSampleRows.Add(Nullable<int>(reader, "raw_sample_rows"));
        _featureNames.Add(reader.IsDBNull(reader.GetOrdinal("feature_names")) ? null : reader.GetString(reader.GetOrdinal("feature_names")));
        ApproximateBytes += 300;
    }

    /// <summary>Writes the rows as one row group, columns in schema order.</summary>
    public async Task WriteAsync(ParquetWriter writer, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(writer);
        using ParquetRowGroupWriter group = writer.CreateRowGroup();
        await group.WriteAsync(ArchiveSchema.RunId, _runId.AsCollection()).ConfigureAwait(false);
        await Write(group, ArchiveSchema.Rank, _rank, cancellationToken).ConfigureAwait(false);
        await Write(group, ArchiveSchema.WorldSize, _worldSize, cancellationToken).ConfigureAwait(false);
        await Write(group, ArchiveSchema.Step, _step, cancellationToken).ConfigureAwait(false);
        await group.WriteAsync(ArchiveSchema.Mode, _mode.AsCollection()).ConfigureAwait(false);
        await Write(group, ArchiveSchema.EventTimeUnixNanos, _eventTime, cancellationToken).ConfigureAwait(false);
        await Write(group, ArchiveSchema.Sequence, _sequence, cancellationToken).ConfigureAwait(false);
        await Write(group, ArchiveSchema.SelectionVersion, _selectionVersion, cancellationToken).ConfigureAwait(false);
        await Write(group, ArchiveSchema.AtBegin, _atBegin, cancellationToken).ConfigureAwait(false);
        await Write(group, ArchiveSchema.DroppedBefore, _droppedBefore, cancellationToken).ConfigureAwait(false);
        await group.WriteAsync(ArchiveSchema.Tensor, _tensor.AsCollection()).ConfigureAwait(false);
        await group.WriteAsync(ArchiveSchema.Collections, _collections.AsCollection()).ConfigureAwait(false);
        await group.WriteAsync(ArchiveSchema.Dtype, _dtype.AsCollection()).ConfigureAwait(false);
        await _shape.WriteAsync(group, ArchiveSchema.ShapeElement, cancellationToken).ConfigureAwait(false);
        await WriteNullable(group, ArchiveSchema.Count, _count, cancellationToken).ConfigureAwait(false);
        await WriteNullable(group, ArchiveSchema.Min, _min, cancellationToken).ConfigureAwait(false);
        await WriteNullable(group, ArchiveSchema.Max, _max, cancellationToken).ConfigureAwait(false);
        await WriteNullable(group, ArchiveSchema.Mean, _mean, cancellationToken).ConfigureAwait(false);
        await WriteNullable(group, ArchiveSchema.Variance, _variance, cancellationToken).ConfigureAwait(false);
        await WriteNullable(group, ArchiveSchema.L1, _l1, cancellationToken).ConfigureAwait(false);
        await WriteNullable(group, ArchiveSchema.L2, _l2, cancellationToken).ConfigureAwait(false);
        await WriteNullable(group, ArchiveSchema.AbsMean, _absMean, cancellationToken).ConfigureAwait(false);
        await WriteNullable(group, ArchiveSchema.ZeroCount, _zeroCount, cancellationToken).ConfigureAwait(false);
        await WriteNullable(group, ArchiveSchema.NanCount, _nanCount, cancellationToken).ConfigureAwait(false);
        await WriteNullable(group, ArchiveSchema.InfCount, _infCount, cancellationToken).ConfigureAwait(false);
        await group.WriteAsync(ArchiveSchema.HistogramLayout, _histogramLayout.AsCollection()).ConfigureAwait(false);
        await WriteNullable(group, ArchiveSchema.HistogramFirstBucket, _histogramFirstBucket, cancellationToken).ConfigureAwait(false);
        await _histogramEdges.WriteAsync(group, ArchiveSchema.HistogramEdgesElement, cancellationToken).ConfigureAwait(false);
        await _histogramCounts.WriteAsync(group, ArchiveSchema.HistogramCountsElement, cancellationToken).ConfigureAwait(false);
        await _rawValues.WriteAsync(group, ArchiveSchema.RawValuesElement, cancellationToken).ConfigureAwait(false);
        await WriteNullable(group, ArchiveSchema.RawTotalElements, _rawTotal, cancellationToken).ConfigureAwait(false);
        await WriteNullable(group, ArchiveSchema.RawTruncated, _rawTruncated, cancellationToken).ConfigureAwait(false);
        await WriteNullable(group, ArchiveSchema.RawSampleRows, _rawSampleRows, cancellationToken).ConfigureAwait(false);
        await group.WriteAsync(ArchiveSchema.FeatureNames, _featureNames.AsCollection()).ConfigureAwait(false);
        await WriteNullable(group, ArchiveSchema.HistogramSampledCount, _histogramSampledCount, cancellationToken).ConfigureAwait(false);
        group.CompleteValidate();
    }

    /// <summary>Forgets the rows, keeping the buffers.</summary>
    public void Clear()
    {
        foreach (IClearable column in Columns())
        {
            column.Clear();
        }

        ApproximateBytes = 0;
    }

    private IClearable[] Columns() =>
    [
        _runId, _rank, _worldSize, _step, _mode, _eventTime, _sequence, _selectionVersion, _atBegin, _droppedBefore,
        _tensor, _collections, _dtype, _shape, _count, _min, _max, _mean, _variance, _l1, _l2, _absMean, _zeroCount,
        _nanCount, _infCount, _histogramLayout, _histogramFirstBucket, _histogramEdges, _histogramCounts, _rawValues,
        _rawTotal, _rawTruncated, _rawSampleRows, _featureNames, _histogramSampledCount,
    ];

    /// <summary>The name <c>mode</c> holds for a wire mode.</summary>
    public static string ModeName(Mode mode) => mode switch
    {
        Mode.Train => "train",
        Mode.Eval => "eval",
        Mode.Predict => "predict",
        _ => "unspecified",
    };

    /// <summary>The name <c>dtype</c> holds for a wire dtype.</summary>
    public static string DtypeName(DType dtype) => dtype switch
    {
        DType.Float32 => "float32",
        DType.Float64 => "float64",
        DType.Float16 => "float16",
        DType.Bfloat16 => "bfloat16",
        DType.Int8 => "int8",
        DType.Int16 => "int16",
        DType.Int32 => "int32",
        DType.Int64 => "int64",
        DType.Uint8 => "uint8",
        DType.Bool => "bool",
        _ => "unspecified",
    };

    private string Pooled(string value)
    {
        if (_strings.TryGetValue(value, out string? pooled))
        {
            return pooled;
        }

        if (_strings.Count >= MaxPooledStrings)
        {
            _strings.Clear();
        }

        _strings.Add(value, value);
        return value;
    }

    private static string CollectionsOf(TensorRecord tensor)
    {
        if (tensor.Collections.Count == 1 && tensor.CustomCollections.Count == 0)
        {
            return CollectionNames.NameOf(tensor.Collections[0]);
        }

        return string.Join(',', tensor.Collections.Select(CollectionNames.NameOf).Concat(tensor.CustomCollections));
    }

    /// <summary>A nullable column of the current row of a query over archive files.</summary>
    internal static T? Nullable<T>(DbDataReader reader, string column)
        where T : struct
    {
        int ordinal = reader.GetOrdinal(column);
        return reader.IsDBNull(ordinal) ? null : (T)Convert.ChangeType(reader.GetValue(ordinal), typeof(T), System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>As <see cref="Nullable{T}"/>, and null when the query has no such column (files written before it).</summary>
    internal static T? OptionalNullable<T>(DbDataReader reader, string column)
        where T : struct
    {
        for (int i = reader.FieldCount - 1; i >= 0; i--)
        {
            if (reader.GetName(i) == column)
            {
                return Nullable<T>(reader, column);
            }
        }

        return null;
    }

    /// <summary>A list column of the current row of a query over archive files; null for a null list.</summary>
    internal static T[]? List<T>(DbDataReader reader, string column)
        where T : struct
    {
        int ordinal = reader.GetOrdinal(column);
        if (reader.IsDBNull(ordinal))
        {
            return null;
        }

        var items = new List<T>();
        foreach (object? item in (System.Collections.IEnumerable)reader.GetValue(ordinal))
        {
            items.Add((T)Convert.ChangeType(item!, typeof(T), System.Globalization.CultureInfo.InvariantCulture));
        }

        return [.. items];
    }

    private static Task Write<T>(ParquetRowGroupWriter group, DataField field, Column<T> column, CancellationToken cancellationToken)
        where T : struct =>
        group.WriteAsync<T>(field, column.AsMemory(), null, null, cancellationToken);

    private static Task WriteNullable<T>(ParquetRowGroupWriter group, DataField field, Column<T?> column, CancellationToken cancellationToken)
        where T : struct =>
        group.WriteAsync<T>(field, column.AsMemory(), null, null, cancellationToken);

    private interface IClearable
    {
        long CapacityBytes { get; }

        void Clear();
    }

    /// <summary>A growable array of one column's values.</summary>
    private sealed class Column<T> : IClearable
    {
        private T[] _items = new T[256];

        public int Count { get; private set; }

        public void Add(T item)
        {
            if (Count == _items.Length)
            {
                Array.Resize(ref _items, _items.Length * 2);
            }

            _items[Count++] = item;
        }

        public void AddRange(ReadOnlySpan<T> items) => items.CopyTo(Append(items.Length));

        public long CapacityBytes => (long)_items.Length * System.Runtime.CompilerServices.Unsafe.SizeOf<T>();

        /// <summary>Room for <paramref name="count"/> more items, as a span to fill, counted as added.</summary>
        public Span<T> Append(int count)
        {
            if (Count + count > _items.Length)
            {
                Array.Resize(ref _items, Math.Max(_items.Length * 2, Count + count));
            }

            Span<T> room = _items.AsSpan(Count, count);
            Count += count;
            return room;
        }

        public ReadOnlyMemory<T> AsMemory() => _items.AsMemory(0, Count);

        public ArraySegment<T> AsCollection() => new ArraySegment<T>(_items, 0, Count);

        public void Clear()
        {
            // References are dropped so that strings of old rows can be collected.
            if (!typeof(T).IsValueType)
            {
                Array.Clear(_items, 0, Count);
            }

            Count = 0;
        }
    }

    /// <summary>
    /// An optional list column as Parquet stores it (Dremel levels): definition level 0 is a null list, 1 an empty
    /// one, 2 an element; repetition level 0 starts a row's list, 1 continues it.
    /// </summary>
    private sealed class ListColumn<T> : IClearable
        where T : struct
    {
        private readonly Column<T> _values = new();
        private readonly Column<int> _definitions = new();
        private readonly Column<int> _repetitions = new();

        public void AddNull()
        {
            _definitions.Add(0);
            _repetitions.Add(0);
        }

        public void Add(ReadOnlySpan<T> items)
        {
            if (items.IsEmpty)
            {
                _definitions.Add(1);
                _repetitions.Add(0);
                return;
            }

            _values.AddRange(items);
            AddLevels(items.Length);
        }

        public void Add(T[]? items)
        {
            if (items is null)
            {
                AddNull();
            }
            else
            {
                Add((ReadOnlySpan<T>)items);
            }
        }

        public void Add(RepeatedField<T> items) => Add(items, static item => item);

        public void Add<TSource>(RepeatedField<TSource> items, Func<TSource, T> convert)
        {
            if (items.Count == 0)
            {
                Add(ReadOnlySpan<T>.Empty);
                return;
            }

            Span<T> values = _values.Append(items.Count);
            for (int i = 0; i < values.Length; i++)
            {
                values[i] = convert(items[i]);
            }

            AddLevels(items.Count);
        }

        public long CapacityBytes => _values.CapacityBytes + _definitions.CapacityBytes + _repetitions.CapacityBytes;

        // Levels of a non-empty list of `count` elements: every element defined, the first starts the row's list.
        private void AddLevels(int count)
        {
            _definitions.Append(count).Fill(2);
            Span<int> repetitions = _repetitions.Append(count);
            repetitions[0] = 0;
            repetitions[1..].Fill(1);
        }

        public Task WriteAsync(ParquetRowGroupWriter group, DataField element, CancellationToken cancellationToken) =>
            group.WriteAllPartsAsync<T>(element, _values.AsMemory(), _definitions.AsMemory(), _repetitions.AsMemory(), cancellationToken);

        public void Clear()
        {
            _values.Clear();
            _definitions.Clear();
            _repetitions.Clear();
        }
    }
}
