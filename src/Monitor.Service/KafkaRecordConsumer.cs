using Confluent.Kafka;
using Microsoft.Extensions.Logging;
using Monitor.Contracts.Transport;

namespace Monitor.Service;

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

    /// <summary>Extra librdkafka properties, applied last.</summary>
    public IReadOnlyDictionary<string, string> Properties { get; init; } = new Dictionary<string, string>();
}

/// <summary>
/// <see cref="IRecordConsumer"/> over a Confluent.Kafka consumer group. At-least-once: only offsets of records passed
/// to <see cref="MarkProcessed"/> are stored, and librdkafka commits stored offsets every
/// <see cref="KafkaConsumerOptions.CommitIntervalMs"/>, on rebalance and on <see cref="Dispose"/>.
/// </summary>
/// <remarks>Not thread-safe (one consuming thread), like the underlying consumer.</remarks>
public sealed class KafkaRecordConsumer : IRecordConsumer
{
    private readonly IConsumer<string?, byte[]> _consumer;
    private readonly ILogger? _logger;
    private readonly string _groupId;

    /// <summary>Creates the consumer and subscribes.</summary>
    public KafkaRecordConsumer(KafkaConsumerOptions options, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _logger = logger;
        _groupId = options.GroupId;
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
        foreach ((string key, string value) in options.Properties)
        {
            config.Set(key, value);
        }

        _consumer = new ConsumerBuilder<string?, byte[]>(config)
            .SetErrorHandler((_, error) => Log(error.IsFatal ? LogLevel.Error : LogLevel.Warning, $"Kafka consumer: {error.Code}: {error.Reason}"))
            .Build();
        _consumer.Subscribe(options.Topic);
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
        }
    }

    private void Log(LogLevel level, string message)
    {
#pragma warning disable CA1848, CA2254 // Rare path; the message is data.
        _logger?.Log(level, message);
#pragma warning restore CA1848, CA2254
    }
}
