using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Monitor.Samples.Training;

/// <summary>
/// A three-layer perceptron: <c>fc1 → tanh → fc2 → relu → fc3</c>. One saturating and one rectifying activation so
/// that both families of activation faults can be shown.
/// </summary>
public sealed class SampleModel : nn.Module<Tensor, Tensor>
{
    private readonly Linear _fc1;
    private readonly Tanh _tanh1;
    private readonly Linear _fc2;
    private readonly ReLU _relu2;
    private readonly Linear _fc3;

    /// <summary>Creates the layers (initialised from torch's global generator; seed it first for repeatable runs).</summary>
    public SampleModel(int inputs, int hidden, int outputs) : base(nameof(SampleModel))
    {
        _fc1 = nn.Linear(inputs, hidden);
        _tanh1 = nn.Tanh();
        _fc2 = nn.Linear(hidden, hidden);
        _relu2 = nn.ReLU();
        _fc3 = nn.Linear(hidden, outputs);
        // Registered under PyTorch-style names fc1, tanh1, fc2, relu2, fc3 (the tracer's tensor names come from these).
        register_module("fc1", _fc1);
        register_module("tanh1", _tanh1);
        register_module("fc2", _fc2);
        register_module("relu2", _relu2);
        register_module("fc3", _fc3);
    }

    /// <summary>The first layer (inputs → hidden, followed by tanh).</summary>
    public Linear Fc1 => _fc1;

    /// <summary>The second layer (hidden → hidden, followed by ReLU).</summary>
    public Linear Fc2 => _fc2;

    /// <summary>The output layer.</summary>
    public Linear Fc3 => _fc3;

    /// <summary>Number of trainable elements.</summary>
    public long ParameterCount => parameters().Sum(p => p.numel());

    /// <inheritdoc />
    public override Tensor forward(Tensor input)
    {
        // call(), not forward(), so that module hooks (the tracer's activations) run.
        using var h1 = _fc1.call(input);
        using var a1 = _tanh1.call(h1);
        using var h2 = _fc2.call(a1);
        using var a2 = _relu2.call(h2);
        return _fc3.call(a2);
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _fc1.Dispose();
            _tanh1.Dispose();
            _fc2.Dispose();
            _relu2.Dispose();
            _fc3.Dispose();
        }

        base.Dispose(disposing);
    }
}
