using Confluent.Kafka;
using Monitor.Contracts.Transport;

namespace Monitor.Transport.Kafka;

/// <summary>
/// A Kafka consumer whose offsets the host commits in its own transactions (the service's <c>--state-topic</c>),
/// and which tells the host about partitions as they come and go, on the consuming thread, so that state is restored
/// before a partition's first record and committed before it leaves.
/// </summary>
public interface ITransactionalConsumer : IRecordConsumer, IPartitionOwnershipEvents
{
    /// <summary>The group's metadata for <c>SendOffsetsToTransaction</c> (the broker fences a zombie by its generation).</summary>
    IConsumerGroupMetadata GroupMetadata { get; }
}
