using Confluent.Kafka;
using Monitor.Contracts;
using Monitor.Contracts.V1;

namespace Monitor.Trials;

/// <summary>Where <see cref="Trial.Live"/> and <see cref="Trial.ReadKafkaAsync"/> read step records.</summary>
public sealed class KafkaTrialOptions
{
    /// <summary>Bootstrap servers, <c>host:port[,...]</c>. Required.</summary>
    public required string BootstrapServers { get; init; }

    /// <summary>Topic of step records. Default <see cref="MonitorTopics.Steps"/>.</summary>
    public string Topic { get; init; } = MonitorTopics.Steps;

    /// <summary>The run; required by <see cref="Trial.Live"/>; null for <see cref="Trial.ReadKafkaAsync"/>: every run.</summary>
    public string? Run { get; init; }

    /// <summary>librdkafka properties applied last (SASL, TLS, ...); default none.</summary>
    public IReadOnlyDictionary<string, string> Properties { get; init; } = new Dictionary<string, string>();

    /// <summary>How long listing the topic's partitions and their end offsets may take. Default 10 s.</summary>
    public TimeSpan MetadataTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Checks the options.</summary>
    /// <exception cref="ArgumentException">No bootstrap servers or topic, or a timeout that is not positive.</exception>
    public void Validate()
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(BootstrapServers, nameof(BootstrapServers));
        ArgumentException.ThrowIfNullOrWhiteSpace(Topic, nameof(Topic));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(MetadataTimeout, TimeSpan.Zero, nameof(MetadataTimeout));
    }
}

/// <summary>
/// Reads the steps topic for a trial: every partition assigned from the beginning (no group offsets read or
/// committed), records of the run handed to a callback on the reader's own thread, until disposed.
/// </summary>
internal sealed class KafkaTrialSource : IDisposable
{
    private readonly KafkaTrialOptions _options;
    private readonly Action<StepRecord> _add;
    private readonly Action _changed;
    private readonly CancellationTokenSource _stopping = new();
    private readonly TaskCompletionSource _caughtUp = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private IConsumer<byte[], byte[]>? _consumer;
    private Thread? _thread;
    private long _undecodable;
    private volatile string? _failure;
    private int _disposed;

    public KafkaTrialSource(KafkaTrialOptions options, Action<StepRecord> add, Action changed)
    {
        _options = options;
        _add = add;
        _changed = changed;
    }

    /// <summary>Completes once the records the topic held at the start are read; faults when the consumer fails first.</summary>
    public Task CaughtUp => _caughtUp.Task;

    public string? Failure => _failure;

    public long Undecodable => Interlocked.Read(ref _undecodable);

    /// <summary>Lists the partitions and their end offsets, assigns them from the beginning and starts the reader thread.</summary>
    /// <exception cref="TrialException">The topic has no partitions, or listing them failed.</exception>
    public void Start()
    {
        var config = new ConsumerConfig
        {
            BootstrapServers = _options.BootstrapServers,
            // Never joins a group (partitions are assigned) and never commits: the id only names the client's traffic.
            GroupId = "monitor-trial-" + Guid.NewGuid().ToString("N")[..8],
            EnableAutoCommit = false,
            EnableAutoOffsetStore = false,
            EnablePartitionEof = true,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            ClientId = "monitor-trial",
        };
        foreach ((string key, string value) in _options.Properties)
        {
            config.Set(key, value);
        }

        // librdkafka's log lines are dropped: failures reach the trial as errors, and a trial has no logger.
        IConsumer<byte[], byte[]> consumer = new ConsumerBuilder<byte[], byte[]>(config).SetLogHandler((_, _) => { }).Build();
        Dictionary<TopicPartition, long> ends;
        try
        {
            using IAdminClient admin = new DependentAdminClientBuilder(consumer.Handle).Build();
            Metadata metadata = admin.GetMetadata(_options.Topic, _options.MetadataTimeout);
            TopicMetadata? topic = metadata.Topics.FirstOrDefault(t => t.Topic == _options.Topic);
            if (topic is null || topic.Error.IsError || topic.Partitions.Count == 0)
            {
                throw new TrialException($"kafka:{_options.BootstrapServers}/{_options.Topic}: the topic has no partitions{(topic?.Error.IsError == true ? " (" + topic.Error.Reason + ")" : "")}");
            }

            ends = topic.Partitions.ToDictionary(
                p => new TopicPartition(_options.Topic, p.PartitionId),
                p => consumer.QueryWatermarkOffsets(new TopicPartition(_options.Topic, p.PartitionId), _options.MetadataTimeout).High.Value);
            consumer.Assign(ends.Keys.Select(tp => new TopicPartitionOffset(tp, Offset.Beginning)));
        }
        catch (KafkaException ex)
        {
            consumer.Dispose();
            throw new TrialException($"kafka:{_options.BootstrapServers}/{_options.Topic}: {ex.Error.Reason}", ex);
        }
        catch
        {
            consumer.Dispose();
            throw;
        }

        _consumer = consumer;
        _thread = new Thread(() => Loop(consumer, ends)) { IsBackground = true, Name = "monitor-trial-reader" };
        _thread.Start();
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _stopping.Cancel();
        _thread?.Join();
        _consumer?.Close();
        _consumer?.Dispose();
        _stopping.Dispose();
        _caughtUp.TrySetCanceled();
    }

    private void Loop(IConsumer<byte[], byte[]> consumer, Dictionary<TopicPartition, long> ends)
    {
        // A partition is caught up once a record at or past its end offset at the start was read, or its end reached
        // (transaction markers and compaction leave offsets without records).
        var pending = new HashSet<TopicPartition>(ends.Where(e => e.Value > 0).Select(e => e.Key));
        CheckCaughtUp(pending);
        try
        {
            while (!_stopping.IsCancellationRequested)
            {
                ConsumeResult<byte[], byte[]>? result;
                try
                {
                    result = consumer.Consume(TimeSpan.FromMilliseconds(100));
                }
                catch (ConsumeException ex) when (!ex.Error.IsFatal)
                {
                    // librdkafka retries what is not fatal (a broker away, a partition moving); the next poll goes on.
                    continue;
                }

                if (result is null)
                {
                    continue;
                }

                if (result.IsPartitionEOF)
                {
                    pending.Remove(result.TopicPartition);
                    CheckCaughtUp(pending);
                    continue;
                }

                if (StepRecordDecoder.TryDecode(result.Message.Value, out StepRecord? record, out _))
                {
                    if (_options.Run is null || record.RunId == _options.Run)
                    {
                        _add(record);
                        _changed();
                    }
                }
                else
                {
                    Interlocked.Increment(ref _undecodable);
                }

                if (result.Offset.Value + 1 >= ends[result.TopicPartition])
                {
                    pending.Remove(result.TopicPartition);
                    CheckCaughtUp(pending);
                }
            }
        }
        catch (KafkaException ex)
        {
            Fail(ex.Error.Reason);
        }
    }

    private void CheckCaughtUp(HashSet<TopicPartition> pending)
    {
        if (pending.Count == 0)
        {
            _caughtUp.TrySetResult();
        }
    }

    private void Fail(string reason)
    {
        _failure = reason;
        _caughtUp.TrySetException(new TrialException($"kafka:{_options.BootstrapServers}/{_options.Topic}: {reason}"));
        _changed();
    }
}
