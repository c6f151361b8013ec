namespace Monitor.Tracing.Tests;

/// <summary>
/// The fast path against the float64 two-pass reference on inputs built to break shifted or float32 accumulation,
/// and its histogram against the scalar bucket function on every short length (the tails of the vector loops).
/// </summary>
public sealed class TensorSummarizerAccuracyTests
{
    private const double Tolerance = 1e-6;

    public static TheoryData<string> AdversarialKinds => new(["sparse", "large-offset", "offset-1e4-spread-1e-3", "wide-dynamic-range", "outlier-first", "sorted", "zeros-then-offset", "nan-inf-mixed", "rows-4096", "rows-1000"]);

    [Theory]
    [MemberData(nameof(AdversarialKinds))]
    public void Summarize_MomentsWithin1e6OfFloat64_OnAdversarialInputs(string kind)
    {
        float[] values = Adversarial(kind);
        var expected = TensorSummarizerTests.Reference.Of(values);
        var buckets = new ulong[TensorSummarizer.BucketCount];

        TensorSummarizer.Summarize(values, buckets, out TensorStatistics actual);

        AssertClose("mean", expected.Mean, actual.Mean, expected.AbsMean);
        AssertClose("variance", expected.Variance, actual.Variance, 0);
        AssertClose("L1", expected.L1, actual.L1, 0);
        AssertClose("L2", expected.L2, actual.L2, 0);
        AssertClose("abs-mean", expected.AbsMean, actual.AbsMean, 0);
        Assert.Equal(expected.Min, actual.Min);
        Assert.Equal(expected.Max, actual.Max);
        Assert.Equal(expected.ZeroCount, actual.ZeroCount);
        Assert.Equal(expected.NanCount, actual.NanCount);
        Assert.Equal(expected.InfCount, actual.InfCount);
        // These inputs are above the sampling threshold: the histogram is sampled (TensorSummarizerSamplingTests
        // checks its error bound); the exact histogram of the same adversarial data is checked just below it.
        Assert.True(actual.HistogramSampledCount >= (1 << 18) - actual.NanCount, $"sampled {actual.HistogramSampledCount}");
        TensorSummarizerSamplingTests.AssertWithinBound(expected, buckets, actual.HistogramSampledCount);
        float[] belowThreshold = values[..(TensorSummarizer.SamplingThreshold - 1)];
        TensorSummarizer.Summarize(belowThreshold, buckets, out TensorStatistics exact);
        Assert.Equal(0, exact.HistogramSampledCount);
        Assert.Equal(TensorSummarizerTests.Reference.Of(belowThreshold).Buckets, buckets);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Summarize_HistogramEqualsTheBucketOfEveryElement_OnRandomBitPatterns(int seed)
    {
        // Every exponent of both signs, NaN payloads, subnormals, and ±0, ±Inf placed in runs.
        var random = new Random(seed);
        var values = new float[(1 << 16) + 13];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = BitConverter.UInt32BitsToSingle((uint)random.NextInt64(0, 1L << 32));
        }

        float[] specials = [0f, -0f, float.PositiveInfinity, float.NegativeInfinity, float.Epsilon, -float.Epsilon, float.MaxValue, float.MinValue];
        for (int i = 0; i < values.Length; i += 997)
        {
            values.AsSpan(i, Math.Min(40, values.Length - i)).Fill(specials[random.Next(specials.Length)]);
        }

        var expected = TensorSummarizerTests.Reference.Of(values);
        var buckets = new ulong[TensorSummarizer.BucketCount];

        TensorSummarizer.Summarize(values, buckets, out TensorStatistics actual);

        Assert.Equal(expected.Buckets, buckets);
        Assert.Equal(expected.NanCount, actual.NanCount);
        Assert.Equal(expected.InfCount, actual.InfCount);
        Assert.Equal(expected.ZeroCount, actual.ZeroCount);
        Assert.Equal(expected.Min, actual.Min);
        Assert.Equal(expected.Max, actual.Max);
    }

    [Fact]
    public void Summarize_EachCallCountsOnlyItsOwnElements_WhenCallsFollowEachOtherOnOneThread()
    {
        // The vector pass keeps per-thread pair counters that each call must leave clear, whatever range it touched.
        var random = new Random(5);
        string[] kinds = ["wide-dynamic-range", "sparse", "nan-inf-mixed", "sorted", "outlier-first", "sparse", "wide-dynamic-range"];
        foreach (string kind in kinds)
        {
            foreach (int length in new[] { 16, 1_000, 70_001 })
            {
                float[] values = Adversarial(kind)[random.Next(1000)..][..length];
                var buckets = new ulong[TensorSummarizer.BucketCount];

                TensorSummarizer.Summarize(values, buckets, out _);

                Assert.True(TensorSummarizerTests.Reference.Of(values).Buckets.AsSpan().SequenceEqual(buckets), $"{kind}, length {length}: histograms differ");
            }
        }
    }

    [Fact]
    public void Summarize_ReportsTheSpreadOfASparseTensor_WhereTheFirstElementIsTheOnlyNonZero()
    {
        var values = new float[131_072];
        values[0] = 0.3f;
        var buckets = new ulong[TensorSummarizer.BucketCount];

        TensorSummarizer.Summarize(values, buckets, out TensorStatistics statistics);

        double x = 0.3f;
        double n = values.Length;
        double variance = (x * x / n) - (x / n * (x / n));
        Assert.InRange(variance, 6.86e-7, 6.87e-7);
        Assert.Equal(variance, statistics.Variance, variance * Tolerance);
        Assert.Equal(x, statistics.L2, x * Tolerance);
        Assert.Equal(131_071, statistics.ZeroCount);
    }

    [Fact]
    public void Summarize_HistogramCountsAndExtremesEqualTheScalarReference_ForEveryLengthTo300()
    {
        var random = new Random(13);
        for (int length = 0; length <= 300; length++)
        {
            for (int trial = 0; trial < 4; trial++)
            {
                float[] values = Mixed(random, length, specialProbability: trial * 0.1);
                var expected = TensorSummarizerTests.Reference.Of(values);
                var buckets = new ulong[TensorSummarizer.BucketCount];

                TensorSummarizer.Summarize(values, buckets, out TensorStatistics actual);

                string context = $"length {length}, trial {trial}";
                Assert.True(expected.Buckets.AsSpan().SequenceEqual(buckets), $"{context}: histograms differ");
                Assert.True(expected.NanCount == actual.NanCount && expected.InfCount == actual.InfCount
                    && expected.ZeroCount == actual.ZeroCount && expected.Count == actual.Count, $"{context}: counts differ");
                Assert.True(expected.Min.Equals(actual.Min) && expected.Max.Equals(actual.Max),
                    $"{context}: extremes [{actual.Min}, {actual.Max}], expected [{expected.Min}, {expected.Max}]");
            }
        }
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(0.001)]
    [InlineData(0.3)]
    public void Summarize_HistogramEqualsTheScalarReference_OnLongBuffersWithSpecialValues(double specialProbability)
    {
        float[] values = Mixed(new Random(17), 50_001, specialProbability);
        var expected = TensorSummarizerTests.Reference.Of(values);
        var buckets = new ulong[TensorSummarizer.BucketCount];

        TensorSummarizer.Summarize(values, buckets, out TensorStatistics actual);

        Assert.Equal(expected.Buckets, buckets);
        Assert.Equal(expected.NanCount, actual.NanCount);
        Assert.Equal(expected.InfCount, actual.InfCount);
        Assert.Equal(expected.ZeroCount, actual.ZeroCount);
        Assert.Equal(expected.Min, actual.Min);
        Assert.Equal(expected.Max, actual.Max);
        AssertClose("variance", expected.Variance, actual.Variance, 0);
    }

    private static void AssertClose(string what, double expected, double actual, double scale)
    {
        double allowed = Tolerance * Math.Max(Math.Abs(expected), scale);
        Assert.True(Math.Abs(actual - expected) <= allowed,
            $"{what} {actual:R}, expected {expected:R} (relative error {Math.Abs(actual - expected) / Math.Max(Math.Abs(expected), scale):G3})");
    }

    private static float[] Adversarial(string kind)
    {
        var random = new Random(kind.Length);
        const int Length = 1 << 20;
        var values = new float[Length + 37];
        // A gradient matrix: each row its own mean (its output's error), far apart against the spread within a row.
        var rowRandom = new Random(17);
        double[] rowMeans = [.. Enumerable.Range(0, (values.Length / 1000) + 1).Select(_ => 0.01 * Normal(rowRandom))];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = kind switch
            {
                "sparse" => i == 0 ? 0.3f : i % 9973 == 0 ? (float)Normal(random) : 0f,
                "large-offset" => (float)(1e6 + Normal(random)),
                "offset-1e4-spread-1e-3" => (float)(1e4 + (1e-3 * Normal(random))),
                "wide-dynamic-range" => (float)(Math.ScaleB(1.0 + random.NextDouble(), random.Next(-70, 70)) * (random.Next(2) == 0 ? -1 : 1)),
                "outlier-first" => i == 0 ? 1e8f : (float)Normal(random),
                "sorted" => (float)(i / (double)values.Length),
                "zeros-then-offset" => i < values.Length / 2 ? 0f : (float)(1e4 + (1e-2 * Normal(random))),
                "rows-4096" => (float)(rowMeans[i / 4096] + (1e-4 * Normal(random))),
                "rows-1000" => (float)(rowMeans[i / 1000] + (1e-4 * Normal(random))),
                "nan-inf-mixed" => i % 5003 == 1 ? float.NaN : i % 7919 == 2 ? float.NegativeInfinity : i % 6007 == 3 ? float.PositiveInfinity : (float)(3 + Normal(random)),
                _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown kind"),
            };
        }

        return values;
    }

    // Normal values with NaN, ±Inf, ±0, subnormals and values beyond the outer edges mixed in.
    private static float[] Mixed(Random random, int length, double specialProbability)
    {
        var values = new float[length];
        for (int i = 0; i < length; i++)
        {
            if (random.NextDouble() >= specialProbability)
            {
                values[i] = (float)(Math.ScaleB(Normal(random), random.Next(-40, 20)));
                continue;
            }

            values[i] = random.Next(8) switch
            {
                0 => float.NaN,
                1 => BitConverter.UInt32BitsToSingle(0xFFC0_0001u),
                2 => float.PositiveInfinity,
                3 => float.NegativeInfinity,
                4 => 0f,
                5 => -0f,
                6 => BitConverter.UInt32BitsToSingle((uint)random.Next(1, 0x80_0000) | (random.Next(2) == 0 ? 0u : 0x8000_0000u)),
                _ => (float)(Math.ScaleB(1.0, random.Next(15, 100)) * (random.Next(2) == 0 ? -1 : 1)),
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
