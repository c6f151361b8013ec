using Monitor.Contracts.Transport;

namespace Monitor.Contracts.Tests;

/// <summary><see cref="InProcessBus.Complete"/> closes topics named after it too.</summary>
public sealed class InProcessBusCompletionTests
{
    private static readonly TimeSpan MaxWait = TimeSpan.FromSeconds(10);

    [Fact]
    public void Produce_ReportsNotDelivered_WhenTopicIsFirstUsedAfterComplete()
    {
        var bus = new InProcessBus();
        using IRecordProducer producer = bus.CreateProducer();
        bus.Complete();
        DeliveryReport? report = null;

        producer.Produce("new-topic", "k", [1], null, r => report = r);

        Assert.NotNull(report);
        Assert.False(report.Value.Delivered, "a completed bus must not accept messages on any topic");
        Assert.Equal(0, bus.ProducedCount("new-topic"));
    }

    [Fact]
    public void Consume_ReturnsNull_WhenConsumerOfANewTopicIsCreatedAfterComplete()
    {
        var bus = new InProcessBus();
        bus.Complete();
        using IRecordConsumer consumer = bus.CreateConsumer("new-topic");
        using IRecordProducer producer = bus.CreateProducer();
        DeliveryReport? report = null;
        producer.Produce("new-topic", "k", [1], null, r => report = r);

        Assert.False(report!.Value.Delivered);
        Assert.Null(consumer.Consume(MaxWait, TestContext.Current.CancellationToken));
    }
}
