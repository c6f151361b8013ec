using System.Diagnostics.CodeAnalysis;
using Google.Protobuf;
using Monitor.Contracts.V1;

namespace Monitor.Contracts;

/// <summary>Why a payload is not a usable step record.</summary>
public enum DecodeErrorKind
{
    /// <summary>Larger than <see cref="StepRecordDecoder.MaxPayloadBytes"/>.</summary>
    TooLarge,

    /// <summary>Not valid protobuf for <see cref="StepRecord"/>.</summary>
    Malformed,

    /// <summary>Written by a newer, incompatible schema version.</summary>
    UnsupportedSchemaVersion,

    /// <summary>Valid protobuf whose content breaks the contract (missing run id, rank outside world size, ...).</summary>
    Invalid,
}

/// <summary>A decode failure: what kind, and a reason meant for people (dead-letter headers, logs).</summary>
/// <param name="Kind">The category, stable for metrics labels.</param>
/// <param name="Reason">Detail naming the offending field or the parser's complaint.</param>
public readonly record struct DecodeError(DecodeErrorKind Kind, string Reason)
{
    /// <inheritdoc />
    public override string ToString() => $"{Kind}: {Reason}";
}

/// <summary>
/// Turns bytes from the wire into a validated <see cref="StepRecord"/>, or into exactly one <see cref="DecodeError"/>.
/// </summary>
/// <remarks>
/// Never throws for any input and never loops on it: the size is checked before parsing, protobuf parsing is
/// linear in the input, and the schema has no recursive messages. Thread-safe (stateless).
/// </remarks>
public static class StepRecordDecoder
{
    /// <summary>The schema version this build writes and the newest it reads.</summary>
    public const uint CurrentSchemaVersion = 1;

    /// <summary>Largest payload accepted: 64 MiB, well above Kafka's 1 MB default message limit, so only a
    /// corrupt or hostile payload is refused for size.</summary>
    public const int MaxPayloadBytes = 64 * 1024 * 1024;

    /// <summary>Decodes and validates one payload.</summary>
    /// <returns>True with <paramref name="record"/> set, or false with <paramref name="error"/> set.</returns>
    public static bool TryDecode(ReadOnlySpan<byte> payload, [NotNullWhen(true)] out StepRecord? record, out DecodeError error)
    {
        record = null;
        if (payload.Length > MaxPayloadBytes)
        {
            error = new DecodeError(DecodeErrorKind.TooLarge, $"payload is {payload.Length} bytes; at most {MaxPayloadBytes} are accepted");
            return false;
        }

        StepRecord parsed;
        try
        {
            parsed = StepRecord.Parser.ParseFrom(payload);
        }
        catch (InvalidProtocolBufferException ex)
        {
            error = new DecodeError(DecodeErrorKind.Malformed, ex.Message);
            return false;
        }
#pragma warning disable CA1031 // The contract is "one typed error for any input"; the parser documents no other exception, so anything else is still malformed input.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            error = new DecodeError(DecodeErrorKind.Malformed, $"{ex.GetType().Name}: {ex.Message}");
            return false;
        }

        string? problem = Validate(parsed, out DecodeErrorKind kind);
        if (problem is not null)
        {
            error = new DecodeError(kind, problem);
            return false;
        }

        record = parsed;
        error = default;
        return true;
    }

    /// <summary>Checks the contract of a record (also used by producers before sending). Null when valid.</summary>
    public static string? Validate(StepRecord record, out DecodeErrorKind kind)
    {
        ArgumentNullException.ThrowIfNull(record);
        kind = DecodeErrorKind.Invalid;
        if (record.SchemaVersion == 0)
        {
            return "schema_version is missing (0)";
        }

        if (record.SchemaVersion > CurrentSchemaVersion)
        {
            kind = DecodeErrorKind.UnsupportedSchemaVersion;
            return $"schema_version {record.SchemaVersion} is newer than {CurrentSchemaVersion}, the newest this reader understands";
        }

        if (RunId.Check(record.RunId) is { } runProblem)
        {
            return "run_id: " + runProblem;
        }

        if (record.WorldSize == 0)
        {
            return "world_size is 0";
        }

        if (record.Rank >= record.WorldSize)
        {
            return $"rank {record.Rank} is outside world_size {record.WorldSize}";
        }

        if (record.Step < 0)
        {
            return $"step {record.Step} is negative";
        }

        if (record.RunEnd is not null && (record.Tensors.Count > 0 || record.AtBegin))
        {
            return "a run_end record carries no tensors and is not at_begin";
        }

        for (int i = 0; i < record.Tensors.Count; i++)
        {
            TensorRecord tensor = record.Tensors[i];
            if (string.IsNullOrEmpty(tensor.Name))
            {
                return $"tensors[{i}].name is empty";
            }

            if (tensor.Summary is { } summary && CheckSummary(summary) is { } summaryProblem)
            {
                return $"tensors[{i}] ('{tensor.Name}').summary: {summaryProblem}";
            }

            if (tensor.Raw is { } raw)
            {
                if (raw.Float32Le.Length % sizeof(float) != 0)
                {
                    return $"tensors[{i}] ('{tensor.Name}').raw: float32_le has {raw.Float32Le.Length} bytes, not a multiple of 4";
                }

                if ((ulong)(raw.Float32Le.Length / sizeof(float)) > raw.TotalElements)
                {
                    return $"tensors[{i}] ('{tensor.Name}').raw: {raw.Float32Le.Length / sizeof(float)} values for a tensor of {raw.TotalElements} elements";
                }

                if (raw.SampleRows > 0 && CheckSample(tensor, raw) is { } sampleProblem)
                {
                    return $"tensors[{i}] ('{tensor.Name}').raw: {sampleProblem}";
                }
            }

            if (tensor.FeatureNames.Count > 0 && tensor.FeatureNames.Count != BatchColumns(tensor))
            {
                return $"tensors[{i}] ('{tensor.Name}').feature_names: {tensor.FeatureNames.Count} names for {BatchColumns(tensor)} columns (shape [{string.Join(", ", tensor.Shape)}])";
            }
        }

        return null;
    }

    /// <summary>
    /// Columns of a batch of examples: the product of every dimension after the first (1 for a tensor of rank 0 or 1).
    /// </summary>
    public static long BatchColumns(TensorRecord tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        long columns = 1;
        for (int d = 1; d < tensor.Shape.Count; d++)
        {
            columns *= Math.Max(tensor.Shape[d], 0);
        }

        return columns;
    }

    private static string? CheckSample(TensorRecord tensor, RawValues raw)
    {
        long values = raw.Float32Le.Length / sizeof(float);
        long columns = BatchColumns(tensor);
        long rows = tensor.Shape.Count > 0 ? tensor.Shape[0] : 1;
        if (raw.SampleRows > rows)
        {
            return $"sample_rows {raw.SampleRows} exceeds the batch's {rows} rows";
        }

        return values == raw.SampleRows * columns
            ? null
            : $"{values} values are not sample_rows {raw.SampleRows} whole rows of {columns} columns";
    }

    private static string? CheckSummary(TensorSummary summary)
    {
        if (summary.NanCount > summary.Count || summary.InfCount > summary.Count - summary.NanCount)
        {
            return $"nan_count {summary.NanCount} + inf_count {summary.InfCount} exceed count {summary.Count}";
        }

        if (summary.Histogram is not { } histogram)
        {
            return null;
        }

        if (histogram.SampledCount > summary.Count - summary.NanCount)
        {
            return $"histogram.sampled_count {histogram.SampledCount} exceeds the {summary.Count - summary.NanCount} elements that are not NaN";
        }

        switch (histogram.Layout)
        {
            case HistogramLayout.Log2Magnitude:
                if (histogram.FirstBucket + (long)histogram.Counts.Count > Log2Histogram.BucketCount)
                {
                    return $"histogram with layout LOG2_MAGNITUDE has buckets {histogram.FirstBucket} to {histogram.FirstBucket + (long)histogram.Counts.Count - 1}; the layout has {Log2Histogram.BucketCount}";
                }

                if (histogram.Edges.Count != 0)
                {
                    return "histogram with layout LOG2_MAGNITUDE must not carry explicit edges";
                }

                break;
            case HistogramLayout.Explicit:
                if (histogram.FirstBucket != 0)
                {
                    return "explicit histogram must start at bucket 0 (first_bucket)";
                }

                if (histogram.Edges.Count == 0 && histogram.Counts.Count == 0)
                {
                    break;
                }

                if (histogram.Edges.Count != histogram.Counts.Count + 1)
                {
                    return $"histogram has {histogram.Edges.Count} edges for {histogram.Counts.Count} buckets; edges must be buckets + 1";
                }

                for (int e = 1; e < histogram.Edges.Count; e++)
                {
                    if (!(histogram.Edges[e] > histogram.Edges[e - 1]))
                    {
                        return $"histogram edges are not strictly ascending at index {e}";
                    }
                }

                break;
            default:
                return $"histogram layout {(int)histogram.Layout} is unknown to this reader";
        }

        return null;
    }
}
