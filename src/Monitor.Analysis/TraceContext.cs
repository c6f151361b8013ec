namespace Monitor.Analysis;

/// <summary>
/// The distributed-trace context (W3C Trace Context ids) of the step record that caused an alert transition: the
/// worker's <c>send</c> span, as the record's <c>traceparent</c> header carried it. The engine does not interpret it:
/// the caller passes it in with the record (<see cref="AnalysisEngine.Process(Contracts.V1.StepRecord, TraceContext)"/>)
/// and the engine copies it onto the transitions that record causes, so an alert can be followed back to the
/// worker's trace without the engine knowing about OpenTelemetry or headers.
/// </summary>
/// <param name="TraceId">Trace id, 32 lowercase hex digits by convention; null for <see cref="None"/>.</param>
/// <param name="SpanId">Span id of the record's producer span, 16 lowercase hex digits by convention.</param>
public readonly record struct TraceContext(string? TraceId, string? SpanId)
{
    /// <summary>No trace context (the default): the record carried none, or the transition came from a clock tick
    /// or a rule reload rather than a record.</summary>
    public static TraceContext None => default;

    /// <summary>True when there is no trace id.</summary>
    public bool IsEmpty => string.IsNullOrEmpty(TraceId);
}
