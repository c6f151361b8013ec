namespace Monitor.Contracts;

/// <summary>
/// The default histogram layout: signed log2 magnitude buckets with fixed edges
/// <c>-inf, -2^15, ..., -2^-31, 0, 2^-31, ..., 2^15, +inf</c> (96 buckets, 97 edges).
/// </summary>
/// <remarks>
/// Fixed edges let the tracer fill the histogram in the same single pass that computes the moments (no
/// min/max pass first) and make histograms of different steps, ranks and tensors directly comparable. Log2
/// magnitude suits what is monitored: gradients and weights span many orders of magnitude, and vanishing or
/// exploding values show as mass moving to the inner or outer buckets. Bucket index for float32 comes straight
/// from the sign and exponent bits (see <see cref="RawBinToBucket"/>).
/// </remarks>
public static class Log2Histogram
{
    /// <summary>Buckets on each side of zero.</summary>
    public const int BucketsPerSign = 48;

    /// <summary>Total bucket count.</summary>
    public const int BucketCount = 2 * BucketsPerSign;

    /// <summary>Exponent of the innermost non-zero edge (2^-31).</summary>
    public const int InnermostExponent = -31;

    /// <summary>Exponent of the outermost finite edge (2^15).</summary>
    public const int OutermostExponent = 15;

    /// <summary>
    /// Consecutive elements in each block of a sampled histogram (<c>Histogram.sampled_count</c> not 0): the tracer
    /// counts whole blocks of 64 elements, one drawn uniformly at random in each of at least 4,096 equal strata.
    /// </summary>
    public const int SampleBlockLength = 64;

    /// <summary>
    /// The error bound of a sampled histogram: with probability at least <c>1 - <paramref name="alpha"/></c>, the share
    /// of the sample in any one bucket (or in any one fixed set of buckets, such as those below a bound) lies within
    /// this of that bucket's share of the whole tensor.
    /// </summary>
    /// <remarks>
    /// Neighbouring elements are correlated, so the bound counts blocks, not elements: with <c>m = sampledCount /
    /// <see cref="SampleBlockLength"/></c> blocks, one drawn independently in each of m equal strata, a bucket's share
    /// of the sample is the mean of m independent shares in [0, 1] whose expectation is its share of the strata, so
    /// Hoeffding's inequality gives <c>sqrt(ln(2 / alpha) / (2m))</c>; <c>2 / m</c> more covers the elements outside
    /// every stratum (fewer than a stratum's blocks and the last partial block). For a simple random sample of n
    /// single elements the bound would be <c>sqrt(ln(2 / alpha) / (2n))</c> (Hoeffding, or DKW for all buckets at
    /// once), 8x tighter; data without structure within a block get close to that. With the tracer's minimum of
    /// 4,096 blocks and alpha = 1e-6 the bound is 0.043. Assumes no NaN, which the histogram does not count.
    /// </remarks>
    /// <param name="sampledCount">The histogram's <c>sampled_count</c> (not 0).</param>
    /// <param name="alpha">The probability that the bound fails, in (0, 1).</param>
    /// <returns>The bound on the difference of shares; 1 when <paramref name="sampledCount"/> is below one block.</returns>
    public static double SampledFractionErrorBound(ulong sampledCount, double alpha)
    {
        double blocks = (double)sampledCount / SampleBlockLength;
        return blocks < 1 ? 1.0 : Math.Min(1.0, Math.Sqrt(Math.Log(2 / alpha) / (2 * blocks)) + (2 / blocks));
    }

    /// <summary>Raw bins: one per (sign bit, 8-bit float32 exponent field).</summary>
    public const int RawBinCount = 512;

    private static readonly double[] EdgeValues = BuildEdges();

    /// <summary>The 97 edges, ascending.</summary>
    public static ReadOnlySpan<double> Edges => EdgeValues;

    /// <summary>
    /// Maps a raw bin <c>(float32 bits &gt;&gt; 23)</c>, i.e. sign bit and biased exponent, to its bucket index.
    /// Exponent field 0 (zero, subnormal) maps to the innermost bucket, 255 (Inf, NaN) to the outermost.
    /// </summary>
    public static ReadOnlySpan<byte> RawBinToBucket => RawBinToBucketTable;

    private static readonly byte[] RawBinToBucketTable = BuildRawBinMap();

    /// <summary>Bucket index of a value (NaN has none: callers leave it out).</summary>
    public static int BucketOf(double value)
    {
        bool negative = double.IsNegative(value);
        double magnitude = Math.Abs(value);
        int sideIndex;
        if (magnitude < Math.ScaleB(1.0, InnermostExponent))
        {
            sideIndex = 0;
        }
        else if (magnitude >= Math.ScaleB(1.0, OutermostExponent))
        {
            sideIndex = BucketsPerSign - 1;
        }
        else
        {
            sideIndex = Math.ILogB(magnitude) - InnermostExponent + 1;
        }

        return negative ? BucketsPerSign - 1 - sideIndex : BucketsPerSign + sideIndex;
    }

    private static double[] BuildEdges()
    {
        var edges = new double[BucketCount + 1];
        edges[0] = double.NegativeInfinity;
        edges[BucketCount] = double.PositiveInfinity;
        edges[BucketsPerSign] = 0.0;
        for (int j = 1; j < BucketsPerSign; j++)
        {
            double edge = Math.ScaleB(1.0, InnermostExponent + j - 1);
            edges[BucketsPerSign + j] = edge;
            edges[BucketsPerSign - j] = -edge;
        }

        return edges;
    }

    private static byte[] BuildRawBinMap()
    {
        var map = new byte[RawBinCount];
        for (int raw = 0; raw < RawBinCount; raw++)
        {
            bool negative = raw >= 256;
            int biased = raw & 0xFF;
            int sideIndex;
            if (biased == 0)
            {
                sideIndex = 0;
            }
            else
            {
                int exponent = biased - 127;
                sideIndex = exponent < InnermostExponent ? 0
                    : exponent >= OutermostExponent ? BucketsPerSign - 1
                    : exponent - InnermostExponent + 1;
            }

            map[raw] = (byte)(negative ? BucketsPerSign - 1 - sideIndex : BucketsPerSign + sideIndex);
        }

        return map;
    }
}
