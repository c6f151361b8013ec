namespace Monitor.Analysis.Drift;

/// <summary>
/// Evidently's Kullback-Leibler divergence (<c>kl_div</c>, <c>evidently/legacy/calculations/stattests/kl_div.py</c>),
/// named <c>kl</c> here: scipy's <c>entropy(ref, cur)</c> = Σ p_i · ln(p_i / q_i) with p and q the reference and
/// current shares, each normalised to sum 1, natural logarithm; drift when the divergence ≥ 0.1.
/// </summary>
/// <remarks>
/// <para>Bins and shares as for <see cref="PopulationStabilityIndexTest"/> (Evidently's <c>get_binned_data</c> with
/// empty bins filled), so the divergence is always finite. The direction is reference relative to current
/// (KL(ref ‖ cur)), as Evidently calls it.</para>
/// <para>The result has no p-value. Stateless and thread-safe; scratch from the workspace (doubles slots 0-3), so a
/// call allocates nothing once the workspace has grown. Empty samples throw <see cref="ArgumentException"/>.</para>
/// </remarks>
public sealed class KullbackLeiblerTest : IUnivariateDriftTest
{
    /// <summary>The CLI name, <c>kl</c> (Evidently's <c>kl_div</c>).</summary>
    public const string TestName = "kl";

    /// <summary>Evidently's default threshold, 0.1 (drift at a divergence ≥ 0.1).</summary>
    public const double Threshold = 0.1;

    private KullbackLeiblerTest()
    {
    }

    /// <summary>The shared instance (the test is stateless).</summary>
    public static KullbackLeiblerTest Instance { get; } = new();

    /// <inheritdoc />
    public string Name => TestName;

    /// <inheritdoc />
    public DriftVerdictRule VerdictRule => DriftVerdictRule.StatisticAtLeast;

    /// <inheritdoc />
    public double DefaultThreshold => Threshold;

    /// <inheritdoc />
    public TwoSampleResult Test(ReadOnlySpan<double> reference, ReadOnlySpan<double> current, FeatureKind kind, DriftWorkspace workspace)
    {
        int bins = EvidentlyBinning.Bin(reference, current, kind, fillEmptyBins: true, workspace, out Span<double> p, out Span<double> q);
        double sumP = 0;
        double sumQ = 0;
        for (int i = 0; i < bins; i++)
        {
            sumP += p[i];
            sumQ += q[i];
        }

        double divergence = 0;
        for (int i = 0; i < bins; i++)
        {
            divergence += RelativeEntropy(p[i] / sumP, q[i] / sumQ);
        }

        return new TwoSampleResult(divergence, double.NaN);
    }

    /// <summary>scipy's <c>rel_entr(x, y)</c>: x ln(x / y) for positive x and y, 0 for x = 0, else +∞.</summary>
    internal static double RelativeEntropy(double x, double y)
    {
        if (x > 0 && y > 0)
        {
            return x * Math.Log(x / y);
        }

        return x == 0 && y >= 0 ? 0 : double.PositiveInfinity;
    }
}
