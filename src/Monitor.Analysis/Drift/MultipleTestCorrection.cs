namespace Monitor.Analysis.Drift;

/// <summary>Multiple-testing corrections over the p-values of a monitor's features (alibi-detect's <c>correction</c>).</summary>
public enum DriftCorrection
{
    /// <summary>Each feature at the threshold.</summary>
    None,

    /// <summary>Bonferroni: each feature at <c>threshold / features</c> (<see cref="MultipleTestCorrection.Bonferroni"/>, alibi-detect's default).</summary>
    Bonferroni,

    /// <summary>Benjamini-Hochberg false discovery rate at the threshold (<see cref="MultipleTestCorrection.BenjaminiHochberg"/>, alibi-detect's <c>fdr</c>).</summary>
    Fdr,
}

/// <summary>The batch-level verdict of a multiple-testing correction over per-feature p-values.</summary>
/// <param name="IsDrift">Whether any feature is significant after the correction.</param>
/// <param name="Threshold">The threshold the p-values were held to: the per-feature level (no correction),
/// p_val / n (Bonferroni), or for Benjamini-Hochberg the largest q · i / n whose sorted p-value fell below it; NaN
/// for Benjamini-Hochberg when none did (alibi-detect then returns the whole array q · i / n, see
/// <see cref="MultipleTestCorrection.BenjaminiHochbergThresholds"/>).</param>
public readonly record struct CorrectionResult(bool IsDrift, double Threshold);

/// <summary>
/// Multiple-testing corrections with alibi-detect's semantics (<c>BaseUnivariateDrift.predict</c> with
/// <c>drift_type="batch"</c> in <c>alibi_detect/cd/base.py</c>, and <c>fdr</c> in
/// <c>alibi_detect/utils/statstest.py</c>), for detectors that test every feature separately (KSDrift,
/// ChiSquareDrift, ...).
/// </summary>
/// <remarks>
/// All comparisons are strict (p &lt; threshold), as alibi's. n is the number of p-values given (alibi's
/// <c>n_features</c>). NaN p-values are never below a threshold. Pure functions, thread-safe; only
/// <see cref="BenjaminiHochberg"/> needs scratch (doubles slot 0 of the workspace, nothing allocated once grown).
/// </remarks>
public static class MultipleTestCorrection
{
    /// <summary>alibi-detect's default significance level, 0.05.</summary>
    public const double DefaultLevel = 0.05;

    /// <summary>
    /// No correction (ours; alibi refuses other names for several features): drift when any p &lt;
    /// <paramref name="level"/>, threshold = level (what alibi reports for <c>drift_type="feature"</c>).
    /// </summary>
    /// <param name="pValues">Per-feature p-values (at least one).</param>
    /// <param name="level">The significance level, 0.05 by default.</param>
    /// <exception cref="ArgumentException">No p-values.</exception>
    public static CorrectionResult None(ReadOnlySpan<double> pValues, double level = DefaultLevel)
    {
        RequireValues(pValues);
        return new CorrectionResult(AnyBelow(pValues, level), level);
    }

    /// <summary>Bonferroni (alibi's default): drift when any p &lt; level / n; threshold = level / n.</summary>
    /// <param name="pValues">Per-feature p-values (at least one).</param>
    /// <param name="level">alibi's <c>p_val</c>, 0.05 by default.</param>
    /// <exception cref="ArgumentException">No p-values.</exception>
    public static CorrectionResult Bonferroni(ReadOnlySpan<double> pValues, double level = DefaultLevel)
    {
        RequireValues(pValues);
        double threshold = level / pValues.Length;
        return new CorrectionResult(AnyBelow(pValues, threshold), threshold);
    }

    /// <summary>
    /// Benjamini-Hochberg false discovery rate (alibi's <c>correction="fdr"</c>): with the p-values sorted ascending
    /// p_(1) ≤ ... ≤ p_(n) and thresholds t_i = q · i / n, drift when any p_(i) &lt; t_i; the threshold returned is
    /// t_k for the largest such i = k, or NaN when there is none.
    /// </summary>
    /// <param name="pValues">Per-feature p-values (at least one); not modified.</param>
    /// <param name="workspace">Scratch for the sorted copy (doubles slot 0).</param>
    /// <param name="level">alibi's <c>q_val</c> (its <c>p_val</c>), 0.05 by default.</param>
    /// <exception cref="ArgumentException">No p-values.</exception>
    public static CorrectionResult BenjaminiHochberg(ReadOnlySpan<double> pValues, DriftWorkspace workspace, double level = DefaultLevel)
    {
        ArgumentNullException.ThrowIfNull(workspace);
        RequireValues(pValues);
        int n = pValues.Length;
        Span<double> sorted = workspace.Doubles(0, n);
        pValues.CopyTo(sorted);
        sorted.Sort();

        // .NET sorts NaN first, numpy last: skipping the leading NaN block ranks the other values 1..k as numpy does
        // (a NaN is never below its threshold, so its own rank does not matter).
        int nans = 0;
        while (nans < n && double.IsNaN(sorted[nans]))
        {
            nans++;
        }

        double threshold = double.NaN;
        for (int i = nans; i < n; i++)
        {
            double candidate = level * (i - nans + 1) / n;
            if (sorted[i] < candidate)
            {
                threshold = candidate;
            }
        }

        return new CorrectionResult(!double.IsNaN(threshold), threshold);
    }

    /// <summary>The Benjamini-Hochberg thresholds q · i / n for i = 1..n, what alibi returns as the threshold when no
    /// p-value is significant.</summary>
    /// <param name="destination">Receives n = its length thresholds.</param>
    /// <param name="level">alibi's <c>q_val</c>, 0.05 by default.</param>
    public static void BenjaminiHochbergThresholds(Span<double> destination, double level = DefaultLevel)
    {
        int n = destination.Length;
        for (int i = 0; i < n; i++)
        {
            destination[i] = level * (i + 1) / n;
        }
    }

    private static bool AnyBelow(ReadOnlySpan<double> values, double threshold)
    {
        for (int i = 0; i < values.Length; i++)
        {
            if (values[i] < threshold)
            {
                return true;
            }
        }

        return false;
    }

    private static void RequireValues(ReadOnlySpan<double> pValues)
    {
        if (pValues.IsEmpty)
        {
            throw new ArgumentException("At least one p-value is needed.", nameof(pValues));
        }
    }
}
