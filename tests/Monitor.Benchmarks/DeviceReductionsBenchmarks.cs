using BenchmarkDotNet.Attributes;
using Monitor.Tracing.TorchSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace Monitor.Benchmarks;

/// <summary>
/// The tracer's device path (<c>DeviceReductions</c>: reductions and histogram queued on the tensor's device, one copy
/// to the host per step) on the fastest device libtorch offers: CUDA when this process loads a CUDA libtorch and a GPU
/// is present, else the CPU (this project references TorchSharp-cpu; a CUDA run needs the CUDA libtorch package in its
/// place). The device used is printed at set-up and is the <c>Device</c> column.
/// </summary>
/// <remarks>
/// Twenty tensors of 500,000 elements (a step of a mid-sized model, 40 MB in all): <see cref="StepOfTwentyTensors"/>
/// reduces each and copies all the results once, as a traced step does; <see cref="SumOfEachOneCopy"/> is the floor of
/// any device summary (one reduction per tensor, the same single copy).
/// </remarks>
[MemoryDiagnoser]
[Config(typeof(Program.StandardConfig))]
public class DeviceReductionsBenchmarks
{
    private const int Tensors = 20;
    private const int Elements = 500_000;
    private Tensor[] _tensors = [];

    /// <summary>"cuda" or "cpu": where the tensors live.</summary>
    [ParamsSource(nameof(Devices))]
    public string Device { get; set; } = "cpu";

    /// <summary>CUDA only where it is available (never here: see the benchmarks README).</summary>
    public static IEnumerable<string> Devices => torch.cuda.is_available() ? ["cuda", "cpu"] : ["cpu"];

    [GlobalSetup]
    public void Setup()
    {
        torch.manual_seed(1);
        Device device = torch.device(Device);
        _tensors = [.. Enumerable.Range(0, Tensors).Select(_ => (torch.randn(Elements) * 0.01).to(device))];
        Console.WriteLine($"// DeviceReductionsBenchmarks on {Device} (CUDA available: {torch.cuda.is_available()})");
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (Tensor tensor in _tensors)
        {
            tensor.Dispose();
        }
    }

    /// <summary>Every statistic and the histogram of each tensor, queued, then one copy of all of them to the host.</summary>
    [Benchmark]
    public double StepOfTwentyTensors()
    {
        using var scope = torch.NewDisposeScope();
        Tensor[] rows = [.. _tensors.Select(t => DeviceReductions.Compute(t))];
        return torch.cat(rows, 0).cpu().data<double>()[6];
    }

    /// <summary>A float64 sum of each tensor and the same single copy: what any device summary costs at least.</summary>
    [Benchmark(Baseline = true)]
    public double SumOfEachOneCopy()
    {
        using var scope = torch.NewDisposeScope();
        Tensor[] sums = [.. _tensors.Select(t => t.sum(type: ScalarType.Float64).reshape(1))];
        return torch.cat(sums, 0).cpu().data<double>()[0];
    }
}
