using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Monitor.Contracts;

namespace Monitor.Tracing;

/// <summary>
/// The fused single-pass summarizer: min, max, mean, variance, L1, L2, abs-mean, zero/NaN/Inf counts and the
/// <see cref="Log2Histogram"/> of a float32 buffer, all in one read of the memory.
/// </summary>
/// <remarks>
/// <para>The buffer is cut into chunks of 4,096 elements (16 KiB, which stay in the L1 cache while a chunk is worked
/// on). The vector pass (<see cref="Vector{T}"/>: AVX2 on x64, NEON on ARM64) reads each chunk once and computes its
/// extremes, zero count, histogram and centred sums. Each chunk's moments (count, mean, sum of squared deviations)
/// are merged in float64 with Chan's parallel formula, so no element, first or otherwise, is a shift for the whole
/// buffer.</para>
/// <para>Centred sums: a chunk is centred on the previous chunk's mean (0 for the first). Deviations and their
/// squares are summed in float32 lanes over 8 vectors at a time (each lane adds at most 8 values, a relative error
/// of at most 8 × 2^-24 = 5e-7 of the block sum, typically 1e-8 of the chunk's), then in float64. A chunk whose
/// mean lies far from its centre (more than about one standard deviation, where the float64 subtraction
/// <c>Σd² - (Σd)²/n</c> would amplify that error), whose squares could overflow or underflow float32, or which holds
/// NaN or Inf, has its moments recomputed exactly while it is still in the cache: float64, two passes over the
/// chunk, non-finite elements left out. On stationary data that happens at most for the first chunk.</para>
/// <para>Histogram: the bucket of an element is computed in the vector lanes from its sign and exponent bits
/// (<c>48 + (clamp(exponent - 95, 0, 47) XOR sign)</c>, exactly <see cref="Log2Histogram.RawBinToBucket"/>) and
/// counted with scalar increments, one 128-entry table per vector lane so that runs of equal buckets (a sparse or
/// constant tensor) do not serialise on one counter through store-to-load forwarding.</para>
/// <para>Stateless and thread-safe; allocates nothing on the heap (about 4 KiB of stack).</para>
/// </remarks>
public static class TensorSummarizer
{
    /// <summary>Length the <c>buckets</c> argument must have at least.</summary>
    public const int BucketCount = Log2Histogram.BucketCount;

    private const int ChunkLength = 4096;

    // Float32 lane sums are flushed to float64 every 8 vectors, which bounds their relative error by 8 * 2^-24.
    private const int VectorsPerBlock = 8;

    // Counter tables of raw bins (sign and exponent bits). Consecutive increments go to different tables, 32 apart,
    // so that a run of equal bins (a sparse or constant tensor) does not wait on the store-to-load forwarding of the
    // previous increment of the same counter.
    private const int TableCount = 32;

    // Tables 2 KiB apart put counters of the same bin in tables t and t + 2 exactly 4 KiB apart, where the CPU
    // mistakes a load for one depending on the other's store (4K aliasing): measured 9x slower. One cache line of
    // padding per table avoids it.
    private const int TableStride = Log2Histogram.RawBinCount + 16;

    // A chunk is recomputed exactly when its squared mean offset from the centre exceeds this fraction of the mean
    // squared deviation from the centre: the cancellation in Σd² - (Σd)²/n then amplifies float32 errors at most 2x.
    private const double CancellationLimit = 0.5;

    // Squares of deviations below 2^-63 are subnormal or zero in float32. Where the summed squares are not far above
    // n * 2^-126, their loss would show; 2^-100 per element leaves a margin of 2^26.
    private static readonly double SmallestTrustedSquarePerElement = Math.ScaleB(1.0, -100);

    /// <summary>Summarizes <paramref name="values"/>.</summary>
    /// <param name="values">The elements; any length, including 0.</param>
    /// <param name="buckets">Receives the <see cref="Log2Histogram"/> counts in its first <see cref="BucketCount"/>
    /// entries (overwritten, not added to).</param>
    /// <param name="statistics">The statistics.</param>
    /// <exception cref="ArgumentException"><paramref name="buckets"/> is shorter than <see cref="BucketCount"/>.</exception>
    public static void Summarize(ReadOnlySpan<float> values, Span<ulong> buckets, out TensorStatistics statistics)
    {
        buckets = PrepareBuckets(buckets);
        var moments = new Moments();
        int vectorLength = Vector.IsHardwareAccelerated ? values.Length - (values.Length % (2 * Vector<float>.Count)) : 0;
        if (vectorLength > 0)
        {
            SummarizeVectors(values[..vectorLength], buckets, ref moments);
        }

        AccumulateExact(values[vectorLength..], buckets, countedByVectorPass: false, ref moments);
        statistics = moments.ToStatistics(values.Length);
    }

    /// <summary>
    /// The exact scalar pass (float64 throughout, two passes over the buffer). Used by tests as the reference; the
    /// same code handles the tail and any chunk of <see cref="Summarize"/> that needs recomputing.
    /// </summary>
    /// <param name="values">The elements; any length, including 0.</param>
    /// <param name="buckets">As for <see cref="Summarize"/>.</param>
    /// <param name="statistics">The statistics.</param>
    /// <exception cref="ArgumentException"><paramref name="buckets"/> is shorter than <see cref="BucketCount"/>.</exception>
    public static void SummarizeExact(ReadOnlySpan<float> values, Span<ulong> buckets, out TensorStatistics statistics)
    {
        buckets = PrepareBuckets(buckets);
        var moments = new Moments();
        AccumulateExact(values, buckets, countedByVectorPass: false, ref moments);
        statistics = moments.ToStatistics(values.Length);
    }

    private static Span<ulong> PrepareBuckets(Span<ulong> buckets)
    {
        if (buckets.Length < BucketCount)
        {
            throw new ArgumentException($"buckets must hold at least {BucketCount} entries", nameof(buckets));
        }

        buckets = buckets[..BucketCount];
        buckets.Clear();
        return buckets;
    }

    [SkipLocalsInit]
    private static void SummarizeVectors(ReadOnlySpan<float> values, Span<ulong> buckets, ref Moments moments)
    {
        int lanes = Vector<float>.Count;
        Span<uint> counts = stackalloc uint[TableCount * TableStride];
        counts.Clear();
        Span<uint> blockBuckets = stackalloc uint[VectorsPerBlock * lanes];
        ref uint countsStart = ref MemoryMarshal.GetReference(counts);
        ref uint blockStart = ref MemoryMarshal.GetReference(blockBuckets);

        // Element i of a block counts into table i % TableCount.
        Span<uint> tableBase = stackalloc uint[TableCount];
        for (int table = 0; table < TableCount; table++)
        {
            tableBase[table] = (uint)(table * TableStride);
        }

        ref uint tableBaseStart = ref MemoryMarshal.GetReference(tableBase);
        Vector<float> globalMin = new(float.PositiveInfinity);
        Vector<float> globalMax = new(float.NegativeInfinity);
        var chunkSums = new ChunkSums { NegativeZeros = Vector<int>.Zero };
        float centre = 0f;

        for (int chunkStart = 0; chunkStart < values.Length; chunkStart += ChunkLength)
        {
            ReadOnlySpan<float> chunk = values.Slice(chunkStart, Math.Min(ChunkLength, values.Length - chunkStart));
            SumChunk(chunk, centre, ref chunkSums, ref countsStart, ref blockStart, ref tableBaseStart);
            Vector<float> chunkMin = chunkSums.Min, chunkMax = chunkSums.Max;
            double chunkSum = Vector.Sum(chunkSums.Sum), chunkSquares = Vector.Sum(chunkSums.Squares);
            double chunkAbsolute = Vector.Sum(chunkSums.Absolute);
            double n = chunk.Length;
            double offset = chunkSum / n;
            bool exact = !double.IsFinite(chunkSquares + chunkAbsolute)
                || offset * offset > CancellationLimit * chunkSquares / n
                || (chunkSquares < n * SmallestTrustedSquarePerElement && !AllEqual(chunkMin, chunkMax));
            if (exact)
            {
                // NaN, Inf, overflow, underflow or cancellation: the chunk is still in the cache.
                AccumulateExact(chunk, buckets, countedByVectorPass: true, ref moments);
                if (moments.LastChunkMean is double mean && double.IsFinite(mean))
                {
                    centre = (float)mean;
                }

                continue;
            }

            globalMin = Vector.Min(globalMin, chunkMin);
            globalMax = Vector.Max(globalMax, chunkMax);
            double chunkMean = centre + offset;
            moments.Merge(chunk.Length, chunkMean, chunkSquares - (chunkSum * offset), chunkAbsolute);
            centre = (float)chunkMean;
        }

        moments.Zero -= Vector.Sum(chunkSums.NegativeZeros);
        moments.Min = Math.Min(moments.Min, Min(globalMin));
        moments.Max = Math.Max(moments.Max, Max(globalMax));

        ReadOnlySpan<byte> bucketOfRawBin = Log2Histogram.RawBinToBucket;
        for (int raw = 0; raw < Log2Histogram.RawBinCount; raw++)
        {
            ulong total = 0;
            for (int table = raw; table < counts.Length; table += TableStride)
            {
                total += counts[table];
            }

            buckets[bucketOfRawBin[raw]] += total;
        }
    }

    // Fully optimised from the first call: this loop runs once per chunk, and tiered compilation would otherwise run
    // it as on-stack-replacement code that keeps the accumulators in memory. One chunk, kept apart so that the register allocator sees only the vectors of the inner loop (with the caller's
    // state in the same method, AVX2's 16 registers overflowed and every accumulator went through the stack).
    [SkipLocalsInit]
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void SumChunk(ReadOnlySpan<float> chunk, float centre, ref ChunkSums sums, ref uint counts, ref uint blockBuckets, ref uint tableBase)
    {
        int lanes = Vector<float>.Count;
        ref float start = ref MemoryMarshal.GetReference(chunk);
        int vectorCount = chunk.Length / lanes;
        Vector<float> c = new(centre);
        Vector<float> min = new(float.PositiveInfinity);
        Vector<float> max = new(float.NegativeInfinity);
        Vector<int> negativeZeros = sums.NegativeZeros;
        sums.Sum = sums.Squares = sums.Absolute = Vector<double>.Zero;
        for (int blockFirst = 0; blockFirst < vectorCount; blockFirst += VectorsPerBlock)
        {
            int blockVectors = Math.Min(VectorsPerBlock, vectorCount - blockFirst);
            ref float block = ref Unsafe.Add(ref start, blockFirst * lanes);
            // Two sets of lane sums: one set alone would wait on the latency of its adds (3-4 cycles) every vector.
            Vector<float> sum0 = Vector<float>.Zero, squares0 = Vector<float>.Zero, absolute0 = Vector<float>.Zero;
            Vector<float> sum1 = Vector<float>.Zero, squares1 = Vector<float>.Zero, absolute1 = Vector<float>.Zero;
            for (int v = 0; v < blockVectors; v += 2)
            {
                Vector<float> x0 = Vector.LoadUnsafe(ref block, (nuint)(v * lanes));
                Vector<float> x1 = Vector.LoadUnsafe(ref block, (nuint)((v + 1) * lanes));
                min = Vector.MinNative(min, Vector.MinNative(x0, x1));
                max = Vector.MaxNative(max, Vector.MaxNative(x0, x1));
                negativeZeros += Vector.Equals(x0, Vector<float>.Zero) + Vector.Equals(x1, Vector<float>.Zero);
                Vector<float> d0 = x0 - c;
                Vector<float> d1 = x1 - c;
                sum0 += d0;
                sum1 += d1;
                squares0 = Vector.FusedMultiplyAdd(d0, d0, squares0);
                squares1 = Vector.FusedMultiplyAdd(d1, d1, squares1);
                absolute0 += Vector.Abs(x0);
                absolute1 += Vector.Abs(x1);

                ref uint tables = ref Unsafe.Add(ref tableBase, (v * lanes) & (TableCount - 1));
                (Vector.ShiftRightLogical(Vector.AsVectorUInt32(x0), 23) + Vector.LoadUnsafe(ref tables))
                    .StoreUnsafe(ref blockBuckets, (nuint)(v * lanes));
                (Vector.ShiftRightLogical(Vector.AsVectorUInt32(x1), 23) + Vector.LoadUnsafe(ref tables, (nuint)lanes))
                    .StoreUnsafe(ref blockBuckets, (nuint)((v + 1) * lanes));
            }

            sums.Sum += WidenSum(sum0 + sum1);
            sums.Squares += WidenSum(squares0 + squares1);
            sums.Absolute += WidenSum(absolute0 + absolute1);
            CountBuckets(ref counts, ref blockBuckets, blockVectors * lanes);
        }

        sums.Min = min;
        sums.Max = max;
        sums.NegativeZeros = negativeZeros;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CountBuckets(ref uint counts, ref uint indices, int length)
    {
        // Lanes are 4, 8 or 16 wide, so length is a multiple of 4. Unsigned indices: no sign extension per element.
        ref uint end = ref Unsafe.Add(ref indices, length);
        while (Unsafe.IsAddressLessThan(ref indices, ref end))
        {
            Unsafe.Add(ref counts, (nuint)indices)++;
            Unsafe.Add(ref counts, (nuint)Unsafe.Add(ref indices, 1))++;
            Unsafe.Add(ref counts, (nuint)Unsafe.Add(ref indices, 2))++;
            Unsafe.Add(ref counts, (nuint)Unsafe.Add(ref indices, 3))++;
            indices = ref Unsafe.Add(ref indices, 4);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector<double> WidenSum(Vector<float> lanes)
    {
        Vector.Widen(lanes, out Vector<double> lower, out Vector<double> upper);
        return lower + upper;
    }

    private static bool AllEqual(Vector<float> min, Vector<float> max) => Min(min) == Max(max);

    private static double Min(Vector<float> lanes)
    {
        float min = float.PositiveInfinity;
        for (int i = 0; i < Vector<float>.Count; i++)
        {
            min = Math.Min(min, lanes[i]);
        }

        return min;
    }

    private static double Max(Vector<float> lanes)
    {
        float max = float.NegativeInfinity;
        for (int i = 0; i < Vector<float>.Count; i++)
        {
            max = Math.Max(max, lanes[i]);
        }

        return max;
    }

    /// <summary>
    /// Float64, two passes over <paramref name="values"/>; merges the result into <paramref name="moments"/>.
    /// With <paramref name="countedByVectorPass"/> the histogram and the zero count of these elements are already
    /// counted, NaN included (in the bucket of its sign and exponent bits), so only the NaN are taken out again.
    /// </summary>
    private static void AccumulateExact(ReadOnlySpan<float> values, Span<ulong> buckets, bool countedByVectorPass, ref Moments moments)
    {
        ReadOnlySpan<byte> bucketOfRawBin = Log2Histogram.RawBinToBucket;
        long nan = 0, inf = 0, zero = 0, finite = 0;
        double min = double.PositiveInfinity, max = double.NegativeInfinity, sum = 0, sumAbs = 0;
        foreach (float value in values)
        {
            int bucket = bucketOfRawBin[(int)(BitConverter.SingleToUInt32Bits(value) >> 23)];
            if (float.IsNaN(value))
            {
                nan++;
                if (countedByVectorPass)
                {
                    // Unsigned wrap-around is undone when the vector pass's tables are added at the end.
                    buckets[bucket]--;
                }

                continue;
            }

            if (!countedByVectorPass)
            {
                buckets[bucket]++;
                zero += value == 0 ? 1 : 0;
            }

            if (float.IsInfinity(value))
            {
                inf++;
                continue;
            }

            double x = value;
            finite++;
            min = Math.Min(min, x);
            max = Math.Max(max, x);
            sum += x;
            sumAbs += Math.Abs(x);
        }

        moments.Nan += nan;
        moments.Inf += inf;
        moments.Zero += zero;
        moments.LastChunkMean = null;
        if (finite == 0)
        {
            return;
        }

        double mean = sum / finite;
        double deviations = 0, squares = 0;
        foreach (float value in values)
        {
            if (float.IsFinite(value))
            {
                double d = value - mean;
                deviations += d;
                squares += d * d;
            }
        }

        moments.Min = Math.Min(moments.Min, min);
        moments.Max = Math.Max(moments.Max, max);
        moments.Merge(finite, mean + (deviations / finite), squares - (deviations * deviations / finite), sumAbs);
    }

    /// <summary>What <see cref="SumChunk"/> returns: lane-wise sums and extremes of one chunk, and the zero count so far.</summary>
    private struct ChunkSums
    {
        public Vector<double> Sum;
        public Vector<double> Squares;
        public Vector<double> Absolute;
        public Vector<float> Min;
        public Vector<float> Max;
        public Vector<int> NegativeZeros;
    }

    /// <summary>Finite-element moments merged chunk by chunk (Chan, Golub and LeVeque), plus the counts.</summary>
    private struct Moments
    {
        public long Finite;
        public long Nan;
        public long Inf;
        public long Zero;
        public double Mean;
        public double SquaredDeviations;
        public double AbsoluteSum;
        public double Min;
        public double Max;
        public double? LastChunkMean;

        public Moments()
        {
            Min = double.PositiveInfinity;
            Max = double.NegativeInfinity;
        }

        public void Merge(long count, double mean, double squaredDeviations, double absoluteSum)
        {
            AbsoluteSum += absoluteSum;
            LastChunkMean = mean;
            squaredDeviations = Math.Max(0.0, squaredDeviations);
            if (Finite == 0)
            {
                Finite = count;
                Mean = mean;
                SquaredDeviations = squaredDeviations;
                return;
            }

            long total = Finite + count;
            double delta = mean - Mean;
            double weight = (double)count / total;
            Mean += delta * weight;
            SquaredDeviations += squaredDeviations + (delta * delta * Finite * weight);
            Finite = total;
        }

        public readonly TensorStatistics ToStatistics(long count)
        {
            var statistics = new TensorStatistics
            {
                Count = count, NanCount = Nan, InfCount = Inf, ZeroCount = Zero, L1 = AbsoluteSum,
            };
            if (Finite == 0)
            {
                statistics.Min = statistics.Max = statistics.Mean = statistics.Variance = statistics.AbsMean = double.NaN;
                return statistics;
            }

            double n = Finite;
            statistics.Min = Min;
            statistics.Max = Max;
            statistics.Mean = Mean;
            statistics.Variance = SquaredDeviations / n;
            statistics.AbsMean = AbsoluteSum / n;
            statistics.L2 = Math.Sqrt(SquaredDeviations + (n * Mean * Mean));
            return statistics;
        }
    }
}
