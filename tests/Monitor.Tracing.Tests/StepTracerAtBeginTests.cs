using Monitor.Contracts;
using Monitor.Contracts.V1;
using static Monitor.Tracing.Tests.TracerTestSupport;

namespace Monitor.Tracing.Tests;

/// <summary>The one-shot at-begin capture of a selection (TF-Tracer's <c>at_begin</c>).</summary>
public sealed class StepTracerAtBeginTests
{
    private static readonly float[] WeightValues = [0.25f, -0.5f, 1.5f, -2f, 3.25f, 0f];

    /// <summary>Steps trace only the loss; the at-begin capture takes the fc1 weights and one explicit tensor, 4 elements each.</summary>
    private static TraceSelection WithAtBegin(long version = 4) => new()
    {
        Version = version,
        Collections = Collections((CollectionNames.Losses, new CollectionFilter())),
        LimitSize = 1000,
        AtBegin = new AtBeginCapture
        {
            Collections = Collections((CollectionNames.Weights, new CollectionFilter { Include = ["^fc1\\."] })),
            Tensors = ["embedding.table"],
            LimitSize = 4,
        },
    };

    [Fact]
    public async Task BeginAtBeginCapture_ReturnsTrueOnce_ForTheStartUpSelection()
    {
        await using var tracer = new StepTracer(Options(WithAtBegin()), new TestRecordProducer());

        Assert.True(tracer.BeginAtBeginCapture(0));
        Assert.True(tracer.IsTracingStep);
        tracer.EndStep();
        Assert.False(tracer.BeginAtBeginCapture(0));
        Assert.False(tracer.IsTracingStep);
        Assert.True(tracer.BeginStep(0));
        tracer.EndStep();
        Assert.False(tracer.BeginAtBeginCapture(1));
    }

    [Fact]
    public async Task EndStep_SendsAnAtBeginRecord_WithOnlyTheAtBeginTensorsAndRawValuesCappedByItsLimit()
    {
        var producer = new TestRecordProducer();
        await using var tracer = new StepTracer(Options(WithAtBegin(version: 4), rank: 1), producer);

        Assert.True(tracer.BeginAtBeginCapture(7));
        Assert.True(tracer.Wants("fc1.weight", Weights));
        Assert.False(tracer.Wants("fc2.weight", Weights));
        Assert.False(tracer.Wants("loss", Losses));
        Assert.Equal(4, tracer.RawLimitOf("fc1.weight", Weights));
        tracer.AddValues("fc1.weight", Weights, DType.Float32, [2, 3], WeightValues);
        tracer.AddValues("fc2.weight", Weights, DType.Float32, [2, 3], WeightValues);
        tracer.AddValues("fc1.bias", Biases, DType.Float32, [3], [1f, 2f, 3f]);
        tracer.AddScalar("loss", Losses, 0.5);
        tracer.AddValues("embedding.table", CollectionSet.Of(Collection.Custom), DType.Float32, [3], [9f, 8f, 7f]);
        tracer.EndStep();

        StepRecord record = Assert.Single(await DeliveredAsync(tracer, producer, 1));
        Assert.True(record.AtBegin);
        Assert.Equal(7, record.Step);
        Assert.Equal(4, record.SelectionVersion);
        Assert.Equal(1u, record.Rank);
        Assert.Equal(1UL, record.Sequence);
        Assert.Equal(["fc1.weight", "embedding.table"], record.Tensors.Select(t => t.Name));
        TensorRecord weight = record.Tensors[0];
        Assert.Equal(Float32Le(WeightValues.AsSpan(0, 4)), weight.Raw.Float32Le.ToByteArray());
        Assert.Equal(6UL, weight.Raw.TotalElements);
        Assert.True(weight.Raw.Truncated);
        Assert.Equal(6UL, weight.Summary.Count);
        Assert.Equal([2L, 3L], weight.Shape);
        // Explicitly named at-begin tensors get raw values too.
        TensorRecord table = record.Tensors[1];
        Assert.Equal([9f, 8f, 7f], ReadFloat32Le(table.Raw.Float32Le));
        Assert.False(table.Raw.Truncated);
    }

    [Fact]
    public async Task BeginStep_AfterTheAtBeginCapture_TracesUnderTheStepSelection()
    {
        var producer = new TestRecordProducer();
        await using var tracer = new StepTracer(Options(WithAtBegin(version: 4)), producer);

        Assert.True(tracer.BeginAtBeginCapture(0));
        tracer.AddValues("fc1.weight", Weights, DType.Float32, [6], WeightValues);
        tracer.EndStep();
        Assert.True(tracer.BeginStep(0));
        Assert.False(tracer.Wants("fc1.weight", Weights));
        tracer.AddValues("fc1.weight", Weights, DType.Float32, [6], WeightValues);
        tracer.AddScalar("loss", Losses, 0.5);
        tracer.EndStep();
        Assert.True(tracer.BeginStep(1));
        tracer.AddScalar("loss", Losses, 0.4);
        tracer.EndStep();

        StepRecord[] records = await DeliveredAsync(tracer, producer, 3);
        Assert.Equal([true, false, false], records.Select(r => r.AtBegin));
        Assert.Equal([0L, 0L, 1L], records.Select(r => r.Step));
        Assert.Equal([1UL, 2UL, 3UL], records.Select(r => r.Sequence));
        Assert.All(records, r => Assert.Equal(4, r.SelectionVersion));
        Assert.All(records.Skip(1), r =>
        {
            TensorRecord loss = Assert.Single(r.Tensors);
            Assert.Equal("loss", loss.Name);
            Assert.Null(loss.Raw);
        });
        Assert.Equal(Mode.Train, records[1].Mode);
        // The at-begin capture is not a traced step; it is a record.
        Assert.Equal(2, tracer.Statistics.StepsTraced);
        Assert.Equal(3, tracer.Statistics.RecordsCreated);
    }

    [Fact]
    public async Task BeginAtBeginCapture_ReturnsTrueOnceMore_WhenAnUpdatedSelectionHasAnAtBegin()
    {
        var producer = new TestRecordProducer();
        await using var tracer = new StepTracer(Options(WithAtBegin(version: 0)), producer);

        Assert.True(tracer.BeginAtBeginCapture(0));
        tracer.AddValues("fc1.weight", Weights, DType.Float32, [6], WeightValues);
        tracer.EndStep();
        Assert.True(tracer.BeginStep(0));
        tracer.EndStep();

        TraceSelection next = WithAtBegin(version: 9) with
        {
            AtBegin = new AtBeginCapture { Collections = Collections((CollectionNames.Biases, new CollectionFilter())), LimitSize = 2 },
        };
        Assert.Null(tracer.UpdateSelection(next));
        Assert.True(tracer.BeginAtBeginCapture(1));
        tracer.AddValues("fc1.weight", Weights, DType.Float32, [6], WeightValues);
        tracer.AddValues("fc1.bias", Biases, DType.Float32, [3], [1f, 2f, 3f]);
        tracer.EndStep();
        Assert.False(tracer.BeginAtBeginCapture(1));
        Assert.True(tracer.BeginStep(1));
        tracer.EndStep();
        Assert.False(tracer.BeginAtBeginCapture(2));

        StepRecord[] records = await DeliveredAsync(tracer, producer, 4);
        Assert.Equal([true, false, true, false], records.Select(r => r.AtBegin));
        Assert.Equal([0L, 0L, 9L, 9L], records.Select(r => r.SelectionVersion));
        TensorRecord bias = Assert.Single(records[2].Tensors);
        Assert.Equal("fc1.bias", bias.Name);
        Assert.Equal([1f, 2f], ReadFloat32Le(bias.Raw.Float32Le));
        Assert.True(bias.Raw.Truncated);
    }

    [Fact]
    public async Task BeginAtBeginCapture_ReturnsFalse_WhenTheUpdatedSelectionHasNoAtBegin()
    {
        await using var tracer = new StepTracer(Options(WithAtBegin()), new TestRecordProducer());
        Assert.True(tracer.BeginAtBeginCapture(0));
        tracer.EndStep();

        Assert.Null(tracer.UpdateSelection(TraceSelection.AllEveryStep with { Version = 5 }));

        Assert.False(tracer.BeginAtBeginCapture(1));
        Assert.False(tracer.IsTracingStep);
    }

    [Fact]
    public async Task BeginAtBeginCapture_NeverReturnsTrue_WhenTheSelectionHasNoAtBegin()
    {
        var producer = new TestRecordProducer();
        await using var tracer = new StepTracer(Options(TraceSelection.AllEveryStep), producer);

        for (long step = 0; step < 3; step++)
        {
            Assert.False(tracer.BeginAtBeginCapture(step));
            Assert.False(tracer.IsTracingStep);
            tracer.EndStep();
            Assert.True(tracer.BeginStep(step));
            tracer.EndStep();
        }

        StepRecord[] records = await DeliveredAsync(tracer, producer, 3);
        Assert.All(records, r => Assert.False(r.AtBegin));
    }

    [Fact]
    public async Task BeginAtBeginCapture_SendsNothingOnRankOne_WhenTheSelectionIsChiefOnly()
    {
        var producer = new TestRecordProducer();
        await using var tracer = new StepTracer(Options(WithAtBegin() with { ChiefOnly = true }, rank: 1), producer);

        Assert.False(tracer.BeginAtBeginCapture(0));
        Assert.False(tracer.Wants("fc1.weight", Weights));
        tracer.AddValues("fc1.weight", Weights, DType.Float32, [6], WeightValues);
        tracer.EndStep();
        Assert.False(tracer.BeginAtBeginCapture(0));
        Assert.False(tracer.BeginStep(0));
        tracer.EndStep();

        Assert.True(await tracer.FlushAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
        Assert.Empty(producer.Messages);
        Assert.Equal(0, tracer.Statistics.RecordsCreated);
    }

    [Fact]
    public async Task BeginAtBeginCapture_SendsTheCaptureOnRankZero_WhenTheSelectionIsChiefOnly()
    {
        var producer = new TestRecordProducer();
        await using var tracer = new StepTracer(Options(WithAtBegin() with { ChiefOnly = true }, rank: 0), producer);

        Assert.True(tracer.BeginAtBeginCapture(0));
        tracer.AddValues("fc1.weight", Weights, DType.Float32, [6], WeightValues);
        tracer.EndStep();

        StepRecord record = Assert.Single(await DeliveredAsync(tracer, producer, 1));
        Assert.True(record.AtBegin);
        Assert.Equal("fc1.weight", Assert.Single(record.Tensors).Name);
    }

    [Fact]
    public async Task BeginStep_DoesNotTakeTheAtBeginCapture_ByItself()
    {
        var producer = new TestRecordProducer();
        await using var tracer = new StepTracer(Options(WithAtBegin()), producer);

        Assert.True(tracer.BeginStep(0));
        Assert.False(tracer.Wants("fc1.weight", Weights));
        tracer.AddScalar("loss", Losses, 1.0);
        tracer.EndStep();

        StepRecord record = Assert.Single(await DeliveredAsync(tracer, producer, 1));
        Assert.False(record.AtBegin);
        // Still pending: the adapter takes it before its next step.
        Assert.True(tracer.BeginAtBeginCapture(1));
        tracer.EndStep();
    }
}
