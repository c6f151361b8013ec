#if MONITOR_TRACING_BUG_TESTS
// Known bugs, tests left out of the build until they are fixed (then delete this #if and its #endif).
// All three are in src/Monitor.Tracing/StepTracer.cs:
// 1. SendLoopAsync raises _inFlight (line 400) before Produce (line 401); when Produce throws, the catch (lines 404-409)
//    counts the record as failed but never lowers _inFlight again. FlushAsync then returns false until its timeout for
//    the rest of the tracer's life, and DisposeAsync spends its whole 10 s flush timeout.
// 2. SendLoopAsync takes the record off the queue (line 395) and serializes it (line 399) before raising _inFlight
//    (line 400); in between, FlushAsync (line 272) sees an empty queue and nothing in flight and returns true although
//    the record was not handed to the producer yet. The larger the record, the wider the window.
// 3. FlushAsync measures its timeout and polls (lines 270-286), and DisposeAsync waits for the sender (line 304), on
//    TracerOptions.TimeProvider, which is documented as the clock for event times and the every-seconds schedule. On a
//    FakeTimeProvider that nobody advances, FlushAsync never times out and its Task.Delay never completes, so it does
//    not return even after every record was delivered.
// Run them now with: dotnet test tests/Monitor.Tracing.Tests -p:DefineConstants=MONITOR_TRACING_BUG_TESTS
using Microsoft.Extensions.Time.Testing;
using Monitor.Contracts;
using Monitor.Contracts.V1;

namespace Monitor.Tracing.Tests;

public sealed class StepTracerFlushBugTests
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
#endif
