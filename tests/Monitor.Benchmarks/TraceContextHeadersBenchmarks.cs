using System.Diagnostics;
using System.Text;
using BenchmarkDotNet.Attributes;
using Monitor.Contracts.Transport;

namespace Monitor.Benchmarks;

/// <summary>
/// W3C trace context in Kafka headers: writing <c>traceparent</c> for a context (worker, per traced record, when
/// listening) and reading it back from a record's headers (service, every record, listening or not).
/// </summary>
[MemoryDiagnoser]
[Config(typeof(Program.StandardConfig))]
public class TraceContextHeadersBenchmarks
{
    private readonly ActivityContext _context = new(
        ActivityTraceId.CreateFromString("4bf92f3577b34da6a3ce929d0e0e4736"), ActivitySpanId.CreateFromString("00f067aa0ba902b7"), ActivityTraceFlags.Recorded);

    private readonly byte[] _buffer = new byte[55];
    private KeyValuePair<string, byte[]>[] _headers = [];
    private KeyValuePair<string, byte[]>[] _noTraceHeaders = [];

    [GlobalSetup]
    public void Setup()
    {
        _headers = [new("dlq.other", Encoding.ASCII.GetBytes("x")), .. TraceContextHeaders.Create(_context)];
        _noTraceHeaders = [new("dlq.other", Encoding.ASCII.GetBytes("x"))];
    }

    /// <summary>The header array as the tracer hands it to the transport (55-byte value, one entry).</summary>
    [Benchmark]
    public int Inject() => TraceContextHeaders.Create(_context).Length;

    /// <summary>Only the formatting, into a reused buffer.</summary>
    [Benchmark]
    public bool FormatTraceParent() => TraceContextHeaders.TryFormatTraceParent(_context.TraceId, _context.SpanId, _context.TraceFlags, _buffer);

    /// <summary>What the service does for a record with a <c>traceparent</c>.</summary>
    [Benchmark]
    public bool Extract() => TraceContextHeaders.TryExtract(_headers, out _);

    /// <summary>What the service does for a record without one.</summary>
    [Benchmark]
    public bool ExtractAbsent() => TraceContextHeaders.TryExtract(_noTraceHeaders, out _);
}
