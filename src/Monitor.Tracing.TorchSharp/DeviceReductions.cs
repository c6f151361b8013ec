using Monitor.Contracts;
using static TorchSharp.torch;

namespace Monitor.Tracing.TorchSharp;

/// <summary>
/// The summary of a tensor as torch operations on its own device, without a device-to-host synchronisation: one
/// float64 row of <see cref="Width"/> entries per chunk of at most <see cref="ChunkElements"/> elements (finite count,
/// NaN count, Inf count, zero count, min, max, sum, the sum of squared deviations from the chunk's mean, sum of |x|,
/// then the <see cref="Log2Histogram"/> counts). The rows of every tensor of a step are copied to the host together
/// and merged there (<see cref="Read"/>, Chan's formula across chunks).
/// </summary>
/// <remarks>
/// <para><b>No synchronisation.</b> Every operation has an output whose size is known on the host: no
/// <c>masked_select</c>, <c>nonzero</c>, <c>bincount</c> (which reads its maximum back) or <c>item</c>. The histogram
/// is <c>histc</c> over bucket indices with fixed bounds; NaN gets an index outside them. So capturing a tensor, in a
/// forward hook or after backward, only queues kernels.</para>
/// <para><b>Precision.</b> Elements are read in float32 (other dtypes are converted on the device, chunk by chunk);
/// every sum accumulates each element in float64, and the deviations are taken from the chunk's own mean, so a large
/// offset does not cancel the variance away. The bucket of an element comes from its exact binary
/// exponent (<c>frexp</c>), so it agrees with the fused summarizer's exponent bits, subnormals included.</para>
/// <para><b>Memory.</b> A chunk's temporaries are at most about three float32-sized tensors alive at once (the masked
/// values, the scaled deviations or the bucket indices, boolean masks), each disposed as soon as it is used, plus the
/// 8 MB float64 copy of a slice being summed (<see cref="Float64Sum"/>); tensors above <see cref="ChunkElements"/> are
/// reduced chunk by chunk, so their temporaries stay bounded by the chunk.</para>
/// <para>On CPU this composition is far slower than <see cref="TensorSummarizer"/> (see the benchmarks), which is why
/// CPU tensors do not use it by default.</para>
/// </remarks>
internal static class DeviceReductions
{
    private const int ScalarCount = 9;

    /// <summary>Entries of one chunk's row.</summary>
    public const int Width = ScalarCount + Log2Histogram.BucketCount;

    /// <summary>Largest chunk: 2^24 elements (64 MB of float32). Also keeps <c>histc</c>'s float32 counts exact.</summary>
    public const long ChunkElements = 1L << 24;

    // Elements per float64 sum (Float64Sum): their float64 copy is 8 MB.
    private const long SumSlice = 1L << 20;

    // Bucket index given to NaN: outside histc's [0, BucketCount] bounds, so it is not counted.
    private const int NanBucket = 2 * Log2Histogram.BucketCount;

    /// <summary>Chunks of a tensor of <paramref name="count"/> elements (at least one).</summary>
    public static long ChunksOf(long count, long chunkElements = ChunkElements) => Math.Max(1, (count + chunkElements - 1) / chunkElements);

    /// <summary>
    /// Queues the reductions of <paramref name="tensor"/> on its device: a float64 tensor of
    /// <see cref="ChunksOf"/> × <see cref="Width"/>, flattened. The caller owns (disposes) it.
    /// </summary>
    public static Tensor Compute(Tensor tensor, long chunkElements = ChunkElements)
    {
        using var scope = NewDisposeScope();
        Tensor flat = tensor.detach().reshape(-1);
        long count = flat.numel();
        long chunks = ChunksOf(count, chunkElements);
        var rows = new Tensor[chunks];
        for (long c = 0; c < chunks; c++)
        {
            long start = c * chunkElements;
            using Tensor chunk = flat.slice(0, start, Math.Min(count, start + chunkElements), 1);
            rows[c] = ComputeChunk(chunk);
        }

        Tensor result = chunks == 1 ? rows[0] : cat(rows, 0);
        return result.MoveToOuterDisposeScope();
    }

    private static Tensor ComputeChunk(Tensor chunk)
    {
        using var scope = NewDisposeScope();
        Tensor x = chunk.dtype == ScalarType.Float32 ? chunk : chunk.to_type(ScalarType.Float32);
        Tensor nanCount;
        Tensor histogram;
        using (Tensor nan = x.isnan())
        {
            nanCount = Count(nan);
            using Tensor bucket = BucketIndices(x, nan);
            histogram = bucket.histc(Log2Histogram.BucketCount, 0, Log2Histogram.BucketCount).to_type(ScalarType.Float64);
        }

        Tensor zeroCount;
        using (Tensor zero = x.eq(0))
        {
            zeroCount = Count(zero);
        }

        Tensor finiteCount;
        Tensor min;
        Tensor max;
        Tensor sum;
        Tensor absSum;
        Tensor squaredDeviations;
        using (Tensor notFinite = x.isfinite().logical_not_())
        {
            finiteCount = x.numel() - Count(notFinite);
            Tensor finite = finiteCount.clamp_min(1);
            using Tensor masked = x.masked_fill(notFinite, float.PositiveInfinity);
            min = masked.min().to_type(ScalarType.Float64);
            masked.masked_fill_(notFinite, float.NegativeInfinity);
            max = masked.max().to_type(ScalarType.Float64);
            masked.masked_fill_(notFinite, 0f);
            // The deviations from the mean are taken and squared in float32 after scaling by a power of two that brings
            // the largest magnitude below 1, so that neither the difference nor its square overflows float32; their
            // sum corrects for the mean's rounding to float32, and a large offset does not cancel the variance away.
            Tensor scale = PowerOfTwoScale(maximum(min.abs(), max.abs()));
            sum = Float64Sum(masked);
            Tensor shift = sum / finite * scale;
            using (Tensor deviation = masked * scale)
            {
                deviation.sub_(shift).masked_fill_(notFinite, 0f);
                Tensor deviations = Float64Sum(deviation);
                deviation.mul_(deviation);
                squaredDeviations = (Float64Sum(deviation) - (deviations * deviations / finite)).clamp_min_(0) / (scale * scale);
            }

            absSum = Float64Sum(masked.abs_());
        }

        Tensor infCount = (x.numel() - nanCount) - finiteCount;
        Tensor row = cat([stack([finiteCount, nanCount, infCount, zeroCount, min, max, sum, squaredDeviations, absSum]), histogram], 0);
        return row.MoveToOuterDisposeScope();
    }

    /// <summary>The true elements of a mask, as a 0-dim float64 tensor (count_nonzero: no float64 copy of the mask).</summary>
    private static Tensor Count(Tensor mask) => mask.count_nonzero().to_type(ScalarType.Float64);

    /// <summary>
    /// The float64 sum of a 1-D float32 tensor, every element accumulated in float64 (a float32 sum would lose a mean
    /// that cancels to a small residual). <c>sum(type: Float64)</c> reads a float64 copy of its input, so the tensor is
    /// summed in slices of <see cref="SumSlice"/> elements: the copy alive at once is at most 8 MB.
    /// </summary>
    private static Tensor Float64Sum(Tensor values)
    {
        long count = values.numel();
        if (count <= SumSlice)
        {
            return values.sum(type: ScalarType.Float64);
        }

        using var scope = NewDisposeScope();
        var sums = new Tensor[(count + SumSlice - 1) / SumSlice];
        for (int i = 0; i < sums.Length; i++)
        {
            long start = i * SumSlice;
            using Tensor slice = values.slice(0, start, Math.Min(count, start + SumSlice), 1);
            sums[i] = slice.sum(type: ScalarType.Float64);
        }

        return stack(sums).sum().MoveToOuterDisposeScope();
    }

    /// <summary>2^-e for a magnitude m = f·2^e (f in [0.5, 1)), as a 0-dim float64 tensor, computed on the device; 1 when m
    /// is 0 or not finite (no finite element), and at most 2^126 so that it stays a float32 number.</summary>
    private static Tensor PowerOfTwoScale(Tensor magnitude)
    {
        using var scope = NewDisposeScope();
        Tensor finite = where(magnitude.isfinite(), magnitude, zeros_like(magnitude));
        (Tensor fraction, Tensor exponent) = frexp(finite);
        fraction.Dispose();
        Tensor scale = exponent.to_type(ScalarType.Float64).clamp_min_(-126).neg_().exp2_();
        return scale.MoveToOuterDisposeScope();
    }

    /// <summary>Each element's <see cref="Log2Histogram"/> bucket as float32 (NaN: <see cref="NanBucket"/>), built in
    /// place in two float32-sized tensors.</summary>
    private static Tensor BucketIndices(Tensor x, Tensor nan)
    {
        using var scope = NewDisposeScope();
        // frexp: x = m·2^e with |m| in [0.5, 1), so floor(log2|x|) = e - 1, exactly (subnormals too).
        (Tensor mantissa, Tensor exponent) = frexp(x);
        mantissa.Dispose();
        Tensor side = exponent.to_type(ScalarType.Float32);
        exponent.Dispose();
        // Side index 1 + floor(log2|x|) - InnermostExponent, clamped to the side's buckets.
        side.add_(-Log2Histogram.InnermostExponent).clamp_(0, Log2Histogram.BucketsPerSign - 1);
        // Zero (frexp gives e = 0) is innermost; infinity (e is unspecified) is outermost.
        using (Tensor zero = x.eq(0))
        {
            side.masked_fill_(zero, 0f);
        }

        using (Tensor inf = x.isinf())
        {
            side.masked_fill_(inf, Log2Histogram.BucketsPerSign - 1);
        }

        // Bucket = BucketsPerSign + side for x >= +0, BucketsPerSign - 1 - side for x <= -0:
        // side · (1 - 2s) + (BucketsPerSign - s), with s the sign bit.
        using (Tensor sign = x.signbit().to_type(ScalarType.Float32))
        {
            side.mul_(sign.mul_(-2).add_(1));
            side.add_(sign.sub_(1).mul_(0.5).add_(Log2Histogram.BucketsPerSign));
        }

        side.masked_fill_(nan, NanBucket);
        return side.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Merges the <paramref name="chunks"/> rows of one tensor (as copied to the host) into its statistics and
    /// histogram.
    /// </summary>
    public static void Read(ReadOnlySpan<double> reductions, long chunks, long count, Span<ulong> buckets, out TensorStatistics statistics)
    {
        buckets[..Log2Histogram.BucketCount].Clear();
        double finite = 0;
        double mean = 0;
        double squaredDeviations = 0;
        double squares = 0;
        double min = double.PositiveInfinity;
        double max = double.NegativeInfinity;
        double absSum = 0;
        long nanCount = 0;
        long infCount = 0;
        long zeroCount = 0;
        for (long c = 0; c < chunks; c++)
        {
            ReadOnlySpan<double> row = reductions.Slice((int)(c * Width), Width);
            double n = row[0];
            nanCount += (long)row[1];
            infCount += (long)row[2];
            zeroCount += (long)row[3];
            absSum += row[8];
            for (int b = 0; b < Log2Histogram.BucketCount; b++)
            {
                buckets[b] += (ulong)row[ScalarCount + b];
            }

            if (n == 0)
            {
                continue;
            }

            double chunkMean = row[6] / n;
            squares += row[7] + (n * chunkMean * chunkMean);
            min = Math.Min(min, row[4]);
            max = Math.Max(max, row[5]);
            // Chan et al.: the pairwise update of the mean and the sum of squared deviations.
            double total = finite + n;
            double delta = chunkMean - mean;
            squaredDeviations += row[7] + (delta * delta * finite * n / total);
            mean += delta * n / total;
            finite = total;
        }

        statistics = new TensorStatistics
        {
            Count = count,
            NanCount = nanCount,
            InfCount = infCount,
            ZeroCount = zeroCount,
            L1 = absSum,
        };
        if (finite == 0)
        {
            statistics.Min = statistics.Max = statistics.Mean = statistics.Variance = statistics.AbsMean = double.NaN;
            return;
        }

        statistics.Min = min;
        statistics.Max = max;
        statistics.Mean = mean;
        statistics.Variance = squaredDeviations / finite;
        statistics.L2 = Math.Sqrt(squares);
        statistics.AbsMean = absSum / finite;
    }
}
