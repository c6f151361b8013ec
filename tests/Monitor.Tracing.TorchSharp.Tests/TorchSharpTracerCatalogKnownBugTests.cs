#if MONITOR_KNOWN_BUG
// Known bug (excluded from the build until fixed): TorchSharpTracer.EndStep adds the optimizer's learning rates to the
// catalog only inside `if (_tracer.IsTracingStep)`, so a rank whose selection traces no step (a later stepRange, a
// mode not selected, chiefOnly on a rank other than 0) never lists optimizer.param_groups.N.lr, while activations and
// losses are listed on every step. Catalog is documented as "every tensor this adapter can trace", and the control
// plane publishes it so users can pick what to trace next.
using Monitor.Contracts;
using Monitor.Samples.Training;

namespace Monitor.Tracing.TorchSharp.Tests;

public sealed class TorchSharpTracerCatalogKnownBugTests
{
    [Fact]
    public async Task Catalog_ListsTheLearningRate_WhenNoStepIsTraced()
    {
        var selection = TraceSelection.AllEveryStep with { Schedule = new TraceSchedule { StepRange = new StepRange(1000, 2000) } };
        TorchSharpTracer? attached = null;
        await using (var tracer = new StepTracer(new TracerOptions { RunId = "torch-catalog-bug", Selection = selection }, new RecordingProducer()))
        {
            var job = new TrainingJob(new TrainingJobOptions { Steps = 1, Hidden = 16, Inputs = 8 });
            await job.RunAsync((model, optimizer) => attached = TorchSharpTracer.Attach(tracer, model, optimizer), cancellationToken: TestContext.Current.CancellationToken);
        }

        Assert.NotNull(attached);
        Assert.Contains(attached.Catalog, e => e.Name == "loss");
        Assert.Contains(attached.Catalog, e => e.Name == "fc1.output");
        Assert.Contains(attached.Catalog, e => e.Name == "optimizer.param_groups.0.lr");
    }
}
#endif
