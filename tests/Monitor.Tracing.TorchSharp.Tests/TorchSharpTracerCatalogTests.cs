using Monitor.Contracts;
using Monitor.Samples.Training;

namespace Monitor.Tracing.TorchSharp.Tests;

/// <summary>The catalog lists every tensor the adapter can trace, whether or not a step was traced.</summary>
public sealed class TorchSharpTracerCatalogTests
{
    [Fact]
    public async Task Catalog_ListsTheLearningRate_WhenNoStepIsTraced()
    {
        var selection = TraceSelection.AllEveryStep with { Schedule = new TraceSchedule { StepRange = new StepRange(1000, 2000) } };
        TorchSharpTracer? attached = null;
        await using (var tracer = new StepTracer(new TracerOptions { RunId = "torch-catalog-bug", Selection = selection }, new RecordingProducer()))
        {
            var job = new TrainingJob(new TrainingJobOptions { Steps = 1, Hidden = 16, Inputs = 8, BatchSize = 64, EvalEvery = 0 });
            await job.RunAsync((model, optimizer) => attached = TorchSharpTracer.Attach(tracer, model, optimizer), cancellationToken: TestContext.Current.CancellationToken);
        }

        Assert.NotNull(attached);
        Assert.Contains(attached.Catalog, e => e.Name == "loss");
        Assert.Contains(attached.Catalog, e => e.Name == "fc1.output");
        Assert.Contains(attached.Catalog, e => e.Name == "optimizer.param_groups.0.lr");
    }
}
