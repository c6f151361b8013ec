using System.Collections.Concurrent;
using System.Threading.Channels;

namespace Monitor.Contracts.Transport;

/// <summary>
/// An in-process stand-in for Kafka used by <c>monitor demo</c>: named topics of one partition each, bounded, with
/// offsets, for one consumer per topic and consumer group. Same interfaces as the Kafka transport, so the same tracer
/// and service code run on it.
/// </summary>
/// <remarks>
/// A full topic refuses new messages (reported through the delivery callback, like a broker's queue-full error)
/// rather than growing without bound. Messages live only in memory: a consumer that restarts does not see messages
/// it already took. Thread-safe.
/// </remarks>
public sealed class InProcessBus
{
    private readonly ConcurrentDictionary<string, Topic> _topics = new(StringComparer.Ordinal);
    private readonly int _capacity;
    private readonly TimeProvider _timeProvider;
    private volatile bool _completed;

    /// <summary>Creates a bus.</summary>
    /// <param name="capacityPerTopic">Messages a topic holds before refusing more; default 10,000.</param>
    /// <param name="timeProvider">Clock for message timestamps; default <see cref="TimeProvider.System"/>.</param>
    public InProcessBus(int capacityPerTopic = 10_000, TimeProvider? timeProvider = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacityPerTopic, 1);
        _capacity = capacityPerTopic;
        _timeProvider = timeProvider ?? TimeProvider.System;
    }

    /// <summary>A producer for any topic of this bus.</summary>
    public IRecordProducer CreateProducer() => new Producer(this);

    /// <summary>The consumer of <paramref name="topic"/> (its default group, which holds every message since the topic was created).</summary>
    public IRecordConsumer CreateConsumer(string topic)
    {
        Topic target = GetTopic(topic);
        return new Consumer(target, target.Default);
    }

    /// <summary>
    /// The consumer of <paramref name="topic"/> in consumer group <paramref name="group"/>, which sees every message
    /// produced from now on, independently of the other groups (as a new Kafka group reading from the latest offset).
    /// A message is accepted only when every group has room for it. One consumer per group.
    /// </summary>
    /// <exception cref="ArgumentException">The group already has a consumer on this topic.</exception>
    public IRecordConsumer CreateConsumer(string topic, string group)
    {
        ArgumentException.ThrowIfNullOrEmpty(group);
        Topic target = GetTopic(topic);
        GroupLog log;
        lock (target.WriteLock)
        {
            log = new GroupLog(_capacity);
            if (!target.Groups.TryAdd(group, log))
            {
                throw new ArgumentException($"group '{group}' already has a consumer of '{topic}'", nameof(group));
            }

            if (_completed)
            {
                log.Messages.Writer.TryComplete();
            }
        }

        return new Consumer(target, log);
    }

    /// <summary>Stops accepting messages on every topic; consumers drain what is left, then see the end.</summary>
    public void Complete()
    {
        _completed = true;
        foreach (Topic topic in _topics.Values)
        {
            lock (topic.WriteLock)
            {
                topic.Default.Messages.Writer.TryComplete();
                foreach (GroupLog group in topic.Groups.Values)
                {
                    group.Messages.Writer.TryComplete();
                }
            }
        }
    }

    /// <summary>Messages produced to <paramref name="topic"/> so far.</summary>
    public long ProducedCount(string topic) => GetTopic(topic).NextOffset;

    private Topic GetTopic(string name)
    {
        Topic topic = _topics.GetOrAdd(name, static (n, capacity) => new Topic(n, capacity), _capacity);
        // A topic created during or after Complete() is closed as well (checked after GetOrAdd, so no race is lost).
        if (_completed)
        {
            topic.Default.Messages.Writer.TryComplete();
        }

        return topic;
    }

    private sealed class Topic(string name, int capacity)
    {
        private long _nextOffset;

        public string Name { get; } = name;

        public int Capacity { get; } = capacity;

        /// <summary>The group of <see cref="InProcessBus.CreateConsumer(string)"/>.</summary>
        public GroupLog Default { get; } = new(capacity);

        /// <summary>Named groups; changed under <see cref="WriteLock"/>.</summary>
        public Dictionary<string, GroupLog> Groups { get; } = new(StringComparer.Ordinal);

        public long NextOffset => Interlocked.Read(ref _nextOffset);

        public bool GroupsHaveRoom()
        {
            foreach (GroupLog group in Groups.Values)
            {
                if (group.Messages.Reader.Count >= Capacity)
                {
                    return false;
                }
            }

            return true;
        }

        // The offset is taken under a lock together with the write so that offsets follow channel order.
        public readonly Lock WriteLock = new();

        public long TakeOffset() => _nextOffset++;
    }

    /// <summary>One consumer group's copy of a topic: its messages not yet read, and its processed position.</summary>
    private sealed class GroupLog(int capacity)
    {
        public Channel<TransportMessage> Messages { get; } = Channel.CreateBounded<TransportMessage>(
            new BoundedChannelOptions(capacity) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });

        public long ProcessedOffset;
    }

    private sealed class Producer(InProcessBus bus) : IRecordProducer
    {
        public void Produce(string topic, string key, byte[] value, IReadOnlyList<KeyValuePair<string, byte[]>>? headers, Action<DeliveryReport> onDelivery)
        {
            Topic target = bus.GetTopic(topic);
            bool written;
            long offset;
            lock (target.WriteLock)
            {
                offset = target.NextOffset;
                var message = new TransportMessage
                {
                    Topic = topic,
                    Partition = 0,
                    Offset = offset,
                    Key = key,
                    Value = value,
                    Headers = headers ?? [],
                    Timestamp = bus._timeProvider.GetUtcNow(),
                };
                // Only when every group has room, so no group misses a message another one got (readers only take away).
                written = target.GroupsHaveRoom() && target.Default.Messages.Writer.TryWrite(message);
                if (written)
                {
                    foreach (GroupLog group in target.Groups.Values)
                    {
                        group.Messages.Writer.TryWrite(message);
                    }

                    target.TakeOffset();
                }
            }

            onDelivery(written
                ? new DeliveryReport(true, null) { Partition = 0, Offset = offset }
                : new DeliveryReport(false, $"in-process topic '{topic}' is full or closed") { ErrorType = "queue_full" });
        }

        public int Flush(TimeSpan timeout) => 0;

        public void Dispose()
        {
        }
    }

    private sealed class Consumer(Topic topic, GroupLog log) : IRecordConsumer
    {
        public TransportMessage? Consume(TimeSpan maxWait, CancellationToken cancellationToken)
        {
            ChannelReader<TransportMessage> reader = log.Messages.Reader;
            if (cancellationToken.IsCancellationRequested)
            {
                return null;
            }

            if (reader.TryRead(out TransportMessage? message))
            {
                return message;
            }

            using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            wait.CancelAfter(maxWait);
            try
            {
                // Blocking by design: IRecordConsumer.Consume is a blocking call (as Kafka's is) run on its own thread.
                while (reader.WaitToReadAsync(wait.Token).AsTask().GetAwaiter().GetResult())
                {
                    if (reader.TryRead(out message))
                    {
                        return message;
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }

            return null;
        }

        public void MarkProcessed(TransportMessage message) => Volatile.Write(ref log.ProcessedOffset, message.Offset + 1);

        public void Commit()
        {
        }

        public IReadOnlyList<PartitionLag> GetLag() => [new PartitionLag(topic.Name, 0, topic.NextOffset - Volatile.Read(ref log.ProcessedOffset))];

        public void Dispose()
        {
        }
    }
}
