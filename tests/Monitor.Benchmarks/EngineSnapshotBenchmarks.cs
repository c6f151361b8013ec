using System.Buffers;
using BenchmarkDotNet.Attributes;
using Monitor.Analysis;
using Monitor.Contracts.V1;
using Monitor.Service.Rules;

namespace Monitor.Benchmarks;

/// <summary>
/// What engine state as data costs (issue 10): writing and restoring the snapshot of one (run, rank) key, and
/// restoring 1,000 ranks of 100 tensors into a new engine (what a replica does when it takes over partitions or
/// restarts from <c>--state-dir</c>). The engine has the service's default rule set and has analysed 12 steps of every
/// rank (records of <see cref="AnalysisThroughputBenchmarks"/>: 100 tensor summaries with histograms), so every rule's
/// windows hold state.
/// </summary>
[MemoryDiagnoser]
[Config(typeof(Program.StandardConfig))]
public class EngineSnapshotBenchmarks
{
    private AnalysisEngine _engine = null!;
    private AnalysisEngine _target = null!;
    private byte[][] _snapshots = [];
    private readonly ArrayBufferWriter<byte> _buffer = new();
    private uint _next;

    [GlobalSetup]
    public void Setup()
    {
        (_engine, _snapshots) = EngineSnapshotFixture.Populated();
        _target = new AnalysisEngine(RuleCatalog.DefaultRules(), TimeProvider.System);
        Console.Error.WriteLine($"// snapshot of a key (100 tensors, default rule set): {_snapshots[0].Length:N0} bytes; all {_snapshots.Length:N0} keys {_snapshots.Sum(s => (long)s.Length):N0} bytes");
    }

    [Benchmark]
    public int WriteSnapshotOfOneKey()
    {
        _buffer.ResetWrittenCount();
        _engine.WriteSnapshot(EngineSnapshotFixture.Run, _next++ % EngineSnapshotFixture.Ranks, _buffer);
        return _buffer.WrittenCount;
    }

    [Benchmark]
    public uint RestoreSnapshotOfOneKey() => _target.RestoreSnapshot(_snapshots[_next++ % EngineSnapshotFixture.Ranks]).Rank;
}

/// <summary>Restoring every key of <see cref="EngineSnapshotFixture"/> (1,000 ranks × 100 tensors) into a fresh engine.</summary>
[MemoryDiagnoser]
[Config(typeof(Program.TrainingStepConfig))]
public class EngineRestoreBenchmarks
{
    private byte[][] _snapshots = [];
    private AnalysisEngine _fresh = null!;

    [GlobalSetup]
    public void Setup() => (_, _snapshots) = EngineSnapshotFixture.Populated();

    /// <summary>A new engine per iteration, outside the measurement (parsing the rule file is not restoring).</summary>
    [IterationSetup]
    public void FreshEngine() => _fresh = new AnalysisEngine(RuleCatalog.DefaultRules(), TimeProvider.System);

    [Benchmark]
    public int RestoreThousandRanksOfHundredTensors()
    {
        foreach (byte[] snapshot in _snapshots)
        {
            _fresh.RestoreSnapshot(snapshot);
        }

        return _fresh.Keys.Count;
    }
}

/// <summary>An engine that has analysed 12 steps of 1,000 ranks, and the snapshots of its keys.</summary>
internal static class EngineSnapshotFixture
{
    public const string Run = "bench";
    public const uint Ranks = 1000;
    private const int Steps = 12;

    public static (AnalysisEngine Engine, byte[][] Snapshots) Populated()
    {
        var engine = new AnalysisEngine(RuleCatalog.DefaultRules(), TimeProvider.System);
        var random = new Random(3);
        // Eight ranks' records in two versions, reused for every rank (the engine keeps no record), so that every
        // summary differs from the step before, as in training.
        StepRecord[][] versions = [[.. Enumerable.Range(0, 8).Select(r => AnalysisThroughputBenchmarks.Record(r, random))], [.. Enumerable.Range(0, 8).Select(r => AnalysisThroughputBenchmarks.Record(r, random))]];
        for (int step = 0; step < Steps; step++)
        {
            for (uint rank = 0; rank < Ranks; rank++)
            {
                StepRecord record = versions[step % 2][rank % 8];
                record.RunId = Run;
                record.Rank = rank;
                record.WorldSize = Ranks;
                record.Step = step;
                record.Sequence = (ulong)step + 1;
                record.EventTimeUnixNanos = 1_700_000_000_000_000_000 + (step * 1_000_000_000L);
                engine.Process(record);
            }
        }

        byte[][] snapshots = [.. Enumerable.Range(0, (int)Ranks).Select(rank => engine.WriteSnapshot(Run, (uint)rank))];
        return (engine, snapshots);
    }
}
