using BenchmarkDotNet.Attributes;
using Monitor.Analysis;
using Monitor.Contracts.V1;
using Monitor.Service.Rules;

namespace Monitor.Benchmarks;

/// <summary>
/// Analysis throughput on one core: step records of 100 tensor summaries (gradients, weights, biases, activations,
/// a loss) from 8 ranks, through the engine with the service's default rule set (<c>monitor rules default</c>: every
/// built-in rule, their windows included).
/// The result is per tensor summary; summaries per second = 10^9 / mean ns. Target: at least 1,000,000 per second.
/// </summary>
/// <remarks>
/// Two versions of each rank's record alternate, so every summary differs from the step before, as in training; with
/// one version, UnchangedTensor would see 800 unchanged tensors and the run would measure 800 firing alerts instead.
/// </remarks>
[MemoryDiagnoser]
[Config(typeof(Program.StandardConfig))]
public class AnalysisThroughputBenchmarks
{
    private const int Ranks = 8;
    private const int TensorsPerRecord = 100;
    private const int RecordsPerInvocation = 100;

    private StepRecord[][] _records = null!;
    private AnalysisEngine _engine = null!;
    private long _step;

    [GlobalSetup]
    public void Setup()
    {
        _engine = new AnalysisEngine(RuleCatalog.DefaultRules(), TimeProvider.System);
        var random = new Random(3);
        _records = [[.. Enumerable.Range(0, Ranks).Select(rank => Record(rank, random))], [.. Enumerable.Range(0, Ranks).Select(rank => Record(rank, random))]];
    }

    [Benchmark(OperationsPerInvoke = RecordsPerInvocation * TensorsPerRecord)]
    public int ProcessTensorSummaries()
    {
        int transitions = 0;
        for (int i = 0; i < RecordsPerInvocation; i++)
        {
            if (i % Ranks == 0)
            {
                _step++;
            }

            StepRecord record = _records[_step % 2][i % Ranks];
            record.Step = _step;
            record.Sequence = (ulong)_step;
            record.EventTimeUnixNanos = 1_700_000_000_000_000_000 + (_step * 1_000_000_000);
            transitions += _engine.Process(record).Count;
        }

        return transitions;
    }

    /// <summary>
    /// A record of 100 tensor summaries (also the records of <see cref="EngineSnapshotBenchmarks"/>), or of
    /// <paramref name="tensors"/> of them in a run of <paramref name="worldSize"/> ranks (<see cref="ServiceLoad"/>).
    /// </summary>
    internal static StepRecord Record(int rank, Random random, int tensors = TensorsPerRecord, uint worldSize = Ranks)
    {
        var record = new StepRecord { SchemaVersion = 1, RunId = "bench", Rank = (uint)rank, WorldSize = worldSize, Mode = Mode.Train };
        for (int t = 0; t < tensors; t++)
        {
            (string name, Collection collection) = (t % 5) switch
            {
                0 => ($"layer{t}.weight", Collection.Weights),
                1 => ($"layer{t}.bias", Collection.Biases),
                2 => ($"layer{t}.weight.grad", Collection.Gradients),
                3 => ($"layer{t}.output", Collection.Activations),
                _ => t == 4 ? ("loss", Collection.Losses) : ($"layer{t}.bias.grad", Collection.Gradients),
            };
            var histogram = new Histogram { Layout = HistogramLayout.Log2Magnitude, FirstBucket = 30 };
            for (int b = 0; b < 36; b++)
            {
                histogram.Counts.Add((ulong)random.Next(0, 1000));
            }

            var tensor = new TensorRecord
            {
                Name = name,
                Dtype = DType.Float32,
                Summary = new TensorSummary
                {
                    Count = 65_536, Min = -0.5, Max = 0.5, Mean = random.NextDouble() * 1e-3, Variance = 0.01 + (random.NextDouble() * 1e-3),
                    L1 = 1000, L2 = 25, AbsMean = 0.05 + (random.NextDouble() * 1e-3), ZeroCount = (ulong)random.Next(0, 100), Histogram = histogram,
                },
            };
            tensor.Collections.Add(collection);
            tensor.Shape.Add(256);
            tensor.Shape.Add(256);
            record.Tensors.Add(tensor);
        }

        return record;
    }
}
