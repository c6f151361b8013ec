using System.Text;
using Monitor.Contracts.Transport;

namespace Monitor.Contracts.Tests;

public sealed class InProcessBusTests
{
    private static readonly TimeSpan MaxWait = TimeSpan.FromSeconds(10);

    private static readonly DateTimeOffset Now = new(2025, 3, 4, 5, 6, 7, TimeSpan.Zero);

    [Fact]
    public void Produce_AssignsIncreasingOffsetsPerTopic()
    {
        var bus = new InProcessBus(timeProvider: new FixedTimeProvider(Now));
        using IRecordProducer producer = bus.CreateProducer();
        using IRecordConsumer consumer = bus.CreateConsumer("a");

        for (int i = 0; i < 5; i++)
        {
            Assert.True(Produce(producer, "a", $"k{i}").Delivered);
        }

        Assert.True(Produce(producer, "b", "other").Delivered);
        Assert.Equal(5, bus.ProducedCount("a"));
        Assert.Equal(1, bus.ProducedCount("b"));
        for (long expected = 0; expected < 5; expected++)
        {
            TransportMessage? message = consumer.Consume(MaxWait, TestContext.Current.CancellationToken);
            Assert.NotNull(message);
            Assert.Equal(expected, message.Offset);
            Assert.Equal($"k{expected}", message.Key);
        }

        using IRecordConsumer consumerB = bus.CreateConsumer("b");
        Assert.Equal(0, consumerB.Consume(MaxWait, TestContext.Current.CancellationToken)!.Offset);
    }

    [Fact]
    public void Consume_ReturnsKeyValueAndHeaders_AsProduced()
    {
        var bus = new InProcessBus(timeProvider: new FixedTimeProvider(Now));
        using IRecordProducer producer = bus.CreateProducer();
        using IRecordConsumer consumer = bus.CreateConsumer(MonitorTopics.Steps);
        byte[] value = [0, 1, 2, 255];
        KeyValuePair<string, byte[]>[] headers =
        [
            new("h1", Encoding.UTF8.GetBytes("one")),
            new("h1", Encoding.UTF8.GetBytes("again")),
            new("empty", []),
        ];
        DeliveryReport? report = null;

        producer.Produce(MonitorTopics.Steps, "run-1/0", value, headers, r => report = r);

        Assert.Equal(new DeliveryReport(true, null) { Partition = 0, Offset = 0 }, report);
        TransportMessage? message = consumer.Consume(MaxWait, TestContext.Current.CancellationToken);
        Assert.NotNull(message);
        Assert.Equal(MonitorTopics.Steps, message.Topic);
        Assert.Equal(0, message.Partition);
        Assert.Equal(0, message.Offset);
        Assert.Equal("run-1/0", message.Key);
        Assert.Equal(value, message.Value);
        Assert.Equal(Now, message.Timestamp);
        Assert.Equal(3, message.Headers.Count);
        for (int i = 0; i < headers.Length; i++)
        {
            Assert.Equal(headers[i].Key, message.Headers[i].Key);
            Assert.Equal(headers[i].Value, message.Headers[i].Value);
        }
    }

    [Fact]
    public void Consume_ReturnsEmptyHeaders_WhenProducedWithoutHeaders()
    {
        var bus = new InProcessBus();
        using IRecordProducer producer = bus.CreateProducer();
        using IRecordConsumer consumer = bus.CreateConsumer("t");

        Produce(producer, "t", "k");

        Assert.Empty(consumer.Consume(MaxWait, TestContext.Current.CancellationToken)!.Headers);
    }

    [Fact]
    public void Produce_ReportsNotDeliveredWithReason_WhenTopicIsFull_AndKeepsWhatWasAccepted()
    {
        var bus = new InProcessBus(capacityPerTopic: 3);
        using IRecordProducer producer = bus.CreateProducer();
        using IRecordConsumer consumer = bus.CreateConsumer("t");
        for (int i = 0; i < 3; i++)
        {
            Assert.True(Produce(producer, "t", $"k{i}").Delivered);
        }

        DeliveryReport refused = Produce(producer, "t", "k3");

        Assert.False(refused.Delivered);
        Assert.Contains("'t'", refused.Error, StringComparison.Ordinal);
        Assert.Contains("full", refused.Error, StringComparison.Ordinal);
        Assert.Equal(3, bus.ProducedCount("t"));
        Assert.Equal("k0", consumer.Consume(MaxWait, TestContext.Current.CancellationToken)!.Key);

        // Room again: the next accepted message takes the next offset; the refused one left no gap.
        DeliveryReport accepted = Produce(producer, "t", "k4");
        Assert.True(accepted.Delivered);
        Assert.Null(accepted.Error);
        bus.Complete();
        List<TransportMessage> rest = Drain(consumer);
        Assert.Equal(["k1", "k2", "k4"], rest.Select(m => m.Key));
        Assert.Equal([1L, 2L, 3L], rest.Select(m => m.Offset));
    }

    [Fact]
    public void Produce_DoesNotAffectOtherTopics_WhenOneTopicIsFull()
    {
        var bus = new InProcessBus(capacityPerTopic: 1);
        using IRecordProducer producer = bus.CreateProducer();

        Assert.True(Produce(producer, "a", "1").Delivered);
        Assert.False(Produce(producer, "a", "2").Delivered);
        Assert.True(Produce(producer, "b", "1").Delivered);
    }

    [Fact]
    public void Consume_ReturnsNullAfterDraining_WhenBusIsCompleted()
    {
        var bus = new InProcessBus();
        using IRecordProducer producer = bus.CreateProducer();
        using IRecordConsumer consumer = bus.CreateConsumer("t");
        Produce(producer, "t", "a");
        Produce(producer, "t", "b");

        bus.Complete();

        Assert.Equal("a", consumer.Consume(MaxWait, TestContext.Current.CancellationToken)?.Key);
        Assert.Equal("b", consumer.Consume(MaxWait, TestContext.Current.CancellationToken)?.Key);
        Assert.Null(consumer.Consume(MaxWait, TestContext.Current.CancellationToken));
        Assert.Null(consumer.Consume(MaxWait, TestContext.Current.CancellationToken));
    }

    [Fact]
    public void Produce_ReportsNotDelivered_WhenExistingTopicIsCompleted()
    {
        var bus = new InProcessBus();
        using IRecordProducer producer = bus.CreateProducer();
        using IRecordConsumer consumer = bus.CreateConsumer("t");

        bus.Complete();
        DeliveryReport report = Produce(producer, "t", "late");

        Assert.False(report.Delivered);
        Assert.NotNull(report.Error);
        Assert.Equal(0, bus.ProducedCount("t"));
        Assert.Null(consumer.Consume(MaxWait, TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task Consume_ReturnsNull_WhenCompletedWhileWaiting()
    {
        var bus = new InProcessBus();
        using IRecordConsumer consumer = bus.CreateConsumer("t");
        Task<TransportMessage?> waiting = Task.Run(() => consumer.Consume(MaxWait, TestContext.Current.CancellationToken), TestContext.Current.CancellationToken);

        bus.Complete();

        Assert.Null(await waiting);
    }

    [Fact]
    public void Consume_ReturnsNull_WhenTokenIsAlreadyCancelled()
    {
        var bus = new InProcessBus();
        using IRecordProducer producer = bus.CreateProducer();
        using IRecordConsumer consumer = bus.CreateConsumer("t");

        Assert.Null(consumer.Consume(MaxWait, new CancellationToken(canceled: true)));

        // A cancelled call takes nothing away: the message is there for the next one.
        Produce(producer, "t", "k");
        Assert.Null(consumer.Consume(MaxWait, new CancellationToken(canceled: true)));
        Assert.Equal("k", consumer.Consume(MaxWait, TestContext.Current.CancellationToken)?.Key);
    }

    [Fact]
    public void Consume_ReturnsNull_WhenNothingArrivesWithinMaxWait()
    {
        var bus = new InProcessBus();
        using IRecordConsumer consumer = bus.CreateConsumer("t");

        Assert.Null(consumer.Consume(TimeSpan.FromMilliseconds(20), TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task Consume_ReturnsNull_WhenTokenIsCancelledWhileWaiting()
    {
        var bus = new InProcessBus();
        using IRecordConsumer consumer = bus.CreateConsumer("t");
        using var cancellation = new CancellationTokenSource();
        Task<TransportMessage?> waiting = Task.Run(() => consumer.Consume(MaxWait, cancellation.Token), TestContext.Current.CancellationToken);

        await cancellation.CancelAsync();

        Assert.Null(await waiting);
    }

    [Fact]
    public async Task Consume_ReturnsMessage_WhenItIsProducedWhileWaiting()
    {
        var bus = new InProcessBus();
        using IRecordProducer producer = bus.CreateProducer();
        using IRecordConsumer consumer = bus.CreateConsumer("t");
        Task<TransportMessage?> waiting = Task.Run(() => consumer.Consume(MaxWait, TestContext.Current.CancellationToken), TestContext.Current.CancellationToken);

        Produce(producer, "t", "k");

        Assert.Equal("k", (await waiting)?.Key);
    }

    [Fact]
    public void GetLag_ReflectsProducedMinusProcessed_WhenMarkProcessedIsCalled()
    {
        var bus = new InProcessBus();
        using IRecordProducer producer = bus.CreateProducer();
        using IRecordConsumer consumer = bus.CreateConsumer("t");

        Assert.Equal([new PartitionLag("t", 0, 0)], consumer.GetLag());
        for (int i = 0; i < 4; i++)
        {
            Produce(producer, "t", $"k{i}");
        }

        Assert.Equal([new PartitionLag("t", 0, 4)], consumer.GetLag());
        TransportMessage first = consumer.Consume(MaxWait, TestContext.Current.CancellationToken)!;
        Assert.Equal(4, consumer.GetLag()[0].Lag); // consumed but not processed
        consumer.MarkProcessed(first);
        Assert.Equal(3, consumer.GetLag()[0].Lag);

        consumer.Consume(MaxWait, TestContext.Current.CancellationToken);
        TransportMessage third = consumer.Consume(MaxWait, TestContext.Current.CancellationToken)!;
        consumer.MarkProcessed(third);
        consumer.Commit();
        Assert.Equal(1, consumer.GetLag()[0].Lag);

        Produce(producer, "t", "k4");
        Assert.Equal(2, consumer.GetLag()[0].Lag);
    }

    [Fact]
    public async Task Produce_KeepsOffsetsInChannelOrder_WhenProducersRunConcurrently()
    {
        const int PerProducer = 2_000;
        var bus = new InProcessBus(capacityPerTopic: 2 * PerProducer);
        using IRecordProducer producer = bus.CreateProducer();
        using IRecordConsumer consumer = bus.CreateConsumer("t");
        int refused = 0;

        void ProduceMany(string prefix)
        {
            for (int i = 0; i < PerProducer; i++)
            {
                producer.Produce("t", $"{prefix}{i}", [], null, r =>
                {
                    if (!r.Delivered)
                    {
                        Interlocked.Increment(ref refused);
                    }
                });
            }
        }

        await Task.WhenAll(
            Task.Run(() => ProduceMany("a"), TestContext.Current.CancellationToken),
            Task.Run(() => ProduceMany("b"), TestContext.Current.CancellationToken));
        bus.Complete();

        List<TransportMessage> messages = Drain(consumer);
        Assert.Equal(0, refused);
        Assert.Equal(Enumerable.Range(0, 2 * PerProducer).Select(i => (long)i), messages.Select(m => m.Offset));
        // Each producer's own messages stay in the order it sent them.
        foreach (string prefix in new[] { "a", "b" })
        {
            Assert.Equal(
                Enumerable.Range(0, PerProducer).Select(i => $"{prefix}{i}"),
                messages.Where(m => m.Key!.StartsWith(prefix, StringComparison.Ordinal)).Select(m => m.Key));
        }
    }

    [Fact]
    public void Flush_ReturnsZero_BecauseDeliveryIsSynchronous()
    {
        var bus = new InProcessBus();
        using IRecordProducer producer = bus.CreateProducer();
        Produce(producer, "t", "k");

        Assert.Equal(0, producer.Flush(TimeSpan.Zero));
    }

    [Fact]
    public void Constructor_Throws_WhenCapacityIsBelowOne()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new InProcessBus(capacityPerTopic: 0));
    }

    [Fact]
    public void CreateConsumer_WithGroup_SeesEveryLaterMessage_IndependentlyOfTheDefaultGroup()
    {
        var bus = new InProcessBus(capacityPerTopic: 3);
        using IRecordProducer producer = bus.CreateProducer();
        using IRecordConsumer service = bus.CreateConsumer("t");
        using IRecordConsumer archive = bus.CreateConsumer("t", "archive");
        Assert.Throws<ArgumentException>(() => bus.CreateConsumer("t", "archive"));

        for (int i = 0; i < 3; i++)
        {
            Assert.True(Produce(producer, "t", $"k{i}").Delivered);
        }

        // Both groups got all three; the default group reads them all, the archive none yet: a fourth must wait for the archive.
        Assert.Equal(["k0", "k1", "k2"], [.. Enumerable.Range(0, 3).Select(_ => service.Consume(MaxWait, TestContext.Current.CancellationToken)!.Key)]);
        Assert.False(Produce(producer, "t", "k3").Delivered);
        Assert.Equal("k0", archive.Consume(MaxWait, TestContext.Current.CancellationToken)!.Key);
        Assert.True(Produce(producer, "t", "k3").Delivered);
        archive.MarkProcessed(new TransportMessage { Topic = "t", Partition = 0, Offset = 0, Value = [] });
        Assert.Equal(3, archive.GetLag()[0].Lag);
        Assert.Equal(4, service.GetLag()[0].Lag);

        bus.Complete();
        Assert.Equal(["k1", "k2", "k3"], [.. Drain(archive).Select(m => m.Key)]);
        Assert.Equal(["k3"], [.. Drain(service).Select(m => m.Key)]);
    }

    private static DeliveryReport Produce(IRecordProducer producer, string topic, string key)
    {
        DeliveryReport? report = null;
        producer.Produce(topic, key, Encoding.UTF8.GetBytes(key), null, r => report = r);
        Assert.NotNull(report); // the in-process bus reports synchronously
        return report.Value;
    }

    private static List<TransportMessage> Drain(IRecordConsumer consumer)
    {
        var messages = new List<TransportMessage>();
        while (consumer.Consume(MaxWait, TestContext.Current.CancellationToken) is { } message)
        {
            messages.Add(message);
        }

        return messages;
    }
}

