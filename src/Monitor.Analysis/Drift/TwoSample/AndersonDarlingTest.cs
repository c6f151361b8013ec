namespace Monitor.Analysis.Drift;

/// <summary>
/// The k-sample Anderson-Darling test for two samples, <c>anderson</c>: scipy 1.10's
/// <c>anderson_ksamp([reference, current], midrank=True)</c> (<c>scipy/stats/_morestats.py</c>), read as Evidently
/// 0.6/0.7 reads it (<c>stattests/anderson_darling_stattest.py</c>: its <c>significance_level</c>, drift when
/// <c>p &lt; 0.1</c>).
/// </summary>
/// <remarks>
/// <para>
/// Statistic: Scholz and Stephens (1987) A²akN, eq. 7 (the midrank version for ties, <c>_anderson_ksamp_midrank</c>),
/// standardised as scipy does: A2 = (A²akN − (k − 1)) / σ_N with σ_N² from their eq. 4 (k = 2). The per-sample sums
/// follow numpy's summation order.
/// </para>
/// <para>
/// p-value: scipy 1.10's significance level, a quadratic fitted (least squares, <c>np.polyfit</c>) to
/// log(0.25, 0.1, 0.05, 0.025, 0.01, 0.005, 0.001) against the seven critical values of Scholz and Stephens' Table 2
/// for k − 1 = 1, evaluated at A2 and exponentiated; below the smallest critical value (0.325) it is capped at 0.25
/// and above the largest (6.546) floored at 0.001 (scipy warns in both cases). So p ∈ [0.001, 0.25]: with Evidently's
/// threshold 0.1 the verdict is still meaningful, but p is not a calibrated probability outside that band.
/// </para>
/// <para>
/// Failures as in scipy: an empty sample, a pooled sample with fewer than two distinct values, or two values in all
/// (scipy's IndexError) throw <see cref="ArgumentException"/>; three values in all give NaN for both numbers (σ_N² is
/// 0/0). Thread-safe; steady-state calls allocate nothing.
/// </para>
/// </remarks>
public sealed class AndersonDarlingTest : IUnivariateDriftTest
{
    private const int Samples = 2;

    // Scholz and Stephens (1987), Table 2, as in scipy 1.10 (the interpolation coefficients b0, b1, b2).
    private static readonly double[] B0 = [0.675, 1.281, 1.645, 1.96, 2.326, 2.573, 3.085];
    private static readonly double[] B1 = [-0.245, 0.25, 0.678, 1.149, 1.822, 2.364, 3.615];
    private static readonly double[] B2 = [-0.105, -0.305, -0.362, -0.391, -0.396, -0.345, -0.154];
    private static readonly double[] Significance = [0.25, 0.1, 0.05, 0.025, 0.01, 0.005, 0.001];
    private static readonly double[] Critical = CriticalValues();
    private static readonly double[] Fit = FitLogSignificance();
    private static readonly double CriticalMin = Critical.Min();
    private static readonly double CriticalMax = Critical.Max();

    private AndersonDarlingTest()
    {
    }

    /// <summary>The shared instance (the test is stateless).</summary>
    public static AndersonDarlingTest Instance { get; } = new();

    /// <inheritdoc />
    public string Name => "anderson";

    /// <summary><see cref="DriftVerdictRule.PValueBelow"/>: Evidently's anderson reports drift when <c>p_value &lt; threshold</c>.</summary>
    public DriftVerdictRule VerdictRule => DriftVerdictRule.PValueBelow;

    /// <summary>0.1, Evidently's <c>default_threshold</c> for anderson.</summary>
    public double DefaultThreshold => 0.1;

    /// <inheritdoc />
    /// <remarks>The feature kind is ignored.</remarks>
    public TwoSampleResult Test(ReadOnlySpan<double> reference, ReadOnlySpan<double> current, FeatureKind kind, DriftWorkspace workspace) =>
        Compute(reference, current, workspace);

    /// <summary>Runs <c>anderson_ksamp([reference, current])</c>.</summary>
    /// <param name="reference">The first sample (finite values; not modified).</param>
    /// <param name="current">The second sample (finite values; not modified).</param>
    /// <param name="workspace">Scratch memory, one per thread.</param>
    /// <returns>The standardised statistic and scipy's significance level, in [0.001, 0.25] (or NaN, NaN for three values in all).</returns>
    /// <exception cref="ArgumentException">A sample is empty, the pooled sample has one distinct value, or only two values.</exception>
    public static TwoSampleResult Compute(ReadOnlySpan<double> reference, ReadOnlySpan<double> current, DriftWorkspace workspace)
    {
        ArgumentNullException.ThrowIfNull(workspace);
        TwoSampleScratch.RequireSizes(reference, current, 1, "anderson");
        TwoSampleScratch.SortBoth(reference, current, workspace, out Span<double> a, out Span<double> b);
        int n1 = a.Length, n2 = b.Length, total = n1 + n2;
        if (a[0] == a[n1 - 1] && b[0] == b[n2 - 1] && a[0] == b[0])
        {
            throw new ArgumentException("anderson: needs more than one distinct observation", nameof(reference));
        }

        if (total == 2)
        {
            // scipy fails here (an empty harmonic sum: IndexError).
            throw new ArgumentException("anderson: needs at least three observations in all", nameof(reference));
        }

        double a2kN = MidrankStatistic(a, b, workspace);
        double h0 = (1.0 / n1) + (1.0 / n2);

        // h = Σ_{i=1}^{N-1} 1/i and g = Σ_{i=1}^{N-2} Σ_{j=i+1}^{N-1} 1/((N − i) j), as scipy forms them.
        Span<double> quotients = workspace.Doubles(WorkspaceSlots.Scratch0, total - 2);
        double cumulative = 0.0;
        for (int i = 0; i < total - 2; i++)
        {
            cumulative += 1.0 / (total - 1 - i);
            quotients[i] = cumulative / (i + 2);
        }

        double hh = cumulative + 1;
        double g = NumpyArithmetic.Sum(quotients);
        const int K = Samples;
        double ca = ((((4 * g) - 6) * (K - 1)) + ((10 - (6 * g)) * h0));
        double cb = (((2 * g) - 4) * (K * K)) + (8 * hh * K) + ((((2 * g) - (14 * hh)) - 4) * h0) - (8 * hh) + (4 * g) - 6;
        double cc = (((6 * hh) + (2 * g) - 2) * (K * K)) + ((((4 * hh) - (4 * g)) + 6) * K) + (((2 * hh) - 6) * h0) + (4 * hh);
        double cd = (((2 * hh) + 6) * (K * K)) - (4 * hh * K);
        double n = total;
        double sigmaSquared = ((ca * (double)((Int128)total * total * total)) + (cb * (double)((long)total * total)) + (cc * n) + cd)
            / ((n - 1.0) * (n - 2.0) * (n - 3.0));
        if (sigmaSquared < 0)
        {
            // scipy's math.sqrt raises on a negative variance.
            throw new ArgumentException("anderson: the statistic's variance is negative for these sizes", nameof(reference));
        }

        double a2 = (a2kN - (K - 1)) / Math.Sqrt(sigmaSquared);
        return new TwoSampleResult(a2, SignificanceLevel(a2));
    }

    /// <summary>scipy 1.10's significance level for the standardised statistic (two samples).</summary>
    internal static double SignificanceLevel(double a2)
    {
        if (a2 < CriticalMin)
        {
            return 0.25;
        }

        if (a2 > CriticalMax)
        {
            return 0.001;
        }

        double y = 0.0;
        foreach (double c in Fit)
        {
            y = (y * a2) + c;
        }

        return Math.Exp(y);
    }

    // A²akN, eq. 7 of Scholz and Stephens: Σ_i 1/n_i Σ_j l_j/N (N·M_ij − B_j·n_i)² / (B_j(N − B_j) − N·l_j/4) over the
    // distinct pooled values z_j, with l_j their multiplicity, B_j = #{Z < z_j} + l_j/2 and M_ij = #{sample i < z_j} + f_ij/2.
    private static double MidrankStatistic(ReadOnlySpan<double> a, ReadOnlySpan<double> b, DriftWorkspace workspace)
    {
        int n1 = a.Length, n2 = b.Length, total = n1 + n2;
        Span<double> inner1 = workspace.Doubles(WorkspaceSlots.Scratch0, total);
        Span<double> inner2 = workspace.Doubles(WorkspaceSlots.Scratch1, total);
        int i = 0, j = 0, distinct = 0;
        double n = total;
        while (i < n1 || j < n2)
        {
            double value = j >= n2 || (i < n1 && a[i] <= b[j]) ? a[i] : b[j];
            int i0 = i, j0 = j;
            while (i < n1 && a[i] == value)
            {
                i++;
            }

            while (j < n2 && b[j] == value)
            {
                j++;
            }

            int fa = i - i0, fb = j - j0, l = fa + fb;
            double bj = (i0 + j0) + (l / 2.0);
            double weight = l / n;
            double denominator = (bj * (n - bj)) - ((long)total * l / 4.0);
            double ma = i - (fa / 2.0), mb = j - (fb / 2.0);
            double da = (n * ma) - (bj * n1), db = (n * mb) - (bj * n2);
            inner1[distinct] = weight * (da * da) / denominator;
            inner2[distinct] = weight * (db * db) / denominator;
            distinct++;
        }

        double result = 0.0;
        result += NumpyArithmetic.Sum(inner1[..distinct]) / n1;
        result += NumpyArithmetic.Sum(inner2[..distinct]) / n2;
        return result * ((n - 1.0) / n);
    }

    private static double[] CriticalValues()
    {
        // b0 + b1/√m + b2/m with m = k − 1 = 1.
        var critical = new double[B0.Length];
        for (int i = 0; i < critical.Length; i++)
        {
            critical[i] = B0[i] + (B1[i] / Math.Sqrt(Samples - 1)) + (B2[i] / (Samples - 1));
        }

        return critical;
    }

    // np.polyfit(critical, log(sig), 2): least squares on the column-scaled Vandermonde matrix, solved here by
    // Householder QR (numpy uses LAPACK's SVD; the two agree to rounding). Coefficients highest power first.
    private static double[] FitLogSignificance()
    {
        const int Columns = 3;
        int rows = Critical.Length;
        var matrix = new double[rows, Columns];
        var rhs = new double[rows];
        var scale = new double[Columns];
        for (int r = 0; r < rows; r++)
        {
            matrix[r, 0] = Critical[r] * Critical[r];
            matrix[r, 1] = Critical[r];
            matrix[r, 2] = 1.0;
            rhs[r] = Math.Log(Significance[r]);
        }

        for (int c = 0; c < Columns; c++)
        {
            double sum = 0.0;
            for (int r = 0; r < rows; r++)
            {
                sum += matrix[r, c] * matrix[r, c];
            }

            scale[c] = Math.Sqrt(sum);
            for (int r = 0; r < rows; r++)
            {
                matrix[r, c] /= scale[c];
            }
        }

        for (int c = 0; c < Columns; c++)
        {
            double norm = 0.0;
            for (int r = c; r < rows; r++)
            {
                norm += matrix[r, c] * matrix[r, c];
            }

            norm = Math.Sqrt(norm);
            double alpha = matrix[c, c] > 0 ? -norm : norm;
            var v = new double[rows];
            v[c] = matrix[c, c] - alpha;
            for (int r = c + 1; r < rows; r++)
            {
                v[r] = matrix[r, c];
            }

            double vv = 0.0;
            for (int r = c; r < rows; r++)
            {
                vv += v[r] * v[r];
            }

            for (int k = c; k < Columns; k++)
            {
                double dot = 0.0;
                for (int r = c; r < rows; r++)
                {
                    dot += v[r] * matrix[r, k];
                }

                for (int r = c; r < rows; r++)
                {
                    matrix[r, k] -= 2 * dot / vv * v[r];
                }
            }

            double dotRhs = 0.0;
            for (int r = c; r < rows; r++)
            {
                dotRhs += v[r] * rhs[r];
            }

            for (int r = c; r < rows; r++)
            {
                rhs[r] -= 2 * dotRhs / vv * v[r];
            }
        }

        var coefficients = new double[Columns];
        for (int c = Columns - 1; c >= 0; c--)
        {
            double sum = rhs[c];
            for (int k = c + 1; k < Columns; k++)
            {
                sum -= matrix[c, k] * coefficients[k];
            }

            coefficients[c] = sum / matrix[c, c];
        }

        for (int c = 0; c < Columns; c++)
        {
            coefficients[c] /= scale[c];
        }

        return coefficients;
    }
}
