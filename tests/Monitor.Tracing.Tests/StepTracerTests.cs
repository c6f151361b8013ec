using System.Diagnostics;
using Microsoft.Extensions.Time.Testing;
using Monitor.Contracts;
using Monitor.Contracts.Transport;
using Monitor.Contracts.V1;

namespace Monitor.Tracing.Tests;

public sealed class StepTracerTests
{
    private const string Topic = "test.steps";
    private const string RunId = "run-7";
    private const int Rank = 2;
    private static readonly TimeSpan FlushTimeout = TimeSpan.FromSeconds(10);

    // 2026-03-04T05:06:07.1234567Z: sub-millisecond ticks too, so that the nanosecond conversion is visible.
    private static readonly DateTimeOffset Start = new DateTimeOffset(2026, 3, 4, 5, 6, 7, TimeSpan.Zero).AddTicks(1_234_567);

    private static readonly CollectionSet Weights = CollectionSet.Of(Collection.Weights);
    private static readonly CollectionSet Gradients = CollectionSet.Of(Collection.Gradients);
    private static readonly CollectionSet Losses = CollectionSet.Of(Collection.Losses);

    [Fact]
    public async Task EndStep_ProducesOneDecodableRecordWithEverythingAdded_WhenTheStepIsTraced()
    {
        var time = new FakeTimeProvider(Start);
        var producer = new TestRecordProducer();
        await using var tracer = new StepTracer(Options(time, TraceSelection.AllEveryStep with { Version = 3 }), producer);
        float[] weights = [0.5f, -1.5f, 0f, 3f, 1e-9f, -0f, 70000f, 2f, -0.25f];
        float[] gradients = [1f, 2f, float.NaN, -4f];
        var gradientBuckets = new ulong[TensorSummarizer.BucketCount];
        TensorSummarizer.Summarize(gradients, gradientBuckets, out TensorStatistics gradientStatistics);

        Assert.True(tracer.BeginStep(41, Mode.Eval));
        Assert.True(tracer.IsTracingStep);
        tracer.AddValues("fc1.weight", Weights, DType.Float32, [3, 3], weights);
        tracer.AddScalar("loss", Losses, 0.25);
        tracer.AddSummary("fc1.weight.grad", CollectionSet.Of(Collection.Gradients, Collection.Weights), DType.Bfloat16, [4], gradientStatistics, gradientBuckets);
        time.Advance(TimeSpan.FromMilliseconds(1500));
        tracer.EndStep();
        Assert.False(tracer.IsTracingStep);

        await Poll.UntilAsync(() => tracer.Statistics.Delivered == 1, "the record delivered");
        ProducedMessage message = Assert.Single(producer.Messages);
        Assert.Equal(Topic, message.Topic);
        Assert.Equal("run-7/2", message.Key);
        StepRecord record = Decode(message.Value);
        Assert.Equal(1u, record.SchemaVersion);
        Assert.Equal(RunId, record.RunId);
        Assert.Equal(2u, record.Rank);
        Assert.Equal(4u, record.WorldSize);
        Assert.Equal(41, record.Step);
        Assert.Equal(Mode.Eval, record.Mode);
        Assert.Equal(1UL, record.Sequence);
        Assert.Equal(3, record.SelectionVersion);
        Assert.Equal(0UL, record.DroppedBefore);
        DateTimeOffset end = Start.AddMilliseconds(1500);
        Assert.Equal((end.ToUnixTimeSeconds() * 1_000_000_000L) + (end.Ticks % TimeSpan.TicksPerSecond * 100), record.EventTimeUnixNanos);
        Assert.Equal(["fc1.weight", "loss", "fc1.weight.grad"], record.Tensors.Select(t => t.Name));

        TensorRecord weight = record.Tensors[0];
        Assert.Equal([Collection.Weights], weight.Collections);
        Assert.Equal(DType.Float32, weight.Dtype);
        Assert.Equal([3L, 3L], weight.Shape);
        var weightBuckets = new ulong[TensorSummarizer.BucketCount];
        TensorSummarizer.Summarize(weights, weightBuckets, out TensorStatistics weightStatistics);
        AssertSummary(weightStatistics, weightBuckets, weight.Summary);
        Assert.Equal(9UL, weight.Summary.Count);
        Assert.Equal(2UL, weight.Summary.ZeroCount);
        Assert.Equal(70000.0, weight.Summary.Max);

        TensorRecord loss = record.Tensors[1];
        Assert.Equal([Collection.Losses], loss.Collections);
        Assert.Equal(DType.Float64, loss.Dtype);
        Assert.Empty(loss.Shape);
        Assert.Equal(1UL, loss.Summary.Count);
        Assert.Equal(0.25, loss.Summary.Min);
        Assert.Equal(0.25, loss.Summary.Max);
        Assert.Equal(0.25, loss.Summary.Mean);
        Assert.Equal(0.0, loss.Summary.Variance);
        Assert.Equal(0.25, loss.Summary.L2);
        Assert.Equal(HistogramLayout.Log2Magnitude, loss.Summary.Histogram.Layout);
        Assert.Equal((uint)Log2Histogram.BucketOf(0.25), loss.Summary.Histogram.FirstBucket);
        Assert.Equal(1UL, HistogramBuckets.Get(loss.Summary.Histogram, Log2Histogram.BucketOf(0.25)));
        Assert.Equal(1UL, loss.Summary.Histogram.Counts.Aggregate(0UL, (a, b) => a + b));

        TensorRecord gradient = record.Tensors[2];
        Assert.Equal([Collection.Weights, Collection.Gradients], gradient.Collections);
        Assert.Equal(DType.Bfloat16, gradient.Dtype);
        Assert.Equal([4L], gradient.Shape);
        AssertSummary(gradientStatistics, gradientBuckets, gradient.Summary);
        Assert.Equal(1UL, gradient.Summary.NanCount);
    }

    [Fact]
    public async Task EndStep_ProducesRecordsOnTheInProcessBus_KeyedByRunAndRank()
    {
        var time = new FakeTimeProvider(Start);
        var bus = new InProcessBus(timeProvider: time);
        await using var tracer = new StepTracer(Options(time), bus.CreateProducer(), ownsProducer: true);

        for (long step = 10; step < 13; step++)
        {
            Assert.True(tracer.BeginStep(step));
            tracer.AddScalar("loss", Losses, step);
            tracer.EndStep();
        }

        await Poll.UntilAsync(() => bus.ProducedCount(Topic) == 3 && tracer.Statistics.Delivered == 3, "three records on the bus");
        using IRecordConsumer consumer = bus.CreateConsumer(Topic);
        for (int i = 0; i < 3; i++)
        {
            TransportMessage? message = consumer.Consume(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
            Assert.NotNull(message);
            Assert.Equal(Topic, message.Topic);
            Assert.Equal("run-7/2", message.Key);
            StepRecord record = Decode(message.Value);
            Assert.Equal(10 + i, record.Step);
            Assert.Equal((ulong)(i + 1), record.Sequence);
            Assert.Equal(10.0 + i, Assert.Single(record.Tensors).Summary.Mean);
        }
    }

    [Fact]
    public async Task BeginStep_TracesOnlyScheduledSteps_AndUntracedStepsProduceNothing()
    {
        var producer = new TestRecordProducer();
        TraceSelection everyThird = TraceSelection.AllEveryStep with { Schedule = new TraceSchedule { EverySteps = 3 } };
        await using var tracer = new StepTracer(Options(new FakeTimeProvider(Start), everyThird), producer);

        for (long step = 0; step < 9; step++)
        {
            bool traced = tracer.BeginStep(step);
            Assert.Equal(step % 3 == 0, traced);
            Assert.Equal(traced, tracer.IsTracingStep);
            Assert.Equal(traced, tracer.Wants("loss", Losses));
            tracer.AddScalar("loss", Losses, step);
            tracer.AddValues("fc1.weight", Weights, DType.Float32, [2], [1f, 2f]);
            tracer.EndStep();
        }

        await Poll.UntilAsync(() => tracer.Statistics.Delivered == 3, "three records delivered");
        StepRecord[] records = [.. producer.Messages.Select(m => Decode(m.Value))];
        Assert.Equal([0L, 3L, 6L], records.Select(r => r.Step));
        Assert.Equal([1UL, 2UL, 3UL], records.Select(r => r.Sequence));
        Assert.All(records, r => Assert.Equal(["loss", "fc1.weight"], r.Tensors.Select(t => t.Name)));
        TracerStatistics statistics = tracer.Statistics;
        Assert.Equal(9, statistics.StepsSeen);
        Assert.Equal(3, statistics.StepsTraced);
        Assert.Equal(3, statistics.RecordsCreated);
    }

    [Fact]
    public async Task Wants_ReturnsFalse_OutsideATracedStep()
    {
        TraceSelection everyOther = TraceSelection.AllEveryStep with { Schedule = new TraceSchedule { EverySteps = 2 } };
        await using var tracer = new StepTracer(Options(new FakeTimeProvider(Start), everyOther), new TestRecordProducer());

        Assert.False(tracer.Wants("loss", Losses));
        Assert.True(tracer.BeginStep(0));
        Assert.True(tracer.Wants("loss", Losses));
        tracer.EndStep();
        Assert.False(tracer.Wants("loss", Losses));
        Assert.False(tracer.BeginStep(1));
        Assert.False(tracer.Wants("loss", Losses));
        tracer.EndStep();
    }

    [Fact]
    public async Task Wants_ReturnsFalse_ForTensorsTheSelectionDoesNotSelect()
    {
        var producer = new TestRecordProducer();
        var selection = new TraceSelection
        {
            Collections = new Dictionary<string, CollectionFilter> { [CollectionNames.Weights] = new() { Include = ["^fc1\\."] } },
            Tensors = ["loss"],
        };
        await using var tracer = new StepTracer(Options(new FakeTimeProvider(Start), selection), producer);

        Assert.True(tracer.BeginStep(0));
        Assert.True(tracer.Wants("fc1.weight", Weights));
        Assert.False(tracer.Wants("fc2.weight", Weights));
        Assert.False(tracer.Wants("fc1.weight.grad", Gradients));
        Assert.True(tracer.Wants("loss", CollectionSet.None));
        foreach ((string name, CollectionSet collections) in new[] { ("fc1.weight", Weights), ("fc2.weight", Weights), ("fc1.weight.grad", Gradients), ("loss", CollectionSet.None) })
        {
            tracer.AddValues(name, collections, DType.Float32, [1], [1f]);
        }

        tracer.EndStep();

        await Poll.UntilAsync(() => tracer.Statistics.Delivered == 1, "the record delivered");
        Assert.Equal(["fc1.weight", "loss"], Decode(Assert.Single(producer.Messages).Value).Tensors.Select(t => t.Name));
    }

    [Fact]
    public async Task Wants_ReturnsFalse_ForANameAlreadyAddedThisStep()
    {
        var producer = new TestRecordProducer();
        await using var tracer = new StepTracer(Options(new FakeTimeProvider(Start)), producer);

        Assert.True(tracer.BeginStep(0));
        tracer.AddValues("fc1.weight", Weights, DType.Float32, [2], [1f, 2f]);
        Assert.False(tracer.Wants("fc1.weight", Weights));
        tracer.AddValues("fc1.weight", Weights, DType.Float32, [3], [5f, 6f, 7f]);
        tracer.AddScalar("fc1.weight", Weights, 9);
        tracer.AddSummary("fc1.weight", Weights, DType.Float32, [1], new TensorStatistics { Count = 1 }, []);
        tracer.EndStep();
        Assert.True(tracer.BeginStep(1));
        Assert.True(tracer.Wants("fc1.weight", Weights));
        tracer.EndStep();

        await Poll.UntilAsync(() => tracer.Statistics.Delivered == 2, "both records delivered");
        TensorRecord tensor = Assert.Single(Decode(producer.Messages[0].Value).Tensors);
        Assert.Equal(2UL, tensor.Summary.Count);
        Assert.Equal(2.0, tensor.Summary.Max);
        Assert.Equal([2L], tensor.Shape);
    }

    [Fact]
    public async Task UpdateSelection_AppliesFromTheNextBeginStep_NotToTheStepUnderWay()
    {
        var producer = new TestRecordProducer();
        TraceSelection weightsOnly = CompiledSelectionTests.Filtered(CollectionNames.Weights, new CollectionFilter());
        TraceSelection gradientsOnly = CompiledSelectionTests.Filtered(CollectionNames.Gradients, new CollectionFilter()) with { Version = 5 };
        await using var tracer = new StepTracer(Options(new FakeTimeProvider(Start), weightsOnly), producer);

        Assert.True(tracer.BeginStep(0));
        Assert.Null(tracer.UpdateSelection(gradientsOnly));
        Assert.Same(gradientsOnly, tracer.Selection);
        Assert.Equal(5, tracer.Statistics.SelectionVersion);
        Assert.True(tracer.Wants("fc1.weight", Weights));
        Assert.False(tracer.Wants("fc1.weight.grad", Gradients));
        tracer.AddValues("fc1.weight", Weights, DType.Float32, [1], [1f]);
        tracer.AddValues("fc1.weight.grad", Gradients, DType.Float32, [1], [1f]);
        tracer.EndStep();

        Assert.True(tracer.BeginStep(1));
        Assert.False(tracer.Wants("fc1.weight", Weights));
        Assert.True(tracer.Wants("fc1.weight.grad", Gradients));
        tracer.AddValues("fc1.weight", Weights, DType.Float32, [1], [1f]);
        tracer.AddValues("fc1.weight.grad", Gradients, DType.Float32, [1], [1f]);
        tracer.EndStep();

        await Poll.UntilAsync(() => tracer.Statistics.Delivered == 2, "both records delivered");
        StepRecord[] records = [.. producer.Messages.Select(m => Decode(m.Value))];
        Assert.Equal(0, records[0].SelectionVersion);
        Assert.Equal("fc1.weight", Assert.Single(records[0].Tensors).Name);
        Assert.Equal(5, records[1].SelectionVersion);
        Assert.Equal("fc1.weight.grad", Assert.Single(records[1].Tensors).Name);
    }

    [Fact]
    public async Task UpdateSelection_LetsTheStepUnderWayFinish_WhenTheNewScheduleExcludesIt()
    {
        var producer = new TestRecordProducer();
        await using var tracer = new StepTracer(Options(new FakeTimeProvider(Start)), producer);
        TraceSelection rarely = TraceSelection.AllEveryStep with { Version = 1, Schedule = new TraceSchedule { EverySteps = 1000 } };

        Assert.True(tracer.BeginStep(7));
        Assert.Null(tracer.UpdateSelection(rarely));
        Assert.True(tracer.IsTracingStep);
        tracer.AddScalar("loss", Losses, 1);
        tracer.EndStep();
        Assert.False(tracer.BeginStep(8));
        tracer.EndStep();

        await Poll.UntilAsync(() => tracer.Statistics.Delivered == 1, "the record delivered");
        StepRecord record = Decode(Assert.Single(producer.Messages).Value);
        Assert.Equal(7, record.Step);
        Assert.Equal(0, record.SelectionVersion);
        Assert.Equal(2, tracer.Statistics.StepsSeen);
        Assert.Equal(1, tracer.Statistics.StepsTraced);
    }

    [Theory]
    [MemberData(nameof(CompiledSelectionTests.InvalidSelections), MemberType = typeof(CompiledSelectionTests))]
    public async Task UpdateSelection_ReturnsAReasonNamingTheFieldAndKeepsTheOldSelection_WhenTheSelectionIsInvalid(string invalid, string field)
    {
        var producer = new TestRecordProducer();
        TraceSelection old = TraceSelection.AllEveryStep with { Version = 1 };
        await using var tracer = new StepTracer(Options(new FakeTimeProvider(Start), old), producer);

        string? reason = tracer.UpdateSelection(CompiledSelectionTests.Invalid(invalid));

        Assert.NotNull(reason);
        Assert.Contains(field, reason, StringComparison.Ordinal);
        Assert.Same(old, tracer.Selection);
        Assert.Equal(1, tracer.Statistics.SelectionVersion);
        Assert.True(tracer.BeginStep(0));
        tracer.AddScalar("loss", Losses, 1);
        tracer.EndStep();
        await Poll.UntilAsync(() => tracer.Statistics.Delivered == 1, "the record delivered");
        StepRecord record = Decode(Assert.Single(producer.Messages).Value);
        Assert.Equal(1, record.SelectionVersion);
        Assert.Equal("loss", Assert.Single(record.Tensors).Name);
    }

    [Fact]
    public async Task EndStep_CountsDeliveryFailuresAndReportsThemInDroppedBefore_WhenDeliveriesFail()
    {
        var producer = new TestRecordProducer(ProducerBehavior.Fail);
        await using var tracer = new StepTracer(Options(new FakeTimeProvider(Start)), producer);

        for (long step = 0; step < 3; step++)
        {
            TraceLoss(tracer, step);
            await Poll.UntilAsync(() => tracer.Statistics.DeliveryFailed == step + 1, $"delivery {step} failed");
        }

        producer.Behavior = ProducerBehavior.Deliver;
        TraceLoss(tracer, 3);
        await Poll.UntilAsync(() => tracer.Statistics.Delivered == 1, "the fourth record delivered");

        TracerStatistics statistics = tracer.Statistics;
        Assert.Equal(3, statistics.Lost);
        Assert.Equal(0, statistics.Faults);
        Assert.Equal("test producer: delivery failed", statistics.LastFault);
        StepRecord[] records = [.. producer.Messages.Select(m => Decode(m.Value))];
        Assert.Equal([1UL, 2UL, 3UL, 4UL], records.Select(r => r.Sequence));
        Assert.Equal([0UL, 1UL, 2UL, 3UL], records.Select(r => r.DroppedBefore));
    }

    [Fact]
    public async Task TrainingCalls_KeepReturningAndCountFaults_WhenTheProducerThrows()
    {
        var producer = new TestRecordProducer(ProducerBehavior.Throw);

        await using var tracer = new StepTracer(Options(new FakeTimeProvider(Start)), producer);

        for (long step = 0; step < 5; step++)
        {
            Assert.True(tracer.BeginStep(step));
            tracer.AddValues("fc1.weight", Weights, DType.Float32, [2], [1f, 2f]);
            tracer.AddScalar("loss", Losses, step);
            tracer.EndStep();
        }

        await Poll.UntilAsync(() => tracer.Statistics.DeliveryFailed == 5, "five failed sends");
        TracerStatistics statistics = tracer.Statistics;
        Assert.Equal(5, statistics.RecordsCreated);
        Assert.Equal(5, statistics.Faults);
        Assert.Equal(0, statistics.Delivered);
        Assert.Equal(0, statistics.DroppedQueueFull);
        Assert.StartsWith("send: InvalidOperationException", statistics.LastFault, StringComparison.Ordinal);
        Assert.Equal(5, producer.ProduceCalls);
        Assert.True(tracer.BeginStep(5));
        tracer.EndStep();
    }

    [Fact]
    public async Task EndStep_DoesNothing_WithoutATracedBeginStep()
    {
        var producer = new TestRecordProducer();
        TraceSelection everyOther = TraceSelection.AllEveryStep with { Schedule = new TraceSchedule { EverySteps = 2 } };
        await using var tracer = new StepTracer(Options(new FakeTimeProvider(Start), everyOther), producer);

        tracer.EndStep();
        tracer.EndStep();
        Assert.False(tracer.BeginStep(1));
        tracer.EndStep();
        Assert.True(tracer.BeginStep(2));
        tracer.AddScalar("loss", Losses, 1);
        tracer.EndStep();
        tracer.EndStep();

        // Records leave in order: once the traced step's record arrived, nothing else can be queued before it.
        await Poll.UntilAsync(() => tracer.Statistics.Delivered == 1, "the record delivered");
        StepRecord record = Decode(Assert.Single(producer.Messages).Value);
        Assert.Equal(2, record.Step);
        Assert.Equal(1UL, record.Sequence);
        TracerStatistics statistics = tracer.Statistics;
        Assert.Equal(2, statistics.StepsSeen);
        Assert.Equal(1, statistics.RecordsCreated);
        Assert.Equal(0, statistics.Faults);
        Assert.Equal(0, statistics.QueueLength);
    }

    [Fact]
    public async Task AddValues_LargeTensor_RecordsTheHistogramsSampleSize_SmallTensorZero()
    {
        var producer = new TestRecordProducer();
        await using var tracer = new StepTracer(Options(new FakeTimeProvider(Start)), producer);
        var large = new float[TensorSummarizer.SamplingThreshold + 3];
        for (int i = 0; i < large.Length; i++)
        {
            large[i] = (i % 7) - 3;
        }

        Assert.True(tracer.BeginStep(0));
        tracer.AddValues("large", Weights, DType.Float32, [large.Length], large);
        tracer.AddValues("small", Weights, DType.Float32, [3], [1f, 2f, 3f]);
        tracer.EndStep();

        await Poll.UntilAsync(() => tracer.Statistics.Delivered == 1, "the record delivered");
        StepRecord record = Decode(Assert.Single(producer.Messages).Value);
        Histogram sampled = record.Tensors[0].Summary.Histogram;
        Assert.Equal(1UL << 18, sampled.SampledCount);
        Assert.Equal(sampled.SampledCount, sampled.Counts.Aggregate(0UL, (a, b) => a + b));
        Assert.Equal((ulong)large.Length, record.Tensors[0].Summary.Count);
        Assert.Equal(0UL, record.Tensors[1].Summary.Histogram.SampledCount);
        Assert.Equal(3UL, record.Tensors[1].Summary.Histogram.Counts.Aggregate(0UL, (a, b) => a + b));
    }

    [Fact]
    public async Task AddMethods_NeverThrow_WhenGivenOddInputs()
    {
        var producer = new TestRecordProducer();
        await using var tracer = new StepTracer(Options(new FakeTimeProvider(Start)), producer);

        tracer.AddValues("outside-a-step", Weights, DType.Float32, [1], [1f]);
        tracer.AddScalar("outside-a-step", Losses, 1);
        Assert.True(tracer.BeginStep(0));
        tracer.AddValues("empty", Weights, DType.Float32, [], []);
        tracer.AddValues("zero-sized", Weights, DType.Float32, [0, 5], []);
        tracer.AddValues(null!, Weights, DType.Float32, [1], [1f]);
        Assert.False(tracer.Wants(null!, Weights));
        tracer.AddScalar("nan-loss", Losses, double.NaN);
        tracer.AddScalar("infinite-loss", Losses, double.NegativeInfinity);
        tracer.AddSummary("short-buckets", Gradients, DType.Float32, [3], new TensorStatistics { Count = 3 }, [1, 2, 3]);
        tracer.AddSummary("no-histogram", Gradients, DType.Float32, [], default, []);
        tracer.AddValues("no-collections", CollectionSet.None, DType.Float32, [1], [1f]);
        tracer.EndStep();

        await Poll.UntilAsync(() => tracer.Statistics.Delivered == 1, "the record delivered");
        StepRecord record = Decode(Assert.Single(producer.Messages).Value);
        Assert.Equal(["empty", "zero-sized", "nan-loss", "infinite-loss", "no-histogram"], record.Tensors.Select(t => t.Name));
        Assert.Equal(0UL, record.Tensors[0].Summary.Count);
        Assert.Equal(Log2Histogram.BucketCount, HistogramBuckets.ToArray(record.Tensors[0].Summary.Histogram).Length);
        Assert.Equal(1UL, record.Tensors[2].Summary.NanCount);
        Assert.Equal(1UL, record.Tensors[3].Summary.InfCount);
        Assert.Null(record.Tensors[4].Summary.Histogram);

        // The null name (twice) and the short bucket span are caught and counted, never thrown.
        TracerStatistics statistics = tracer.Statistics;
        Assert.Equal(3, statistics.Faults);
        Assert.StartsWith("add-summary: ", statistics.LastFault, StringComparison.Ordinal);
    }

    [Fact]
    public async Task EndStep_DropsAndCountsRecords_WhenTheQueueIsFull()
    {
        var producer = new TestRecordProducer();
        await using var tracer = new StepTracer(Options(TimeProvider.System, queueCapacity: 2), producer);
        try
        {
            producer.BlockProduce();
            TraceLoss(tracer, 0);
            await Poll.UntilAsync(() => producer.BlockedCalls == 1, "the sender blocked inside Produce with the first record");
            TraceLoss(tracer, 1);
            TraceLoss(tracer, 2);
            Assert.Equal(2, tracer.Statistics.QueueLength);
            TraceLoss(tracer, 3);
            TraceLoss(tracer, 4);

            TracerStatistics whileBlocked = tracer.Statistics;
            Assert.Equal(5, whileBlocked.RecordsCreated);
            Assert.Equal(2, whileBlocked.DroppedQueueFull);
            Assert.Equal(0, whileBlocked.Delivered);
            Assert.Equal(2, whileBlocked.QueueLength);

            producer.UnblockProduce();
            await Poll.UntilAsync(() => producer.ProduceCalls == 3, "the queued records handed to the producer");
            Assert.True(await tracer.FlushAsync(FlushTimeout, TestContext.Current.CancellationToken));
            TraceLoss(tracer, 5);
            await Poll.UntilAsync(() => producer.ProduceCalls == 4, "the last record handed to the producer");
            Assert.True(await tracer.FlushAsync(FlushTimeout, TestContext.Current.CancellationToken));

            TracerStatistics statistics = tracer.Statistics;
            Assert.Equal(6, statistics.RecordsCreated);
            Assert.Equal(2, statistics.DroppedQueueFull);
            Assert.Equal(4, statistics.Delivered);
            Assert.Equal(0, statistics.DeliveryFailed);
            Assert.Equal(0, statistics.Faults);
            StepRecord[] records = [.. producer.Messages.Select(m => Decode(m.Value))];
            Assert.Equal([0L, 1L, 2L, 5L], records.Select(r => r.Step));
            Assert.Equal([1UL, 2UL, 3UL, 6UL], records.Select(r => r.Sequence));
            Assert.Equal([0UL, 0UL, 0UL, 2UL], records.Select(r => r.DroppedBefore));
        }
        finally
        {
            producer.ReleaseAll();
        }
    }

    [Fact]
    public async Task EndStep_ReturnsPromptly_WhenTheQueueIsFullAndMaxEnqueueWaitIsAtItsLimit()
    {
        var producer = new TestRecordProducer();
        await using var tracer = new StepTracer(Options(TimeProvider.System, queueCapacity: 1, maxEnqueueWait: TracerOptions.MaxEnqueueWaitLimit), producer);
        try
        {
            producer.BlockProduce();
            TraceLoss(tracer, 0);
            await Poll.UntilAsync(() => producer.BlockedCalls == 1, "the sender blocked inside Produce");
            TraceLoss(tracer, 1);
            Assert.True(tracer.BeginStep(2));
            tracer.AddScalar("loss", Losses, 2);

            long start = Stopwatch.GetTimestamp();
            tracer.EndStep();
            TimeSpan elapsed = Stopwatch.GetElapsedTime(start);

            // The wait is bounded by 1 ms; 500 ms leaves room for a loaded machine without hiding a real block.
            Assert.InRange(elapsed, TimeSpan.Zero, TimeSpan.FromMilliseconds(500));
            Assert.Equal(1, tracer.Statistics.DroppedQueueFull);
            Assert.Equal(3, tracer.Statistics.RecordsCreated);
        }
        finally
        {
            producer.ReleaseAll();
        }
    }

    [Fact]
    public async Task Statistics_AccountForEveryCreatedRecordExactlyOnce_AfterFlushAsync()
    {
        var producer = new TestRecordProducer(ProducerBehavior.Fail);
        await using var tracer = new StepTracer(Options(TimeProvider.System, queueCapacity: 2), producer);
        try
        {
            TraceLoss(tracer, 0);
            await Poll.UntilAsync(() => tracer.Statistics.DeliveryFailed == 1, "the first delivery failed");
            TraceLoss(tracer, 1);
            await Poll.UntilAsync(() => tracer.Statistics.DeliveryFailed == 2, "the second delivery failed");

            producer.Behavior = ProducerBehavior.Deliver;
            producer.BlockProduce();
            TraceLoss(tracer, 2);
            await Poll.UntilAsync(() => producer.BlockedCalls == 1, "the sender blocked inside Produce");
            TraceLoss(tracer, 3);
            TraceLoss(tracer, 4);
            TraceLoss(tracer, 5);
            TraceLoss(tracer, 6);
            producer.UnblockProduce();
            await Poll.UntilAsync(() => producer.ProduceCalls == 5, "the queued records handed to the producer");
            TraceLoss(tracer, 7);
            await Poll.UntilAsync(() => producer.ProduceCalls == 6, "the last record handed to the producer");

            Assert.True(await tracer.FlushAsync(FlushTimeout, TestContext.Current.CancellationToken));
            TracerStatistics statistics = tracer.Statistics;
            Assert.Equal(8, statistics.RecordsCreated);
            Assert.Equal(2, statistics.DeliveryFailed);
            Assert.Equal(2, statistics.DroppedQueueFull);
            Assert.Equal(4, statistics.Delivered);
            Assert.Equal(statistics.RecordsCreated, statistics.DroppedQueueFull + statistics.Delivered + statistics.DeliveryFailed);
            Assert.Equal(0, statistics.QueueLength);
            StepRecord[] records = [.. producer.Messages.Select(m => Decode(m.Value))];
            Assert.Equal([0L, 1L, 2L, 3L, 4L, 7L], records.Select(r => r.Step));
            Assert.Equal([0UL, 1UL, 2UL, 2UL, 2UL, 4UL], records.Select(r => r.DroppedBefore));
        }
        finally
        {
            producer.ReleaseAll();
        }
    }

    [Fact]
    public async Task FlushAsync_ReturnsFalse_WhenDeliveriesAreStillPendingAtTheTimeout()
    {
        var producer = new TestRecordProducer(ProducerBehavior.Hold);
        await using var tracer = new StepTracer(Options(TimeProvider.System), producer);
        try
        {
            TraceLoss(tracer, 0);
            await Poll.UntilAsync(() => producer.HeldCount == 1, "the delivery report held");

            Assert.False(await tracer.FlushAsync(TimeSpan.FromMilliseconds(200), TestContext.Current.CancellationToken));
            producer.ReleaseHeld();
            Assert.True(await tracer.FlushAsync(FlushTimeout, TestContext.Current.CancellationToken));
            Assert.Equal(1, tracer.Statistics.Delivered);
        }
        finally
        {
            producer.ReleaseAll();
        }
    }

    [Fact]
    public async Task DisposeAsync_WaitsForPendingDeliveries_AndIsIdempotent()
    {
        var producer = new TestRecordProducer(ProducerBehavior.Hold);
        var tracer = new StepTracer(Options(TimeProvider.System), producer, ownsProducer: true);
        try
        {
            for (long step = 0; step < 3; step++)
            {
                TraceLoss(tracer, step);
            }

            await Poll.UntilAsync(() => producer.HeldCount == 3, "three delivery reports held");

            // DisposeAsync flushes by calling the producer's blocking Flush, so it runs on another thread here.
            Task disposal = Task.Run(async () => await tracer.DisposeAsync(), TestContext.Current.CancellationToken);
            await Poll.UntilAsync(() => producer.FlushCalls > 0, "DisposeAsync flushing the producer");
            Assert.False(disposal.IsCompleted);
            Assert.Equal(0, producer.DisposeCalls);

            producer.ReleaseHeld();
            await disposal.WaitAsync(FlushTimeout, TestContext.Current.CancellationToken);
            // The three steps and the end-of-run record DisposeAsync sent before flushing.
            Assert.Equal(4, tracer.Statistics.Delivered);
            Assert.Equal(1, producer.DisposeCalls);

            ValueTask again = tracer.DisposeAsync();
            Assert.True(again.IsCompletedSuccessfully);
            await again;
            Assert.Equal(1, producer.DisposeCalls);
        }
        finally
        {
            producer.ReleaseAll();
            await tracer.DisposeAsync();
        }
    }

    [Fact]
    public async Task DisposeAsync_LeavesTheProducerAlone_WhenItIsNotOwned()
    {
        var producer = new TestRecordProducer();
        var tracer = new StepTracer(Options(new FakeTimeProvider(Start)), producer);
        TraceLoss(tracer, 0);
        await Poll.UntilAsync(() => tracer.Statistics.Delivered == 1, "the record delivered");

        await tracer.DisposeAsync();

        Assert.Equal(0, producer.DisposeCalls);
    }

    [Fact]
    public async Task TrainingCalls_DoNotThrowOrProduce_AfterDisposeAsync()
    {
        var producer = new TestRecordProducer();
        var tracer = new StepTracer(Options(new FakeTimeProvider(Start)), producer);
        await tracer.DisposeAsync();

        tracer.BeginStep(0);
        tracer.AddScalar("loss", Losses, 1);
        tracer.EndStep();

        // Only the end-of-run record DisposeAsync sent.
        Assert.Equal(1, producer.ProduceCalls);
        Assert.NotNull(Decode(producer.Messages[0].Value).RunEnd);
        Assert.Equal(0, tracer.Statistics.Faults);
    }

    [Fact]
    public void Constructor_ThrowsArgumentException_WhenOptionsAreInvalid()
    {
        var options = new TracerOptions { RunId = RunId, Rank = 4, WorldSize = 4 };

        ArgumentException exception = Assert.Throws<ArgumentException>(() => new StepTracer(options, new TestRecordProducer()));

        Assert.Contains("Rank", exception.Message, StringComparison.Ordinal);
    }

    private static TracerOptions Options(TimeProvider time, TraceSelection? selection = null, int queueCapacity = 256, TimeSpan maxEnqueueWait = default) => new()
    {
        RunId = RunId,
        Rank = Rank,
        WorldSize = 4,
        Topic = Topic,
        Selection = selection ?? TraceSelection.AllEveryStep,
        QueueCapacity = queueCapacity,
        MaxEnqueueWait = maxEnqueueWait,
        TimeProvider = time,
    };

    private static void TraceLoss(StepTracer tracer, long step)
    {
        Assert.True(tracer.BeginStep(step));
        tracer.AddScalar("loss", Losses, step);
        tracer.EndStep();
    }

    private static StepRecord Decode(byte[] payload)
    {
        Assert.True(StepRecordDecoder.TryDecode(payload, out StepRecord? record, out DecodeError error), error.ToString());
        return record;
    }

    private static void AssertSummary(in TensorStatistics expected, ulong[] expectedBuckets, TensorSummary actual)
    {
        Assert.Equal((ulong)expected.Count, actual.Count);
        Assert.Equal(expected.Min, actual.Min);
        Assert.Equal(expected.Max, actual.Max);
        Assert.Equal(expected.Mean, actual.Mean);
        Assert.Equal(expected.Variance, actual.Variance);
        Assert.Equal(expected.L1, actual.L1);
        Assert.Equal(expected.L2, actual.L2);
        Assert.Equal(expected.AbsMean, actual.AbsMean);
        Assert.Equal((ulong)expected.ZeroCount, actual.ZeroCount);
        Assert.Equal((ulong)expected.NanCount, actual.NanCount);
        Assert.Equal((ulong)expected.InfCount, actual.InfCount);
        Assert.Equal(HistogramLayout.Log2Magnitude, actual.Histogram.Layout);
        Assert.Empty(actual.Histogram.Edges);
        Assert.Equal(expectedBuckets, HistogramBuckets.ToArray(actual.Histogram));
    }
}
