namespace Monitor.Transport.Kafka;

/// <summary>
/// A consumer whose partitions can start at offsets the host chooses, instead of the group's committed ones: what
/// the service's state directory (<c>serve --state-dir</c>) needs to resume exactly after the records its saved state reflects.
/// </summary>
public interface IPositionedConsumer
{
    /// <summary>The consumer group (a state directory belongs to one).</summary>
    string GroupId { get; }

    /// <summary>
    /// From now on, a partition of <paramref name="nextOffsets"/> that is assigned starts at its offset (the first
    /// record to read); other partitions start at the group's committed offset (or the reset policy). Call before the
    /// first <see cref="Monitor.Contracts.Transport.IRecordConsumer.Consume"/>, before the consuming thread starts (not
    /// concurrently with it). An offset past the partition's end, or one retention has deleted, is handled as the
    /// consumer's reset policy says.
    /// </summary>
    void StartAt(IReadOnlyDictionary<(string Topic, int Partition), long> nextOffsets);
}
