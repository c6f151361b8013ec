using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

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
    }

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
