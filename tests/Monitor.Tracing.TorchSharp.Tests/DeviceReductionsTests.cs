using Monitor.Contracts;
using Monitor.Contracts.V1;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Monitor.Tracing.TorchSharp.Tests;

/// <summary>
/// The device path (<see cref="DeviceReductions"/>, <see cref="SummaryLocation.Device"/>), run on CPU tensors: its
/// statistics against float64 references on adversarial inputs, its chunking, and its one host transfer per step
/// counted through the adapter's seam. No CUDA device was available where these tests were written; the same code
/// runs on one (see the benchmarks README).
/// </summary>
public sealed class DeviceReductionsTests
{
    public static TheoryData<string> Inputs => [.. AdversarialInputs.Keys];

    private static readonly Dictionary<string, Func<float[]>> AdversarialInputs = new()
    {
        // The sparse tensor of issue 13: 0.3 then 131,071 zeros (variance 6.9e-7, L2 0.3).
        ["sparse-first"] = () => [0.3f, .. new float[131_071]],
        ["offset-1e4-spread-1e-3"] = () => Normal(50_001, 1e4, 1e-3, seed: 1),
        ["wide-dynamic-range"] = () => [.. Enumerable.Range(0, 40_003).Select(i => (float)(Math.Pow(10, (i % 61) - 30) * (i % 2 == 0 ? 1 : -1)))],
        ["outlier-first"] = () => [1e30f, .. Normal(20_000, 0, 1, seed: 2)],
        ["sorted"] = () => [.. Normal(30_001, 3, 2, seed: 3).Order()],
        ["non-finite-zeros-subnormals"] = () => [float.NaN, -0f, 0f, float.PositiveInfinity, float.NegativeInfinity, 1e-40f, -1e-45f,
            float.Epsilon, BitConverter.Int32BitsToSingle(unchecked((int)0xFFC00001)), 2f, 0.99999994f, 1f, 65536f, -65535.99f,
            .. Normal(10_007, 0, 1, seed: 4)],
    };

    private static float[] Normal(int count, double mean, double deviation, int seed)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, count).Select(_ =>
            (float)(mean + (deviation * Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()))))];
    }

    private static (TensorStatistics Statistics, ulong[] Buckets) OnDevice(float[] values, long chunkElements = DeviceReductions.ChunkElements)
    {
        using Tensor tensor = torch.tensor(values);
        using Tensor reductions = DeviceReductions.Compute(tensor, chunkElements);
        double[] host = reductions.data<double>().ToArray();
        long chunks = DeviceReductions.ChunksOf(values.Length, chunkElements);
        Assert.Equal(chunks * DeviceReductions.Width, host.Length);
        var buckets = new ulong[TensorSummarizer.BucketCount];
        DeviceReductions.Read(host, chunks, values.Length, buckets, out TensorStatistics statistics);
        return (statistics, buckets);
    }

    [Theory]
    [MemberData(nameof(Inputs))]
    public void Statistics_AreWithinOneMillionthOfFloat64_AndTheHistogramEqualsTheFusedSummarizers(string input)
    {
        float[] values = AdversarialInputs[input]();

        (TensorStatistics actual, ulong[] buckets) = OnDevice(values);

        double[] finite = [.. values.Where(float.IsFinite).Select(v => (double)v)];
        double mean = finite.Average();
        Assert.Equal(values.Length, actual.Count);
        Assert.Equal(values.Count(float.IsNaN), actual.NanCount);
        Assert.Equal(values.Count(float.IsInfinity), actual.InfCount);
        Assert.Equal(values.Count(v => v == 0), actual.ZeroCount);
        Assert.Equal(finite.Min(), actual.Min);
        Assert.Equal(finite.Max(), actual.Max);
        AssertRelative(mean, actual.Mean);
        AssertRelative(finite.Sum(v => (v - mean) * (v - mean)) / finite.Length, actual.Variance);
        AssertRelative(Math.Sqrt(finite.Sum(v => v * v)), actual.L2);
        AssertRelative(finite.Sum(Math.Abs), actual.L1);
        AssertRelative(finite.Sum(Math.Abs) / finite.Length, actual.AbsMean);

        var fused = new ulong[TensorSummarizer.BucketCount];
        TensorSummarizer.Summarize(values, fused, out _);
        Assert.Equal(fused, buckets);
        var byValue = new ulong[TensorSummarizer.BucketCount];
        foreach (float v in values.Where(v => !float.IsNaN(v)))
        {
            byValue[Log2Histogram.BucketOf(v)]++;
        }

        Assert.Equal(byValue, buckets);
    }

    private static void AssertRelative(double expected, double actual)
    {
        double error = expected == 0 ? Math.Abs(actual) : Math.Abs(actual - expected) / Math.Abs(expected);
        Assert.True(error <= 1e-6, $"expected {expected:R}, got {actual:R} (relative error {error:E2})");
    }

    [Fact]
    public void ChunkedReductions_EqualOneChunk_WhenMerged()
    {
        float[] values = [.. Normal(10_007, 1e3, 0.5, seed: 5), float.NaN, 0f, float.NegativeInfinity];

        (TensorStatistics whole, ulong[] wholeBuckets) = OnDevice(values);
        (TensorStatistics chunked, ulong[] chunkedBuckets) = OnDevice(values, chunkElements: 1_000);

        Assert.Equal(wholeBuckets, chunkedBuckets);
        Assert.Equal(whole.Count, chunked.Count);
        Assert.Equal(whole.NanCount, chunked.NanCount);
        Assert.Equal(whole.InfCount, chunked.InfCount);
        Assert.Equal(whole.ZeroCount, chunked.ZeroCount);
        Assert.Equal(whole.Min, chunked.Min);
        Assert.Equal(whole.Max, chunked.Max);
        AssertRelative(whole.Mean, chunked.Mean);
        AssertRelative(whole.Variance, chunked.Variance);
        AssertRelative(whole.L2, chunked.L2);
        AssertRelative(whole.L1, chunked.L1);
    }

    [Fact]
    public void AllNonFinite_GivesNaNMoments_AndCountsEveryElement()
    {
        (TensorStatistics statistics, ulong[] buckets) = OnDevice([float.NaN, float.PositiveInfinity, float.NaN]);

        Assert.Equal(3, statistics.Count);
        Assert.Equal(2, statistics.NanCount);
        Assert.Equal(1, statistics.InfCount);
        Assert.True(double.IsNaN(statistics.Mean));
        Assert.Equal(1UL, buckets[TensorSummarizer.BucketCount - 1]);
        Assert.Equal(1UL, buckets.Aggregate(0UL, (a, b) => a + b));
    }

    [Fact]
    public async Task DeviceLocation_CopiesToTheHostOncePerTracedStep_AfterTheHooksAndRawValuesIncluded()
    {
        var selection = new TraceSelection
        {
            Collections = new Dictionary<string, CollectionFilter>
            {
                [CollectionNames.Weights] = new() { Histogram = true, Raw = true },
                [CollectionNames.Gradients] = new() { Histogram = true },
                [CollectionNames.Activations] = new() { Histogram = true, Raw = true },
                [CollectionNames.Inputs] = new() { Raw = true },
                [CollectionNames.Losses] = new(),
            },
            LimitSize = 20,
        };
        var producer = new RecordingProducer();
        torch.manual_seed(11);
        using Sequential model = nn.Sequential(("fc1", nn.Linear(6, 5)), ("relu", nn.ReLU()), ("fc2", nn.Linear(5, 1)));
        using optim.Optimizer optimizer = optim.SGD(model.parameters(), 0.01);
        await using (var tracer = new StepTracer(new TracerOptions { RunId = "device-transfers", Selection = selection, OverheadBudget = null }, producer))
        {
            using var adapter = TorchSharpTracer.Attach(tracer, model, optimizer, new TorchSharpTracerOptions { SummaryLocation = SummaryLocation.Device });
            long copiesBeforeEndStep = -1;
            adapter.HostCopy = t => t.cpu();
            const int steps = 3;
            for (int step = 0; step < steps; step++)
            {
                adapter.BeginStep(step);
                using Tensor inputs = torch.randn(8, 6);
                optimizer.zero_grad();
                using Tensor loss = model.call(inputs).square().mean();
                loss.backward();
                optimizer.step();
                adapter.RecordBatch(inputs: inputs);
                adapter.RecordLoss(loss);
                copiesBeforeEndStep = adapter.HostTransfers;
                Assert.Equal(step, copiesBeforeEndStep);
                adapter.EndStep();
                Assert.Equal(step + 1, adapter.HostTransfers);
            }

            Assert.True(await tracer.FlushAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
            Assert.Equal(0, tracer.Statistics.Faults);
        }

        StepRecord last = producer.Records[^1];
        TensorRecord weight = last.Tensors.Single(t => t.Name == "fc1.weight");
        float[] expected = model.named_parameters().Single(p => p.name == "fc1.weight").parameter.detach().reshape(-1).data<float>().ToArray()[..20];
        Assert.Equal(expected, RawOf(weight));
        TensorRecord activation = last.Tensors.Single(t => t.Name == "fc1.output");
        Assert.Equal(20, RawOf(activation).Length);
        Assert.Equal(40UL, activation.Summary.Count);
        TensorRecord input = last.Tensors.Single(t => t.Collections.Contains(Collection.Inputs));
        Assert.NotEmpty(RawOf(input));
    }

    private static float[] RawOf(TensorRecord tensor)
    {
        byte[] bytes = tensor.Raw.Float32Le.ToByteArray();
        var values = new float[bytes.Length / sizeof(float)];
        Buffer.BlockCopy(bytes, 0, values, 0, bytes.Length);
        return values;
    }
}
