using System.Numerics;
using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Engines;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Monitor.Tracing;

namespace Monitor.Benchmarks;

/// <summary>
/// Each call timed on its own (one invocation per iteration, 200 iterations), so that the minimum shows what a call
/// costs when the shared machine leaves the core alone: <see cref="SummarizerBenchmarks"/>' means average over
/// whatever else runs. The fused summarizer against a plain vectorized read of the same 40 MB buffer, in one process.
/// </summary>
[Config(typeof(PerCallConfig))]
[BytesPerInvocation(Elements * sizeof(float))]
public class SummarizerPerCallBenchmarks
{
    private const int Elements = 10_000_000;
    private readonly ulong[] _buckets = new ulong[TensorSummarizer.BucketCount];
    private readonly float[] _values = SummarizerAftermathBenchmarks.Normal(Elements, 0.01f, seed: 1);

    [Benchmark(Baseline = true)]
    public double FusedSummarizer()
    {
        TensorSummarizer.Summarize(_values, _buckets, out TensorStatistics statistics);
        return statistics.Variance;
    }

    [Benchmark]
    public float PlainVectorizedRead() => SummarizerBenchmarks.PlainRead(_values);
}

/// <summary>
/// The fused summarizer against a plain vectorized read on a buffer that stays in the L2 cache (65,536 floats,
/// 256 KiB): the summarizer's compute ceiling, where memory is not the limit. Many calls per iteration (timed one by
/// one, the buffer would not stay in the cache between BenchmarkDotNet's iterations).
/// </summary>
[MemoryDiagnoser]
[MinColumn]
[Config(typeof(Program.StandardConfig))]
[BytesPerInvocation(Elements * sizeof(float))]
public class SummarizerCacheResidentBenchmarks
{
    private const int Elements = 65_536;
    private readonly ulong[] _buckets = new ulong[TensorSummarizer.BucketCount];
    private readonly float[] _values = SummarizerAftermathBenchmarks.Normal(Elements, 0.01f, seed: 1);

    [Benchmark(Baseline = true)]
    public double FusedSummarizer()
    {
        TensorSummarizer.Summarize(_values, _buckets, out TensorStatistics statistics);
        return statistics.Variance;
    }

    [Benchmark]
    public float PlainVectorizedRead() => SummarizerBenchmarks.PlainRead(_values);
}

/// <summary>One invocation per iteration: 10 warm-up and 200 measured iterations, with the minimum and the median.</summary>
public sealed class PerCallConfig : ManualConfig
{
    public PerCallConfig() =>
        AddJob(Job.Default.WithToolchain(InProcessEmitToolchain.Instance).WithStrategy(RunStrategy.Monitoring)
            .WithWarmupCount(10).WithIterationCount(200).WithInvocationCount(1).WithUnrollFactor(1))
            .AddColumn(BenchmarkDotNet.Columns.StatisticColumn.Min, BenchmarkDotNet.Columns.StatisticColumn.Median);
}

/// <summary>
/// Whether running the summarizer slows the code that runs after it: a fixed kernel (a 256 x 256 float32
/// matrix-vector product, its 256 KiB matrix in the L2 cache, as the next layer of a step would be) timed alone, once
/// right after a plain read of a 40 MB buffer and once right after the summarizer read the same buffer. Both reads
/// evict the caches alike; what differs is the summarizer's own state (its pair counters, about 100 KiB touched on
/// normal data). Each iteration runs the read as iteration set-up and times one kernel; the kernel after itself (its
/// matrix already in the cache) is the floor.
/// </summary>
[Config(typeof(PerCallConfig))]
public class SummarizerAftermathBenchmarks
{
    private const int Elements = 10_000_000;
    private const int Dimension = 256;
    private readonly ulong[] _buckets = new ulong[TensorSummarizer.BucketCount];
    private readonly float[] _values = Normal(Elements, 0.01f, seed: 1);
    private readonly float[] _matrix = Normal(Dimension * Dimension, 1f, seed: 2);
    private readonly float[] _vector = Normal(Dimension, 1f, seed: 3);
    private readonly float[] _product = new float[Dimension];
    private float _sink;

    [IterationSetup(Target = nameof(KernelAfterPlainRead))]
    public void PlainRead() => _sink += SummarizerBenchmarks.PlainRead(_values);

    [IterationSetup(Target = nameof(KernelAfterSummarizer))]
    public void Summarize()
    {
        TensorSummarizer.Summarize(_values, _buckets, out TensorStatistics statistics);
        _sink += (float)statistics.Variance;
    }

    [Benchmark]
    public float KernelAfterItself() => MatrixVectorProduct();

    [Benchmark(Baseline = true)]
    public float KernelAfterPlainRead() => MatrixVectorProduct();

    [Benchmark]
    public float KernelAfterSummarizer() => MatrixVectorProduct();

    internal static float[] Normal(int length, float scale, int seed)
    {
        var random = new Random(seed);
        var values = new float[length];
        for (int i = 0; i < values.Length; i++)
        {
            double u1 = 1.0 - random.NextDouble();
            values[i] = scale * (float)(Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * random.NextDouble()));
        }

        return values;
    }

    private float MatrixVectorProduct()
    {
        ReadOnlySpan<Vector<float>> x = MemoryMarshal.Cast<float, Vector<float>>(_vector);
        for (int row = 0; row < Dimension; row++)
        {
            ReadOnlySpan<Vector<float>> a = MemoryMarshal.Cast<float, Vector<float>>(_matrix.AsSpan(row * Dimension, Dimension));
            Vector<float> sum = Vector<float>.Zero;
            for (int i = 0; i < a.Length; i++)
            {
                sum = Vector.FusedMultiplyAdd(a[i], x[i], sum);
            }

            _product[row] = Vector.Sum(sum);
        }

        return _product[0] + _sink;
    }
}
