using Parquet;
using Parquet.Schema;

namespace Monitor.Archive;

/// <summary>One column of the archive's table: its Parquet field and what it holds (the README's column table).</summary>
/// <param name="Name">Column name.</param>
/// <param name="Type">Type as pandas/DuckDB readers see it, e.g. <c>int64</c>, <c>list&lt;double&gt;</c>.</param>
/// <param name="Description">What the column holds, for people.</param>
public sealed record ArchiveColumn(string Name, string Type, string Description);

/// <summary>
/// The archive's table: one row per (run, rank, step, mode, tensor) of every step record, with every summary field,
/// the histogram and the raw values when traced. The archive's files and the Parquet files of <c>monitor export</c>
/// share this schema; CSV and JSON-lines exports have the same columns, lists written as JSON arrays.
/// </summary>
/// <remarks>Columns are only ever added at the end (readers use <c>union_by_name</c>), never renamed or retyped.</remarks>
public static class ArchiveSchema
{
    internal static readonly DataField<string> RunId = new("run_id", nullable: false);
    internal static readonly DataField<int> Rank = new("rank", nullable: false);
    internal static readonly DataField<int> WorldSize = new("world_size", nullable: false);
    internal static readonly DataField<long> Step = new("step", nullable: false);
    internal static readonly DataField<string> Mode = new("mode", nullable: false);
    internal static readonly DataField<long> EventTimeUnixNanos = new("event_time_unix_nanos", nullable: false);
    internal static readonly DataField<long> Sequence = new("sequence", nullable: false);
    internal static readonly DataField<long> SelectionVersion = new("selection_version", nullable: false);
    internal static readonly DataField<bool> AtBegin = new("at_begin", nullable: false);
    internal static readonly DataField<long> DroppedBefore = new("dropped_before", nullable: false);
    internal static readonly DataField<string> Tensor = new("tensor", nullable: false);
    internal static readonly DataField<string> Collections = new("collections", nullable: false);
    internal static readonly DataField<string> Dtype = new("dtype", nullable: false);
    internal static readonly DataField<long> ShapeElement = new("element", nullable: false);
    internal static readonly ListField Shape = new("shape", ShapeElement);
    internal static readonly DataField<long?> Count = new("count", nullable: true);
    internal static readonly DataField<double?> Min = new("min", nullable: true);
    internal static readonly DataField<double?> Max = new("max", nullable: true);
    internal static readonly DataField<double?> Mean = new("mean", nullable: true);
    internal static readonly DataField<double?> Variance = new("variance", nullable: true);
    internal static readonly DataField<double?> L1 = new("l1", nullable: true);
    internal static readonly DataField<double?> L2 = new("l2", nullable: true);
    internal static readonly DataField<double?> AbsMean = new("abs_mean", nullable: true);
    internal static readonly DataField<long?> ZeroCount = new("zero_count", nullable: true);
    internal static readonly DataField<long?> NanCount = new("nan_count", nullable: true);
    internal static readonly DataField<long?> InfCount = new("inf_count", nullable: true);
    internal static readonly DataField<string> HistogramLayout = new("histogram_layout", nullable: true);
    internal static readonly DataField<int?> HistogramFirstBucket = new("histogram_first_bucket", nullable: true);
    internal static readonly DataField<double> HistogramEdgesElement = new("element", nullable: false);
    internal static readonly ListField HistogramEdges = new("histogram_edges", HistogramEdgesElement);
    internal static readonly DataField<long> HistogramCountsElement = new("element", nullable: false);
    internal static readonly ListField HistogramCounts = new("histogram_counts", HistogramCountsElement);
    internal static readonly DataField<float> RawValuesElement = new("element", nullable: false);
    internal static readonly ListField RawValues = new("raw_values", RawValuesElement);
    internal static readonly DataField<long?> RawTotalElements = new("raw_total_elements", nullable: true);
    internal static readonly DataField<bool?> RawTruncated = new("raw_truncated", nullable: true);
    internal static readonly DataField<int?> RawSampleRows = new("raw_sample_rows", nullable: true);
    internal static readonly DataField<string> FeatureNames = new("feature_names", nullable: true);
    internal static readonly DataField<long?> HistogramSampledCount = new("histogram_sampled_count", nullable: true);

    /// <summary>The Parquet schema, columns in the order of <see cref="Columns"/>.</summary>
    internal static ParquetSchema Parquet { get; } = new(
        RunId, Rank, WorldSize, Step, Mode, EventTimeUnixNanos, Sequence, SelectionVersion, AtBegin, DroppedBefore,
        Tensor, Collections, Dtype, Shape, Count, Min, Max, Mean, Variance, L1, L2, AbsMean, ZeroCount, NanCount, InfCount,
        HistogramLayout, HistogramFirstBucket, HistogramEdges, HistogramCounts, RawValues, RawTotalElements, RawTruncated,
        RawSampleRows, FeatureNames, HistogramSampledCount);

    /// <summary>
    /// How the archive's files and <c>monitor export</c>'s Parquet files are encoded: the string columns that repeat
    /// within a row group (run, mode, tensor, collections, dtype, histogram layout) as dictionaries, and the histogram
    /// counts delta-binary-packed (both standard Parquet encodings that pyarrow, DuckDB and Spark read). Against plain
    /// encoding that took the archive from 199 to 132 bytes per tensor-step and about a third off its encoding time
    /// (tests/Monitor.Benchmarks/README.md, "Archive write path").
    /// </summary>
    internal static ParquetOptions WriterOptions(CompressionMethod compression)
    {
        var options = new ParquetOptions { CompressionMethod = compression };
        foreach (DataField repeating in (DataField[])[RunId, Mode, Tensor, Collections, Dtype, HistogramLayout])
        {
            options.ColumnEncodingHints[repeating.Path.ToString()] = EncodingHint.Dictionary;
        }

        options.ColumnEncodingHints[HistogramCountsElement.Path.ToString()] = EncodingHint.DeltaBinaryPacked;
        return options;
    }

    /// <summary>Every column, in file order, with its type and meaning.</summary>
    public static IReadOnlyList<ArchiveColumn> Columns { get; } =
    [
        new("run_id", "string", "Run id."),
        new("rank", "int32", "Data-parallel rank."),
        new("world_size", "int32", "Ranks in the run."),
        new("step", "int64", "The worker's global step."),
        new("mode", "string", "train, eval, predict or unspecified."),
        new("event_time_unix_nanos", "int64", "When the step ended on the worker, Unix epoch nanoseconds."),
        new("sequence", "int64", "Per (run, rank) record counter from 1; gaps are records lost before the archive."),
        new("selection_version", "int64", "Version of the selection the step was traced under (0: the static one)."),
        new("at_begin", "bool", "True for the one-shot capture taken when a selection takes effect (before the step runs)."),
        new("dropped_before", "int64", "Records the worker dropped before this one."),
        new("tensor", "string", "Tensor name, e.g. fc1.weight.grad."),
        new("collections", "string", "Comma-separated collections (weights, gradients, ...; custom ones by name)."),
        new("dtype", "string", "Element type in the framework: float32, float64, bfloat16, ..."),
        new("shape", "list<int64>", "Dimensions."),
        new("count", "int64", "Elements (finite or not); null when the record had no summary."),
        new("min", "double", "Least finite element."),
        new("max", "double", "Greatest finite element."),
        new("mean", "double", "Mean of the finite elements."),
        new("variance", "double", "Population variance of the finite elements."),
        new("l1", "double", "Sum of |x|."),
        new("l2", "double", "sqrt(sum of x^2)."),
        new("abs_mean", "double", "Mean |x| (for gradients: the mean |gradient|)."),
        new("zero_count", "int64", "Elements equal to 0."),
        new("nan_count", "int64", "NaN elements."),
        new("inf_count", "int64", "+/-Inf elements."),
        new("histogram_layout", "string", "log2_magnitude or explicit; null without a histogram."),
        new("histogram_first_bucket", "int32", "Layout bucket of histogram_counts[0] (named layouts send only the non-empty span)."),
        new("histogram_edges", "list<double>", "Edges of the buckets in histogram_counts (one more than counts; may hold -inf/+inf). Archive files hold them for explicit layouts only; query and export fill them in for log2_magnitude (edge k of the layout: -inf, -2^15, ..., -2^-31, 0, 2^-31, ..., 2^15, +inf)."),
        new("histogram_counts", "list<int64>", "Elements per bucket: bucket i spans histogram_edges[i] to histogram_edges[i+1]."),
        new("raw_values", "list<float>", "Raw element values (float32, row-major, capped by the selection's limitSize); null when not traced."),
        new("raw_total_elements", "int64", "Elements of the tensor when raw values were traced."),
        new("raw_truncated", "bool", "True when raw_values holds fewer than raw_total_elements."),
        new("raw_sample_rows", "int32", "For a batch of examples: the whole examples raw_values holds; 0 otherwise."),
        new("feature_names", "string", "Comma-separated column names of a batch tensor (x0, x1, ...); null otherwise."),
        new("histogram_sampled_count", "int64", "0 when histogram_counts counts every element but NaN; else the elements of the sample it was counted from (its counts sum to this; a bucket's share is its count / this). Null without a histogram and in files written before the column."),
    ];
}
