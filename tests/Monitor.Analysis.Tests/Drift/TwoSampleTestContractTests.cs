using Monitor.Analysis.Drift;

namespace Monitor.Analysis.Tests.Drift;

/// <summary>
/// What the scipy two-sample tests promise besides their numbers: names, verdict rules and thresholds (Evidently's),
/// argument validation, and no allocation once the workspace has grown.
/// </summary>
public sealed class TwoSampleTestContractTests
{
    public static TheoryData<string> TestNames => ["ks", "cvm", "anderson", "energy", "wasserstein"];

    private static IUnivariateDriftTest ByName(string name) => name switch
    {
        "ks" => KolmogorovSmirnovTest.Instance,
        "cvm" => CramerVonMisesTest.Instance,
        "anderson" => AndersonDarlingTest.Instance,
        "energy" => EnergyDistanceTest.Instance,
        _ => WassersteinDistanceTest.Instance,
    };

    [Theory]
    [InlineData("ks", DriftVerdictRule.PValueAtMost, 0.05)]
    [InlineData("cvm", DriftVerdictRule.PValueAtMost, 0.1)]
    [InlineData("anderson", DriftVerdictRule.PValueBelow, 0.1)]
    [InlineData("energy", DriftVerdictRule.StatisticAbove, 0.1)]
    [InlineData("wasserstein", DriftVerdictRule.StatisticAtLeast, 0.1)]
    public void Instance_HasEvidentlysRuleAndThreshold_WhenLookedUpByName(string name, DriftVerdictRule rule, double threshold)
    {
        IUnivariateDriftTest test = ByName(name);
        Assert.Equal(name, test.Name);
        Assert.Equal(rule, test.VerdictRule);
        Assert.Equal(threshold, test.DefaultThreshold);
    }

    [Fact]
    public void IsDrift_IsStrict_ForStatisticAbove()
    {
        Assert.False(DriftVerdict.IsDrift(DriftVerdictRule.StatisticAbove, new TwoSampleResult(0.1, double.NaN), 0.1));
        Assert.True(DriftVerdict.IsDrift(DriftVerdictRule.StatisticAbove, new TwoSampleResult(0.1000001, double.NaN), 0.1));
        Assert.True(DriftVerdict.IsDrift(DriftVerdictRule.StatisticAtLeast, new TwoSampleResult(0.1, double.NaN), 0.1));
    }

    [Theory]
    [MemberData(nameof(TestNames))]
    public void Test_ThrowsArgumentException_WhenASampleIsEmpty(string name)
    {
        IUnivariateDriftTest test = ByName(name);
        var workspace = new DriftWorkspace();
        double[] values = [1, 2, 3];
        Assert.Throws<ArgumentException>(() => test.Test([], values, FeatureKind.Numerical, workspace));
        Assert.Throws<ArgumentException>(() => test.Test(values, [], FeatureKind.Numerical, workspace));
    }

    [Fact]
    public void CramerVonMises_ThrowsArgumentException_WhenASampleHasOneValue()
    {
        var workspace = new DriftWorkspace();
        Assert.Throws<ArgumentException>(() => CramerVonMisesTest.Compute([1.0], [1.0, 2.0], workspace));
        Assert.Throws<ArgumentException>(() => CramerVonMisesTest.Compute([1.0, 2.0], [3.0], workspace));
    }

    [Fact]
    public void AndersonDarling_ThrowsArgumentException_WhenAllValuesAreEqualOrThereAreTwo()
    {
        var workspace = new DriftWorkspace();
        Assert.Throws<ArgumentException>(() => AndersonDarlingTest.Compute([1.0, 1.0], [1.0, 1.0, 1.0], workspace));
        Assert.Throws<ArgumentException>(() => AndersonDarlingTest.Compute([1.0], [2.0], workspace));
        TwoSampleResult three = AndersonDarlingTest.Compute([1.0], [2.0, 3.0], workspace);
        Assert.True(double.IsNaN(three.Statistic) && double.IsNaN(three.PValue));
    }

    [Fact]
    public void Compute_LeavesTheSamplesUnchanged()
    {
        double[] a = [3, 1, 2, 5, 4];
        double[] b = [9, 7, 8, 6];
        double[] aCopy = [.. a], bCopy = [.. b];
        var workspace = new DriftWorkspace();
        foreach (string name in (string[])["ks", "cvm", "anderson", "energy", "wasserstein"])
        {
            ByName(name).Test(a, b, FeatureKind.Numerical, workspace);
        }

        Assert.Equal(aCopy, a);
        Assert.Equal(bCopy, b);
    }

    [Theory]
    [InlineData(10000, 10000)]
    [InlineData(10000, 7000)]
    [InlineData(30, 30)]
    [InlineData(20000, 20000)]
    [InlineData(150, 15000)]
    public void KolmogorovSmirnov_DoesNotAllocate_WithAWarmedWorkspace(int n1, int n2)
    {
        var random = new Random(7);
        double[] a = [.. Enumerable.Range(0, n1).Select(_ => random.NextDouble())];
        double[] b = [.. Enumerable.Range(0, n2).Select(_ => random.NextDouble() + 0.01)];
        var workspace = new DriftWorkspace();
        TwoSampleResult first = KolmogorovSmirnovTest.Compute(a, b, workspace);

        TwoSampleResult second = default;
        long allocated = SteadyStateAllocation.LeastBytes(() => second = KolmogorovSmirnovTest.Compute(a, b, workspace));

        Assert.Equal(first, second);
        Assert.Equal(0, allocated);
    }

    [Theory]
    [MemberData(nameof(TestNames))]
    public void Test_DoesNotAllocate_WithAWarmedWorkspace(string name)
    {
        IUnivariateDriftTest test = ByName(name);
        var random = new Random(11);
        var workspace = new DriftWorkspace();
        foreach ((int n1, int n2) in (ValueTuple<int, int>[])[(19, 20), (500, 300), (5000, 5000)])
        {
            double[] a = [.. Enumerable.Range(0, n1).Select(_ => Math.Round(random.NextDouble() * 20))];
            double[] b = [.. Enumerable.Range(0, n2).Select(_ => Math.Round((random.NextDouble() * 20) + 1))];
            test.Test(a, b, FeatureKind.Numerical, workspace);

            Assert.Equal(0, SteadyStateAllocation.LeastBytes(() => test.Test(a, b, FeatureKind.Numerical, workspace)));
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(511)]
    [InlineData(512)]
    [InlineData(5000)]
    public void SortInto_SortsLikeArraySort_ForSignsZerosTiesAndExtremes(int n)
    {
        var random = new Random(n);
        double[] special = [0.0, -0.0, double.Epsilon, -double.Epsilon, double.MaxValue, double.MinValue, 1e-310, -1e-310, 1, -1];
        double[] values = [.. Enumerable.Range(0, n).Select(i => i % 7 == 0
            ? special[random.Next(special.Length)]
            : Math.Round((random.NextDouble() - 0.5) * Math.Pow(10, random.Next(-5, 6)), random.Next(0, 4)))];
        double[] expected = [.. values];
        Array.Sort(expected);
        var sorted = new double[n];
        TwoSampleScratch.SortInto(values, sorted, new DriftWorkspace());

        // −0 and +0 compare equal, so either order between them is sorted.
        Assert.Equal(expected, sorted);
        for (int i = 1; i < n; i++)
        {
            Assert.True(sorted[i - 1] <= sorted[i]);
        }
    }
}
