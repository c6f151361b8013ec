using Microsoft.Extensions.Time.Testing;
using Monitor.Contracts;
using Monitor.Contracts.V1;

namespace Monitor.Tracing.Tests;

public sealed class StepTracerFlushTests
{
    private static readonly CollectionSet Losses = CollectionSet.Of(Collection.Losses);

    [Fact]
    public async Task FlushAsync_ReturnsTrue_AfterTheProducerThrewOnASend()
    {
        var producer = new TestRecordProducer(ProducerBehavior.Throw);
        await using var tracer = new StepTracer(Options(TimeProvider.System), producer);
        TraceLoss(tracer, 0);
        await Poll.UntilAsync(() => tracer.Statistics.DeliveryFailed == 1, "the failed send counted");
        producer.Behavior = ProducerBehavior.Deliver;

        Assert.True(await tracer.FlushAsync(TimeSpan.FromSeconds(2), TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task FlushAsync_ReturnsTrueOnlyOnceTheRecordIsDelivered()
    {
        var producer = new TestRecordProducer();
        await using var tracer = new StepTracer(Options(TimeProvider.System), producer);
        var buckets = new ulong[TensorSummarizer.BucketCount];
        var statistics = new TensorStatistics { Count = 1, Min = 1, Max = 1, Mean = 1, L1 = 1, L2 = 1, AbsMean = 1 };

        for (long step = 0; step < 20; step++)
        {
            Assert.True(tracer.BeginStep(step));
            for (int i = 0; i < 5000; i++)
            {
                tracer.AddSummary($"layer{i}.weight", CollectionSet.Of(Collection.Weights), DType.Float32, [1], statistics, buckets);
            }

            tracer.EndStep();

            Assert.True(await tracer.FlushAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
            Assert.Equal(step + 1, tracer.Statistics.Delivered);
        }
    }

    [Fact]
    public async Task FlushAsync_Returns_WhenEverythingIsDeliveredOnAClockNobodyAdvances()
    {
        var producer = new TestRecordProducer();
        var tracer = new StepTracer(Options(new FakeTimeProvider()), producer);
        try
        {
            producer.BlockProduce();
            TraceLoss(tracer, 0);
            await Poll.UntilAsync(() => producer.BlockedCalls == 1, "the sender blocked inside Produce");
            TraceLoss(tracer, 1);

            // The second record is still queued, so FlushAsync returns here at its first poll delay.
            Task<bool> flush = tracer.FlushAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
            producer.UnblockProduce();
            await Poll.UntilAsync(() => tracer.Statistics.Delivered == 2, "both records delivered");

            Assert.True(await flush.WaitAsync(TimeSpan.FromSeconds(5), TestContext.Current.CancellationToken));
        }
        finally
        {
            producer.ReleaseAll();
            await tracer.DisposeAsync();
        }
    }

    private static TracerOptions Options(TimeProvider time) => new() { RunId = "run", Topic = "test.steps", TimeProvider = time };

    private static void TraceLoss(StepTracer tracer, long step)
    {
        Assert.True(tracer.BeginStep(step));
        tracer.AddScalar("loss", Losses, step);
        tracer.EndStep();
    }
}
