namespace Monitor.Analysis.Drift;

/// <summary>
/// The numerical pieces the Evidently tests need: log-gamma, the regularized incomplete gamma function, the chi-square
/// and normal distribution functions as scipy evaluates them, and sorted-sample helpers.
/// </summary>
/// <remarks>
/// Our own implementations of textbook methods (Stirling series with upward recurrence; Legendre's series and continued
/// fraction for the incomplete gamma function, evaluated with the modified Lentz method). Accuracy is about 1e-14
/// relative in the ranges the tests use, far inside the 1e-6 the p-values are checked to. Results below about
/// 1e-308 flush to 0, as scipy's cephes flushes them.
/// </remarks>
internal static class EvidentlyNumerics
{
    // Relative size of the last term kept; a few ulps, so the loops end even when rounding makes them stall near 1.
    private const double Epsilon = 1e-15;
    private const double Tiny = 1e-300;
    private const int MaxIterations = 100_000;

    // 0.5 * ln(2π).
    private const double HalfLogTwoPi = 0.91893853320467274178032973640562;

    // cephes NPY_SQRT1_2, the constant scipy's ndtr scales by.
    private const double Sqrt1Over2 = 0.70710678118654752440;

    /// <summary>ln Γ(x) for x &gt; 0.</summary>
    public static double LogGamma(double x)
    {
        if (!(x > 0))
        {
            return double.NaN;
        }

        if (double.IsPositiveInfinity(x))
        {
            return double.PositiveInfinity;
        }

        // Stirling's series is accurate to far below one ulp from 15 on; smaller arguments are shifted up with
        // Γ(x) = Γ(x + k) / (x (x + 1) ... (x + k - 1)).
        double shift = 0;
        if (x < 15)
        {
            double product = 1;
            while (x < 15)
            {
                product *= x;
                x += 1;
            }

            shift = Math.Log(product);
        }

        double inverse = 1 / x;
        double inverse2 = inverse * inverse;
        double series = inverse * (1.0 / 12 + inverse2 * (-1.0 / 360 + inverse2 * (1.0 / 1260 + inverse2 * (-1.0 / 1680
            + inverse2 * (1.0 / 1188 + inverse2 * (-691.0 / 360360 + inverse2 * (1.0 / 156 + inverse2 * (-3617.0 / 122400))))))));
        return (x - 0.5) * Math.Log(x) - x + HalfLogTwoPi + series - shift;
    }

    /// <summary>The regularized upper incomplete gamma function Q(a, x) = Γ(a, x) / Γ(a) (scipy <c>gammaincc</c>).</summary>
    public static double RegularizedGammaQ(double a, double x)
    {
        if (double.IsNaN(a) || double.IsNaN(x) || a <= 0 || x < 0)
        {
            return double.NaN;
        }

        if (x == 0)
        {
            return 1;
        }

        if (double.IsPositiveInfinity(x))
        {
            return 0;
        }

        // The series converges fast below a + 1 and the continued fraction above; P is at most about 0.6 in the series
        // region, so 1 - P keeps Q's relative accuracy.
        return x < a + 1 ? 1 - GammaSeries(a, x) : GammaContinuedFraction(a, x);
    }

    /// <summary>The regularized lower incomplete gamma function P(a, x) = γ(a, x) / Γ(a) (scipy <c>gammainc</c>).</summary>
    public static double RegularizedGammaP(double a, double x)
    {
        if (double.IsNaN(a) || double.IsNaN(x) || a <= 0 || x < 0)
        {
            return double.NaN;
        }

        if (x == 0)
        {
            return 0;
        }

        if (double.IsPositiveInfinity(x))
        {
            return 1;
        }

        return x < a + 1 ? GammaSeries(a, x) : 1 - GammaContinuedFraction(a, x);
    }

    /// <summary>
    /// The chi-square survival function (scipy <c>chi2.sf(x, df)</c>, cephes <c>chdtrc</c>): Q(df / 2, x / 2); 1 for
    /// x &lt; 0, NaN for df &lt;= 0 (scipy's argument check), 0 for x = +∞.
    /// </summary>
    public static double ChiSquareSurvival(double x, double degreesOfFreedom)
    {
        if (double.IsNaN(x) || !(degreesOfFreedom > 0))
        {
            return double.NaN;
        }

        return x < 0 ? 1 : RegularizedGammaQ(degreesOfFreedom / 2, x / 2);
    }

    /// <summary>erf(x) = sign(x) P(1/2, x²).</summary>
    public static double Erf(double x)
    {
        double value = RegularizedGammaP(0.5, x * x);
        return x < 0 ? -value : value;
    }

    /// <summary>erfc(x) = Q(1/2, x²) for x &gt;= 0, 2 - erfc(-x) below.</summary>
    public static double Erfc(double x)
    {
        double upper = RegularizedGammaQ(0.5, x * x);
        return x < 0 ? 2 - upper : upper;
    }

    /// <summary>
    /// The standard normal distribution function, evaluated as scipy's <c>ndtr</c> (and so <c>norm.cdf</c>) does:
    /// 0.5 + 0.5 erf(a/√2) near 0, else 0.5 erfc(|a|/√2), reflected for positive arguments. The z-test's
    /// <c>1 - norm.cdf(|z|)</c> then rounds as scipy's does.
    /// </summary>
    public static double NormalCdf(double a)
    {
        if (double.IsNaN(a))
        {
            return double.NaN;
        }

        double x = a * Sqrt1Over2;
        double z = Math.Abs(x);
        if (z < Sqrt1Over2)
        {
            return 0.5 + 0.5 * Erf(x);
        }

        double y = 0.5 * Erfc(z);
        return x > 0 ? 1 - y : y;
    }

    /// <summary>The population standard deviation (numpy <c>std</c>, ddof = 0), two-pass.</summary>
    public static double PopulationStandardDeviation(ReadOnlySpan<double> values)
    {
        double sum = 0;
        for (int i = 0; i < values.Length; i++)
        {
            sum += values[i];
        }

        double mean = sum / values.Length;
        double squares = 0;
        for (int i = 0; i < values.Length; i++)
        {
            double deviation = values[i] - mean;
            squares += deviation * deviation;
        }

        return Math.Sqrt(squares / values.Length);
    }

    /// <summary>
    /// Copies <paramref name="values"/> into <paramref name="destination"/> sorted ascending, with the scipy tests' sort
    /// (a copy only when already sorted, a radix sort for large samples).
    /// </summary>
    public static Span<double> SortedCopy(ReadOnlySpan<double> values, Span<double> destination, DriftWorkspace workspace)
    {
        TwoSampleScratch.SortInto(values, destination, workspace);
        return destination;
    }

    /// <summary>The number of distinct values of a sorted span (-0 and +0 are one value, as in pandas).</summary>
    public static int CountDistinctSorted(ReadOnlySpan<double> sorted)
    {
        if (sorted.IsEmpty)
        {
            return 0;
        }

        int count = 1;
        for (int i = 1; i < sorted.Length; i++)
        {
            if (sorted[i] != sorted[i - 1])
            {
                count++;
            }
        }

        return count;
    }

    /// <summary>The number of distinct values in the union of two sorted spans.</summary>
    public static int CountDistinctUnionSorted(ReadOnlySpan<double> a, ReadOnlySpan<double> b)
    {
        int i = 0;
        int j = 0;
        int count = 0;
        while (i < a.Length || j < b.Length)
        {
            double key = i == a.Length ? b[j] : j == b.Length ? a[i] : Math.Min(a[i], b[j]);
            while (i < a.Length && a[i] == key)
            {
                i++;
            }

            while (j < b.Length && b[j] == key)
            {
                j++;
            }

            count++;
        }

        return count;
    }

    /// <summary>Throws when a sample is empty (the contract of <see cref="IUnivariateDriftTest.Test(ReadOnlySpan{double}, ReadOnlySpan{double}, FeatureKind, DriftWorkspace)"/>).</summary>
    public static void RequireSamples(ReadOnlySpan<double> reference, ReadOnlySpan<double> current)
    {
        if (reference.IsEmpty)
        {
            throw new ArgumentException("The reference sample is empty.", nameof(reference));
        }

        if (current.IsEmpty)
        {
            throw new ArgumentException("The current sample is empty.", nameof(current));
        }
    }

    // exp(a ln x - x - ln Γ(a)), the factor both expansions share.
    private static double GammaPrefactor(double a, double x) => Math.Exp(a * Math.Log(x) - x - LogGamma(a));

    // P(a, x) = x^a e^-x / Γ(a + 1) · Σ x^n / ((a + 1) ... (a + n)).
    private static double GammaSeries(double a, double x)
    {
        double denominator = a;
        double term = 1 / a;
        double sum = term;
        for (int n = 0; n < MaxIterations; n++)
        {
            denominator += 1;
            term *= x / denominator;
            sum += term;
            if (Math.Abs(term) < Math.Abs(sum) * Epsilon)
            {
                break;
            }
        }

        return sum * GammaPrefactor(a, x);
    }

    // Q(a, x) = x^a e^-x / Γ(a) · 1 / (x + 1 - a - 1(1 - a) / (x + 3 - a - 2(2 - a) / (x + 5 - a - ...))), modified Lentz.
    private static double GammaContinuedFraction(double a, double x)
    {
        double b = x + 1 - a;
        double c = 1 / Tiny;
        double d = 1 / b;
        double h = d;
        for (int i = 1; i < MaxIterations; i++)
        {
            double an = -i * (i - a);
            b += 2;
            d = an * d + b;
            if (Math.Abs(d) < Tiny)
            {
                d = Tiny;
            }

            c = b + an / c;
            if (Math.Abs(c) < Tiny)
            {
                c = Tiny;
            }

            d = 1 / d;
            double delta = d * c;
            h *= delta;
            if (Math.Abs(delta - 1) < Epsilon)
            {
                break;
            }
        }

        return h * GammaPrefactor(a, x);
    }
}
