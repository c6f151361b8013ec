using Monitor.Contracts;
using Monitor.Contracts.V1;
using Monitor.Samples.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Monitor.Tracing.TorchSharp.Tests;

public sealed class TorchSharpTracerTests
{
    // Without an overhead budget: these tests check what is captured at every step, and on a small model the budget
    // could thin it depending on the machine's load (StepTracerBudgetTests drive the budget with a fake clock).
    private static TracerOptions Options(TraceSelection? selection = null) =>
        new() { RunId = "torch-test", Selection = selection ?? TraceSelection.AllEveryStep, OverheadBudget = null };

    /// <summary>Trains the sample MLP for a few real steps (forward, backward, SGD) with the adapter attached.</summary>
    private static async Task<IReadOnlyList<StepRecord>> TrainAsync(int steps, TraceSelection? selection = null,
        TorchSharpTracerOptions? adapterOptions = null, Fault fault = Fault.None, int faultAt = 0)
    {
        var producer = new RecordingProducer();
        await using (var tracer = new StepTracer(Options(selection), producer))
        {
            var job = new TrainingJob(new TrainingJobOptions { Steps = steps, Fault = fault, FaultAt = faultAt, Hidden = 16, Inputs = 8, BatchSize = 64, EvalEvery = 0 });
            await job.RunAsync((model, optimizer) => TorchSharpTracer.Attach(tracer, model, optimizer, adapterOptions), cancellationToken: TestContext.Current.CancellationToken);
            Assert.True(await tracer.FlushAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
            Assert.Equal(0, tracer.Statistics.Faults);
        }

        // Disposing the tracer ended the run: its last record says so.
        Assert.Equal(RunEndReason.Done, producer.AllRecords[^1].RunEnd?.Reason);
        return producer.Records;
    }

    [Fact]
    public async Task Attach_CountsTheCaptureAsTheTracersCost_WhenTraining()
    {
        var producer = new RecordingProducer();
        await using var tracer = new StepTracer(Options(), producer);
        var job = new TrainingJob(new TrainingJobOptions { Steps = 24 /* three budget windows */, Hidden = 16, Inputs = 8, BatchSize = 64, EvalEvery = 0 });

        await job.RunAsync((model, optimizer) => TorchSharpTracer.Attach(tracer, model, optimizer), cancellationToken: TestContext.Current.CancellationToken);

        // The hooks and the capture are timed against the whole step: a share, neither nothing nor everything.
        Assert.InRange(tracer.Statistics.OverheadRatio, double.Epsilon, 1);
        Assert.True(await tracer.FlushAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
        Assert.InRange(producer.Records[^1].OverheadRatio, double.Epsilon, 1);
    }

    [Fact]
    public async Task Attach_TracesEveryCollection_WhenSelectionIsAll()
    {
        IReadOnlyList<StepRecord> records = await TrainAsync(steps: 3);

        Assert.Equal([0L, 1L, 2L], records.Select(r => r.Step));
        StepRecord first = records[0];
        var byName = first.Tensors.ToDictionary(t => t.Name);
        Assert.Equal(
            new[]
            {
                "fc1.bias", "fc1.bias.grad", "fc1.output", "fc1.weight", "fc1.weight.grad", "fc2.bias",
                "fc2.bias.grad", "fc2.output", "fc2.weight", "fc2.weight.grad", "fc3.bias", "fc3.bias.grad",
                "fc3.output", "fc3.weight", "fc3.weight.grad", "loss", "optimizer.param_groups.0.lr", "relu2.output",
                "tanh1.output",
            },
            byName.Keys.Order(StringComparer.Ordinal));
        Assert.Equal([Collection.Weights], byName["fc1.weight"].Collections);
        Assert.Equal([Collection.Biases], byName["fc1.bias"].Collections);
        Assert.Equal([Collection.Gradients], byName["fc1.weight.grad"].Collections);
        Assert.Equal([Collection.Activations], byName["relu2.output"].Collections);
        Assert.Equal([Collection.Losses], byName["loss"].Collections);
        Assert.Equal([Collection.Optimizer], byName["optimizer.param_groups.0.lr"].Collections);
        Assert.Equal([16L, 8L], byName["fc1.weight"].Shape);
        Assert.Equal([64L, 16L], byName["tanh1.output"].Shape);
        Assert.Equal(DType.Float32, byName["fc1.weight"].Dtype);
        Assert.Equal(0.05, byName["optimizer.param_groups.0.lr"].Summary.Mean, 6);
        // ReLU output: about half the elements are exactly zero; tanh output stays within (-1, 1).
        Assert.InRange((double)byName["relu2.output"].Summary.ZeroCount / byName["relu2.output"].Summary.Count, 0.2, 0.8);
        Assert.InRange(byName["tanh1.output"].Summary.Max, 0, 1);
    }

    [Fact]
    public async Task Capture_MatchesTorchStatistics_ForParameters()
    {
        torch.manual_seed(3);
        using var layer = nn.Linear(300, 200);
        var producer = new RecordingProducer();
        await using (var tracer = new StepTracer(Options(), producer))
        {
            using var adapter = TorchSharpTracer.Attach(tracer, layer);
            adapter.BeginStep(0);
            adapter.EndStep();
            Assert.True(await tracer.FlushAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
        }

        TensorSummary summary = producer.Records.Single().Tensors.Single(t => t.Name == "weight").Summary;
        Tensor w = layer.weight!.detach();
        Assert.Equal(60_000UL, summary.Count);
        Assert.Equal(w.min().item<float>(), summary.Min, 6);
        Assert.Equal(w.max().item<float>(), summary.Max, 6);
        Assert.Equal(w.mean().item<float>(), summary.Mean, 5);
        Assert.Equal(w.var(unbiased: false).item<float>(), summary.Variance, 1e-6);
        Assert.Equal(w.norm().item<float>(), summary.L2, 3);
        Assert.Equal(w.abs().mean().item<float>(), summary.AbsMean, 5);
        Assert.Equal(HistogramLayout.Log2Magnitude, summary.Histogram.Layout);
        Assert.Equal(60_000UL, (ulong)summary.Histogram.Counts.Sum(c => (long)c));
    }

    [Fact]
    public async Task DeviceLocation_AgreesWithHostSummarizer()
    {
        IReadOnlyList<StepRecord> host = await TrainAsync(steps: 2);
        IReadOnlyList<StepRecord> device = await TrainAsync(steps: 2, adapterOptions: new TorchSharpTracerOptions { SummaryLocation = SummaryLocation.Device });

        for (int step = 0; step < 2; step++)
        {
            var expected = host[step].Tensors.ToDictionary(t => t.Name);
            Assert.Equal(expected.Count, device[step].Tensors.Count);
            foreach (TensorRecord actual in device[step].Tensors)
            {
                TensorSummary e = expected[actual.Name].Summary, a = actual.Summary;
                Assert.Equal(e.Count, a.Count);
                Assert.Equal(e.ZeroCount, a.ZeroCount);
                Assert.Equal(e.NanCount, a.NanCount);
                Assert.Equal(e.Min, a.Min, 6);
                Assert.Equal(e.Max, a.Max, 6);
                Assert.Equal(e.Mean, a.Mean, 1e-6);
                Assert.Equal(e.AbsMean, a.AbsMean, 1e-6);
                Assert.Equal(e.L2, a.L2, 1e-4);
                Assert.Equal(HistogramBuckets.ToArray(e.Histogram), HistogramBuckets.ToArray(a.Histogram));
            }
        }
    }

    [Fact]
    public async Task Selection_TracesOnlyMatchingGradients_WhenFilteredByRegex()
    {
        var selection = new TraceSelection
        {
            Collections = new Dictionary<string, CollectionFilter> { ["gradients"] = new() { Include = ["^fc2\\."] } },
        };

        IReadOnlyList<StepRecord> records = await TrainAsync(steps: 2, selection);

        Assert.All(records, r => Assert.Equal(["fc2.bias.grad", "fc2.weight.grad"], r.Tensors.Select(t => t.Name).Order(StringComparer.Ordinal)));
    }

    [Fact]
    public async Task Schedule_SkipsSteps_AndTheirActivations()
    {
        var selection = TraceSelection.AllEveryStep with { Schedule = new TraceSchedule { EverySteps = 3 } };

        IReadOnlyList<StepRecord> records = await TrainAsync(steps: 7, selection);

        Assert.Equal([0L, 3L, 6L], records.Select(r => r.Step));
        Assert.All(records, r => Assert.Contains(r.Tensors, t => t.Name == "fc1.output"));
        Assert.Equal([1UL, 2UL, 3UL], records.Select(r => r.Sequence));
    }

    [Fact]
    public async Task Capture_HandlesNonContiguousAndDoubleTensors()
    {
        var producer = new RecordingProducer();
        await using (var tracer = new StepTracer(Options(new TraceSelection { Tensors = ["t", "d"] }), producer))
        {
            using var model = nn.Linear(2, 2);
            using var adapter = TorchSharpTracer.Attach(tracer, model);
            using Tensor values = torch.arange(12, ScalarType.Float32).reshape(3, 4).t();
            using Tensor doubles = torch.tensor(new[] { -1.5, 0.0, 2.5 });
            adapter.BeginStep(0);
            adapter.RecordTensor("t", values, CollectionSet.Of(Collection.Custom));
            adapter.RecordTensor("d", doubles, CollectionSet.Of(Collection.Custom));
            adapter.EndStep();
            Assert.True(await tracer.FlushAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
        }

        var byName = producer.Records.Single().Tensors.ToDictionary(t => t.Name);
        Assert.Equal([4L, 3L], byName["t"].Shape);
        Assert.Equal(5.5, byName["t"].Summary.Mean, 6);
        Assert.Equal(11, byName["t"].Summary.Max);
        Assert.Equal(1UL, byName["t"].Summary.ZeroCount);
        Assert.Equal(DType.Float64, byName["d"].Dtype);
        Assert.Equal(1.0 / 3, byName["d"].Summary.Mean, 6);
    }

    [Fact]
    public async Task RecordTensor_CountsAFault_InsteadOfThrowing_WhenTensorIsDisposed()
    {
        var producer = new RecordingProducer();
        await using var tracer = new StepTracer(Options(new TraceSelection { Tensors = ["gone"] }), producer);
        using var model = nn.Linear(2, 2);
        using var adapter = TorchSharpTracer.Attach(tracer, model);
        Tensor disposed = torch.ones(3);
        disposed.Dispose();

        adapter.BeginStep(0);
        adapter.RecordTensor("gone", disposed, CollectionSet.Of(Collection.Custom));
        adapter.EndStep();

        Assert.Equal(1, tracer.Statistics.Faults);
        Assert.Equal(1, tracer.Statistics.RecordsCreated);
    }

    [Fact]
    public async Task Dispose_RemovesActivationHooks()
    {
        var producer = new RecordingProducer();
        await using (var tracer = new StepTracer(Options(), producer))
        {
            using var model = new SampleModel(4, 4, 2);
            using Tensor input = torch.ones(1, 4);
            TorchSharpTracer adapter = TorchSharpTracer.Attach(tracer, model);
            adapter.Dispose();
            tracer.BeginStep(0);
            using (model.call(input))
            {
            }

            tracer.EndStep();
            Assert.True(await tracer.FlushAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
        }

        Assert.DoesNotContain(producer.Records.Single().Tensors, t => t.Name.EndsWith(".output", StringComparison.Ordinal));
    }

    [Fact]
    public async Task VanishingGradientsFault_ShrinksEveryGradientBelowSmdebugThreshold()
    {
        var selection = new TraceSelection { Collections = new Dictionary<string, CollectionFilter> { ["gradients"] = new() } };

        IReadOnlyList<StepRecord> records = await TrainAsync(steps: 6, selection, fault: Fault.VanishingGradients, faultAt: 3);

        Assert.All(records.Where(r => r.Step < 3).SelectMany(r => r.Tensors), t => Assert.True(t.Summary.AbsMean > 1e-5, t.Name));
        Assert.All(records.Where(r => r.Step >= 3).SelectMany(r => r.Tensors), t => Assert.True(t.Summary.AbsMean < 1e-7, t.Name));
    }

    [Fact]
    public async Task RecordBatch_TracesInputsWithFeatureNamesPredictionsLabelsAndPerExampleLosses()
    {
        TraceSelection selection = TraceSelection.AllEveryStep with
        {
            Collections = new Dictionary<string, CollectionFilter>
            {
                [CollectionNames.Inputs] = new() { Raw = true },
                [CollectionNames.Predictions] = new() { Raw = true },
                [CollectionNames.Labels] = new() { Raw = true },
                [CollectionNames.Losses] = new() { Raw = true },
            },
            // 8 input columns: 10 whole rows of inputs fit 80 values; the one-column tensors keep 64 rows (all of them).
            LimitSize = 80,
        };

        IReadOnlyList<StepRecord> records = await TrainAsync(steps: 2, selection);

        var byName = records[0].Tensors.ToDictionary(t => t.Name);
        TensorRecord inputs = byName["inputs"];
        Assert.Equal([Collection.Inputs], inputs.Collections);
        Assert.Equal([64L, 8L], inputs.Shape);
        Assert.Equal(["x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7"], inputs.FeatureNames);
        Assert.Equal(10u, inputs.Raw.SampleRows);
        Assert.Equal(80, inputs.Raw.Float32Le.Length / sizeof(float));
        Assert.Equal(64ul * 8, inputs.Summary.Count);
        Assert.InRange(inputs.Summary.Variance, 0.7, 1.3);
        foreach (string name in new[] { "predictions", "labels", "loss" })
        {
            Assert.Equal([64L], byName[name].Shape);
            Assert.Equal(64u, byName[name].Raw.SampleRows);
            Assert.Empty(byName[name].FeatureNames);
        }

        // The per-example losses' mean is the batch loss the optimizer minimised.
        float[] losses = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(byName["loss"].Raw.Float32Le.Span).ToArray();
        Assert.Equal(losses.Average(), byName["loss"].Summary.Mean, 5);
        Assert.All(losses, l => Assert.True(l >= 0));
    }
}
