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
    /// (drift), predictions and labels (class balance, confusion, concept drift) and per-example losses.
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
    };
}
