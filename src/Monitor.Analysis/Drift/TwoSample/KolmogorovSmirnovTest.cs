namespace Monitor.Analysis.Drift;

/// <summary>How <see cref="KolmogorovSmirnovTest"/> computes its p-value (scipy's <c>ks_2samp(method=...)</c>).</summary>
public enum KolmogorovSmirnovMethod
{
    /// <summary>Exact when both samples have at most 10,000 values, asymptotic otherwise (scipy's default).</summary>
    Auto,

    /// <summary>
    /// The exact distribution (what river's KSWIN asks for), falling back to the asymptotic one as scipy does: when
    /// lcm(n1, n2) would not fit an int32, or when the exact computation leaves [0, 1].
    /// </summary>
    Exact,

    /// <summary>The finite-n Kolmogorov distribution <c>kstwo.sf(D, round(n1·n2 / (n1 + n2)))</c>.</summary>
    Asymptotic,
}

/// <summary>
/// The two-sample Kolmogorov-Smirnov test, <c>ks</c>: scipy 1.10's
/// <c>ks_2samp(reference, current, alternative="two-sided", method="auto")</c> (<c>scipy/stats/_stats_py.py</c>), the
/// test Evidently 0.6/0.7 runs for <c>ks</c> (<c>stattests/ks_stattest.py</c>): drift when <c>p ≤ 0.05</c>.
/// </summary>
/// <remarks>
/// <para>
/// Statistic: D = max over the pooled values of |F_ref(x) − F_cur(x)| (right-continuous empirical CDFs, so ties
/// are handled as scipy's <c>searchsorted(side="right")</c> does), each CDF difference computed as
/// <c>count/n1 − count/n2</c> in float64 like scipy.
/// </para>
/// <para>
/// p-value (<see cref="KolmogorovSmirnovMethod.Auto"/>): exact when max(n1, n2) ≤ 10,000 (scipy's
/// <c>_attempt_exact_2kssamp</c>): D is first rounded to h / lcm(n1, n2) with h = round(D · lcm) (that rounded D is
/// the statistic returned), then P(D ≥ h/lcm) is Hodges' formula <c>_compute_prob_outside_square</c> for equal
/// sizes or the lattice-path recursion <c>_compute_outer_prob_inside_method</c> (Viehmann's 1 − p form) otherwise;
/// h = 0 gives 1. When the exact value falls outside [0, 1] (rounding at h = 1), scipy switches to the asymptotic
/// value, and so does this. Asymptotic: <c>kstwo.sf(D, round(en))</c> with en = n1·n2/(n1 + n2), the finite-n
/// two-sided Kolmogorov distribution of <c>scipy.stats._ksstats._kolmogn</c> in all its regions. The result is
/// clipped to [0, 1].
/// </para>
/// <para>
/// Cost: two sorts plus O(n1 + n2) for the statistic; the exact p-value is O(n) for equal sizes and
/// O(max(n1, n2) · window) for unequal ones, where the window is about 2·D·min(n1, n2). Thread-safe; steady-state
/// calls allocate nothing (scratch from the workspace). Only the two-sided alternative is provided.
/// </para>
/// </remarks>
public sealed class KolmogorovSmirnovTest : IUnivariateDriftTest
{
    // scipy's MAX_AUTO_N: "auto" is exact while both sizes are at most this.
    private const int MaxAutoN = 10000;

    private KolmogorovSmirnovTest()
    {
    }

    /// <summary>The shared instance (the test is stateless).</summary>
    public static KolmogorovSmirnovTest Instance { get; } = new();

    /// <inheritdoc />
    public string Name => "ks";

    /// <summary><see cref="DriftVerdictRule.PValueAtMost"/>: Evidently's ks test reports drift when <c>p_value &lt;= threshold</c>.</summary>
    public DriftVerdictRule VerdictRule => DriftVerdictRule.PValueAtMost;

    /// <summary>0.05, Evidently's <c>default_threshold</c> for ks.</summary>
    public double DefaultThreshold => 0.05;

    /// <inheritdoc />
    /// <remarks>The feature kind is ignored; the p-value uses <see cref="KolmogorovSmirnovMethod.Auto"/>.</remarks>
    public TwoSampleResult Test(ReadOnlySpan<double> reference, ReadOnlySpan<double> current, FeatureKind kind, DriftWorkspace workspace) =>
        Compute(reference, current, workspace);

    /// <inheritdoc />
    /// <remarks>Ranks the current values in the reference through the rank table built with it (the same D and p-value as
    /// the span overload, to the last bit).</remarks>
    public TwoSampleResult Test(SortedReference reference, ReadOnlySpan<double> current, FeatureKind kind, DriftWorkspace workspace)
    {
        ArgumentNullException.ThrowIfNull(reference);
        ArgumentNullException.ThrowIfNull(workspace);
        TwoSampleScratch.RequireSizes(reference.Values, current, 1, "ks");
        if (TwoSampleScratch.IsSorted(current))
        {
            return Compute(reference.Values, current, workspace);
        }

        var ranks = new RankTable(reference.Values, reference.RankTable);
        return PValue(StatisticAgainstSorted(reference.Values, ranks, current, workspace), reference.Count, current.Length, KolmogorovSmirnovMethod.Auto, workspace);
    }

    /// <summary>Runs <c>ks_2samp(reference, current)</c> with the given p-value method.</summary>
    /// <param name="reference">The first sample (finite values; not modified).</param>
    /// <param name="current">The second sample (finite values; not modified).</param>
    /// <param name="workspace">Scratch memory, one per thread.</param>
    /// <param name="method">How the p-value is computed; default <see cref="KolmogorovSmirnovMethod.Auto"/>.</param>
    /// <returns>D (rounded to h/lcm when the exact method succeeded) and the two-sided p-value.</returns>
    /// <exception cref="ArgumentException">A sample is empty.</exception>
    public static TwoSampleResult Compute(
        ReadOnlySpan<double> reference, ReadOnlySpan<double> current, DriftWorkspace workspace, KolmogorovSmirnovMethod method = KolmogorovSmirnovMethod.Auto)
    {
        ArgumentNullException.ThrowIfNull(workspace);
        TwoSampleScratch.RequireSizes(reference, current, 1, "ks");
        if (TwoSampleScratch.IsSorted(reference) && !TwoSampleScratch.IsSorted(current))
        {
            // A monitor's frozen reference is kept sorted: rank the current values in it instead of sorting them.
            return PValue(StatisticAgainstSorted(reference, current, workspace), reference.Length, current.Length, method, workspace);
        }

        TwoSampleScratch.SortBoth(reference, current, workspace, out Span<double> a, out Span<double> b);
        double d = Statistic(a, b);
        return PValue(d, a.Length, b.Length, method, workspace);
    }

    /// <summary>
    /// D of a sorted sample <paramref name="a"/> against an unsorted one <paramref name="b"/>, without sorting b: each b
    /// is ranked in a (k = #a ≤ b, through a lookup table over a's range and a short search), which gives, per run of
    /// equal a and per gap between a's values, exactly the (#a ≤ x, #b ≤ x) pairs at which the ECDF difference takes its
    /// extremes over the pooled values: at a's values the largest, at the last b of each gap the smallest. The same
    /// pairs and the same arithmetic as <see cref="Statistic"/>, so the same D to the last bit, in O(n + m).
    /// </summary>
    internal static double StatisticAgainstSorted(ReadOnlySpan<double> a, ReadOnlySpan<double> b, DriftWorkspace workspace)
    {
        Span<int> table = workspace.Ints(WorkspaceSlots.RankTable, a.Length + 1);
        RankTable.Fill(a, table);
        return StatisticAgainstSorted(a, new RankTable(a, table), b, workspace);
    }

    /// <summary>The rank table of a sorted, non-empty sample (see <see cref="SortedReference"/>).</summary>
    internal static int[] BuildRankTable(ReadOnlySpan<double> a)
    {
        var table = new int[a.Length + 1];
        RankTable.Fill(a, table);
        return table;
    }

    private static double StatisticAgainstSorted(ReadOnlySpan<double> a, RankTable ranks, ReadOnlySpan<double> b, DriftWorkspace workspace)
    {
        int n1 = a.Length, n2 = b.Length;
        // below[k]: b with exactly k values of a at or below them; tied[i]: b equal to a[i] (i the last of its run).
        Span<int> below = workspace.Ints(WorkspaceSlots.RankCounts, n1 + 1);
        Span<int> tied = workspace.Ints(WorkspaceSlots.TieCounts, n1);
        below.Clear();
        tied.Clear();
        foreach (double value in b)
        {
            int k = ranks.CountAtMost(value);
            below[k]++;
            if (k > 0 && a[k - 1] == value)
            {
                tied[k - 1]++;
            }
        }

        double maxS = double.NegativeInfinity, minS = double.PositiveInfinity;
        int atMost = below[0];
        if (atMost > 0)
        {
            Extremes(0, atMost, n1, n2, ref maxS, ref minS);
        }

        for (int i = 0; i < n1; i++)
        {
            if (i == n1 - 1 || a[i + 1] != a[i])
            {
                // x = a[i], the last of its run: #a <= x = i + 1; #b <= x = those ranked below it and those equal to it.
                Extremes(i + 1, atMost + tied[i], n1, n2, ref maxS, ref minS);
            }

            if (below[i + 1] > 0)
            {
                // The largest b ranked i + 1 (in [a[i], a[i + 1])): every b of the gap is at or below it.
                atMost += below[i + 1];
                Extremes(i + 1, atMost, n1, n2, ref maxS, ref minS);
            }
        }

        minS = Math.Clamp(-minS, 0.0, 1.0);
        return minS > maxS ? minS : maxS;
    }

    private static void Extremes(int i, int j, int n1, int n2, ref double maxS, ref double minS)
    {
        double diff = ((double)i / n1) - ((double)j / n2);
        maxS = Math.Max(maxS, diff);
        minS = Math.Min(minS, diff);
    }

    /// <summary>
    /// #a ≤ x for a sorted sample a in O(1) expected: a table over a's range splits it into equal cells, each knowing
    /// how many values of a lie below it; the answer is then found among the few values of the cell. Values outside the
    /// range, and cells the floating-point index might have missed, take a binary search.
    /// </summary>
    private readonly ref struct RankTable
    {
        private readonly ReadOnlySpan<double> _a;
        private readonly ReadOnlySpan<int> _start;
        private readonly double _low;
        private readonly double _scale;
        private readonly int _cells;

        /// <summary>Reads a table that <see cref="Fill"/> wrote for <paramref name="a"/>.</summary>
        public RankTable(ReadOnlySpan<double> a, ReadOnlySpan<int> start)
        {
            _a = a;
            _low = a[0];
            _cells = Math.Max(1, a.Length);
            double range = a[^1] - a[0];
            _scale = range > 0 && double.IsFinite(range) ? _cells / range : 0;
            // _start[c]: #a < the lower edge of cell c (cell c covers [low + c / scale, low + (c + 1) / scale)).
            _start = start[..(_cells + 1)];
        }

        /// <summary>Writes the table of the sorted, non-empty <paramref name="a"/> into <paramref name="start"/> (a.Length + 1 entries).</summary>
        public static void Fill(ReadOnlySpan<double> a, Span<int> start)
        {
            var cells = new RankTable(a, start);
            // a is sorted, so Cell(a[p]) never decreases: every cell up to a[p]'s own that no earlier a reached starts
            // at p. One Cell() per value.
            int next = 0;
            for (int position = 0; position < a.Length; position++)
            {
                int cell = cells.Cell(a[position]);
                while (next <= cell)
                {
                    start[next++] = position;
                }
            }

            start[next..(cells._cells + 1)].Fill(a.Length);
        }

        public int CountAtMost(double x)
        {
            if (x < _a[0])
            {
                return 0;
            }

            if (x >= _a[^1])
            {
                return _a.Length;
            }

            int c = Cell(x);
            int lo = _start[c], hi = _start[Math.Min(c + 1, _cells)];
            // Every a of cell c is at [lo, hi); those of earlier cells are smaller than x, later ones larger, because
            // the same Cell() mapped them: an exact bracket. The first a > x is then at most hi.
            while (hi < _a.Length && _a[hi] <= x)
            {
                hi++;
            }

            while (lo > 0 && _a[lo - 1] > x)
            {
                lo--;
            }

            while (lo < hi)
            {
                int mid = (lo + hi) >>> 1;
                if (_a[mid] <= x)
                {
                    lo = mid + 1;
                }
                else
                {
                    hi = mid;
                }
            }

            return lo;
        }

        private int Cell(double x) => _scale == 0 ? 0 : Math.Clamp((int)((x - _low) * _scale), 0, _cells - 1);
    }

    /// <summary>D for two sorted samples.</summary>
    internal static double Statistic(ReadOnlySpan<double> a, ReadOnlySpan<double> b)
    {
        int n1 = a.Length, n2 = b.Length;
        double maxS = double.NegativeInfinity, minS = double.PositiveInfinity;
        int i = 0, j = 0;
        while (i < n1 || j < n2)
        {
            double value = j >= n2 || (i < n1 && a[i] <= b[j]) ? a[i] : b[j];
            while (i < n1 && a[i] <= value)
            {
                i++;
            }

            while (j < n2 && b[j] <= value)
            {
                j++;
            }

            double diff = ((double)i / n1) - ((double)j / n2);
            maxS = Math.Max(maxS, diff);
            minS = Math.Min(minS, diff);
        }

        // scipy: minS = clip(-min(cddiffs), 0, 1); the larger of the two sides wins, the positive one on a tie.
        minS = Math.Clamp(-minS, 0.0, 1.0);
        return minS > maxS ? minS : maxS;
    }

    /// <summary>The p-value of statistic <paramref name="d"/> for sizes n1 and n2, and the statistic as scipy returns it.</summary>
    internal static TwoSampleResult PValue(double d, int n1, int n2, KolmogorovSmirnovMethod method, DriftWorkspace workspace)
    {
        int g = Gcd(n1, n2);
        long n1g = n1 / g, n2g = n2 / g;
        if (method == KolmogorovSmirnovMethod.Auto)
        {
            method = Math.Max(n1, n2) <= MaxAutoN ? KolmogorovSmirnovMethod.Exact : KolmogorovSmirnovMethod.Asymptotic;
        }
        else if (method == KolmogorovSmirnovMethod.Exact && n1g >= (double)int.MaxValue / n2g)
        {
            // lcm(n1, n2) too large for scipy's exact computation.
            method = KolmogorovSmirnovMethod.Asymptotic;
        }

        double prob = double.NegativeInfinity;
        if (method == KolmogorovSmirnovMethod.Exact)
        {
            long lcm = n1g * n2;
            long h = (long)Math.Round(d * lcm, MidpointRounding.ToEven);
            d = h * 1.0 / lcm;
            if (h == 0)
            {
                prob = 1.0;
            }
            else
            {
                prob = n1 == n2 ? ProbOutsideSquare(n1, h) : OuterProbInside(n1, n2, g, h, workspace);
                if (!(prob >= 0 && prob <= 1))
                {
                    method = KolmogorovSmirnovMethod.Asymptotic;
                }
            }
        }

        if (method == KolmogorovSmirnovMethod.Asymptotic)
        {
            double m = Math.Max(n1, n2), n = Math.Min(n1, n2);
            double en = m * n / (m + n);
            prob = KolmogorovDistribution.TwoSidedSf(d, Math.Round(en, MidpointRounding.ToEven), workspace);
        }

        return new TwoSampleResult(d, double.IsNaN(prob) ? prob : Math.Clamp(prob, 0.0, 1.0));
    }

    /// <summary>
    /// P(D_{n,n} ≥ h/n) for two samples of size n (scipy's <c>_compute_prob_outside_square</c>):
    /// 2 Σ_k (−1)^(k+1) C(2n, n − kh) / C(2n, n), evaluated Horner-like from the innermost term so that nothing cancels.
    /// </summary>
    internal static double ProbOutsideSquare(long n, long h)
    {
        double p = 0.0;
        long k = (long)Math.Floor((double)n / h);
        for (; k >= 0; k--)
        {
            double p1 = 1.0;
            long kh = k * h;
            for (long j = 0; j < h; j++)
            {
                p1 = (n - kh - j) * p1 / (n + kh + j + 1);
                if (p1 == 0)
                {
                    // A zero factor: the rest of the product stays zero.
                    break;
                }
            }

            p = p1 * (1.0 - p);
        }

        return 2 * p;
    }

    /// <summary>
    /// The proportion of lattice paths from (0, 0) to (m, n) that leave the band |x/m − y/n| &lt; h / lcm(m, n)
    /// (scipy's <c>_compute_outer_prob_inside_method</c>, after Hodges 1958 and Viehmann 2021), one column at a time
    /// over a sliding window.
    /// </summary>
    internal static double OuterProbInside(long m, long n, long g, long h, DriftWorkspace workspace)
    {
        if (m < n)
        {
            (m, n) = (n, m);
        }

        long mg = m / g, ng = n / g;
        long minj = 0;
        long maxj = Math.Min((long)Math.Ceiling((double)h / mg), n + 1);
        long curlen = maxj - minj;
        int lenA = (int)Math.Min((2 * maxj) + 2, n + 1);
        Span<double> a = workspace.Doubles(WorkspaceSlots.Scratch0, lenA);
        a.Fill(1.0);
        a[(int)minj..(int)Math.Min(maxj, lenA)].Clear();
        for (long i = 1; i <= m; i++)
        {
            long lastminj = minj, lastlen = curlen;
            minj = Math.Max((long)Math.Floor((double)((ng * i) - h) / mg) + 1, 0);
            minj = Math.Min(minj, n);
            maxj = Math.Min((long)Math.Ceiling((double)((ng * i) + h) / mg), n + 1);
            if (maxj <= minj)
            {
                return 1.0;
            }

            double val = minj == 0 ? 0.0 : 1.0;
            int width = (int)(maxj - minj);
            int shift = (int)(minj - lastminj);
            for (int jj = 0; jj < width; jj++)
            {
                long j = jj + minj;
                val = ((a[jj + shift] * i) + (val * j)) / (i + j);
                a[jj] = val;
            }

            curlen = maxj - minj;
            if (lastlen > curlen)
            {
                // Carried-over elements beyond the new window are set to 1 (numpy's slice assignment clips at the end).
                int from = (int)Math.Min(curlen, lenA);
                int to = (int)Math.Min(curlen + (lastlen - curlen), lenA);
                a[from..to].Fill(1.0);
            }
        }

        return a[(int)(maxj - minj - 1)];
    }

    private static int Gcd(int a, int b)
    {
        while (b != 0)
        {
            (a, b) = (b, a % b);
        }

        return a;
    }
}
