using BenchmarkDotNet.Attributes;
using Monitor.Analysis.Drift;

namespace Monitor.Benchmarks;

/// <summary>
/// The scipy two-sample drift tests on 10,000 reference values against 10,000 current ones (normal, the current
/// shifted by 0.05 standard deviations), one call each, sorting included; KS also at 10,000 against 7,000 (the
/// unequal-size exact recursion) and 20,000 against 20,000 (the asymptotic distribution).
/// </summary>
[MemoryDiagnoser]
[Config(typeof(Program.StandardConfig))]
public class DriftTestBenchmarks
{
    private readonly DriftWorkspace _workspace = new();
    private double[] _reference = null!;
    private double[] _current = null!;
    private double[] _current7000 = null!;
    private double[] _reference20000 = null!;
    private double[] _current20000 = null!;

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(3);
        _reference = Normal(random, 10_000, 0);
        _current = Normal(random, 10_000, 0.05);
        _current7000 = Normal(random, 7_000, 0.05);
        _reference20000 = Normal(random, 20_000, 0);
        _current20000 = Normal(random, 20_000, 0.05);
    }

    [Benchmark(Baseline = true)]
    public double KolmogorovSmirnov10kVs10k() => KolmogorovSmirnovTest.Compute(_reference, _current, _workspace).PValue;

    [Benchmark]
    public double KolmogorovSmirnov10kVs7k() => KolmogorovSmirnovTest.Compute(_reference, _current7000, _workspace).PValue;

    [Benchmark]
    public double KolmogorovSmirnov20kVs20kAsymptotic() => KolmogorovSmirnovTest.Compute(_reference20000, _current20000, _workspace).PValue;

    [Benchmark]
    public double CramerVonMises10kVs10k() => CramerVonMisesTest.Compute(_reference, _current, _workspace).PValue;

    [Benchmark]
    public double AndersonDarling10kVs10k() => AndersonDarlingTest.Compute(_reference, _current, _workspace).PValue;

    [Benchmark]
    public double EnergyDistance10kVs10k() => EnergyDistanceTest.Compute(_reference, _current, _workspace);

    [Benchmark]
    public double Wasserstein10kVs10k() => WassersteinDistanceTest.Compute(_reference, _current, _workspace);

    private static double[] Normal(Random random, int n, double shift)
    {
        var values = new double[n];
        for (int i = 0; i < n; i++)
        {
            values[i] = (Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble())) + shift;
        }

        return values;
    }
}
