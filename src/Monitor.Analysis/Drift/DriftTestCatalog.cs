using System.Collections.Frozen;

namespace Monitor.Analysis.Drift;

/// <summary>
/// Every univariate drift test by the name the CLI and rule files use (<c>ks</c>, <c>psi</c>, ...), and Evidently's
/// default choice (<c>auto</c>).
/// </summary>
public static class DriftTestCatalog
{
    /// <summary>The name of Evidently's default choice per feature.</summary>
    public const string Auto = "auto";

    private static readonly IUnivariateDriftTest[] All =
    [
        KolmogorovSmirnovTest.Instance,
        CramerVonMisesTest.Instance,
        AndersonDarlingTest.Instance,
        EnergyDistanceTest.Instance,
        WassersteinDistanceTest.Instance,
        NormedWassersteinTest.Instance,
        PopulationStabilityIndexTest.Instance,
        KullbackLeiblerTest.Instance,
        JensenShannonDistanceTest.Instance,
        HellingerDistanceTest.Instance,
        ChiSquareTest.Instance,
        TwoProportionZTest.Instance,
    ];

    private static readonly FrozenDictionary<string, IUnivariateDriftTest> ByName = All.ToFrozenDictionary(t => t.Name, StringComparer.Ordinal);

    /// <summary>The test names, in catalog order.</summary>
    public static IReadOnlyList<string> Names { get; } = [.. All.Select(t => t.Name)];

    /// <summary>Every test.</summary>
    public static IReadOnlyList<IUnivariateDriftTest> Tests => All;

    /// <summary>Finds a test by name (exact, lower case).</summary>
    public static bool TryGet(string? name, out IUnivariateDriftTest test)
    {
        test = null!;
        return name is not null && ByName.TryGetValue(name, out test!);
    }

    /// <summary>The test of that name.</summary>
    /// <exception cref="ArgumentException">Unknown name; the message lists the known ones.</exception>
    public static IUnivariateDriftTest Get(string name) => TryGet(name, out IUnivariateDriftTest test)
        ? test
        : throw new ArgumentException($"unknown drift test '{name}'; use {Auto} or one of: {string.Join(", ", Names)}", nameof(name));

    /// <summary>
    /// Evidently's default test for a feature (<see cref="EvidentlyDefaults.Choose(int, int, FeatureKind)"/>: by reference
    /// size, kind and the number of distinct values of both samples). Only whether there are more than
    /// <see cref="EvidentlyDefaults.FewValuesMax"/> distinct values matters, so counting stops at one more: a feature
    /// tested every window costs a scan of its values, not a sort. Allocates nothing.
    /// </summary>
    /// <exception cref="ArgumentException">The choice names a test that is not in the catalog.</exception>
    public static IUnivariateDriftTest ChooseDefault(ReadOnlySpan<double> reference, ReadOnlySpan<double> current, FeatureKind kind)
    {
        Span<double> seen = stackalloc double[EvidentlyDefaults.FewValuesMax + 1];
        int distinct = CountDistinctUpTo(reference, seen, 0);
        distinct = CountDistinctUpTo(current, seen, distinct);
        return Get(EvidentlyDefaults.Choose(reference.Length, distinct, kind).Name);
    }

    /// <summary>Adds the values' distinct values to the <paramref name="count"/> already in <paramref name="seen"/>, until it is full.</summary>
    private static int CountDistinctUpTo(ReadOnlySpan<double> values, Span<double> seen, int count)
    {
        foreach (double value in values)
        {
            if (count == seen.Length)
            {
                break;
            }

            // == treats -0 and +0 as one value, as pandas' nunique does.
            if (!Contains(seen[..count], value))
            {
                seen[count++] = value;
            }
        }

        return count;
    }

    private static bool Contains(ReadOnlySpan<double> seen, double value)
    {
        foreach (double s in seen)
        {
            if (s == value)
            {
                return true;
            }
        }

        return false;
    }
}
