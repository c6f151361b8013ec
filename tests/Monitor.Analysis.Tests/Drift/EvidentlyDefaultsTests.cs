using Monitor.Analysis.Drift;

namespace Monitor.Analysis.Tests.Drift;

public sealed class EvidentlyDefaultsTests
{
    public static TheoryData<int, int, FeatureKind, string> Table => new()
    {
        { 1000, 6, FeatureKind.Numerical, "ks" },
        { 1000, 500, FeatureKind.Numerical, "ks" },
        { 1000, 5, FeatureKind.Numerical, "chisquare" },
        { 1000, 3, FeatureKind.Numerical, "chisquare" },
        { 1000, 2, FeatureKind.Numerical, "z" },
        { 1000, 1, FeatureKind.Numerical, "z" },
        { 10, 50, FeatureKind.Categorical, "chisquare" },
        { 1000, 3, FeatureKind.Categorical, "chisquare" },
        { 1000, 2, FeatureKind.Categorical, "z" },
        { 1001, 6, FeatureKind.Numerical, "wasserstein-norm" },
        { 1001, 5, FeatureKind.Numerical, "jensenshannon" },
        { 1001, 2, FeatureKind.Numerical, "jensenshannon" },
        { 1001, 100, FeatureKind.Categorical, "jensenshannon" },
        { 50_000, 2, FeatureKind.Categorical, "jensenshannon" },
    };

    [Theory]
    [MemberData(nameof(Table))]
    public void Choose_PicksEvidentlyDefault_WhenSizeKindAndDistinctValuesGiven(int rows, int distinct, FeatureKind kind, string expected)
    {
        EvidentlyTestChoice choice = EvidentlyDefaults.Choose(rows, distinct, kind);
        Assert.Equal(expected, choice.Name);
        (double threshold, DriftVerdictRule rule) = expected switch
        {
            "ks" => (0.05, DriftVerdictRule.PValueAtMost),
            "chisquare" or "z" => (0.05, DriftVerdictRule.PValueBelow),
            _ => (0.1, DriftVerdictRule.StatisticAtLeast),
        };
        Assert.Equal(threshold, choice.Threshold);
        Assert.Equal(rule, choice.VerdictRule);
        if (expected != "ks")
        {
            IUnivariateDriftTest test = EvidentlyDefaults.FindTest(expected)!;
            Assert.Equal((test.DefaultThreshold, test.VerdictRule), (choice.Threshold, choice.VerdictRule));
        }
    }

    [Fact]
    public void Choose_MatchesEvidentlyRegistryTests_WhenTheirExamplesGiven()
    {
        // tests/stattests/test_registry.py test_get_default_stattest (strings "a", "b", "c" as codes 0, 1, 2).
        var workspace = new DriftWorkspace();
        double[] ones = [.. Enumerable.Repeat(1.0, 10)];
        double[] eleven = [.. Enumerable.Range(1, 11).Select(i => (double)i)];
        double[] elevenTimes1000 = [.. Enumerable.Range(0, 11_000).Select(i => (double)(i % 11 + 1))];
        double[] fiveTimes1000 = [.. Enumerable.Range(0, 5_000).Select(i => (double)(i % 5 + 1))];
        double[] abc = [.. Enumerable.Range(0, 30).Select(i => (double)(i % 3))];
        double[] ab = [.. Enumerable.Range(0, 20).Select(i => (double)(i % 2))];
        double[] abMany = [.. Enumerable.Range(0, 20_000).Select(i => (double)(i % 2))];
        Assert.Equal("z", EvidentlyDefaults.Choose(ones, ones, FeatureKind.Numerical, workspace).Name);
        Assert.Equal("ks", EvidentlyDefaults.Choose(eleven, eleven, FeatureKind.Numerical, workspace).Name);
        Assert.Equal("wasserstein-norm", EvidentlyDefaults.Choose(elevenTimes1000, elevenTimes1000, FeatureKind.Numerical, workspace).Name);
        Assert.Equal("jensenshannon", EvidentlyDefaults.Choose(fiveTimes1000, fiveTimes1000, FeatureKind.Numerical, workspace).Name);
        Assert.Equal("chisquare", EvidentlyDefaults.Choose(abc, abc, FeatureKind.Categorical, workspace).Name);
        Assert.Equal("z", EvidentlyDefaults.Choose(ab, ab, FeatureKind.Categorical, workspace).Name);
        Assert.Equal("jensenshannon", EvidentlyDefaults.Choose(abMany, abMany, FeatureKind.Categorical, workspace).Name);
    }

    [Fact]
    public void CountDistinct_CountsBothSamplesTogether_WhenValuesOverlap()
    {
        var workspace = new DriftWorkspace();
        Assert.Equal(4, EvidentlyDefaults.CountDistinct([1, 2, 2, -0.0], [0.0, 3, 1], workspace));
        Assert.Equal(1, EvidentlyDefaults.CountDistinct([5], [], workspace));
    }

    [Theory]
    [InlineData(1, 2, true)]
    [InlineData(2, 4, true)]
    [InlineData(1, 3, false)]
    [InlineData(0, 1, false)]
    [InlineData(3, 3, true)]
    public void IsDatasetDrift_ComparesShareAtLeastHalf_WhenDefaultShare(int drifted, int columns, bool expected) =>
        Assert.Equal(expected, EvidentlyDefaults.IsDatasetDrift(drifted, columns));

    [Fact]
    public void IsDatasetDrift_UsesGivenShare_WhenShareGiven()
    {
        Assert.True(EvidentlyDefaults.IsDatasetDrift(1, 4, driftShare: 0.25));
        Assert.False(EvidentlyDefaults.IsDatasetDrift(1, 5, driftShare: 0.25));
        Assert.Equal(0.2, EvidentlyDefaults.DriftedShare(1, 5));
        Assert.Throws<ArgumentOutOfRangeException>(() => EvidentlyDefaults.DriftedShare(1, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => EvidentlyDefaults.DriftedShare(3, 2));
    }
}
