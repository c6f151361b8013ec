using Monitor.Contracts;
using static TorchSharp.torch;

namespace Monitor.Tracing.TorchSharp;

/// <summary>
/// The summary of a tensor as torch reductions on its own device: a float64 vector of <see cref="Width"/> entries
/// (finite count, NaN count, Inf count, zero count, min, max, sum, sum of squares, sum of |x|, then the
/// <see cref="Log2Histogram"/> counts). Many such vectors are stacked and copied to the host in one transfer.
/// </summary>
/// <remarks>
/// On CPU this composition of ~20 torch operations is far slower than <see cref="TensorSummarizer"/> (see the
/// benchmarks), which is why CPU tensors do not use it by default. Sums are in float64; the bucket of each element
/// comes from <c>floor(log2|x|)</c> computed in float64, so it agrees with the fused summarizer's exponent bits.
/// </remarks>
internal static class DeviceReductions
{
    private const int ScalarCount = 9;

    public const int Width = ScalarCount + Log2Histogram.BucketCount;

    public static Tensor Compute(Tensor tensor)
    {
        using var scope = NewDisposeScope();
        Tensor x = tensor.detach().reshape(-1);
        if (x.dtype != ScalarType.Float32)
        {
            x = x.to_type(ScalarType.Float32);
        }

        Tensor nan = x.isnan();
        Tensor inf = x.isinf();
        Tensor finite = x.isfinite();
        Tensor xd = where(finite, x, zeros_like(x)).to_type(ScalarType.Float64);
        Tensor scalars = stack(
        [
            finite.sum(type: ScalarType.Float64),
            nan.sum(type: ScalarType.Float64),
            inf.sum(type: ScalarType.Float64),
            x.eq(0).sum(type: ScalarType.Float64),
            where(finite, x, full_like(x, float.PositiveInfinity)).min().to_type(ScalarType.Float64),
            where(finite, x, full_like(x, float.NegativeInfinity)).max().to_type(ScalarType.Float64),
            xd.sum(),
            (xd * xd).sum(),
            xd.abs().sum(),
        ]);

        Tensor side = (x.abs().to_type(ScalarType.Float64).log2().floor() + (1 - Log2Histogram.InnermostExponent))
            .clamp(0, Log2Histogram.BucketsPerSign - 1);
        Tensor bucket = where(x.signbit(), (Log2Histogram.BucketsPerSign - 1) - side, Log2Histogram.BucketsPerSign + side);
        Tensor counted = bucket.masked_select(nan.logical_not()).to_type(ScalarType.Int64);
        Tensor histogram = counted.bincount(null, Log2Histogram.BucketCount).to_type(ScalarType.Float64);
        return cat([scalars, histogram], 0).MoveToOuterDisposeScope();
    }

    public static void Read(ReadOnlySpan<double> reductions, long count, Span<ulong> buckets, out TensorStatistics statistics)
    {
        double finite = reductions[0];
        statistics = new TensorStatistics
        {
            Count = count,
            NanCount = (long)reductions[1],
            InfCount = (long)reductions[2],
            ZeroCount = (long)reductions[3],
            L1 = reductions[8],
        };
        for (int b = 0; b < Log2Histogram.BucketCount; b++)
        {
            buckets[b] = (ulong)reductions[ScalarCount + b];
        }

        if (finite == 0)
        {
            statistics.Min = statistics.Max = statistics.Mean = statistics.Variance = statistics.AbsMean = double.NaN;
            return;
        }

        double mean = reductions[6] / finite;
        statistics.Min = reductions[4];
        statistics.Max = reductions[5];
        statistics.Mean = mean;
        statistics.Variance = Math.Max(0.0, (reductions[7] / finite) - (mean * mean));
        statistics.L2 = Math.Sqrt(reductions[7]);
        statistics.AbsMean = reductions[8] / finite;
    }
}
