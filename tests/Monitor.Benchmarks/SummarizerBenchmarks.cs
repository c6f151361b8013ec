using System.Numerics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using BenchmarkDotNet.Attributes;
using Monitor.Tracing;
using Monitor.Tracing.TorchSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace Monitor.Benchmarks;

/// <summary>
/// The fused single-pass summarizer against a plain vectorized read of the same buffer (the memory limit, measured in
/// the same process) and against the same statistics composed from TorchSharp operations, on one 10M-element float32
/// CPU tensor (40 MB, far larger than the caches).
/// </summary>
[MemoryDiagnoser]
[MinColumn]
[Config(typeof(Program.StandardConfig))]
[BytesPerInvocation(Elements * sizeof(float))]
public class SummarizerBenchmarks
{
    private const int Elements = 10_000_000;
    private readonly ulong[] _buckets = new ulong[TensorSummarizer.BucketCount];
    private Tensor _tensor = null!;

    [GlobalSetup]
    public void Setup()
    {
        torch.manual_seed(1);
        _tensor = torch.randn(Elements) * 0.01;
    }

    [GlobalCleanup]
    public void Cleanup() => _tensor.Dispose();

    /// <summary>All statistics and the 96-bucket histogram in one read of libtorch's buffer (what the tracer does on CPU).</summary>
    [Benchmark(Baseline = true)]
    public double FusedSummarizer()
    {
        TensorSummarizer.Summarize(MemoryMarshal.Cast<byte, float>(_tensor.bytes), _buckets, out TensorStatistics statistics);
        return statistics.Variance;
    }

    /// <summary>The fastest honest read of the same buffer: a sum with four accumulators in the widest accelerated
    /// vectors (the summarizer's ceiling).</summary>
    [Benchmark]
    public float PlainVectorizedRead() => PlainRead(MemoryMarshal.Cast<byte, float>(_tensor.bytes));

    /// <summary>Sums <paramref name="values"/> with four accumulators: 512-bit vectors where they are accelerated,
    /// <see cref="Vector{T}"/> (AVX2, NEON) otherwise.</summary>
    internal static float PlainRead(ReadOnlySpan<float> values) =>
        Vector512.IsHardwareAccelerated ? PlainRead512(values) : PlainReadVector(values);

    private static float PlainRead512(ReadOnlySpan<float> values)
    {
        ref float start = ref MemoryMarshal.GetReference(values);
        int lanes = Vector512<float>.Count, i = 0;
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (; i <= values.Length - (4 * lanes); i += 4 * lanes)
        {
            a0 += Vector512.LoadUnsafe(ref start, (nuint)i);
            a1 += Vector512.LoadUnsafe(ref start, (nuint)(i + lanes));
            a2 += Vector512.LoadUnsafe(ref start, (nuint)(i + (2 * lanes)));
            a3 += Vector512.LoadUnsafe(ref start, (nuint)(i + (3 * lanes)));
        }

        return Vector512.Sum(a0 + a1 + (a2 + a3)) + TailSum(values[i..]);
    }

    private static float PlainReadVector(ReadOnlySpan<float> values)
    {
        ref float start = ref MemoryMarshal.GetReference(values);
        int lanes = Vector<float>.Count, i = 0;
        Vector<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (; i <= values.Length - (4 * lanes); i += 4 * lanes)
        {
            a0 += Vector.LoadUnsafe(ref start, (nuint)i);
            a1 += Vector.LoadUnsafe(ref start, (nuint)(i + lanes));
            a2 += Vector.LoadUnsafe(ref start, (nuint)(i + (2 * lanes)));
            a3 += Vector.LoadUnsafe(ref start, (nuint)(i + (3 * lanes)));
        }

        return Vector.Sum(a0 + a1 + (a2 + a3)) + TailSum(values[i..]);
    }

    private static float TailSum(ReadOnlySpan<float> values)
    {
        float sum = 0;
        foreach (float value in values)
        {
            sum += value;
        }

        return sum;
    }

    /// <summary>The same statistics (finite-only moments, NaN/Inf/zero counts, log2 histogram) as torch ops: the
    /// tracer's device path, run on CPU, including its copy of the result to the host.</summary>
    [Benchmark]
    public double TorchOpsSameStatistics()
    {
        using var scope = torch.NewDisposeScope();
        return DeviceReductions.Compute(_tensor).cpu().data<double>()[6];
    }

    /// <summary>A lighter composition (min, max, mean, std, L2, abs-mean, zero count, 64-bin histc), as one would write
    /// it by hand without NaN handling.</summary>
    [Benchmark]
    public double TorchOpsHandWritten()
    {
        using var scope = torch.NewDisposeScope();
        Tensor stats = torch.stack([
            _tensor.min(), _tensor.max(), _tensor.mean(), _tensor.std(), _tensor.norm(), _tensor.abs().mean(),
            _tensor.eq(0).sum().to_type(ScalarType.Float32),
        ]);
        Tensor histogram = _tensor.histc(64);
        return stats.sum().item<float>() + histogram.sum().item<float>();
    }
}
