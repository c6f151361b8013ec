using Monitor.Contracts.V1;

namespace Monitor.Contracts.Tests;

public sealed class Log2HistogramTests
{
    [Fact]
    public void Edges_Has97StrictlyAscendingValues_FromNegativeToPositiveInfinity()
    {
        ReadOnlySpan<double> edges = Log2Histogram.Edges;

        Assert.Equal(Log2Histogram.BucketCount + 1, edges.Length);
        Assert.Equal(97, edges.Length);
        Assert.Equal(double.NegativeInfinity, edges[0]);
        Assert.Equal(double.PositiveInfinity, edges[96]);
        Assert.Equal(0.0, edges[48]);
        Assert.False(double.IsNegative(edges[48]), "the middle edge is +0");
        for (int i = 1; i < edges.Length; i++)
        {
            Assert.True(edges[i] > edges[i - 1], $"edges[{i}] = {edges[i]} is not above edges[{i - 1}] = {edges[i - 1]}");
        }
    }

    [Fact]
    public void Edges_ArePowersOfTwo_From2ToMinus31To2To15_SymmetricAroundZero()
    {
        ReadOnlySpan<double> edges = Log2Histogram.Edges;

        Assert.Equal(Math.ScaleB(1.0, Log2Histogram.InnermostExponent), edges[49]);
        Assert.Equal(Math.ScaleB(1.0, Log2Histogram.OutermostExponent), edges[95]);
        for (int j = 1; j < Log2Histogram.BucketsPerSign; j++)
        {
            double expected = Math.ScaleB(1.0, Log2Histogram.InnermostExponent + j - 1);
            Assert.Equal(expected, edges[48 + j]);
            Assert.Equal(-expected, edges[48 - j]);
        }
    }

    [Fact]
    public void Constants_DescribeTheLayout()
    {
        Assert.Equal(48, Log2Histogram.BucketsPerSign);
        Assert.Equal(96, Log2Histogram.BucketCount);
        Assert.Equal(Log2Histogram.OutermostExponent - Log2Histogram.InnermostExponent + 2, Log2Histogram.BucketsPerSign);
        Assert.Equal(Log2Histogram.RawBinCount, Log2Histogram.RawBinToBucket.Length);
    }

    [Theory]
    [InlineData(0.0, 48)]
    [InlineData(-0.0, 47)]
    [InlineData(1e-300, 48)]
    [InlineData(-1e-300, 47)]
    [InlineData(4.656612873077393e-10, 49)] // 2^-31, on the innermost edge: the bucket farther from zero
    [InlineData(-4.656612873077393e-10, 46)]
    [InlineData(4.6566128730773926e-10 * 0.999, 48)]
    [InlineData(1.0, 80)]
    [InlineData(1.5, 80)]
    [InlineData(0.999, 79)]
    [InlineData(-1.0, 15)]
    [InlineData(32767.99, 94)]
    [InlineData(32768.0, 95)] // 2^15, the outermost finite edge
    [InlineData(-32768.0, 0)]
    [InlineData(1e300, 95)]
    [InlineData(double.PositiveInfinity, 95)]
    [InlineData(double.NegativeInfinity, 0)]
    [InlineData(double.MaxValue, 95)]
    [InlineData(double.Epsilon, 48)]
    public void BucketOf_ReturnsExpectedBucket_WhenValueIsAtOrNearAnEdge(double value, int expected)
    {
        Assert.Equal(expected, Log2Histogram.BucketOf(value));
    }

    [Fact]
    public void BucketOf_PlacesFiniteValuesBetweenTheirBucketsEdges_WithEdgeValuesFartherFromZero()
    {
        ReadOnlySpan<double> edges = Log2Histogram.Edges;
        foreach (float value in InterestingFloats())
        {
            if (float.IsInfinity(value))
            {
                continue;
            }

            int bucket = Log2Histogram.BucketOf(value);
            Assert.InRange(bucket, 0, Log2Histogram.BucketCount - 1);
            if (float.IsNegative(value))
            {
                Assert.True(edges[bucket] < value && value <= edges[bucket + 1], $"{value:R} in bucket {bucket} [{edges[bucket]}, {edges[bucket + 1]}]");
            }
            else
            {
                Assert.True(edges[bucket] <= value && value < edges[bucket + 1], $"{value:R} in bucket {bucket} [{edges[bucket]}, {edges[bucket + 1]}]");
            }
        }
    }

    [Fact]
    public void RawBinToBucket_AgreesWithBucketOf_ForInterestingFloats()
    {
        foreach (float value in InterestingFloats())
        {
            AssertRawBinAgrees(value);
        }
    }

    [Fact]
    public void RawBinToBucket_AgreesWithBucketOf_ForRandomFloatBitPatterns()
    {
        var random = new Random(1_234_567);
        Span<byte> bits = stackalloc byte[4];
        int checkedCount = 0;
        while (checkedCount < 200_000)
        {
            random.NextBytes(bits);
            float value = BitConverter.ToSingle(bits);
            if (float.IsNaN(value))
            {
                continue;
            }

            AssertRawBinAgrees(value);
            checkedCount++;
        }
    }

    [Fact]
    public void RawBinToBucket_AgreesWithBucketOf_ForEverySignAndExponent()
    {
        // One value per raw bin (mantissa 0 and all ones) covers every entry of the table; exponent 255 is Inf only.
        for (uint raw = 0; raw < Log2Histogram.RawBinCount; raw++)
        {
            foreach (uint mantissa in new uint[] { 0, 0x7F_FFFF })
            {
                float value = BitConverter.UInt32BitsToSingle((raw << 23) | mantissa);
                if (!float.IsNaN(value))
                {
                    AssertRawBinAgrees(value);
                }
            }
        }
    }

    [Fact]
    public void RawBinToBucket_MapsZeroExponentToInnermostAndMaxExponentToOutermost()
    {
        ReadOnlySpan<byte> map = Log2Histogram.RawBinToBucket;

        Assert.Equal(48, map[0]);       // +0 and positive subnormals
        Assert.Equal(47, map[256]);     // -0 and negative subnormals
        Assert.Equal(95, map[255]);     // +Inf, NaN with sign 0
        Assert.Equal(0, map[511]);      // -Inf, NaN with sign 1
        Assert.Equal(80, map[127]);     // [1, 2)
        Assert.Equal(15, map[256 + 127]);
    }

    [Fact]
    public void Of_ReturnsLayoutEdges_WhenLayoutIsLog2Magnitude()
    {
        var histogram = new Histogram { Layout = HistogramLayout.Log2Magnitude };

        Assert.True(HistogramEdges.Of(histogram).SequenceEqual(Log2Histogram.Edges));
    }

    [Fact]
    public void Of_ReturnsExplicitEdges_WhenLayoutIsExplicit()
    {
        var histogram = new Histogram { Layout = HistogramLayout.Explicit, Edges = { -2.0, 0.5, 4.0 }, Counts = { 1, 2 } };

        Assert.Equal([-2.0, 0.5, 4.0], HistogramEdges.Of(histogram).ToArray());
    }

    [Fact]
    public void Of_ReturnsEmpty_WhenExplicitHistogramHasNoEdges()
    {
        Assert.True(HistogramEdges.Of(new Histogram()).IsEmpty);
    }

    [Fact]
    public void Of_ReturnsEmpty_WhenLayoutIsUnknown()
    {
        var histogram = new Histogram { Layout = (HistogramLayout)9, Edges = { 1.0, 2.0 }, Counts = { 3 } };

        Assert.True(HistogramEdges.Of(histogram).IsEmpty);
    }

    [Fact]
    public void Of_Throws_WhenHistogramIsNull()
    {
        Assert.Throws<ArgumentNullException>(() => { _ = HistogramEdges.Of(null!); });
    }

    private static void AssertRawBinAgrees(float value)
    {
        int raw = (int)(BitConverter.SingleToUInt32Bits(value) >> 23);
        int fromTable = Log2Histogram.RawBinToBucket[raw];
        int fromValue = Log2Histogram.BucketOf(value);
        Assert.True(fromTable == fromValue, $"{value:R} (bits 0x{BitConverter.SingleToUInt32Bits(value):X8}): table says {fromTable}, BucketOf says {fromValue}");
    }

    private static List<float> InterestingFloats()
    {
        var values = new List<float>
        {
            0f, -0f, float.Epsilon, -float.Epsilon, float.MaxValue, float.MinValue, float.PositiveInfinity, float.NegativeInfinity,
            BitConverter.UInt32BitsToSingle(0x007F_FFFF), // largest subnormal
            BitConverter.UInt32BitsToSingle(0x0080_0000), // smallest normal
            1e-45f, 1e-38f, 1e-30f, 1e-12f, 1e-9f, 1e-7f, 1e-3f, 0.1f, 0.5f, 3f, 1000f, 1e5f, 1e10f, 1e30f,
        };
        for (int exponent = -149; exponent <= 127; exponent++)
        {
            float power = MathF.ScaleB(1f, exponent);
            values.Add(power);
            values.Add(MathF.BitDecrement(power));
            values.Add(MathF.BitIncrement(power));
        }

        int count = values.Count;
        for (int i = 0; i < count; i++)
        {
            values.Add(-values[i]);
        }

        return values;
    }
}
