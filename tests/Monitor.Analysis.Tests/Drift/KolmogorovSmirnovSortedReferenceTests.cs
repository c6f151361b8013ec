using Monitor.Analysis.Drift;

namespace Monitor.Analysis.Tests.Drift;

/// <summary>
/// The KS statistic against a sorted reference (a monitor's frozen one) without sorting the current sample: the same D
/// to the last bit as the merge of two sorted samples, on ties, low cardinality, tiny and unequal sizes.
/// </summary>
public sealed class KolmogorovSmirnovSortedReferenceTests
{
    public static TheoryData<int, int, int, int> Cases => new()
    {
        // reference size, current size, distinct values (0: continuous), seed
        { 1, 1, 0, 1 },
        { 1, 7, 0, 2 },
        { 5, 3, 2, 3 },
        { 40, 40, 3, 4 },
        { 400, 400, 0, 5 },
        { 400, 400, 5, 6 },
        { 1000, 37, 0, 7 },
        { 37, 1000, 0, 8 },
        { 300, 500, 20, 9 },
        { 2000, 2000, 0, 10 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void StatisticAgainstSorted_EqualsTheMergeOfSortedSamples(int n1, int n2, int distinct, int seed)
    {
        var random = new Random(seed);
        double Draw(double shift) => distinct == 0 ? random.NextDouble() + shift : random.Next(distinct) + Math.Round(shift);
        for (int trial = 0; trial < 20; trial++)
        {
            double shift = trial % 4 * 0.1;
            double[] a = [.. Enumerable.Range(0, n1).Select(_ => Draw(0))];
            double[] b = [.. Enumerable.Range(0, n2).Select(_ => Draw(shift))];
            if (trial % 5 == 0 && n2 > 1)
            {
                // Current values equal to reference values, and values beyond both ends of the reference.
                b[0] = a[^1];
                b[^1] = -5;
                b[n2 / 2] = 99;
            }

            Array.Sort(a);
            double[] sortedB = [.. b.Order()];
            var workspace = new DriftWorkspace();

            double fast = KolmogorovSmirnovTest.StatisticAgainstSorted(a, b, workspace);
            double merged = KolmogorovSmirnovTest.Statistic(a, sortedB);

            Assert.Equal(BitConverter.DoubleToInt64Bits(merged), BitConverter.DoubleToInt64Bits(fast));
            Assert.Equal(KolmogorovSmirnovTest.Compute(a, sortedB, workspace), KolmogorovSmirnovTest.Compute(a, b, workspace));
            // The frozen reference with its rank table built once: the same result, for both orders of the current sample.
            var frozen = new SortedReference(a);
            Assert.Equal(KolmogorovSmirnovTest.Compute(a, b, workspace), KolmogorovSmirnovTest.Instance.Test(frozen, b, FeatureKind.Numerical, workspace));
            Assert.Equal(KolmogorovSmirnovTest.Compute(a, b, workspace), KolmogorovSmirnovTest.Instance.Test(frozen, sortedB, FeatureKind.Numerical, workspace));
        }
    }

    [Fact]
    public void SortedReference_RefusesUnsortedOrNonFiniteValues()
    {
        Assert.Throws<ArgumentException>(() => new SortedReference([2.0, 1.0]));
        Assert.Throws<ArgumentException>(() => new SortedReference([1.0, double.NaN]));
        Assert.Equal(0, new SortedReference([]).Count);
    }

    [Fact]
    public void Test_OnAFrozenReference_AllocatesNothing()
    {
        var random = new Random(4);
        var frozen = new SortedReference([.. Enumerable.Range(0, 400).Select(_ => random.NextDouble()).Order()]);
        double[] b = [.. Enumerable.Range(0, 400).Select(_ => random.NextDouble())];
        var workspace = new DriftWorkspace();
        KolmogorovSmirnovTest.Instance.Test(frozen, b, FeatureKind.Numerical, workspace);

        Assert.Equal(0, SteadyStateAllocation.LeastBytes(() => KolmogorovSmirnovTest.Instance.Test(frozen, b, FeatureKind.Numerical, workspace)));
    }

    [Fact]
    public void Compute_AllocatesNothing_OnTheSortedReferencePath()
    {
        var random = new Random(3);
        double[] a = [.. Enumerable.Range(0, 400).Select(_ => random.NextDouble()).Order()];
        double[] b = [.. Enumerable.Range(0, 400).Select(_ => random.NextDouble())];
        var workspace = new DriftWorkspace();
        KolmogorovSmirnovTest.Compute(a, b, workspace);

        Assert.Equal(0, SteadyStateAllocation.LeastBytes(() => KolmogorovSmirnovTest.Compute(a, b, workspace)));
    }
}
