using System.Numerics;
using System.Runtime.InteropServices;

namespace Monitor.Analysis.Drift;

/// <summary>The outcome of an MMD permutation test.</summary>
/// <param name="Statistic">The unbiased MMD² between reference and current.</param>
/// <param name="PValue">The share of permuted statistics at or above the observed one (no +1 correction).</param>
/// <param name="DistanceThreshold">The MMD² above which drift would be flagged: the permuted statistics sorted
/// descending, element ⌊p_val · permutations⌋ (alibi-detect's <c>distance_threshold</c>).</param>
/// <param name="IsDrift">Whether <see cref="PValue"/> &lt; the test's p-value threshold.</param>
public readonly record struct MaximumMeanDiscrepancyResult(double Statistic, double PValue, double DistanceThreshold, bool IsDrift);

/// <summary>
/// alibi-detect's <c>MMDDrift</c> (<c>alibi_detect/cd/pytorch/mmd.py</c>, <c>cd/base.py</c> <c>BaseMMDDrift</c>;
/// kernel in <c>utils/pytorch/kernels.py</c>, statistic in <c>utils/pytorch/distance.py</c>
/// <c>mmd2_from_kernel_matrix</c>) in float64: a multivariate two-sample test on row-major feature vectors.
/// </summary>
/// <remarks>
/// <para>Kernel: Gaussian RBF k(x, y) = exp(-‖x - y‖² / (2σ²)). σ, unless given, comes once from the reference by
/// alibi's median heuristic (<c>sigma_median</c>, <c>infer_sigma</c> at construction): of the n(n - 1)/2 squared
/// distances between distinct reference rows, the one at sorted (0-based) index ⌊(n(n - 1)/2 - 1) / 2⌋ (the lower
/// median), σ = sqrt(0.5 · that). alibi sorts the full n × n matrix and skips its n diagonal entries, which selects
/// the same element. The reference kernel block is computed at construction too, as alibi keeps <c>k_xx</c>.</para>
/// <para>Statistic: the unbiased MMD² with the kernel diagonal zeroed,
/// Σ_{i≠j} k(x_i, x_j) / (n(n - 1)) + Σ_{i≠j} k(y_i, y_j) / (m(m - 1)) - 2 Σ k(x_i, y_j) / (nm).
/// Permutation test: <see cref="Permutations"/> (100) random relabellings of the pooled rows into n and m; p = share of
/// permuted statistics ≥ the observed one; drift when p &lt; 0.05. Each permuted statistic is computed from the
/// kernel matrix without re-evaluating the kernel: with row sums r of the pooled kernel matrix and total T, only the
/// within-subset sum S_AA of the smaller side A needs the matrix (S_AB = Σ_A r - S_AA, S_BB = T - 2 Σ_A r + S_AA), and
/// all permutations' S_AA are accumulated in one pass over the matrix. Permutations come from the caller's
/// <see cref="DriftRandom"/>, so p-values are reproducible for a seed but are not alibi's (which uses torch's RNG).</para>
/// <para>Differences from alibi: squared distances are computed as Σ (x_k - y_k)² rather than
/// ‖x‖² + ‖y‖² - 2x·y clamped at 1e-30, so they are exact to rounding and the diagonal is exactly 0; a reference whose
/// median distance is 0 (mostly duplicate rows) is refused instead of producing a degenerate bandwidth.</para>
/// <para>Memory: the reference kernel block, n(n - 1)/2 doubles, lives in the instance (n = 1000: 4 MB); a test call
/// uses workspace slots for the current blocks (n·m + m(m - 1)/2 doubles) and the permutation masks
/// (permutations · (n + m) doubles). Not thread-safe to share a workspace; the instance itself is immutable after
/// construction and may be used from several threads, each with its own workspace and <see cref="DriftRandom"/>.
/// Values must be finite. A steady-state call allocates nothing.</para>
/// </remarks>
public sealed class MaximumMeanDiscrepancyTest
{
    /// <summary>alibi's default number of permutations, 100.</summary>
    public const int DefaultPermutations = 100;

    /// <summary>alibi's default p-value threshold, 0.05 (drift when p &lt; 0.05).</summary>
    public const double DefaultPValueThreshold = 0.05;

    // Workspace slots (doubles): the cross block, the current block (packed), the current rows transposed, the pooled
    // row sums, the permutation masks, the per-permutation sums and permuted statistics; ints: the pooled index order.
    private const int CrossSlot = 0;
    private const int CurrentBlockSlot = 1;
    private const int TransposedSlot = 2;
    private const int RowSumSlot = 3;
    private const int MaskSlot = 4;
    private const int SubsetSumSlot = 5;
    private const int PermutedSlot = 6;
    private const int OrderSlot = 0;
    private const int HolderSlot = 1;

    // Mask memory one pass over the kernel matrix works with, about a per-core L2 cache: measured on a 1 MB-L2 core,
    // fewer passes over the (n + m)² / 2 kernel values beat keeping every mask read an L2 hit (192 KB: 24 ms,
    // 384 KB: 20 ms, 768 KB: 18 ms for 1k vs 1k rows).
    private const int MaskBytesPerPass = 768 * 1024;

    private readonly double[] _reference;
    private readonly double[] _referenceKernel;
    private readonly double[] _referenceRowSums;
    private readonly double _referenceSum;
    private readonly double _gamma;

    /// <summary>Fits the test to a reference: stores it, infers σ (unless given) and computes its kernel block.</summary>
    /// <param name="reference">Reference rows, row-major (rows × <paramref name="dimension"/>), finite values.</param>
    /// <param name="dimension">Features per row (at least 1).</param>
    /// <param name="sigma">The RBF bandwidth; NaN (default) infers it by the median heuristic.</param>
    /// <param name="permutations">Permutations per test, 100 by default.</param>
    /// <param name="pValueThreshold">Drift when p &lt; this, 0.05 by default; in (0, 1).</param>
    /// <exception cref="ArgumentException">Fewer than 2 rows, a length that is not a multiple of the dimension,
    /// non-finite values, a non-positive σ, or a reference whose median pairwise distance is 0.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A non-positive dimension or permutation count, or a threshold
    /// outside (0, 1).</exception>
    public MaximumMeanDiscrepancyTest(
        ReadOnlySpan<double> reference,
        int dimension,
        double sigma = double.NaN,
        int permutations = DefaultPermutations,
        double pValueThreshold = DefaultPValueThreshold)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(dimension);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(permutations);
        if (!(pValueThreshold > 0 && pValueThreshold < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(pValueThreshold), pValueThreshold, "The p-value threshold must lie in (0, 1).");
        }

        if (reference.Length % dimension != 0 || reference.Length / dimension < 2)
        {
            throw new ArgumentException($"The reference must hold at least 2 rows of {dimension} values.", nameof(reference));
        }

        foreach (double value in reference)
        {
            if (!double.IsFinite(value))
            {
                throw new ArgumentException("The reference contains a non-finite value.", nameof(reference));
            }
        }

        Dimension = dimension;
        ReferenceRows = reference.Length / dimension;
        Permutations = permutations;
        PValueThreshold = pValueThreshold;
        _reference = reference.ToArray();

        int n = ReferenceRows;
        _referenceKernel = new double[(long)n * (n - 1) / 2];
        double[] transposed = Transpose(reference, n, dimension);
        for (int i = 0; i < n - 1; i++)
        {
            SquaredDistances(reference.Slice(i * dimension, dimension), transposed, n, i + 1, _referenceKernel.AsSpan(PackedOffset(i, n), n - i - 1));
        }

        if (double.IsNaN(sigma))
        {
            // Quickselect reorders its input, and the packed layout of the distances must survive.
            double median = LowerMedian(_referenceKernel.AsSpan().ToArray());
            if (!(median > 0))
            {
                throw new ArgumentException("The reference's median pairwise distance is 0 (mostly identical rows): give sigma explicitly.", nameof(reference));
            }

            sigma = Math.Sqrt(0.5 * median);
        }
        else if (!(sigma > 0) || !double.IsFinite(sigma))
        {
            throw new ArgumentException("sigma must be positive and finite.", nameof(sigma));
        }

        Sigma = sigma;
        _gamma = 1 / (2 * sigma * sigma);
        ExpInPlace(_referenceKernel, _gamma);

        _referenceRowSums = new double[n];
        for (int i = 0; i < n - 1; i++)
        {
            ReadOnlySpan<double> row = _referenceKernel.AsSpan(PackedOffset(i, n), n - i - 1);
            double rowSum = 0;
            for (int j = 0; j < row.Length; j++)
            {
                rowSum += row[j];
                _referenceRowSums[i + 1 + j] += row[j];
            }

            _referenceRowSums[i] += rowSum;
            _referenceSum += 2 * rowSum;
        }
    }

    /// <summary>Features per row.</summary>
    public int Dimension { get; }

    /// <summary>Rows of the reference.</summary>
    public int ReferenceRows { get; }

    /// <summary>The RBF bandwidth σ (inferred or given).</summary>
    public double Sigma { get; }

    /// <summary>Permutations per test.</summary>
    public int Permutations { get; }

    /// <summary>Drift when the p-value is below this.</summary>
    public double PValueThreshold { get; }

    /// <summary>The unbiased MMD² between the reference and <paramref name="current"/>, without the permutation test.</summary>
    /// <param name="current">Current rows, row-major (rows × <see cref="Dimension"/>, at least 2 rows), finite values.</param>
    /// <param name="workspace">Scratch memory, one per thread.</param>
    /// <exception cref="ArgumentException">Fewer than 2 rows, or a length that is not a multiple of the dimension.</exception>
    public double Statistic(ReadOnlySpan<double> current, DriftWorkspace workspace)
    {
        int m = CurrentRows(current);
        ComputeKernel(current, m, workspace, out double crossSum, out double currentSum);
        return Mmd2(_referenceSum, currentSum, crossSum, ReferenceRows, m);
    }

    /// <summary>Runs the permutation test of <paramref name="current"/> against the reference.</summary>
    /// <param name="current">Current rows, row-major (rows × <see cref="Dimension"/>, at least 2 rows), finite values.</param>
    /// <param name="random">The source of the permutations (seed it for reproducible p-values).</param>
    /// <param name="workspace">Scratch memory, one per thread.</param>
    /// <exception cref="ArgumentException">Fewer than 2 rows, or a length that is not a multiple of the dimension.</exception>
    public MaximumMeanDiscrepancyResult Test(ReadOnlySpan<double> current, DriftRandom random, DriftWorkspace workspace)
    {
        ArgumentNullException.ThrowIfNull(workspace);
        Span<double> permuted = workspace.Doubles(PermutedSlot, Permutations);
        double observed = PermutedStatistics(current, random, workspace, permuted);
        int atLeast = 0;
        for (int p = 0; p < permuted.Length; p++)
        {
            if (observed <= permuted[p])
            {
                atLeast++;
            }
        }

        double pValue = (double)atLeast / permuted.Length;
        permuted.Sort();
        double threshold = permuted[permuted.Length - 1 - (int)(PValueThreshold * permuted.Length)];
        return new MaximumMeanDiscrepancyResult(observed, pValue, threshold, pValue < PValueThreshold);
    }

    /// <summary>
    /// The observed MMD² (returned) and the permuted ones (into <paramref name="permuted"/>, one per permutation, in
    /// the order drawn). Each permutation draws the smaller side's rows from the pooled rows by a partial
    /// Fisher-Yates shuffle with <paramref name="random"/>.
    /// </summary>
    internal double PermutedStatistics(ReadOnlySpan<double> current, DriftRandom random, DriftWorkspace workspace, Span<double> permuted)
    {
        ArgumentNullException.ThrowIfNull(random);
        ArgumentNullException.ThrowIfNull(workspace);
        int n = ReferenceRows;
        int m = CurrentRows(current);
        int pooled = n + m;
        int permutations = permuted.Length;
        ComputeKernel(current, m, workspace, out double crossSum, out double currentSum);
        double observed = Mmd2(_referenceSum, currentSum, crossSum, n, m);

        Span<double> cross = workspace.Doubles(CrossSlot, n * m);
        Span<double> currentBlock = workspace.Doubles(CurrentBlockSlot, m * (m - 1) / 2);
        Span<double> rowSums = workspace.Doubles(RowSumSlot, pooled);
        double total = 0;
        for (int i = 0; i < pooled; i++)
        {
            total += rowSums[i];
        }

        // Each permutation splits the pooled rows into n and m; A is the smaller side, drawn by a partial
        // Fisher-Yates shuffle and marked in a 0/1 mask over the pooled rows. Its row sums give the cross and
        // other-side sums once its within sum is known.
        int subset = Math.Min(n, m);
        Span<double> masks = workspace.Doubles(MaskSlot, permutations * pooled);
        Span<double> subsetSums = workspace.Doubles(SubsetSumSlot, 2 * permutations);
        Span<double> within = subsetSums[..permutations];
        Span<double> subsetRowSums = subsetSums[permutations..];
        Span<int> order = workspace.Ints(OrderSlot, pooled);
        Span<int> holders = workspace.Ints(HolderSlot, permutations);
        for (int i = 0; i < pooled; i++)
        {
            order[i] = i;
        }

        masks.Clear();
        within.Clear();
        for (int p = 0; p < permutations; p++)
        {
            Span<double> mask = masks.Slice(p * pooled, pooled);
            double rowSumOfSubset = 0;
            for (int t = 0; t < subset; t++)
            {
                int pick = random.Next(t, pooled);
                (order[t], order[pick]) = (order[pick], order[t]);
                mask[order[t]] = 1;
                rowSumOfSubset += rowSums[order[t]];
            }

            subsetRowSums[p] = rowSumOfSubset;
        }

        // Passes over the upper triangle of the pooled kernel matrix, one per group of permutations: row i adds, for
        // every permutation of the group holding i, its kernel values with the later rows of that permutation's
        // subset. Groups keep their masks in the core's L2 cache while the row being read stays in L1.
        int group = Math.Clamp(MaskBytesPerPass / (pooled * sizeof(double)), 1, permutations);
        for (int groupStart = 0; groupStart < permutations; groupStart += group)
        {
            int groupEnd = Math.Min(groupStart + group, permutations);
            for (int i = 0; i < pooled; i++)
            {
                ReadOnlySpan<double> first;
                ReadOnlySpan<double> second;
                if (i < n)
                {
                    first = _referenceKernel.AsSpan(PackedOffset(i, n), n - i - 1);
                    second = cross.Slice(i * m, m);
                }
                else
                {
                    int a = i - n;
                    first = currentBlock.Slice(PackedOffset(a, m), m - a - 1);
                    second = default;
                }

                // The permutations of the group holding row i, four at a time so each kernel value loaded serves
                // four masks.
                int holding = 0;
                for (int p = groupStart; p < groupEnd; p++)
                {
                    if (masks[p * pooled + i] != 0)
                    {
                        holders[holding++] = p;
                    }
                }

                int h = 0;
                for (; h + 4 <= holding; h += 4)
                {
                    int p0 = holders[h], p1 = holders[h + 1], p2 = holders[h + 2], p3 = holders[h + 3];
                    Dot4(first, masks, i + 1, pooled, p0, p1, p2, p3, within);
                    if (!second.IsEmpty)
                    {
                        Dot4(second, masks, n, pooled, p0, p1, p2, p3, within);
                    }
                }

                for (; h < holding; h++)
                {
                    int p = holders[h];
                    double sum = Dot(first, masks.Slice(p * pooled + i + 1, first.Length));
                    if (!second.IsEmpty)
                    {
                        sum += Dot(second, masks.Slice(p * pooled + n, m));
                    }

                    within[p] += sum;
                }
            }
        }

        for (int p = 0; p < permutations; p++)
        {
            double subsetWithin = 2 * within[p];
            double between = subsetRowSums[p] - subsetWithin;
            double other = total - 2 * subsetRowSums[p] + subsetWithin;
            permuted[p] = n <= m ? Mmd2(subsetWithin, other, between, n, m) : Mmd2(other, subsetWithin, between, n, m);
        }

        return observed;
    }

    /// <summary>Unbiased MMD² from the within-reference, within-current and cross kernel sums (diagonal excluded).</summary>
    internal static double Mmd2(double referenceSum, double currentSum, double crossSum, int n, int m) =>
        (1.0 / ((double)n * (n - 1))) * referenceSum + (1.0 / ((double)m * (m - 1))) * currentSum - 2.0 * (crossSum / ((double)n * m));

    /// <summary>The median-heuristic σ of a set of row-major rows (as at construction), for tests and tools.</summary>
    internal static double MedianHeuristicSigma(ReadOnlySpan<double> rows, int dimension)
    {
        int n = rows.Length / dimension;
        double[] distances = new double[(long)n * (n - 1) / 2];
        double[] transposed = Transpose(rows, n, dimension);
        for (int i = 0; i < n - 1; i++)
        {
            SquaredDistances(rows.Slice(i * dimension, dimension), transposed, n, i + 1, distances.AsSpan(PackedOffset(i, n), n - i - 1));
        }

        return Math.Sqrt(0.5 * LowerMedian(distances));
    }

    private int CurrentRows(ReadOnlySpan<double> current)
    {
        if (current.Length % Dimension != 0 || current.Length / Dimension < 2)
        {
            throw new ArgumentException($"The current sample must hold at least 2 rows of {Dimension} values.", nameof(current));
        }

        return current.Length / Dimension;
    }

    // Fills the cross block (n × m), the packed current block and the pooled row sums; returns the block sums.
    private void ComputeKernel(ReadOnlySpan<double> current, int m, DriftWorkspace workspace, out double crossSum, out double currentSum)
    {
        ArgumentNullException.ThrowIfNull(workspace);
        int n = ReferenceRows;
        int d = Dimension;
        Span<double> transposed = workspace.Doubles(TransposedSlot, d * m);
        for (int row = 0; row < m; row++)
        {
            for (int k = 0; k < d; k++)
            {
                transposed[k * m + row] = current[row * d + k];
            }
        }

        Span<double> cross = workspace.Doubles(CrossSlot, n * m);
        Span<double> currentBlock = workspace.Doubles(CurrentBlockSlot, m * (m - 1) / 2);
        Span<double> rowSums = workspace.Doubles(RowSumSlot, n + m);
        rowSums.Clear();
        crossSum = 0;
        for (int i = 0; i < n; i++)
        {
            Span<double> row = cross.Slice(i * m, m);
            SquaredDistances(_reference.AsSpan(i * d, d), transposed, m, 0, row);
            ExpInPlace(row, _gamma);
            double rowSum = AccumulateRow(row, rowSums.Slice(n, m));
            rowSums[i] = _referenceRowSums[i] + rowSum;
            crossSum += rowSum;
        }

        currentSum = 0;
        for (int a = 0; a < m - 1; a++)
        {
            Span<double> row = currentBlock.Slice(PackedOffset(a, m), m - a - 1);
            SquaredDistances(current.Slice(a * d, d), transposed, m, a + 1, row);
            ExpInPlace(row, _gamma);
            double rowSum = AccumulateRow(row, rowSums.Slice(n + a + 1, row.Length));
            rowSums[n + a] += rowSum;
            currentSum += 2 * rowSum;
        }
    }

    // Offset of row i's entries j > i in a packed strict upper triangle of an n × n matrix.
    private static int PackedOffset(int i, int n) => (int)((long)i * (2 * n - i - 1) / 2);

    private static double[] Transpose(ReadOnlySpan<double> rows, int n, int d)
    {
        double[] transposed = new double[n * d];
        for (int row = 0; row < n; row++)
        {
            for (int k = 0; k < d; k++)
            {
                transposed[k * n + row] = rows[row * d + k];
            }
        }

        return transposed;
    }

    // destination[t] = ‖x - column (start + t) of the transposed rows‖², vectorized across columns; four vectors of
    // columns at a time, so the four accumulation chains hide the FMA latency.
    private static void SquaredDistances(ReadOnlySpan<double> x, ReadOnlySpan<double> transposed, int columns, int start, Span<double> destination)
    {
        int d = x.Length;
        int count = destination.Length;
        int width = Vector<double>.Count;
        int t = 0;
        for (; t <= count - 4 * width; t += 4 * width)
        {
            Vector<double> s0 = Vector<double>.Zero;
            Vector<double> s1 = Vector<double>.Zero;
            Vector<double> s2 = Vector<double>.Zero;
            Vector<double> s3 = Vector<double>.Zero;
            for (int k = 0; k < d; k++)
            {
                var xk = new Vector<double>(x[k]);
                ReadOnlySpan<double> column = transposed.Slice(k * columns + start + t, 4 * width);
                Vector<double> d0 = xk - new Vector<double>(column);
                Vector<double> d1 = xk - new Vector<double>(column[width..]);
                Vector<double> d2 = xk - new Vector<double>(column[(2 * width)..]);
                Vector<double> d3 = xk - new Vector<double>(column[(3 * width)..]);
                s0 = Vector.FusedMultiplyAdd(d0, d0, s0);
                s1 = Vector.FusedMultiplyAdd(d1, d1, s1);
                s2 = Vector.FusedMultiplyAdd(d2, d2, s2);
                s3 = Vector.FusedMultiplyAdd(d3, d3, s3);
            }

            Span<double> target = destination.Slice(t, 4 * width);
            s0.CopyTo(target);
            s1.CopyTo(target[width..]);
            s2.CopyTo(target[(2 * width)..]);
            s3.CopyTo(target[(3 * width)..]);
        }

        for (; t <= count - width; t += width)
        {
            Vector<double> sum = Vector<double>.Zero;
            for (int k = 0; k < d; k++)
            {
                var difference = new Vector<double>(x[k]) - new Vector<double>(transposed.Slice(k * columns + start + t, width));
                sum = Vector.FusedMultiplyAdd(difference, difference, sum);
            }

            sum.CopyTo(destination.Slice(t, width));
        }

        for (; t < count; t++)
        {
            double sum = 0;
            for (int k = 0; k < d; k++)
            {
                double difference = x[k] - transposed[k * columns + start + t];
                sum = Math.FusedMultiplyAdd(difference, difference, sum);
            }

            destination[t] = sum;
        }
    }

    // values[i] = exp(-gamma · values[i]).
    private static void ExpInPlace(Span<double> values, double gamma)
    {
        int width = Vector<double>.Count;
        var scale = new Vector<double>(-gamma);
        Span<Vector<double>> vectors = MemoryMarshal.Cast<double, Vector<double>>(values);
        for (int v = 0; v < vectors.Length; v++)
        {
            vectors[v] = ExpNonPositive(vectors[v] * scale);
        }

        for (int i = vectors.Length * width; i < values.Length; i++)
        {
            values[i] = Math.Exp(-gamma * values[i]);
        }
    }

    /// <summary>
    /// exp(x) for x ≤ 0, within 1 ulp of <see cref="Math.Exp"/> (measured 2.2e-16 relative); results below about
    /// 1e-307 (x &lt; -708) flush to 0. About 6x faster than <c>Vector.Exp</c>, which dominated the kernel's cost.
    /// </summary>
    /// <remarks>
    /// x = n ln 2 + r with n = round(x / ln 2) (the 1.5 · 2^52 rounding trick, which also leaves n in the low bits),
    /// ln 2 split in two parts so r is exact, |r| ≤ ln 2 / 2; exp(r) by its Taylor series to degree 13 (truncation
    /// below 1e-17); 2^n assembled in the exponent bits.
    /// </remarks>
    internal static Vector<double> ExpNonPositive(Vector<double> x)
    {
        var magic = new Vector<double>(6755399441055744.0);
        Vector<double> t = Vector.FusedMultiplyAdd(x, new Vector<double>(1.4426950408889634), magic);
        Vector<double> n = t - magic;
        Vector<double> r = Vector.FusedMultiplyAdd(n, new Vector<double>(-6.93147180369123816490e-01), x);
        r = Vector.FusedMultiplyAdd(n, new Vector<double>(-1.90821492927058770002e-10), r);
        var p = new Vector<double>(1.0 / 6227020800.0);
        p = Vector.FusedMultiplyAdd(p, r, new Vector<double>(1.0 / 479001600.0));
        p = Vector.FusedMultiplyAdd(p, r, new Vector<double>(1.0 / 39916800.0));
        p = Vector.FusedMultiplyAdd(p, r, new Vector<double>(1.0 / 3628800.0));
        p = Vector.FusedMultiplyAdd(p, r, new Vector<double>(1.0 / 362880.0));
        p = Vector.FusedMultiplyAdd(p, r, new Vector<double>(1.0 / 40320.0));
        p = Vector.FusedMultiplyAdd(p, r, new Vector<double>(1.0 / 5040.0));
        p = Vector.FusedMultiplyAdd(p, r, new Vector<double>(1.0 / 720.0));
        p = Vector.FusedMultiplyAdd(p, r, new Vector<double>(1.0 / 120.0));
        p = Vector.FusedMultiplyAdd(p, r, new Vector<double>(1.0 / 24.0));
        p = Vector.FusedMultiplyAdd(p, r, new Vector<double>(1.0 / 6.0));
        p = Vector.FusedMultiplyAdd(p, r, new Vector<double>(0.5));
        p = Vector.FusedMultiplyAdd(p, r, Vector<double>.One);
        p = Vector.FusedMultiplyAdd(p, r, Vector<double>.One);

        // The low bits of t hold n (two's complement); shifted into the exponent field they add n to 1.0's exponent.
        Vector<double> twoToN = Vector.AsVectorDouble(Vector.AsVectorInt64(Vector<double>.One) + Vector.ShiftLeft(Vector.AsVectorInt64(t), 52));
        return Vector.ConditionalSelect(Vector.LessThan(x, new Vector<double>(-708.0)), Vector<double>.Zero, p * twoToN);
    }

    // columnSums[j] += row[j] for every j; returns Σ row[j] (the row's own sum), both vectorized.
    private static double AccumulateRow(ReadOnlySpan<double> row, Span<double> columnSums)
    {
        int width = Vector<double>.Count;
        ReadOnlySpan<Vector<double>> values = MemoryMarshal.Cast<double, Vector<double>>(row);
        Span<Vector<double>> sums = MemoryMarshal.Cast<double, Vector<double>>(columnSums[..row.Length]);
        Vector<double> total = Vector<double>.Zero;
        for (int v = 0; v < values.Length; v++)
        {
            total += values[v];
            sums[v] += values[v];
        }

        double sum = Vector.Sum(total);
        for (int j = values.Length * width; j < row.Length; j++)
        {
            sum += row[j];
            columnSums[j] += row[j];
        }

        return sum;
    }

    // sums[p_k] += a · masks[p_k · stride + offset ..] for four permutations at once.
    private static void Dot4(ReadOnlySpan<double> a, ReadOnlySpan<double> masks, int offset, int stride, int p0, int p1, int p2, int p3, Span<double> sums)
    {
        int width = Vector<double>.Count;
        ReadOnlySpan<double> b0 = masks.Slice(p0 * stride + offset, a.Length);
        ReadOnlySpan<double> b1 = masks.Slice(p1 * stride + offset, a.Length);
        ReadOnlySpan<double> b2 = masks.Slice(p2 * stride + offset, a.Length);
        ReadOnlySpan<double> b3 = masks.Slice(p3 * stride + offset, a.Length);
        ReadOnlySpan<Vector<double>> va = MemoryMarshal.Cast<double, Vector<double>>(a);
        ReadOnlySpan<Vector<double>> v0 = MemoryMarshal.Cast<double, Vector<double>>(b0);
        ReadOnlySpan<Vector<double>> v1 = MemoryMarshal.Cast<double, Vector<double>>(b1);
        ReadOnlySpan<Vector<double>> v2 = MemoryMarshal.Cast<double, Vector<double>>(b2);
        ReadOnlySpan<Vector<double>> v3 = MemoryMarshal.Cast<double, Vector<double>>(b3);
        Vector<double> s0 = Vector<double>.Zero;
        Vector<double> s1 = Vector<double>.Zero;
        Vector<double> s2 = Vector<double>.Zero;
        Vector<double> s3 = Vector<double>.Zero;
        for (int v = 0; v < va.Length; v++)
        {
            Vector<double> x = va[v];
            s0 = Vector.FusedMultiplyAdd(x, v0[v], s0);
            s1 = Vector.FusedMultiplyAdd(x, v1[v], s1);
            s2 = Vector.FusedMultiplyAdd(x, v2[v], s2);
            s3 = Vector.FusedMultiplyAdd(x, v3[v], s3);
        }

        double t0 = Vector.Sum(s0);
        double t1 = Vector.Sum(s1);
        double t2 = Vector.Sum(s2);
        double t3 = Vector.Sum(s3);
        for (int i = va.Length * width; i < a.Length; i++)
        {
            t0 += a[i] * b0[i];
            t1 += a[i] * b1[i];
            t2 += a[i] * b2[i];
            t3 += a[i] * b3[i];
        }

        sums[p0] += t0;
        sums[p1] += t1;
        sums[p2] += t2;
        sums[p3] += t3;
    }

    private static double Dot(ReadOnlySpan<double> a, ReadOnlySpan<double> b)
    {
        int width = Vector<double>.Count;
        ReadOnlySpan<Vector<double>> va = MemoryMarshal.Cast<double, Vector<double>>(a);
        ReadOnlySpan<Vector<double>> vb = MemoryMarshal.Cast<double, Vector<double>>(b[..a.Length]);
        Vector<double> s0 = Vector<double>.Zero;
        Vector<double> s1 = Vector<double>.Zero;
        int v = 0;
        for (; v + 1 < va.Length; v += 2)
        {
            s0 = Vector.FusedMultiplyAdd(va[v], vb[v], s0);
            s1 = Vector.FusedMultiplyAdd(va[v + 1], vb[v + 1], s1);
        }

        if (v < va.Length)
        {
            s0 = Vector.FusedMultiplyAdd(va[v], vb[v], s0);
        }

        double sum = Vector.Sum(s0 + s1);
        for (int i = va.Length * width; i < a.Length; i++)
        {
            sum += a[i] * b[i];
        }

        return sum;
    }

    // The element at sorted index ⌊(count - 1) / 2⌋, by quickselect (the values are reordered).
    private static double LowerMedian(Span<double> values)
    {
        int target = (values.Length - 1) / 2;
        int low = 0;
        int high = values.Length - 1;
        while (low < high)
        {
            // Median of three as pivot; Hoare partition.
            int middle = low + (high - low) / 2;
            double a = values[low];
            double b = values[middle];
            double c = values[high];
            double pivot = Math.Max(Math.Min(a, b), Math.Min(Math.Max(a, b), c));
            int i = low;
            int j = high;
            while (i <= j)
            {
                while (values[i] < pivot)
                {
                    i++;
                }

                while (values[j] > pivot)
                {
                    j--;
                }

                if (i <= j)
                {
                    (values[i], values[j]) = (values[j], values[i]);
                    i++;
                    j--;
                }
            }

            if (target <= j)
            {
                high = j;
            }
            else if (target >= i)
            {
                low = i;
            }
            else
            {
                return values[target];
            }
        }

        return values[target];
    }
}
