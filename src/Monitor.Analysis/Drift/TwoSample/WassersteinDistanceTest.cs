namespace Monitor.Analysis.Drift;

/// <summary>
/// The raw first Wasserstein (earth mover's) distance, <c>wasserstein</c>: scipy 1.10's
/// <c>wasserstein_distance(reference, current)</c> (<c>scipy/stats/_stats_py.py</c>). A distance in the samples' units,
/// no p-value.
/// </summary>
/// <remarks>
/// <para>
/// W₁ = ∫ |F_ref(x) − F_cur(x)| dx, integrated exactly over the pooled sorted values (scipy's
/// <c>_cdf_distance(1, ...)</c>), the terms summed in numpy's order. O((n + m) log(n + m)); thread-safe; steady-state
/// calls allocate nothing.
/// </para>
/// <para>
/// Evidently has no raw Wasserstein test (its <c>wasserstein</c> divides by the reference's standard deviation, a
/// different test). The default here is a choice of ours: drift when W₁ ≥ 0.1, the threshold Evidently gives its
/// normed Wasserstein; being unnormalised, it only suits features whose scale is known.
/// </para>
/// </remarks>
public sealed class WassersteinDistanceTest : IUnivariateDriftTest
{
    private WassersteinDistanceTest()
    {
    }

    /// <summary>The shared instance (the test is stateless).</summary>
    public static WassersteinDistanceTest Instance { get; } = new();

    /// <inheritdoc />
    public string Name => "wasserstein";

    /// <summary><see cref="DriftVerdictRule.StatisticAtLeast"/> (our choice; see the remarks).</summary>
    public DriftVerdictRule VerdictRule => DriftVerdictRule.StatisticAtLeast;

    /// <summary>0.1 (our choice, Evidently's threshold for its normed Wasserstein).</summary>
    public double DefaultThreshold => 0.1;

    /// <inheritdoc />
    /// <remarks>The feature kind is ignored; the p-value is NaN.</remarks>
    public TwoSampleResult Test(ReadOnlySpan<double> reference, ReadOnlySpan<double> current, FeatureKind kind, DriftWorkspace workspace) =>
        new(Compute(reference, current, workspace), double.NaN);

    /// <summary>Computes <c>wasserstein_distance(reference, current)</c>.</summary>
    /// <param name="reference">The first sample (finite values; not modified).</param>
    /// <param name="current">The second sample (finite values; not modified).</param>
    /// <param name="workspace">Scratch memory, one per thread.</param>
    /// <returns>The distance (≥ 0).</returns>
    /// <exception cref="ArgumentException">A sample is empty.</exception>
    public static double Compute(ReadOnlySpan<double> reference, ReadOnlySpan<double> current, DriftWorkspace workspace)
    {
        ArgumentNullException.ThrowIfNull(workspace);
        TwoSampleScratch.RequireSizes(reference, current, 1, "wasserstein");
        return CdfDistance.Compute(1, reference, current, workspace);
    }
}
