namespace Monitor.Contracts;

/// <summary>Default Kafka topic names. Every one of them can be overridden in configuration.</summary>
public static class MonitorTopics
{
    /// <summary>Step records, one per rank per traced step, key <c>"{run}/{rank}"</c>.</summary>
    public const string Steps = "monitor.steps";

    /// <summary>Records the service could not decode, with the reason in the <see cref="DeadLetterHeaders"/>.</summary>
    public const string StepsDeadLetter = "monitor.steps.dlq";

    /// <summary>Alert state changes published by the service.</summary>
    public const string Alerts = "monitor.alerts";

    /// <summary>
    /// The service's state changelog (compacted): the latest engine snapshot per <c>"{run}/{rank}"</c> key, in the
    /// same partition number as the key's step records; a key forgotten is a tombstone.
    /// </summary>
    public const string State = "monitor.state";
}

/// <summary>Header names the service writes on a dead-lettered record.</summary>
public static class DeadLetterHeaders
{
    /// <summary>The <see cref="DecodeErrorKind"/> as text.</summary>
    public const string ErrorKind = "monitor-error-kind";

    /// <summary>Human-readable reason.</summary>
    public const string Reason = "monitor-error-reason";

    /// <summary>Topic the record was read from.</summary>
    public const string SourceTopic = "monitor-source-topic";

    /// <summary>Partition the record was read from (decimal).</summary>
    public const string SourcePartition = "monitor-source-partition";

    /// <summary>Offset the record was read from (decimal).</summary>
    public const string SourceOffset = "monitor-source-offset";
}
