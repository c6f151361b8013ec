using System.Diagnostics;
using BenchmarkDotNet.Attributes;
using Monitor.Contracts.Transport;
using Monitor.Tracing;

namespace Monitor.Benchmarks;

/// <summary>
/// What OpenTelemetry costs the worker per record, without a listener (tracing off, the default) and with one that
/// records everything (an <see cref="ActivityListener"/> sampling all; no exporter, so only the instrumentation is
/// measured). <c>CaptureParent</c> is the only part on the training thread (in <c>EndStep</c>); <c>SendSpan</c> is the
/// sender thread's: start the <c>send</c> span with its attributes, write the headers, end it at the delivery report.
/// </summary>
[MemoryDiagnoser]
[Config(typeof(Program.StandardConfig))]
public class SendSpanBenchmarks
{
    private static readonly ActivitySource Training = new("Monitor.Benchmarks.Training");
    private ActivityListener? _listener;
    private Activity? _trainingStep;
    private Action<DeliveryReport> _onDelivery = null!;
    private readonly DeliveryReport _delivered = new(true, null) { Partition = 2, Offset = 123_456 };

    [Params(false, true)]
    public bool Listening { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _onDelivery = _ => { };
        if (!Listening)
        {
            return;
        }

        _listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == StepTracer.ActivitySourceName || source == Training,
            Sample = (ref _) => ActivitySamplingResult.AllDataAndRecorded,
        };
        ActivitySource.AddActivityListener(_listener);
        // The training loop's own span, current on the benchmark thread: the parent that EndStep captures.
        _trainingStep = Training.StartActivity("train step");
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _trainingStep?.Stop();
        _listener?.Dispose();
    }

    /// <summary>The training thread's share: the listener check and, when listening, the current span's context.</summary>
    [Benchmark]
#pragma warning disable CA1822 // BenchmarkDotNet runs instance methods.
    public ActivityContext CaptureParent() => StepTracer.CurrentParent();
#pragma warning restore CA1822

    /// <summary>The sender thread's share for one record.</summary>
    [Benchmark]
    public int SendSpan()
    {
        ActivityContext parent = StepTracer.CurrentParent();
        Tracing.SendSpan? span = Tracing.SendSpan.Start("send monitor.steps", parent, "monitor.steps", "run-1/3", 42, "run-1", 3, 10_400, _onDelivery);
        if (span is null)
        {
            return 0;
        }

        KeyValuePair<string, byte[]>[] headers = TraceContextHeaders.Create(span.Activity.Context);
        span.OnDelivery(_delivered);
        return headers.Length;
    }
}
