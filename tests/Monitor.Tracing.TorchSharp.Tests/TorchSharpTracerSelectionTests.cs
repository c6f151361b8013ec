using Monitor.Contracts;
using Monitor.Contracts.V1;
using Monitor.Samples.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Monitor.Tracing.TorchSharp.Tests;

/// <summary>The adapter under the selection features: the at-begin capture, raw values on both paths, the catalog.</summary>
public sealed class TorchSharpTracerSelectionTests
{
    private const int Inputs = 8;
    private const int Hidden = 16;

    /// <summary>
    /// Trains the sample MLP (real forward, backward, SGD) with the adapter attached; <paramref name="onAttach"/> sees
    /// the model and the adapter right after attaching, before the first step.
    /// </summary>
    private static async Task<IReadOnlyList<StepRecord>> TrainAsync(int steps, TraceSelection selection,
        TorchSharpTracerOptions? adapterOptions = null, Action<nn.Module, TorchSharpTracer>? onAttach = null)
    {
        var producer = new RecordingProducer();
        // Without an overhead budget: what is captured at every step is under test, not the budget's thinning of it.
        await using (var tracer = new StepTracer(new TracerOptions { RunId = "torch-selection", Selection = selection, OverheadBudget = null }, producer))
        {
            var job = new TrainingJob(new TrainingJobOptions { Steps = steps, Hidden = Hidden, Inputs = Inputs, BatchSize = 64, EvalEvery = 0 });
            await job.RunAsync(
                (model, optimizer) =>
                {
                    TorchSharpTracer adapter = TorchSharpTracer.Attach(tracer, model, optimizer, adapterOptions);
                    onAttach?.Invoke(model, adapter);
                    return adapter;
                },
                cancellationToken: TestContext.Current.CancellationToken);
            Assert.True(await tracer.FlushAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
            Assert.Equal(0, tracer.Statistics.Faults);
        }

        return producer.Records;
    }

    [Theory]
    [InlineData(SummaryLocation.Auto)]
    [InlineData(SummaryLocation.Device)]
    public async Task BeginStep_SendsTheAtBeginCaptureOfTheWeightsFirst_WhenTheSelectionHasAtBegin(SummaryLocation location)
    {
        var selection = TraceSelection.AllEveryStep with
        {
            Version = 0,
            AtBegin = new AtBeginCapture { Collections = new Dictionary<string, CollectionFilter> { [CollectionNames.Weights] = new() }, LimitSize = 10 },
        };
        var initialWeights = new Dictionary<string, float[]>();

        IReadOnlyList<StepRecord> records = await TrainAsync(steps: 2, selection, new TorchSharpTracerOptions { SummaryLocation = location }, (model, _) =>
        {
            foreach ((string name, Parameter parameter) in model.named_parameters())
            {
                using Tensor detached = parameter.detach();
                using Tensor flat = detached.reshape(-1);
                initialWeights[name] = flat.data<float>().ToArray();
            }
        });

        Assert.Equal([true, false, false], records.Select(r => r.AtBegin));
        Assert.Equal([0L, 0L, 1L], records.Select(r => r.Step));
        StepRecord atBegin = records[0];
        Assert.Equal(["fc1.weight", "fc2.weight", "fc3.weight"], atBegin.Tensors.Select(t => t.Name).Order(StringComparer.Ordinal));
        foreach (TensorRecord tensor in atBegin.Tensors)
        {
            float[] expected = initialWeights[tensor.Name];
            Assert.Equal(expected[..10], ReadFloat32Le(tensor.Raw.Float32Le));
            Assert.Equal((ulong)expected.Length, tensor.Raw.TotalElements);
            Assert.True(tensor.Raw.Truncated);
            Assert.Equal([Collection.Weights], tensor.Collections);
            Assert.Equal((double)expected.Min(), tensor.Summary.Min, 6);
        }

        Assert.Equal([(long)Hidden, Inputs], atBegin.Tensors.Single(t => t.Name == "fc1.weight").Shape);
        // The normal steps follow the step selection: everything, and no raw values.
        Assert.All(records.Skip(1), r =>
        {
            Assert.Contains(r.Tensors, t => t.Name == "fc1.output");
            Assert.Contains(r.Tensors, t => t.Name == "loss");
            Assert.All(r.Tensors, t => Assert.Null(t.Raw));
        });
    }

    [Fact]
    public async Task BeginStep_SendsNoAtBeginRecord_WhenTheSelectionHasNone()
    {
        IReadOnlyList<StepRecord> records = await TrainAsync(steps: 2, TraceSelection.AllEveryStep);

        Assert.Equal([0L, 1L], records.Select(r => r.Step));
        Assert.All(records, r => Assert.False(r.AtBegin));
    }

    [Fact]
    public async Task Capture_CopiesTheSameRawActivations_OnTheHostAndTheDevicePath()
    {
        var selection = new TraceSelection
        {
            Collections = new Dictionary<string, CollectionFilter> { [CollectionNames.Activations] = new() { Raw = true } },
            LimitSize = 300,
        };
        var hostProducer = new RecordingProducer();
        var deviceProducer = new RecordingProducer();
        await using (var hostTracer = new StepTracer(new TracerOptions { RunId = "torch-raw-host", Selection = selection }, hostProducer))
        await using (var deviceTracer = new StepTracer(new TracerOptions { RunId = "torch-raw-device", Selection = selection }, deviceProducer))
        {
            // One model and one forward pass observed by both adapters, so both see the very same activations
            // (libtorch's global generator is shared with tests running in parallel).
            using var model = new SampleModel(Inputs, Hidden, 4);
            using var host = TorchSharpTracer.Attach(hostTracer, model);
            using var device = TorchSharpTracer.Attach(deviceTracer, model, options: new TorchSharpTracerOptions { SummaryLocation = SummaryLocation.Device });
            using var data = new Generator(11);
            using Tensor input = torch.randn([64, Inputs], generator: data);
            host.BeginStep(0);
            device.BeginStep(0);
            using (Tensor output = model.call(input))
            {
            }

            host.EndStep();
            device.EndStep();
            Assert.True(await hostTracer.FlushAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
            Assert.True(await deviceTracer.FlushAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
            Assert.Equal(0, hostTracer.Statistics.Faults);
            Assert.Equal(0, deviceTracer.Statistics.Faults);
        }

        var hostTensors = Assert.Single(hostProducer.Records).Tensors.ToDictionary(t => t.Name);
        var deviceTensors = Assert.Single(deviceProducer.Records).Tensors.ToDictionary(t => t.Name);
        Assert.Equal(
            ["fc1.output", "fc2.output", "fc3.output", "relu2.output", "tanh1.output"],
            hostTensors.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(hostTensors.Keys.Order(StringComparer.Ordinal), deviceTensors.Keys.Order(StringComparer.Ordinal));
        foreach ((string name, TensorRecord expected) in hostTensors)
        {
            RawValues hostRaw = expected.Raw, deviceRaw = deviceTensors[name].Raw;
            Assert.NotNull(hostRaw);
            Assert.NotNull(deviceRaw);
            Assert.Equal(hostRaw.Float32Le.ToByteArray(), deviceRaw.Float32Le.ToByteArray());
            Assert.Equal(hostRaw.TotalElements, deviceRaw.TotalElements);
            Assert.Equal(hostRaw.Truncated, deviceRaw.Truncated);
            Assert.Equal(expected.Summary.Count, hostRaw.TotalElements);
        }

        // 64 × 16 activations, 300 kept; fc3's 64 × 4 = 256 all fit.
        RawValues act1 = hostTensors["tanh1.output"].Raw;
        Assert.Equal(300 * sizeof(float), act1.Float32Le.Length);
        Assert.Equal(1024UL, act1.TotalElements);
        Assert.True(act1.Truncated);
        Assert.All(ReadFloat32Le(act1.Float32Le), v => Assert.InRange(v, -1f, 1f));
        Assert.All(ReadFloat32Le(hostTensors["relu2.output"].Raw.Float32Le), v => Assert.True(v >= 0f));
        RawValues fc3 = hostTensors["fc3.output"].Raw;
        Assert.Equal(256 * sizeof(float), fc3.Float32Le.Length);
        Assert.False(fc3.Truncated);
    }

    [Fact]
    public async Task Capture_CopiesRawValuesInRowMajorOrder_OnBothPaths()
    {
        foreach (SummaryLocation location in new[] { SummaryLocation.Auto, SummaryLocation.Device })
        {
            var producer = new RecordingProducer();
            var selection = new TraceSelection
            {
                Collections = new Dictionary<string, CollectionFilter> { [CollectionNames.Custom] = new() { Raw = true } },
                LimitSize = 5,
            };
            await using (var tracer = new StepTracer(new TracerOptions { RunId = "torch-raw", Selection = selection }, producer))
            {
                using var model = nn.Linear(2, 2);
                using var adapter = TorchSharpTracer.Attach(tracer, model, options: new TorchSharpTracerOptions { SummaryLocation = location });
                // Non-contiguous (a transpose) and float64: raw values follow the logical row-major order, as float32.
                using Tensor arange = torch.arange(12, ScalarType.Float64);
                using Tensor matrix = arange.reshape(3, 4);
                using Tensor transposed = matrix.t();
                adapter.BeginStep(0);
                adapter.RecordTensor("t", transposed, CollectionSet.Of(Collection.Custom));
                adapter.EndStep();
                Assert.True(await tracer.FlushAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
                Assert.Equal(0, tracer.Statistics.Faults);
            }

            RawValues raw = Assert.Single(Assert.Single(producer.Records).Tensors).Raw;
            Assert.Equal([0f, 4f, 8f, 1f, 5f], ReadFloat32Le(raw.Float32Le));
            Assert.Equal(12UL, raw.TotalElements);
            Assert.True(raw.Truncated);
        }
    }

    [Fact]
    public async Task Catalog_ListsEveryTraceableTensorOnce_AfterOneTrainingStep()
    {
        TorchSharpTracer? attached = null;

        await TrainAsync(steps: 1, TraceSelection.AllEveryStep, onAttach: (_, adapter) => attached = adapter);

        Assert.NotNull(attached);
        IReadOnlyList<CatalogEntry> catalog = attached.Catalog;
        var byName = catalog.ToDictionary(e => e.Name);
        Assert.Equal(catalog.Count, byName.Count);
        Assert.Equal(
            new[]
            {
                "fc1.bias", "fc1.bias.grad", "fc1.output", "fc1.weight", "fc1.weight.grad", "fc2.bias",
                "fc2.bias.grad", "fc2.output", "fc2.weight", "fc2.weight.grad", "fc3.bias", "fc3.bias.grad",
                "fc3.output", "fc3.weight", "fc3.weight.grad", "inputs", "labels", "loss", "optimizer.param_groups.0.lr",
                "predictions", "relu2.output", "tanh1.output",
            },
            byName.Keys.Order(StringComparer.Ordinal));
        AssertEntry(byName["fc1.weight"], ["weights"], "float32", [Hidden, Inputs]);
        AssertEntry(byName["fc1.weight.grad"], ["gradients"], "float32", [Hidden, Inputs]);
        AssertEntry(byName["fc1.bias"], ["biases"], "float32", [Hidden]);
        AssertEntry(byName["fc3.bias.grad"], ["gradients"], "float32", [4]);
        AssertEntry(byName["tanh1.output"], ["activations"], "float32", [64, Hidden]);
        AssertEntry(byName["fc3.output"], ["activations"], "float32", [64, 4]);
        // The sample job records its loss per example (RecordBatch), so the monitor sees the batch, not only its mean.
        AssertEntry(byName["loss"], ["losses"], "float32", [64]);
        AssertEntry(byName["inputs"], ["inputs"], "float32", [64, Inputs]);
        AssertEntry(byName["optimizer.param_groups.0.lr"], ["optimizer"], "float64", []);
    }

    [Fact]
    public async Task Catalog_HasNoDuplicates_AfterSeveralSteps()
    {
        TorchSharpTracer? attached = null;

        await TrainAsync(steps: 3, TraceSelection.AllEveryStep, onAttach: (_, adapter) => attached = adapter);

        IReadOnlyList<CatalogEntry> catalog = attached!.Catalog;
        Assert.Equal(22, catalog.Count);
        Assert.Equal(catalog.Count, catalog.Select(e => e.Name).Distinct(StringComparer.Ordinal).Count());
        Assert.All(catalog, e => Assert.Equal(e.Collections.Count, e.Collections.Distinct(StringComparer.Ordinal).Count()));
    }

    [Fact]
    public async Task Catalog_ListsParametersAndGradients_RightAfterAttach()
    {
        await using var tracer = new StepTracer(new TracerOptions { RunId = "torch-catalog", Selection = TraceSelection.AllEveryStep }, new RecordingProducer());
        using var model = nn.Linear(3, 2, hasBias: true, dtype: ScalarType.Float64);
        using var adapter = TorchSharpTracer.Attach(tracer, model);

        var byName = adapter.Catalog.ToDictionary(e => e.Name);

        Assert.Equal(["bias", "bias.grad", "weight", "weight.grad"], byName.Keys.Order(StringComparer.Ordinal));
        AssertEntry(byName["weight"], ["weights"], "float64", [2, 3]);
        AssertEntry(byName["bias.grad"], ["gradients"], "float64", [2]);
    }

    private static void AssertEntry(CatalogEntry entry, string[] collections, string dtype, long[] shape)
    {
        Assert.Equal(collections, entry.Collections);
        Assert.Equal(dtype, entry.DType);
        Assert.Equal(shape, entry.Shape);
    }

    private static float[] ReadFloat32Le(Google.Protobuf.ByteString bytes)
    {
        ReadOnlySpan<byte> span = bytes.Span;
        Assert.Equal(0, span.Length % sizeof(float));
        float[] values = new float[span.Length / sizeof(float)];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = System.Buffers.Binary.BinaryPrimitives.ReadSingleLittleEndian(span[(i * sizeof(float))..]);
        }

        return values;
    }
}
