using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Monitor.Analysis.Drift;

namespace Monitor.Analysis.Tests.Drift;

/// <summary>
/// Random samples of many shapes (ties, tiny and unequal sizes, skew, low cardinality, category codes, values absent
/// from one side, the 20/21 distinct-value boundary of the binning) run through every Evidently test here and through
/// Reference/evidently_reference.py, which writes Evidently's definitions in numpy/scipy, in one Python call.
/// </summary>
public sealed class EvidentlyReferenceFixture : IAsyncLifetime
{
    public List<EvidentlyCase> Cases { get; } = EvidentlyCase.Generate();

    public List<Dictionary<string, (double Statistic, double? PValue)>> Expected { get; } = [];

    public async ValueTask InitializeAsync()
    {
        var cases = new JsonArray();
        foreach (EvidentlyCase item in Cases)
        {
            cases.Add(new JsonObject
            {
                ["kind"] = item.Kind == FeatureKind.Numerical ? "num" : "cat",
                ["ref"] = new JsonArray([.. item.Reference.Select(v => (JsonNode)v)]),
                ["cur"] = new JsonArray([.. item.Current.Select(v => (JsonNode)v)]),
            });
        }

        JsonNode output = await PythonReference.RunAsync("evidently_reference.py", new JsonObject { ["cases"] = cases });
        foreach (JsonNode? entry in output["results"]!.AsArray())
        {
            var results = new Dictionary<string, (double, double?)>();
            foreach ((string name, JsonNode? value) in entry!.AsObject())
            {
                JsonArray pair = value!.AsArray();
                results[name] = (ReadNumber(pair[0]!), pair[1] is null ? null : ReadNumber(pair[1]!));
            }

            Expected.Add(results);
        }
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    internal static double ReadNumber(JsonNode node) => node.GetValueKind() == System.Text.Json.JsonValueKind.String
        ? node.GetValue<string>() switch
        {
            "inf" => double.PositiveInfinity,
            "-inf" => double.NegativeInfinity,
            _ => double.NaN,
        }
        : node.GetValue<double>();
}

/// <summary>One generated pair of samples.</summary>
public sealed record EvidentlyCase(string Description, FeatureKind Kind, double[] Reference, double[] Current)
{
    public static List<EvidentlyCase> Generate()
    {
        var random = new Random(20240611);
        var cases = new List<EvidentlyCase>();
        int[] sizes = [1, 2, 3, 5, 17, 64, 200, 513, 1500];

        // Continuous, shifted and scaled, many size pairs.
        foreach (int n in sizes)
        {
            foreach (int m in sizes)
            {
                if (random.NextDouble() < 0.55 && n > 3 && m > 3)
                {
                    continue;
                }

                double shift = random.NextDouble() < 0.5 ? 0 : random.NextDouble();
                cases.Add(Numerical($"normal {n}/{m} shift {shift:F2}", Sample(n, () => Normal(random)), Sample(m, () => shift + Normal(random) * (1 + shift))));
            }
        }

        // Ties: values rounded to one decimal, or to integers.
        for (int i = 0; i < 8; i++)
        {
            int n = random.Next(10, 800);
            int m = random.Next(10, 800);
            double step = i % 2 == 0 ? 0.1 : 1;
            cases.Add(Numerical($"ties step {step} {n}/{m}", Sample(n, () => Math.Round(Normal(random) * 3 / step) * step),
                Sample(m, () => Math.Round((Normal(random) * 3 + 0.3) / step) * step)));
        }

        // Skewed: lognormal and exponential, with a few far outliers.
        for (int i = 0; i < 8; i++)
        {
            int n = random.Next(30, 1200);
            int m = random.Next(30, 1200);
            cases.Add(Numerical($"lognormal {n}/{m}", Sample(n, () => Math.Exp(2 * Normal(random))), Sample(m, () => Math.Exp(2 * Normal(random) + 0.2))));
            cases.Add(Numerical($"exponential+outlier {n}/{m}", Sample(n, () => -Math.Log(1 - random.NextDouble())),
                [.. Sample(m - 1, () => -1.5 * Math.Log(1 - random.NextDouble())), 1e4]));
        }

        // Low cardinality integers, around the 20/21 distinct-value boundary and below.
        foreach (int k in new[] { 1, 2, 3, 4, 5, 6, 19, 20, 21, 22, 30 })
        {
            for (int i = 0; i < 2; i++)
            {
                int n = random.Next(k == 21 ? 60 : 5, 700);
                int m = random.Next(3, 700);
                double[] reference = Sample(n, () => random.Next(k));
                if (k is 20 or 21)
                {
                    // Make sure the reference holds exactly k distinct values.
                    for (int v = 0; v < k && v < n; v++)
                    {
                        reference[v] = v;
                    }
                }

                double[] current = Sample(m, () => random.Next(k + (i == 1 ? 3 : 0)));
                cases.Add(Numerical($"integers k={k} {n}/{m}", reference, current));
                cases.Add(new EvidentlyCase($"codes k={k} {n}/{m}", FeatureKind.Categorical, reference, current));
            }
        }

        // Category codes with skewed frequencies and categories absent from one side.
        for (int i = 0; i < 10; i++)
        {
            int categories = random.Next(2, 12);
            int n = random.Next(5, 2000);
            int m = random.Next(5, 2000);
            double[] reference = Sample(n, () => Math.Floor(categories * Math.Pow(random.NextDouble(), 2)));
            double[] current = Sample(m, () => Math.Floor(categories * Math.Pow(random.NextDouble(), 1 + i % 3)) + (i % 4 == 0 ? 2 : 0));
            cases.Add(new EvidentlyCase($"skewed codes c={categories} {n}/{m}", FeatureKind.Categorical, reference, current));
            cases.Add(Numerical($"skewed counts c={categories} {n}/{m}", reference, current));
        }

        // Disjoint supports, identical samples and constant columns.
        cases.Add(Numerical("disjoint continuous", Sample(300, () => Normal(random)), Sample(200, () => 10 + Normal(random))));
        cases.Add(new EvidentlyCase("disjoint codes", FeatureKind.Categorical, Sample(40, () => random.Next(3)), Sample(30, () => 3 + random.Next(3))));
        double[] same = Sample(400, () => Normal(random));
        cases.Add(Numerical("identical", same, (double[])same.Clone()));
        cases.Add(Numerical("constant equal", Sample(50, () => 2.5), Sample(30, () => 2.5)));
        cases.Add(Numerical("constant different", Sample(50, () => 2.5), Sample(30, () => 3.5)));
        cases.Add(new EvidentlyCase("binary codes", FeatureKind.Categorical, Sample(500, () => random.NextDouble() < 0.3 ? 1 : 0), Sample(400, () => random.NextDouble() < 0.36 ? 1 : 0)));

        // A smallest share of exactly 0.0001 (1 of 10,000): the empty bins of that side get 0.0001 / 1e6, not 0.0001.
        double[] floor = Sample(10_000, () => random.Next(2));
        floor[17] = 5;
        cases.Add(new EvidentlyCase("smallest share 1e-4", FeatureKind.Categorical, floor, Sample(300, () => random.Next(3))));

        // Large offsets (bin edges far from 0) and power-of-two combined sizes (log2 exact in Sturges' rule).
        cases.Add(Numerical("offset 1e6", Sample(512, () => 1e6 + Normal(random)), Sample(512, () => 1e6 + 0.1 + Normal(random))));
        cases.Add(Numerical("pow2 1024+1024", Sample(1024, () => Normal(random)), Sample(1024, () => Normal(random) * 1.2)));
        cases.Add(Numerical("large 4000/3000", Sample(4000, () => Normal(random)), Sample(3000, () => 0.05 + Normal(random))));
        return cases;
    }

    private static EvidentlyCase Numerical(string description, double[] reference, double[] current) =>
        new(description, FeatureKind.Numerical, reference, current);

    private static double[] Sample(int n, Func<double> draw)
    {
        double[] values = new double[n];
        for (int i = 0; i < n; i++)
        {
            values[i] = draw();
        }

        return values;
    }

    private static double Normal(Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());

    public override string ToString() => $"{Description} ({Kind}, {Reference.Length}/{Current.Length})";
}

public sealed class EvidentlyTestsTests(EvidentlyReferenceFixture fixture) : IClassFixture<EvidentlyReferenceFixture>
{
    private const double StatisticTolerance = 1e-9;
    private const double PValueTolerance = 1e-6;

    // Below this a difference is rounding in a value that is itself rounding (e.g. the KL divergence of identical
    // samples); p-values below ~1e-300 flush to 0 in scipy.
    private const double StatisticFloor = 1e-12;
    private const double PValueFloor = 1e-300;

    public static TheoryData<string> Names => [.. AllTests.Select(t => t.Name)];

    private static IUnivariateDriftTest[] AllTests =>
    [
        PopulationStabilityIndexTest.Instance,
        KullbackLeiblerTest.Instance,
        JensenShannonDistanceTest.Instance,
        HellingerDistanceTest.Instance,
        ChiSquareTest.Instance,
        TwoProportionZTest.Instance,
        NormedWassersteinTest.Instance,
    ];

    [Theory]
    [MemberData(nameof(Names))]
    public void Test_MatchesEvidentlyDefinition_WhenRandomCases(string name)
    {
        IUnivariateDriftTest test = EvidentlyDefaults.FindTest(name)!;
        var workspace = new DriftWorkspace();
        var failures = new StringBuilder();
        int compared = 0;
        for (int i = 0; i < fixture.Cases.Count; i++)
        {
            EvidentlyCase item = fixture.Cases[i];
            if (!fixture.Expected[i].TryGetValue(name, out (double Statistic, double? PValue) expected))
            {
                continue;
            }

            TwoSampleResult actual = test.Test(item.Reference, item.Current, item.Kind, workspace);
            compared++;
            if (!Close(actual.Statistic, expected.Statistic, StatisticTolerance, StatisticFloor))
            {
                failures.AppendLine(CultureInfo.InvariantCulture, $"{item}: statistic {actual.Statistic:R}, reference {expected.Statistic:R}");
            }

            if (expected.PValue is { } p && !Close(actual.PValue, p, PValueTolerance, PValueFloor))
            {
                failures.AppendLine(CultureInfo.InvariantCulture, $"{item}: p {actual.PValue:R}, reference {p:R}");
            }

            if (expected.PValue is null)
            {
                Assert.False(actual.HasPValue);
            }
        }

        Assert.True(compared > 100, $"only {compared} cases compared");
        Assert.True(failures.Length == 0, failures.ToString());
    }

    [Fact]
    public void Test_GivesEvidentlyVerdictRulesAndThresholds()
    {
        Assert.Equal((DriftVerdictRule.StatisticAtLeast, 0.1), (PopulationStabilityIndexTest.Instance.VerdictRule, PopulationStabilityIndexTest.Instance.DefaultThreshold));
        Assert.Equal((DriftVerdictRule.StatisticAtLeast, 0.1), (KullbackLeiblerTest.Instance.VerdictRule, KullbackLeiblerTest.Instance.DefaultThreshold));
        Assert.Equal((DriftVerdictRule.StatisticAtLeast, 0.1), (JensenShannonDistanceTest.Instance.VerdictRule, JensenShannonDistanceTest.Instance.DefaultThreshold));
        Assert.Equal((DriftVerdictRule.StatisticAtLeast, 0.1), (HellingerDistanceTest.Instance.VerdictRule, HellingerDistanceTest.Instance.DefaultThreshold));
        Assert.Equal((DriftVerdictRule.StatisticAtLeast, 0.1), (NormedWassersteinTest.Instance.VerdictRule, NormedWassersteinTest.Instance.DefaultThreshold));
        Assert.Equal((DriftVerdictRule.PValueBelow, 0.05), (ChiSquareTest.Instance.VerdictRule, ChiSquareTest.Instance.DefaultThreshold));
        Assert.Equal((DriftVerdictRule.PValueBelow, 0.05), (TwoProportionZTest.Instance.VerdictRule, TwoProportionZTest.Instance.DefaultThreshold));
        Assert.Equal(["psi", "kl", "jensenshannon", "hellinger", "chisquare", "z", "wasserstein-norm"], AllTests.Select(t => t.Name));
        Assert.Null(EvidentlyDefaults.FindTest("ks"));
    }

    [Fact]
    public void Psi_FillsEmptyBins_WhenValueAbsentFromCurrent()
    {
        // Reference {0: 1/2, 1: 1/2}, current {0: 1}: the empty current bin becomes 0.0001.
        TwoSampleResult result = PopulationStabilityIndexTest.Instance.Test([0, 1], [0, 0], FeatureKind.Categorical, new DriftWorkspace());
        double expected = (0.5 - 1) * Math.Log(0.5 / 1) + (0.5 - 0.0001) * Math.Log(0.5 / 0.0001);
        Assert.Equal(expected, result.Statistic, 1e-15);
    }

    [Fact]
    public void Psi_FillsWithSmallestShareOverMillion_WhenSmallestShareIsTiny()
    {
        // 20,000 reference values, one of them 1: its share 5e-5 ≤ 1e-4, so the empty bin of value 2 gets 5e-11.
        double[] reference = new double[20_000];
        reference[0] = 1;
        double[] current = [0, 2];
        TwoSampleResult result = PopulationStabilityIndexTest.Instance.Test(reference, current, FeatureKind.Categorical, new DriftWorkspace());
        double r0 = 19_999 / 20_000.0, r1 = 1 / 20_000.0, r2 = r1 / 1e6;
        double c0 = 0.5, c1 = 0.0001, c2 = 0.5;
        double expected = (r0 - c0) * Math.Log(r0 / c0) + (r1 - c1) * Math.Log(r1 / c1) + (r2 - c2) * Math.Log(r2 / c2);
        Assert.Equal(expected, result.Statistic, 1e-12);
    }

    [Fact]
    public void ChiSquare_ReturnsNaN_WhenSingleValue()
    {
        TwoSampleResult result = ChiSquareTest.Instance.Test([3, 3], [3], FeatureKind.Categorical, new DriftWorkspace());
        Assert.True(double.IsNaN(result.PValue));
        Assert.False(DriftVerdict.IsDrift(ChiSquareTest.Instance.VerdictRule, result, ChiSquareTest.Threshold));
    }

    [Fact]
    public void Z_ReturnsOne_WhenBothSamplesHoldTheSameSingleValue()
    {
        TwoSampleResult result = TwoProportionZTest.Instance.Test([7, 7, 7], [7], FeatureKind.Numerical, new DriftWorkspace());
        Assert.Equal(new TwoSampleResult(0, 1), result);
    }

    [Fact]
    public void NormedWasserstein_Throws_WhenCategorical()
    {
        Assert.Throws<ArgumentException>(() => NormedWassersteinTest.Instance.Test([1, 2], [1], FeatureKind.Categorical, new DriftWorkspace()));
    }

    [Fact]
    public void Test_Throws_WhenSampleEmpty()
    {
        foreach (IUnivariateDriftTest test in AllTests)
        {
            Assert.Throws<ArgumentException>(() => test.Test([], [1.0], FeatureKind.Numerical, new DriftWorkspace()));
            Assert.Throws<ArgumentException>(() => test.Test([1.0], [], FeatureKind.Numerical, new DriftWorkspace()));
        }
    }

    [Fact]
    public void Test_DoesNotAllocate_WhenWorkspaceWarm()
    {
        var random = new Random(3);
        double[] reference = [.. Enumerable.Range(0, 2000).Select(_ => random.NextDouble())];
        double[] current = [.. Enumerable.Range(0, 1500).Select(_ => random.NextDouble() + 0.1)];
        double[] codes = [.. Enumerable.Range(0, 2000).Select(_ => (double)random.Next(6))];
        var workspace = new DriftWorkspace();
        IUnivariateDriftTest[] tests = AllTests;
        foreach (IUnivariateDriftTest test in tests)
        {
            test.Test(reference, current, FeatureKind.Numerical, workspace);
            if (test != NormedWassersteinTest.Instance)
            {
                test.Test(codes, codes.AsSpan(0, 1000), FeatureKind.Categorical, workspace);
            }
        }

        double sink = 0;
        long allocated = SteadyStateAllocation.LeastBytes(() =>
        {
            for (int round = 0; round < 20; round++)
            {
                foreach (IUnivariateDriftTest test in tests)
                {
                    sink += test.Test(reference, current, FeatureKind.Numerical, workspace).Statistic;
                    if (test != NormedWassersteinTest.Instance)
                    {
                        sink += test.Test(codes, codes.AsSpan(0, 1000), FeatureKind.Categorical, workspace).Statistic;
                    }
                }
            }
        });
        Assert.False(double.IsNaN(sink));
        Assert.Equal(0, allocated);
    }

    private static bool Close(double actual, double expected, double relative, double floor)
    {
        if (double.IsNaN(expected) || double.IsInfinity(expected))
        {
            return actual.Equals(expected);
        }

        return Math.Abs(actual - expected) <= Math.Max(relative * Math.Abs(expected), floor);
    }
}
