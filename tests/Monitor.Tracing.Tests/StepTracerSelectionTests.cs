using Monitor.Contracts;
using Monitor.Contracts.V1;
using static Monitor.Tracing.Tests.TracerTestSupport;

namespace Monitor.Tracing.Tests;

/// <summary>StepTracer under the selection features: raw values, histogram off, chiefOnly, modes, LastStep.</summary>
public sealed class StepTracerSelectionTests
{
    private static readonly float[] Values = [0.5f, -1.25f, 3f, float.NaN, -0f, 1e-20f, 65504f, -7.75f, 2f, 0.1f];

    [Theory]
    [InlineData(4, 10)]
    [InlineData(1, 10)]
    [InlineData(10, 10)]
    [InlineData(100, 10)]
    [InlineData(4, 3)]
    public async Task AddValues_AddsTheFirstValuesAsLittleEndianFloat32_WhenTheCollectionAsksForRaw(int limitSize, int elements)
    {
        var producer = new TestRecordProducer();
        TraceSelection selection = new() { Collections = Collections((CollectionNames.Weights, new CollectionFilter { Raw = true })), LimitSize = limitSize };
        await using var tracer = new StepTracer(Options(selection), producer);
        float[] values = Values[..elements];

        Assert.True(tracer.BeginStep(0));
        Assert.Equal(limitSize, tracer.RawLimitOf("fc1.weight", Weights));
        tracer.AddValues("fc1.weight", Weights, DType.Float32, [elements], values);
        tracer.EndStep();

        TensorRecord tensor = Assert.Single(Assert.Single(await DeliveredAsync(tracer, producer, 1)).Tensors);
        int kept = Math.Min(limitSize, elements);
        Assert.Equal(Float32Le(values.AsSpan(0, kept)), tensor.Raw.Float32Le.ToByteArray());
        Assert.Equal(values[..kept], ReadFloat32Le(tensor.Raw.Float32Le));
        Assert.Equal((ulong)elements, tensor.Raw.TotalElements);
        Assert.Equal(elements > limitSize, tensor.Raw.Truncated);
        // Raw values come with the summary, not instead of it.
        Assert.Equal((ulong)elements, tensor.Summary.Count);
        Assert.NotNull(tensor.Summary.Histogram);
    }

    [Fact]
    public async Task AddValues_AddsNoRawValues_WhenTheCollectionDoesNotAskForThem()
    {
        var producer = new TestRecordProducer();
        await using var tracer = new StepTracer(Options(TraceSelection.AllEveryStep), producer);

        tracer.BeginStep(0);
        Assert.Equal(0, tracer.RawLimitOf("fc1.weight", Weights));
        tracer.AddValues("fc1.weight", Weights, DType.Float32, [10], Values);
        tracer.EndStep();

        TensorRecord tensor = Assert.Single(Assert.Single(await DeliveredAsync(tracer, producer, 1)).Tensors);
        Assert.Null(tensor.Raw);
    }

    [Fact]
    public async Task AddValues_LeavesOutTheHistogramButKeepsStatistics_WhenTheCollectionTurnsTheHistogramOff()
    {
        var producer = new TestRecordProducer();
        TraceSelection selection = new() { Collections = Collections((CollectionNames.Weights, new CollectionFilter { Histogram = false })) };
        await using var tracer = new StepTracer(Options(selection), producer);
        float[] values = [1f, -2f, 0f, 4f];

        tracer.BeginStep(0);
        tracer.AddValues("fc1.weight", Weights, DType.Float32, [2, 2], values);
        tracer.EndStep();

        TensorRecord tensor = Assert.Single(Assert.Single(await DeliveredAsync(tracer, producer, 1)).Tensors);
        Assert.Null(tensor.Summary.Histogram);
        Assert.Equal(4UL, tensor.Summary.Count);
        Assert.Equal(-2.0, tensor.Summary.Min);
        Assert.Equal(4.0, tensor.Summary.Max);
        Assert.Equal(0.75, tensor.Summary.Mean, 12);
        Assert.Equal(1UL, tensor.Summary.ZeroCount);
        Assert.Equal(7.0, tensor.Summary.L1, 12);
        Assert.Null(tensor.Raw);
    }

    [Fact]
    public async Task AddScalar_AddsOneRawValue_WhenTheCollectionAsksForRaw()
    {
        var producer = new TestRecordProducer();
        TraceSelection selection = new() { Collections = Collections((CollectionNames.Losses, new CollectionFilter { Raw = true, Histogram = false })), LimitSize = 5 };
        await using var tracer = new StepTracer(Options(selection), producer);

        tracer.BeginStep(0);
        tracer.AddScalar("loss", Losses, 0.1);
        tracer.EndStep();

        TensorRecord tensor = Assert.Single(Assert.Single(await DeliveredAsync(tracer, producer, 1)).Tensors);
        Assert.Equal(Float32Le([0.1f]), tensor.Raw.Float32Le.ToByteArray());
        Assert.Equal(1UL, tensor.Raw.TotalElements);
        Assert.False(tensor.Raw.Truncated);
        Assert.Equal(DType.Float64, tensor.Dtype);
        Assert.Equal(0.1, tensor.Summary.Mean);
        Assert.Null(tensor.Summary.Histogram);
    }

    [Fact]
    public async Task AddSummary_AddsTheGivenRawValuesCappedByLimitSize_WhenTheCollectionAsksForRaw()
    {
        var producer = new TestRecordProducer();
        TraceSelection selection = new()
        {
            Collections = Collections((CollectionNames.Gradients, new CollectionFilter { Raw = true }), (CollectionNames.Weights, new CollectionFilter())),
            LimitSize = 3,
        };
        await using var tracer = new StepTracer(Options(selection), producer);
        float[] values = [1f, 2f, 3f, 4f, 5f, 6f];
        var buckets = new ulong[TensorSummarizer.BucketCount];
        TensorSummarizer.Summarize(values, buckets, out TensorStatistics statistics);

        tracer.BeginStep(0);
        tracer.AddSummary("fc1.weight.grad", Gradients, DType.Float16, [6], statistics, buckets, values);
        // The weights collection does not ask for raw values: a raw span given anyway is left out.
        tracer.AddSummary("fc1.weight", Weights, DType.Float16, [6], statistics, buckets, values);
        tracer.EndStep();

        StepRecord record = Assert.Single(await DeliveredAsync(tracer, producer, 1));
        TensorRecord gradient = record.Tensors.Single(t => t.Name == "fc1.weight.grad");
        Assert.Equal(Float32Le([1f, 2f, 3f]), gradient.Raw.Float32Le.ToByteArray());
        Assert.Equal(6UL, gradient.Raw.TotalElements);
        Assert.True(gradient.Raw.Truncated);
        Assert.Equal(DType.Float16, gradient.Dtype);
        Assert.Null(record.Tensors.Single(t => t.Name == "fc1.weight").Raw);
    }

    [Fact]
    public async Task AddSummary_AddsNoRawValues_WhenNoneAreGivenEvenIfAskedFor()
    {
        var producer = new TestRecordProducer();
        TraceSelection selection = new() { Collections = Collections((CollectionNames.Gradients, new CollectionFilter { Raw = true })) };
        await using var tracer = new StepTracer(Options(selection), producer);
        var buckets = new ulong[TensorSummarizer.BucketCount];
        TensorSummarizer.Summarize([1f, 2f], buckets, out TensorStatistics statistics);

        tracer.BeginStep(0);
        tracer.AddSummary("g", Gradients, DType.Float32, [2], statistics, buckets);
        tracer.EndStep();

        TensorRecord tensor = Assert.Single(Assert.Single(await DeliveredAsync(tracer, producer, 1)).Tensors);
        Assert.Null(tensor.Raw);
        Assert.Equal(0, tracer.Statistics.Faults);
    }

    [Fact]
    public async Task BeginStep_TracesNothingOnRankOne_WhenChiefOnly()
    {
        var producer = new TestRecordProducer();
        await using var tracer = new StepTracer(Options(TraceSelection.AllEveryStep with { ChiefOnly = true }, rank: 1), producer);

        for (long step = 0; step < 3; step++)
        {
            Assert.False(tracer.BeginStep(step));
            Assert.False(tracer.Wants("loss", Losses));
            tracer.AddScalar("loss", Losses, 1.0);
            tracer.EndStep();
        }

        Assert.True(await tracer.FlushAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
        Assert.Empty(producer.Messages);
        Assert.Equal(3, tracer.Statistics.StepsSeen);
        Assert.Equal(0, tracer.Statistics.StepsTraced);
        Assert.Equal(0, tracer.Statistics.RecordsCreated);
    }

    [Fact]
    public async Task BeginStep_TracesRankZero_WhenChiefOnly()
    {
        var producer = new TestRecordProducer();
        await using var tracer = new StepTracer(Options(TraceSelection.AllEveryStep with { ChiefOnly = true }, rank: 0), producer);

        Assert.True(tracer.BeginStep(0));
        tracer.AddScalar("loss", Losses, 1.0);
        tracer.EndStep();

        StepRecord record = Assert.Single(await DeliveredAsync(tracer, producer, 1));
        Assert.Equal(0u, record.Rank);
        Assert.Equal("loss", Assert.Single(record.Tensors).Name);
    }

    [Fact]
    public async Task BeginStep_TracesOnlyTheSelectedModes_WhenModesAreGiven()
    {
        var producer = new TestRecordProducer();
        await using var tracer = new StepTracer(Options(TraceSelection.AllEveryStep with { Modes = ["eval"] }), producer);

        Mode[] modes = [Mode.Train, Mode.Eval, Mode.Train, Mode.Predict, Mode.Eval];
        for (int step = 0; step < modes.Length; step++)
        {
            Assert.Equal(modes[step] == Mode.Eval, tracer.BeginStep(step, modes[step]));
            tracer.AddScalar("loss", Losses, step);
            tracer.EndStep();
        }

        StepRecord[] records = await DeliveredAsync(tracer, producer, 2);
        Assert.Equal([1L, 4L], records.Select(r => r.Step));
        Assert.All(records, r => Assert.Equal(Mode.Eval, r.Mode));
        Assert.Equal(2, tracer.Statistics.StepsTraced);
    }

    [Fact]
    public async Task BeginStep_TracesEveryMode_WhenModesIsEmpty()
    {
        var producer = new TestRecordProducer();
        await using var tracer = new StepTracer(Options(TraceSelection.AllEveryStep), producer);

        Mode[] modes = [Mode.Train, Mode.Eval, Mode.Predict];
        for (int step = 0; step < modes.Length; step++)
        {
            Assert.True(tracer.BeginStep(step, modes[step]));
            tracer.EndStep();
        }

        StepRecord[] records = await DeliveredAsync(tracer, producer, 3);
        Assert.Equal(modes, records.Select(r => r.Mode));
    }

    [Fact]
    public async Task BeginStep_AppliesModesOfAnUpdatedSelection_FromTheNextStep()
    {
        var producer = new TestRecordProducer();
        await using var tracer = new StepTracer(Options(TraceSelection.AllEveryStep), producer);

        Assert.True(tracer.BeginStep(0, Mode.Train));
        Assert.Null(tracer.UpdateSelection(TraceSelection.AllEveryStep with { Version = 2, Modes = ["predict"] }));
        tracer.EndStep();
        Assert.False(tracer.BeginStep(1, Mode.Train));
        tracer.EndStep();
        Assert.True(tracer.BeginStep(2, Mode.Predict));
        tracer.EndStep();

        StepRecord[] records = await DeliveredAsync(tracer, producer, 2);
        Assert.Equal([0L, 2L], records.Select(r => r.Step));
        Assert.Equal([0L, 2L], records.Select(r => r.SelectionVersion));
    }

    [Fact]
    public async Task UpdateSelection_ReturnsTheProblems_WhenANewFieldIsInvalid()
    {
        await using var tracer = new StepTracer(Options(TraceSelection.AllEveryStep), new TestRecordProducer());

        string? reason = tracer.UpdateSelection(new TraceSelection { Version = 3, LimitSize = 0, Modes = ["fit"] });

        Assert.NotNull(reason);
        Assert.Contains("limitSize", reason, StringComparison.Ordinal);
        Assert.Contains("modes[0]", reason, StringComparison.Ordinal);
        Assert.Same(TraceSelection.AllEveryStep, tracer.Selection);
    }

    [Fact]
    public async Task LastStep_FollowsBeginStep_TracedOrNot()
    {
        await using var tracer = new StepTracer(Options(TraceSelection.AllEveryStep with { Schedule = new TraceSchedule { EverySteps = 2 } }), new TestRecordProducer());

        Assert.Equal(-1, tracer.LastStep);
        Assert.True(tracer.BeginStep(10));
        Assert.Equal(10, tracer.LastStep);
        tracer.EndStep();
        Assert.Equal(10, tracer.LastStep);
        Assert.False(tracer.BeginStep(11));
        Assert.Equal(11, tracer.LastStep);
        tracer.EndStep();
        // Follows the step begun, even when it goes back (a restart from a checkpoint).
        tracer.BeginStep(4);
        Assert.Equal(4, tracer.LastStep);
        tracer.EndStep();
    }
}
