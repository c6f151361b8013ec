namespace Monitor.Analysis.Drift;

/// <summary>
/// Evidently's chi-square test (<c>chisquare</c>, <c>evidently/legacy/calculations/stattests/chisquare_stattest.py</c>):
/// Pearson's goodness of fit of the current counts against the reference shares, drift when p &lt; 0.05.
/// </summary>
/// <remarks>
/// <para>Over the union of values of both samples (one category per distinct value, numerical or categorical alike):
/// observed = current count, expected = reference count · (n_cur / n_ref); χ² = Σ (observed - expected)² / expected and
/// p = chi2.sf(χ², k - 1) with k the number of distinct values (scipy's <c>chisquare(f_obs, f_exp)</c>). A value
/// absent from the reference has expected 0, so χ² = +∞ and p = 0. A single distinct value has 0 degrees of freedom:
/// scipy returns NaN, and so does this test (never drift: NaN &lt; 0.05 is false).</para>
/// <para>The chi-square survival function is the regularized upper incomplete gamma function Q(k/2, χ²/2), our own
/// series and continued fraction, about 1e-14 relative.</para>
/// <para><see cref="TwoSampleResult.Statistic"/> is χ², <see cref="TwoSampleResult.PValue"/> the p-value. Stateless
/// and thread-safe; scratch from the workspace (doubles slots 0-3), so a call allocates nothing once the workspace has
/// grown. Empty samples throw <see cref="ArgumentException"/>.</para>
/// </remarks>
public sealed class ChiSquareTest : IUnivariateDriftTest
{
    /// <summary>The CLI name, <c>chisquare</c>.</summary>
    public const string TestName = "chisquare";

    /// <summary>Evidently's default threshold, 0.05 (drift at p &lt; 0.05).</summary>
    public const double Threshold = 0.05;

    private ChiSquareTest()
    {
    }

    /// <summary>The shared instance (the test is stateless).</summary>
    public static ChiSquareTest Instance { get; } = new();

    /// <inheritdoc />
    public string Name => TestName;

    /// <inheritdoc />
    public DriftVerdictRule VerdictRule => DriftVerdictRule.PValueBelow;

    /// <inheritdoc />
    public double DefaultThreshold => Threshold;

    /// <inheritdoc />
    public TwoSampleResult Test(ReadOnlySpan<double> reference, ReadOnlySpan<double> current, FeatureKind kind, DriftWorkspace workspace)
    {
        ArgumentNullException.ThrowIfNull(workspace);
        EvidentlyNumerics.RequireSamples(reference, current);
        Span<double> sortedReference = EvidentlyNumerics.SortedCopy(reference, workspace.Doubles(0, reference.Length), workspace);
        Span<double> sortedCurrent = EvidentlyNumerics.SortedCopy(current, workspace.Doubles(1, current.Length), workspace);
        int keys = EvidentlyNumerics.CountDistinctUnionSorted(sortedReference, sortedCurrent);
        Span<double> referenceCounts = workspace.Doubles(2, keys);
        Span<double> currentCounts = workspace.Doubles(3, keys);
        EvidentlyBinning.ValueCounts(sortedReference, sortedCurrent, referenceCounts, currentCounts);

        double scale = (double)current.Length / reference.Length;
        double statistic = 0;
        for (int i = 0; i < keys; i++)
        {
            double expected = referenceCounts[i] * scale;
            double difference = currentCounts[i] - expected;
            statistic += difference * difference / expected;
        }

        return new TwoSampleResult(statistic, EvidentlyNumerics.ChiSquareSurvival(statistic, keys - 1));
    }
}
