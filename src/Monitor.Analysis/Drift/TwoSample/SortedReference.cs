namespace Monitor.Analysis.Drift;

/// <summary>
/// A frozen reference sample, sorted, with what the tests can prepare on it once instead of on every window: a
/// monitor tests the same reference against every window of a run (<see cref="IUnivariateDriftTest.Test(SortedReference, ReadOnlySpan{double}, FeatureKind, DriftWorkspace)"/>).
/// </summary>
/// <remarks>
/// Holds the values and the rank table of <see cref="KolmogorovSmirnovTest"/> (one int per value), so about 12 bytes a
/// value. Immutable after construction, so thread-safe to read.
/// </remarks>
public sealed class SortedReference
{
    private readonly double[] _values;

    /// <summary>Takes <paramref name="sortedValues"/> as the reference (it is kept, not copied: do not change it after).</summary>
    /// <param name="sortedValues">Finite values in ascending order.</param>
    /// <exception cref="ArgumentException">A value is not finite, or the values are not in ascending order.</exception>
    public SortedReference(double[] sortedValues)
    {
        ArgumentNullException.ThrowIfNull(sortedValues);
        for (int i = 0; i < sortedValues.Length; i++)
        {
            if (!double.IsFinite(sortedValues[i]) || (i > 0 && sortedValues[i] < sortedValues[i - 1]))
            {
                throw new ArgumentException($"the reference must be finite values in ascending order (value {i} is {sortedValues[i]})", nameof(sortedValues));
            }
        }

        _values = sortedValues;
        RankTable = sortedValues.Length == 0 ? [] : KolmogorovSmirnovTest.BuildRankTable(sortedValues);
    }

    /// <summary>The values, ascending.</summary>
    public ReadOnlySpan<double> Values => _values;

    /// <summary>How many values.</summary>
    public int Count => _values.Length;

    /// <summary>KS's rank table over <see cref="Values"/>, built once.</summary>
    internal int[] RankTable { get; }
}
