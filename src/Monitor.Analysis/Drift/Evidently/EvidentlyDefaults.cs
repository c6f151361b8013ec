namespace Monitor.Analysis.Drift;

/// <summary>The test Evidently would run on a column, with its threshold and how its verdict is read.</summary>
/// <param name="Name">The CLI name of the test: <c>ks</c>, <c>chisquare</c>, <c>z</c>, <c>wasserstein-norm</c> or
/// <c>jensenshannon</c>.</param>
/// <param name="Threshold">Evidently's default threshold for that test.</param>
/// <param name="VerdictRule">How the verdict is read (KS: p ≤ threshold; chi-square and z: p &lt; threshold; the
/// distances: statistic ≥ threshold).</param>
public readonly record struct EvidentlyTestChoice(string Name, double Threshold, DriftVerdictRule VerdictRule);

/// <summary>
/// Evidently's defaults (0.6-0.7): which test a column gets when none is named (<c>auto</c>), and the dataset-level
/// verdict from the per-column verdicts.
/// </summary>
/// <remarks>
/// <para>The choice follows <c>_get_default_stattest</c> in <c>evidently/legacy/calculations/stattests/registry.py</c>,
/// with n_values the number of distinct values of reference and current together (NaN already dropped):</para>
/// <list type="table">
/// <listheader><term>Reference rows</term><description>Choice</description></listheader>
/// <item><term>≤ 1000, numerical, n_values &gt; 5</term><description><c>ks</c>, drift at p ≤ 0.05</description></item>
/// <item><term>≤ 1000, numerical with 3-5 values, or categorical with &gt; 2</term><description><c>chisquare</c>, drift at p &lt; 0.05</description></item>
/// <item><term>≤ 1000, at most 2 values (either kind)</term><description><c>z</c>, drift at p &lt; 0.05</description></item>
/// <item><term>&gt; 1000, numerical, n_values &gt; 5</term><description><c>wasserstein-norm</c>, drift at ≥ 0.1</description></item>
/// <item><term>&gt; 1000, categorical, or numerical with ≤ 5 values</term><description><c>jensenshannon</c>, drift at ≥ 0.1</description></item>
/// </list>
/// <para>The dataset verdict follows <c>get_dataset_drift</c> in <c>evidently/legacy/calculations/data_drift.py</c>:
/// drift when (drifted columns / columns) ≥ <c>drift_share</c>, 0.5 by default.</para>
/// <para>All members are thread-safe (pure functions); the workspace overloads use doubles slot 0 and allocate
/// nothing once it has grown.</para>
/// </remarks>
public static class EvidentlyDefaults
{
    /// <summary>The name that asks for Evidently's default choice, <c>auto</c>.</summary>
    public const string AutoName = "auto";

    /// <summary>References with more rows than this get the large-sample defaults (Wasserstein, Jensen-Shannon).</summary>
    public const int SmallReferenceMaxRows = 1000;

    /// <summary>Numerical columns with more distinct values than this get KS or Wasserstein.</summary>
    public const int FewValuesMax = 5;

    /// <summary>Columns with at most this many distinct values get the z-test (small references).</summary>
    public const int BinaryValuesMax = 2;

    /// <summary>Evidently's default share of drifted columns for dataset drift, 0.5.</summary>
    public const double DriftShare = 0.5;

    /// <summary>The KS test's name (implemented outside this folder), chosen for small numerical references.</summary>
    public const string KolmogorovSmirnovName = "ks";

    /// <summary>Evidently's KS threshold, 0.05, read as p ≤ 0.05 (<c>ks_stattest.py</c>).</summary>
    public const double KolmogorovSmirnovThreshold = 0.05;

    /// <summary>
    /// The test Evidently picks for a column from the reference size, the kind and the number of distinct values over
    /// both samples (see the class remarks).
    /// </summary>
    /// <param name="referenceRows">Rows of the reference column (after dropping NaN).</param>
    /// <param name="distinctValues">Distinct values of reference and current together.</param>
    /// <param name="kind">Numerical or categorical.</param>
    /// <exception cref="ArgumentOutOfRangeException">A negative count.</exception>
    public static EvidentlyTestChoice Choose(int referenceRows, int distinctValues, FeatureKind kind)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(referenceRows);
        ArgumentOutOfRangeException.ThrowIfNegative(distinctValues);
        bool many = kind == FeatureKind.Numerical && distinctValues > FewValuesMax;
        if (referenceRows <= SmallReferenceMaxRows)
        {
            if (many)
            {
                return new EvidentlyTestChoice(KolmogorovSmirnovName, KolmogorovSmirnovThreshold, DriftVerdictRule.PValueAtMost);
            }

            return distinctValues > BinaryValuesMax
                ? new EvidentlyTestChoice(ChiSquareTest.TestName, ChiSquareTest.Threshold, DriftVerdictRule.PValueBelow)
                : new EvidentlyTestChoice(TwoProportionZTest.TestName, TwoProportionZTest.Threshold, DriftVerdictRule.PValueBelow);
        }

        return many
            ? new EvidentlyTestChoice(NormedWassersteinTest.TestName, NormedWassersteinTest.Threshold, DriftVerdictRule.StatisticAtLeast)
            : new EvidentlyTestChoice(JensenShannonDistanceTest.TestName, JensenShannonDistanceTest.Threshold, DriftVerdictRule.StatisticAtLeast);
    }

    /// <summary>The test Evidently picks for these samples (counts their distinct values, then as the other overload).</summary>
    /// <param name="reference">The reference sample (finite values).</param>
    /// <param name="current">The current sample (finite values).</param>
    /// <param name="kind">Numerical or categorical.</param>
    /// <param name="workspace">Scratch (doubles slot 0).</param>
    public static EvidentlyTestChoice Choose(ReadOnlySpan<double> reference, ReadOnlySpan<double> current, FeatureKind kind, DriftWorkspace workspace) =>
        Choose(reference.Length, CountDistinct(reference, current, workspace), kind);

    /// <summary>The number of distinct values of both samples together (pandas <c>nunique</c> of the concatenation;
    /// -0 and +0 count as one).</summary>
    /// <param name="reference">The reference sample.</param>
    /// <param name="current">The current sample.</param>
    /// <param name="workspace">Scratch (doubles slot 0).</param>
    public static int CountDistinct(ReadOnlySpan<double> reference, ReadOnlySpan<double> current, DriftWorkspace workspace)
    {
        ArgumentNullException.ThrowIfNull(workspace);
        Span<double> all = workspace.Doubles(0, reference.Length + current.Length);
        reference.CopyTo(all);
        current.CopyTo(all[reference.Length..]);
        all.Sort();
        return EvidentlyNumerics.CountDistinctSorted(all);
    }

    /// <summary>The Evidently tests implemented here by CLI name (<c>psi</c>, <c>kl</c>, <c>jensenshannon</c>,
    /// <c>hellinger</c>, <c>chisquare</c>, <c>z</c>, <c>wasserstein-norm</c>), or null for any other name (<c>ks</c>
    /// and the other scipy tests live elsewhere).</summary>
    /// <param name="name">The CLI name (ordinal, case-sensitive).</param>
    public static IUnivariateDriftTest? FindTest(string name) => name switch
    {
        PopulationStabilityIndexTest.TestName => PopulationStabilityIndexTest.Instance,
        KullbackLeiblerTest.TestName => KullbackLeiblerTest.Instance,
        JensenShannonDistanceTest.TestName => JensenShannonDistanceTest.Instance,
        HellingerDistanceTest.TestName => HellingerDistanceTest.Instance,
        ChiSquareTest.TestName => ChiSquareTest.Instance,
        TwoProportionZTest.TestName => TwoProportionZTest.Instance,
        NormedWassersteinTest.TestName => NormedWassersteinTest.Instance,
        _ => null,
    };

    /// <summary>The share of drifted columns (Evidently's <c>dataset_drift_score</c>).</summary>
    /// <param name="driftedColumns">Columns whose test signalled drift.</param>
    /// <param name="columns">Columns tested (at least 1).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="columns"/> is not positive, or
    /// <paramref name="driftedColumns"/> is outside [0, columns].</exception>
    public static double DriftedShare(int driftedColumns, int columns)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(columns);
        ArgumentOutOfRangeException.ThrowIfNegative(driftedColumns);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(driftedColumns, columns);
        return (double)driftedColumns / columns;
    }

    /// <summary>Evidently's dataset drift: share of drifted columns ≥ <paramref name="driftShare"/> (default 0.5).</summary>
    /// <param name="driftedColumns">Columns whose test signalled drift.</param>
    /// <param name="columns">Columns tested (at least 1).</param>
    /// <param name="driftShare">The share from which the dataset drifts, 0.5 by default.</param>
    public static bool IsDatasetDrift(int driftedColumns, int columns, double driftShare = DriftShare) =>
        DriftedShare(driftedColumns, columns) >= driftShare;
}
