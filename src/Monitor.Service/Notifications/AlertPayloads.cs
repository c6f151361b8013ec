using System.Buffers;
using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using Monitor.Analysis;

namespace Monitor.Service.Notifications;

/// <summary>
/// An alert as the HTTP targets see it: labels with the external labels merged in and empty values dropped, times
/// clamped to the dispatcher's clock. Built once per transition (or per resend) on the router.
/// </summary>
/// <param name="Fingerprint">The engine's fingerprint (of the alert's own labels, without external labels).</param>
/// <param name="Resolved">True for a resolution, false for a firing alert.</param>
/// <param name="Labels">Sorted by name.</param>
/// <param name="Annotations">Sorted by name.</param>
/// <param name="StartsAt">When the condition started to hold, never after the dispatcher's clock.</param>
/// <param name="EndsAt">For a resolution: when it resolved, between <paramref name="StartsAt"/> and the dispatcher's
/// clock. Null while firing (Alertmanager's <c>endsAt</c> is then computed at each send).</param>
/// <param name="GeneratorUrl">Link back to the service, or null.</param>
/// <param name="Step">Step of the record that caused the transition.</param>
/// <param name="Value">Observed value.</param>
/// <param name="Threshold">Value compared with.</param>
/// <param name="At">Event time of the record that caused the transition.</param>
/// <param name="Trace">Trace context of the record that caused the transition (may be empty).</param>
internal sealed record PreparedAlert(
    string Fingerprint,
    bool Resolved,
    IReadOnlyList<KeyValuePair<string, string>> Labels,
    IReadOnlyList<KeyValuePair<string, string>> Annotations,
    DateTimeOffset StartsAt,
    DateTimeOffset? EndsAt,
    string? GeneratorUrl,
    long Step,
    double Value,
    double Threshold,
    DateTimeOffset At,
    TraceContext Trace)
{
    public string Status => Resolved ? "resolved" : "firing";

    /// <summary>Told when every webhook is done with this alert (null: nobody waits for it).</summary>
    public DeliveryTicket? Ticket { get; init; }
}

/// <summary>
/// Counts the webhooks still to finish with one notification and calls back once the last one has: accepted it,
/// refused it, or given up on it after the retries, or dropped it from a full backlog. Thread-safe; the callback runs
/// on the thread of the last webhook's sender, once.
/// </summary>
internal sealed class DeliveryTicket(int webhooks, Action settled)
{
    private int _remaining = webhooks;

    public void Settle()
    {
        if (Interlocked.Decrement(ref _remaining) == 0)
        {
            settled();
        }
    }
}

/// <summary>
/// The JSON form of an alert transition: the alerts topic's message (schema in Notifications/README.md) with the
/// alert's own labels. Also what <c>/api/alerts</c> returns and <c>monitor replay</c> prints.
/// </summary>
public static class AlertJson
{
    /// <summary>Serializes one transition (one line of JSON).</summary>
    public static string Serialize(AlertTransition transition)
    {
        ArgumentNullException.ThrowIfNull(transition);
        return System.Text.Encoding.UTF8.GetString(AlertPayloads.Kafka(transition, AlertPayloads.Sorted(transition.Identity.Labels), null));
    }
}

/// <summary>The JSON documents the dispatcher sends (described in Notifications/README.md).</summary>
internal static class AlertPayloads
{
    /// <summary>Version of the Kafka alert message schema (<c>schemaVersion</c>).</summary>
    public const int KafkaSchemaVersion = 1;

    /// <summary>Annotation with the trace id of the record that caused the transition, in Alertmanager alerts (which
    /// take no other fields; annotations are not part of an alert's identity there either).</summary>
    public const string TraceIdAnnotation = "trace_id";

    /// <summary>Annotation with the span id of that record's producer span, in Alertmanager alerts.</summary>
    public const string SpanIdAnnotation = "span_id";

    /// <summary>What Alertmanager's webhook sends as <c>endsAt</c> of a firing alert: Go's zero time.</summary>
    private const string ZeroTime = "0001-01-01T00:00:00Z";

    // Payloads go to machines, not into HTML: '<', '&', '+' and non-ASCII text stay readable.
    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>
    /// Alertmanager API v2 <c>postableAlerts</c>: <c>[{labels, annotations, startsAt, endsAt, generatorURL}]</c>. A
    /// firing alert gets <c>endsAt = now + 4 × resendInterval</c> (Prometheus' rule), so Alertmanager keeps it firing
    /// until at least three resends in a row are missing.
    /// </summary>
    public static byte[] Alertmanager(IReadOnlyList<PreparedAlert> alerts, DateTimeOffset now, TimeSpan resendInterval)
    {
        var buffer = new ArrayBufferWriter<byte>(256 * alerts.Count);
        using (var json = new Utf8JsonWriter(buffer, WriterOptions))
        {
            json.WriteStartArray();
            foreach (PreparedAlert alert in alerts)
            {
                DateTimeOffset endsAt = alert.EndsAt ?? now + (4 * resendInterval);
                json.WriteStartObject();
                WriteMap(json, "labels", alert.Labels);
                WriteMap(json, "annotations", WithTrace(alert.Annotations, alert.Trace));
                json.WriteString("startsAt", Time(alert.StartsAt));
                json.WriteString("endsAt", Time(endsAt < alert.StartsAt ? alert.StartsAt : endsAt));
                if (alert.GeneratorUrl is { } url)
                {
                    json.WriteString("generatorURL", url);
                }

                json.WriteEndObject();
            }

            json.WriteEndArray();
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>
    /// The generic webhook document, shaped like Alertmanager's webhook payload (version 4) with Monitor's
    /// <c>step</c>, <c>value</c>, <c>threshold</c> and <c>at</c> added per alert.
    /// </summary>
    public static byte[] Webhook(IReadOnlyList<PreparedAlert> alerts, Uri? externalUrl)
    {
        var buffer = new ArrayBufferWriter<byte>(512 * alerts.Count);
        using (var json = new Utf8JsonWriter(buffer, WriterOptions))
        {
            json.WriteStartObject();
            json.WriteString("version", "4");
            json.WriteString("groupKey", "{}:{}");
            json.WriteNumber("truncatedAlerts", 0);
            // As Alertmanager: the group fires while any of its alerts does.
            json.WriteString("status", alerts.Any(a => !a.Resolved) ? "firing" : "resolved");
            json.WriteString("receiver", "monitor");
            json.WriteStartObject("groupLabels");
            json.WriteEndObject();
            WriteMap(json, "commonLabels", Common(alerts.Select(a => a.Labels)));
            WriteMap(json, "commonAnnotations", Common(alerts.Select(a => a.Annotations)));
            json.WriteString("externalURL", externalUrl?.ToString() ?? "");
            json.WriteStartArray("alerts");
            foreach (PreparedAlert alert in alerts)
            {
                json.WriteStartObject();
                json.WriteString("status", alert.Status);
                WriteMap(json, "labels", alert.Labels);
                WriteMap(json, "annotations", alert.Annotations);
                json.WriteString("startsAt", Time(alert.StartsAt));
                json.WriteString("endsAt", alert.EndsAt is { } endsAt ? Time(endsAt) : ZeroTime);
                json.WriteString("generatorURL", alert.GeneratorUrl ?? "");
                json.WriteString("fingerprint", alert.Fingerprint);
                json.WriteNumber("step", alert.Step);
                WriteDouble(json, "value", alert.Value);
                WriteDouble(json, "threshold", alert.Threshold);
                json.WriteString("at", Time(alert.At));
                WriteTrace(json, alert.Trace);
                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>One message of the alerts topic (schema in Notifications/README.md).</summary>
    public static byte[] Kafka(AlertTransition transition, IReadOnlyList<KeyValuePair<string, string>> labels, string? generatorUrl)
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        using (var json = new Utf8JsonWriter(buffer, WriterOptions))
        {
            json.WriteStartObject();
            json.WriteNumber("schemaVersion", KafkaSchemaVersion);
            json.WriteString("fingerprint", transition.Identity.Fingerprint);
            json.WriteString("status", Status(transition));
            json.WriteString("state", State(transition.State));
            json.WriteString("previousState", State(transition.PreviousState));
            WriteMap(json, "labels", labels);
            WriteMap(json, "annotations", Sorted(transition.Annotations));
            json.WriteNumber("step", transition.Step);
            WriteDouble(json, "value", transition.Value);
            WriteDouble(json, "threshold", transition.Threshold);
            json.WriteString("description", transition.Description);
            json.WriteString("activeSince", Time(transition.ActiveSince));
            json.WriteString("at", Time(transition.At));
            json.WriteStartArray("actions");
            foreach (string action in transition.Actions)
            {
                json.WriteStringValue(action);
            }

            json.WriteEndArray();
            if (generatorUrl is not null)
            {
                json.WriteString("generatorURL", generatorUrl);
            }

            WriteTrace(json, transition.TraceContext);

            json.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary><c>firing</c>, <c>resolved</c> (firing → inactive), <c>pending</c>, or <c>inactive</c> (pending → inactive: it never fired).</summary>
    public static string Status(AlertTransition transition) => transition switch
    {
        { State: AlertState.Firing } => "firing",
        { IsResolution: true } => "resolved",
        { State: AlertState.Pending } => "pending",
        _ => "inactive",
    };

    /// <summary>RFC 3339 in UTC with 100 ns precision, e.g. <c>2025-01-31T12:00:00.1234567Z</c> (Go parses it).</summary>
    public static string Time(DateTimeOffset time) =>
        time.UtcDateTime.ToString("yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'fffffff'Z'", CultureInfo.InvariantCulture);

    /// <summary>Sorted by name, for stable documents.</summary>
    public static IReadOnlyList<KeyValuePair<string, string>> Sorted(IEnumerable<KeyValuePair<string, string>> map) =>
        [.. map.OrderBy(p => p.Key, StringComparer.Ordinal)];

    private static string State(AlertState state) => state switch
    {
        AlertState.Firing => "firing",
        AlertState.Pending => "pending",
        _ => "inactive",
    };

    /// <summary><c>traceId</c> and <c>spanId</c> of the record that caused the transition, when it carried them.</summary>
    private static void WriteTrace(Utf8JsonWriter json, TraceContext trace)
    {
        if (trace.IsEmpty)
        {
            return;
        }

        json.WriteString("traceId", trace.TraceId);
        if (trace.SpanId is { Length: > 0 } spanId)
        {
            json.WriteString("spanId", spanId);
        }
    }

    /// <summary>The annotations plus <see cref="TraceIdAnnotation"/> and <see cref="SpanIdAnnotation"/>, sorted; a rule's
    /// own annotation of the same name wins.</summary>
    private static IReadOnlyList<KeyValuePair<string, string>> WithTrace(IReadOnlyList<KeyValuePair<string, string>> annotations, TraceContext trace)
    {
        if (trace.IsEmpty)
        {
            return annotations;
        }

        var merged = new Dictionary<string, string>(annotations, StringComparer.Ordinal);
        merged.TryAdd(TraceIdAnnotation, trace.TraceId!);
        if (trace.SpanId is { Length: > 0 } spanId)
        {
            merged.TryAdd(SpanIdAnnotation, spanId);
        }

        return Sorted(merged);
    }

    private static void WriteMap(Utf8JsonWriter json, string name, IEnumerable<KeyValuePair<string, string>> map)
    {
        json.WriteStartObject(name);
        foreach ((string key, string value) in map)
        {
            json.WriteString(key, value);
        }

        json.WriteEndObject();
    }

    /// <summary>JSON has no NaN or infinities: those are written as the strings <c>"NaN"</c>, <c>"+Inf"</c>, <c>"-Inf"</c> (Prometheus' spelling).</summary>
    private static void WriteDouble(Utf8JsonWriter json, string name, double value)
    {
        if (double.IsFinite(value))
        {
            json.WriteNumber(name, value);
        }
        else
        {
            json.WriteString(name, double.IsNaN(value) ? "NaN" : value > 0 ? "+Inf" : "-Inf");
        }
    }

    private static List<KeyValuePair<string, string>> Common(IEnumerable<IReadOnlyList<KeyValuePair<string, string>>> maps)
    {
        Dictionary<string, string>? common = null;
        foreach (IReadOnlyList<KeyValuePair<string, string>> map in maps)
        {
            if (common is null)
            {
                common = new Dictionary<string, string>(map, StringComparer.Ordinal);
                continue;
            }

            foreach ((string key, string value) in common.ToList())
            {
                if (!map.Any(p => p.Key == key && p.Value == value))
                {
                    common.Remove(key);
                }
            }
        }

        return common is null ? [] : [.. common.OrderBy(p => p.Key, StringComparer.Ordinal)];
    }
}
