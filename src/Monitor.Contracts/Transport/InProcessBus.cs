using System.Collections.Concurrent;
using System.Threading.Channels;

namespace Monitor.Contracts.Transport;

/// <summary>
/// An in-process stand-in for Kafka used by <c>monitor demo</c>: named topics of one partition each, bounded, with
/// offsets, for one consumer per topic. Same interfaces as the Kafka transport, so the same tracer and service code
/// run on it.
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

    /// <summary>The consumer of <paramref name="topic"/>.</summary>
    public IRecordConsumer CreateConsumer(string topic) => new Consumer(GetTopic(topic));

    /// <summary>Stops accepting messages on every topic; consumers drain what is left, then see the end.</summary>
    public void Complete()
    {
        _completed = true;
        foreach (Topic topic in _topics.Values)
        {
            topic.Messages.Writer.TryComplete();
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
            topic.Messages.Writer.TryComplete();
        }

        return topic;
    }

    private sealed class Topic(string name, int capacity)
    {
        private long _nextOffset;

        public string Name { get; } = name;

        public Channel<TransportMessage> Messages { get; } = Channel.CreateBounded<TransportMessage>(
            new BoundedChannelOptions(capacity) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });

        public long NextOffset => Interlocked.Read(ref _nextOffset);

        public long ProcessedOffset;

        // The offset is taken under a lock together with the write so that offsets follow channel order.
        public readonly Lock WriteLock = new();

        public long TakeOffset() => _nextOffset++;
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
                written = target.Messages.Writer.TryWrite(message);
                if (written)
                {
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

    private sealed class Consumer(Topic topic) : IRecordConsumer
    {
        public TransportMessage? Consume(TimeSpan maxWait, CancellationToken cancellationToken)
        {
            ChannelReader<TransportMessage> reader = topic.Messages.Reader;
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

        public void MarkProcessed(TransportMessage message) => Volatile.Write(ref topic.ProcessedOffset, message.Offset + 1);

        public void Commit()
        {
        }

        public IReadOnlyList<PartitionLag> GetLag() => [new PartitionLag(topic.Name, 0, topic.NextOffset - Volatile.Read(ref topic.ProcessedOffset))];

        public void Dispose()
        {
        }
    }
}
