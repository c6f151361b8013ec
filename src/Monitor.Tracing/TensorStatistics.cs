using System.Runtime.InteropServices;

namespace Monitor.Tracing;

/// <summary>
/// Statistics of one tensor, as computed by <see cref="TensorSummarizer"/>. Moments, extremes and norms are over
/// the finite elements only; NaN and infinities are counted apart (see the monitor/v1 <c>TensorSummary</c>).
/// </summary>
[StructLayout(LayoutKind.Auto)]
public struct TensorStatistics
{
    /// <summary>All elements, finite or not.</summary>
    public long Count;

    /// <summary>Smallest finite element; NaN when there is none.</summary>
    public double Min;

    /// <summary>Largest finite element; NaN when there is none.</summary>
    public double Max;

    /// <summary>Mean of the finite elements; NaN when there is none.</summary>
    public double Mean;

    /// <summary>Population variance of the finite elements; NaN when there is none.</summary>
    public double Variance;

    /// <summary>Sum of |x| over finite elements.</summary>
    public double L1;

    /// <summary>sqrt(sum of x^2) over finite elements.</summary>
    public double L2;

    /// <summary>Mean of |x| over finite elements; NaN when there is none.</summary>
    public double AbsMean;

    /// <summary>Elements equal to zero (either sign).</summary>
    public long ZeroCount;

    /// <summary>NaN elements.</summary>
    public long NanCount;

    /// <summary>+Inf and -Inf elements.</summary>
    public long InfCount;

    /// <summary>
    /// 0 when the histogram counts every element but NaN (its counts sum to <c>Count - NanCount</c>). Otherwise the
    /// histogram was counted from a sample of whole blocks of <see cref="Monitor.Contracts.Log2Histogram.SampleBlockLength"/>
    /// elements (see <see cref="TensorSummarizer.Summarize"/>), and this is the number of elements it counts (the
    /// sample's elements but its NaN; its counts sum to it): a bucket's share of the elements is its count divided by
    /// this, within <see cref="Monitor.Contracts.Log2Histogram.SampledFractionErrorBound"/>. Every other field is exact.
    /// </summary>
    public long HistogramSampledCount;

    /// <summary>Elements that are neither NaN nor infinite.</summary>
    public readonly long FiniteCount => Count - NanCount - InfCount;
}
