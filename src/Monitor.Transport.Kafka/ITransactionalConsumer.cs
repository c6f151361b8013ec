using Confluent.Kafka;
using Monitor.Contracts.Transport;

namespace Monitor.Transport.Kafka;

/// <summary>
/// A Kafka consumer whose offsets the host commits in its own transactions (the service's <c>--state-topic</c>),
/// and which tells the host about partitions as they come and go, on the consuming thread, so that state is restored
/// before a partition's first record and committed before it leaves.
/// </summary>
public interface ITransactionalConsumer : IRecordConsumer
{
    /// <summary>The group's metadata for <c>SendOffsetsToTransaction</c> (the broker fences a zombie by its generation).</summary>
    IConsumerGroupMetadata GroupMetadata { get; }

    /// <summary>
    /// Called inside <see cref="IRecordConsumer.Consume"/> with the partitions just assigned (with
    /// <c>cooperative-sticky</c>, only the new ones), before any of their records is returned.
    /// </summary>
    Action<IReadOnlyList<int>>? PartitionsAssigned { get; set; }

    /// <summary>
    /// Called inside <see cref="IRecordConsumer.Consume"/> with the partitions about to be revoked (still owned: their
    /// offsets can be committed), or lost (true: another member may own them already; nothing can be committed).
    /// </summary>
    Action<IReadOnlyList<int>, bool>? PartitionsRevoked { get; set; }
}
