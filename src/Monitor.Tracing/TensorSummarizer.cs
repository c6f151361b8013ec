using System.Numerics;
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
/// <para>The buffer is cut into chunks of 4,096 elements (16 KiB, which stay in the L1 cache while a chunk is worked
/// on). The vector pass (<see cref="Vector{T}"/>: AVX2 on x64, NEON on ARM64) reads each chunk once and computes its
/// extremes, zero count, histogram and centred sums. Each chunk's moments (count, mean, sum of squared deviations)
/// are merged in float64 with Chan's parallel formula, so no element, first or otherwise, is a shift for the whole
/// buffer.</para>
/// <para>Centred sums: a chunk is centred on the previous chunk's mean (0 for the first), and, once one chunk's mean
/// has moved from its centre by more than its spread, each later chunk on the mean of its own first vector. Deviations and their
/// squares are summed in float32 lanes over 8 vectors at a time (each lane adds at most 8 values, a relative error
/// of at most 8 × 2^-24 = 5e-7 of the block sum, typically 1e-8 of the chunk's), then in float64. A chunk whose
/// mean lies far from its centre (more than about one standard deviation, where the float64 subtraction
/// <c>Σd² - (Σd)²/n</c> would amplify that error), whose squares could overflow or underflow float32, or which holds
/// NaN or Inf, has its moments recomputed while it is still in the cache: a mean more than the spread away has the
/// deviations summed again from the chunk's own mean (the rows of a gradient matrix each have their own mean), and
/// what is still off, or not finite, is recomputed exactly: float64, two passes over the chunk, non-finite elements
/// left out. On stationary data that happens at most for the first chunk.</para>
/// <para>Histogram: the vector lanes compute a side code per element from its sign and exponent bits: |x| clamped
/// as an integer to the bits of [2^-32, 2^15] (zeros and subnormals fall on the lower bound, Inf and NaN on the upper
/// one), its biased exponent less 95 (the side index 0-47), plus 48 for a set sign bit; that is exactly
/// <see cref="Log2Histogram.RawBinToBucket"/>. Element i of one vector and element i of the next form a pair, and a
/// pair is counted with one scalar increment of its (first code, second code) counter: half the increments of
/// counting elements one by one, and the increments (the stores) were the bottleneck. Lane i counts into the
/// 96 x 96 counter table i mod 8, so that runs of equal pairs (a sparse or constant tensor) do not serialise on one
/// counter through store-to-load forwarding. At the end each counter is added to the bucket of its row and to the
/// bucket of its column, and cleared; only the codes between the extremes are visited (all of them when NaN or Inf
/// were seen).</para>
/// <para>Lanes: <see cref="Vector{T}"/>, 8 floats with AVX2 or AVX-512 on x64 (.NET keeps <see cref="Vector{T}"/>
/// at 256 bits unless <c>DOTNET_MaxVectorTBitWidth=512</c>; 512 bits measured a few percent faster, within noise)
/// and 4 with NEON on ARM64, so every platform with vector hardware takes the same path.</para>
/// <para>Sampled histogram: from <see cref="SamplingThreshold"/> (2^20) elements, the pass above computes the statistics
/// only (in 512-bit vectors where <see cref="Vector512"/> is accelerated and <see cref="Vector{T}"/> is narrower), and
/// the histogram is counted from a sample: the blocks of <see cref="SampleBlockLength"/> (64) elements are cut into
/// equal strata, at least <see cref="SampleStrata"/> (4,096) of them, and one block drawn uniformly in each is counted
/// as above, right after its chunk's statistics while the chunk is in the cache (at least 2^18 elements; 2.6% of a
/// 10M-element tensor). Stratified random blocks rather than a prefix or a fixed stride: a prefix misses whatever lies
/// further on (sorted data), a fixed stride aliases with periodic layouts (rows of a matrix), while one random block per
/// stratum keeps the sample spread over the whole tensor and the strata independent, which is what the error bound
/// needs. Whole blocks keep the reads vector-wide. The generator is seeded from the length and three elements' bits:
/// the same tensor gives the same histogram. <see cref="TensorStatistics.HistogramSampledCount"/> is the number of
/// elements counted (the sample's, less its NaN; 0 for an exact histogram), and each bucket's share of it is within
/// <see cref="Log2Histogram.SampledFractionErrorBound"/> of the bucket's share of the tensor with probability
/// 1 - alpha (0.043 at 4,096 blocks and alpha 1e-6: Hoeffding's inequality over the blocks, not the elements, since
/// neighbours are correlated). Min, max, the moments, the norms and the zero, NaN and Inf counts read every element
/// and stay exact. Below the threshold the histogram is exact.</para>
/// <para>Thread-safe. Allocates nothing on the heap per call: each thread that summarizes allocates its pair
/// counters (300 KiB) once, on its first call, and every call leaves them zeroed; about 4 KiB of stack. The same
/// tensor always gives the same result.</para>
/// </remarks>
public static class TensorSummarizer
{
    /// <summary>Length the <c>buckets</c> argument must have at least.</summary>
    public const int BucketCount = Log2Histogram.BucketCount;

    private const int ChunkLength = 4096;

    // Float32 lane sums are flushed to float64 every 8 vectors, which bounds their relative error by 8 * 2^-24.
    private const int VectorsPerBlock = 8;

    /// <summary>Elements from which <see cref="Summarize"/> counts the histogram from a sample (2^20, 4 MiB).</summary>
    public const int SamplingThreshold = 1 << 20;

    /// <summary>Consecutive elements of one sampled block (<see cref="Log2Histogram.SampleBlockLength"/>).</summary>
    public const int SampleBlockLength = Log2Histogram.SampleBlockLength;

    /// <summary>Fewest blocks a sampled histogram counts (4,096, so at least 2^18 elements).</summary>
    public const int SampleStrata = 4096;

    // Pair indices of one block of the fused pass, or of one sampled block, whichever is longer.
    private static int PairBufferLength => Math.Max(VectorsPerBlock / 2 * Vector<uint>.Count, SampleBlockLength / 2);

    // Pair counters: a row per side code of the first element of a pair, a column per side code of the second, and
    // PairTableCount counters (tables) side by side for each pair. Lane i counts into table i mod PairTableCount, so
    // that a run of equal pairs (a sparse or constant tensor) does not wait on the store-to-load forwarding of the
    // previous increment of the same counter (with 4 tables an all-zero tensor ran at half the speed). Rows are padded
    // to 100 pairs: counters 4 KiB apart are mistaken by the CPU for the same address (4K aliasing), and with 96 or
    // 112 pairs the counters of one column in rows 4 or 8 apart would be.
    private const int PairTableCount = 8;
    private const int CodeCount = Log2Histogram.BucketCount;
    private const int PairRowStride = 100 * PairTableCount;
    private const int PairCounterCount = CodeCount * PairRowStride;

    // The clamp of |x| to [2^-32, 2^15], as float32 bits; biased exponent 95 is side 0.
    private const int InnermostClampExponent = 127 + Log2Histogram.InnermostExponent - 1;
    private const int LowestClampBits = InnermostClampExponent << 23;
    private const int HighestClampBits = (127 + Log2Histogram.OutermostExponent) << 23;

    // A chunk is recomputed exactly when its squared mean offset from the centre exceeds this fraction of the mean
    // squared deviation from the centre: the cancellation in Σd² - (Σd)²/n then amplifies float32 errors at most 2x.
    private const double CancellationLimit = 0.5;

    // Squares of deviations below 2^-63 are subnormal or zero in float32. Where the summed squares are not far above
    // n * 2^-126, their loss would show; 2^-100 per element leaves a margin of 2^26.
    private static readonly double SmallestTrustedSquarePerElement = Math.ScaleB(1.0, -100);

    // The pair counters of this thread (300 KiB), allocated on its first call and left zeroed by each call.
    [ThreadStatic]
    private static uint[]? _pairCounts;

    /// <summary>Summarizes <paramref name="values"/>.</summary>
    /// <remarks>From <see cref="SamplingThreshold"/> (2^20) elements the histogram is counted from a stratified
    /// random sample of 64-element blocks, at least 2^18 elements (see the class remarks for the sample and its error
    /// bound); <see cref="TensorStatistics.HistogramSampledCount"/> then says how many elements it counts, and its
    /// counts sum to that. Every other statistic is exact at every length.</remarks>
    /// <param name="values">The elements; any length, including 0.</param>
    /// <param name="buckets">Receives the <see cref="Log2Histogram"/> counts in its first <see cref="BucketCount"/>
    /// entries (overwritten, not added to): of every element but NaN, or of the sample's.</param>
    /// <param name="statistics">The statistics.</param>
    /// <exception cref="ArgumentException"><paramref name="buckets"/> is shorter than <see cref="BucketCount"/>.</exception>
    public static void Summarize(ReadOnlySpan<float> values, Span<ulong> buckets, out TensorStatistics statistics) =>
        SummarizeWith(values, buckets, out statistics, sampleLargeHistograms: true);

    /// <summary>As the public <see cref="Summarize(ReadOnlySpan{float}, Span{ulong}, out TensorStatistics)"/>; without
    /// <paramref name="sampleLargeHistograms"/> every histogram is exact (for benchmarks that compare both).</summary>
    internal static void SummarizeWith(ReadOnlySpan<float> values, Span<ulong> buckets, out TensorStatistics statistics, bool sampleLargeHistograms)
    {
        buckets = PrepareBuckets(buckets);
        var moments = new Moments();
        int vectorLength = Vector.IsHardwareAccelerated ? values.Length - (values.Length % (2 * Vector<float>.Count)) : 0;
        bool sampled = sampleLargeHistograms && vectorLength >= SamplingThreshold;
        if (sampled && Vector512.IsHardwareAccelerated && Vector<float>.Count < Vector512<float>.Count)
        {
            // The statistics alone run faster in 512-bit vectors where they are accelerated (AVX-512).
            vectorLength = values.Length - (values.Length % (2 * Vector512<float>.Count));
            SummarizeVectors<WideSampledHistogram>(values[..vectorLength], buckets, ref moments);
        }
        else if (sampled)
        {
            SummarizeVectors<SampledHistogram>(values[..vectorLength], buckets, ref moments);
        }
        else if (vectorLength > 0)
        {
            SummarizeVectors<FullHistogram>(values[..vectorLength], buckets, ref moments);
        }

        // The tail (fewer than two vectors) lies outside the sample's strata: a sampled histogram leaves it out.
        AccumulateExact(values[vectorLength..], buckets, countZeros: true, sampled ? HistogramPass.None : HistogramPass.Count, ref moments);
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
        AccumulateExact(values, buckets, countZeros: true, HistogramPass.Count, ref moments);
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
    private static void SummarizeVectors<THistogram>(ReadOnlySpan<float> values, Span<ulong> buckets, ref Moments moments)
        where THistogram : struct, IHistogramKind
    {
        Span<uint> blockPairs = stackalloc uint[PairBufferLength];
        ref uint blockStart = ref MemoryMarshal.GetReference(blockPairs);
        uint[] pairCounts = _pairCounts ??= new uint[PairCounterCount];
        ref uint countsStart = ref MemoryMarshal.GetArrayDataReference(pairCounts);
        Vector<int> laneOffset = PairLaneOffsets();
        Vector<float> globalMin = new(float.PositiveInfinity);
        Vector<float> globalMax = new(float.NegativeInfinity);
        var chunkSums = new ChunkSums { NegativeZeros = Vector<int>.Zero };
        float centre = 0f;
        bool moving = false;
        var sample = THistogram.Sampled ? new Sample(values) : default;

        for (int chunkStart = 0; chunkStart < values.Length; chunkStart += ChunkLength)
        {
            ReadOnlySpan<float> chunk = values.Slice(chunkStart, Math.Min(ChunkLength, values.Length - chunkStart));
            if (moving && Vector.Sum(Vector.LoadUnsafe(ref MemoryMarshal.GetReference(chunk))) / Vector<float>.Count is var first && float.IsFinite(first))
            {
                // A chunk before had to be summed again from its own mean: the mean moves from chunk to chunk, so from
                // then on each chunk is centred on its first vector (read first anyway) rather than on the chunk before.
                centre = first;
            }

            if (THistogram.Wide)
            {
                SumChunkWide(chunk, centre, ref chunkSums);
            }
            else
            {
                SumChunk<THistogram>(chunk, centre, ref chunkSums, ref countsStart, ref blockStart, laneOffset);
            }

            if (THistogram.Sampled)
            {
                // The sampled blocks of this chunk, while it is still in the cache (a block never straddles chunks:
                // both lengths are multiples of the block length, and chunks start at multiples of it).
                while (sample.NextStart < chunkStart + chunk.Length)
                {
                    sample.Nan += CountSampleBlock(values.Slice(sample.NextStart, SampleBlockLength), ref countsStart, ref blockStart, laneOffset, buckets);
                    sample.Advance();
                }
            }

            Vector<float> chunkMin = chunkSums.Min, chunkMax = chunkSums.Max;
            double chunkSum = Vector.Sum(chunkSums.Sum), chunkSquares = Vector.Sum(chunkSums.Squares);
            double chunkAbsolute = Vector.Sum(chunkSums.Absolute);
            double n = chunk.Length;
            double offset = chunkSum / n;
            bool finite = double.IsFinite(chunkSquares + chunkAbsolute);
            if (finite && offset * offset > CancellationLimit * chunkSquares / n)
            {
                moving = true;
                // The mean moved from the previous chunk's by more than the spread (the rows of a gradient matrix,
                // sorted data): the deviations are summed again from this chunk's own mean, while it is in the cache,
                // before the exact pass is the answer.
                centre += (float)offset;
                CentredSums(chunk, centre, out chunkSum, out chunkSquares);
                offset = chunkSum / n;
            }

            bool exact = !finite
                || offset * offset > CancellationLimit * chunkSquares / n
                || (chunkSquares < n * SmallestTrustedSquarePerElement && !AllEqual(chunkMin, chunkMax));
            if (exact)
            {
                // NaN, Inf, overflow, underflow or cancellation: the chunk is still in the cache.
                AccumulateExact(chunk, buckets, countZeros: false, THistogram.Sampled ? HistogramPass.None : HistogramPass.UndoNan, ref moments);
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
        if (THistogram.Sampled)
        {
            moments.HistogramSampled = ((long)sample.Strata * SampleBlockLength) - sample.Nan;
        }

        // Every element counted lies between the extremes, or is NaN or Inf (outermost side).
        bool nonFinite = moments.Nan + moments.Inf > 0;
        int positiveSides = nonFinite ? Log2Histogram.BucketsPerSign : SidesUpTo(moments.Max);
        int negativeSides = nonFinite ? Log2Histogram.BucketsPerSign : SidesUpTo(-moments.Min);
        DrainPairCounts(pairCounts, positiveSides, negativeSides, buckets);
    }

    /// <summary>
    /// Σ(x - centre) and Σ(x - centre)² of a chunk (in the cache): float32 lanes over at most
    /// <see cref="VectorsPerBlock"/> vectors, then float64, as the fused pass sums them.
    /// </summary>
    [SkipLocalsInit]
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void CentredSums(ReadOnlySpan<float> chunk, float centre, out double sum, out double squares)
    {
        int lanes = Vector<float>.Count;
        ref float start = ref MemoryMarshal.GetReference(chunk);
        int vectorCount = chunk.Length / lanes;
        Vector<float> c = new(centre);
        Vector<double> sums = Vector<double>.Zero, squareSums = Vector<double>.Zero;
        for (int blockFirst = 0; blockFirst < vectorCount; blockFirst += VectorsPerBlock)
        {
            int blockEnd = Math.Min(blockFirst + VectorsPerBlock, vectorCount);
            Vector<float> blockSum = Vector<float>.Zero, blockSquares = Vector<float>.Zero;
            for (int v = blockFirst; v < blockEnd; v++)
            {
                Vector<float> d = Vector.LoadUnsafe(ref start, (nuint)(v * lanes)) - c;
                blockSum += d;
                blockSquares = Vector.FusedMultiplyAdd(d, d, blockSquares);
            }

            sums += WidenSum(blockSum);
            squareSums += WidenSum(blockSquares);
        }

        sum = Vector.Sum(sums);
        squares = Vector.Sum(squareSums);
        for (int i = vectorCount * lanes; i < chunk.Length; i++)
        {
            double d = chunk[i] - centre;
            sum += d;
            squares += d * d;
        }
    }

    /// <summary>
    /// Counts the pairs of one sampled block of <see cref="SampleBlockLength"/> elements into the pair counters, as the
    /// fused pass does, and takes its NaN out again (their codes fall on the outermost side); returns the NaN count.
    /// </summary>
    [SkipLocalsInit]
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static int CountSampleBlock(ReadOnlySpan<float> block, ref uint pairCounts, ref uint blockPairs, Vector<int> laneOffset, Span<ulong> buckets)
    {
        int lanes = Vector<float>.Count;
        ref float start = ref MemoryMarshal.GetReference(block);
        Vector<int> lowest = new(LowestClampBits), highest = new(HighestClampBits), rowStride = new(PairRowStride);
        Vector<int> ordered = Vector<int>.AllBitsSet;
        for (int v = 0; v < SampleBlockLength / lanes; v += 2)
        {
            Vector<float> x0 = Vector.LoadUnsafe(ref start, (nuint)(v * lanes));
            Vector<float> x1 = Vector.LoadUnsafe(ref start, (nuint)((v + 1) * lanes));
            ordered &= Vector.Equals(x0, x0) & Vector.Equals(x1, x1);
            Vector<int> code0 = SideCode(x0, Vector.Abs(x0), lowest, highest);
            Vector<int> code1 = SideCode(x1, Vector.Abs(x1), lowest, highest);
            Vector.AsVectorUInt32((code0 * rowStride) + (code1 * PairTableCount) + laneOffset)
                .StoreUnsafe(ref blockPairs, (nuint)(v / 2 * lanes));
        }

        CountPairs(ref pairCounts, ref blockPairs, SampleBlockLength / 2);
        if (ordered == Vector<int>.AllBitsSet)
        {
            return 0;
        }

        // Rare: NaN are not counted. Unsigned wrap-around is undone when the pair counters are added at the end.
        ReadOnlySpan<byte> bucketOfRawBin = Log2Histogram.RawBinToBucket;
        int nan = 0;
        foreach (float value in block)
        {
            if (float.IsNaN(value))
            {
                buckets[bucketOfRawBin[(int)(BitConverter.SingleToUInt32Bits(value) >> 23)]]--;
                nan++;
            }
        }

        return nan;
    }

    // Fully optimised from the first call: this loop runs once per chunk, and tiered compilation would otherwise run
    // it as on-stack-replacement code that keeps the accumulators in memory. One chunk, kept apart so that the
    // register allocator sees only the vectors of the inner loop.
    [SkipLocalsInit]
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void SumChunk<THistogram>(ReadOnlySpan<float> chunk, float centre, ref ChunkSums sums, ref uint pairCounts, ref uint blockPairs, Vector<int> laneOffset)
        where THistogram : struct, IHistogramKind
    {
        int lanes = Vector<float>.Count;
        ref float start = ref MemoryMarshal.GetReference(chunk);
        int vectorCount = chunk.Length / lanes;
        Vector<float> c = new(centre);
        Vector<float> min = new(float.PositiveInfinity);
        Vector<float> max = new(float.NegativeInfinity);
        Vector<int> negativeZeros = sums.NegativeZeros;
        Vector<int> lowest = new(LowestClampBits), highest = new(HighestClampBits), rowStride = new(PairRowStride);
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
                Vector<float> a0 = Vector.Abs(x0);
                Vector<float> a1 = Vector.Abs(x1);
                absolute0 += a0;
                absolute1 += a1;
                if (!THistogram.Sampled)
                {
                    Vector<int> code0 = SideCode(x0, a0, lowest, highest);
                    Vector<int> code1 = SideCode(x1, a1, lowest, highest);
                    Vector.AsVectorUInt32((code0 * rowStride) + (code1 * PairTableCount) + laneOffset)
                        .StoreUnsafe(ref blockPairs, (nuint)(v / 2 * lanes));
                }
            }

            sums.Sum += WidenSum(sum0 + sum1);
            sums.Squares += WidenSum(squares0 + squares1);
            sums.Absolute += WidenSum(absolute0 + absolute1);
            if (!THistogram.Sampled)
            {
                CountPairs(ref pairCounts, ref blockPairs, blockVectors / 2 * lanes);
            }
        }

        sums.Min = min;
        sums.Max = max;
        sums.NegativeZeros = negativeZeros;
    }

    /// <summary>
    /// The statistics of <see cref="SumChunk{THistogram}"/> without the histogram, in 512-bit vectors (where they are
    /// accelerated and <see cref="Vector{T}"/> is narrower), folded into its results. The chunk holds an even number of
    /// 512-bit vectors. Each float32 lane still adds at most <see cref="VectorsPerBlock"/> values before float64.
    /// </summary>
    [SkipLocalsInit]
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void SumChunkWide(ReadOnlySpan<float> chunk, float centre, ref ChunkSums sums)
    {
        int lanes = Vector512<float>.Count;
        ref float start = ref MemoryMarshal.GetReference(chunk);
        int vectorCount = chunk.Length / lanes;
        Vector512<float> c = Vector512.Create(centre);
        Vector512<float> min = Vector512.Create(float.PositiveInfinity);
        Vector512<float> max = Vector512.Create(float.NegativeInfinity);
        Vector512<int> negativeZeros = Vector512<int>.Zero;
        Vector512<double> sum = Vector512<double>.Zero, squares = Vector512<double>.Zero, absolute = Vector512<double>.Zero;
        for (int blockFirst = 0; blockFirst < vectorCount; blockFirst += VectorsPerBlock)
        {
            int blockVectors = Math.Min(VectorsPerBlock, vectorCount - blockFirst);
            ref float block = ref Unsafe.Add(ref start, blockFirst * lanes);
            Vector512<float> sum0 = Vector512<float>.Zero, squares0 = Vector512<float>.Zero, absolute0 = Vector512<float>.Zero;
            Vector512<float> sum1 = Vector512<float>.Zero, squares1 = Vector512<float>.Zero, absolute1 = Vector512<float>.Zero;
            for (int v = 0; v < blockVectors; v += 2)
            {
                Vector512<float> x0 = Vector512.LoadUnsafe(ref block, (nuint)(v * lanes));
                Vector512<float> x1 = Vector512.LoadUnsafe(ref block, (nuint)((v + 1) * lanes));
                min = Vector512.MinNative(min, Vector512.MinNative(x0, x1));
                max = Vector512.MaxNative(max, Vector512.MaxNative(x0, x1));
                negativeZeros += Vector512.Equals(x0, Vector512<float>.Zero).AsInt32() + Vector512.Equals(x1, Vector512<float>.Zero).AsInt32();
                Vector512<float> d0 = x0 - c;
                Vector512<float> d1 = x1 - c;
                sum0 += d0;
                sum1 += d1;
                squares0 = Vector512.FusedMultiplyAdd(d0, d0, squares0);
                squares1 = Vector512.FusedMultiplyAdd(d1, d1, squares1);
                absolute0 += Vector512.Abs(x0);
                absolute1 += Vector512.Abs(x1);
            }

            sum += WidenSum(sum0 + sum1);
            squares += WidenSum(squares0 + squares1);
            absolute += WidenSum(absolute0 + absolute1);
        }

        sums.Sum = (sum.GetLower() + sum.GetUpper()).AsVector();
        sums.Squares = (squares.GetLower() + squares.GetUpper()).AsVector();
        sums.Absolute = (absolute.GetLower() + absolute.GetUpper()).AsVector();
        sums.Min = Vector256.MinNative(min.GetLower(), min.GetUpper()).AsVector();
        sums.Max = Vector256.MaxNative(max.GetLower(), max.GetUpper()).AsVector();
        sums.NegativeZeros += (negativeZeros.GetLower() + negativeZeros.GetUpper()).AsVector();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<double> WidenSum(Vector512<float> lanes)
    {
        (Vector512<double> lower, Vector512<double> upper) = Vector512.Widen(lanes);
        return lower + upper;
    }

    /// <summary>
    /// The side code of each element: its side index (0 innermost to 47 outermost), plus 48 when its sign bit is set.
    /// |x| is clamped as an integer (the bits of a non-negative float order as it does, NaN above Inf, on every
    /// processor) to [2^-32, 2^15], whose biased exponents are 95 + the side index; zeros and subnormals fall on the
    /// lower bound, Inf and NaN on the upper one, exactly as in <see cref="Log2Histogram.RawBinToBucket"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector<int> SideCode(Vector<float> x, Vector<float> magnitude, Vector<int> lowest, Vector<int> highest)
    {
        Vector<int> clamped = Vector.Min(Vector.Max(Vector.AsVectorInt32(magnitude), lowest), highest);
        return Vector.ShiftRightLogical(clamped, 23) + (Vector.ShiftRightArithmetic(Vector.AsVectorInt32(x), 31) & new Vector<int>(Log2Histogram.BucketsPerSign));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CountPairs(ref uint counts, ref uint indices, int length)
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

    // Lane i counts into table i % PairTableCount; the constant takes the clamp's exponent bias out of both codes.
    private static Vector<int> PairLaneOffsets()
    {
        Span<int> offsets = stackalloc int[Vector<int>.Count];
        for (int lane = 0; lane < offsets.Length; lane++)
        {
            offsets[lane] = (lane % PairTableCount) - ((InnermostClampExponent * PairRowStride) + (InnermostClampExponent * PairTableCount));
        }

        return Vector.Create<int>(offsets);
    }

    // Side indices 0 to n - 1 hold every element of magnitude up to |extreme|.
    private static int SidesUpTo(double extreme) =>
        extreme > 0 ? (Log2Histogram.BucketOf(extreme) - Log2Histogram.BucketsPerSign) + 1 : 1;

    /// <summary>Adds the pair counts of the codes present to the buckets and zeroes them, so that the thread's counters
    /// are clear for its next call. Totals fit in 32 bits: there are fewer than 2^30 pairs.</summary>
    private static void DrainPairCounts(uint[] pairCounts, int positiveSides, int negativeSides, Span<ulong> buckets)
    {
        const int Negative = Log2Histogram.BucketsPerSign;
        Span<uint> columnTotals = stackalloc uint[CodeCount * PairTableCount];
        columnTotals.Clear();
        for (int row = 0; row < CodeCount; row++)
        {
            if (row % Negative >= (row < Negative ? positiveSides : negativeSides))
            {
                continue;
            }

            Span<uint> counters = pairCounts.AsSpan(row * PairRowStride, CodeCount * PairTableCount);
            uint rowTotal = AddAndClear(counters[..(positiveSides * PairTableCount)], columnTotals);
            rowTotal += AddAndClear(counters.Slice(Negative * PairTableCount, negativeSides * PairTableCount), columnTotals[(Negative * PairTableCount)..]);
            buckets[BucketOfCode(row)] += rowTotal;
        }

        for (int column = 0; column < CodeCount; column++)
        {
            ulong total = 0;
            foreach (uint count in columnTotals.Slice(column * PairTableCount, PairTableCount))
            {
                total += count;
            }

            buckets[BucketOfCode(column)] += total;
        }
    }

    // Codes 0-47 are the positive buckets 48-95, codes 48-95 the negative buckets 47-0.
    private static int BucketOfCode(int code) => code < Log2Histogram.BucketsPerSign ? Log2Histogram.BucketsPerSign + code : Log2Histogram.BucketCount - 1 - code;

    // Adds counters into totals element-wise, clears them and returns their sum. Lengths are multiples of the
    // PairTableCount, itself a multiple of the lanes of a 128-bit vector.
    private static uint AddAndClear(Span<uint> counters, Span<uint> totals)
    {
        Vector<uint> sum = Vector<uint>.Zero;
        int i = 0;
        for (; i <= counters.Length - Vector<uint>.Count; i += Vector<uint>.Count)
        {
            Vector<uint> c = new(counters[i..]);
            sum += c;
            (new Vector<uint>(totals[i..]) + c).CopyTo(totals[i..]);
        }

        uint rowTotal = Vector.Sum(sum);
        for (; i < counters.Length; i++)
        {
            rowTotal += counters[i];
            totals[i] += counters[i];
        }

        counters.Clear();
        return rowTotal;
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
    /// <paramref name="countZeros"/> false: the vector pass has counted the zeros already. <paramref name="histogram"/>
    /// says whether to count the histogram here, or whether the fused vector pass has counted these elements already,
    /// NaN included (in the bucket of its sign and exponent bits), so that only the NaN are taken out again, or neither
    /// (a sampled histogram counts its blocks apart).
    /// </summary>
    private static void AccumulateExact(ReadOnlySpan<float> values, Span<ulong> buckets, bool countZeros, HistogramPass histogram, ref Moments moments)
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
                if (histogram == HistogramPass.UndoNan)
                {
                    // Unsigned wrap-around is undone when the vector pass's tables are added at the end.
                    buckets[bucket]--;
                }

                continue;
            }

            if (histogram == HistogramPass.Count)
            {
                buckets[bucket]++;
            }

            if (countZeros)
            {
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

    /// <summary>Which histogram the vector pass counts: resolved when the JIT compiles each instantiation.</summary>
    private interface IHistogramKind
    {
        static abstract bool Sampled { get; }

        // The statistics in 512-bit vectors (SumChunkWide); only with a sampled histogram.
        static abstract bool Wide { get; }
    }

    /// <summary>Every element's pair counted in the fused pass.</summary>
    private readonly struct FullHistogram : IHistogramKind
    {
        public static bool Sampled => false;

        public static bool Wide => false;
    }

    /// <summary>Statistics only in the fused pass; the sampled blocks counted apart.</summary>
    private readonly struct SampledHistogram : IHistogramKind
    {
        public static bool Sampled => true;

        public static bool Wide => false;
    }

    /// <summary>As <see cref="SampledHistogram"/>, the statistics in 512-bit vectors.</summary>
    private readonly struct WideSampledHistogram : IHistogramKind
    {
        public static bool Sampled => true;

        public static bool Wide => true;
    }

    /// <summary>What <see cref="AccumulateExact"/> does with the histogram.</summary>
    private enum HistogramPass
    {
        Count,
        UndoNan,
        None,
    }

    /// <summary>
    /// The sampled blocks, in ascending order: the blocks of <see cref="SampleBlockLength"/> elements are cut into
    /// <see cref="Strata"/> strata of equal length, at least <see cref="SampleStrata"/> of them, and one block is drawn
    /// uniformly in each, independently (the remainder, fewer blocks than a stratum holds, lies outside every stratum).
    /// The generator (SplitMix64) is seeded from the length and three elements' bits, so the same tensor always gives
    /// the same sample and histogram, and a tensor that changes gets fresh positions.
    /// </summary>
    private struct Sample
    {
        public int NextStart;
        public int Nan;
        public readonly int Strata;
        private readonly int _strideBlocks;
        private int _stratum;
        private ulong _state;

        public Sample(ReadOnlySpan<float> values)
        {
            int blocks = values.Length / SampleBlockLength;
            _strideBlocks = blocks / SampleStrata;
            Strata = blocks / _strideBlocks;
            _state = ((ulong)values.Length << 32)
                ^ BitConverter.SingleToUInt32Bits(values[0])
                ^ ((ulong)BitConverter.SingleToUInt32Bits(values[values.Length / 2]) << 16)
                ^ ((ulong)BitConverter.SingleToUInt32Bits(values[^1]) << 40);
            NextStart = Pick();
        }

        public void Advance()
        {
            _stratum++;
            NextStart = _stratum < Strata ? Pick() : int.MaxValue;
        }

        // Lemire's multiply-shift maps the upper 32 random bits onto [0, stride) without division.
        private int Pick()
        {
            _state += 0x9E3779B97F4A7C15UL;
            ulong z = _state;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            z ^= z >> 31;
            int offset = (int)(((z >> 32) * (ulong)_strideBlocks) >> 32);
            return ((_stratum * _strideBlocks) + offset) * SampleBlockLength;
        }
    }

    /// <summary>What <see cref="SumChunk{THistogram}"/> returns: lane-wise sums and extremes of one chunk, and the zero count so far.</summary>
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
        public long HistogramSampled;

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
                HistogramSampledCount = HistogramSampled,
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
