using Monitor.Contracts;
using Monitor.Contracts.V1;
using static Monitor.Tracing.Tests.TracerTestSupport;

namespace Monitor.Tracing.Tests;

/// <summary>The end-of-run record: sent once, last, with the reason, by <see cref="StepTracer.Complete"/> or on dispose.</summary>
public sealed class StepTracerRunEndTests
{
    [Theory]
    [InlineData(RunEndReason.Done)]
    [InlineData(RunEndReason.Stopped)]
    [InlineData(RunEndReason.Cancelled)]
    public async Task Complete_SendsTheEndRecordLast_WithItsReason(RunEndReason reason)
    {
        var producer = new TestRecordProducer();
        await using var tracer = new StepTracer(Options(TraceSelection.AllEveryStep, rank: 1), producer);
        for (long step = 0; step < 3; step++)
        {
            Assert.True(tracer.BeginStep(step));
            tracer.AddScalar("loss", Losses, 1.0 / (step + 1));
            tracer.EndStep();
        }

        tracer.Complete(reason);
        tracer.Complete(RunEndReason.Cancelled);

        StepRecord[] records = await DeliveredAsync(tracer, producer, 4);
        Assert.Equal(4, records.Length);
        StepRecord end = records[^1];
        Assert.Equal(reason, end.RunEnd.Reason);
        Assert.All(records[..^1], r => Assert.Null(r.RunEnd));
        Assert.Equal((TracerTestSupport.RunId, 1u, 2u, 2L, 4UL), (end.RunId, end.Rank, end.WorldSize, end.Step, end.Sequence));
        Assert.Empty(end.Tensors);
        Assert.False(end.AtBegin);
        Assert.True(end.EventTimeUnixNanos > 0);
        Assert.Null(StepRecordDecoder.Validate(end, out _));
        Assert.True(tracer.IsCompleted);
        Assert.Equal("run-sel/1", producer.Messages[^1].Key);
    }

    [Fact]
    public async Task Complete_StopsTracing_LaterSteps()
    {
        var producer = new TestRecordProducer();
        await using var tracer = new StepTracer(Options(TraceSelection.AllEveryStep), producer);
        tracer.Complete();

        Assert.False(tracer.BeginStep(5));
        tracer.AddScalar("loss", Losses, 1);
        tracer.EndStep();

        StepRecord end = Assert.Single(await DeliveredAsync(tracer, producer, 1));
        Assert.Equal((RunEndReason.Done, 0L, 1UL), (end.RunEnd.Reason, end.Step, end.Sequence));
    }

    [Fact]
    public async Task DisposeAsync_SendsDone_WhenCompleteWasNotCalled()
    {
        var producer = new TestRecordProducer();
        var tracer = new StepTracer(Options(TraceSelection.AllEveryStep), producer);
        Assert.True(tracer.BeginStep(7));
        tracer.AddScalar("loss", Losses, 1);
        tracer.EndStep();

        await tracer.DisposeAsync();

        StepRecord[] records = [.. producer.Messages.Select(m => Decode(m.Value))];
        Assert.Equal([null, RunEndReason.Done], records.Select(r => r.RunEnd?.Reason));
        Assert.Equal(7, records[1].Step);
    }

    [Fact]
    public async Task DisposeAsync_SendsStopped_WhenTheControlPlaneAskedTheRankToStop()
    {
        var producer = new TestRecordProducer();
        var tracer = new StepTracer(Options(TraceSelection.AllEveryStep), producer);
        tracer.NoteStopRequested();

        await tracer.DisposeAsync();

        Assert.Equal(RunEndReason.Stopped, Decode(Assert.Single(producer.Messages).Value).RunEnd.Reason);
    }

    [Fact]
    public async Task DisposeAsync_SendsNoSecondEnd_AfterComplete()
    {
        var producer = new TestRecordProducer();
        var tracer = new StepTracer(Options(TraceSelection.AllEveryStep), producer);
        tracer.Complete(RunEndReason.Cancelled);

        await tracer.DisposeAsync();

        Assert.Equal(RunEndReason.Cancelled, Decode(Assert.Single(producer.Messages).Value).RunEnd.Reason);
    }

    [Fact]
    public void Validate_RejectsAnEndRecordWithTensors()
    {
        var record = new StepRecord
        {
            SchemaVersion = StepRecordDecoder.CurrentSchemaVersion,
            RunId = TracerTestSupport.RunId,
            WorldSize = 1,
            RunEnd = new RunEnd { Reason = RunEndReason.Done },
        };
        record.Tensors.Add(new TensorRecord { Name = "loss" });

        Assert.Equal("a run_end record carries no tensors and is not at_begin", StepRecordDecoder.Validate(record, out DecodeErrorKind kind));
        Assert.Equal(DecodeErrorKind.Invalid, kind);
    }
}
