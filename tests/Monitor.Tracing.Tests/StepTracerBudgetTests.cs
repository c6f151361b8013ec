using Monitor.Contracts;
using Monitor.Contracts.V1;
using Monitor.Testing;
using static Monitor.Tracing.Tests.TracerTestSupport;

namespace Monitor.Tracing.Tests;

/// <summary>
/// The overhead budget, driven by a fake clock: each traced weight "costs" a fixed time inside the tracer's cost scope
/// (as an adapter's capture would), and each step lasts a fixed time, so the controller's decisions are exact.
/// </summary>
public sealed class StepTracerBudgetTests
{
    private const int TensorCount = 8;
    // Large enough that the weights are what the controller weighs, not the scalars' fixed costs.
    private const int Elements = 100_000;

    private static readonly string[] Names = [.. Enumerable.Range(0, TensorCount).Select(i => $"w{i}")];
    private static readonly float[] Values = [.. Enumerable.Range(0, Elements).Select(i => (float)Math.Sin(i))];
    private static readonly long[] Shape = [Elements];
    private static readonly CollectionSet Optimizer = CollectionSet.Of(Collection.Optimizer);

    // Eight weights at 1.25 ms each in a 100 ms step: 10%, five times the default 2% budget.
    private static readonly TimeSpan CostPerTensor = TimeSpan.FromMilliseconds(1.25);
    private static readonly TimeSpan ShortStep = TimeSpan.FromMilliseconds(100);

    private static TraceSelection WeightsAndLosses(TraceBudget? budget = null, TraceSchedule? schedule = null, IReadOnlyList<string>? pin = null,
        IReadOnlyList<string>? tensors = null) => new()
    {
        Collections = Collections((CollectionNames.Weights, new CollectionFilter()), (CollectionNames.Losses, new CollectionFilter()),
            (CollectionNames.Optimizer, new CollectionFilter())),
        Budget = budget,
        Schedule = schedule ?? new TraceSchedule(),
        Pin = pin ?? [],
        Tensors = tensors ?? [],
    };

    private sealed class Run : IAsyncDisposable
    {
        private readonly ManualClock _time = new();
        private long _step;

        public Run(TraceSelection selection, double? overheadBudget = TracerOptions.DefaultOverheadBudget, int queueCapacity = 256) =>
            Tracer = new StepTracer(new TracerOptions
            {
                RunId = TracerTestSupport.RunId,
                Topic = "test.steps",
                Selection = selection,
                OverheadBudget = overheadBudget,
                TimeProvider = _time,
                QueueCapacity = queueCapacity,
            }, Producer);

        public TestRecordProducer Producer { get; } = new();

        public StepTracer Tracer { get; }

        public TimeSpan CostPerTensor { get; set; } = StepTracerBudgetTests.CostPerTensor;

        public TimeSpan StepTime { get; set; } = ShortStep;

        /// <summary>One step: the weights the tracer wants cost <see cref="CostPerTensor"/> each; the loss and the
        /// learning rate are scalars.</summary>
        public void Step()
        {
            Tracer.BeginStep(_step++);
            TimeSpan spent = TimeSpan.Zero;
            using (Tracer.MeasureCost())
            {
                foreach (string name in Names)
                {
                    if (Tracer.Wants(name, Weights))
                    {
                        Tracer.AddValues(name, Weights, DType.Float32, Shape, Values);
                        _time.Advance(CostPerTensor);
                        spent += CostPerTensor;
                    }
                }

                Tracer.AddScalar("loss", Losses, 0.5);
                Tracer.AddScalar("optimizer.param_groups.0.lr", Optimizer, 0.01);
            }

            Tracer.EndStep();
            _time.Advance(StepTime - spent);
        }

        public void Steps(int count)
        {
            for (int i = 0; i < count; i++)
            {
                Step();
            }
        }

        public async Task<StepRecord[]> RecordsAsync()
        {
            Assert.True(await Tracer.FlushAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
            return [.. Producer.Messages.Select(m => Decode(m.Value)).Where(r => r.RunEnd is null)];
        }

        public ValueTask DisposeAsync() => Tracer.DisposeAsync();
    }

    private static string[] Traced(StepRecord record) => [.. record.Tensors.Select(t => t.Name)];

    // Two windows in: the weights cost 10% of the step, thinned to every 8th step (1.25%).
    private static Run ThinnedToStrideEight()
    {
        var run = new Run(WeightsAndLosses());
        run.Steps(OverheadGovernor.MinWindowSteps + 8);
        Assert.Equal(8, run.Tracer.Statistics.Thinned.Single().Stride);
        return run;
    }

    [Fact]
    public async Task Stride_GrowsUntilTheCostIsWithinBudget_WhenOverBudget()
    {
        await using Run run = new Run(WeightsAndLosses());

        run.Steps(OverheadGovernor.MinWindowSteps + 40);

        StepRecord[] records = await run.RecordsAsync();
        // The first window traces everything (10%); the controller then plans for 3/4 of the budget: 10% / 8 = 1.25%.
        Assert.All(records.Take(OverheadGovernor.MinWindowSteps), r => Assert.Equal(TensorCount + 2, r.Tensors.Count));
        Assert.All(records.Skip(OverheadGovernor.MinWindowSteps), r =>
        {
            ThinnedCollection thinned = Assert.Single(r.Thinned);
            Assert.Equal(Collection.Weights, thinned.Collection);
            Assert.Equal(8u, thinned.Stride);
            Assert.Equal((uint)TensorCount - 1, thinned.SkippedTensors);
            Assert.Equal(3, r.Tensors.Count);
        });
        Assert.Equal(0.1, records[OverheadGovernor.MinWindowSteps].OverheadRatio, 6);
        Assert.Equal(0.0125, records[^1].OverheadRatio, 6);
        TracerStatistics statistics = run.Tracer.Statistics;
        Assert.Equal(0.0125, statistics.OverheadRatio, 6);
        Assert.Equal(TracerOptions.DefaultOverheadBudget, statistics.OverheadBudget);
        Assert.Equal([new ThinnedCollectionStatus(CollectionNames.Weights, 8)], statistics.Thinned);
        Assert.Equal(40 * (TensorCount - 1), statistics.TensorsThinned);
    }

    [Fact]
    public async Task Rotation_TracesEveryTensorOnceInEachRunOfStrideSteps_WhenThinned()
    {
        await using Run run = new Run(WeightsAndLosses());

        run.Steps(OverheadGovernor.MinWindowSteps + 32);

        StepRecord[] thinned = [.. (await run.RecordsAsync()).Skip(OverheadGovernor.MinWindowSteps)];
        for (int start = 0; start + 8 <= thinned.Length; start++)
        {
            string[] weights = [.. thinned.Skip(start).Take(8).SelectMany(Traced).Where(n => n.StartsWith('w'))];
            Assert.Equal(Names.Order(StringComparer.Ordinal), weights.Order(StringComparer.Ordinal));
        }
    }

    [Fact]
    public async Task LossesAndLearningRates_AreInEveryRecord_WhenTheirCollectionsAreThinned()
    {
        await using Run run = new Run(WeightsAndLosses());

        run.Steps(OverheadGovernor.MinWindowSteps + 16);

        Assert.All(await run.RecordsAsync(), r => Assert.Subset(Traced(r).ToHashSet(), new HashSet<string> { "loss", "optimizer.param_groups.0.lr" }));
    }

    [Fact]
    public async Task PinnedAndNamedTensors_AreInEveryRecord_WhenTheirCollectionIsThinned()
    {
        await using Run run = new Run(WeightsAndLosses(pin: ["^w3$"], tensors: ["w5"]));

        run.Steps(OverheadGovernor.MinWindowSteps + 16);

        StepRecord[] records = await run.RecordsAsync();
        Assert.All(records, r => Assert.Subset(Traced(r).ToHashSet(), new HashSet<string> { "w3", "w5" }));
        Assert.All(records.Skip(OverheadGovernor.MinWindowSteps), r => Assert.NotEmpty(r.Thinned));
    }

    [Fact]
    public async Task Stride_Shrinks_WhenTheStepsGrowLongerAndTheCostFallsWellUnderBudget()
    {
        await using Run run = ThinnedToStrideEight();

        // Ten times longer steps: the thinned weights cost 0.125%, the whole collection would cost 1%: half the budget.
        // A step counts at most twice the previous window's mean, so the longer steps are counted in full from the
        // fourth window on (200, 400, 800 ms, then 1 s); the strides halve on the way. A window closes when the step
        // after its last begins.
        run.StepTime = TimeSpan.FromSeconds(1);
        run.Steps((5 * OverheadGovernor.MinWindowSteps) + 1);

        Assert.Empty(run.Tracer.Statistics.Thinned);
        StepRecord last = (await run.RecordsAsync())[^1];
        Assert.Empty(last.Thinned);
        Assert.Equal(TensorCount + 2, last.Tensors.Count);
    }

    [Fact]
    public async Task Stride_StaysPut_WhenOneStepIncludesAPause()
    {
        await using Run run = ThinnedToStrideEight();

        // An evaluation pass of a minute between two training steps: counted as two steps, it leaves the window at
        // 1.1%, over half the budget, where a minute counted in full would have read 0.02% and ended the thinning.
        run.StepTime = TimeSpan.FromMinutes(1);
        run.Step();
        run.StepTime = ShortStep;
        run.Steps(OverheadGovernor.MinWindowSteps * 2);

        Assert.Equal([new ThinnedCollectionStatus(CollectionNames.Weights, 8)], run.Tracer.Statistics.Thinned);
        StepRecord[] records = await run.RecordsAsync();
        Assert.All(records[^OverheadGovernor.MinWindowSteps..], r => Assert.Equal(8u, Assert.Single(r.Thinned).Stride));
    }

    [Fact]
    public async Task Stride_StaysPut_WhenTheCostIsBetweenHalfTheBudgetAndTheBudget()
    {
        await using Run run = ThinnedToStrideEight();

        // 1.25 ms of 80 ms: 1.56%, under the budget but over half of it; unthinning would double it.
        run.StepTime = TimeSpan.FromMilliseconds(80);
        run.Steps(64);

        Assert.Equal([new ThinnedCollectionStatus(CollectionNames.Weights, 8)], run.Tracer.Statistics.Thinned);
    }

    [Fact]
    public async Task NothingIsThinned_WhenTheScheduleSetsEverySteps()
    {
        await using Run run = new Run(WeightsAndLosses(schedule: new TraceSchedule { EverySteps = 1 }));

        run.Steps(OverheadGovernor.MinWindowSteps * 4);

        StepRecord[] records = await run.RecordsAsync();
        Assert.All(records, r =>
        {
            Assert.Empty(r.Thinned);
            Assert.Equal(TensorCount + 2, r.Tensors.Count);
        });
        Assert.Equal(0.1, records[^1].OverheadRatio, 6);
        Assert.Null(run.Tracer.Statistics.OverheadBudget);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task NothingIsThinned_WhenTheBudgetIsNone(bool inTheSelection)
    {
        await using Run run = new Run(WeightsAndLosses(inTheSelection ? TraceBudget.None : null), inTheSelection ? TracerOptions.DefaultOverheadBudget : null);

        run.Steps(OverheadGovernor.MinWindowSteps * 4);

        Assert.All(await run.RecordsAsync(), r => Assert.Equal(TensorCount + 2, r.Tensors.Count));
        Assert.Null(run.Tracer.Statistics.OverheadBudget);
        Assert.Equal(0.1, run.Tracer.Statistics.OverheadRatio, 6);
    }

    [Fact]
    public async Task SelectionBudget_TakesEffectAtTheNextStep_WhenUpdated()
    {
        await using Run run = new Run(WeightsAndLosses());
        run.Steps(OverheadGovernor.MinWindowSteps + 4);

        Assert.Null(run.Tracer.UpdateSelection(WeightsAndLosses(TraceBudget.None) with { Version = 2 }));
        run.Step();
        Assert.Null(run.Tracer.UpdateSelection(WeightsAndLosses(new TraceBudget(0.5)) with { Version = 3 }));
        run.Steps(OverheadGovernor.MinWindowSteps * 2);

        StepRecord[] records = await run.RecordsAsync();
        StepRecord first = records.First(r => r.SelectionVersion == 2);
        Assert.Empty(first.Thinned);
        Assert.Equal(TensorCount + 2, first.Tensors.Count);
        // 10% is within a 50% budget: nothing is thinned again.
        Assert.All(records.Where(r => r.SelectionVersion == 3), r => Assert.Equal(TensorCount + 2, r.Tensors.Count));
        Assert.Equal(0.5, run.Tracer.Statistics.OverheadBudget);
    }

    [Fact]
    public async Task NothingIsThinned_WhenTheCostIsUnderATenthOfAMillisecondAStep()
    {
        // 8 x 10 us in a 1 ms step: 8%, four times the budget, but 80 us a step.
        await using Run run = new Run(WeightsAndLosses());
        run.CostPerTensor = TimeSpan.FromMicroseconds(10);
        run.StepTime = TimeSpan.FromMilliseconds(1);

        run.Steps(OverheadGovernor.MinWindowSteps * 4);

        Assert.Empty(run.Tracer.Statistics.Thinned);
        Assert.Equal(0.08, run.Tracer.Statistics.OverheadRatio, 6);
    }

    [Fact]
    public async Task ThinnedSteps_AllocateNothing_WhenWarm()
    {
        // A queue shorter than the pool keeps: however far the sender falls behind, the records in flight are pooled.
        const int queueCapacity = 4;
        await using Run run = new Run(WeightsAndLosses(), queueCapacity: queueCapacity);
        run.Steps(OverheadGovernor.MinWindowSteps * 6);
        Assert.NotEmpty(run.Tracer.Statistics.Thinned);
        // A full queue once, so that the pool holds every record a slow sender can keep in flight (a busy 2-core CI
        // machine lets the sender fall behind; a record rented from an empty pool is new, and that is by design).
        run.Producer.BlockProduce();
        run.Steps(queueCapacity + 4);
        run.Producer.UnblockProduce();

        long allocated = SteadyStateAllocation.LeastBytes(() => run.Steps(16));

        Assert.Equal(0, allocated);
        // The measured steps may have been dropped (a short queue, a sender starved); one more behind an empty queue is
        // sure to be delivered.
        Assert.True(await run.Tracer.FlushAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
        run.Step();
        Assert.NotEmpty((await run.RecordsAsync())[^1].Thinned);
    }

    /// <summary>A clock moved by hand that, unlike FakeTimeProvider's Advance, allocates nothing (the allocation test
    /// moves it inside the measured steps).</summary>
    private sealed class ManualClock : TimeProvider
    {
        private static readonly DateTimeOffset Start = new(2026, 5, 6, 7, 8, 9, TimeSpan.Zero);
        private long _ticks;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => _ticks;

        public override DateTimeOffset GetUtcNow() => Start + TimeSpan.FromTicks(_ticks);

        public void Advance(TimeSpan by) => _ticks += by.Ticks;
    }
}
