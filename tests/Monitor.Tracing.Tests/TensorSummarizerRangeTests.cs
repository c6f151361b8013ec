namespace Monitor.Tracing.Tests;

public sealed class TensorSummarizerRangeTests
{
    private const double Tolerance = 1e-6;

    [Theory]
    [InlineData(1e18)]
    [InlineData(1e20)]
    [InlineData(1e30)]
    [InlineData(1e36)]
    [InlineData(1e-22)]
    [InlineData(1e-23)]
    [InlineData(1e-30)]
    public void Summarize_AgreesWithSummarizeExact_WhenSquaresLeaveFloat32Range(double scale)
    {
        var random = new Random(1);
        var values = new float[4096];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = (float)(scale * (random.NextDouble() + 0.5) * (random.Next(2) == 0 ? -1 : 1));
        }

        AssertAgree(values);
    }

    [Theory]
    [InlineData("huge")]
    [InlineData("subnormals")]
    public void Summarize_AgreesWithSummarizeExact_ForTheOutOfRangeDataKinds(string kind)
    {
        AssertAgree(TensorSummarizerTests.Generate(kind, 4097, seed: 2));
    }

    private static void AssertAgree(float[] values)
    {
        var buckets = new ulong[TensorSummarizer.BucketCount];
        TensorSummarizer.Summarize(values, buckets, out TensorStatistics fast);
        TensorSummarizer.SummarizeExact(values, buckets, out TensorStatistics exact);

        Assert.Equal(0, fast.InfCount);
        Assert.InRange(Math.Abs(fast.Variance - exact.Variance), 0, Tolerance * exact.Variance);
        Assert.InRange(Math.Abs(fast.L2 - exact.L2), 0, Tolerance * exact.L2);
        Assert.InRange(Math.Abs(fast.L1 - exact.L1), 0, Tolerance * exact.L1);
        Assert.InRange(Math.Abs(fast.Mean - exact.Mean), 0, Tolerance * exact.AbsMean);
    }
}
