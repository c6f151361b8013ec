using System.Runtime.InteropServices;
using Google.Protobuf;
using Monitor.Contracts;
using Monitor.Contracts.V1;

namespace Monitor.Analysis.Tests;

/// <summary>
/// Builds tensor records for rule tests: summaries computed from values the way the tracer computes them (moments
/// over finite elements, NaN and Inf counted apart, the log2 histogram with Inf in the end buckets, sent as the span
/// of non-empty buckets), optionally with
/// the raw values.
/// </summary>
internal static class RuleTestData
{
    /// <summary>A tensor whose summary (with histogram) is computed from <paramref name="values"/>; raw values are
    /// attached when <paramref name="raw"/>.</summary>
    public static TensorRecord Values(string name, float[] values, long[] shape, bool raw, params Collection[] collections)
    {
        var tensor = new TensorRecord { Name = name, Dtype = DType.Float32, Summary = Summarize(values) };
        tensor.Shape.Add(shape);
        tensor.Collections.Add(collections);
        if (raw)
        {
            tensor.Raw = new RawValues
            {
                Float32Le = ByteString.CopyFrom(MemoryMarshal.AsBytes(values.AsSpan())),
                TotalElements = (ulong)values.Length,
            };
        }

        return tensor;
    }

    /// <summary>A one-dimensional tensor of <paramref name="values"/>, summarized (and with raw values) as above.</summary>
    public static TensorRecord Values(string name, float[] values, bool raw, params Collection[] collections) =>
        Values(name, values, [values.Length], raw, collections);

    /// <summary>The same tensor with its raw values cut to the first <paramref name="elements"/> (as limitSize does);
    /// the summary still describes every element.</summary>
    public static TensorRecord Truncated(TensorRecord tensor, int elements)
    {
        TensorRecord cut = tensor.Clone();
        ReadOnlySpan<float> all = TensorValues.Raw(tensor);
        cut.Raw = new RawValues
        {
            Float32Le = ByteString.CopyFrom(MemoryMarshal.AsBytes(all[..elements])),
            TotalElements = (ulong)all.Length,
            Truncated = true,
        };
        return cut;
    }

    /// <summary>A tensor with only the given summary statistics set (count 100 unless given).</summary>
    public static TensorRecord Summary(string name, TensorSummary summary, params Collection[] collections)
    {
        var tensor = new TensorRecord { Name = name, Dtype = DType.Float32, Summary = summary };
        tensor.Shape.Add((long)summary.Count);
        tensor.Collections.Add(collections);
        return tensor;
    }

    /// <summary>The record with another mode.</summary>
    public static StepRecord InMode(StepRecord record, Mode mode)
    {
        record.Mode = mode;
        return record;
    }

    /// <summary>The summary the tracer would send for <paramref name="values"/>.</summary>
    public static TensorSummary Summarize(ReadOnlySpan<float> values)
    {
        var buckets = new ulong[Log2Histogram.BucketCount];
        ulong nan = 0, inf = 0, zero = 0, finite = 0;
        double min = double.PositiveInfinity, max = double.NegativeInfinity, sum = 0, sumAbs = 0, sumSquares = 0;
        foreach (float value in values)
        {
            if (float.IsNaN(value))
            {
                nan++;
                continue;
            }

            buckets[Log2Histogram.BucketOf(value)]++;
            if (float.IsInfinity(value))
            {
                inf++;
                continue;
            }

            finite++;
            zero += value == 0 ? 1UL : 0;
            min = Math.Min(min, value);
            max = Math.Max(max, value);
            sum += value;
            sumAbs += Math.Abs(value);
            sumSquares += (double)value * value;
        }

        double mean = finite > 0 ? sum / finite : double.NaN;
        double variance = double.NaN;
        if (finite > 0)
        {
            double squaredDeviations = 0;
            foreach (float value in values)
            {
                if (float.IsFinite(value))
                {
                    squaredDeviations += (value - mean) * (value - mean);
                }
            }

            variance = squaredDeviations / finite;
        }

        // Like the tracer: only the span from the first to the last non-empty bucket is sent.
        var histogram = new Histogram { Layout = HistogramLayout.Log2Magnitude };
        int firstBucket = buckets.AsSpan().IndexOfAnyExcept(0UL);
        if (firstBucket >= 0)
        {
            histogram.FirstBucket = (uint)firstBucket;
            histogram.Counts.Add(buckets[firstBucket..(buckets.AsSpan().LastIndexOfAnyExcept(0UL) + 1)]);
        }
        return new TensorSummary
        {
            Count = (ulong)values.Length,
            Min = finite > 0 ? min : double.NaN,
            Max = finite > 0 ? max : double.NaN,
            Mean = mean,
            Variance = variance,
            L1 = sumAbs,
            L2 = Math.Sqrt(sumSquares),
            AbsMean = finite > 0 ? sumAbs / finite : double.NaN,
            ZeroCount = zero,
            NanCount = nan,
            InfCount = inf,
            Histogram = histogram,
        };
    }

    /// <summary><paramref name="count"/> values drawn from N(<paramref name="mean"/>, <paramref name="std"/>²).</summary>
    public static float[] Normal(Random random, int count, double mean = 0, double std = 1)
    {
        var values = new float[count];
        for (int i = 0; i < count; i++)
        {
            // Box-Muller; 1 - NextDouble() keeps the logarithm's argument in (0, 1].
            double u = 1 - random.NextDouble();
            double v = random.NextDouble();
            values[i] = (float)(mean + std * Math.Sqrt(-2 * Math.Log(u)) * Math.Cos(2 * Math.PI * v));
        }

        return values;
    }

    /// <summary><paramref name="count"/> copies of <paramref name="value"/>.</summary>
    public static float[] Fill(int count, float value)
    {
        var values = new float[count];
        Array.Fill(values, value);
        return values;
    }
}
