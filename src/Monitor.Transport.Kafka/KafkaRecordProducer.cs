using Confluent.Kafka;
using Microsoft.Extensions.Logging;
using Monitor.Contracts.Transport;

namespace Monitor.Transport.Kafka;

/// <summary>Options of <see cref="KafkaRecordProducer"/>.</summary>
public sealed class KafkaProducerOptions
{
    /// <summary>Default <see cref="MaxQueuedBytes"/>: 64 MiB.</summary>
    public const long DefaultMaxQueuedBytes = 64L * 1024 * 1024;

    /// <summary>Kafka bootstrap servers, <c>host:port[,host:port]</c>. Required.</summary>
    public required string BootstrapServers { get; init; }

    /// <summary>Client id reported to the brokers. Default <c>monitor-tracer</c>.</summary>
    public string ClientId { get; init; } = "monitor-tracer";

    /// <summary>
    /// Batch compression. Default <see cref="CompressionType.Zstd"/>: step records of one run repeat tensor names and
    /// histogram edges, which compress several-fold.
    /// </summary>
    public CompressionType Compression { get; init; } = CompressionType.Zstd;

    /// <summary>How long librdkafka waits to fill a batch. Default 5 ms.</summary>
    public int LingerMs { get; init; } = 5;

    /// <summary>
    /// Largest record accepted by the producer, in bytes. Default 1,000,000 (Kafka's broker default). A larger record
    /// fails its delivery (counted and reported), it is never truncated.
    /// </summary>
    public int MessageMaxBytes { get; init; } = 1_000_000;

    /// <summary>
    /// Byte bound of librdkafka's own send queue (<c>queue.buffering.max.kbytes</c>: records handed over and not yet
    /// acknowledged, payloads and keys). Default <see cref="DefaultMaxQueuedBytes"/> (64 MiB; librdkafka's own
    /// default is 1 GiB). While brokers are unreachable records wait here; once the bound is reached each further
    /// record is refused at once (never waited for) and counted in
    /// <see cref="KafkaProducerStatistics.RefusedQueueFull"/>. At least <see cref="MessageMaxBytes"/>, rounded up to
    /// whole KiB.
    /// </summary>
    public long MaxQueuedBytes { get; init; } = DefaultMaxQueuedBytes;

    /// <summary>
    /// How long librdkafka keeps a record and retries it before reporting it failed
    /// (<c>message.timeout.ms</c>, also the idempotent producer's delivery timeout). Default 600,000 (10 minutes), so
    /// a broker outage of up to that long loses nothing that fits in <see cref="MaxQueuedBytes"/>. Records still
    /// unacknowledged after it are counted in <see cref="KafkaProducerStatistics.DeliveryFailed"/>.
    /// </summary>
    public int MessageTimeoutMs { get; init; } = 600_000;

    /// <summary>Extra librdkafka properties, applied last (e.g. security settings).</summary>
    public IReadOnlyDictionary<string, string> Properties { get; init; } = new Dictionary<string, string>();

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid option.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(BootstrapServers))
        {
            throw new ArgumentException($"{nameof(BootstrapServers)} is empty");
        }

        if (MessageMaxBytes < 1_000)
        {
            throw new ArgumentException($"{nameof(MessageMaxBytes)} is {MessageMaxBytes}; it must be at least 1,000");
        }

        if (MaxQueuedBytes < MessageMaxBytes || MaxQueuedBytes > int.MaxValue * 1024L)
        {
            throw new ArgumentException($"{nameof(MaxQueuedBytes)} is {MaxQueuedBytes}; it must be between {nameof(MessageMaxBytes)} ({MessageMaxBytes}) and 2 TiB");
        }

        if (MessageTimeoutMs < 1 || LingerMs < 0)
        {
            throw new ArgumentException($"{nameof(MessageTimeoutMs)} must be positive and {nameof(LingerMs)} must not be negative");
        }
    }
}

/// <summary>A snapshot of a <see cref="KafkaRecordProducer"/>'s counters. Every record handed to
/// <see cref="KafkaRecordProducer.Produce"/> is in exactly one of <see cref="Delivered"/>, <see cref="RefusedQueueFull"/>,
/// <see cref="RefusedOther"/>, <see cref="DeliveryFailed"/>, or <see cref="InFlight"/>.</summary>
/// <param name="Delivered">Records the brokers acknowledged.</param>
/// <param name="RefusedQueueFull">Records refused at once because librdkafka's queue was at
/// <see cref="KafkaProducerOptions.MaxQueuedBytes"/> (or its message-count bound): lost, counted.</param>
/// <param name="RefusedOther">Records refused at once for another reason (larger than
/// <see cref="KafkaProducerOptions.MessageMaxBytes"/>, unknown topic, the producer closed): lost, counted.</param>
/// <param name="DeliveryFailed">Records queued, then reported failed (not acknowledged within
/// <see cref="KafkaProducerOptions.MessageTimeoutMs"/>, refused by the broker): lost, counted.</param>
/// <param name="InFlight">Records in librdkafka's queue now, waiting for an acknowledgement.</param>
/// <param name="InFlightBytes">Bytes of the values and keys of <paramref name="InFlight"/>.</param>
public sealed record KafkaProducerStatistics(long Delivered, long RefusedQueueFull, long RefusedOther, long DeliveryFailed, long InFlight, long InFlightBytes)
{
    /// <summary>Records lost: refused plus failed.</summary>
    public long Lost => RefusedQueueFull + RefusedOther + DeliveryFailed;
}

/// <summary>
/// <see cref="IRecordProducer"/> over Confluent.Kafka: idempotent (<c>enable.idempotence</c>, <c>acks=all</c>), so
/// retries neither duplicate nor reorder a rank's records within its partition. librdkafka's queue is bounded in
/// bytes (<see cref="KafkaProducerOptions.MaxQueuedBytes"/>) and <see cref="Produce"/> never waits for room: a record
/// that does not fit is refused and counted (<see cref="Statistics"/>, and the <c>monitor.kafka.producer.*</c>
/// instruments of the <c>Monitor.Tracing</c> meter).
/// </summary>
/// <remarks>Thread-safe. Delivery reports run on librdkafka's delivery thread. librdkafka's log lines and client
/// errors go to the logger given to the constructor, never to stderr.</remarks>
public sealed class KafkaRecordProducer : IRecordProducer
{
    private readonly IProducer<string, byte[]> _producer;
    private long _delivered, _refusedQueueFull, _refusedOther, _deliveryFailed, _inFlight, _inFlightBytes;

    /// <summary>Creates the producer (no connection is made until the first record); librdkafka's log lines and client
    /// errors are discarded (never written to stderr).</summary>
    /// <param name="options">Validated here.</param>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    public KafkaRecordProducer(KafkaProducerOptions options)
        : this(options, static (_, _) => { }, static (_, _) => { })
    {
    }

    /// <summary>Creates the producer (no connection is made until the first record).</summary>
    /// <param name="options">Validated here.</param>
    /// <param name="logger">Where librdkafka's log lines (levels mapped by <see cref="KafkaClientLog.LevelOf"/>) and
    /// client errors go; null discards them.</param>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    public KafkaRecordProducer(KafkaProducerOptions options, ILogger? logger)
        : this(options, KafkaClientLog.Handler<IProducer<string, byte[]>>(logger),
            KafkaClientLog.ErrorHandler<IProducer<string, byte[]>>(logger, "producer " + options?.ClientId))
    {
    }

    // No ILogger in this signature or body: a process that never passes a logger (the sample job started from another
    // application's output folder) must not need Microsoft.Extensions.Logging.Abstractions to be loadable.
    private KafkaRecordProducer(KafkaProducerOptions options, Action<IProducer<string, byte[]>, LogMessage> log, Action<IProducer<string, byte[]>, Error> errors)
    {
        ArgumentNullException.ThrowIfNull(options);
        try
        {
            options.Validate();
        }
        catch (ArgumentException ex)
        {
            throw new ArgumentException(ex.Message, nameof(options), ex);
        }

        ClientId = options.ClientId;
        var config = new ProducerConfig
        {
            BootstrapServers = options.BootstrapServers,
            ClientId = options.ClientId,
            EnableIdempotence = true,
            Acks = Acks.All,
            CompressionType = options.Compression,
            LingerMs = options.LingerMs,
            MessageMaxBytes = options.MessageMaxBytes,
            MessageTimeoutMs = options.MessageTimeoutMs,
            QueueBufferingMaxKbytes = (int)((options.MaxQueuedBytes + 1023) / 1024),
        };
        foreach ((string key, string value) in options.Properties)
        {
            config.Set(key, value);
        }

        _producer = new ProducerBuilder<string, byte[]>(config)
            .SetLogHandler(log)
            .SetErrorHandler(errors)
            .Build();
        KafkaProducerMetrics.Register(this);
    }

    /// <summary>The client id (the <c>client.id</c> tag of the producer's instruments).</summary>
    public string ClientId { get; }

    /// <summary>A snapshot of the counters; may be read from any thread.</summary>
    public KafkaProducerStatistics Statistics => new(
        Interlocked.Read(ref _delivered), Interlocked.Read(ref _refusedQueueFull), Interlocked.Read(ref _refusedOther),
        Interlocked.Read(ref _deliveryFailed), Interlocked.Read(ref _inFlight), Interlocked.Read(ref _inFlightBytes));

    /// <inheritdoc />
    /// <remarks>Never blocks: a record librdkafka's queue has no room for is refused at once, reported through
    /// <paramref name="onDelivery"/> (synchronously) with <see cref="DeliveryReport.ErrorType"/> <c>Local_QueueFull</c>.</remarks>
    public void Produce(string topic, string key, byte[] value, IReadOnlyList<KeyValuePair<string, byte[]>>? headers, Action<DeliveryReport> onDelivery)
    {
        ArgumentNullException.ThrowIfNull(value);
        ArgumentNullException.ThrowIfNull(onDelivery);
        var message = new Message<string, byte[]> { Key = key, Value = value };
        if (headers is { Count: > 0 })
        {
            message.Headers = [];
            foreach ((string name, byte[] headerValue) in headers)
            {
                message.Headers.Add(name, headerValue);
            }
        }

        long bytes = value.LongLength + (key?.Length ?? 0);
        Interlocked.Increment(ref _inFlight);
        Interlocked.Add(ref _inFlightBytes, bytes);
        try
        {
            _producer.Produce(topic, message, report =>
            {
                Interlocked.Decrement(ref _inFlight);
                Interlocked.Add(ref _inFlightBytes, -bytes);
                if (report.Error.IsError)
                {
                    Interlocked.Increment(ref _deliveryFailed);
                    onDelivery(new DeliveryReport(false, $"{report.Error.Code}: {report.Error.Reason}") { ErrorType = report.Error.Code.ToString() });
                }
                else
                {
                    Interlocked.Increment(ref _delivered);
                    onDelivery(new DeliveryReport(true, null) { Partition = report.Partition.Value, Offset = report.Offset.Value });
                }
            });
        }
        catch (ProduceException<string, byte[]> ex)
        {
            // Refused before queueing (local queue full, record too large): reported like a failed delivery.
            Refused(ex.Error, bytes, onDelivery);
        }
        catch (KafkaException ex)
        {
            Refused(ex.Error, bytes, onDelivery);
        }
    }

    /// <inheritdoc />
    public int Flush(TimeSpan timeout) => _producer.Flush(timeout);

    /// <inheritdoc />
    public void Dispose()
    {
        KafkaProducerMetrics.Unregister(this);
        try
        {
            _producer.Flush(TimeSpan.FromSeconds(5));
        }
        finally
        {
            _producer.Dispose();
        }
    }

    private void Refused(Error error, long bytes, Action<DeliveryReport> onDelivery)
    {
        Interlocked.Decrement(ref _inFlight);
        Interlocked.Add(ref _inFlightBytes, -bytes);
        if (error.Code == ErrorCode.Local_QueueFull)
        {
            Interlocked.Increment(ref _refusedQueueFull);
        }
        else
        {
            Interlocked.Increment(ref _refusedOther);
        }

        onDelivery(new DeliveryReport(false, $"{error.Code}: {error.Reason}") { ErrorType = error.Code.ToString() });
    }
}
