using System.Collections.Concurrent;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Monitor.Analysis;
using Monitor.Analysis.Drift;
using Monitor.Contracts;
using Monitor.Contracts.Transport;
using Monitor.Contracts.V1;
using Monitor.Samples.Training;
using Monitor.Service.Rules;
using Monitor.Tracing;
using Monitor.Tracing.TorchSharp;

namespace Monitor.Benchmarks;

/// <summary>
/// What the drift monitors of the default rule set add to the analysis of a record: the service's per-record work
/// (decode and validate, then the engine with the default rule set) on the sample job's own records, with and without
/// the rule set's drift monitors (<c>DataDrift</c>, <c>ConceptDrift</c>), and the drift monitors alone against decoding
/// alone. Target: drift adds at most 5%; the overhead is (DriftMonitorsOnly − DecodeOnly) / DefaultRulesWithoutDrift.
/// </summary>
/// <remarks>
/// The records are real: 600 training steps of the sample job (16 input features, batch 1,024, every collection traced
/// and raw examples of inputs, predictions, labels and losses, as <c>monitor demo</c> traces them), with
/// <c>--fault input-drift</c> from step 300 so the monitors' tests run on drifted windows too. Every iteration replays
/// all 660 of them (600 training steps, 60 validation passes) through a fresh engine, so each monitor fills its
/// reference, tests its windows and fires as in a run; per record = mean / 660.
/// </remarks>
[MemoryDiagnoser]
[Config(typeof(DriftOverheadConfig))]
public class DriftOverheadBenchmarks
{
    private const int Steps = 600;
    private byte[][] _records = [];
    private AnalysisEngine _withDrift = null!;
    private AnalysisEngine _withoutDrift = null!;
    private AnalysisEngine _driftOnly = null!;
    private AnalysisEngine _none = null!;

    [GlobalSetup]
    public void Setup()
    {
        var producer = new CollectingProducer();
        TracerOptions options = new() { RunId = "bench", Selection = SampleSelection.Default, QueueCapacity = 4096 };
        var job = new TrainingJob(new TrainingJobOptions { Steps = Steps, Fault = Fault.InputDrift, FaultAt = Steps / 2 });
        Task.Run(async () =>
        {
            await using var tracer = new StepTracer(options, producer);
            await job.RunAsync((model, optimizer) => TorchSharpTracer.Attach(tracer, model, optimizer));
            await tracer.FlushAsync(TimeSpan.FromSeconds(30));
        }).GetAwaiter().GetResult();
        _records = [.. producer.Values];
    }

    /// <summary>Fresh engines (rules keep state), so every iteration fills references and tests windows as a run does.</summary>
    [IterationSetup]
    public void FreshEngines()
    {
        IReadOnlyList<RuleBinding> rules = RuleCatalog.DefaultRules();
        _withDrift = new AnalysisEngine(rules, TimeProvider.System);
        _withoutDrift = new AnalysisEngine(RuleCatalog.DefaultRules().Where(b => b.Rule is not DataDriftRule and not ConceptDriftRule), TimeProvider.System);
        _driftOnly = new AnalysisEngine(RuleCatalog.DefaultRules().Where(b => b.Rule is DataDriftRule or ConceptDriftRule), TimeProvider.System);
        _none = new AnalysisEngine([], TimeProvider.System);
        if (_withDrift.Rules.Count == _withoutDrift.Rules.Count)
        {
            throw new InvalidOperationException("the default rule set has no drift monitor to measure");
        }

        // Every iteration starts from a collected heap: without it, the garbage of the previous iteration's 40 MB of
        // decoded records lands in whichever method runs next, and the medians are bimodal.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }

    [Benchmark(Baseline = true)]
    public long DefaultRulesWithoutDrift() => Analyse(_withoutDrift);

    [Benchmark]
    public long DefaultRules() => Analyse(_withDrift);

    /// <summary>The drift monitors alone; minus <see cref="DecodeOnly"/>, what they add to a record (measured apart, so the
    /// small difference is not the difference of two large, noisy numbers).</summary>
    [Benchmark]
    public long DriftMonitorsOnly() => Analyse(_driftOnly);

    /// <summary>Decoding and an engine without rules: the part every variant shares.</summary>
    [Benchmark]
    public long DecodeOnly() => Analyse(_none);

    private long Analyse(AnalysisEngine engine)
    {
        long transitions = 0;
        foreach (byte[] value in _records)
        {
            if (StepRecordDecoder.TryDecode(value, out StepRecord? record, out _))
            {
                transitions += engine.Process(record).Count;
            }
        }

        return transitions;
    }

    /// <summary>
    /// As <see cref="Program.TrainingStepConfig"/> with 20 warm-up iterations: the first method measured otherwise still
    /// runs code the JIT has not yet optimised (its iterations were bimodal, P90 four times the median).
    /// </summary>
    public sealed class DriftOverheadConfig : ManualConfig
    {
        public DriftOverheadConfig() =>
            AddJob(Job.Default.WithToolchain(InProcessEmitToolchain.Instance).WithStrategy(BenchmarkDotNet.Engines.RunStrategy.Monitoring)
                .WithWarmupCount(20).WithIterationCount(60).WithInvocationCount(1).WithUnrollFactor(1))
                .AddColumn(BenchmarkDotNet.Columns.StatisticColumn.Median, BenchmarkDotNet.Columns.StatisticColumn.P90);
    }

    private sealed class CollectingProducer : IRecordProducer
    {
        private readonly ConcurrentQueue<byte[]> _values = new();

        public IEnumerable<byte[]> Values => _values;

        public void Produce(string topic, string key, byte[] value, IReadOnlyList<KeyValuePair<string, byte[]>>? headers, Action<DeliveryReport> onDelivery)
        {
            _values.Enqueue(value);
            onDelivery(new DeliveryReport(true, null));
        }

        public int Flush(TimeSpan timeout) => 0;

        public void Dispose()
        {
        }
    }
}
