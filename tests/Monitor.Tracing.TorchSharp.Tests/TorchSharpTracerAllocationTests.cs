using Monitor.Contracts;
using Monitor.Contracts.V1;
using Monitor.Testing;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Monitor.Tracing.TorchSharp.Tests;

/// <summary>
/// What the adapter's capture costs the training thread in heap allocations on CPU tensors, once warm: parameters,
/// gradients, a loss and the learning rate of a 10-layer MLP (42 tensors), with summaries and histograms.
/// </summary>
/// <remarks>
/// The one allocation left is TorchSharp's: <c>Parameter.grad</c> returns a new managed <see cref="Tensor"/> wrapper
/// on every call (48 bytes with TorchSharp 0.107), and there is no other public way to reach a gradient. The wrapper
/// cannot be kept from step to step: <c>zero_grad</c> may replace a gradient by a new tensor, which only a new call
/// sees. So the bound is one wrapper per traced gradient, measured here against TorchSharp itself.
/// </remarks>
public sealed class TorchSharpTracerAllocationTests
{
    private const int Layers = 10;
    private const int StepsPerPass = 10;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task EndStep_AllocatesOnlyTheGradientWrappersOfTorchSharp_WhenCpuTensorsAreTracedWarm(bool rawWeights)
    {
        torch.manual_seed(5);
        using Sequential model = nn.Sequential([.. Enumerable.Range(0, Layers).Select(i => ($"fc{i}", (nn.Module<Tensor, Tensor>)nn.Linear(32, 32)))]);
        using optim.Optimizer optimizer = optim.SGD(model.parameters(), 0.01);
        using Tensor inputs = torch.randn(8, 32);
        using Tensor loss = model.call(inputs).square().mean();
        loss.backward();

        var selection = new TraceSelection
        {
            Collections = new Dictionary<string, CollectionFilter>
            {
                [CollectionNames.Weights] = new() { Histogram = true, Raw = rawWeights },
                [CollectionNames.Biases] = new() { Histogram = true },
                [CollectionNames.Gradients] = new() { Histogram = true },
                [CollectionNames.Losses] = new() { Histogram = true },
                [CollectionNames.Optimizer] = new(),
            },
            LimitSize = 100,
        };
        var producer = new RecordingProducer();
        // Without an overhead budget: nothing runs between these steps but the capture, which a budget would thin.
        await using var tracer = new StepTracer(new TracerOptions { RunId = "torch-alloc", Selection = selection, QueueCapacity = 4, OverheadBudget = null }, producer);
        using var adapter = TorchSharpTracer.Attach(tracer, model, optimizer, new TorchSharpTracerOptions { CaptureActivations = false });
        long step = 0;
        void Step()
        {
            adapter.BeginStep(step++);
            adapter.RecordLoss(loss);
            adapter.EndStep();
        }

        for (int i = 0; i < 50; i++)
        {
            Step();
        }

        // A full queue once, so that the pool holds every record a slow sender can keep in flight (4 queued, one
        // being sent, one being built: a starved sender on a busy machine would otherwise make the pool allocate).
        producer.BlockProduce();
        for (int i = 0; i < 8; i++)
        {
            Step();
        }

        producer.UnblockProduce();

        long allocated = SteadyStateAllocation.LeastBytes(() =>
        {
            for (int i = 0; i < StepsPerPass; i++)
            {
                Step();
            }
        });

        Parameter first = model.parameters().First();
        long wrapper = SteadyStateAllocation.LeastBytes(() =>
        {
            using Tensor? gradient = first.grad;
        });
        long perStep = allocated / StepsPerPass;
        const int gradients = 2 * Layers;
        TestContext.Current.TestOutputHelper?.WriteLine($"{perStep} bytes per step; {gradients} gradient wrappers of {wrapper} bytes");
        // The measured steps may have been dropped behind the short queue; one more behind an empty queue is delivered.
        Assert.True(await tracer.FlushAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
        Step();
        Assert.True(await tracer.FlushAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
        Assert.Equal(0, tracer.Statistics.Faults);
        StepRecord last = producer.Records[^1];
        Assert.Equal((4 * Layers) + 2, last.Tensors.Count);
        Assert.Equal(rawWeights ? Layers : 0, last.Tensors.Count(t => t.Raw is { Float32Le.Length: 100 * sizeof(float) }));
        Assert.InRange(perStep, 0, gradients * wrapper);
    }
}
