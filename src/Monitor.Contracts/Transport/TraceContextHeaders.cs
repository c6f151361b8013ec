using System.Diagnostics;
using System.Text;

namespace Monitor.Contracts.Transport;

/// <summary>
/// W3C Trace Context (<c>traceparent</c>, <c>tracestate</c>) in message headers, UTF-8 encoded, as the OpenTelemetry
/// messaging conventions carry it in Kafka headers. The worker writes the context of its <c>send</c> span; the service
/// reads it to link its <c>process</c> span to the worker's and to stamp alerts with the record's trace id.
/// </summary>
/// <remarks>
/// Own code over bytes rather than a text-map propagator: extraction runs for every consumed record and must not
/// allocate beyond the ids it returns, injection must not allocate beyond the header bytes. Baggage is not carried.
/// Thread-safe (stateless). Nothing here throws on bad input: a malformed or ambiguous <c>traceparent</c> is ignored
/// as the W3C specification asks, and so is a malformed <c>tracestate</c> (the <c>traceparent</c> is still used).
/// </remarks>
public static class TraceContextHeaders
{
    /// <summary>Header that carries version, trace id, parent span id and trace flags.</summary>
    public const string TraceParent = "traceparent";

    /// <summary>Header that carries vendor-specific trace state.</summary>
    public const string TraceState = "tracestate";

    /// <summary>
    /// Longest <c>tracestate</c> written or read, in bytes. W3C asks to propagate at least 512 characters and allows
    /// dropping beyond; a longer one is left out whole (the trace itself stays linked through <c>traceparent</c>).
    /// </summary>
    public const int MaxTraceStateBytes = 512;

    // "00-" + 32 hex + "-" + 16 hex + "-" + 2 hex.
    private const int TraceParentLength = 55;
    private const int TraceIdOffset = 3;
    private const int SpanIdOffset = 36;
    private const int FlagsOffset = 53;

    /// <summary>
    /// The headers that carry <paramref name="context"/>: <c>traceparent</c> (version 00) and, when the context has
    /// one of at most <see cref="MaxTraceStateBytes"/> printable ASCII bytes, <c>tracestate</c>.
    /// </summary>
    /// <returns>One or two headers; empty when the context has no valid trace id or span id. Never throws.</returns>
    public static KeyValuePair<string, byte[]>[] Create(in ActivityContext context)
    {
        byte[] parent = new byte[TraceParentLength];
        if (!TryFormatTraceParent(context.TraceId, context.SpanId, context.TraceFlags, parent))
        {
            return [];
        }

        if (context.TraceState is { Length: > 0 and <= MaxTraceStateBytes } state && IsPrintableAscii(state))
        {
            return [new(TraceParent, parent), new(TraceState, Encoding.ASCII.GetBytes(state))];
        }

        return [new(TraceParent, parent)];
    }

    /// <summary>
    /// Writes <c>00-{trace id}-{span id}-{flags}</c> (55 bytes) to <paramref name="destination"/>.
    /// </summary>
    /// <returns>False, with nothing meaningful written, when <paramref name="destination"/> is shorter than 55 bytes or
    /// an id is all zeros or not lowercase hex (a default id). Never throws.</returns>
    public static bool TryFormatTraceParent(ActivityTraceId traceId, ActivitySpanId spanId, ActivityTraceFlags flags, Span<byte> destination)
    {
        if (destination.Length < TraceParentLength)
        {
            return false;
        }

        // The hex strings are the ids' own (an Activity keeps them), so this reads them without allocating.
        if (!TryCopyHex(traceId.ToHexString(), destination.Slice(TraceIdOffset, 32))
            || !TryCopyHex(spanId.ToHexString(), destination.Slice(SpanIdOffset, 16)))
        {
            return false;
        }

        destination[0] = (byte)'0';
        destination[1] = (byte)'0';
        destination[2] = (byte)'-';
        destination[TraceIdOffset + 32] = (byte)'-';
        destination[SpanIdOffset + 16] = (byte)'-';
        byte value = (byte)flags;
        destination[FlagsOffset] = HexDigit(value >> 4);
        destination[FlagsOffset + 1] = HexDigit(value & 0xF);
        return true;
    }

    /// <summary>
    /// Reads the trace context from <paramref name="headers"/> (header names compared case-insensitively). Several
    /// <c>tracestate</c> headers are joined with commas, as HTTP combines repeated fields.
    /// </summary>
    /// <returns>True with a remote context when exactly one valid <c>traceparent</c> is present; false (and default)
    /// when there is none, more than one, or it is malformed. Never throws.</returns>
    public static bool TryExtract(IReadOnlyList<KeyValuePair<string, byte[]>>? headers, out ActivityContext context)
    {
        context = default;
        if (headers is null || headers.Count == 0)
        {
            return false;
        }

        byte[]? parent = null;
        int parents = 0;
        int states = 0;
        for (int i = 0; i < headers.Count; i++)
        {
            string? name = headers[i].Key;
            if (string.Equals(name, TraceParent, StringComparison.OrdinalIgnoreCase))
            {
                parent = headers[i].Value;
                parents++;
            }
            else if (string.Equals(name, TraceState, StringComparison.OrdinalIgnoreCase))
            {
                states++;
            }
        }

        // Two traceparent headers are ambiguous: W3C has the receiver start a new trace rather than guess.
        if (parents != 1 || !TryParseTraceParent(parent, out ActivityTraceId traceId, out ActivitySpanId spanId, out ActivityTraceFlags flags))
        {
            return false;
        }

        context = new ActivityContext(traceId, spanId, flags, states == 0 ? null : ReadTraceState(headers), isRemote: true);
        return true;
    }

    /// <summary>
    /// Parses a <c>traceparent</c> value: version 00 exactly 55 bytes; a later version (not <c>ff</c>) at least 55,
    /// with a <c>-</c> after the flags when longer (its extra fields are ignored, as W3C asks). Ids must be lowercase
    /// hex and not all zeros. Of the flags only <c>sampled</c> is kept.
    /// </summary>
    /// <returns>False, with default ids, for anything else. Never throws.</returns>
    public static bool TryParseTraceParent(ReadOnlySpan<byte> value, out ActivityTraceId traceId, out ActivitySpanId spanId, out ActivityTraceFlags flags)
    {
        traceId = default;
        spanId = default;
        flags = ActivityTraceFlags.None;
        if (value.Length < TraceParentLength
            || !TryHexByte(value[0], value[1], out int version)
            || version == 0xFF
            || (version == 0 && value.Length != TraceParentLength)
            || (value.Length > TraceParentLength && value[TraceParentLength] != (byte)'-')
            || value[2] != (byte)'-' || value[TraceIdOffset + 32] != (byte)'-' || value[SpanIdOffset + 16] != (byte)'-'
            || !IsIdHex(value.Slice(TraceIdOffset, 32))
            || !IsIdHex(value.Slice(SpanIdOffset, 16))
            || !TryHexByte(value[FlagsOffset], value[FlagsOffset + 1], out int flagBits))
        {
            return false;
        }

        // Validated above, so these do not throw.
        traceId = ActivityTraceId.CreateFromUtf8String(value.Slice(TraceIdOffset, 32));
        spanId = ActivitySpanId.CreateFromUtf8String(value.Slice(SpanIdOffset, 16));
        flags = (ActivityTraceFlags)(flagBits & (int)ActivityTraceFlags.Recorded);
        return true;
    }

    private static string? ReadTraceState(IReadOnlyList<KeyValuePair<string, byte[]>> headers)
    {
        StringBuilder? joined = null;
        for (int i = 0; i < headers.Count; i++)
        {
            if (!string.Equals(headers[i].Key, TraceState, StringComparison.OrdinalIgnoreCase) || headers[i].Value is not { Length: > 0 } bytes)
            {
                continue;
            }

            if (!IsPrintableAscii(bytes))
            {
                return null;
            }

            joined ??= new StringBuilder(bytes.Length);
            if (joined.Length > 0)
            {
                joined.Append(',');
            }

            joined.Append(Encoding.ASCII.GetString(bytes));
            if (joined.Length > MaxTraceStateBytes)
            {
                return null;
            }
        }

        return joined?.ToString();
    }

    private static bool TryCopyHex(string hex, Span<byte> destination)
    {
        if (hex.Length != destination.Length)
        {
            return false;
        }

        bool nonZero = false;
        for (int i = 0; i < hex.Length; i++)
        {
            char c = hex[i];
            if (!char.IsAsciiHexDigitLower(c) && !char.IsAsciiDigit(c))
            {
                return false;
            }

            nonZero |= c != '0';
            destination[i] = (byte)c;
        }

        return nonZero;
    }

    private static bool IsIdHex(ReadOnlySpan<byte> hex)
    {
        bool nonZero = false;
        foreach (byte b in hex)
        {
            if (!IsLowerHex(b))
            {
                return false;
            }

            nonZero |= b != (byte)'0';
        }

        return nonZero;
    }

    private static bool TryHexByte(byte high, byte low, out int value)
    {
        value = 0;
        if (!IsLowerHex(high) || !IsLowerHex(low))
        {
            return false;
        }

        value = (HexValue(high) << 4) | HexValue(low);
        return true;
    }

    private static bool IsLowerHex(byte b) => b is (>= (byte)'0' and <= (byte)'9') or (>= (byte)'a' and <= (byte)'f');

    private static int HexValue(byte b) => b <= (byte)'9' ? b - '0' : b - 'a' + 10;

    private static byte HexDigit(int value) => (byte)(value < 10 ? '0' + value : 'a' + value - 10);

    private static bool IsPrintableAscii(string text)
    {
        foreach (char c in text)
        {
            if (c is < ' ' or > '~')
            {
                return false;
            }
        }

        return true;
    }

    private static bool IsPrintableAscii(ReadOnlySpan<byte> bytes)
    {
        foreach (byte b in bytes)
        {
            if (b is < (byte)' ' or > (byte)'~')
            {
                return false;
            }
        }

        return true;
    }
}
