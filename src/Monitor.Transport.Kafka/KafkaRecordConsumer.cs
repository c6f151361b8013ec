using System.Globalization;
using Confluent.Kafka;
using Microsoft.Extensions.Logging;
using Monitor.Contracts.Transport;

namespace Monitor.Transport.Kafka;

/// <summary>Options of <see cref="KafkaRecordConsumer"/>.</summary>
public sealed class KafkaConsumerOptions
{
    /// <summary>Kafka bootstrap servers. Required.</summary>
    public required string BootstrapServers { get; init; }

    /// <summary>Consumer group; replicas with the same group share the partitions. Default <c>monitor-service</c>.</summary>
    public string GroupId { get; init; } = "monitor-service";

    /// <summary>Topic to subscribe to.</summary>
    public required string Topic { get; init; }

    /// <summary>Where a new group starts. Default earliest (no step record is skipped).</summary>
    public AutoOffsetReset AutoOffsetReset { get; init; } = AutoOffsetReset.Earliest;

    /// <summary>How often processed offsets are committed. Default 1,000 ms.</summary>
    public int CommitIntervalMs { get; init; } = 1_000;

    /// <summary>
    /// How often the brokers are asked for the topic's metadata, off the consuming thread, to know they answer (see
    /// <see cref="KafkaRecordConsumer.IsReady"/>). Default 2 s.
    /// </summary>
    public TimeSpan BrokerProbeInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>How long one broker probe may wait for an answer. Default 5 s.</summary>
    public TimeSpan BrokerProbeTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Exactly-once mode, for a host that commits offsets in Kafka transactions (<see cref="ITransactionalConsumer"/>):
    /// <c>isolation.level=read_committed</c>, <c>partition.assignment.strategy=cooperative-sticky</c>, no automatic
    /// commits (<see cref="IRecordConsumer.MarkProcessed"/> and <see cref="IRecordConsumer.Commit"/> are then not used).
    /// Default false: at-least-once with automatic commits of processed offsets.
    /// </summary>
    public bool ExactlyOnce { get; init; }

    /// <summary>Extra librdkafka properties, applied last.</summary>
    public IReadOnlyDictionary<string, string> Properties { get; init; } = new Dictionary<string, string>();
}

/// <summary>
/// <see cref="IRecordConsumer"/> over a Confluent.Kafka consumer group. At-least-once: only offsets of records passed
/// to <see cref="MarkProcessed"/> are stored, and librdkafka commits stored offsets every
/// <see cref="KafkaConsumerOptions.CommitIntervalMs"/>, on rebalance and on <see cref="Dispose"/>.
/// </summary>
/// <remarks>
/// <para>Not thread-safe (one consuming thread), like the underlying consumer; <see cref="IsReady"/> may be called from
/// any thread.</para>
/// <para>librdkafka's log lines and client errors go to the logger given to the constructor (never to stderr).</para>
/// </remarks>
public sealed class KafkaRecordConsumer : IRecordConsumer, IConsumerReadiness, IPositionedConsumer, ITransactionalConsumer
{
    private readonly IConsumer<string?, byte[]> _consumer;
    private readonly IAdminClient _probeClient;
    private readonly ILogger? _logger;
    private readonly string _groupId;
    private readonly string _topic;
    private readonly string _bootstrapServers;
    private readonly TimeSpan _probeInterval;
    private readonly TimeSpan _probeTimeout;
    private readonly CancellationTokenSource _closing = new();
    private int _disposed;
    private readonly Task _probe;
    private readonly Lock _assignmentLock = new();
    private readonly HashSet<TopicPartition> _assignment = [];
    private bool _assigned;
    private IReadOnlyDictionary<(string Topic, int Partition), long> _startOffsets = new Dictionary<(string Topic, int Partition), long>();
    // Environment.TickCount64 of the last broker answer (long.MinValue: none yet), and why the last probe failed.
    private long _brokerAnsweredAt = long.MinValue;
    private volatile string? _brokerProblem = "no broker has answered yet";
    // The last probe found no such topic: there is nothing to assign until a worker creates it.
    private volatile bool _topicMissing;

    /// <summary>Creates the consumer and subscribes; starts probing the brokers.</summary>
    /// <param name="options">The consumer's options.</param>
    /// <param name="logger">Where librdkafka's log lines (levels mapped by <see cref="KafkaClientLog.LevelOf"/>),
    /// client errors and consume errors go; default none: discarded.</param>
    public KafkaRecordConsumer(KafkaConsumerOptions options, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.BrokerProbeInterval <= TimeSpan.Zero || options.BrokerProbeTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException("the broker probe interval and timeout must be positive", nameof(options));
        }

        _logger = logger;
        _groupId = options.GroupId;
        _topic = options.Topic;
        _bootstrapServers = options.BootstrapServers;
        _probeInterval = options.BrokerProbeInterval;
        _probeTimeout = options.BrokerProbeTimeout;
        var config = new ConsumerConfig
        {
            BootstrapServers = options.BootstrapServers,
            GroupId = options.GroupId,
            ClientId = "monitor-service",
            AutoOffsetReset = options.AutoOffsetReset,
            EnableAutoCommit = true,
            AutoCommitIntervalMs = options.CommitIntervalMs,
            // Offsets are stored by MarkProcessed only, after the record went through analysis (or the DLQ).
            EnableAutoOffsetStore = false,
            EnablePartitionEof = false,
        };
        if (options.ExactlyOnce)
        {
            config.IsolationLevel = IsolationLevel.ReadCommitted;
            config.PartitionAssignmentStrategy = PartitionAssignmentStrategy.CooperativeSticky;
            config.EnableAutoCommit = false;
        }

        foreach ((string key, string value) in options.Properties)
        {
            config.Set(key, value);
        }

        _consumer = new ConsumerBuilder<string?, byte[]>(config)
            .SetLogHandler(KafkaClientLog.Handler<IConsumer<string?, byte[]>>(logger))
            .SetErrorHandler(KafkaClientLog.ErrorHandler<IConsumer<string?, byte[]>>(logger, "consumer"))
            .SetPartitionsAssignedHandler((_, partitions) => Assigned(partitions))
            .SetPartitionsRevokedHandler((_, partitions) => Revoked(partitions.Select(p => p.TopicPartition), lost: false))
            .SetPartitionsLostHandler((_, partitions) => Revoked(partitions.Select(p => p.TopicPartition), lost: true))
            .Build();
        // Shares the consumer's connections; metadata requests are thread-safe in librdkafka.
        _probeClient = new DependentAdminClientBuilder(_consumer.Handle).Build();
        _consumer.Subscribe(options.Topic);
        _probe = Task.Run(ProbeBrokersAsync);
    }

    /// <summary>
    /// Ready when the brokers answered the last metadata probe (every <see cref="KafkaConsumerOptions.BrokerProbeInterval"/>)
    /// and the group has given this member its assignment (after the last rebalance; an empty one counts, so a replica
    /// beyond the partition count is still ready to serve its HTTP API), or the probe found that the topic does not
    /// exist yet (it appears with the first worker's record, and there is nothing to assign until then). Thread-safe,
    /// no network call.
    /// </summary>
    public bool IsReady(out string detail)
    {
        string? problem = _brokerProblem;
        long answeredAt = Interlocked.Read(ref _brokerAnsweredAt);
        // A probe thread that stopped answering (it cannot hang longer than its timeout) also means not ready.
        long stale = (long)(_probeInterval + _probeTimeout + _probeTimeout).TotalMilliseconds;
        if (problem is null && answeredAt != long.MinValue && Environment.TickCount64 - answeredAt > stale)
        {
            problem = $"no broker answer for {(Environment.TickCount64 - answeredAt) / 1000.0:F0} s";
        }

        if (problem is not null)
        {
            detail = $"Kafka brokers {_bootstrapServers} do not answer: {problem}";
            return false;
        }

        lock (_assignmentLock)
        {
            if (!_assigned && _topicMissing)
            {
                detail = $"topic '{_topic}' does not exist yet (nothing to assign); brokers answer";
                return true;
            }

            if (!_assigned)
            {
                detail = $"consumer group '{_groupId}' has not assigned partitions of '{_topic}' to this member yet";
                return false;
            }

            detail = string.Create(CultureInfo.InvariantCulture, $"{_assignment.Count} partition(s) of '{_topic}' assigned by group '{_groupId}'; brokers answer");
            return true;
        }
    }

    /// <inheritdoc />
    public TransportMessage? Consume(TimeSpan maxWait, CancellationToken cancellationToken)
    {
        long deadline = Environment.TickCount64 + (long)maxWait.TotalMilliseconds;
        while (!cancellationToken.IsCancellationRequested)
        {
            long left = deadline - Environment.TickCount64;
            if (left < 0)
            {
                return null;
            }

            ConsumeResult<string?, byte[]>? result;
            try
            {
                // librdkafka's consume takes a timeout, not a token: wait in slices so cancellation is seen promptly.
                result = _consumer.Consume(TimeSpan.FromMilliseconds(Math.Min(left, 100)));
            }
            catch (ConsumeException ex)
            {
                // A broken key or value cannot be deserialised as bytes/string; anything else is transient here.
                Log(LogLevel.Warning, $"Kafka consume error at {ex.ConsumerRecord?.TopicPartitionOffset}: {ex.Error.Reason}");
                continue;
            }

            if (result?.Message is not { } message)
            {
                continue;
            }

            var headers = new List<KeyValuePair<string, byte[]>>(message.Headers?.Count ?? 0);
            if (message.Headers is not null)
            {
                foreach (IHeader header in message.Headers)
                {
                    // Kafka allows a header without a value; readers of TransportMessage expect bytes.
                    headers.Add(new(header.Key, header.GetValueBytes() ?? []));
                }
            }

            return new TransportMessage
            {
                Topic = result.Topic,
                Partition = result.Partition.Value,
                Offset = result.Offset.Value,
                Key = message.Key,
                Value = message.Value ?? [],
                Headers = headers,
                Timestamp = message.Timestamp.UtcDateTime,
                ConsumerGroup = _groupId,
            };
        }

        return null;
    }

    /// <inheritdoc />
    public void MarkProcessed(TransportMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        try
        {
            _consumer.StoreOffset(new TopicPartitionOffset(message.Topic, message.Partition, message.Offset + 1));
        }
        catch (KafkaException ex)
        {
            // The partition was revoked meanwhile; its new owner will see the record again (at-least-once).
            Log(LogLevel.Debug, $"Offset of {message.Topic}[{message.Partition}]@{message.Offset} not stored: {ex.Error.Reason}");
        }
    }

    /// <inheritdoc />
    public void Commit()
    {
        try
        {
            _consumer.Commit();
        }
        catch (KafkaException ex) when (ex.Error.Code == ErrorCode.Local_NoOffset)
        {
            // Nothing new to commit.
        }
        catch (KafkaException ex) when (ex.Error.Code is ErrorCode.RebalanceInProgress or ErrorCode.IllegalGeneration or ErrorCode.UnknownMemberId)
        {
            // The group is rebalancing: the offsets stay stored and go with the next commit if the partitions stay;
            // if they move, their next owner reads from the last commit (at least once, as after a crash).
            Log(LogLevel.Information, $"Kafka commit deferred while group '{_groupId}' rebalances: {ex.Error.Reason}");
        }
    }

    /// <inheritdoc />
    public IReadOnlyList<PartitionLag> GetLag()
    {
        var lags = new List<PartitionLag>();
        foreach (TopicPartition partition in _consumer.Assignment)
        {
            WatermarkOffsets watermarks = _consumer.GetWatermarkOffsets(partition);
            Offset position = _consumer.Position(partition);
            long lag = watermarks.High.IsSpecial || position.IsSpecial ? -1 : Math.Max(0, watermarks.High.Value - position.Value);
            lags.Add(new PartitionLag(partition.Topic, partition.Partition.Value, lag));
        }

        return lags;
    }

    /// <summary>Commits processed offsets, leaves the group and releases the client.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        _closing.Cancel();
        // The probe ends within one probe timeout; it uses the consumer's handle, so it must end first.
        _probe.Wait(_probeTimeout + _probeTimeout);
        _probeClient.Dispose();
        try
        {
            Commit();
            _consumer.Close();
        }
        catch (KafkaException ex)
        {
            Log(LogLevel.Warning, $"Kafka consumer close: {ex.Error.Reason}");
        }
        finally
        {
            _consumer.Dispose();
            _closing.Dispose();
        }
    }

    /// <inheritdoc />
    public string GroupId => _groupId;

    /// <inheritdoc />
    public IConsumerGroupMetadata GroupMetadata => _consumer.ConsumerGroupMetadata;

    /// <inheritdoc />
    public Action<IReadOnlyList<int>>? PartitionsAssigned { get; set; }

    /// <inheritdoc />
    public Action<IReadOnlyList<int>, bool>? PartitionsRevoked { get; set; }

    /// <inheritdoc />
    public void StartAt(IReadOnlyDictionary<(string Topic, int Partition), long> nextOffsets)
    {
        ArgumentNullException.ThrowIfNull(nextOffsets);
        _startOffsets = nextOffsets;
    }

    /// <summary>On the consuming thread (inside Consume): where each newly assigned partition starts.</summary>
    private List<TopicPartitionOffset> Assigned(List<TopicPartition> partitions)
    {
        lock (_assignmentLock)
        {
            _assignment.UnionWith(partitions);
            _assigned = true;
        }

        var starts = new List<TopicPartitionOffset>(partitions.Count);
        foreach (TopicPartition partition in partitions)
        {
            // Offset.Unset: the group's committed offset (or auto.offset.reset), as without a start offset.
            starts.Add(_startOffsets.TryGetValue((partition.Topic, partition.Partition.Value), out long next)
                ? new TopicPartitionOffset(partition, new Offset(next))
                : new TopicPartitionOffset(partition, Offset.Unset));
        }

        // Before the first record of the new partitions: the host restores their state here.
        PartitionsAssigned?.Invoke([.. partitions.Select(p => p.Partition.Value)]);
        return starts;
    }

    private void Revoked(IEnumerable<TopicPartition> partitions, bool lost)
    {
        List<TopicPartition> revoked = [.. partitions];
        // While this member still owns them: the host commits (unless lost) and lets go of their state.
        PartitionsRevoked?.Invoke([.. revoked.Select(p => p.Partition.Value)], lost);
        lock (_assignmentLock)
        {
            if (lost)
            {
                _assignment.Clear();
            }
            else
            {
                _assignment.ExceptWith(revoked);
            }

            // Eager rebalancing revokes everything and assigns afresh; until then this member owns nothing.
            _assigned = _assignment.Count > 0;
        }

        if (lost)
        {
            Log(LogLevel.Warning, $"Kafka consumer lost its partitions of '{_topic}' (session timed out or brokers unreachable); it rejoins group '{_groupId}'");
        }
    }

    private async Task ProbeBrokersAsync()
    {
        CancellationToken closing = _closing.Token;
        while (!closing.IsCancellationRequested)
        {
            try
            {
                // A metadata request for the one topic is a real round trip to a broker, and cheap on big clusters.
                Metadata metadata = _probeClient.GetMetadata(_topic, _probeTimeout);
                _topicMissing = metadata.Topics.Find(t => t.Topic == _topic) is not { } found
                    || found.Error.Code == ErrorCode.UnknownTopicOrPart || found.Partitions.Count == 0;
                Interlocked.Exchange(ref _brokerAnsweredAt, Environment.TickCount64);
                _brokerProblem = null;
            }
            catch (KafkaException ex)
            {
                _brokerProblem = $"{ex.Error.Code}: {ex.Error.Reason}";
            }
            catch (ObjectDisposedException)
            {
                return;
            }

            try
            {
                await Task.Delay(_probeInterval, closing).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private void Log(LogLevel level, string message)
    {
#pragma warning disable CA1848, CA2254 // Rare path; the message is data.
        _logger?.Log(level, message);
#pragma warning restore CA1848, CA2254
    }
}
