using Monitor.Contracts.V1;

namespace Monitor.Contracts;

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
