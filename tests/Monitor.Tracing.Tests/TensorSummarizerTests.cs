using Monitor.Contracts;

namespace Monitor.Tracing.Tests;

public sealed class TensorSummarizerTests
{
    // Tails around the 8-lane vector width, then around the 4,096-element float32 chunk, then a long odd buffer.
    private static readonly int[] Lengths = [.. Enumerable.Range(0, 71), 4095, 4096, 4097, 100_003];

    // The fast path sums float32 lanes over at most 8 vectors, then float64 (see TensorSummarizer's remarks).
    private const double FastTolerance = 1e-6;

    // The exact pass is float64 throughout; it differs from the two-pass reference only by rounding.
    private const double ExactTolerance = 1e-9;

    private static readonly string[] Kinds =
    [
        "normal", "large-mean-tiny-spread", "zeros", "negative-zeros", "mixed-signs-all-magnitudes",
        "sprinkled-nan-inf", "all-nan", "all-inf", "single-nan-in-tail", "subnormals", "huge",
    ];

    public static TheoryData<string> DataKinds => new(Kinds);

    public static TheoryData<string> AllKinds => new(Kinds);

    [Theory]
    [MemberData(nameof(DataKinds))]
    public void Summarize_AgreesWithNaiveFloat64Reference_ForEveryLength(string kind)
    {
        foreach (int length in Lengths)
        {
            float[] values = Generate(kind, length, seed: length);
            Reference expected = Reference.Of(values);
            var buckets = new ulong[TensorSummarizer.BucketCount];

            TensorSummarizer.Summarize(values, buckets, out TensorStatistics actual);

            AssertAgrees(expected, actual, buckets, FastTolerance, FastTolerance, $"{kind}, length {length}, Summarize");
        }
    }

    [Theory]
    [MemberData(nameof(AllKinds))]
    public void SummarizeExact_AgreesWithNaiveFloat64Reference_ForEveryLength(string kind)
    {
        foreach (int length in Lengths)
        {
            float[] values = Generate(kind, length, seed: length);
            Reference expected = Reference.Of(values);
            var buckets = new ulong[TensorSummarizer.BucketCount];

            TensorSummarizer.SummarizeExact(values, buckets, out TensorStatistics actual);

            AssertAgrees(expected, actual, buckets, ExactTolerance, ExactTolerance, $"{kind}, length {length}, SummarizeExact");
        }
    }

    [Theory]
    [MemberData(nameof(AllKinds))]
    public void Summarize_MatchesSummarizeExact_InCountsExtremesAndHistogram(string kind)
    {
        foreach (int length in Lengths)
        {
            float[] values = Generate(kind, length, seed: length + 1000);
            var fastBuckets = new ulong[TensorSummarizer.BucketCount];
            var exactBuckets = new ulong[TensorSummarizer.BucketCount];

            TensorSummarizer.Summarize(values, fastBuckets, out TensorStatistics fast);
            TensorSummarizer.SummarizeExact(values, exactBuckets, out TensorStatistics exact);

            string context = $"{kind}, length {length}";
            Check(fast.Count == exact.Count && fast.ZeroCount == exact.ZeroCount && fast.NanCount == exact.NanCount
                && fast.InfCount == exact.InfCount, context, "counts differ");
            Check(SameOrBothNaN(fast.Min, exact.Min) && SameOrBothNaN(fast.Max, exact.Max), context,
                $"extremes differ: fast [{fast.Min}, {fast.Max}], exact [{exact.Min}, {exact.Max}]");
            Check(fastBuckets.AsSpan().SequenceEqual(exactBuckets), context, "histograms differ");
        }
    }

    [Fact]
    public void Summarize_KeepsVarianceAccurate_WhenMeanDwarfsSpread()
    {
        float[] values = Generate("large-mean-tiny-spread", 1_000_003, seed: 7);
        Reference expected = Reference.Of(values);
        var buckets = new ulong[TensorSummarizer.BucketCount];

        TensorSummarizer.Summarize(values, buckets, out TensorStatistics actual);

        Assert.InRange(expected.Variance, 0.5e-6, 2e-6);
        Assert.InRange(Math.Abs(actual.Variance - expected.Variance) / expected.Variance, 0, FastTolerance);
        Assert.InRange(Math.Abs(actual.Mean - expected.Mean), 0, 1e-5);
    }

    [Fact]
    public void Summarize_CountsZerosOfBothSignsInTheirSignsInnermostBucket()
    {
        float[] values = [0f, -0f, 0f, -0f, 0f, 0f, -0f, 0f, 0f, -0f, 1f];
        var buckets = new ulong[TensorSummarizer.BucketCount];

        TensorSummarizer.Summarize(values, buckets, out TensorStatistics statistics);

        Assert.Equal(10, statistics.ZeroCount);
        Assert.Equal(6UL, buckets[Log2Histogram.BucketsPerSign]);
        Assert.Equal(4UL, buckets[Log2Histogram.BucketsPerSign - 1]);
    }

    [Fact]
    public void Summarize_CountsSubnormalsInTheInnermostBuckets()
    {
        float[] values = Generate("subnormals", 4097, seed: 3);
        var buckets = new ulong[TensorSummarizer.BucketCount];

        TensorSummarizer.Summarize(values, buckets, out TensorStatistics statistics);

        long negatives = values.LongCount(float.IsNegative);
        Assert.Equal((ulong)negatives, buckets[Log2Histogram.BucketsPerSign - 1]);
        Assert.Equal((ulong)(values.Length - negatives), buckets[Log2Histogram.BucketsPerSign]);
        Assert.Equal(0, statistics.ZeroCount);
        Assert.Equal((double)values.Min(), statistics.Min);
        Assert.Equal((double)values.Max(), statistics.Max);
        Assert.Equal(Reference.Of(values).Mean, statistics.Mean, Reference.Of(values).AbsMean * FastTolerance);
    }

    [Fact]
    public void Summarize_LeavesNonFiniteOutOfMomentsAndCountsInfInEndBuckets()
    {
        float[] values = [1f, float.NaN, -2f, float.PositiveInfinity, 3f, float.NegativeInfinity, float.NaN, 4f, float.PositiveInfinity, 0f];
        var buckets = new ulong[TensorSummarizer.BucketCount];

        TensorSummarizer.Summarize(values, buckets, out TensorStatistics statistics);

        Assert.Equal(10, statistics.Count);
        Assert.Equal(2, statistics.NanCount);
        Assert.Equal(3, statistics.InfCount);
        Assert.Equal(5, statistics.FiniteCount);
        Assert.Equal(1, statistics.ZeroCount);
        Assert.Equal(-2.0, statistics.Min);
        Assert.Equal(4.0, statistics.Max);
        Assert.Equal(1.2, statistics.Mean, 1e-12);
        Assert.Equal(10.0, statistics.L1, 1e-12);
        Assert.Equal(Math.Sqrt(30.0), statistics.L2, 1e-12);
        Assert.Equal(1UL, buckets[0]);
        Assert.Equal(2UL, buckets[Log2Histogram.BucketCount - 1]);
        Assert.Equal(8UL, Sum(buckets));
    }

    [Fact]
    public void Summarize_ReportsNaNMomentsAndZeroNorms_WhenEveryElementIsNaN()
    {
        float[] values = Enumerable.Repeat(float.NaN, 37).ToArray();
        var buckets = new ulong[TensorSummarizer.BucketCount];
        buckets.AsSpan().Fill(99);

        TensorSummarizer.Summarize(values, buckets, out TensorStatistics statistics);

        Assert.Equal(37, statistics.Count);
        Assert.Equal(37, statistics.NanCount);
        Assert.Equal(0, statistics.InfCount);
        Assert.Equal(0, statistics.ZeroCount);
        Assert.True(double.IsNaN(statistics.Min));
        Assert.True(double.IsNaN(statistics.Max));
        Assert.True(double.IsNaN(statistics.Mean));
        Assert.True(double.IsNaN(statistics.Variance));
        Assert.True(double.IsNaN(statistics.AbsMean));
        Assert.Equal(0.0, statistics.L1);
        Assert.Equal(0.0, statistics.L2);
        Assert.All(buckets, count => Assert.Equal(0UL, count));
    }

    [Fact]
    public void Summarize_ReportsNaNMomentsAndZeroNorms_WhenEmpty()
    {
        var buckets = new ulong[TensorSummarizer.BucketCount];

        TensorSummarizer.Summarize([], buckets, out TensorStatistics statistics);

        Assert.Equal(0, statistics.Count);
        Assert.True(double.IsNaN(statistics.Min));
        Assert.True(double.IsNaN(statistics.Mean));
        Assert.Equal(0.0, statistics.L1);
        Assert.Equal(0.0, statistics.L2);
        Assert.Equal(0UL, Sum(buckets));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(95)]
    public void Summarize_ThrowsArgumentException_WhenBucketsAreShorterThanBucketCount(int length)
    {
        var buckets = new ulong[length];

        Assert.Throws<ArgumentException>("buckets", () => TensorSummarizer.Summarize(new float[16], buckets, out _));
        Assert.Throws<ArgumentException>("buckets", () => TensorSummarizer.SummarizeExact(new float[16], buckets, out _));
    }

    [Theory]
    [InlineData(3)]
    [InlineData(64)]
    [InlineData(float.NaN)]
    public void Summarize_OverwritesOnlyTheFirstBucketCountEntries_WhenBucketsAreLonger(float fill)
    {
        float[] values = [.. Generate("normal", 100, seed: 5)];
        values[50] = fill;
        Reference expected = Reference.Of(values);
        const ulong Untouched = 0xDEAD_BEEF;
        var fastBuckets = new ulong[TensorSummarizer.BucketCount + 10];
        var exactBuckets = new ulong[TensorSummarizer.BucketCount + 10];
        fastBuckets.AsSpan().Fill(Untouched);
        exactBuckets.AsSpan().Fill(Untouched);

        TensorSummarizer.Summarize(values, fastBuckets, out _);
        TensorSummarizer.SummarizeExact(values, exactBuckets, out _);

        foreach (ulong[] buckets in new[] { fastBuckets, exactBuckets })
        {
            Assert.Equal(expected.Buckets, buckets[..TensorSummarizer.BucketCount]);
            Assert.All(buckets[TensorSummarizer.BucketCount..], count => Assert.Equal(Untouched, count));
        }
    }

    [Fact]
    public void Summarize_AllocatesNothing_OnAMillionElements()
    {
        float[] values = Generate("normal", 1_000_000, seed: 11);
        var buckets = new ulong[TensorSummarizer.BucketCount];
        TensorSummarizer.Summarize(values, buckets, out _);

        long before = GC.GetAllocatedBytesForCurrentThread();
        TensorSummarizer.Summarize(values, buckets, out TensorStatistics statistics);
        long after = GC.GetAllocatedBytesForCurrentThread();

        Assert.Equal(0, after - before);
        Assert.Equal(1_000_000, statistics.Count);
    }

    private static void AssertAgrees(Reference expected, in TensorStatistics actual, ulong[] buckets, double tolerance, double varianceTolerance, string context)
    {
        Check(actual.Count == expected.Count, context, $"Count {actual.Count}, expected {expected.Count}");
        Check(actual.NanCount == expected.NanCount, context, $"NanCount {actual.NanCount}, expected {expected.NanCount}");
        Check(actual.InfCount == expected.InfCount, context, $"InfCount {actual.InfCount}, expected {expected.InfCount}");
        Check(actual.ZeroCount == expected.ZeroCount, context, $"ZeroCount {actual.ZeroCount}, expected {expected.ZeroCount}");
        Check(SameOrBothNaN(actual.Min, expected.Min), context, $"Min {actual.Min}, expected {expected.Min}");
        Check(SameOrBothNaN(actual.Max, expected.Max), context, $"Max {actual.Max}, expected {expected.Max}");

        // A mean near zero has no relative precision of its own: it is compared at the scale of the magnitudes.
        CheckClose("Mean", expected.Mean, actual.Mean, tolerance, expected.AbsMean, context);
        CheckClose("Variance", expected.Variance, actual.Variance, varianceTolerance, 0, context);
        CheckClose("L1", expected.L1, actual.L1, tolerance, 0, context);
        CheckClose("L2", expected.L2, actual.L2, tolerance, 0, context);
        CheckClose("AbsMean", expected.AbsMean, actual.AbsMean, tolerance, 0, context);

        for (int i = 0; i < TensorSummarizer.BucketCount; i++)
        {
            Check(buckets[i] == expected.Buckets[i], context, $"bucket {i} holds {buckets[i]}, expected {expected.Buckets[i]}");
        }

        Check(Sum(buckets) == (ulong)(actual.Count - actual.NanCount), context, "histogram does not sum to Count - NanCount");
    }

    private static void CheckClose(string what, double expected, double actual, double tolerance, double scale, string context)
    {
        if (double.IsNaN(expected) || double.IsNaN(actual))
        {
            Check(double.IsNaN(expected) && double.IsNaN(actual), context, $"{what} {actual}, expected {expected}");
            return;
        }

        double allowed = tolerance * Math.Max(Math.Abs(expected), scale);
        Check(Math.Abs(actual - expected) <= allowed, context,
            $"{what} {actual:R}, expected {expected:R} (error {Math.Abs(actual - expected):G3}, allowed {allowed:G3})");
    }

    private static void Check(bool condition, string context, string message) => Assert.True(condition, $"{context}: {message}");

    private static bool SameOrBothNaN(double a, double b) => a.Equals(b);

    private static ulong Sum(ulong[] buckets)
    {
        ulong total = 0;
        foreach (ulong count in buckets)
        {
            total += count;
        }

        return total;
    }

    internal static float[] Generate(string kind, int length, int seed)
    {
        var random = new Random(seed);
        var values = new float[length];
        for (int i = 0; i < length; i++)
        {
            values[i] = kind switch
            {
                "normal" => (float)Normal(random),
                "large-mean-tiny-spread" => (float)(1000.0 + (1e-3 * Normal(random))),
                "zeros" => 0f,
                "negative-zeros" => -0f,
                "subnormals" => BitConverter.UInt32BitsToSingle((uint)random.Next(1, 0x80_0000) | (random.Next(2) == 0 ? 0u : 0x8000_0000u)),
                "huge" => (float)(1e30 * (random.NextDouble() + 0.5) * (random.Next(2) == 0 ? -1 : 1)),
                "mixed-signs-all-magnitudes" => (float)(Math.ScaleB(1.0 + random.NextDouble(), random.Next(-40, 20)) * (random.Next(2) == 0 ? -1 : 1)),
                "sprinkled-nan-inf" => (i % 7) switch
                {
                    3 => float.NaN,
                    5 => i % 2 == 0 ? float.NegativeInfinity : float.PositiveInfinity,
                    _ => (float)Normal(random),
                },
                "all-nan" => float.NaN,
                "all-inf" => i % 3 == 0 ? float.NegativeInfinity : float.PositiveInfinity,
                "single-nan-in-tail" => i == length - 1 ? float.NaN : (float)Normal(random),
                _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown data kind"),
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

    /// <summary>The statistics computed the obvious way: float64, two passes, buckets from <see cref="Log2Histogram.BucketOf"/>.</summary>
    internal sealed record Reference(long Count, long NanCount, long InfCount, long ZeroCount, double Min, double Max,
        double Mean, double Variance, double L1, double L2, double AbsMean, ulong[] Buckets)
    {
        public static Reference Of(float[] values)
        {
            long nan = 0, inf = 0, zero = 0, finite = 0;
            double min = double.NaN, max = double.NaN, sum = 0, sumAbs = 0, sumSquares = 0;
            var buckets = new ulong[Log2Histogram.BucketCount];
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

                double x = value;
                min = finite == 0 || x < min ? x : min;
                max = finite == 0 || x > max ? x : max;
                finite++;
                zero += x == 0 ? 1 : 0;
                sum += x;
                sumAbs += Math.Abs(x);
                sumSquares += x * x;
            }

            if (finite == 0)
            {
                return new Reference(values.Length, nan, inf, zero, double.NaN, double.NaN, double.NaN, double.NaN, 0, 0, double.NaN, buckets);
            }

            double mean = sum / finite;
            double squaredDeviations = 0;
            foreach (float value in values)
            {
                if (float.IsFinite(value))
                {
                    squaredDeviations += (value - mean) * (value - mean);
                }
            }

            return new Reference(values.Length, nan, inf, zero, min, max, mean, squaredDeviations / finite, sumAbs,
                Math.Sqrt(sumSquares), sumAbs / finite, buckets);
        }
    }
}
