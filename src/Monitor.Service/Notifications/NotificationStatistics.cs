namespace Monitor.Service.Notifications;

/// <summary>Counters of an <see cref="AlertDispatcher"/>, as of one moment (each counter is read atomically, the set is not).</summary>
/// <param name="Queued">Transitions <see cref="AlertDispatcher.Publish"/> accepted (suggested metric:
/// <c>monitor_notifications_queued_total</c>).</param>
/// <param name="Dropped">Transitions <see cref="AlertDispatcher.Publish"/> refused because the queue was full or the
/// dispatcher was disposed (<c>monitor_notifications_dropped_total</c>).</param>
/// <param name="QueueLength">Transitions waiting for the router now (<c>monitor_notifications_queue_length</c>).</param>
/// <param name="FiringAlerts">Alerts currently firing, re-sent to Alertmanager every resend interval
/// (<c>monitor_notifications_firing_alerts</c>).</param>
/// <param name="Alertmanager">Alertmanager targets, summed (label <c>target="alertmanager"</c>).</param>
/// <param name="Webhook">Webhook targets, summed (label <c>target="webhook"</c>).</param>
/// <param name="Kafka">The alerts topic (label <c>target="kafka"</c>).</param>
public sealed record NotificationStatistics(
    long Queued,
    long Dropped,
    long QueueLength,
    int FiringAlerts,
    NotificationTargetStatistics Alertmanager,
    NotificationTargetStatistics Webhook,
    NotificationTargetStatistics Kafka);

/// <summary>Counters of one kind of target. Alerts are counted once per target (two Alertmanagers: twice).</summary>
/// <param name="Sent">Alerts the target accepted: in a 2xx answer, or a delivered Kafka message
/// (<c>monitor_notifications_sent_total{target}</c>).</param>
/// <param name="Failed">Alerts given up on: a 4xx answer other than 429, retries exhausted, a failed Kafka delivery,
/// or an alert that cannot be encoded for the target, e.g. an invalid label name for Alertmanager
/// (<c>monitor_notifications_failed_total{target}</c>).</param>
/// <param name="Retries">Requests retried after a network error, timeout, 5xx or 429
/// (<c>monitor_notifications_retries_total{target}</c>).</param>
/// <param name="Dropped">Alerts dropped from the target's backlog, oldest first, while it was failing and the backlog
/// was full (<c>monitor_notifications_target_dropped_total{target}</c>).</param>
/// <param name="Requests">HTTP requests made, retries included, or Kafka messages produced
/// (<c>monitor_notifications_requests_total{target}</c>).</param>
public sealed record NotificationTargetStatistics(long Sent, long Failed, long Retries, long Dropped, long Requests);

/// <summary>The three kinds of notification targets.</summary>
internal enum TargetKind
{
    Alertmanager,
    Webhook,
    Kafka,
}

/// <summary>Thread-safe counters of one target kind.</summary>
internal sealed class TargetCounters
{
    private long _sent, _failed, _retries, _dropped, _requests;

    public void Sent(int alerts) => Interlocked.Add(ref _sent, alerts);

    public void Failed(int alerts) => Interlocked.Add(ref _failed, alerts);

    public void Retried() => Interlocked.Increment(ref _retries);

    public void Dropped() => Interlocked.Increment(ref _dropped);

    public void Requested() => Interlocked.Increment(ref _requests);

    public NotificationTargetStatistics Snapshot() => new(
        Interlocked.Read(ref _sent), Interlocked.Read(ref _failed), Interlocked.Read(ref _retries),
        Interlocked.Read(ref _dropped), Interlocked.Read(ref _requests));
}
