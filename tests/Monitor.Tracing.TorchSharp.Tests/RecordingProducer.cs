using System.Collections.Concurrent;
using Monitor.Contracts;
using Monitor.Contracts.Transport;
using Monitor.Contracts.V1;

namespace Monitor.Tracing.TorchSharp.Tests;

/// <summary>Test double transport: keeps every record, delivers at once.</summary>
internal sealed class RecordingProducer : IRecordProducer
{
    private readonly ConcurrentQueue<(string Key, byte[] Value)> _messages = new();
    private readonly ManualResetEventSlim _produceGate = new(initialState: true);

    /// <summary>The step records (one-shot captures included), not the end-of-run record disposing a tracer sends.</summary>
    public IReadOnlyList<StepRecord> Records => [.. AllRecords.Where(r => r.RunEnd is null)];

    /// <summary>Every record, in order.</summary>
    public IReadOnlyList<StepRecord> AllRecords => _messages.Select(m =>
    {
        Assert.True(StepRecordDecoder.TryDecode(m.Value, out StepRecord? record, out DecodeError error), error.ToString());
        return record;
    }).ToList();

    public IReadOnlyList<string> Keys => _messages.Select(m => m.Key).ToList();

    /// <summary>Makes the next calls to <see cref="Produce"/> wait (30 s at most) until <see cref="UnblockProduce"/>,
    /// so that a tracer's queue fills up.</summary>
    public void BlockProduce() => _produceGate.Reset();

    /// <summary>Lets blocked and future calls to <see cref="Produce"/> through.</summary>
    public void UnblockProduce() => _produceGate.Set();

    public void Produce(string topic, string key, byte[] value, IReadOnlyList<KeyValuePair<string, byte[]>>? headers, Action<DeliveryReport> onDelivery)
    {
        _produceGate.Wait(TimeSpan.FromSeconds(30));
        _messages.Enqueue((key, value));
        onDelivery(new DeliveryReport(true, null));
    }

    public int Flush(TimeSpan timeout) => 0;

    public void Dispose()
    {
        _produceGate.Set();
    }
}
