using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Monitor.Contracts;
using Monitor.Contracts.Transport;

namespace Monitor.Service;

/// <summary>Why a record goes to the dead-letter topic.</summary>
/// <param name="Kind">The <c>monitor-error-kind</c> header: a <see cref="DecodeErrorKind"/> name, or
/// <see cref="DeadLetter.ProcessingFailed"/>.</param>
/// <param name="Label">The <c>reason</c> label of the metrics (low cardinality, lower case).</param>
/// <param name="Reason">The <c>monitor-error-reason</c> header, for people.</param>
internal readonly record struct DeadLetter(string Kind, string Label, string Reason)
{
    /// <summary>The kind of a record that decoded but whose processing threw.</summary>
    public const string ProcessingFailed = "ProcessingFailed";

    /// <summary>The metrics label of <see cref="ProcessingFailed"/>.</summary>
    public const string ProcessingLabel = "processing";

    public static DeadLetter Of(DecodeError error) => new(error.Kind.ToString(), LabelOf(error.Kind), error.Reason);

    public static DeadLetter Of(Exception exception) => new(ProcessingFailed, ProcessingLabel, $"{exception.GetType().FullName}: {exception.Message}");

    public static string LabelOf(DecodeErrorKind kind) => kind.ToString().ToLowerInvariant();
}

/// <summary>The outcome of one dead-letter write: accepted by the topic, or lost (after the retries) with why.</summary>
internal readonly record struct DeadLetterOutcome(TransportMessage Message, DeadLetter Why, bool Accepted, string? Failure);

/// <summary>
/// Writes records to the dead-letter topic, byte for byte, with the reason and origin in headers
/// (<see cref="DeadLetterHeaders"/>), without waiting for the broker: at most <c>maxInFlight</c> writes are
/// outstanding, and <see cref="Send"/> waits for a free slot only when that many are. A write the transport refuses
/// is retried, <c>attempts</c> times in all; each write's outcome is queued for the pipeline thread to take
/// (<see cref="TryTake"/>), which marks the record's offset processed only then.
/// </summary>
/// <remarks><see cref="Send"/> and <see cref="TryTake"/> are called by the pipeline thread; delivery reports arrive on
/// the transport's thread and only queue outcomes and free slots.</remarks>
internal sealed class DeadLetterSink(IRecordProducer producer, string topic, int maxInFlight, int attempts = 3) : IDisposable
{
    private readonly SemaphoreSlim _slots = new(maxInFlight, maxInFlight);
    private readonly ConcurrentQueue<DeadLetterOutcome> _outcomes = new();

    /// <summary>Writes now outstanding.</summary>
    public int InFlight => maxInFlight - _slots.CurrentCount;

    /// <summary>Called on the transport's thread once per write, before the outcome is queued (counters, logs).</summary>
    public event Action<DeadLetterOutcome>? Settled;

    /// <summary>
    /// Starts one write. Waits only while <c>maxInFlight</c> writes are outstanding.
    /// </summary>
    /// <returns>False when <paramref name="cancellationToken"/> was cancelled before a slot was free (nothing
    /// was written; the record's offset must stay uncommitted).</returns>
    public bool Send(TransportMessage message, DeadLetter why, CancellationToken cancellationToken)
    {
        try
        {
            _slots.Wait(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            return false;
        }

        List<KeyValuePair<string, byte[]>> headers =
        [
            .. message.Headers,
            new(DeadLetterHeaders.ErrorKind, Encoding.UTF8.GetBytes(why.Kind)),
            new(DeadLetterHeaders.Reason, Encoding.UTF8.GetBytes(why.Reason)),
            new(DeadLetterHeaders.SourceTopic, Encoding.UTF8.GetBytes(message.Topic)),
            new(DeadLetterHeaders.SourcePartition, Encoding.UTF8.GetBytes(message.Partition.ToString(CultureInfo.InvariantCulture))),
            new(DeadLetterHeaders.SourceOffset, Encoding.UTF8.GetBytes(message.Offset.ToString(CultureInfo.InvariantCulture))),
        ];
        Attempt(message, why, headers, 1);
        return true;
    }

    /// <summary>Takes the next settled write, if any.</summary>
    public bool TryTake(out DeadLetterOutcome outcome) => _outcomes.TryDequeue(out outcome);

    /// <summary>Waits until no write is outstanding or <paramref name="timeout"/> passes (at shutdown).</summary>
    /// <returns>True when none is outstanding.</returns>
    public bool WaitForAll(TimeSpan timeout)
    {
        // Real time on purpose: this waits for I/O, which an injected fake clock would never let finish.
        long start = Stopwatch.GetTimestamp();
        while (InFlight > 0)
        {
            TimeSpan left = timeout - Stopwatch.GetElapsedTime(start);
            if (left <= TimeSpan.Zero)
            {
                return false;
            }

            // Lets the transport deliver and report; returns early once nothing is in flight.
            producer.Flush(left < TimeSpan.FromMilliseconds(100) ? left : TimeSpan.FromMilliseconds(100));
        }

        return true;
    }

    /// <inheritdoc />
    public void Dispose() => _slots.Dispose();

    private void Attempt(TransportMessage message, DeadLetter why, List<KeyValuePair<string, byte[]>> headers, int attempt)
    {
        producer.Produce(topic, message.Key ?? "", message.Value, headers, report =>
        {
            if (!report.Delivered && attempt < attempts)
            {
                // The Kafka producer already retried within its message timeout; this covers a refusal at once
                // (its queue momentarily full) and transports without retries.
                Attempt(message, why, headers, attempt + 1);
                return;
            }

            var outcome = new DeadLetterOutcome(message, why, report.Delivered, report.Delivered ? null : report.Error ?? "not delivered");
            try
            {
                Settled?.Invoke(outcome);
            }
            finally
            {
                _outcomes.Enqueue(outcome);
                _slots.Release();
            }
        });
    }
}
