namespace Monitor.Analysis.Drift;

/// <summary>
/// Evidently's binning of two samples into shares per bin (<c>get_binned_data</c> in
/// <c>evidently/legacy/calculations/stattests/utils.py</c>, Evidently 0.6-0.7), used by PSI, KL and Jensen-Shannon.
/// </summary>
/// <remarks>
/// <para>Numerical column with more than 20 distinct reference values: equal-width Sturges bins over reference and
/// current combined, exactly as numpy's <c>histogram_bin_edges(combined, "sturges")</c> computes them (width =
/// range / (log2(n) + 1), ceil(range / width) bins, edges <c>i · (range / bins) + min</c> with the last edge the
/// maximum), each bin half-open <c>[e_i, e_i+1)</c> but the last one closed, as <c>np.histogram</c> counts. Otherwise
/// (categorical, or numerical with at most 20 distinct reference values): one bin per distinct value of either
/// sample. Shares are counts divided by the sample size. Evidently's <c>n_bins</c> argument is never used.</para>
/// <para>Empty bins (PSI and KL only, Evidently's <c>feel_zeroes</c>): per side, a share of 0 becomes 0.0001, or the
/// smallest non-zero share / 1e6 when that share is itself at most 0.0001.</para>
/// <para>Bins come out in ascending order of value; Evidently orders value bins as a Python set, which changes only
/// the order of summation (last-bit differences).</para>
/// <para>Workspace slots used: doubles 0-3.</para>
/// </remarks>
internal static class EvidentlyBinning
{
    /// <summary>More distinct reference values than this bins a numerical column with Sturges' rule.</summary>
    public const int MaxDistinctForValueBins = 20;

    /// <summary>The share an empty bin gets (unless a non-zero share is itself this small).</summary>
    public const double EmptyBinShare = 0.0001;

    /// <summary>Bins both samples and returns the number of bins; the shares are in <paramref name="referenceShares"/>
    /// and <paramref name="currentShares"/> (workspace memory, valid until the next use of the workspace).</summary>
    public static int Bin(
        ReadOnlySpan<double> reference,
        ReadOnlySpan<double> current,
        FeatureKind kind,
        bool fillEmptyBins,
        DriftWorkspace workspace,
        out Span<double> referenceShares,
        out Span<double> currentShares)
    {
        ArgumentNullException.ThrowIfNull(workspace);
        EvidentlyNumerics.RequireSamples(reference, current);
        int few = FewValueCounts(reference, current, kind, workspace, out referenceShares, out currentShares);
        if (few > 0)
        {
            for (int bin = 0; bin < few; bin++)
            {
                referenceShares[bin] /= reference.Length;
                currentShares[bin] /= current.Length;
            }

            if (fillEmptyBins)
            {
                FillEmptyBins(referenceShares);
                FillEmptyBins(currentShares);
            }

            return few;
        }

        Span<double> sortedReference = EvidentlyNumerics.SortedCopy(reference, workspace.Doubles(0, reference.Length), workspace);
        Span<double> sortedCurrent = EvidentlyNumerics.SortedCopy(current, workspace.Doubles(1, current.Length), workspace);

        int bins;
        if (kind == FeatureKind.Numerical && EvidentlyNumerics.CountDistinctSorted(sortedReference) > MaxDistinctForValueBins)
        {
            double first = Math.Min(sortedReference[0], sortedCurrent[0]);
            double last = Math.Max(sortedReference[^1], sortedCurrent[^1]);
            var edges = SturgesEdges.Create(first, last, reference.Length + current.Length);
            bins = edges.Count;
            referenceShares = workspace.Doubles(2, bins);
            currentShares = workspace.Doubles(3, bins);
            edges.Shares(sortedReference, referenceShares);
            edges.Shares(sortedCurrent, currentShares);
        }
        else
        {
            bins = EvidentlyNumerics.CountDistinctUnionSorted(sortedReference, sortedCurrent);
            referenceShares = workspace.Doubles(2, bins);
            currentShares = workspace.Doubles(3, bins);
            ValueShares(sortedReference, sortedCurrent, referenceShares, currentShares);
        }

        if (fillEmptyBins)
        {
            FillEmptyBins(referenceShares);
            FillEmptyBins(currentShares);
        }

        return bins;
    }

    /// <summary>Distinct values of the union up to which value bins are counted without sorting the samples.</summary>
    private const int FewValues = 32;

    /// <summary>
    /// Value bins of samples with few distinct values (category codes, predicted classes), counted in one pass each,
    /// without sorting them: the same bins, in the same ascending order, and the same counts as
    /// <see cref="ValueCounts"/> on the sorted samples. Returns the number of bins, or 0 when the samples need the sorted
    /// path (more than <see cref="FewValues"/> distinct values, or a numerical reference binned with Sturges' rule).
    /// </summary>
    private static int FewValueCounts(ReadOnlySpan<double> reference, ReadOnlySpan<double> current, FeatureKind kind, DriftWorkspace workspace,
        out Span<double> referenceCounts, out Span<double> currentCounts)
    {
        Span<double> values = workspace.Doubles(4, FewValues);
        referenceCounts = workspace.Doubles(2, FewValues);
        currentCounts = workspace.Doubles(3, FewValues);
        referenceCounts.Clear();
        currentCounts.Clear();
        int distinct = 0;
        if (!Count(reference, values, referenceCounts, ref distinct)
            || (kind == FeatureKind.Numerical && distinct > MaxDistinctForValueBins)
            || !Count(current, values, currentCounts, ref distinct))
        {
            return 0;
        }

        // Ascending order of value, as the sorted path emits the bins (insertion sort: at most FewValues entries).
        for (int i = 1; i < distinct; i++)
        {
            for (int j = i; j > 0 && values[j] < values[j - 1]; j--)
            {
                (values[j], values[j - 1]) = (values[j - 1], values[j]);
                (referenceCounts[j], referenceCounts[j - 1]) = (referenceCounts[j - 1], referenceCounts[j]);
                (currentCounts[j], currentCounts[j - 1]) = (currentCounts[j - 1], currentCounts[j]);
            }
        }

        referenceCounts = referenceCounts[..distinct];
        currentCounts = currentCounts[..distinct];
        return distinct;
    }

    private static bool Count(ReadOnlySpan<double> sample, Span<double> values, Span<double> counts, ref int distinct)
    {
        int last = 0;
        foreach (double value in sample)
        {
            // Consecutive values are often equal (a run of one class): check the last bin first.
            if (distinct > 0 && values[last] == value)
            {
                counts[last]++;
                continue;
            }

            last = values[..distinct].IndexOf(value);
            if (last < 0)
            {
                if (distinct == values.Length)
                {
                    return false;
                }

                last = distinct++;
                values[last] = value;
            }

            counts[last]++;
        }

        return true;
    }

    /// <summary>One bin per distinct value of the union, ascending: count / sample size on each side.</summary>
    public static void ValueShares(ReadOnlySpan<double> sortedA, ReadOnlySpan<double> sortedB, Span<double> sharesA, Span<double> sharesB)
    {
        int bins = ValueCounts(sortedA, sortedB, sharesA, sharesB);
        for (int bin = 0; bin < bins; bin++)
        {
            sharesA[bin] /= sortedA.Length;
            sharesB[bin] /= sortedB.Length;
        }
    }

    /// <summary>One bin per distinct value of the union, ascending: the count on each side. Returns the number of bins.</summary>
    public static int ValueCounts(ReadOnlySpan<double> sortedA, ReadOnlySpan<double> sortedB, Span<double> countsA, Span<double> countsB)
    {
        int i = 0;
        int j = 0;
        int bin = 0;
        while (i < sortedA.Length || j < sortedB.Length)
        {
            double key = i == sortedA.Length ? sortedB[j] : j == sortedB.Length ? sortedA[i] : Math.Min(sortedA[i], sortedB[j]);
            int startA = i;
            while (i < sortedA.Length && sortedA[i] == key)
            {
                i++;
            }

            int startB = j;
            while (j < sortedB.Length && sortedB[j] == key)
            {
                j++;
            }

            countsA[bin] = i - startA;
            countsB[bin] = j - startB;
            bin++;
        }

        return bin;
    }

    private static void FillEmptyBins(Span<double> shares)
    {
        double smallest = double.PositiveInfinity;
        for (int i = 0; i < shares.Length; i++)
        {
            if (shares[i] != 0 && shares[i] < smallest)
            {
                smallest = shares[i];
            }
        }

        // A sample is never empty, so some share is non-zero.
        double fill = smallest <= EmptyBinShare ? smallest / 1e6 : EmptyBinShare;
        for (int i = 0; i < shares.Length; i++)
        {
            if (shares[i] == 0)
            {
                shares[i] = fill;
            }
        }
    }
}

/// <summary>
/// numpy's <c>histogram_bin_edges(a, bins="sturges")</c> for data spanning [<see cref="First"/>, <see cref="Last"/>]
/// with n values, and <c>np.histogram</c>'s counting into those edges (half-open bins, the last closed).
/// </summary>
internal readonly struct SturgesEdges
{
    private readonly double _step;

    private SturgesEdges(double first, double last, int count)
    {
        First = first;
        Last = last;
        Count = count;
        _step = (last - first) / count;
    }

    /// <summary>The first edge.</summary>
    public double First { get; }

    /// <summary>The last edge.</summary>
    public double Last { get; }

    /// <summary>The number of bins.</summary>
    public int Count { get; }

    /// <summary>The edges for data with minimum <paramref name="min"/>, maximum <paramref name="max"/> and
    /// <paramref name="n"/> values.</summary>
    public static SturgesEdges Create(double min, double max, int n)
    {
        // numpy (_get_outer_edges, _hist_bin_sturges): a degenerate range is widened by 0.5 on each side and gets
        // one bin; the width comes from the data's own range.
        if (min == max)
        {
            return new SturgesEdges(min - 0.5, max + 0.5, 1);
        }

        double range = max - min;
        double width = range / (Math.Log2(n) + 1.0);
        int count = (int)Math.Ceiling(range / width);
        return new SturgesEdges(min, max, count);
    }

    /// <summary>Edge <paramref name="index"/> (0 to <see cref="Count"/>) as <c>np.linspace</c> computes it.</summary>
    public double Edge(int index) => index == Count ? Last : index * _step + First;

    /// <summary>Counts of a sorted sample per bin, as <c>np.histogram(sample, edges)</c> counts them.</summary>
    public void Counts(ReadOnlySpan<double> sorted, Span<double> counts)
    {
        int position = 0;
        while (position < sorted.Length && sorted[position] < First)
        {
            position++;
        }

        for (int bin = 0; bin < Count; bin++)
        {
            int start = position;
            if (bin == Count - 1)
            {
                while (position < sorted.Length && sorted[position] <= Last)
                {
                    position++;
                }
            }
            else
            {
                double upper = Edge(bin + 1);
                while (position < sorted.Length && sorted[position] < upper)
                {
                    position++;
                }
            }

            counts[bin] = position - start;
        }
    }

    /// <summary>Counts per bin divided by the sample size.</summary>
    public void Shares(ReadOnlySpan<double> sorted, Span<double> shares)
    {
        Counts(sorted, shares);
        for (int bin = 0; bin < Count; bin++)
        {
            shares[bin] /= sorted.Length;
        }
    }
}
