namespace Monitor.Analysis.Drift;

/// <summary>
/// Evidently's two-proportion z-test (<c>z</c>, <c>evidently/legacy/calculations/stattests/z_stattest.py</c>),
/// Evidently's default for columns with at most two distinct values; drift when p &lt; 0.05.
/// </summary>
/// <remarks>
/// <para>"The" proportion is the share of values that are <em>not</em> the smallest value of the union of both
/// samples (Evidently sorts the distinct values and codes <c>keys[0]</c> as 0, everything else as 1; category codes
/// sort as numbers). With p1, p2 those shares over n1 reference and n2 current values and the pooled share
/// P = (p1 n1 + p2 n2) / (n1 + n2): z = (p1 - p2) / sqrt(P (1 - P) (1/n1 + 1/n2)), two-sided
/// p = 2 (1 - Φ(|z|)), evaluated as Evidently does (1 - <c>norm.cdf</c>, so p flushes to 0 from |z| ≈ 8.3).
/// When both samples hold one and the same value, p = 1 (Evidently's special case) and z is reported as 0.</para>
/// <para>Numerical and categorical columns are treated alike (Evidently registers the test for categorical columns
/// but its default choice also uses it for numerical ones with at most two values).</para>
/// <para><see cref="TwoSampleResult.Statistic"/> is z, <see cref="TwoSampleResult.PValue"/> the p-value. Stateless,
/// thread-safe and allocation-free (the workspace is not used). Empty samples throw <see cref="ArgumentException"/>.</para>
/// </remarks>
public sealed class TwoProportionZTest : IUnivariateDriftTest
{
    /// <summary>The CLI name, <c>z</c>.</summary>
    public const string TestName = "z";

    /// <summary>Evidently's default threshold, 0.05 (drift at p &lt; 0.05).</summary>
    public const double Threshold = 0.05;

    private TwoProportionZTest()
    {
    }

    /// <summary>The shared instance (the test is stateless).</summary>
    public static TwoProportionZTest Instance { get; } = new();

    /// <inheritdoc />
    public string Name => TestName;

    /// <inheritdoc />
    public DriftVerdictRule VerdictRule => DriftVerdictRule.PValueBelow;

    /// <inheritdoc />
    public double DefaultThreshold => Threshold;

    /// <inheritdoc />
    public TwoSampleResult Test(ReadOnlySpan<double> reference, ReadOnlySpan<double> current, FeatureKind kind, DriftWorkspace workspace)
    {
        EvidentlyNumerics.RequireSamples(reference, current);
        double smallest = Math.Min(Min(reference), Min(current));
        if (AllEqual(reference, smallest) && AllEqual(current, smallest))
        {
            return new TwoSampleResult(0, 1);
        }

        int n1 = reference.Length;
        int n2 = current.Length;
        double p1 = (double)(n1 - Count(reference, smallest)) / n1;
        double p2 = (double)(n2 - Count(current, smallest)) / n2;
        double pooled = (p1 * n1 + p2 * n2) / (n1 + n2);
        double z = (p1 - p2) / Math.Sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2));
        double p = 2 * (1 - EvidentlyNumerics.NormalCdf(Math.Abs(z)));
        return new TwoSampleResult(z, p);
    }

    private static double Min(ReadOnlySpan<double> values)
    {
        double min = values[0];
        for (int i = 1; i < values.Length; i++)
        {
            min = Math.Min(min, values[i]);
        }

        return min;
    }

    private static int Count(ReadOnlySpan<double> values, double value)
    {
        int count = 0;
        for (int i = 0; i < values.Length; i++)
        {
            if (values[i] == value)
            {
                count++;
            }
        }

        return count;
    }

    private static bool AllEqual(ReadOnlySpan<double> values, double value)
    {
        for (int i = 0; i < values.Length; i++)
        {
            if (values[i] != value)
            {
                return false;
            }
        }

        return true;
    }
}
