using System.Buffers.Binary;
using Google.Protobuf;
using Microsoft.Extensions.Time.Testing;
using Monitor.Contracts;
using Monitor.Contracts.V1;

namespace Monitor.Tracing.Tests;

/// <summary>Shared set-up of the selection feature tests: tracer options, decoding, raw value bytes.</summary>
internal static class TracerTestSupport
{
    public const string RunId = "run-sel";

    public static readonly CollectionSet Weights = CollectionSet.Of(Collection.Weights);
    public static readonly CollectionSet Biases = CollectionSet.Of(Collection.Biases);
    public static readonly CollectionSet Gradients = CollectionSet.Of(Collection.Gradients);
    public static readonly CollectionSet Losses = CollectionSet.Of(Collection.Losses);

    public static TracerOptions Options(TraceSelection selection, int rank = 0, int worldSize = 2, int maxRecordBytes = TracerOptions.DefaultMaxRecordBytes,
        int queueCapacity = 256) => new()
    {
        MaxRecordBytes = maxRecordBytes,
        QueueCapacity = queueCapacity,
        RunId = RunId,
        Rank = rank,
        WorldSize = worldSize,
        Topic = "test.steps",
        Selection = selection,
        TimeProvider = new FakeTimeProvider(new DateTimeOffset(2026, 5, 6, 7, 8, 9, TimeSpan.Zero)),
    };

    /// <summary>Waits until the tracer delivered <paramref name="count"/> records and returns every record produced, decoded.</summary>
    public static async Task<StepRecord[]> DeliveredAsync(StepTracer tracer, TestRecordProducer producer, int count)
    {
        await Poll.UntilAsync(() => tracer.Statistics.Delivered >= count, $"{count} record(s) delivered");
        Assert.True(await tracer.FlushAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
        return [.. producer.Messages.Select(m => Decode(m.Value))];
    }

    public static StepRecord Decode(byte[] payload)
    {
        Assert.True(StepRecordDecoder.TryDecode(payload, out StepRecord? record, out DecodeError error), error.ToString());
        return record;
    }

    /// <summary>The wire form of raw values: little-endian IEEE 754 float32.</summary>
    public static byte[] Float32Le(ReadOnlySpan<float> values)
    {
        byte[] bytes = new byte[values.Length * sizeof(float)];
        for (int i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * sizeof(float)), values[i]);
        }

        return bytes;
    }

    public static float[] ReadFloat32Le(ByteString bytes)
    {
        ReadOnlySpan<byte> span = bytes.Span;
        Assert.Equal(0, span.Length % sizeof(float));
        float[] values = new float[span.Length / sizeof(float)];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = BinaryPrimitives.ReadSingleLittleEndian(span[(i * sizeof(float))..]);
        }

        return values;
    }

    public static Dictionary<string, CollectionFilter> Collections(params (string Name, CollectionFilter Filter)[] collections) =>
        collections.ToDictionary(c => c.Name, c => c.Filter);
}
