using System.Globalization;
using Confluent.Kafka;
using Confluent.Kafka.Admin;
using Microsoft.Extensions.Logging;

namespace Monitor.Transport.Kafka;

/// <summary>Options of <see cref="KafkaStateChangelog"/>.</summary>
public sealed class KafkaStateChangelogOptions
{
    /// <summary>Kafka bootstrap servers. Required.</summary>
    public required string BootstrapServers { get; init; }

    /// <summary>The changelog topic (compacted). Required; <c>serve</c> uses <see cref="Monitor.Contracts.MonitorTopics.State"/>.</summary>
    public required string Topic { get; init; }

    /// <summary>
    /// The producer's <c>transactional.id</c>. Required. Keep it stable per replica (a StatefulSet pod's name): a
    /// replica restarted under the same id fences its dead predecessor and aborts its open transaction at once;
    /// under a new id that transaction holds its partitions' offsets until <see cref="TransactionTimeout"/>.
    /// Two live replicas must never share one.
    /// </summary>
    public required string TransactionalId { get; init; }

    /// <summary>Kafka's <c>transaction.timeout.ms</c>: how long a dead replica's open transaction lasts. Default 10 s.</summary>
    public TimeSpan TransactionTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long a commit, an abort, the start and a partition's restore may take. Default 60 s.</summary>
    public TimeSpan OperationTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Extra librdkafka properties (security and the like), applied first.</summary>
    public IReadOnlyDictionary<string, string> Properties { get; init; } = new Dictionary<string, string>();
}

/// <summary>
/// The service's state changelog: a transactional producer that writes key snapshots to the changelog topic and
/// alert messages to the alerts topic, and commits them with the consumer's offsets in one Kafka transaction; and the
/// restore of a partition's keys from the topic.
/// </summary>
/// <remarks>
/// <para>The changelog is co-partitioned with the steps topic: the snapshot of a <c>"{run}/{rank}"</c> key goes to the
/// same partition number as the key's step records, so a replica assigned step partition <c>p</c> restores exactly the
/// keys of changelog partition <c>p</c>. A forgotten key is written as a tombstone (null value), which compaction
/// removes.</para>
/// <para>Not thread-safe, but for <see cref="DeleteNow"/>: one thread (the service's pipeline) calls everything else. Exceptions: Confluent.Kafka's
/// <see cref="KafkaException"/> family; <see cref="KafkaTxnRequiresAbortException"/> from <see cref="Commit"/> asks
/// for <see cref="Abort"/>; a fatal error (another producer with the same transactional id fenced this one) cannot be
/// recovered from in this process.</para>
/// </remarks>
public sealed class KafkaStateChangelog : IDisposable
{
    private readonly KafkaStateChangelogOptions _options;
    private readonly ILogger? _logger;
    private readonly IProducer<string, byte[]?> _producer;
    // Tombstones that must not wait for the next transaction (see DeleteNow).
    private readonly IProducer<string, byte[]?> _direct;
    private readonly Action<IProducer<string, byte[]?>, Error> _tombstoneFailed;
    private int _partitions;

    /// <summary>Creates the producer; nothing is sent until <see cref="Start"/>.</summary>
    /// <param name="options">The changelog's options.</param>
    /// <param name="logger">librdkafka's log lines and client errors; default none.</param>
    public KafkaStateChangelog(KafkaStateChangelogOptions options, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrWhiteSpace(options.TransactionalId);
        ArgumentException.ThrowIfNullOrWhiteSpace(options.Topic);
        _options = options;
        _logger = logger;
        var config = new ProducerConfig();
        foreach ((string key, string value) in options.Properties)
        {
            config.Set(key, value);
        }

        config.BootstrapServers = options.BootstrapServers;
        config.ClientId = "monitor-service-state";
        config.TransactionalId = options.TransactionalId;
        config.TransactionTimeoutMs = (int)options.TransactionTimeout.TotalMilliseconds;
        config.EnableIdempotence = true;
        config.Acks = Acks.All;
        config.LingerMs = 5;
        // Snapshots are windows of floats and repeated names: they compress several-fold.
        config.CompressionType = CompressionType.Lz4;
        _producer = new ProducerBuilder<string, byte[]?>(config)
            .SetLogHandler(KafkaClientLog.Handler<IProducer<string, byte[]?>>(logger))
            .SetErrorHandler(KafkaClientLog.ErrorHandler<IProducer<string, byte[]?>>(logger, "state producer"))
            .Build();
        var direct = new ProducerConfig();
        foreach ((string key, string value) in options.Properties)
        {
            direct.Set(key, value);
        }

        direct.BootstrapServers = options.BootstrapServers;
        direct.ClientId = "monitor-service-state-direct";
        direct.EnableIdempotence = true;
        direct.Acks = Acks.All;
        direct.LingerMs = 0;
        _tombstoneFailed = KafkaClientLog.ErrorHandler<IProducer<string, byte[]?>>(logger, "state tombstone producer");
        _direct = new ProducerBuilder<string, byte[]?>(direct)
            .SetLogHandler(KafkaClientLog.Handler<IProducer<string, byte[]?>>(logger))
            .SetErrorHandler(_tombstoneFailed)
            .Build();
    }

    /// <summary>The changelog topic.</summary>
    public string Topic => _options.Topic;

    /// <summary>The changelog topic's partition count (known after <see cref="Start"/>).</summary>
    public int Partitions => _partitions;

    /// <summary>
    /// Creates the changelog topic if it is missing (compacted, with as many partitions as
    /// <paramref name="stepsTopic"/> when that exists), registers the transactional id (aborting a predecessor's open
    /// transaction) and begins the first transaction.
    /// </summary>
    /// <param name="stepsTopic">The topic of step records the changelog is co-partitioned with.</param>
    /// <exception cref="InvalidOperationException">The changelog topic has fewer partitions than the steps topic.</exception>
    public void Start(string stepsTopic)
    {
        int? partitions;
        using (IAdminClient admin = new DependentAdminClientBuilder(_producer.Handle).Build())
        {
            partitions = PartitionsOf(admin.GetMetadata(stepsTopic, TimeSpan.FromSeconds(10)), stepsTopic);
            EnsureTopic(admin, partitions);
        }

        if (partitions is { } steps && _partitions < steps)
        {
            throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                $"the state topic '{Topic}' has {_partitions} partitions, fewer than the {steps} of the steps topic; it must have at least as many (the state of step partition p lives in its partition p): recreate it with {steps} partitions and cleanup.policy=compact"));
        }

        _producer.InitTransactions(_options.OperationTimeout);
        _producer.BeginTransaction();
    }

    /// <summary>Writes a key's snapshot (null: a tombstone, the key is forgotten) in the current transaction.</summary>
    /// <exception cref="InvalidOperationException">The partition does not exist in the changelog topic.</exception>
    public void PutSnapshot(int partition, string key, byte[]? snapshot)
    {
        if (partition >= _partitions)
        {
            throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                $"the state topic '{Topic}' has {_partitions} partitions, but step partition {partition} needs its own: give it at least as many partitions as the steps topic"));
        }

        _producer.Produce(new TopicPartition(Topic, partition), new Message<string, byte[]?> { Key = key, Value = snapshot });
    }

    /// <summary>
    /// Writes a tombstone for <paramref name="key"/> now, outside the transactions (no linger): for an entry whose
    /// removal must not wait for the next commit, such as a notification outbox entry once the webhooks have answered.
    /// Only for keys whose entry an earlier transaction committed. Thread-safe; a delivery that fails later is logged.
    /// </summary>
    /// <exception cref="KafkaException">The tombstone could not be queued (the producer's queue is full).</exception>
    public void DeleteNow(int partition, string key) =>
        _direct.Produce(new TopicPartition(Topic, partition), new Message<string, byte[]?> { Key = key, Value = null }, report =>
        {
            if (report.Error.IsError)
            {
                _tombstoneFailed(_direct, report.Error);
            }
        });

    /// <summary>Writes a message to another topic (the alerts topic) in the current transaction.</summary>
    public void Put(string topic, string key, byte[] value) =>
        _producer.Produce(topic, new Message<string, byte[]?> { Key = key, Value = value });

    /// <summary>
    /// Adds the consumed offsets (next offset per partition of <paramref name="offsetsTopic"/>) to the transaction and
    /// commits it, then begins the next one.
    /// </summary>
    /// <exception cref="KafkaTxnRequiresAbortException">The transaction failed and must be aborted (<see cref="Abort"/>).</exception>
    /// <exception cref="KafkaRetriableException">The commit timed out; it may be retried.</exception>
    public void Commit(string offsetsTopic, IReadOnlyDictionary<int, long> nextOffsets, IConsumerGroupMetadata group)
    {
        ArgumentNullException.ThrowIfNull(nextOffsets);
        if (nextOffsets.Count > 0)
        {
            _producer.SendOffsetsToTransaction(
                [.. nextOffsets.Select(o => new TopicPartitionOffset(offsetsTopic, o.Key, new Offset(o.Value)))], group, _options.OperationTimeout);
        }

        _producer.CommitTransaction(_options.OperationTimeout);
        _producer.BeginTransaction();
    }

    /// <summary>Aborts the current transaction (its snapshots, messages and offsets are discarded) and begins the next.</summary>
    public void Abort()
    {
        _producer.AbortTransaction(_options.OperationTimeout);
        _producer.BeginTransaction();
    }

    /// <summary>
    /// Reads the committed snapshots of the given changelog partitions to their end: the latest value per key,
    /// tombstoned keys left out.
    /// </summary>
    /// <exception cref="TimeoutException">A partition did not reach its end within the operation timeout.</exception>
    public IReadOnlyList<(int Partition, string Key, byte[] Snapshot)> Restore(IReadOnlyList<int> partitions)
    {
        ArgumentNullException.ThrowIfNull(partitions);
        var latest = new Dictionary<(int Partition, string Key), byte[]?>();
        ReadToEnd(partitions, IsolationLevel.ReadCommitted, (partition, key, value) => latest[(partition, key)] = value);
        return [.. latest.Where(e => e.Value is not null).Select(e => (e.Key.Partition, e.Key.Key, e.Value!))];
    }

    /// <summary>
    /// The keys of the given partitions that have a tombstone anywhere up to the high watermark, read uncommitted: also
    /// those behind an open transaction (a dead replica's, until it is aborted), which <see cref="Restore"/> cannot see
    /// yet. For keys whose tombstone means "done" whatever becomes of the transaction around it, such as those
    /// <see cref="DeleteNow"/> writes.
    /// </summary>
    /// <exception cref="TimeoutException">A partition did not reach its end within the operation timeout.</exception>
    public IReadOnlySet<string> TombstonedKeys(IReadOnlyList<int> partitions)
    {
        ArgumentNullException.ThrowIfNull(partitions);
        var keys = new HashSet<string>(StringComparer.Ordinal);
        ReadToEnd(partitions, IsolationLevel.ReadUncommitted, (_, key, value) =>
        {
            if (value is null)
            {
                keys.Add(key);
            }
        });
        return keys;
    }

    private void ReadToEnd(IReadOnlyList<int> partitions, IsolationLevel isolation, Action<int, string, byte[]?> read)
    {
        if (partitions.Count == 0)
        {
            return;
        }

        var config = new ConsumerConfig();
        foreach ((string key, string value) in _options.Properties)
        {
            config.Set(key, value);
        }

        config.BootstrapServers = _options.BootstrapServers;
        config.GroupId = "monitor-state-restore";
        config.ClientId = "monitor-service-restore";
        config.EnableAutoCommit = false;
        config.IsolationLevel = isolation;
        config.EnablePartitionEof = true;
        config.AutoOffsetReset = AutoOffsetReset.Earliest;
        using IConsumer<string?, byte[]?> consumer = new ConsumerBuilder<string?, byte[]?>(config)
            .SetLogHandler(KafkaClientLog.Handler<IConsumer<string?, byte[]?>>(_logger))
            .SetErrorHandler(KafkaClientLog.ErrorHandler<IConsumer<string?, byte[]?>>(_logger, "state restore consumer"))
            .Build();
        var open = new HashSet<int>();
        var assignment = new List<TopicPartitionOffset>();
        foreach (int partition in partitions)
        {
            WatermarkOffsets marks = consumer.QueryWatermarkOffsets(new TopicPartition(Topic, partition), _options.OperationTimeout);
            if (marks.High.Value > marks.Low.Value)
            {
                open.Add(partition);
                assignment.Add(new TopicPartitionOffset(Topic, partition, Offset.Beginning));
            }
        }

        consumer.Assign(assignment);
        long deadline = Environment.TickCount64 + (long)_options.OperationTimeout.TotalMilliseconds;
        while (open.Count > 0)
        {
            if (Environment.TickCount64 > deadline)
            {
                throw new TimeoutException(string.Create(CultureInfo.InvariantCulture,
                    $"restoring partitions {string.Join(", ", open)} of the state topic '{Topic}' did not reach their end within {_options.OperationTimeout.TotalSeconds:0} s"));
            }

            ConsumeResult<string?, byte[]?>? result = consumer.Consume(TimeSpan.FromMilliseconds(200));
            if (result is null)
            {
                continue;
            }

            if (result.IsPartitionEOF)
            {
                open.Remove(result.Partition.Value);
                continue;
            }

            if (result.Message.Key is { } key)
            {
                read(result.Partition.Value, key, result.Message.Value);
            }
        }

        consumer.Close();
    }

    /// <summary>Releases the producer; an open transaction is left to the brokers (aborted at its timeout, or at once by
    /// the next producer with the same transactional id).</summary>
    public void Dispose()
    {
        // Queued tombstones get a moment to reach the brokers; what does not is sent again by the next owner.
        _direct.Flush(TimeSpan.FromSeconds(5));
        _direct.Dispose();
        _producer.Dispose();
    }

    private void EnsureTopic(IAdminClient admin, int? partitions)
    {
        TimeSpan timeout = TimeSpan.FromSeconds(10);
        if (PartitionsOf(admin.GetMetadata(Topic, timeout), Topic) is not { } existing)
        {
            try
            {
                admin.CreateTopicsAsync(
                    [new TopicSpecification { Name = Topic, NumPartitions = partitions ?? -1, ReplicationFactor = -1, Configs = new() { ["cleanup.policy"] = "compact" } }],
                    new CreateTopicsOptions { RequestTimeout = timeout, OperationTimeout = timeout }).GetAwaiter().GetResult();
            }
            catch (CreateTopicsException ex) when (ex.Results.All(r => r.Error.Code == ErrorCode.TopicAlreadyExists))
            {
                // Another replica created it meanwhile.
            }
            catch (KafkaException ex)
            {
                // Brokers that auto-create topics (and librdkafka's mock cluster, which cannot CreateTopics) create it
                // on the metadata request below, without compaction: say so.
                _logger?.LogWarning("Could not create the state topic '{Topic}' ({Reason}); relying on the brokers' auto-creation: give it cleanup.policy=compact", Topic, ex.Error.Reason);
            }

            existing = PartitionsOf(admin.GetMetadata(Topic, timeout), Topic)
                ?? throw new InvalidOperationException($"the state topic '{Topic}' does not exist and could not be created");
        }

        _partitions = existing;
    }

    private static int? PartitionsOf(Metadata metadata, string topic) =>
        metadata.Topics.Find(t => t.Topic == topic) is { Error.Code: ErrorCode.NoError, Partitions.Count: > 0 } found ? found.Partitions.Count : null;
}
