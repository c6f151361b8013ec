namespace Monitor.Contracts.Transport;

/// <summary>
/// Span names and attribute names of the OpenTelemetry messaging semantic conventions (Kafka), shared by the worker's
/// <c>send</c> span and the service's <c>process</c> span so that both sides spell them the same way.
/// </summary>
/// <remarks>
/// The in-process bus of <c>monitor demo</c> stands in for Kafka (topics, partitions, offsets, headers), so its spans
/// carry the same names and <c>messaging.system = kafka</c>, and the demo traces like a real deployment.
/// </remarks>
public static class MessagingAttributes
{
    /// <summary><c>messaging.system</c>; always <see cref="Kafka"/> here.</summary>
    public const string MessagingSystem = "messaging.system";

    /// <summary><c>messaging.destination.name</c>: the topic.</summary>
    public const string DestinationName = "messaging.destination.name";

    /// <summary><c>messaging.destination.partition.id</c>: the partition, as a string.</summary>
    public const string PartitionId = "messaging.destination.partition.id";

    /// <summary><c>messaging.consumer.group.name</c>: the consumer group (consumer spans).</summary>
    public const string ConsumerGroupName = "messaging.consumer.group.name";

    /// <summary><c>messaging.kafka.message.key</c>: the record key (<c>"{run}/{rank}"</c> for step records).</summary>
    public const string KafkaMessageKey = "messaging.kafka.message.key";

    /// <summary><c>messaging.kafka.offset</c>: the record's offset in its partition.</summary>
    public const string KafkaOffset = "messaging.kafka.offset";

    /// <summary><c>messaging.operation.type</c>: <see cref="Send"/> or <see cref="Process"/>.</summary>
    public const string OperationType = "messaging.operation.type";

    /// <summary><c>messaging.operation.name</c>: the operation as the system names it (same values here).</summary>
    public const string OperationName = "messaging.operation.name";

    /// <summary><c>messaging.message.body.size</c>: payload size in bytes.</summary>
    public const string BodySize = "messaging.message.body.size";

    /// <summary><c>error.type</c>: low-cardinality class of a failure.</summary>
    public const string ErrorType = "error.type";

    /// <summary>Value of <see cref="MessagingSystem"/>.</summary>
    public const string Kafka = "kafka";

    /// <summary>Operation of a producer span.</summary>
    public const string Send = "send";

    /// <summary>Operation of a consumer span that processes one record.</summary>
    public const string Process = "process";

    /// <summary>Name of the producer span for <paramref name="topic"/>: <c>send {topic}</c>.</summary>
    public static string SendSpanName(string topic) => Send + " " + topic;

    /// <summary>Name of the consumer span for <paramref name="topic"/>: <c>process {topic}</c>.</summary>
    public static string ProcessSpanName(string topic) => Process + " " + topic;
}
