using System.Diagnostics;
using Monitor.Contracts.Transport;

namespace Monitor.Tracing.Tests;

/// <summary>What <see cref="TestRecordProducer"/> does with each message handed to it.</summary>
internal enum ProducerBehavior
{
    /// <summary>Reports the message delivered, synchronously (as the in-process bus does).</summary>
    Deliver,

    /// <summary>Reports the message failed, synchronously.</summary>
    Fail,

    /// <summary>Throws from <see cref="IRecordProducer.Produce"/> without reporting (as Kafka's Produce does on a local error).</summary>
    Throw,

    /// <summary>Keeps the delivery report until <see cref="TestRecordProducer.ReleaseHeld"/>.</summary>
    Hold,
}

/// <summary>A message handed to <see cref="TestRecordProducer"/>.</summary>
internal sealed record ProducedMessage(string Topic, string Key, byte[] Value, IReadOnlyList<KeyValuePair<string, byte[]>>? Headers);

/// <summary>
/// A transport double: records every message, and delivers, fails, throws or holds the delivery reports as told. Its
/// <see cref="Produce"/> can also be blocked (the caller waits inside it until <see cref="UnblockProduce"/>), which
/// keeps a tracer's sender busy so that its queue fills up. Thread-safe.
/// </summary>
internal sealed class TestRecordProducer : IRecordProducer
{
    // Bound on a blocked Produce, so that a failing test cannot hang the run.
    private static readonly TimeSpan MaxBlock = TimeSpan.FromSeconds(30);

    private readonly Lock _lock = new();
    private readonly List<ProducedMessage> _messages = [];
    private readonly List<Action<DeliveryReport>> _held = [];
    private readonly ManualResetEventSlim _produceGate = new(initialState: true);
    private readonly ManualResetEventSlim _nothingHeld = new(initialState: true);
    private volatile ProducerBehavior _behavior;
    private int _produceCalls;
    private int _blockedCalls;
    private int _flushCalls;
    private int _disposeCalls;

    public TestRecordProducer(ProducerBehavior behavior = ProducerBehavior.Deliver) => _behavior = behavior;

    /// <summary>What happens to the next messages.</summary>
    public ProducerBehavior Behavior
    {
        get => _behavior;
        set => _behavior = value;
    }

    /// <summary>
    /// How long each <see cref="Produce"/> call busy-waits before it returns (a slow transport that keeps the sender
    /// busy without blocking it). Default zero.
    /// </summary>
    public TimeSpan ProduceDelay { get; init; }

    /// <summary>Calls to <see cref="Produce"/> so far, counted on entry (before any block).</summary>
    public int ProduceCalls => Volatile.Read(ref _produceCalls);

    /// <summary>Calls waiting inside <see cref="Produce"/> now.</summary>
    public int BlockedCalls => Volatile.Read(ref _blockedCalls);

    /// <summary>Calls to <see cref="Flush"/> so far.</summary>
    public int FlushCalls => Volatile.Read(ref _flushCalls);

    /// <summary>Calls to <see cref="Dispose"/> so far.</summary>
    public int DisposeCalls => Volatile.Read(ref _disposeCalls);

    /// <summary>Delivery reports held now.</summary>
    public int HeldCount
    {
        get
        {
            lock (_lock)
            {
                return _held.Count;
            }
        }
    }

    /// <summary>Every message handed over so far, in order.</summary>
    public IReadOnlyList<ProducedMessage> Messages
    {
        get
        {
            lock (_lock)
            {
                return [.. _messages];
            }
        }
    }

    /// <summary>Makes the next calls to <see cref="Produce"/> wait until <see cref="UnblockProduce"/>.</summary>
    public void BlockProduce() => _produceGate.Reset();

    /// <summary>Lets blocked and future calls to <see cref="Produce"/> through.</summary>
    public void UnblockProduce() => _produceGate.Set();

    /// <summary>Reports every held message, delivered or failed.</summary>
    public void ReleaseHeld(bool delivered = true)
    {
        Action<DeliveryReport>[] held;
        lock (_lock)
        {
            held = [.. _held];
            _held.Clear();
        }

        foreach (Action<DeliveryReport> onDelivery in held)
        {
            onDelivery(delivered ? new DeliveryReport(true, null) : new DeliveryReport(false, "test producer: released as failed"));
        }

        _nothingHeld.Set();
    }

    /// <summary>Unblocks, delivers whatever is held and delivers from now on: lets a tracer shut down.</summary>
    public void ReleaseAll()
    {
        _behavior = ProducerBehavior.Deliver;
        UnblockProduce();
        ReleaseHeld();
    }

    public void Produce(string topic, string key, byte[] value, IReadOnlyList<KeyValuePair<string, byte[]>>? headers, Action<DeliveryReport> onDelivery)
    {
        lock (_lock)
        {
            _messages.Add(new ProducedMessage(topic, key, value, headers));
        }

        Interlocked.Increment(ref _produceCalls);
        if (!_produceGate.IsSet)
        {
            Interlocked.Increment(ref _blockedCalls);
            _produceGate.Wait(MaxBlock);
            Interlocked.Decrement(ref _blockedCalls);
        }

        if (ProduceDelay > TimeSpan.Zero)
        {
            long start = Stopwatch.GetTimestamp();
            while (Stopwatch.GetElapsedTime(start) < ProduceDelay)
            {
                Thread.SpinWait(10);
            }
        }

        switch (_behavior)
        {
            case ProducerBehavior.Throw:
                throw new InvalidOperationException("test producer: produce refused");
            case ProducerBehavior.Fail:
                onDelivery(new DeliveryReport(false, "test producer: delivery failed"));
                break;
            case ProducerBehavior.Hold:
                lock (_lock)
                {
                    _held.Add(onDelivery);
                    _nothingHeld.Reset();
                }

                break;
            default:
                onDelivery(new DeliveryReport(true, null));
                break;
        }
    }

    public int Flush(TimeSpan timeout)
    {
        Interlocked.Increment(ref _flushCalls);
        _nothingHeld.Wait(timeout);
        return HeldCount;
    }

    public void Dispose() => Interlocked.Increment(ref _disposeCalls);
}
