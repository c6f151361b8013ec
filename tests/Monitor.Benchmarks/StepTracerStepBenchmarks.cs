using BenchmarkDotNet.Attributes;
using Monitor.Contracts;
using Monitor.Contracts.Transport;
using Monitor.Contracts.V1;
using Monitor.Tracing;

namespace Monitor.Benchmarks;

/// <summary>
/// One traced step through <see cref="StepTracer"/>: <see cref="StepTracer.BeginStep"/>, 20 float32 tensors of 1,000
/// elements summarized with <see cref="StepTracer.AddValues"/> plus a scalar loss, <see cref="StepTracer.EndStep"/>
/// queuing the record; the sender encodes it and hands it to a transport that discards it. Summaries only, with
/// histograms, or with histograms and 100 raw values per weight tensor.
/// </summary>
/// <remarks>
/// BenchmarkDotNet's allocated bytes count every thread of the process (<c>GC.GetTotalAllocatedBytes</c>), so they
/// include the sender's encoded message (the <c>byte[]</c> a transport keeps); what the training thread allocates
/// alone is asserted by <c>StepTracerAllocationTests</c>.
/// </remarks>
[MemoryDiagnoser]
[Config(typeof(Program.StandardConfig))]
public class StepTracerStepBenchmarks
{
    private const int Tensors = 20;
    private static readonly long[] Shape = [10, 100];
    private static readonly CollectionSet Weights = CollectionSet.Of(Collection.Weights);
    private static readonly CollectionSet Losses = CollectionSet.Of(Collection.Losses);
    private readonly string[] _names = [.. Enumerable.Range(0, Tensors).Select(i => $"layer{i}.weight")];
    private float[][] _values = [];
    private StepTracer _tracer = null!;
    private long _step;

    [Params("summaries", "histograms", "raw")]
    public string Capture { get; set; } = "summaries";

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(3);
        _values = [.. Enumerable.Range(0, Tensors).Select(_ => Enumerable.Range(0, 1_000).Select(_ => (float)random.NextDouble() - 0.5f).ToArray())];
        bool histogram = Capture != "summaries", raw = Capture == "raw";
        var selection = new TraceSelection
        {
            Collections = new Dictionary<string, CollectionFilter>
            {
                [CollectionNames.Weights] = new() { Histogram = histogram, Raw = raw },
                [CollectionNames.Losses] = new() { Histogram = histogram },
            },
            LimitSize = 100,
        };
        // A queue of 6 keeps every record in flight (6 queued, one being built, one being encoded) within the 8 the
        // tracer's pool retains, so a sender descheduled on a busy machine cannot make the pool allocate records that
        // it then lets go; waiting a little for room keeps drops (records never encoded) rare.
        _tracer = new StepTracer(
            // Without an overhead budget: nothing but the tracer runs between these steps, and every step must carry every tensor.
            new TracerOptions { RunId = "bench", Selection = selection, QueueCapacity = 6, MaxEnqueueWait = TracerOptions.MaxEnqueueWaitLimit, OverheadBudget = null },
            new DiscardingProducer());
    }

    [GlobalCleanup]
    public void Cleanup() => _tracer.DisposeAsync().AsTask().GetAwaiter().GetResult();

    [Benchmark]
    public void TracedStep()
    {
        _tracer.BeginStep(_step++);
        for (int i = 0; i < Tensors; i++)
        {
            _tracer.AddValues(_names[i], Weights, DType.Float32, Shape, _values[i]);
        }

        _tracer.AddScalar("loss", Losses, 0.25);
        _tracer.EndStep();
    }

    /// <summary>A transport that reports every message delivered and keeps nothing.</summary>
    private sealed class DiscardingProducer : IRecordProducer
    {
        public void Produce(string topic, string key, byte[] value, IReadOnlyList<KeyValuePair<string, byte[]>>? headers, Action<DeliveryReport> onDelivery) =>
            onDelivery(new DeliveryReport(true, null));

        public int Flush(TimeSpan timeout) => 0;

        public void Dispose()
        {
        }
    }
}
