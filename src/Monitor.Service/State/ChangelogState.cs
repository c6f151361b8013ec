using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Monitor.Analysis;
using Monitor.Contracts;
using Monitor.Service.Notifications;
using Monitor.Transport.Kafka;

namespace Monitor.Service.State;

/// <summary>
/// The service's side of the state changelog (<see cref="MonitorServiceOptions.StateTopic"/>): which step partition
/// each key belongs to, the keys changed and the transitions raised since the last commit; the commit that writes them
/// with the consumed offsets; the restore of newly assigned partitions and the handover of revoked ones.
/// </summary>
/// <remarks>
/// <para>Pipeline thread only: <see cref="Processed"/>, <see cref="Forgotten"/>, <see cref="Hold"/> and
/// <see cref="Commit"/> are called between records, and the assignment hooks run inside the consumer's
/// <c>Consume</c> on the same thread.</para>
/// <para>Transitions are held until their transaction commits and only then passed to <c>notify</c>
/// (notifications, actions). A failed transaction is aborted and everything it held is written again by the next
/// one; a producer fenced by another replica with the same transactional id throws out of <see cref="Commit"/>.</para>
/// <para><b>Webhooks at least once.</b> A firing or resolved transition that webhooks get is also written, in its
/// transaction, as an outbox entry (<see cref="NotificationOutbox"/>) to its key's changelog partition; once every
/// webhook is done with it, the webhook sender's thread tombstones the entry at once, outside the transactions
/// (<see cref="KafkaStateChangelog.DeleteNow"/>; should that fail, the next commit does). Whoever restores the
/// partition sends the entries it finds again. A revoked partition's deliveries are waited for (at most
/// <see cref="HandoverWait"/>) before its last commit, so a rebalance sends nothing twice; a notification is sent twice
/// only when its replica dies (or loses its partitions) between the webhook's answer and the tombstone's write
/// (milliseconds when idle, more under load). The restore looks for tombstones also behind a dead owner's open
/// transaction (<see cref="KafkaStateChangelog.TombstonedKeys"/>), which hides them from read-committed readers.</para>
/// </remarks>
internal sealed class ChangelogState : IDisposable
{
    private readonly KafkaStateChangelog _changelog;
    private readonly ITransactionalConsumer _consumer;
    private readonly AnalysisEngine _engine;
    private readonly ProcessedOffsets _offsets;
    private readonly MonitorServiceOptions _options;
    private readonly AlertDispatcher _notifications;
    private readonly AlertBook _book;
    private readonly ServiceMetrics _metrics;
    private readonly Action<AlertTransition, Action?> _notify;
    private readonly ILogger _logger;
    private readonly RateLimitedLog _faultLog;
    private readonly Dictionary<(string Run, uint Rank), int> _keyPartitions = [];
    private readonly HashSet<(string Run, uint Rank)> _dirtyKeys = [];
    private readonly List<AlertTransition> _uncommitted = [];
    // Outbox entries committed whose webhooks are not done yet (key → changelog partition). The senders' threads
    // tombstone settled ones at once and queue them here; one whose tombstone could not be queued waits in _tombstones
    // for the next commit that succeeds.
    private readonly Dictionary<string, int> _inFlight = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<(string Key, bool Deleted)> _settled = new();
    private readonly SemaphoreSlim _settledSignal = new(0);
    private volatile bool _notificationsStopped;
    private readonly List<(string Key, int Partition)> _tombstones = [];
    private readonly bool _webhooks;
    private Dictionary<int, long> _committedOffsets = [];
    private readonly Dictionary<AlertTransition, (string Key, int Partition)> _outbox = new(ReferenceEqualityComparer.Instance);

    /// <summary>How long a revocation or a clean stop waits for the webhooks to finish with committed notifications
    /// (what is still in flight then is sent again by the next owner).</summary>
    public static readonly TimeSpan HandoverWait = TimeSpan.FromSeconds(5);

    /// <summary>Takes over the consumer's assignment hooks.</summary>
    /// <param name="changelog">The transactional producer (started by the host).</param>
    /// <param name="consumer">The steps consumer, in exactly-once mode.</param>
    /// <param name="engine">The engine whose keys are snapshotted, restored and released.</param>
    /// <param name="offsets">What may be committed of each partition.</param>
    /// <param name="options">Topics.</param>
    /// <param name="notifications">Encodes the alerts topic's messages.</param>
    /// <param name="book">The replica's alerts (restored and handed-over ones go through it).</param>
    /// <param name="metrics">State and alert metrics.</param>
    /// <param name="notify">What a committed transition goes to (notifications and actions), with what to call once the
    /// webhooks are done with it (null when it has no outbox entry).</param>
    /// <param name="logger">Restores and handovers, one line each.</param>
    /// <param name="faultLog">Failed commits and aborts, rate-limited.</param>
    public ChangelogState(KafkaStateChangelog changelog, ITransactionalConsumer consumer, AnalysisEngine engine, ProcessedOffsets offsets,
        MonitorServiceOptions options, AlertDispatcher notifications, AlertBook book, ServiceMetrics metrics, Action<AlertTransition, Action?> notify,
        ILogger logger, RateLimitedLog faultLog)
    {
        _changelog = changelog;
        _consumer = consumer;
        _engine = engine;
        _offsets = offsets;
        _options = options;
        _notifications = notifications;
        _book = book;
        _metrics = metrics;
        _notify = notify;
        _logger = logger;
        _faultLog = faultLog;
        _webhooks = options.Notifications.Webhooks.Count > 0;
        consumer.PartitionsAssigned = Assigned;
        consumer.PartitionsRevoked = Revoked;
    }

    /// <summary>A record of the key was analysed, from step partition <paramref name="partition"/>.</summary>
    public void Processed(string run, uint rank, int partition)
    {
        _keyPartitions[(run, rank)] = partition;
        _dirtyKeys.Add((run, rank));
    }

    /// <summary>The engine forgot the key (idle TTL): its changelog entry becomes a tombstone at the next commit.</summary>
    public void Forgotten(string run, uint rank) => _dirtyKeys.Add((run, rank));

    /// <summary>A transition to hold until the commit that writes it (and its key's state after it).</summary>
    public void Hold(AlertTransition transition)
    {
        _uncommitted.Add(transition);
        if (AlertBook.KeyOf(transition) is { } key)
        {
            _dirtyKeys.Add(key);
        }
    }

    /// <summary>
    /// Writes the snapshots of the keys changed since the last commit (tombstones for keys forgotten), the uncommitted
    /// alert transitions and the consumed offsets in the current transaction and commits it; then the transitions are
    /// notified. A failed transaction is aborted: the keys stay changed and the transitions uncommitted, so the next
    /// commit writes them again (the engine's state is that of the records read, which the next offsets cover).
    /// </summary>
    /// <returns>False when the transaction failed and was aborted.</returns>
    public bool Commit()
    {
        var consumed = new Dictionary<int, long>();
        foreach (((string topic, int partition), long next) in _offsets.Committable())
        {
            if (topic == _options.StepsTopic)
            {
                consumed[partition] = next;
            }
        }

        TakeSettled();
        if (_dirtyKeys.Count == 0 && _uncommitted.Count == 0 && _tombstones.Count == 0
            && consumed.Count == _committedOffsets.Count && consumed.All(o => _committedOffsets.TryGetValue(o.Key, out long c) && c == o.Value))
        {
            return true;
        }

        TimeProvider time = _options.TimeProvider;
        long started = time.GetTimestamp();
        long bytes = 0;
        Dictionary<AlertTransition, (string Key, int Partition)> outbox = _outbox;
        try
        {
            foreach ((string run, uint rank) in _dirtyKeys)
            {
                if (!_keyPartitions.TryGetValue((run, rank), out int partition))
                {
                    continue;
                }

                // A key the engine no longer holds (its run ended long ago, or it was idle past the TTL) is a tombstone.
                byte[]? snapshot = _engine.Holds(run, rank) ? _engine.WriteSnapshot(run, rank) : null;
                bytes += snapshot?.Length ?? 0;
                _changelog.PutSnapshot(partition, RecordKey.Format(run, (int)rank), snapshot);
            }

            foreach ((string key, int partition) in _tombstones)
            {
                _changelog.PutSnapshot(partition, key, null);
            }

            outbox.Clear();
            foreach (AlertTransition transition in _uncommitted)
            {
                if (OutboxEntry(transition) is { } entry)
                {
                    _changelog.PutSnapshot(entry.Partition, entry.Key, NotificationOutbox.Write(transition));
                    outbox[transition] = entry;
                }

                try
                {
                    (string key, byte[] value) = _notifications.KafkaMessage(transition);
                    _changelog.Put(_options.Notifications.AlertsTopic, key, value);
                }
                catch (ArgumentException ex)
                {
                    _faultLog.Error("alert-json", ex, $"Alert transition {transition.Identity} cannot be encoded as JSON; it is not written to {_options.Notifications.AlertsTopic}");
                }
            }

            _changelog.Commit(_options.StepsTopic, consumed, _consumer.GroupMetadata);
        }
        catch (Confluent.Kafka.KafkaException ex) when (!ex.Error.IsFatal)
        {
            _metrics.StateSaveFailed();
            _faultLog.Error("state", ex, $"Committing the state transaction to {_changelog.Topic} failed ({ex.Error.Reason}); it is aborted and its state, alerts and offsets are written again with the next one");
            try
            {
                _changelog.Abort();
            }
            catch (Confluent.Kafka.KafkaException abort) when (!abort.Error.IsFatal)
            {
                _faultLog.Error("state-abort", abort, $"Aborting the state transaction failed ({abort.Error.Reason}); retried at the next commit");
            }

            return false;
        }

        foreach ((string run, uint rank) in _dirtyKeys)
        {
            if (!_engine.Holds(run, rank))
            {
                _keyPartitions.Remove((run, rank));
            }
        }

        _dirtyKeys.Clear();
        _tombstones.Clear();
        _committedOffsets = consumed;
        // The list is reused: Notify may not add to it (it does not: only Handle does, on this thread).
        foreach (AlertTransition transition in _uncommitted)
        {
            if (outbox.TryGetValue(transition, out (string Key, int Partition) entry))
            {
                _inFlight[entry.Key] = entry.Partition;
                _notify(transition, () => Settled(entry.Key, entry.Partition));
            }
            else
            {
                _notify(transition, null);
            }
        }

        _uncommitted.Clear();
        _metrics.StateSaved(time.GetElapsedTime(started), _keyPartitions.Count, bytes, time.GetUtcNow());
        return true;
    }

    /// <summary>
    /// Consuming thread, inside Consume, before any record of <paramref name="partitions"/>: restores their keys from
    /// the changelog. Restored alerts are active again without a transition (their owner before notified them).
    /// </summary>
    private void Assigned(IReadOnlyList<int> partitions)
    {
        foreach (int partition in partitions)
        {
            if (partition >= _changelog.Partitions)
            {
                throw new InvalidOperationException(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                    $"step partition {partition} has no partition in the state topic '{_changelog.Topic}' ({_changelog.Partitions} partitions): give it at least as many partitions as '{_options.StepsTopic}'"));
            }
        }

        long started = _options.TimeProvider.GetTimestamp();
        int restored = 0, failures = 0;
        var keys = new HashSet<(string Run, uint Rank)>();
        var resend = new List<(string Key, int Partition, AlertTransition Transition)>();
        foreach ((int partition, string key, byte[] snapshot) in _changelog.Restore(partitions))
        {
            if (NotificationOutbox.IsEntry(snapshot))
            {
                try
                {
                    resend.Add((key, partition, NotificationOutbox.Read(snapshot, $"outbox entry {key}")));
                }
                catch (InvalidDataException ex)
                {
                    failures++;
                    _tombstones.Add((key, partition));
                    Log(LogLevel.Error, $"State topic {_changelog.Topic}[{partition}]: the notification outbox entry {key} is corrupt ({ex.Message}); it is not sent again");
                }

                continue;
            }

            try
            {
                (string run, uint rank) = _engine.RestoreSnapshot(snapshot);
                _keyPartitions[(run, rank)] = partition;
                keys.Add((run, rank));
                restored++;
            }
            catch (InvalidDataException ex)
            {
                failures++;
                Log(LogLevel.Error, $"State topic {_changelog.Topic}[{partition}]: the state of {key} is corrupt ({ex.Message}); that key starts empty");
            }
        }

        int alerts = 0;
        foreach (AlertTransition alert in _engine.ActiveAlerts)
        {
            if (AlertBook.KeyOf(alert) is { } key && keys.Contains(key))
            {
                alerts++;
                _book.Restored(alert);
            }
        }

        // A delivered entry's tombstone is written outside the transactions, so a dead owner's open transaction hides
        // it from the read-committed restore until that transaction is aborted: look for it uncommitted.
        if (resend.Count > 0)
        {
            IReadOnlySet<string> delivered = _changelog.TombstonedKeys(partitions);
            resend.RemoveAll(r => delivered.Contains(r.Key));
        }

        // Committed, but their webhooks may not have got them before their owner died: sent again, in the order they
        // happened (a firing before its resolution).
        foreach ((string key, int partition, AlertTransition transition) in resend.OrderBy(r => r.Transition.At).ThenBy(r => r.Transition.State == AlertState.Firing ? 0 : 1))
        {
            _inFlight[key] = partition;
            _notifications.Redeliver(transition, () => Settled(key, partition));
        }

        _metrics.StateRestored(restored, failures);
        _metrics.Engine(_engine);
        Log(LogLevel.Information, string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"Partitions {string.Join(", ", partitions)} of {_options.StepsTopic} assigned: restored {restored} keys and {alerts} active alerts from {_changelog.Topic} in {_options.TimeProvider.GetElapsedTime(started).TotalMilliseconds:0} ms{(resend.Count > 0 ? $"; {resend.Count} committed notifications not known delivered are sent to the webhooks again" : "")}"));
    }

    /// <summary>
    /// Consuming thread, inside Consume: <paramref name="partitions"/> leave this replica. Unless they are lost, what was
    /// analysed of them is committed first. Then their keys are let go of: their state, alert series and Alertmanager
    /// resends end here without a resolution (the new owner restores and carries them on), and their transitions not
    /// committed are dropped (the new owner analyses their records again from the committed offsets).
    /// </summary>
    private void Revoked(IReadOnlyList<int> partitions, bool lost)
    {
        var leaving = new HashSet<int>(partitions);
        if (!lost)
        {
            WaitForDeliveries(leaving);
            Commit();
        }
        else
        {
            try
            {
                // Another member may own them already: nothing of this transaction may commit.
                _changelog.Abort();
            }
            catch (Confluent.Kafka.KafkaException ex) when (!ex.Error.IsFatal)
            {
                _faultLog.Error("state-abort", ex, $"Aborting the state transaction after losing partitions failed ({ex.Error.Reason})");
            }
        }

        // The new owner sends these again (it finds their outbox entries); this replica's answers for them are ignored.
        foreach (string key in _inFlight.Where(e => leaving.Contains(e.Value)).Select(e => e.Key).ToList())
        {
            _inFlight.Remove(key);
        }

        _tombstones.RemoveAll(t => leaving.Contains(t.Partition));
        _uncommitted.RemoveAll(t => AlertBook.KeyOf(t) is { } key && _keyPartitions.TryGetValue(key, out int p) && leaving.Contains(p));
        int released = 0;
        foreach (((string run, uint rank), int partition) in _keyPartitions.Where(k => leaving.Contains(k.Value)).ToList())
        {
            foreach (AlertTransition alert in _engine.Release(run, rank))
            {
                _book.HandedOver(alert);
            }

            _metrics.RankEnded(run, rank);
            _keyPartitions.Remove((run, rank));
            _dirtyKeys.Remove((run, rank));
            released++;
        }

        foreach (int partition in partitions)
        {
            _offsets.Forget(_options.StepsTopic, partition);
            _committedOffsets.Remove(partition);
        }

        _metrics.Engine(_engine);
        Log(LogLevel.Information, string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"Partitions {string.Join(", ", partitions)} of {_options.StepsTopic} {(lost ? "lost" : "revoked")}: {released} keys handed over"));
    }

    /// <summary>
    /// Waits (pipeline thread, at most <see cref="HandoverWait"/>) until the webhooks are done with the committed
    /// notifications of <paramref name="partitions"/> (null: of all), so that the commit that follows tombstones their
    /// outbox entries and nobody sends them again.
    /// </summary>
    public void WaitForDeliveries(IReadOnlySet<int>? partitions = null)
    {
        if (_notificationsStopped)
        {
            return;
        }

        long deadline = Environment.TickCount64 + (long)HandoverWait.TotalMilliseconds;
        while (true)
        {
            TakeSettled();
            long left = deadline - Environment.TickCount64;
            if (!_inFlight.Values.Any(p => partitions is null || partitions.Contains(p)) || left <= 0)
            {
                return;
            }

            _settledSignal.Wait(TimeSpan.FromMilliseconds(left));
        }
    }

    /// <summary>
    /// The host stops notifying (it disposes the dispatcher): revocations from now on (the consumer's close) no longer
    /// wait for deliveries; what is still in flight is sent again by the next owner.
    /// </summary>
    public void NotificationsStopped() => _notificationsStopped = true;

    /// <summary>Releases the wait handle (after the consumer, whose close may still revoke).</summary>
    public void Dispose() => _settledSignal.Dispose();

    /// <summary>
    /// A webhook sender's thread: every webhook is done with the entry's notification. Its tombstone is written now,
    /// since a crash before it would send the notification again; the next commit writes it should that fail.
    /// </summary>
    private void Settled(string key, int partition)
    {
        bool deleted = false;
        try
        {
            _changelog.DeleteNow(partition, key);
            deleted = true;
        }
        catch (Confluent.Kafka.KafkaException ex)
        {
            _faultLog.Warning("outbox-tombstone", ex, $"The tombstone of the delivered notification {key} could not be queued ({ex.Error.Reason}); the next commit writes it");
        }

        _settled.Enqueue((key, deleted));
        _settledSignal.Release();
    }

    /// <summary>Moves the deliveries the webhooks have settled to the tombstones of the next commit.</summary>
    private void TakeSettled()
    {
        while (_settled.TryDequeue(out (string Key, bool Deleted) settled))
        {
            if (_inFlight.Remove(settled.Key, out int partition) && !settled.Deleted)
            {
                _tombstones.Add((settled.Key, partition));
            }
        }
    }

    /// <summary>Where a transition's outbox entry goes, or null when it has none (no webhook wants it, or it has no
    /// (run, rank) key of a partition this replica holds).</summary>
    private (string Key, int Partition)? OutboxEntry(AlertTransition transition)
    {
        if (!_webhooks || !(transition.State == AlertState.Firing || transition.IsResolution)
            || AlertBook.KeyOf(transition) is not { } rank || !_keyPartitions.TryGetValue(rank, out int partition))
        {
            return null;
        }

        return (NotificationOutbox.Key(RecordKey.Format(rank.Run, (int)rank.Rank), transition), partition);
    }

    private void Log(LogLevel level, string message)
    {
#pragma warning disable CA1848, CA2254 // Rare path; the message is data.
        _logger.Log(level, message);
#pragma warning restore CA1848, CA2254
    }
}
