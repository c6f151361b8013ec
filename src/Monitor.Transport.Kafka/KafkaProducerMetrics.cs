using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace Monitor.Transport.Kafka;

/// <summary>
/// Publishes every live <see cref="KafkaRecordProducer"/>'s counters through the tracer's meter (<c>Monitor.Tracing</c>,
/// where workers already collect them), tagged with <c>client.id</c>: how many records librdkafka refused (queue full,
/// too large) or failed to deliver, and how much it holds now. The tracer's own counters include these losses in
/// <c>TracerStatistics.DeliveryFailed</c>; these instruments say which bound caused them.
/// </summary>
internal static class KafkaProducerMetrics
{
    private static readonly ConcurrentDictionary<KafkaRecordProducer, byte> Live = new();
    // The name of Monitor.Tracing's TracerMetrics.MeterName: the instruments predate this project, and their users
    // collect that meter.
    private static readonly Meter Meter = new("Monitor.Tracing");

    static KafkaProducerMetrics()
    {
        Meter.CreateObservableCounter("monitor.kafka.producer.records.delivered", () => Observe(s => s.Delivered), "records", "Records the brokers acknowledged.");
        Meter.CreateObservableCounter("monitor.kafka.producer.records.queue_full", () => Observe(s => s.RefusedQueueFull), "records", "Records refused because librdkafka's queue was at its byte or count bound.");
        Meter.CreateObservableCounter("monitor.kafka.producer.records.refused", () => Observe(s => s.RefusedOther), "records", "Records refused at once for another reason (too large, unknown topic).");
        Meter.CreateObservableCounter("monitor.kafka.producer.records.failed", () => Observe(s => s.DeliveryFailed), "records", "Records queued and then reported failed (message timeout, broker refusal).");
        Meter.CreateObservableGauge("monitor.kafka.producer.queue.records", () => Observe(s => s.InFlight), "records", "Records in librdkafka's queue, not yet acknowledged.");
        Meter.CreateObservableGauge("monitor.kafka.producer.queue.bytes", () => Observe(s => s.InFlightBytes), "By", "Bytes of the records in librdkafka's queue.");
    }

    internal static void Register(KafkaRecordProducer producer) => Live.TryAdd(producer, 0);

    internal static void Unregister(KafkaRecordProducer producer) => Live.TryRemove(producer, out _);

    private static IEnumerable<Measurement<long>> Observe(Func<KafkaProducerStatistics, long> value)
    {
        foreach (KafkaRecordProducer producer in Live.Keys)
        {
            yield return new Measurement<long>(value(producer.Statistics), new KeyValuePair<string, object?>("client.id", producer.ClientId));
        }
    }
}
