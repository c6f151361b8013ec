using Microsoft.Extensions.Time.Testing;
using Monitor.Contracts;
using Monitor.Contracts.V1;

namespace Monitor.Analysis.Tests;

/// <summary>
/// Drives an <see cref="AnalysisEngine"/> synchronously, like Kafka Streams' <c>TopologyTestDriver</c>: records are
/// piped in one at a time and every alert transition they cause is collected, in order.
/// </summary>
internal sealed class AnalysisTestDriver
{
    /// <summary>Event time of step 0 in records built by <see cref="Record(long, TensorRecord[])"/>; step s is s seconds later.</summary>
    public static readonly DateTimeOffset StartTime = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>Run id used when a test does not name one.</summary>
    public const string DefaultRun = "run-1";

    private readonly List<AlertTransition> _transitions = [];

    public AnalysisTestDriver(params ITrainingRule[] rules)
        : this(rules.Select(Bind).ToArray())
    {
    }

    public AnalysisTestDriver(params RuleBinding[] bindings)
    {
        Time = new FakeTimeProvider(StartTime);
        Engine = new AnalysisEngine(bindings, Time);
    }

    /// <summary>Test rules carry their own binding settings (<see cref="MeanAboveRule"/>); others get the defaults.</summary>
    private static RuleBinding Bind(ITrainingRule rule) => rule is MeanAboveRule mean
        ? new RuleBinding { Rule = rule, Severity = mean.Severity, ForEvaluations = mean.ForEvaluations }
        : new RuleBinding { Rule = rule };

    /// <summary>The clock the engine uses for records without an event time.</summary>
    public FakeTimeProvider Time { get; }

    public AnalysisEngine Engine { get; }

    /// <summary>Every transition so far, in the order the engine emitted them.</summary>
    public IReadOnlyList<AlertTransition> Transitions => _transitions;

    /// <summary>Processes one record; returns a copy of the transitions it caused (the engine reuses its list).</summary>
    public IReadOnlyList<AlertTransition> Pipe(StepRecord record)
    {
        AlertTransition[] caused = [.. Engine.Process(record)];
        _transitions.AddRange(caused);
        return caused;
    }

    /// <summary>Processes records in order; returns the transitions they caused.</summary>
    public IReadOnlyList<AlertTransition> PipeAll(IEnumerable<StepRecord> records)
    {
        var caused = new List<AlertTransition>();
        foreach (StepRecord record in records)
        {
            caused.AddRange(Pipe(record));
        }

        return caused;
    }

    /// <summary>Pipes one record per step in [<paramref name="fromStep"/>, <paramref name="toStep"/>], each made by
    /// <paramref name="recordAt"/>.</summary>
    public IReadOnlyList<AlertTransition> PipeSteps(long fromStep, long toStep, Func<long, StepRecord> recordAt)
    {
        var caused = new List<AlertTransition>();
        for (long step = fromStep; step <= toStep; step++)
        {
            caused.AddRange(Pipe(recordAt(step)));
        }

        return caused;
    }

    /// <summary>Event time given to step <paramref name="step"/> by default.</summary>
    public static DateTimeOffset TimeOfStep(long step) => StartTime.AddSeconds(step);

    /// <summary>A record of <see cref="DefaultRun"/>, rank 0 of 1, at event time <see cref="TimeOfStep"/>.</summary>
    public static StepRecord Record(long step, params TensorRecord[] tensors) =>
        Record(DefaultRun, 0, step, TimeOfStep(step), tensors);

    /// <summary>A valid record (world size large enough for <paramref name="rank"/>); null event time leaves it unset.</summary>
    public static StepRecord Record(string run, uint rank, long step, DateTimeOffset? eventTime, params TensorRecord[] tensors)
    {
        var record = new StepRecord
        {
            SchemaVersion = StepRecordDecoder.CurrentSchemaVersion,
            RunId = run,
            Rank = rank,
            WorldSize = rank + 1,
            Step = step,
            Mode = Mode.Train,
            EventTimeUnixNanos = eventTime is { } t ? (t - DateTimeOffset.UnixEpoch).Ticks * 100 : 0,
            Sequence = (ulong)step + 1,
        };
        record.Tensors.Add(tensors);
        return record;
    }

    /// <summary>A tensor in <paramref name="collections"/> whose summary has the given mean and abs_mean.</summary>
    public static TensorRecord Tensor(string name, double mean, double absMean, params Collection[] collections)
    {
        var tensor = new TensorRecord
        {
            Name = name,
            Dtype = DType.Float32,
            Summary = new TensorSummary { Count = 100, Mean = mean, AbsMean = absMean, Min = mean, Max = mean },
        };
        tensor.Shape.Add(100);
        tensor.Collections.Add(collections);
        return tensor;
    }

    /// <summary>A gradient tensor (collection gradients) with the given mean absolute value.</summary>
    public static TensorRecord Gradient(string name, double absMean) => Tensor(name, 0, absMean, Collection.Gradients);

    /// <summary>A loss tensor (collection losses) with the given value.</summary>
    public static TensorRecord Loss(string name, double value) => Tensor(name, value, Math.Abs(value), Collection.Losses);
}
