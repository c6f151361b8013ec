using Confluent.Kafka;
using Monitor.Contracts.Transport;

namespace Monitor.Tracing;

/// <summary>Options of <see cref="KafkaRecordProducer"/>.</summary>
public sealed class KafkaProducerOptions
{
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

    /// <summary>How long librdkafka keeps retrying a record before reporting it failed. Default 30 s.</summary>
    public int MessageTimeoutMs { get; init; } = 30_000;

    /// <summary>Extra librdkafka properties, applied last (e.g. security settings).</summary>
    public IReadOnlyDictionary<string, string> Properties { get; init; } = new Dictionary<string, string>();
}

/// <summary>
/// <see cref="IRecordProducer"/> over Confluent.Kafka: idempotent (<c>enable.idempotence</c>, <c>acks=all</c>), so
/// retries neither duplicate nor reorder a rank's records within its partition.
/// </summary>
/// <remarks>Thread-safe. Delivery reports run on librdkafka's delivery thread.</remarks>
public sealed class KafkaRecordProducer : IRecordProducer
{
    private readonly IProducer<string, byte[]> _producer;

    /// <summary>Creates the producer (no connection is made until the first record).</summary>
    public KafkaRecordProducer(KafkaProducerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrWhiteSpace(options.BootstrapServers))
        {
            throw new ArgumentException("BootstrapServers is empty", nameof(options));
        }

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
        };
        foreach ((string key, string value) in options.Properties)
        {
            config.Set(key, value);
        }

        _producer = new ProducerBuilder<string, byte[]>(config).Build();
    }

    /// <inheritdoc />
    public void Produce(string topic, string key, byte[] value, IReadOnlyList<KeyValuePair<string, byte[]>>? headers, Action<DeliveryReport> onDelivery)
    {
        var message = new Message<string, byte[]> { Key = key, Value = value };
        if (headers is { Count: > 0 })
        {
            message.Headers = [];
            foreach ((string name, byte[] headerValue) in headers)
            {
                message.Headers.Add(name, headerValue);
            }
        }

        try
        {
            _producer.Produce(topic, message, report => onDelivery(report.Error.IsError
                ? new DeliveryReport(false, $"{report.Error.Code}: {report.Error.Reason}") { ErrorType = report.Error.Code.ToString() }
                : new DeliveryReport(true, null) { Partition = report.Partition.Value, Offset = report.Offset.Value }));
        }
        catch (ProduceException<string, byte[]> ex)
        {
            // Refused before queueing (local queue full, record too large): reported like a failed delivery.
            onDelivery(new DeliveryReport(false, $"{ex.Error.Code}: {ex.Error.Reason}") { ErrorType = ex.Error.Code.ToString() });
        }
        catch (KafkaException ex)
        {
            onDelivery(new DeliveryReport(false, $"{ex.Error.Code}: {ex.Error.Reason}") { ErrorType = ex.Error.Code.ToString() });
        }
    }

    /// <inheritdoc />
    public int Flush(TimeSpan timeout) => _producer.Flush(timeout);

    /// <inheritdoc />
    public void Dispose()
    {
        try
        {
            _producer.Flush(TimeSpan.FromSeconds(5));
        }
        finally
        {
            _producer.Dispose();
        }
    }
}
