using System.Text.Json.Nodes;
using Monitor.Analysis.Drift;

namespace Monitor.Analysis.Tests.Drift;

/// <summary>
/// MMD, PCA reconstruction and the eigensolver against Reference/multivariate_reference.py (numpy), in one Python call.
/// </summary>
public sealed class MultivariateReferenceFixture : IAsyncLifetime
{
    public List<(double[] Reference, double[] Current, int Dimension, double Sigma)> MmdCases { get; } = [];

    public List<(double[] Reference, double[][] Chunks, int Dimension)> PcaCases { get; } = [];

    public List<(double[] Matrix, int Dimension)> EigenCases { get; } = [];

    public JsonNode Output { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        var random = new Random(77);
        (int N, int M, int D, double Shift, double Sigma, double Round)[] mmd =
        [
            (2, 2, 1, 0, double.NaN, 0), (3, 5, 2, 0.5, double.NaN, 0), (5, 3, 2, 0, double.NaN, 0), (50, 40, 3, 0, double.NaN, 0),
            (60, 60, 4, 0.3, double.NaN, 1), (200, 300, 16, 0.1, double.NaN, 0), (301, 120, 5, 1, double.NaN, 0),
            (80, 90, 7, 0, 2.5, 0), (100, 100, 3, 0, double.NaN, 0.5),
        ];
        foreach ((int n, int m, int d, double shift, double sigma, double round) in mmd)
        {
            MmdCases.Add((Rows(random, n, d, 0, round), Rows(random, m, d, shift, round), d, sigma));
        }

        (int N, int D, double NanShare, bool Constant)[] pca = [(500, 8, 0, false), (1003, 20, 0.02, true), (95, 3, 0, false), (400, 64, 0, false), (37, 5, 0.05, false)];
        foreach ((int n, int d, double nanShare, bool constant) in pca)
        {
            double[] mixing = [.. Enumerable.Range(0, d * d).Select(_ => Normal(random) / Math.Sqrt(d))];
            double[] reference = Correlated(random, n, d, mixing, 0, nanShare, constant);
            double[][] chunks =
            [
                Correlated(random, 64, d, mixing, 0, nanShare, constant),
                Correlated(random, 50, d, mixing, 0.5, nanShare, constant),
                Correlated(random, 1, d, mixing, 0, 0, constant),
            ];
            PcaCases.Add((reference, chunks, d));
        }

        foreach (int d in new[] { 1, 2, 3, 5, 17, 50, 200 })
        {
            double[] matrix = new double[d * d];
            for (int i = 0; i < d; i++)
            {
                for (int j = 0; j <= i; j++)
                {
                    matrix[i * d + j] = matrix[j * d + i] = Normal(random);
                }
            }

            EigenCases.Add((matrix, d));
        }

        // Repeated eigenvalues and an already diagonal matrix.
        EigenCases.Add(([2, 0, 0, 0, 2, 0, 0, 0, 1], 3));
        EigenCases.Add(([1, 1, 1, 1, 1, 1, 1, 1, 1], 3));

        var input = new JsonObject
        {
            ["mmd"] = new JsonArray([.. MmdCases.Select(c => (JsonNode)new JsonObject
            {
                ["d"] = c.Dimension,
                ["ref"] = Array(c.Reference),
                ["cur"] = Array(c.Current),
                ["sigma"] = double.IsNaN(c.Sigma) ? null : c.Sigma,
            })]),
            ["pca"] = new JsonArray([.. PcaCases.Select(c => (JsonNode)new JsonObject
            {
                ["d"] = c.Dimension,
                ["ref"] = Array(c.Reference),
                ["current"] = new JsonArray([.. c.Chunks.Select(chunk => (JsonNode)Array(chunk))]),
            })]),
            ["eigen"] = new JsonArray([.. EigenCases.Select(c => (JsonNode)new JsonObject { ["d"] = c.Dimension, ["matrix"] = Array(c.Matrix) })]),
        };
        Output = await PythonReference.RunAsync("multivariate_reference.py", input);
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    internal static double Normal(Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());

    internal static double[] Rows(Random random, int n, int d, double shift, double round)
    {
        double[] rows = new double[n * d];
        for (int i = 0; i < rows.Length; i++)
        {
            double value = shift + Normal(random);
            rows[i] = round > 0 ? Math.Round(value / round) * round : value;
        }

        return rows;
    }

    // Rows x = A z + shift with z standard normal; column 1 constant when asked; NaN sprinkled in (never all of a column).
    private static double[] Correlated(Random random, int n, int d, double[] mixing, double shift, double nanShare, bool constant)
    {
        double[] rows = new double[n * d];
        double[] z = new double[d];
        for (int r = 0; r < n; r++)
        {
            for (int k = 0; k < d; k++)
            {
                z[k] = Normal(random);
            }

            for (int c = 0; c < d; c++)
            {
                double value = shift + 10 * c;
                for (int k = 0; k < d; k++)
                {
                    value += mixing[c * d + k] * z[k];
                }

                rows[r * d + c] = constant && c == 1 ? 4.25 : r > 0 && random.NextDouble() < nanShare ? double.NaN : value;
            }
        }

        return rows;
    }

    private static JsonArray Array(double[] values) => new([.. values.Select(v => double.IsNaN(v) ? null : (JsonNode)v)]);
}

public sealed class MaximumMeanDiscrepancyTestTests(MultivariateReferenceFixture fixture) : IClassFixture<MultivariateReferenceFixture>
{
    [Fact]
    public void Statistic_MatchesNumpyMmd2AndSigma_WhenRandomCases()
    {
        JsonArray expected = fixture.Output["mmd"]!.AsArray();
        var workspace = new DriftWorkspace();
        for (int i = 0; i < fixture.MmdCases.Count; i++)
        {
            (double[] reference, double[] current, int d, double sigma) = fixture.MmdCases[i];
            var test = new MaximumMeanDiscrepancyTest(reference, d, sigma);
            double expectedSigma = expected[i]!["sigma"]!.GetValue<double>();
            double expectedMmd2 = expected[i]!["mmd2"]!.GetValue<double>();
            Assert.True(Math.Abs(test.Sigma - expectedSigma) <= 1e-12 * expectedSigma, $"case {i}: sigma {test.Sigma:R}, numpy {expectedSigma:R}");
            double statistic = test.Statistic(current, workspace);
            Assert.True(Math.Abs(statistic - expectedMmd2) <= Math.Max(1e-9 * Math.Abs(expectedMmd2), 1e-14),
                $"case {i}: MMD² {statistic:R}, numpy {expectedMmd2:R}");
            MaximumMeanDiscrepancyResult result = test.Test(current, new DriftRandom(i), workspace);
            Assert.Equal(statistic, result.Statistic);
        }
    }

    [Fact]
    public void PermutedStatistics_MatchNaiveRelabelling_WhenSameRandomDraws()
    {
        var random = new Random(5);
        foreach ((int n, int m) in new[] { (40, 25), (25, 40), (30, 30), (2, 3), (3, 2) })
        {
            const int d = 3;
            double[] reference = MultivariateReferenceFixture.Rows(random, n, d, 0, 0);
            double[] current = MultivariateReferenceFixture.Rows(random, m, d, 0.4, 0);
            var test = new MaximumMeanDiscrepancyTest(reference, d, permutations: 50);
            double[] permuted = new double[50];
            test.PermutedStatistics(current, new DriftRandom(123), new DriftWorkspace(), permuted);

            // The same draws, replayed: the smaller side is the first min(n, m) of a partial Fisher-Yates shuffle.
            double[] pooled = [.. reference, .. current];
            int total = n + m;
            int[] order = [.. Enumerable.Range(0, total)];
            var replay = new DriftRandom(123);
            for (int p = 0; p < permuted.Length; p++)
            {
                int subset = Math.Min(n, m);
                for (int t = 0; t < subset; t++)
                {
                    int pick = replay.Next(t, total);
                    (order[t], order[pick]) = (order[pick], order[t]);
                }

                var inSubset = new HashSet<int>(order.Take(subset));
                int[] x = n <= m ? [.. inSubset] : [.. Enumerable.Range(0, total).Where(i => !inSubset.Contains(i))];
                int[] y = [.. Enumerable.Range(0, total).Where(i => !x.Contains(i))];
                double expected = NaiveMmd2(pooled, d, x, y, test.Sigma);
                Assert.True(Math.Abs(permuted[p] - expected) <= 1e-12, $"n={n} m={m} permutation {p}: {permuted[p]:R} vs {expected:R}");
            }
        }
    }

    [Fact]
    public void Test_DetectsDrift_WhenMeanShifted()
    {
        var random = new Random(9);
        double[] reference = MultivariateReferenceFixture.Rows(random, 200, 4, 0, 0);
        double[] current = MultivariateReferenceFixture.Rows(random, 150, 4, 0.8, 0);
        var test = new MaximumMeanDiscrepancyTest(reference, 4);
        MaximumMeanDiscrepancyResult result = test.Test(current, new DriftRandom(1), new DriftWorkspace());
        Assert.Equal(0, result.PValue);
        Assert.True(result.IsDrift);
        Assert.True(result.DistanceThreshold < result.Statistic);
    }

    [Fact]
    public void Test_GivesRoughlyUniformPValues_WhenSameDistribution()
    {
        var random = new Random(11);
        var workspace = new DriftWorkspace();
        var pValues = new List<double>();
        for (int trial = 0; trial < 40; trial++)
        {
            double[] reference = MultivariateReferenceFixture.Rows(random, 60, 3, 0, 0);
            double[] current = MultivariateReferenceFixture.Rows(random, 50, 3, 0, 0);
            var test = new MaximumMeanDiscrepancyTest(reference, 3);
            MaximumMeanDiscrepancyResult result = test.Test(current, new DriftRandom(trial), workspace);
            Assert.InRange(result.PValue, 0, 1);
            pValues.Add(result.PValue);
        }

        Assert.InRange(pValues.Average(), 0.35, 0.65);
        Assert.True(pValues.Count(p => p < 0.05) <= 6, $"{pValues.Count(p => p < 0.05)} of 40 null tests below 0.05");
    }

    [Fact]
    public void Test_DoesNotAllocate_WhenWorkspaceWarm()
    {
        var random = new Random(13);
        double[] reference = MultivariateReferenceFixture.Rows(random, 100, 5, 0, 0);
        double[] current = MultivariateReferenceFixture.Rows(random, 80, 5, 0, 0);
        var test = new MaximumMeanDiscrepancyTest(reference, 5);
        var workspace = new DriftWorkspace();
        var permutations = new DriftRandom(1);
        test.Test(current, permutations, workspace);
        double sum = 0;
        long allocated = SteadyStateAllocation.LeastBytes(() =>
        {
            for (int i = 0; i < 5; i++)
            {
                sum += test.Test(current, permutations, workspace).PValue;
            }
        });

        Assert.Equal(0, allocated);
        Assert.InRange(sum, 0, 15);
    }

    [Fact]
    public void Constructor_Throws_WhenInputInvalid()
    {
        Assert.Throws<ArgumentException>(() => new MaximumMeanDiscrepancyTest([1, 2, 3], 2));
        Assert.Throws<ArgumentException>(() => new MaximumMeanDiscrepancyTest([1, 2], 2));
        Assert.Throws<ArgumentException>(() => new MaximumMeanDiscrepancyTest([1, double.NaN, 3, 4], 2));
        Assert.Throws<ArgumentException>(() => new MaximumMeanDiscrepancyTest([1, 1, 1, 1, 1, 1, 2, 2], 2));
        Assert.Throws<ArgumentException>(() => new MaximumMeanDiscrepancyTest([1, 2, 3, 4], 2, sigma: -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new MaximumMeanDiscrepancyTest([1, 2, 3, 4], 2, pValueThreshold: 1));
        var test = new MaximumMeanDiscrepancyTest([1, 2, 3, 4], 2);
        Assert.Throws<ArgumentException>(() => test.Statistic([1, 2], new DriftWorkspace()));
    }

    private static double NaiveMmd2(double[] pooled, int d, int[] x, int[] y, double sigma)
    {
        double Kernel(int a, int b)
        {
            double sum = 0;
            for (int k = 0; k < d; k++)
            {
                double difference = pooled[a * d + k] - pooled[b * d + k];
                sum += difference * difference;
            }

            return Math.Exp(-sum / (2 * sigma * sigma));
        }

        double xx = 0, yy = 0, xy = 0;
        foreach (int a in x)
        {
            foreach (int b in x)
            {
                xx += a == b ? 0 : Kernel(a, b);
            }

            foreach (int b in y)
            {
                xy += Kernel(a, b);
            }
        }

        foreach (int a in y)
        {
            foreach (int b in y)
            {
                yy += a == b ? 0 : Kernel(a, b);
            }
        }

        int n = x.Length, m = y.Length;
        return xx / (n * (n - 1.0)) + yy / (m * (m - 1.0)) - 2 * xy / ((double)n * m);
    }
}

public sealed class PcaReconstructionDriftTests(MultivariateReferenceFixture fixture) : IClassFixture<MultivariateReferenceFixture>
{
    [Fact]
    public void Fit_MatchesNumpyNannyMlDefinition_WhenRandomCases()
    {
        JsonArray expected = fixture.Output["pca"]!.AsArray();
        var workspace = new DriftWorkspace();
        for (int i = 0; i < fixture.PcaCases.Count; i++)
        {
            (double[] reference, double[][] chunks, int d) = fixture.PcaCases[i];
            JsonNode want = expected[i]!;
            var drift = new PcaReconstructionDrift(reference, d);
            Assert.Equal(want["components"]!.GetValue<int>(), drift.Components);
            double[] ratios = [.. want["ratios"]!.AsArray().Select(v => v!.GetValue<double>())];
            for (int c = 0; c < d; c++)
            {
                Assert.True(Math.Abs(drift.ExplainedVarianceRatios[c] - ratios[c]) <= 1e-12, $"case {i} ratio {c}: {drift.ExplainedVarianceRatios[c]:R} vs {ratios[c]:R}");
            }

            double[] referenceErrors = [.. want["referenceErrors"]!.AsArray().Select(v => v!.GetValue<double>())];
            Assert.Equal(referenceErrors.Length, drift.ReferenceChunkErrors.Count);
            for (int c = 0; c < referenceErrors.Length; c++)
            {
                AssertClose(referenceErrors[c], drift.ReferenceChunkErrors[c], $"case {i} reference chunk {c}");
            }

            AssertClose(want["upper"]!.GetValue<double>(), drift.UpperThreshold, $"case {i} upper");
            if (want["lower"] is null)
            {
                Assert.Null(drift.LowerThreshold);
            }
            else
            {
                AssertClose(want["lower"]!.GetValue<double>(), drift.LowerThreshold!.Value, $"case {i} lower");
            }

            double[] current = [.. want["current"]!.AsArray().Select(v => v!.GetValue<double>())];
            for (int c = 0; c < chunks.Length; c++)
            {
                AssertClose(current[c], drift.ReconstructionError(chunks[c], workspace), $"case {i} chunk {c}");
            }
        }
    }

    [Fact]
    public void Evaluate_Alerts_WhenChunkDriftsAndNotWhenItDoesNot()
    {
        var random = new Random(21);
        const int d = 10;
        double[] reference = CorrelatedRows(random, 2000, d, 0);
        var drift = new PcaReconstructionDrift(reference, d);
        var workspace = new DriftWorkspace();
        Assert.False(drift.Evaluate(CorrelatedRows(random, 500, d, 0), workspace).IsAlert);

        // Break the correlation structure: independent columns with the same marginal scale.
        double[] broken = CorrelatedRows(random, 500, d, 0);
        for (int r = 0; r < 500; r++)
        {
            (broken[r * d], broken[((r + 7) % 500) * d]) = (broken[((r + 7) % 500) * d], broken[r * d]);
            broken[r * d + 1] = -broken[r * d + 1];
        }

        PcaReconstructionResult result = drift.Evaluate(broken, workspace);
        Assert.True(result.IsAlert, $"error {result.Error} inside ({drift.LowerThreshold}, {drift.UpperThreshold})");
        Assert.True(result.Error > drift.UpperThreshold);
    }

    [Fact]
    public void Evaluate_DoesNotAllocate_WhenWorkspaceWarm()
    {
        var random = new Random(23);
        double[] reference = CorrelatedRows(random, 640, 64, 0);
        var drift = new PcaReconstructionDrift(reference, 64);
        double[] chunk = CorrelatedRows(random, 64, 64, 0.1);
        var workspace = new DriftWorkspace();
        drift.Evaluate(chunk, workspace);
        double sum = 0;
        long allocated = SteadyStateAllocation.LeastBytes(() =>
        {
            for (int i = 0; i < 10; i++)
            {
                sum += drift.Evaluate(chunk, workspace).Error;
            }
        });

        Assert.Equal(0, allocated);
        Assert.True(sum > 0);
    }

    [Fact]
    public void Constructor_Throws_WhenInputInvalid()
    {
        Assert.Throws<ArgumentException>(() => new PcaReconstructionDrift(new double[9 * 2], 2));
        Assert.Throws<ArgumentException>(() => new PcaReconstructionDrift(new double[21], 2));
        double[] noValues = [.. Enumerable.Range(0, 40).Select(i => i % 2 == 0 ? double.NaN : i)];
        Assert.Throws<ArgumentException>(() => new PcaReconstructionDrift(noValues, 2));
        double[] infinite = [.. Enumerable.Range(0, 40).Select(i => i == 5 ? double.PositiveInfinity : i * 1.5 % 7)];
        Assert.Throws<ArgumentException>(() => new PcaReconstructionDrift(infinite, 2));
        Assert.Throws<ArgumentException>(() => new PcaReconstructionDrift(new double[40], 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => new PcaReconstructionDrift(new double[40], 2, varianceToKeep: 1));
    }

    private static double[] CorrelatedRows(Random random, int n, int d, double shift)
    {
        double[] rows = new double[n * d];
        for (int r = 0; r < n; r++)
        {
            double common = MultivariateReferenceFixture.Normal(random);
            for (int c = 0; c < d; c++)
            {
                rows[r * d + c] = shift + common + 0.3 * MultivariateReferenceFixture.Normal(random);
            }
        }

        return rows;
    }

    private static void AssertClose(double expected, double actual, string what) =>
        Assert.True(Math.Abs(actual - expected) <= 1e-9 * Math.Abs(expected), $"{what}: {actual:R} vs numpy {expected:R}");
}

public sealed class SymmetricEigenTests(MultivariateReferenceFixture fixture) : IClassFixture<MultivariateReferenceFixture>
{
    [Fact]
    public void Decompose_MatchesNumpyEigenvaluesAndDiagonalizes_WhenSymmetricMatrices()
    {
        JsonArray expected = fixture.Output["eigen"]!.AsArray();
        for (int i = 0; i < fixture.EigenCases.Count; i++)
        {
            (double[] matrix, int d) = fixture.EigenCases[i];
            double[] values = new double[d];
            double[] vectors = new double[d * d];
            SymmetricEigen.Decompose(matrix, d, values, vectors);
            double[] want = [.. expected[i]!["values"]!.AsArray().Select(v => v!.GetValue<double>())];
            double scale = Math.Max(want.Max(Math.Abs), 1);
            for (int k = 0; k < d; k++)
            {
                Assert.True(Math.Abs(values[k] - want[k]) <= 1e-12 * scale, $"d={d} eigenvalue {k}: {values[k]:R} vs {want[k]:R}");
            }

            // A V = V Λ and VᵀV = I.
            for (int r = 0; r < d; r++)
            {
                for (int c = 0; c < d; c++)
                {
                    double av = 0, vtv = 0;
                    for (int k = 0; k < d; k++)
                    {
                        av += matrix[r * d + k] * vectors[k * d + c];
                        vtv += vectors[k * d + r] * vectors[k * d + c];
                    }

                    Assert.True(Math.Abs(av - vectors[r * d + c] * values[c]) <= 1e-11 * scale, $"d={d} residual ({r},{c})");
                    Assert.True(Math.Abs(vtv - (r == c ? 1 : 0)) <= 1e-12, $"d={d} orthogonality ({r},{c})");
                }
            }
        }
    }
}

public sealed class MaximumMeanDiscrepancyExpTests
{
    [Fact]
    public void ExpNonPositive_IsWithinOneUlpOfMathExp_WhenArgumentsAcrossRange()
    {
        var random = new Random(1);
        int width = System.Numerics.Vector<double>.Count;
        double[] x = new double[width];
        double worst = 0;
        for (int i = 0; i < 200_000; i++)
        {
            for (int k = 0; k < width; k++)
            {
                x[k] = i switch
                {
                    0 => 0,
                    1 => -708,
                    _ => -Math.Pow(random.NextDouble(), 3) * 720,
                };
            }

            System.Numerics.Vector<double> y = MaximumMeanDiscrepancyTest.ExpNonPositive(new System.Numerics.Vector<double>(x));
            for (int k = 0; k < width; k++)
            {
                double expected = x[k] < -708 ? 0 : Math.Exp(x[k]);
                double error = expected == 0 ? Math.Abs(y[k]) : Math.Abs(y[k] - expected) / expected;
                worst = Math.Max(worst, error);
            }
        }

        Assert.True(worst <= 4.5e-16, $"worst relative error {worst}");
    }
}
