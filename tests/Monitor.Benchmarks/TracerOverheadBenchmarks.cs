using BenchmarkDotNet.Attributes;
using Monitor.Contracts;
using Monitor.Contracts.Transport;
using Monitor.Tracing;
using Monitor.Tracing.TorchSharp;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Monitor.Benchmarks;

/// <summary>
/// One SGD training step of a 12.6M-parameter MLP (1024 → 4096 → 2048 → 10, batch 64, CPU) without the tracer
/// and with it (every collection; gradients only). The difference is the tracer's cost per step on the training
/// thread: capture, summaries, record building; sending happens on the sender thread into the in-process bus.
/// </summary>
[MemoryDiagnoser]
[Config(typeof(Program.TrainingStepConfig))]
public class TracerOverheadBenchmarks
{
    private Sequential _model = null!;
    private optim.Optimizer _optimizer = null!;
    private Tensor _inputs = null!;
    private Tensor _labels = null!;
    private StepTracer? _tracer;
    private TorchSharpTracer? _adapter;
    private long _step;

    [Params("none", "all", "gradients")]
    public string Traced { get; set; } = "none";

    [GlobalSetup]
    public void Setup()
    {
        torch.manual_seed(1);
        _model = nn.Sequential(("fc1", nn.Linear(1024, 4096)), ("act1", nn.ReLU()), ("fc2", nn.Linear(4096, 2048)), ("act2", nn.ReLU()), ("fc3", nn.Linear(2048, 10)));
        _optimizer = optim.SGD(_model.parameters(), 0.01);
        _inputs = torch.randn(64, 1024);
        _labels = torch.randint(0, 10, [64]);
        if (Traced == "none")
        {
            return;
        }

        // Records stay in the bus's memory (nobody consumes): the benchmark measures the training thread only.
        var bus = new InProcessBus(capacityPerTopic: 1_000_000);
        TraceSelection selection = Traced == "all"
            ? TraceSelection.AllEveryStep
            : new TraceSelection { Collections = new Dictionary<string, CollectionFilter> { [CollectionNames.Gradients] = new() } };
        _tracer = new StepTracer(new TracerOptions { RunId = "bench", Selection = selection, QueueCapacity = 4096 }, bus.CreateProducer());
        _adapter = TorchSharpTracer.Attach(_tracer, _model, _optimizer);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _adapter?.Dispose();
        _tracer?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _optimizer.Dispose();
        _model.Dispose();
    }

    [Benchmark]
    public float TrainStep()
    {
        using var scope = torch.NewDisposeScope();
        _adapter?.BeginStep(_step);
        _optimizer.zero_grad();
        Tensor loss = nn.functional.cross_entropy(_model.call(_inputs), _labels);
        _adapter?.RecordLoss(loss);
        loss.backward();
        _optimizer.step();
        _adapter?.EndStep();
        _step++;
        return loss.item<float>();
    }
}
