using Monitor.Analysis.Rules;
using Monitor.Contracts;
using Monitor.Contracts.V1;

namespace Monitor.Analysis.Tests;

/// <summary>
/// The bounds the rules take from a histogram, when the histogram was counted from a sample (<c>sampled_count</c> not
/// 0): its counts are shares of the sample, not elements, and the error bound is taken off.
/// </summary>
public sealed class RuleSupportSampledHistogramTests
{
    private const ulong Elements = 4_000_000;
    private const ulong Sampled = 1 << 18;

    [Fact]
    public void CountAtMostLowerBound_SampledCounts_AreSharesOfTheElements_LessTheErrorBound()
    {
        // 60% of the sample below zero, 40% above.
        TensorSummary summary = Summary(Sampled, (Log2Histogram.BucketOf(-0.5), Sampled * 6 / 10), (Log2Histogram.BucketOf(0.5), Sampled * 4 / 10));
        double bound = Log2Histogram.SampledFractionErrorBound(Sampled, RuleSupport.SampledHistogramAlpha);

        ulong atMostZero = RuleSupport.CountAtMostLowerBound(summary, 0);
        ulong atLeastZero = RuleSupport.CountAtLeastLowerBound(summary, 0);

        Assert.Equal((ulong)Math.Floor(((Sampled * 6 / 10 / (double)Sampled) - bound) * Elements), atMostZero);
        Assert.Equal((ulong)Math.Floor(((Sampled * 4 / 10 / (double)Sampled) - bound) * Elements), atLeastZero);
        Assert.InRange(atMostZero, 2_200_000ul, 2_400_000ul);
    }

    [Fact]
    public void CountAtMostLowerBound_ExactCounts_AreElements()
    {
        TensorSummary summary = Summary(0, (Log2Histogram.BucketOf(-0.5), Elements * 6 / 10), (Log2Histogram.BucketOf(0.5), Elements * 4 / 10));

        Assert.Equal(Elements * 6 / 10, RuleSupport.CountAtMostLowerBound(summary, 0));
    }

    [Fact]
    public void PercentileSpreadUpperBound_SampledHistogram_WidensThePercentilesByTheErrorBound()
    {
        // Every counted element in [0.5, 1); min and max lie far outside.
        int bucket = Log2Histogram.BucketOf(0.75);
        double width = Log2Histogram.Edges[bucket + 1] - Log2Histogram.Edges[bucket];

        Assert.Equal(width, RuleSupport.PercentileSpreadUpperBound(Summary(0, (bucket, Elements)), 2, 98));
        Assert.Equal(width, RuleSupport.PercentileSpreadUpperBound(Summary(Sampled, (bucket, Sampled)), 5, 95));
        // 2% less the bound (0.043) is below the sample: the histogram bounds nothing there, min and max do.
        Assert.Equal(200.0, RuleSupport.PercentileSpreadUpperBound(Summary(Sampled, (bucket, Sampled)), 2, 98));
    }

    private static TensorSummary Summary(ulong sampled, params (int Bucket, ulong Count)[] buckets)
    {
        var histogram = new Histogram { Layout = HistogramLayout.Log2Magnitude, SampledCount = sampled };
        int first = buckets.Min(b => b.Bucket), last = buckets.Max(b => b.Bucket);
        histogram.FirstBucket = (uint)first;
        for (int i = first; i <= last; i++)
        {
            histogram.Counts.Add(buckets.Where(b => b.Bucket == i).Sum(b => (long)b.Count) is var c ? (ulong)c : 0);
        }

        return new TensorSummary { Count = Elements, Min = -100, Max = 100, Histogram = histogram };
    }
}
