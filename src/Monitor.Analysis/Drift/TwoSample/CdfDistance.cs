namespace Monitor.Analysis.Drift;

/// <summary>
/// scipy 1.10's <c>_cdf_distance</c> (<c>scipy/stats/_stats_py.py</c>) for unweighted samples: the L^p distance
/// between the two empirical CDFs, integrated exactly over the pooled sorted values.
/// </summary>
internal static class CdfDistance
{
    /// <summary>
    /// Σ over consecutive pooled values z_k of |F_u(z_k) − F_v(z_k)|^p · (z_{k+1} − z_k) (p = 1, or p = 2 and then the
    /// square root), with the terms formed and summed as numpy does.
    /// </summary>
    public static double Compute(int p, ReadOnlySpan<double> u, ReadOnlySpan<double> v, DriftWorkspace workspace)
    {
        TwoSampleScratch.SortBoth(u, v, workspace, out Span<double> us, out Span<double> vs);
        int nu = us.Length, nv = vs.Length, total = nu + nv;
        Span<double> terms = workspace.Doubles(WorkspaceSlots.Scratch0, total - 1);
        int iu = 0, iv = 0;
        int cu = 0, cv = 0;
        double current = NextMerged(us, vs, ref iu, ref iv);
        for (int k = 0; k < total - 1; k++)
        {
            double next = NextMerged(us, vs, ref iu, ref iv);

            // searchsorted(side="right"): how many of each sample are at most the current pooled value.
            while (cu < nu && us[cu] <= current)
            {
                cu++;
            }

            while (cv < nv && vs[cv] <= current)
            {
                cv++;
            }

            double diff = ((double)cu / nu) - ((double)cv / nv);
            double delta = next - current;
            terms[k] = p == 1 ? Math.Abs(diff) * delta : diff * diff * delta;
            current = next;
        }

        double sum = NumpyArithmetic.Sum(terms);
        return p == 1 ? sum : Math.Sqrt(sum);
    }

    private static double NextMerged(ReadOnlySpan<double> a, ReadOnlySpan<double> b, ref int ia, ref int ib) =>
        ib >= b.Length || (ia < a.Length && a[ia] <= b[ib]) ? a[ia++] : b[ib++];
}
