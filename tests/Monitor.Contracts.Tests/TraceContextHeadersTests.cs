using System.Diagnostics;
using System.Text;
using Monitor.Contracts.Transport;

namespace Monitor.Contracts.Tests;

/// <summary>
/// W3C Trace Context in message headers: what the worker writes and what the service accepts. Valid values are the
/// W3C specification's examples; invalid ones follow its rules for what a receiver must ignore.
/// </summary>
public sealed class TraceContextHeadersTests
{
    private const string TraceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    private const string SpanId = "00f067aa0ba902b7";
    private const string ValidParent = "00-" + TraceId + "-" + SpanId + "-01";

    private static readonly ActivityContext Sampled = new(
        ActivityTraceId.CreateFromString(TraceId), ActivitySpanId.CreateFromString(SpanId), ActivityTraceFlags.Recorded, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");

    [Fact]
    public void Create_WritesTraceParentAndTraceState_WhenTheContextIsValid()
    {
        KeyValuePair<string, byte[]>[] headers = TraceContextHeaders.Create(Sampled);

        Assert.Equal([TraceContextHeaders.TraceParent, TraceContextHeaders.TraceState], headers.Select(h => h.Key));
        Assert.Equal(ValidParent, Encoding.UTF8.GetString(headers[0].Value));
        Assert.Equal("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7", Encoding.UTF8.GetString(headers[1].Value));
    }

    [Fact]
    public void Create_WritesFlagsZero_WhenTheContextIsNotSampled()
    {
        var context = new ActivityContext(Sampled.TraceId, Sampled.SpanId, ActivityTraceFlags.None);

        KeyValuePair<string, byte[]> header = Assert.Single(TraceContextHeaders.Create(context));

        Assert.Equal("00-" + TraceId + "-" + SpanId + "-00", Encoding.UTF8.GetString(header.Value));
    }

    [Fact]
    public void Create_ReturnsNoHeaders_WhenTheContextIsDefault()
    {
        Assert.Empty(TraceContextHeaders.Create(default));
        Assert.Empty(TraceContextHeaders.Create(new ActivityContext(Sampled.TraceId, default, ActivityTraceFlags.Recorded)));
    }

    [Theory]
    [InlineData("bad\u00e9state=1")]
    [InlineData("line\nbreak=1")]
    public void Create_LeavesOutTheTraceState_WhenItIsNotPrintableAscii(string state)
    {
        var context = new ActivityContext(Sampled.TraceId, Sampled.SpanId, ActivityTraceFlags.Recorded, state);

        KeyValuePair<string, byte[]> header = Assert.Single(TraceContextHeaders.Create(context));

        Assert.Equal(TraceContextHeaders.TraceParent, header.Key);
    }

    [Fact]
    public void Create_LeavesOutTheTraceState_WhenItIsLongerThanTheLimit()
    {
        string state = "k=" + new string('v', TraceContextHeaders.MaxTraceStateBytes);
        var context = new ActivityContext(Sampled.TraceId, Sampled.SpanId, ActivityTraceFlags.Recorded, state);

        Assert.Single(TraceContextHeaders.Create(context));
    }

    [Fact]
    public void TryExtract_ReturnsTheWrittenContext_AsARemoteOne()
    {
        KeyValuePair<string, byte[]>[] headers = [new("other", [1, 2, 3]), .. TraceContextHeaders.Create(Sampled)];

        Assert.True(TraceContextHeaders.TryExtract(headers, out ActivityContext context));

        Assert.Equal(Sampled.TraceId, context.TraceId);
        Assert.Equal(Sampled.SpanId, context.SpanId);
        Assert.Equal(ActivityTraceFlags.Recorded, context.TraceFlags);
        Assert.Equal(Sampled.TraceState, context.TraceState);
        Assert.True(context.IsRemote);
    }

    [Fact]
    public void TryExtract_MatchesHeaderNamesCaseInsensitively_AndJoinsRepeatedTraceStates()
    {
        KeyValuePair<string, byte[]>[] headers =
        [
            Header("TraceParent", ValidParent),
            Header("tracestate", "a=1"),
            Header("TRACESTATE", "b=2"),
        ];

        Assert.True(TraceContextHeaders.TryExtract(headers, out ActivityContext context));

        Assert.Equal(TraceId, context.TraceId.ToHexString());
        Assert.Equal("a=1,b=2", context.TraceState);
    }

    [Fact]
    public void TryExtract_KeepsTheTraceParent_WhenTheTraceStateIsMalformed()
    {
        KeyValuePair<string, byte[]>[] headers = [Header(TraceContextHeaders.TraceParent, ValidParent), new(TraceContextHeaders.TraceState, [0x6b, 0x3d, 0xff, 0x00])];

        Assert.True(TraceContextHeaders.TryExtract(headers, out ActivityContext context));

        Assert.Equal(SpanId, context.SpanId.ToHexString());
        Assert.Null(context.TraceState);
    }

    [Fact]
    public void TryExtract_AcceptsALaterVersion_IgnoringItsExtraFields()
    {
        KeyValuePair<string, byte[]>[] headers = [Header(TraceContextHeaders.TraceParent, "cc-" + TraceId + "-" + SpanId + "-01-what-the-future-will-be-like")];

        Assert.True(TraceContextHeaders.TryExtract(headers, out ActivityContext context));

        Assert.Equal(TraceId, context.TraceId.ToHexString());
        Assert.Equal(ActivityTraceFlags.Recorded, context.TraceFlags);
    }

    [Fact]
    public void TryExtract_KeepsOnlyTheSampledFlag()
    {
        KeyValuePair<string, byte[]>[] headers = [Header(TraceContextHeaders.TraceParent, "00-" + TraceId + "-" + SpanId + "-ff")];

        Assert.True(TraceContextHeaders.TryExtract(headers, out ActivityContext context));

        Assert.Equal(ActivityTraceFlags.Recorded, context.TraceFlags);
    }

    [Theory]
    [InlineData("")]
    [InlineData("00")]
    [InlineData("00-" + TraceId + "-" + SpanId + "-0")]
    [InlineData("00-" + TraceId + "-" + SpanId + "-01-")]
    [InlineData("00-" + TraceId + "-" + SpanId + "-01-extra")]
    [InlineData("ff-" + TraceId + "-" + SpanId + "-01")]
    [InlineData("0g-" + TraceId + "-" + SpanId + "-01")]
    [InlineData("cc-" + TraceId + "-" + SpanId + "-01.extra")]
    [InlineData("00-4BF92F3577B34DA6A3CE929D0E0E4736-" + SpanId + "-01")]
    [InlineData("00-" + TraceId + "-00F067AA0BA902B7-01")]
    [InlineData("00-00000000000000000000000000000000-" + SpanId + "-01")]
    [InlineData("00-" + TraceId + "-0000000000000000-01")]
    [InlineData("00-" + TraceId + "-" + SpanId + "-0x")]
    [InlineData("00-" + TraceId + "-" + SpanId + "-1F")]
    [InlineData("00_" + TraceId + "-" + SpanId + "-01")]
    [InlineData("00-" + TraceId + "_" + SpanId + "-01")]
    [InlineData("00-" + TraceId + "-" + SpanId + "_01")]
    [InlineData(" 00-" + TraceId + "-" + SpanId + "-01")]
    [InlineData("00-" + TraceId + "-" + SpanId + "-01 ")]
    [InlineData("00-4bf92f3577b34da6a3ce929d0e0e473-" + SpanId + "0-01")]
    [InlineData("00-" + TraceId + "-" + SpanId + "-\u00e901")]
    public void TryExtract_IgnoresAMalformedTraceParent(string traceParent)
    {
        KeyValuePair<string, byte[]>[] headers = [Header(TraceContextHeaders.TraceParent, traceParent), Header(TraceContextHeaders.TraceState, "a=1")];

        Assert.False(TraceContextHeaders.TryExtract(headers, out ActivityContext context));

        Assert.Equal(default, context);
    }

    [Fact]
    public void TryExtract_IgnoresTheContext_WhenThereAreTwoTraceParents()
    {
        KeyValuePair<string, byte[]>[] headers = [Header(TraceContextHeaders.TraceParent, ValidParent), Header(TraceContextHeaders.TraceParent, ValidParent)];

        Assert.False(TraceContextHeaders.TryExtract(headers, out _));
    }

    [Fact]
    public void TryExtract_ReturnsFalse_WhenThereAreNoHeadersOrNoValue()
    {
        Assert.False(TraceContextHeaders.TryExtract(null, out _));
        Assert.False(TraceContextHeaders.TryExtract([], out _));
        Assert.False(TraceContextHeaders.TryExtract([new(TraceContextHeaders.TraceState, Encoding.ASCII.GetBytes("a=1"))], out _));
        // A Kafka header may have no value at all; a transport that hands it on as null must not break extraction.
        Assert.False(TraceContextHeaders.TryExtract([new(TraceContextHeaders.TraceParent, null!)], out _));
        Assert.False(TraceContextHeaders.TryExtract([new(null!, Encoding.ASCII.GetBytes(ValidParent))], out _));
    }

    [Fact]
    public void TryExtract_NeverThrows_AndOnlyAcceptsWhatItCanWriteBack_OnMutatedValues()
    {
        // Seeded mutations of a valid value (bytes replaced, cut, extended) and random bytes.
        var random = new Random(20260509);
        byte[] valid = Encoding.ASCII.GetBytes(ValidParent);
        Span<byte> rewritten = stackalloc byte[55];
        int accepted = 0;
        for (int i = 0; i < 20_000; i++)
        {
            byte[] value = (i % 4) switch
            {
                0 => Mutate(valid, random),
                1 => valid[..random.Next(valid.Length)],
                2 => [.. valid, .. RandomBytes(random, random.Next(1, 8))],
                _ => RandomBytes(random, random.Next(0, 80)),
            };

            if (!TraceContextHeaders.TryExtract([new(TraceContextHeaders.TraceParent, value)], out ActivityContext context))
            {
                continue;
            }

            accepted++;
            Assert.True(TraceContextHeaders.TryFormatTraceParent(context.TraceId, context.SpanId, context.TraceFlags, rewritten));
            // Same version-00 fields back, except flags other than 'sampled', which are dropped.
            Assert.Equal(Encoding.ASCII.GetString(value, 3, 50), Encoding.ASCII.GetString(rewritten[3..53]));
        }

        Assert.True(accepted > 0, "some mutations keep the value valid (e.g. one hex digit for another)");
    }

    [Fact]
    public void TryFormatTraceParent_AllocatesNothing_AndRefusesAShortBuffer()
    {
        ActivityTraceId traceId = Sampled.TraceId;
        ActivitySpanId spanId = Sampled.SpanId;
        Span<byte> buffer = stackalloc byte[55];
        Assert.False(TraceContextHeaders.TryFormatTraceParent(traceId, spanId, ActivityTraceFlags.Recorded, buffer[..54]));
        TraceContextHeaders.TryFormatTraceParent(traceId, spanId, ActivityTraceFlags.Recorded, buffer);

        long before = GC.GetAllocatedBytesForCurrentThread();
        bool written = TraceContextHeaders.TryFormatTraceParent(traceId, spanId, ActivityTraceFlags.Recorded, buffer);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.True(written);
        Assert.Equal(0, allocated);
        Assert.Equal(ValidParent, Encoding.ASCII.GetString(buffer));
    }

    [Fact]
    public void TryExtract_AllocatesOnlyTheIds()
    {
        KeyValuePair<string, byte[]>[] headers = [new("monitor-other", [1]), Header(TraceContextHeaders.TraceParent, ValidParent)];
        TraceContextHeaders.TryExtract(headers, out _);

        long before = GC.GetAllocatedBytesForCurrentThread();
        bool found = TraceContextHeaders.TryExtract(headers, out ActivityContext context);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.True(found);
        // ActivityTraceId and ActivitySpanId keep their hex strings: 32 and 16 chars, about 170 bytes with headers.
        Assert.InRange(allocated, 1, 256);
        Assert.Equal(SpanId, context.SpanId.ToHexString());
    }

    private static KeyValuePair<string, byte[]> Header(string name, string value) => new(name, Encoding.UTF8.GetBytes(value));

    private static byte[] Mutate(byte[] valid, Random random)
    {
        byte[] value = [.. valid];
        int changes = random.Next(1, 3);
        for (int c = 0; c < changes; c++)
        {
            // Mostly characters that matter to the format: hex digits of both cases, separators, zero.
            const string Alphabet = "0123456789abcdefABCDEF-_ fxg\u0000";
            value[random.Next(value.Length)] = (byte)Alphabet[random.Next(Alphabet.Length)];
        }

        return value;
    }

    private static byte[] RandomBytes(Random random, int length)
    {
        byte[] bytes = new byte[length];
        random.NextBytes(bytes);
        return bytes;
    }
}
