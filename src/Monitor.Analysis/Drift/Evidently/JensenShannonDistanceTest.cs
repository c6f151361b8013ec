namespace Monitor.Analysis.Drift;

/// <summary>
/// Evidently's Jensen-Shannon distance (<c>jensenshannon</c>,
/// <c>evidently/legacy/calculations/stattests/jensenshannon.py</c>): scipy's
/// <c>spatial.distance.jensenshannon(ref, cur)</c>, the square root of the Jensen-Shannon divergence with the natural
/// logarithm, sqrt((KL(p ‖ m) + KL(q ‖ m)) / 2) with m = (p + q) / 2; drift when the distance ≥ 0.1.
/// </summary>
/// <remarks>
/// <para>Bins and shares as Evidently's <c>get_binned_data</c> makes them (see
/// <see cref="PopulationStabilityIndexTest"/>), but without filling empty bins: Evidently passes
/// <c>feel_zeroes=False</c> here, and an empty bin contributes 0. The distance lies in [0, sqrt(ln 2)].</para>
/// <para>The result has no p-value. Stateless and thread-safe; scratch from the workspace (doubles slots 0-3), so a
/// call allocates nothing once the workspace has grown. Empty samples throw <see cref="ArgumentException"/>.</para>
/// </remarks>
public sealed class JensenShannonDistanceTest : IUnivariateDriftTest
{
    /// <summary>The CLI name, <c>jensenshannon</c>.</summary>
    public const string TestName = "jensenshannon";

    /// <summary>Evidently's default threshold, 0.1 (drift at a distance ≥ 0.1).</summary>
    public const double Threshold = 0.1;

    private JensenShannonDistanceTest()
    {
    }

    /// <summary>The shared instance (the test is stateless).</summary>
    public static JensenShannonDistanceTest Instance { get; } = new();

    /// <inheritdoc />
    public string Name => TestName;

    /// <inheritdoc />
    public DriftVerdictRule VerdictRule => DriftVerdictRule.StatisticAtLeast;

    /// <inheritdoc />
    public double DefaultThreshold => Threshold;

    /// <inheritdoc />
    public TwoSampleResult Test(ReadOnlySpan<double> reference, ReadOnlySpan<double> current, FeatureKind kind, DriftWorkspace workspace)
    {
        int bins = EvidentlyBinning.Bin(reference, current, kind, fillEmptyBins: false, workspace, out Span<double> p, out Span<double> q);
        double sumP = 0;
        double sumQ = 0;
        for (int i = 0; i < bins; i++)
        {
            sumP += p[i];
            sumQ += q[i];
        }

        double left = 0;
        double right = 0;
        for (int i = 0; i < bins; i++)
        {
            double pi = p[i] / sumP;
            double qi = q[i] / sumQ;
            double m = (pi + qi) / 2.0;
            left += KullbackLeiblerTest.RelativeEntropy(pi, m);
            right += KullbackLeiblerTest.RelativeEntropy(qi, m);
        }

        return new TwoSampleResult(Math.Sqrt((left + right) / 2.0), double.NaN);
    }
}
