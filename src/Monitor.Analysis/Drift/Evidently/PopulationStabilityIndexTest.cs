namespace Monitor.Analysis.Drift;

/// <summary>
/// Evidently's Population Stability Index (<c>psi</c>, <c>evidently/legacy/calculations/stattests/psi.py</c>):
/// PSI = Σ (ref_i - cur_i) · ln(ref_i / cur_i) over Evidently's bins, drift when PSI ≥ 0.1.
/// </summary>
/// <remarks>
/// <para>Bins and shares as Evidently's <c>get_binned_data</c> makes them with empty bins filled (see the
/// "Evidently tests" section of <c>Drift/README.md</c>): a numerical column with more than 20 distinct reference values
/// gets Sturges bins over both samples, anything else one bin per distinct value; an empty bin's share becomes 0.0001
/// (or the smallest non-zero share / 1e6 when that is itself at most 0.0001), so the statistic is always finite.</para>
/// <para>The result has no p-value. Stateless and thread-safe; scratch from the workspace (doubles slots 0-3), so a
/// call allocates nothing once the workspace has grown. Empty samples throw <see cref="ArgumentException"/>.</para>
/// </remarks>
public sealed class PopulationStabilityIndexTest : IUnivariateDriftTest
{
    /// <summary>The CLI name, <c>psi</c>.</summary>
    public const string TestName = "psi";

    /// <summary>Evidently's default threshold, 0.1 (drift at PSI ≥ 0.1).</summary>
    public const double Threshold = 0.1;

    private PopulationStabilityIndexTest()
    {
    }

    /// <summary>The shared instance (the test is stateless).</summary>
    public static PopulationStabilityIndexTest Instance { get; } = new();

    /// <inheritdoc />
    public string Name => TestName;

    /// <inheritdoc />
    public DriftVerdictRule VerdictRule => DriftVerdictRule.StatisticAtLeast;

    /// <inheritdoc />
    public double DefaultThreshold => Threshold;

    /// <inheritdoc />
    public TwoSampleResult Test(ReadOnlySpan<double> reference, ReadOnlySpan<double> current, FeatureKind kind, DriftWorkspace workspace)
    {
        int bins = EvidentlyBinning.Bin(reference, current, kind, fillEmptyBins: true, workspace, out Span<double> r, out Span<double> c);
        double psi = 0;
        for (int i = 0; i < bins; i++)
        {
            psi += (r[i] - c[i]) * Math.Log(r[i] / c[i]);
        }

        return new TwoSampleResult(psi, double.NaN);
    }
}
