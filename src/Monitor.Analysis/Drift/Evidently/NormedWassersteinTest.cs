namespace Monitor.Analysis.Drift;

/// <summary>
/// Evidently's normed Wasserstein distance (<c>wasserstein</c>,
/// <c>evidently/legacy/calculations/stattests/wasserstein_distance_norm.py</c>), named <c>wasserstein-norm</c> here:
/// W1(ref, cur) / max(σ_ref, 0.001), with W1 scipy's <c>wasserstein_distance</c> and σ_ref the population standard
/// deviation (ddof = 0) of the reference; drift when the value ≥ 0.1.
/// </summary>
/// <remarks>
/// <para>W1 is the integral of |F_ref - F_cur| between the empirical distribution functions (scipy's
/// <c>_cdf_distance(1, u, v)</c>), computed by sorting both samples and walking their merged values. The raw,
/// unnormalised Wasserstein distance is another test (<c>wasserstein</c>).</para>
/// <para>Numerical columns only, as in Evidently: a categorical column throws <see cref="ArgumentException"/>.</para>
/// <para>The result has no p-value. Stateless and thread-safe; scratch from the workspace (doubles slots 0-1), so a
/// call allocates nothing once the workspace has grown. Empty samples throw <see cref="ArgumentException"/>.</para>
/// </remarks>
public sealed class NormedWassersteinTest : IUnivariateDriftTest
{
    /// <summary>The CLI name, <c>wasserstein-norm</c> (Evidently's <c>wasserstein</c>).</summary>
    public const string TestName = "wasserstein-norm";

    /// <summary>Evidently's default threshold, 0.1 (drift at a normed distance ≥ 0.1).</summary>
    public const double Threshold = 0.1;

    /// <summary>The smallest reference standard deviation divided by (Evidently's floor).</summary>
    public const double MinimumScale = 0.001;

    private NormedWassersteinTest()
    {
    }

    /// <summary>The shared instance (the test is stateless).</summary>
    public static NormedWassersteinTest Instance { get; } = new();

    /// <inheritdoc />
    public string Name => TestName;

    /// <inheritdoc />
    public DriftVerdictRule VerdictRule => DriftVerdictRule.StatisticAtLeast;

    /// <inheritdoc />
    public double DefaultThreshold => Threshold;

    /// <inheritdoc />
    public TwoSampleResult Test(ReadOnlySpan<double> reference, ReadOnlySpan<double> current, FeatureKind kind, DriftWorkspace workspace)
    {
        ArgumentNullException.ThrowIfNull(workspace);
        EvidentlyNumerics.RequireSamples(reference, current);
        if (kind != FeatureKind.Numerical)
        {
            throw new ArgumentException("wasserstein-norm applies to numerical columns only (as in Evidently).", nameof(kind));
        }

        double scale = Math.Max(EvidentlyNumerics.PopulationStandardDeviation(reference), MinimumScale);
        // Evidently divides scipy's wasserstein_distance: the same computation as the raw test, summed as numpy sums.
        return new TwoSampleResult(WassersteinDistanceTest.Compute(reference, current, workspace) / scale, double.NaN);
    }
}
