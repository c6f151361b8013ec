using Monitor.Contracts.V1;

namespace Monitor.Contracts;

/// <summary>Reads the bucket counts of a <see cref="Histogram"/>, which may send only a span of its buckets.</summary>
public static class HistogramBuckets
{
    /// <summary>Number of buckets of the histogram's layout (explicit: the counts sent).</summary>
    public static int CountOf(Histogram histogram)
    {
        ArgumentNullException.ThrowIfNull(histogram);
        return histogram.Layout == HistogramLayout.Log2Magnitude ? Log2Histogram.BucketCount : histogram.Counts.Count;
    }

    /// <summary>Count of one bucket; 0 outside the span that was sent.</summary>
    public static ulong Get(Histogram histogram, int bucket)
    {
        ArgumentNullException.ThrowIfNull(histogram);
        long index = bucket - (long)histogram.FirstBucket;
        return index >= 0 && index < histogram.Counts.Count ? histogram.Counts[(int)index] : 0;
    }

    /// <summary>
    /// Elements of the tensor that one count of its histogram stands for: 1 when every element was counted
    /// (<c>sampled_count</c> 0), else <c>(count - nan_count) / sampled_count</c>, so that a count times this estimates
    /// the elements of its bucket (within <see cref="Log2Histogram.SampledFractionErrorBound"/> of the elements
    /// counted, as a share). 1 without a histogram.
    /// </summary>
    public static double ElementsPerCount(TensorSummary summary)
    {
        ArgumentNullException.ThrowIfNull(summary);
        ulong sampled = summary.Histogram?.SampledCount ?? 0;
        return sampled == 0 ? 1.0 : (summary.Count - summary.NanCount) / (double)sampled;
    }

    /// <summary>Every bucket's count, zeros included.</summary>
    public static ulong[] ToArray(Histogram histogram)
    {
        var counts = new ulong[CountOf(histogram)];
        for (int i = 0; i < histogram.Counts.Count && histogram.FirstBucket + i < counts.Length; i++)
        {
            counts[histogram.FirstBucket + i] = histogram.Counts[i];
        }

        return counts;
    }
}

/// <summary>Resolves the edges of a <see cref="Histogram"/>, whether explicit or given by its layout.</summary>
public static class HistogramEdges
{
    /// <summary>The edges (one more than buckets); empty for an empty or unknown-layout histogram.</summary>
    public static ReadOnlySpan<double> Of(Histogram histogram)
    {
        ArgumentNullException.ThrowIfNull(histogram);
        return histogram.Layout switch
        {
            HistogramLayout.Log2Magnitude => Log2Histogram.Edges,
            HistogramLayout.Explicit => histogram.Edges.Count == 0 ? [] : histogram.Edges.ToArray(),
            _ => [],
        };
    }
}
