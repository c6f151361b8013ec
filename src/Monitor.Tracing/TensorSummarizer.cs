using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Monitor.Contracts;

namespace Monitor.Tracing;

/// <summary>
/// The fused single-pass summarizer: min, max, mean, variance, L1, L2, abs-mean, zero/NaN/Inf counts and the
/// <see cref="Log2Histogram"/> of a float32 buffer, all in one read of the memory.
/// </summary>
/// <remarks>
/// <para>The fast path runs 8-wide (AVX2) over the buffer assuming every element is finite: extremes, shifted first
/// and second moments (shifted by the first element, so the variance does not cancel catastrophically when the
/// mean dwarfs the spread), the absolute sum and the zero count are vector operations; the histogram bucket of an
/// element is its sign and exponent bits (<c>bits &gt;&gt; 23</c>), counted in one 512-bin table per vector lane so
/// that runs of equal buckets (the common case) do not serialise on one counter. Partial sums are kept in float32
/// lanes for at most 4,096 elements and then added in float64.</para>
/// <para>The exponent bins also reveal NaN and Inf (exponent field 255) and the range of magnitudes. When there is any
/// non-finite element, or magnitudes whose float32 squares could overflow (|x| ≥ 2^58) or would all be subnormal
/// (every |x| &lt; 2^-60), the result of the fast path is discarded and an exact float64 scalar pass runs instead; that
/// pass leaves non-finite elements out of the moments. Such tensors are rare and already in trouble, so they do
/// not need to be fast.</para>
/// <para>Stateless and thread-safe; allocates nothing on the heap (16 KiB of stack).</para>
/// </remarks>
public static class TensorSummarizer
{
    // Float32 lane sums are flushed to float64 every 512 vectors (4,096 elements): each lane then adds at most 512
    // values, which keeps the relative rounding error of a partial sum near 512 * 2^-24, about 3e-5 in the worst case.
    private const int VectorsPerChunk = 512;
    private const int Lanes = 8;

    // Biased float32 exponents (127 = 2^0) outside which the float32 lanes of the fast path are not trusted.
    private const int FirstUnsafeLargeExponent = 127 + 58;
    private const int LastUnsafeSmallExponent = 127 - 60;

    /// <summary>Length the <c>buckets</c> argument must have at least.</summary>
    public const int BucketCount = Log2Histogram.BucketCount;

    /// <summary>Summarizes <paramref name="values"/>.</summary>
    /// <param name="values">The elements; any length, including 0.</param>
    /// <param name="buckets">Receives the <see cref="Log2Histogram"/> counts in its first <see cref="BucketCount"/>
    /// entries (overwritten, not added to).</param>
    /// <param name="statistics">The statistics.</param>
    /// <exception cref="ArgumentException"><paramref name="buckets"/> is shorter than <see cref="BucketCount"/>.</exception>
    public static void Summarize(ReadOnlySpan<float> values, Span<ulong> buckets, out TensorStatistics statistics)
    {
        if (buckets.Length < BucketCount)
        {
            throw new ArgumentException($"buckets must hold at least {BucketCount} entries", nameof(buckets));
        }

        buckets = buckets[..BucketCount];
        buckets.Clear();
        if (Vector256.IsHardwareAccelerated && values.Length >= Lanes && TrySummarizeAllFinite(values, buckets, out statistics))
        {
            return;
        }

        buckets.Clear();
        SummarizeExact(values, buckets, out statistics);
    }

    /// <summary>
    /// The exact scalar pass (float64 throughout). Used for buffers with NaN or Inf, for very short ones, without
    /// SIMD, and by tests as the reference.
    /// </summary>
    public static void SummarizeExact(ReadOnlySpan<float> values, Span<ulong> buckets, out TensorStatistics statistics)
    {
        if (buckets.Length < BucketCount)
        {
            throw new ArgumentException($"buckets must hold at least {BucketCount} entries", nameof(buckets));
        }

        buckets[..BucketCount].Clear();
        ReadOnlySpan<byte> bucketOfRawBin = Log2Histogram.RawBinToBucket;
        long nan = 0, inf = 0, zero = 0, finite = 0;
        double min = double.PositiveInfinity, max = double.NegativeInfinity;
        double shift = double.NaN, sum = 0, sumSquares = 0, sumAbs = 0;
        foreach (float value in values)
        {
            if (float.IsNaN(value))
            {
                nan++;
                continue;
            }

            buckets[bucketOfRawBin[(int)(BitConverter.SingleToUInt32Bits(value) >> 23)]]++;
            if (float.IsInfinity(value))
            {
                inf++;
                continue;
            }

            double x = value;
            if (finite == 0)
            {
                shift = x;
            }

            finite++;
            zero += x == 0 ? 1 : 0;
            min = Math.Min(min, x);
            max = Math.Max(max, x);
            double d = x - shift;
            sum += d;
            sumSquares += d * d;
            sumAbs += Math.Abs(x);
        }

        statistics = Finish(values.Length, finite, nan, inf, zero, min, max, shift, sum, sumSquares, sumAbs);
    }

    // Fully optimised from the first call: this loop runs once per tensor, and tiered compilation would otherwise
    // run it as on-stack-replacement code that keeps the accumulators in memory (measured 15% slower).
    [SkipLocalsInit]
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static bool TrySummarizeAllFinite(ReadOnlySpan<float> values, Span<ulong> buckets, out TensorStatistics statistics)
    {
        // One 512-bin table per lane (16 KiB, stays in L1).
        Span<uint> rawCounts = stackalloc uint[Lanes * Log2Histogram.RawBinCount];
        rawCounts.Clear();
        ref uint counts = ref MemoryMarshal.GetReference(rawCounts);
        ref float start = ref MemoryMarshal.GetReference(values);
        ref ulong pairs = ref Unsafe.As<float, ulong>(ref start);

        float shift = float.IsFinite(values[0]) ? values[0] : 0f;
        Vector256<float> shiftVector = Vector256.Create(shift);
        Vector256<float> minVector = Vector256.Create(float.PositiveInfinity);
        Vector256<float> maxVector = Vector256.Create(float.NegativeInfinity);
        Vector256<int> zeroLanes = Vector256<int>.Zero;
        double sum = 0, sumSquares = 0, sumAbs = 0;

        int vectorCount = values.Length / Lanes;
        int v = 0;
        while (v < vectorCount)
        {
            int chunkEnd = Math.Min(v + VectorsPerChunk, vectorCount);
            Vector256<float> chunkSum = Vector256<float>.Zero;
            Vector256<float> chunkSquares = Vector256<float>.Zero;
            Vector256<float> chunkAbs = Vector256<float>.Zero;
            for (; v < chunkEnd; v++)
            {
                Vector256<float> x = Vector256.LoadUnsafe(ref start, (nuint)v * Lanes);
                minVector = Vector256.MinNative(minVector, x);
                maxVector = Vector256.MaxNative(maxVector, x);
                Vector256<float> d = x - shiftVector;
                chunkSum += d;
                chunkSquares = Vector256.FusedMultiplyAdd(d, d, chunkSquares);
                chunkAbs += Vector256.Abs(x);
                zeroLanes += Vector256.Equals(x, Vector256<float>.Zero).AsInt32();

                // The raw bins are read as four 64-bit words straight from the buffer (still in L1): measured
                // faster than shifting the vector and spilling its lanes.
                ref ulong word = ref Unsafe.Add(ref pairs, v * (Lanes / 2));
                ulong w0 = word, w1 = Unsafe.Add(ref word, 1), w2 = Unsafe.Add(ref word, 2), w3 = Unsafe.Add(ref word, 3);
                Unsafe.Add(ref counts, (int)((uint)w0 >> 23))++;
                Unsafe.Add(ref counts, (1 * Log2Histogram.RawBinCount) + (int)(w0 >> 55))++;
                Unsafe.Add(ref counts, (2 * Log2Histogram.RawBinCount) + (int)((uint)w1 >> 23))++;
                Unsafe.Add(ref counts, (3 * Log2Histogram.RawBinCount) + (int)(w1 >> 55))++;
                Unsafe.Add(ref counts, (4 * Log2Histogram.RawBinCount) + (int)((uint)w2 >> 23))++;
                Unsafe.Add(ref counts, (5 * Log2Histogram.RawBinCount) + (int)(w2 >> 55))++;
                Unsafe.Add(ref counts, (6 * Log2Histogram.RawBinCount) + (int)((uint)w3 >> 23))++;
                Unsafe.Add(ref counts, (7 * Log2Histogram.RawBinCount) + (int)(w3 >> 55))++;
            }

            sum += SumAsDouble(chunkSum);
            sumSquares += SumAsDouble(chunkSquares);
            sumAbs += SumAsDouble(chunkAbs);
        }

        double min = double.PositiveInfinity, max = double.NegativeInfinity;
        long zero = 0;
        for (int lane = 0; lane < Lanes; lane++)
        {
            min = Math.Min(min, minVector.GetElement(lane));
            max = Math.Max(max, maxVector.GetElement(lane));
            zero -= zeroLanes.GetElement(lane);
        }

        for (int i = vectorCount * Lanes; i < values.Length; i++)
        {
            float value = values[i];
            uint raw = BitConverter.SingleToUInt32Bits(value) >> 23;
            rawCounts[(int)raw]++;
            double x = value;
            min = Math.Min(min, x);
            max = Math.Max(max, x);
            zero += x == 0 ? 1 : 0;
            double d = x - shift;
            sum += d;
            sumSquares += d * d;
            sumAbs += Math.Abs(x);
        }

        ReadOnlySpan<byte> bucketOfRawBin = Log2Histogram.RawBinToBucket;
        int largestExponent = -1;
        for (int raw = 0; raw < Log2Histogram.RawBinCount; raw++)
        {
            ulong total = 0;
            for (int lane = 0; lane < Lanes; lane++)
            {
                total += rawCounts[(lane * Log2Histogram.RawBinCount) + raw];
            }

            if (total != 0)
            {
                largestExponent = Math.Max(largestExponent, raw & 0xFF);
            }

            buckets[bucketOfRawBin[raw]] += total;
        }

        // The float32 lanes hold squares of (x - shift) summed over up to 512 values. Leave the data to the exact pass
        // when that could overflow (|x| >= 2^58, including Inf and NaN, exponent field 255) or when even the largest
        // magnitude is so small that its square is subnormal and loses precision (|x| < 2^-60, or only subnormals).
        if (largestExponent >= FirstUnsafeLargeExponent || (largestExponent <= LastUnsafeSmallExponent && zero < values.Length))
        {
            statistics = default;
            return false;
        }

        statistics = Finish(values.Length, values.Length, 0, 0, zero, min, max, shift, sum, sumSquares, sumAbs);
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static double SumAsDouble(Vector256<float> lanes)
    {
        (Vector256<double> lower, Vector256<double> upper) = Vector256.Widen(lanes);
        return Vector256.Sum(lower + upper);
    }

    private static TensorStatistics Finish(long count, long finite, long nan, long inf, long zero, double min, double max,
        double shift, double shiftedSum, double shiftedSquares, double sumAbs)
    {
        var statistics = new TensorStatistics { Count = count, NanCount = nan, InfCount = inf, ZeroCount = zero, L1 = sumAbs };
        if (finite == 0)
        {
            statistics.Min = statistics.Max = statistics.Mean = statistics.Variance = statistics.AbsMean = double.NaN;
            return statistics;
        }

        double n = finite;
        statistics.Min = min;
        statistics.Max = max;
        statistics.Mean = shift + (shiftedSum / n);
        statistics.Variance = Math.Max(0.0, (shiftedSquares - (shiftedSum * shiftedSum / n)) / n);
        statistics.AbsMean = sumAbs / n;
        double sumOfSquares = shiftedSquares + (2.0 * shift * shiftedSum) + (n * shift * shift);
        statistics.L2 = Math.Sqrt(Math.Max(0.0, sumOfSquares));
        return statistics;
    }
}
