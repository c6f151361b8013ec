namespace Monitor.Analysis.Drift;

/// <summary>
/// Evidently's Hellinger distance (<c>hellinger</c>, <c>evidently/legacy/calculations/stattests/hellinger_distance.py</c>):
/// H = sqrt(1 - BC) with BC the Bhattacharyya coefficient clipped to [0, 1]; drift when H ≥ 0.1.
/// </summary>
/// <remarks>
/// <para>Evidently bins differently here than in <c>get_binned_data</c>. Categorical: one bin per distinct value of
/// either sample, BC = Σ sqrt(p_i · q_i) with p and q the shares. Numerical: always Sturges bins, but computed over the
/// <em>distinct</em> values of both samples (<c>histogram_bin_edges(keys, "sturges")</c>, so the bin count follows
/// the number of distinct values, not the sample sizes), both samples counted as density histograms
/// (count / (bin width · n)), BC = Σ sqrt(h1_i · h2_i) · w with w = (last edge - first edge) / bins. A single distinct
/// value gives one bin [v - 0.5, v + 0.5] (numpy's rule). Empty bins are not filled.</para>
/// <para>The result has no p-value. Stateless and thread-safe; scratch from the workspace (doubles slots 0-3), so a
/// call allocates nothing once the workspace has grown. Empty samples throw <see cref="ArgumentException"/>.</para>
/// </remarks>
public sealed class HellingerDistanceTest : IUnivariateDriftTest
{
    /// <summary>The CLI name, <c>hellinger</c>.</summary>
    public const string TestName = "hellinger";

    /// <summary>Evidently's default threshold, 0.1 (drift at a distance ≥ 0.1).</summary>
    public const double Threshold = 0.1;

    private HellingerDistanceTest()
    {
    }

    /// <summary>The shared instance (the test is stateless).</summary>
    public static HellingerDistanceTest Instance { get; } = new();

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
        Span<double> sortedReference = EvidentlyNumerics.SortedCopy(reference, workspace.Doubles(0, reference.Length), workspace);
        Span<double> sortedCurrent = EvidentlyNumerics.SortedCopy(current, workspace.Doubles(1, current.Length), workspace);
        int keys = EvidentlyNumerics.CountDistinctUnionSorted(sortedReference, sortedCurrent);

        double coefficient = 0;
        if (kind == FeatureKind.Categorical)
        {
            Span<double> p = workspace.Doubles(2, keys);
            Span<double> q = workspace.Doubles(3, keys);
            EvidentlyBinning.ValueShares(sortedReference, sortedCurrent, p, q);
            for (int i = 0; i < keys; i++)
            {
                coefficient += Math.Sqrt(p[i] * q[i]);
            }
        }
        else
        {
            double first = Math.Min(sortedReference[0], sortedCurrent[0]);
            double last = Math.Max(sortedReference[^1], sortedCurrent[^1]);
            var edges = SturgesEdges.Create(first, last, keys);
            Span<double> h1 = workspace.Doubles(2, edges.Count);
            Span<double> h2 = workspace.Doubles(3, edges.Count);
            edges.Counts(sortedReference, h1);
            edges.Counts(sortedCurrent, h2);
            double width = (edges.Last - edges.First) / edges.Count;
            for (int i = 0; i < edges.Count; i++)
            {
                // np.histogram(density=True): count / bin width / total count, in that order.
                double binWidth = edges.Edge(i + 1) - edges.Edge(i);
                double d1 = h1[i] / binWidth / reference.Length;
                double d2 = h2[i] / binWidth / current.Length;
                coefficient += Math.Sqrt(d1 * d2) * width;
            }
        }

        coefficient = Math.Clamp(coefficient, 0, 1);
        return new TwoSampleResult(Math.Sqrt(1 - coefficient), double.NaN);
    }
}
