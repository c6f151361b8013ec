using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Monitor.Analysis.Drift;

namespace Monitor.Analysis.Tests.Drift;

/// <summary>
/// Seeded random samples and distribution arguments, sent in one batch to Reference/scipy_two_sample.py (scipy 1.10),
/// whose answers every test of <see cref="ScipyTwoSampleTests"/> compares with.
/// </summary>
public sealed class ScipyTwoSampleReference : IAsyncLifetime
{
    /// <summary>The (kind, method) pairs run on sample cases (KS's forced exact method only up to 20,000 values).</summary>
    public static readonly (string Kind, string Method)[] SampleTests =
    [
        ("ks", "auto"), ("ks", "exact"), ("ks", "asymp"), ("cvm", "auto"), ("anderson", ""), ("energy", ""), ("wasserstein", ""),
    ];

    public List<SampleCase> Samples { get; } = [];

    public List<PointCase> Points { get; } = [];

    public async ValueTask InitializeAsync()
    {
        BuildSampleCases();
        BuildPointCases();
        var cases = new JsonArray();
        foreach (SampleCase sample in Samples)
        {
            var tests = new JsonArray();
            foreach ((string kind, string method) in sample.Tests)
            {
                tests.Add(new JsonObject { ["kind"] = kind, ["method"] = method.Length == 0 ? "auto" : method });
            }

            cases.Add(new JsonObject
            {
                ["kind"] = "samples",
                ["a"] = ToJson(sample.A),
                ["b"] = ToJson(sample.B),
                ["tests"] = tests,
            });
        }

        foreach (PointCase point in Points)
        {
            var node = new JsonObject { ["kind"] = point.Kind, [point.Kind is "cvm_inf" or "kve" ? "x" : "d"] = point.X };
            if (point.N != 0)
            {
                node["n"] = point.N;
            }

            cases.Add(node);
        }

        JsonNode output = await PythonReference.RunAsync("scipy_two_sample.py", new JsonObject { ["cases"] = cases });
        Assert.StartsWith("1.10", output["scipy"]!.GetValue<string>(), StringComparison.Ordinal);
        JsonArray results = output["results"]!.AsArray();
        Assert.Equal(Samples.Count + Points.Count, results.Count);
        for (int i = 0; i < Samples.Count; i++)
        {
            JsonArray perTest = results[i]!.AsArray();
            for (int t = 0; t < perTest.Count; t++)
            {
                Samples[i].Expected[Samples[i].Tests[t]] = Expected.From(perTest[t]!);
            }
        }

        for (int i = 0; i < Points.Count; i++)
        {
            Points[i].Expected = Expected.From(results[Samples.Count + i]!);
        }
    }

    public ValueTask DisposeAsync() => default;

    private static JsonArray ToJson(double[] values)
    {
        var array = new JsonArray();
        foreach (double value in values)
        {
            array.Add(value);
        }

        return array;
    }

    private void BuildSampleCases()
    {
        var random = new Random(20240611);
        (int, int)[] tiny = [(1, 1), (1, 2), (2, 1), (1, 3), (3, 1), (2, 2), (2, 3), (3, 3), (3, 5), (1, 10), (4, 4), (5, 7)];
        (int, int)[] small = [(10, 10), (8, 12), (20, 20), (19, 20), (13, 17), (21, 20), (30, 25), (50, 50), (100, 80), (37, 61)];
        (int, int)[] medium = [(500, 500), (1000, 300), (1000, 1000), (2000, 1999), (777, 1500)];
        (int, int)[] largeExact = [(10000, 10000), (10000, 7000), (9999, 10000), (3000, 10000), (10000, 1), (10000, 5000)];
        (int, int)[] asymptotic = [(10001, 10001), (12000, 10500), (20000, 20000), (50, 12000), (100, 15000), (140, 20000), (5, 20000), (1, 20000), (60000, 50000), (300, 10001)];
        foreach ((int n1, int n2) in tiny)
        {
            foreach (string generator in Generators)
            {
                Add(random, generator, n1, n2, shift: random.NextDouble() * 2);
            }
        }

        foreach ((int n1, int n2) in small.Concat(medium))
        {
            foreach (string generator in Generators)
            {
                // Shifts of order 1/√n spread the p-values from 1 down to tiny ones.
                double scale = 4 / Math.Sqrt(Math.Min(n1, n2));
                Add(random, generator, n1, n2, shift: random.NextDouble() * scale);
                Add(random, generator, n1, n2, shift: 0);
            }
        }

        foreach ((int n1, int n2) in largeExact.Concat(asymptotic))
        {
            foreach (string generator in (string[])["normal", "exponential", "levels", "rounded"])
            {
                double scale = 4 / Math.Sqrt(Math.Min(n1, n2));
                Add(random, generator, n1, n2, shift: random.NextDouble() * scale);
            }

            Add(random, "normal", n1, n2, shift: 0);
        }

        AddNearlyEqual(random);
    }

    /// <summary>Sample shapes: continuous, skewed, heavy-tailed, low-cardinality and tied.</summary>
    private static readonly string[] Generators = ["normal", "exponential", "lognormal", "levels", "rounded", "integers", "same"];

    private void Add(Random random, string generator, int n1, int n2, double shift)
    {
        double[] a = Draw(random, generator, n1, 0);
        double[] b = generator == "same" ? [.. Draw(random, "normal", n2, shift), .. a.Take(Math.Min(n1, n2) / 2)] : Draw(random, generator, n2, shift);
        if (generator == "same" && b.Length > n2)
        {
            b = b[..n2];
        }

        Samples.Add(new SampleCase($"{generator} {n1}x{n2} shift {shift.ToString("G4", CultureInfo.InvariantCulture)}", a, b));
    }

    // Equal sizes with D = h/n for small h: scipy's exact value can come out just above 1 there (rounding in
    // _compute_prob_outside_square), and it then switches to the asymptotic p-value; the port must switch alike.
    private void AddNearlyEqual(Random random)
    {
        foreach (int n in (int[])[5, 7, 13, 30, 200, 3000, 10000])
        {
            foreach (int h in (int[])[1, 2, 3, 5])
            {
                if (h >= n)
                {
                    continue;
                }

                double[] a = Draw(random, "normal", n, 0);
                double[] b = [.. a];
                Array.Sort(b);
                for (int i = n - h; i < n; i++)
                {
                    b[i] += 100;
                }

                Samples.Add(new SampleCase($"nearly equal {n}x{n} D={h}/{n}", a, b));
            }
        }
    }

    private static double[] Draw(Random random, string generator, int n, double shift)
    {
        var values = new double[n];
        for (int i = 0; i < n; i++)
        {
            values[i] = generator switch
            {
                "exponential" => -Math.Log(1 - random.NextDouble()) * (1 + shift),
                "lognormal" => Math.Exp((1.5 * Normal(random)) + shift),
                "levels" => Level(random.NextDouble(), shift),
                "rounded" => Math.Round(Normal(random) + shift, 1),
                "integers" => Math.Round((3 * Normal(random)) + shift),
                _ => Normal(random) + shift,
            };
        }

        return values;
    }

    // Values in {0, 1, 2}; the shift moves weight from 0 to 2.
    private static double Level(double u, double shift)
    {
        double p0 = Math.Max(0.05, 0.5 - (0.2 * shift)), p1 = 0.3;
        return u < p0 ? 0 : u < p0 + p1 ? 1 : 2;
    }

    private static double Normal(Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());

    private void BuildPointCases()
    {
        // kstwo.sf(d, n) around every switch of _kolmogn: Ruben-Gambino (n·d ≤ 1, n·d ≥ n − 1), d ≥ 0.5, and n·d²
        // at 0.754693, 2.2, 4, 18 and 370, and n·d^1.5 = 1.4, for n on both sides of 140 and of 100,000.
        // Smirnov's sum costs O(n) per call (in scipy too), so the largest sizes get fewer points above n·d² = 2.2.
        int[] sizes = [1, 2, 3, 5, 10, 37, 100, 140, 141, 200, 1000, 5000, 20000, 100000, 100001, 1000000];
        foreach (int n in sizes)
        {
            var ds = new List<double> { 0.4 / n, 0.5 / n, 0.7 / n, 1.0 / n, 1.5 / n, 0.3, 0.5, 0.6, 0.9, 1 - (1.0 / n), 1 - (0.5 / n), 1.0, 0.0 };
            double[] products = n >= 1000000 ? [0.3, 0.754693, 1.0, 2.0, 371.0]
                : n >= 100000 ? [0.3, 0.754693, 1.0, 2.0, 2.2, 18.0, 369.0, 371.0]
                : [0.3, 0.754693, 1.0, 2.0, 2.2, 3.0, 4.0, 6.0, 10.0, 18.0, 50.0, 369.0, 371.0];
            foreach (double c in products)
            {
                ds.Add(Math.Sqrt(c / n));
                if (n < 1000000 || c < 2.2)
                {
                    ds.Add(Math.Sqrt(c / n) * (1 + 1e-9));
                }
            }

            ds.Add(Math.Pow(1.4 / n, 2.0 / 3.0) * 0.999);
            ds.Add(Math.Pow(1.4 / n, 2.0 / 3.0) * 1.001);
            foreach (double d in ds.Where(d => d is >= 0 and <= 1).Distinct())
            {
                Points.Add(new PointCase("kstwo", d, n));
            }
        }

        foreach (int n in (int[])[1, 2, 5, 10, 11, 100, 1000, 10000, 100000, 1000001])
        {
            foreach (double d in (double[])[0, 1e-3, 0.5 / n, 1.0 / n, 1.5 / n, 0.01, 0.05, 0.1, 0.3, 0.5, 0.9, 1 - (1.0 / n), 1 - (0.5 / n), 1.0])
            {
                if (d is >= 0 and <= 1 && !(n >= 100000 && d < 0.01))
                {
                    Points.Add(new PointCase("smirnov", d, n));
                }
            }
        }

        foreach (double x in (double[])[0.003, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4619, 0.5, 0.7, 1, 1.5, 2, 3, 5, 10, 30])
        {
            Points.Add(new PointCase("cvm_inf", x, 0));
        }

        for (double x = 1e-5; x < 3000; x *= 1.7)
        {
            Points.Add(new PointCase("kve", x, 0));
        }
    }
}

/// <summary>Two samples and scipy's answers for <see cref="ScipyTwoSampleReference.SampleTests"/>.</summary>
public sealed class SampleCase(string name, double[] a, double[] b)
{
    public string Name { get; } = name;

    public double[] A { get; } = a;

    public double[] B { get; } = b;

    /// <summary>The tests run on this case: all of <see cref="ScipyTwoSampleReference.SampleTests"/>, less KS's forced
    /// exact method above 20,000 values (slow in both implementations, and never what "auto" picks).</summary>
    public (string Kind, string Method)[] Tests { get; } =
        [.. ScipyTwoSampleReference.SampleTests.Where(t => t != ("ks", "exact") || Math.Max(a.Length, b.Length) <= 20000)];

    public Dictionary<(string Kind, string Method), Expected> Expected { get; } = [];

    public override string ToString() => Name;
}

/// <summary>A distribution function argument (x, n) and scipy's value.</summary>
public sealed class PointCase(string kind, double x, int n)
{
    public string Kind { get; } = kind;

    public double X { get; } = x;

    public int N { get; } = n;

    public Expected Expected { get; set; }

    public override string ToString() => $"{Kind}(x={X.ToString("R", CultureInfo.InvariantCulture)}, n={N})";
}

/// <summary>One scipy answer: a statistic and p-value (or value), or the name of the exception scipy raised.</summary>
public readonly record struct Expected(double Statistic, double PValue, string? Error)
{
    public static Expected From(JsonNode node)
    {
        if (node["error"] is { } error)
        {
            return new Expected(double.NaN, double.NaN, error.GetValue<string>());
        }

        JsonNode? statistic = node["statistic"] ?? node["value"];
        return new Expected(Number(statistic), Number(node["pvalue"]), null);
    }

    private static double Number(JsonNode? node) => node is null
        ? double.NaN
        : node.GetValueKind() == System.Text.Json.JsonValueKind.String
            ? node.GetValue<string>() switch { "inf" => double.PositiveInfinity, "-inf" => double.NegativeInfinity, _ => double.NaN }
            : node.GetValue<double>();
}

/// <summary>
/// The scipy-defined two-sample tests (<c>ks</c>, <c>cvm</c>, <c>anderson</c>, <c>energy</c>, <c>wasserstein</c>) and
/// the distributions behind their p-values, against scipy 1.10 on seeded random cases: ties, tiny and unequal
/// sizes, skewed and low-cardinality data, KS's exact regime up to 10,000 and its asymptotic one above.
/// </summary>
/// <remarks>
/// Tolerances: statistics 1e-12 relative (with a 1e-15 absolute floor for statistics near zero); p-values 1e-10
/// absolute or 1e-8 relative, whichever is looser. Where scipy raises, the C# side must throw
/// <see cref="ArgumentException"/>.
/// </remarks>
public sealed class ScipyTwoSampleTests(ScipyTwoSampleReference reference) : IClassFixture<ScipyTwoSampleReference>
{
    private const double StatisticRelative = 1e-12;
    private const double StatisticAbsolute = 1e-15;
    private const double PValueAbsolute = 1e-10;
    private const double PValueRelative = 1e-8;

    [Theory]
    [InlineData("ks", "auto")]
    [InlineData("ks", "exact")]
    [InlineData("ks", "asymp")]
    [InlineData("cvm", "auto")]
    [InlineData("anderson", "")]
    [InlineData("energy", "")]
    [InlineData("wasserstein", "")]
    public void Compute_MatchesScipy_OnSeededSamples(string kind, string method)
    {
        var failures = new List<string>();
        var workspace = new DriftWorkspace();
        int compared = 0;
        foreach (SampleCase sample in reference.Samples)
        {
            if (!sample.Expected.TryGetValue((kind, method), out Expected expected))
            {
                continue;
            }

            TwoSampleResult actual;
            try
            {
                actual = Run(kind, method, sample.A, sample.B, workspace);
            }
            catch (ArgumentException e)
            {
                if (expected.Error is null)
                {
                    failures.Add($"{sample}: threw {e.Message}, scipy gave ({expected.Statistic:R}, {expected.PValue:R})");
                }

                continue;
            }

            if (expected.Error is not null)
            {
                failures.Add($"{sample}: scipy raised {expected.Error}, we gave ({actual.Statistic:R}, {actual.PValue:R})");
                continue;
            }

            compared++;
            Check(failures, sample.Name, "statistic", expected.Statistic, actual.Statistic, StatisticRelative, StatisticAbsolute);
            if (kind is "ks" or "cvm" or "anderson")
            {
                Check(failures, sample.Name, "p-value", expected.PValue, actual.PValue, PValueRelative, PValueAbsolute);
            }
        }

        Assert.True(compared > reference.Samples.Count / 2, $"only {compared} of {reference.Samples.Count} cases compared");
        Assert.True(failures.Count == 0, $"{failures.Count} mismatches:\n" + string.Join('\n', failures.Take(30)));
    }

    [Theory]
    [InlineData("kstwo")]
    [InlineData("smirnov")]
    [InlineData("cvm_inf")]
    [InlineData("kve")]
    public void Distribution_MatchesScipy_InEveryRegime(string kind)
    {
        var failures = new List<string>();
        var workspace = new DriftWorkspace();
        foreach (PointCase point in reference.Points.Where(p => p.Kind == kind))
        {
            double actual = kind switch
            {
                "kstwo" => KolmogorovDistribution.TwoSidedSf(point.X, point.N, workspace),
                "smirnov" => KolmogorovDistribution.SmirnovSf(point.N, point.X),
                "cvm_inf" => CramerVonMisesTest.LimitingCdf(point.X),
                _ => CramerVonMisesTest.BesselKQuarterScaled(point.X),
            };

            // scipy's own K_{1/4} (AMOS) is good to about 1e-13 relative.
            double relative = kind == "kve" ? 1e-12 : PValueRelative;
            Check(failures, point.ToString(), "value", point.Expected.Statistic, actual, relative, PValueAbsolute);
        }

        Assert.True(failures.Count == 0, $"{failures.Count} mismatches:\n" + string.Join('\n', failures.Take(30)));
    }

    private static TwoSampleResult Run(string kind, string method, double[] a, double[] b, DriftWorkspace workspace) => kind switch
    {
        "ks" => KolmogorovSmirnovTest.Compute(a, b, workspace, method switch
        {
            "exact" => KolmogorovSmirnovMethod.Exact,
            "asymp" => KolmogorovSmirnovMethod.Asymptotic,
            _ => KolmogorovSmirnovMethod.Auto,
        }),
        "cvm" => CramerVonMisesTest.Instance.Test(a, b, FeatureKind.Numerical, workspace),
        "anderson" => AndersonDarlingTest.Instance.Test(a, b, FeatureKind.Numerical, workspace),
        "energy" => EnergyDistanceTest.Instance.Test(a, b, FeatureKind.Numerical, workspace),
        _ => WassersteinDistanceTest.Instance.Test(a, b, FeatureKind.Numerical, workspace),
    };

    private static void Check(List<string> failures, string name, string what, double expected, double actual, double relative, double absolute)
    {
        if (double.IsNaN(expected) && double.IsNaN(actual))
        {
            return;
        }

        double error = Math.Abs(actual - expected);
        if (!(error <= absolute || error <= relative * Math.Abs(expected)) && expected != actual)
        {
            var line = new StringBuilder();
            line.Append(CultureInfo.InvariantCulture, $"{name}: {what} {actual:R}, scipy {expected:R} (error {error:G3}");
            line.Append(CultureInfo.InvariantCulture, $", relative {error / Math.Abs(expected):G3})");
            failures.Add(line.ToString());
        }
    }
}
