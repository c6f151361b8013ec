namespace Monitor.Analysis.Drift;

/// <summary>
/// The energy distance, <c>energy</c>: scipy 1.10's <c>energy_distance(reference, current)</c>
/// (<c>scipy/stats/_stats_py.py</c>), which Evidently 0.6/0.7 runs as its <c>ed</c> test
/// (<c>stattests/energy_distance.py</c>): a distance, no p-value; drift when it exceeds 0.1.
/// </summary>
/// <remarks>
/// E = √2 · (∫ (F_ref(x) − F_cur(x))² dx)^{1/2}, the square root of Székely's energy distance 2E|X−Y| − E|X−X'| −
/// E|Y−Y'| in its CDF form, integrated exactly over the pooled sorted values (scipy's <c>_cdf_distance(2, ...)</c>);
/// the terms are summed in numpy's order. The statistic is in the samples' units. O((n + m) log(n + m)); thread-safe;
/// steady-state calls allocate nothing.
/// </remarks>
public sealed class EnergyDistanceTest : IUnivariateDriftTest
{
    private static readonly double Sqrt2 = Math.Sqrt(2);

    private EnergyDistanceTest()
    {
    }

    /// <summary>The shared instance (the test is stateless).</summary>
    public static EnergyDistanceTest Instance { get; } = new();

    /// <inheritdoc />
    public string Name => "energy";

    /// <summary>
    /// <see cref="DriftVerdictRule.StatisticAbove"/>: Evidently's <c>ed</c> reports drift when <c>distance &gt; threshold</c>
    /// (strictly, unlike its other distances).
    /// </summary>
    public DriftVerdictRule VerdictRule => DriftVerdictRule.StatisticAbove;

    /// <summary>0.1, Evidently's <c>default_threshold</c> for ed.</summary>
    public double DefaultThreshold => 0.1;

    /// <inheritdoc />
    /// <remarks>The feature kind is ignored; the p-value is NaN.</remarks>
    public TwoSampleResult Test(ReadOnlySpan<double> reference, ReadOnlySpan<double> current, FeatureKind kind, DriftWorkspace workspace) =>
        new(Compute(reference, current, workspace), double.NaN);

    /// <summary>Computes <c>energy_distance(reference, current)</c>.</summary>
    /// <param name="reference">The first sample (finite values; not modified).</param>
    /// <param name="current">The second sample (finite values; not modified).</param>
    /// <param name="workspace">Scratch memory, one per thread.</param>
    /// <returns>The energy distance (≥ 0).</returns>
    /// <exception cref="ArgumentException">A sample is empty.</exception>
    public static double Compute(ReadOnlySpan<double> reference, ReadOnlySpan<double> current, DriftWorkspace workspace)
    {
        ArgumentNullException.ThrowIfNull(workspace);
        TwoSampleScratch.RequireSizes(reference, current, 1, "energy");
        return Sqrt2 * CdfDistance.Compute(2, reference, current, workspace);
    }
}
