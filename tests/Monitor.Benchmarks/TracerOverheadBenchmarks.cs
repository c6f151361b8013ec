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
/// The tracer on a 12.6M-parameter MLP (1024 → 4096 → 2048 → 10, batch 64, SGD, CPU): a whole training step
/// without the tracer and with it (every collection every step and gradients only, both without an overhead budget;
/// every collection under the default 2% budget, <see cref="DefaultBudget"/>), and the capture at
/// <see cref="TorchSharpTracer.EndStep"/> alone. Records go to the in-process bus, where nobody consumes them, so only
/// the training thread's cost is measured (encoding and sending run on the sender thread).
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

    /// <summary>Every collection selected, under <see cref="TracerOptions.DefaultOverheadBudget"/>.</summary>
    public const string DefaultBudget = "all, default budget";

    // "weights" and "activations" alone tell which part of "all" costs what.
    [Params("none", "gradients", "weights", "activations", "all", DefaultBudget)]
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

        var bus = new InProcessBus(capacityPerTopic: 1_000_000);
        TraceSelection selection = Traced switch
        {
            "gradients" or "weights" or "activations" => new TraceSelection { Collections = new Dictionary<string, CollectionFilter> { [Traced] = new() } },
            _ => TraceSelection.AllEveryStep,
        };
        _tracer = new StepTracer(new TracerOptions
        {
            RunId = "bench",
            Selection = selection,
            QueueCapacity = 4096,
            // Without a budget the whole selection is traced at every step: the cost the budget is measured against.
            OverheadBudget = Traced == DefaultBudget ? TracerOptions.DefaultOverheadBudget : null,
        }, bus.CreateProducer());
        _adapter = TorchSharpTracer.Attach(_tracer, _model, _optimizer);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        if (_tracer is not null)
        {
            TracerStatistics statistics = _tracer.Statistics;
            // What the budget did, for the README: the measured ratio and the strides it settled on.
            Console.WriteLine($"// {Traced}: overhead {statistics.OverheadRatio:P2} of the step, budget {statistics.OverheadBudget?.ToString("P0", System.Globalization.CultureInfo.InvariantCulture) ?? "none"}, thinned: "
                + (statistics.Thinned.Count == 0 ? "nothing" : string.Join(", ", statistics.Thinned.Select(t => $"{t.Collection} every {t.Stride}"))));
        }

        _adapter?.Dispose();
        _tracer?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _optimizer.Dispose();
        _model.Dispose();
    }

    /// <summary>Forward (with activation hooks), loss, backward, SGD step, capture.</summary>
    [Benchmark]
    public float TrainStep()
    {
        using var scope = torch.NewDisposeScope();
        Tensor loss = ForwardBackward();
        _adapter?.EndStep();
        return loss.item<float>();
    }

    private Tensor ForwardBackward()
    {
        _adapter?.BeginStep(_step++);
        _optimizer.zero_grad();
        Tensor loss = nn.functional.cross_entropy(_model.call(_inputs), _labels);
        _adapter?.RecordLoss(loss);
        loss.backward();
        _optimizer.step();
        return loss;
    }

    /// <summary>Only the capture at the end of a step: every parameter and gradient summarized, the record built and
    /// queued. The training step before it runs in the iteration set-up, outside the measurement.</summary>
    [Benchmark]
    public void EndStepOnly()
    {
        _adapter?.EndStep();
    }

    [IterationSetup(Target = nameof(EndStepOnly))]
    public void TrainWithoutCapture()
    {
        using var scope = torch.NewDisposeScope();
        ForwardBackward();
    }
}
