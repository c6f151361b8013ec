using Monitor.Contracts;
using Monitor.Contracts.V1;
using Monitor.Testing;
using static Monitor.Tracing.Tests.TracerTestSupport;

namespace Monitor.Tracing.Tests;

/// <summary>
/// What a traced step costs the training thread in heap allocations, from <see cref="StepTracer.BeginStep"/> through
/// the adds to <see cref="StepTracer.EndStep"/> queuing the record, once the tracer has warmed up under one selection.
/// </summary>
public sealed class StepTracerAllocationTests
{
    private const int TensorCount = 20;
    private const int Elements = 1_000;
    private const int QueueCapacity = 4;
    private const int StepsPerPass = 10;

    private static readonly CollectionSet Inputs = CollectionSet.Of(Collection.Inputs);

    private static readonly string[] Names = [.. Enumerable.Range(0, TensorCount).Select(i => $"layer{i}.weight")];

    private static readonly float[][] Values =
        [.. Enumerable.Range(0, TensorCount).Select(t => Enumerable.Range(0, Elements).Select(i => (float)Math.Sin((t * Elements) + i)).ToArray())];

    // Arrays made once: a collection expression at the call would allocate one per call (the test's, not the tracer's).
    private static readonly long[] Shape = [10, 100];

    private static readonly long[] BatchShape = [64, 4];

    private static readonly string[] FeatureNames = ["x0", "x1", "x2", "x3"];

    private static readonly float[] Batch = [.. Enumerable.Range(0, 64 * 4).Select(i => (float)i)];

    private static TraceSelection Selection(bool histogram, bool raw) => new()
    {
        Collections = Collections(
            (CollectionNames.Weights, new CollectionFilter { Histogram = histogram, Raw = raw }),
            (CollectionNames.Losses, new CollectionFilter { Histogram = histogram }),
            (CollectionNames.Inputs, new CollectionFilter { Histogram = histogram, Raw = raw })),
        LimitSize = 100,
    };

    private static void AddTensors(StepTracer tracer)
    {
        for (int i = 0; i < TensorCount; i++)
        {
            tracer.AddValues(Names[i], Weights, DType.Float32, Shape, Values[i]);
        }

        tracer.AddScalar("loss", Losses, 0.25);
    }

    [Fact]
    public async Task EndStep_AllocatesNothing_WhenSummariesAndHistogramsOfTwentyTensorsAreTracedWarm()
    {
        StepRecord last = await AssertAllocatesNothingAsync(Selection(histogram: true, raw: false), AddTensors);

        Assert.Equal(TensorCount + 1, last.Tensors.Count);
        Assert.All(last.Tensors, t => Assert.NotNull(t.Summary.Histogram));
        Assert.All(last.Tensors, t => Assert.Null(t.Raw));
    }

    [Fact]
    public async Task EndStep_AllocatesNothing_WhenOnlySummariesAreTracedWarm()
    {
        StepRecord last = await AssertAllocatesNothingAsync(Selection(histogram: false, raw: false), AddTensors);

        Assert.Equal(TensorCount + 1, last.Tensors.Count);
        Assert.All(last.Tensors, t => Assert.Null(t.Summary.Histogram));
    }

    [Fact]
    public async Task EndStep_AllocatesNothing_WhenRawValuesAndSampledBatchRowsAreTracedWarm()
    {
        StepRecord last = await AssertAllocatesNothingAsync(Selection(histogram: true, raw: true), tracer =>
        {
            AddTensors(tracer);
            // 64 rows of 4 features; limitSize 100 keeps 25 whole rows.
            tracer.AddBatch("inputs", Inputs, DType.Float32, BatchShape, Batch, FeatureNames);
        });

        Assert.Equal(TensorCount + 2, last.Tensors.Count);
        Assert.Equal(Values[3][..100], ReadFloat32Le(last.Tensors[3].Raw.Float32Le));
        TensorRecord batch = last.Tensors[^1];
        Assert.Equal(25u, batch.Raw.SampleRows);
        Assert.Equal(FeatureNames, batch.FeatureNames);
    }

    /// <summary>
    /// Warms the tracer up (the queue filled once behind a blocked sender, so that the records a sender running behind
    /// needs have been built at full size), measures <see cref="StepsPerPass"/> steps (least of three passes), asserts zero bytes
    /// and returns the last record delivered.
    /// </summary>
    private static async Task<StepRecord> AssertAllocatesNothingAsync(TraceSelection selection, Action<StepTracer> addTensors)
    {
        var producer = new TestRecordProducer();
        await using var tracer = new StepTracer(Options(selection, queueCapacity: QueueCapacity), producer);
        long step = 0;
        void Step()
        {
            tracer.BeginStep(step++);
            addTensors(tracer);
            tracer.EndStep();
        }

        producer.BlockProduce();
        for (int i = 0; i < QueueCapacity + 4; i++)
        {
            Step();
        }

        producer.UnblockProduce();
        for (int i = 0; i < 3 * StepsPerPass; i++)
        {
            Step();
        }

        long allocated = SteadyStateAllocation.LeastBytes(() =>
        {
            for (int i = 0; i < StepsPerPass; i++)
            {
                Step();
            }
        });

        TestContext.Current.TestOutputHelper?.WriteLine($"{allocated / StepsPerPass} bytes per step");
        // One more step behind an empty queue, so that it is sure to be delivered (the measured ones may be dropped).
        Assert.True(await tracer.FlushAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
        Step();
        Assert.True(await tracer.FlushAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
        Assert.Equal(0, tracer.Statistics.Faults);
        StepRecord last = Decode(producer.Messages[^1].Value);
        Assert.Equal(step - 1, last.Step);
        Assert.Equal(0, allocated);
        return last;
    }
}
