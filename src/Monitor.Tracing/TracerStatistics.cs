using Monitor.Contracts;

namespace Monitor.Tracing;

/// <summary>A snapshot of a tracer's counters. Every record the tracer creates ends up in exactly one of
/// <see cref="DroppedQueueFull"/>, <see cref="Delivered"/>, <see cref="DeliveryFailed"/> or is still in flight.</summary>
/// <param name="StepsSeen">Steps begun with <see cref="StepTracer.BeginStep"/>.</param>
/// <param name="StepsTraced">Steps the schedule selected.</param>
/// <param name="RecordsCreated">Step records built (one per traced step).</param>
/// <param name="DroppedQueueFull">Records dropped because the queue to the sender was full.</param>
/// <param name="Delivered">Records the transport confirmed.</param>
/// <param name="DeliveryFailed">Records the transport refused or lost (after its own retries).</param>
/// <param name="Faults">Exceptions the tracer caught so they would not reach the training loop.</param>
/// <param name="QueueLength">Records waiting for the sender now.</param>
/// <param name="SelectionVersion">Version of the selection in force.</param>
/// <param name="LastFault">Text of the most recent fault or delivery error, if any.</param>
/// <param name="RawPartsTrimmed">Raw parts left out of records to keep them within <see cref="TracerOptions.MaxRecordBytes"/>
/// (their records were sent, with every summary).</param>
/// <param name="RawBytesTrimmed">The raw value bytes those parts held.</param>
public sealed record TracerStatistics(
    long StepsSeen,
    long StepsTraced,
    long RecordsCreated,
    long DroppedQueueFull,
    long Delivered,
    long DeliveryFailed,
    long Faults,
    int QueueLength,
    long SelectionVersion,
    string? LastFault,
    long RawPartsTrimmed = 0,
    long RawBytesTrimmed = 0)
{
    /// <summary>The tracer's own cost as a fraction of the step time, over the overhead budget's last complete window
    /// (0 before the first).</summary>
    public double OverheadRatio { get; init; }

    /// <summary>The overhead budget of the step in force (the selection's <c>budget</c>, else
    /// <see cref="TracerOptions.OverheadBudget"/>), or null when there is none.</summary>
    public double? OverheadBudget { get; init; }

    /// <summary>The collections the budget thins now, with their strides; empty when none.</summary>
    public IReadOnlyList<ThinnedCollectionStatus> Thinned { get; init; } = [];

    /// <summary>Tensors the budget has left out of steps so far (each tensor counted once per step).</summary>
    public long TensorsThinned { get; init; }

    /// <summary>Records lost on the worker side: dropped at the queue plus failed deliveries.</summary>
    public long Lost => DroppedQueueFull + DeliveryFailed;
}
