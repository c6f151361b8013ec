using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Monitor.Contracts;

namespace Monitor.Tracing;

/// <summary>
/// Publishes every live tracer's counters through the <c>Monitor.Tracing</c> <see cref="Meter"/>, tagged with run
/// and rank, so any metrics exporter in the worker process (OpenTelemetry, prometheus-net's meter adapter) shows
/// drops and faults without extra code. The service also sees drops: every record carries the rank's running count
/// (<c>dropped_before</c>), exported as <c>monitor_worker_dropped_records</c>.
/// </summary>
public static class TracerMetrics
{
    /// <summary>Name of the meter.</summary>
    public const string MeterName = "Monitor.Tracing";

    private static readonly ConcurrentDictionary<StepTracer, byte> Live = new();
    private static readonly Meter Meter = new(MeterName);

    static TracerMetrics()
    {
        Meter.CreateObservableCounter("monitor.tracer.records.created", () => Observe(s => s.RecordsCreated), "records", "Step records built by the tracer.");
        Meter.CreateObservableCounter("monitor.tracer.records.delivered", () => Observe(s => s.Delivered), "records", "Step records the transport confirmed.");
        Meter.CreateObservableCounter("monitor.tracer.records.dropped", () => Observe(s => s.DroppedQueueFull), "records", "Step records dropped because the send queue was full.");
        Meter.CreateObservableCounter("monitor.tracer.records.failed", () => Observe(s => s.DeliveryFailed), "records", "Step records the transport failed to deliver.");
        Meter.CreateObservableCounter("monitor.tracer.raw.trimmed", () => Observe(s => s.RawPartsTrimmed), "parts", "Raw parts left out of step records to keep them within the byte budget (their summaries were sent).");
        Meter.CreateObservableCounter("monitor.tracer.faults", () => Observe(s => s.Faults), "faults", "Exceptions caught inside the tracer.");
        Meter.CreateObservableGauge("monitor.tracer.queue.length", () => Observe(s => s.QueueLength), "records", "Records waiting for the sender.");
        Meter.CreateObservableGauge("monitor.tracer.overhead.ratio", ObserveOverhead, "1", "The tracer's own cost on the training thread as a fraction of the step time (last budget window).");
        Meter.CreateObservableGauge("monitor.tracer.thinned.stride", ObserveStrides, "steps", "Stride of each collection the overhead budget thins: its tensors are traced every stride-th traced step, in rotation.");
        Meter.CreateObservableCounter("monitor.tracer.tensors.thinned", () => Observe(s => s.TensorsThinned), "tensors", "Tensors the overhead budget left out of traced steps.");
    }

    private static IEnumerable<Measurement<double>> ObserveOverhead()
    {
        foreach (StepTracer tracer in Live.Keys)
        {
            yield return new Measurement<double>(tracer.Statistics.OverheadRatio, Tags(tracer));
        }
    }

    private static IEnumerable<Measurement<long>> ObserveStrides()
    {
        foreach (StepTracer tracer in Live.Keys)
        {
            foreach (ThinnedCollectionStatus thinned in tracer.Statistics.Thinned)
            {
                yield return new Measurement<long>(thinned.Stride, [.. Tags(tracer), new("collection", thinned.Collection)]);
            }
        }
    }

    private static KeyValuePair<string, object?>[] Tags(StepTracer tracer) =>
        [new("run", tracer.RunId), new("rank", tracer.Rank)];

    internal static void Register(StepTracer tracer) => Live.TryAdd(tracer, 0);

    internal static void Unregister(StepTracer tracer) => Live.TryRemove(tracer, out _);

    private static IEnumerable<Measurement<long>> Observe(Func<TracerStatistics, long> value)
    {
        foreach (StepTracer tracer in Live.Keys)
        {
            yield return new Measurement<long>(value(tracer.Statistics),
                new KeyValuePair<string, object?>("run", tracer.RunId),
                new KeyValuePair<string, object?>("rank", tracer.Rank));
        }
    }
}
