using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace Monitor.Tracing;

/// <summary>
/// Publishes every live tracer's counters through the <c>Monitor.Tracing</c> <see cref="Meter"/>, tagged with run
/// and rank, so any metrics exporter in the worker process (prometheus-net's meter adapter, OpenTelemetry) shows
/// drops and faults without extra code.
/// </summary>
public static class TracerMetrics
{
    /// <summary>Name of the meter.</summary>
    public const string MeterName = "Monitor.Tracing";

    private static readonly ConcurrentDictionary<StepTracer, byte> Live = new();
    private static readonly Meter Meter = new(MeterName);

    static TracerMetrics()
    {
        Meter.CreateObservableCounter("monitor_tracer_records_created", () => Observe(s => s.RecordsCreated), "records", "Step records built by the tracer.");
        Meter.CreateObservableCounter("monitor_tracer_records_delivered", () => Observe(s => s.Delivered), "records", "Step records the transport confirmed.");
        Meter.CreateObservableCounter("monitor_tracer_records_dropped", () => Observe(s => s.DroppedQueueFull), "records", "Step records dropped because the send queue was full.");
        Meter.CreateObservableCounter("monitor_tracer_records_failed", () => Observe(s => s.DeliveryFailed), "records", "Step records the transport failed to deliver.");
        Meter.CreateObservableCounter("monitor_tracer_faults", () => Observe(s => s.Faults), "faults", "Exceptions caught inside the tracer.");
        Meter.CreateObservableGauge("monitor_tracer_queue_length", () => Observe(s => s.QueueLength), "records", "Records waiting for the sender.");
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
