using Monitor.Contracts;

namespace Monitor.Tracing.Tests;

/// <summary>
/// The sampled histogram of tensors at or above <see cref="TensorSummarizer.SamplingThreshold"/>: its bucket shares
/// within the documented bound (<see cref="Log2Histogram.SampledFractionErrorBound"/>, alpha = 1e-6) of the exact
/// ones on distributions that break naive samples, every other statistic exact, and the sample size reported.
/// </summary>
public sealed class TensorSummarizerSamplingTests
{
    private const double Alpha = 1e-6;

    public static TheoryData<string> Kinds => new(["normal", "sparse", "bimodal", "sorted", "periodic", "nan-inf-mixed"]);

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Summarize_SampledBucketSharesWithinTheBound_AndEverythingElseExact(string kind)
    {
        float[] values = Generate(kind, (1 << 22) + 77);
        var expected = TensorSummarizerTests.Reference.Of(values);
        var buckets = new ulong[TensorSummarizer.BucketCount];

        TensorSummarizer.Summarize(values, buckets, out TensorStatistics actual);

        Assert.InRange(actual.HistogramSampledCount, 1 << 17, values.Length / 8);
        AssertWithinBound(expected, buckets, actual.HistogramSampledCount);
        Assert.Equal(expected.Count, actual.Count);
        Assert.Equal(expected.Min, actual.Min);
        Assert.Equal(expected.Max, actual.Max);
        Assert.Equal(expected.ZeroCount, actual.ZeroCount);
        Assert.Equal(expected.NanCount, actual.NanCount);
        Assert.Equal(expected.InfCount, actual.InfCount);
        AssertRelative(expected.Mean, actual.Mean, expected.AbsMean);
        AssertRelative(expected.Variance, actual.Variance, 0);
        AssertRelative(expected.L2, actual.L2, 0);
    }

    [Fact]
    public void Summarize_SamplesAtLeast2To18Elements_FromTheThreshold_AndCountsEveryElementBelowIt()
    {
        float[] values = Generate("normal", TensorSummarizer.SamplingThreshold);
        var buckets = new ulong[TensorSummarizer.BucketCount];

        TensorSummarizer.Summarize(values, buckets, out TensorStatistics atThreshold);
        Assert.Equal(1 << 18, atThreshold.HistogramSampledCount);
        Assert.Equal((ulong)(1 << 18), Sum(buckets));

        TensorSummarizer.Summarize(values.AsSpan(1), buckets, out TensorStatistics below);
        Assert.Equal(0, below.HistogramSampledCount);
        Assert.Equal(TensorSummarizerTests.Reference.Of(values[1..]).Buckets, buckets);
    }

    [Fact]
    public void Summarize_SameTensor_SameSample_ChangedTensor_OtherBlocks()
    {
        float[] values = Generate("sorted", (1 << 21) + 5);
        var first = new ulong[TensorSummarizer.BucketCount];
        var second = new ulong[TensorSummarizer.BucketCount];

        TensorSummarizer.Summarize(values, first, out _);
        TensorSummarizer.Summarize(values, second, out _);
        Assert.Equal(first, second);

        // Sorted data: which blocks are drawn shows in the buckets of the strata's edges. A changed first element
        // draws other blocks.
        values[0] = -values[0];
        TensorSummarizer.Summarize(values, second, out _);
        Assert.NotEqual(first.AsSpan(Log2Histogram.BucketsPerSign).ToArray(), second.AsSpan(Log2Histogram.BucketsPerSign).ToArray());
    }

    [Fact]
    public void Summarize_SampledNanAreLeftOutOfTheCounts()
    {
        float[] values = Generate("normal", 1 << 21);
        for (int i = 0; i < values.Length; i += 101)
        {
            values[i] = float.NaN;
        }

        var buckets = new ulong[TensorSummarizer.BucketCount];
        TensorSummarizer.Summarize(values, buckets, out TensorStatistics statistics);

        Assert.Equal((ulong)statistics.HistogramSampledCount, Sum(buckets));
        Assert.True(statistics.HistogramSampledCount % TensorSummarizer.SampleBlockLength != 0, "NaN of the sample were counted");
        Assert.Equal(TensorSummarizerTests.Reference.Of(values).NanCount, statistics.NanCount);
    }

    [Fact]
    public void SampledFractionErrorBound_IsHoeffdingInBlocksPlusTheUncoveredShare()
    {
        double blocks = 4096;
        Assert.Equal(Math.Sqrt(Math.Log(2 / Alpha) / (2 * blocks)) + (2 / blocks), Log2Histogram.SampledFractionErrorBound(1 << 18, Alpha), 12);
        Assert.InRange(Log2Histogram.SampledFractionErrorBound(1 << 18, Alpha), 0.042, 0.043);
        Assert.Equal(1.0, Log2Histogram.SampledFractionErrorBound(10, Alpha));
    }

    /// <summary>Each bucket's share of the sample within the bound of its share of the whole tensor.</summary>
    internal static void AssertWithinBound(TensorSummarizerTests.Reference expected, ulong[] buckets, long sampled)
    {
        Assert.Equal((ulong)sampled, Sum(buckets));
        double bound = Log2Histogram.SampledFractionErrorBound((ulong)sampled, Alpha);
        double counted = expected.Count - expected.NanCount;
        for (int b = 0; b < buckets.Length; b++)
        {
            double exact = expected.Buckets[b] / counted, estimate = buckets[b] / (double)sampled;
            Assert.True(Math.Abs(estimate - exact) <= bound, $"bucket {b}: share {estimate:G4} in the sample, {exact:G4} in the tensor, bound {bound:G3}");
        }
    }

    private static ulong Sum(ulong[] buckets)
    {
        ulong total = 0;
        foreach (ulong count in buckets)
        {
            total += count;
        }

        return total;
    }

    private static void AssertRelative(double expected, double actual, double scale)
    {
        double allowed = 1e-6 * Math.Max(Math.Abs(expected), scale);
        Assert.True(Math.Abs(actual - expected) <= allowed, $"{actual:R}, expected {expected:R}");
    }

    private static float[] Generate(string kind, int length)
    {
        var random = new Random(kind.Length + length);
        var values = new float[length];
        for (int i = 0; i < length; i++)
        {
            values[i] = kind switch
            {
                "normal" => (float)(0.01 * Normal(random)),
                // 1% non-zero, in runs of 16: most sampled blocks hold none, a few hold a run.
                "sparse" => (i / 16) % 100 == 7 ? (float)Normal(random) : 0f,
                "bimodal" => random.Next(2) == 0 ? (float)(1e-3 * Normal(random)) : (float)(50 + Normal(random)),
                "sorted" => (float)Math.ScaleB(1.0, -30 + (int)(44L * i / length)) * (1 + (i % 3)),
                // Rows of 1,000 elements whose first tenth is large: a fixed stride of blocks would alias with them.
                "periodic" => i % 1000 < 100 ? (float)(1e3 + Normal(random)) : (float)(1e-4 * Normal(random)),
                "nan-inf-mixed" => i % 5003 == 1 ? float.NaN : i % 7919 == 2 ? float.NegativeInfinity : (float)(3 + Normal(random)),
                _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown kind"),
            };
        }

        return values;
    }

    private static double Normal(Random random)
    {
        double u1 = 1.0 - random.NextDouble();
        double u2 = random.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
    }
}
