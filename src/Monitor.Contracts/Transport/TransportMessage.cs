namespace Monitor.Contracts.Transport;

/// <summary>A message read from a topic: Kafka's or the in-process bus's.</summary>
public sealed class TransportMessage
{
    /// <summary>Topic it was read from.</summary>
    public required string Topic { get; init; }

    /// <summary>Partition it was read from.</summary>
    public required int Partition { get; init; }

    /// <summary>Offset within the partition.</summary>
    public required long Offset { get; init; }

    /// <summary>Message key (for step records <c>"{run}/{rank}"</c>); null when the producer sent none.</summary>
    public string? Key { get; init; }

    /// <summary>Payload.</summary>
    public required byte[] Value { get; init; }

    /// <summary>Headers in the order they were written.</summary>
    public IReadOnlyList<KeyValuePair<string, byte[]>> Headers { get; init; } = [];

    /// <summary>Broker or producer timestamp.</summary>
    public DateTimeOffset Timestamp { get; init; }

    /// <summary>The consumer group that read it (for tracing); null when the transport has no groups (the in-process bus).</summary>
    public string? ConsumerGroup { get; init; }
}

/// <summary>Outcome of one produce call, reported once per message.</summary>
/// <param name="Delivered">True when the broker (or bus) accepted the message.</param>
/// <param name="Error">Why not, when <paramref name="Delivered"/> is false.</param>
public readonly record struct DeliveryReport(bool Delivered, string? Error)
{
    /// <summary>Partition the message was written to; -1 when unknown (not delivered, or a transport that does not say).</summary>
    public int Partition { get; init; } = -1;

    /// <summary>Offset of the message in <see cref="Partition"/>; -1 when unknown.</summary>
    public long Offset { get; init; } = -1;

    /// <summary>
    /// A low-cardinality name of the failure when <see cref="Delivered"/> is false (Kafka's error code, e.g.
    /// <c>Local_MsgTimedOut</c>), for the <c>error.type</c> of a span; null when unknown or delivered.
    /// </summary>
    public string? ErrorType { get; init; }
}

/// <summary>The producing side of a transport.</summary>
/// <remarks>Implementations are thread-safe. <see cref="Produce"/> never blocks on the network.</remarks>
public interface IRecordProducer : IDisposable
{
    /// <summary>
    /// Hands one message to the transport. <paramref name="onDelivery"/> is called exactly once, on a transport
    /// thread (or synchronously when the message is refused at once, e.g. a full local queue); it must not throw
    /// and must not block.
    /// </summary>
    void Produce(string topic, string key, byte[] value, IReadOnlyList<KeyValuePair<string, byte[]>>? headers, Action<DeliveryReport> onDelivery);

    /// <summary>Waits until every message handed over so far is delivered or failed, or the timeout passes.</summary>
    /// <returns>The number of messages still in flight.</returns>
    int Flush(TimeSpan timeout);
}

/// <summary>Lag of one partition the consumer owns.</summary>
/// <param name="Topic">Topic.</param>
/// <param name="Partition">Partition.</param>
/// <param name="Lag">Messages after the consumer's position (high watermark minus position); -1 when unknown.</param>
public readonly record struct PartitionLag(string Topic, int Partition, long Lag);

/// <summary>The consuming side of a transport: a member of a consumer group.</summary>
/// <remarks>
/// Not thread-safe: one thread consumes, marks and commits. Offsets are committed only for messages passed to
/// <see cref="MarkProcessed"/>, so a restarted consumer resumes after the last processed message
/// (at-least-once; a record processed but not yet committed is seen again after a crash).
/// </remarks>
public interface IRecordConsumer : IDisposable
{
    /// <summary>Waits up to <paramref name="maxWait"/> for the next message.</summary>
    /// <returns>The message, or null when none arrived in time, the token was cancelled, or the source has ended.</returns>
    TransportMessage? Consume(TimeSpan maxWait, CancellationToken cancellationToken);

    /// <summary>Marks a message as processed: its offset becomes eligible for the next commit.</summary>
    void MarkProcessed(TransportMessage message);

    /// <summary>Commits every processed offset now (also done periodically by the implementation).</summary>
    void Commit();

    /// <summary>Lag per owned partition, as of the last fetch.</summary>
    IReadOnlyList<PartitionLag> GetLag();
}

/// <summary>
/// A consumer that tells its host about its partitions as they come and go, on the consuming thread, inside
/// <see cref="IRecordConsumer.Consume"/>: the Kafka consumer does, the in-process bus (one consumer per group, nothing
/// to rebalance) does not.
/// </summary>
public interface IPartitionOwnershipEvents
{
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
