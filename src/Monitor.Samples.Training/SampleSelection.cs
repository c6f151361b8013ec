using Monitor.Contracts;

namespace Monitor.Samples.Training;

/// <summary>What the sample job traces unless told otherwise (the demo and the standalone job alike).</summary>
public static class SampleSelection
{
    /// <summary>
    /// Raw values per tensor and step: 256 examples of the 16 input features, and 4,096 of the one-column batch tensors
    /// (the whole batch of 1,024): enough for drift tests and class counts, at about 30 KB per record.
    /// </summary>
    public const int LimitSize = 4096;

    /// <summary>
    /// Every collection every step (<see cref="TraceSelection.AllEveryStep"/>), plus raw examples of the batch: inputs
    /// (drift), predictions and labels (class balance, confusion, concept drift) and per-example losses. Without an
    /// overhead budget (<c>"budget": "none"</c>): the sample's faults are injected at chosen steps and its rules judge
    /// every step, and on its small model (a step of a millisecond or less) the tracer's share of the step is large
    /// enough that a budget would thin it, so which steps show a fault would depend on the machine's load. Set one at
    /// run time (<c>monitor trace set --budget 0.02 ...</c>) to watch the budget work.
    /// </summary>
    public static TraceSelection Default { get; } = TraceSelection.AllEveryStep with
    {
        Collections = new Dictionary<string, CollectionFilter>(TraceSelection.AllEveryStep.Collections)
        {
            [CollectionNames.Inputs] = new() { Raw = true },
            [CollectionNames.Labels] = new() { Raw = true, Histogram = false },
            [CollectionNames.Predictions] = new() { Raw = true, Histogram = false },
            [CollectionNames.Losses] = new() { Raw = true },
        },
        LimitSize = LimitSize,
        Budget = TraceBudget.None,
    };
}
