using Monitor.Contracts;
using Monitor.Contracts.V1;
using static Monitor.Tracing.Tests.TracerTestSupport;

namespace Monitor.Tracing.Tests;

/// <summary><see cref="StepTracer.AddBatch"/>: batches of examples with named features, sampled by whole rows.</summary>
public sealed class StepTracerBatchTests
{
    private static readonly CollectionSet Inputs = CollectionSet.Of(Collection.Inputs);

    private static TraceSelection RawInputs(int limitSize) => new()
    {
        Collections = new Dictionary<string, CollectionFilter> { [CollectionNames.Inputs] = new() { Raw = true } },
        LimitSize = limitSize,
    };

    /// <summary>A batch of <paramref name="rows"/> rows of <paramref name="columns"/> values: row r, column c holds r * 100 + c.</summary>
    private static float[] Batch(int rows, int columns) =>
        [.. Enumerable.Range(0, rows * columns).Select(i => (float)((i / columns * 100) + (i % columns)))];

    [Fact]
    public async Task AddBatch_KeepsEveryRowAndTheFeatureNames_WhenTheBatchFitsTheLimit()
    {
        var producer = new TestRecordProducer();
        await using var tracer = new StepTracer(Options(RawInputs(1000)), producer);
        float[] values = Batch(10, 3);

        tracer.BeginStep(0);
        tracer.AddBatch("inputs", Inputs, DType.Float32, [10, 3], values, ["a", "b", "c"]);
        tracer.EndStep();

        TensorRecord tensor = Assert.Single((await DeliveredAsync(tracer, producer, 1))[0].Tensors);
        Assert.Equal(["a", "b", "c"], tensor.FeatureNames);
        Assert.Equal(10u, tensor.Raw.SampleRows);
        Assert.False(tensor.Raw.Truncated);
        Assert.Equal(30ul, tensor.Raw.TotalElements);
        Assert.Equal(values, ReadFloat32Le(tensor.Raw.Float32Le));
        Assert.Equal(30ul, tensor.Summary.Count);
    }

    [Fact]
    public async Task AddBatch_SamplesWholeRowsEvenlySpaced_WhenTheLimitHoldsFewerRows()
    {
        var producer = new TestRecordProducer();
        await using var tracer = new StepTracer(Options(RawInputs(13)), producer);
        float[] values = Batch(10, 3);

        tracer.BeginStep(0);
        tracer.AddBatch("inputs", Inputs, DType.Float32, [10, 3], values, ["a", "b", "c"]);
        tracer.EndStep();

        TensorRecord tensor = Assert.Single((await DeliveredAsync(tracer, producer, 1))[0].Tensors);
        // 13 values hold 4 rows of 3: rows floor(i * 10 / 4) = 0, 2, 5, 7.
        Assert.Equal(4u, tensor.Raw.SampleRows);
        Assert.True(tensor.Raw.Truncated);
        Assert.Equal([0f, 1, 2, 200, 201, 202, 500, 501, 502, 700, 701, 702], ReadFloat32Le(tensor.Raw.Float32Le));
        // The summary still covers every value of the batch.
        Assert.Equal(30ul, tensor.Summary.Count);
        Assert.Equal(902.0, tensor.Summary.Max);
    }

    [Fact]
    public async Task AddBatch_LeavesOutTheNamesAndCountsAFault_WhenTheirNumberIsNotTheColumns()
    {
        var producer = new TestRecordProducer();
        await using var tracer = new StepTracer(Options(RawInputs(1000)), producer);

        tracer.BeginStep(0);
        tracer.AddBatch("inputs", Inputs, DType.Float32, [4, 3], Batch(4, 3), ["a", "b"]);
        tracer.EndStep();

        TensorRecord tensor = Assert.Single((await DeliveredAsync(tracer, producer, 1))[0].Tensors);
        Assert.Empty(tensor.FeatureNames);
        Assert.Equal(4u, tensor.Raw.SampleRows);
        Assert.Equal(1, tracer.Statistics.Faults);
        Assert.Contains("2 feature names for 3 columns", tracer.Statistics.LastFault, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AddBatch_SendsOnlyTheSummary_WhenOneRowIsLargerThanTheLimit()
    {
        var producer = new TestRecordProducer();
        await using var tracer = new StepTracer(Options(RawInputs(2)), producer);

        tracer.BeginStep(0);
        tracer.AddBatch("inputs", Inputs, DType.Float32, [4, 3], Batch(4, 3));
        tracer.EndStep();

        TensorRecord tensor = Assert.Single((await DeliveredAsync(tracer, producer, 1))[0].Tensors);
        Assert.Null(tensor.Raw);
        Assert.Equal(12ul, tensor.Summary.Count);
    }

    [Fact]
    public async Task AddBatchSummary_KeepsTheSampledRowsItIsGiven()
    {
        var producer = new TestRecordProducer();
        await using var tracer = new StepTracer(Options(RawInputs(6)), producer);
        float[] values = Batch(10, 3);
        var buckets = new ulong[TensorSummarizer.BucketCount];
        TensorSummarizer.Summarize(values, buckets, out TensorStatistics statistics);
        int kept = StepTracer.BatchSampleRows([10, 3], 6);
        float[] rows = [.. Enumerable.Range(0, kept).SelectMany(i => values.Skip((int)StepTracer.BatchSampleRow(i, kept, 10) * 3).Take(3))];

        tracer.BeginStep(0);
        tracer.AddBatchSummary("inputs", Inputs, DType.Float32, [10, 3], statistics, buckets, rows, ["a", "b", "c"]);
        tracer.EndStep();

        TensorRecord tensor = Assert.Single((await DeliveredAsync(tracer, producer, 1))[0].Tensors);
        Assert.Equal(2, kept);
        Assert.Equal(2u, tensor.Raw.SampleRows);
        Assert.Equal([0f, 1, 2, 500, 501, 502], ReadFloat32Le(tensor.Raw.Float32Le));
        Assert.Equal(["a", "b", "c"], tensor.FeatureNames);
    }

    [Theory]
    [InlineData(0, 4, 10, 0)]
    [InlineData(1, 4, 10, 2)]
    [InlineData(3, 4, 10, 7)]
    [InlineData(5, 10, 10, 5)]
    [InlineData(2, 3, 3_000_000_000, 2_000_000_000)]
    public void BatchSampleRow_IsFloorOfIndexTimesBatchOverKept(long index, long kept, long batch, long expected) =>
        Assert.Equal(expected, StepTracer.BatchSampleRow(index, kept, batch));
}
