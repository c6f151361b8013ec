using System.Globalization;
using Monitor.Analysis;
using Monitor.Contracts;
using Monitor.Contracts.Transport;
using Monitor.Contracts.V1;
using Monitor.Service.Notifications;
using Prometheus;

namespace Monitor.Service;

/// <summary>
/// The service's Prometheus metrics, in their own <see cref="CollectorRegistry"/> (so several services can live in one
/// process, as in tests). Names and labels are listed in the README's metric reference.
/// </summary>
/// <remarks>Updated by the pipeline thread; scraped from Kestrel threads (prometheus-net is thread-safe).</remarks>
internal sealed class ServiceMetrics
{
    private static readonly string[] TensorLabels = ["run", "rank", "tensor"];
    // prometheus-net's own names for trace exemplars (Exemplar.FromTraceContext), which Grafana links to traces.
    private static readonly Exemplar.LabelKey TraceIdKey = Exemplar.Key("trace_id");
    private static readonly Exemplar.LabelKey SpanIdKey = Exemplar.Key("span_id");

    private readonly int _maxTensorSeries;
    private readonly Dictionary<SeriesKey, TensorGauges> _tensorSeries = [];
    private readonly Gauge _tensorMin, _tensorMax, _tensorMean, _tensorVariance, _tensorAbsMean, _tensorL2;
    private readonly Gauge _tensorNan, _tensorInf, _tensorZeroFraction;
    private readonly Gauge _tensorSeriesCount;
    private readonly Counter _tensorSeriesRejected;
    private readonly Counter _consumed, _decoded, _failed, _deadLettered, _deadLetterFailed;
    private readonly Gauge _lag;
    private readonly Gauge _step, _workerDropped, _selectionVersion;
    private readonly Dictionary<(string Run, uint Rank), RankSeries> _ranks = [];
    private readonly Gauge _alerts;
    private readonly Counter _alertsFired;
    private readonly Gauge _ruleFaults;
    private readonly Counter _outOfOrder, _late, _duplicate, _reloads, _actions;
    private readonly Counter _notificationsQueued, _notificationsDropped;
    private readonly Gauge _notificationsQueueLength, _notificationsFiring;
    private readonly Counter _notificationsSent, _notificationsFailed, _notificationsRetries, _notificationsTargetDropped, _notificationsRequests;

    public ServiceMetrics(CollectorRegistry registry, int maxTensorSeries)
    {
        Registry = registry;
        _maxTensorSeries = maxTensorSeries;
        MetricFactory factory = Metrics.WithCustomRegistry(registry);
        var tensor = new GaugeConfiguration { LabelNames = TensorLabels };
        _tensorMin = factory.CreateGauge("monitor_tensor_min", "Smallest finite element of the tensor at the last traced step.", tensor);
        _tensorMax = factory.CreateGauge("monitor_tensor_max", "Largest finite element of the tensor at the last traced step.", tensor);
        _tensorMean = factory.CreateGauge("monitor_tensor_mean", "Mean of the finite elements at the last traced step.", tensor);
        _tensorVariance = factory.CreateGauge("monitor_tensor_variance", "Population variance of the finite elements at the last traced step.", tensor);
        _tensorAbsMean = factory.CreateGauge("monitor_tensor_abs_mean", "Mean absolute value of the finite elements at the last traced step.", tensor);
        _tensorL2 = factory.CreateGauge("monitor_tensor_l2_norm", "L2 norm of the finite elements at the last traced step.", tensor);
        _tensorNan = factory.CreateGauge("monitor_tensor_nan_elements", "NaN elements at the last traced step.", tensor);
        _tensorInf = factory.CreateGauge("monitor_tensor_inf_elements", "Infinite elements at the last traced step.", tensor);
        _tensorZeroFraction = factory.CreateGauge("monitor_tensor_zero_ratio", "Fraction of elements equal to zero at the last traced step.", tensor);
        _tensorSeriesCount = factory.CreateGauge("monitor_tensor_series", "(run, rank, tensor) combinations exported as monitor_tensor_* gauges.");
        factory.CreateGauge("monitor_tensor_series_limit", "Cap on monitor_tensor_series (configuration).").Set(maxTensorSeries);
        _tensorSeriesRejected = factory.CreateCounter("monitor_tensor_series_rejected_total", "Tensor summaries not exported because the series cap was reached.");

        _consumed = factory.CreateCounter("monitor_records_consumed_total", "Records read from the steps topic.", "topic");
        _decoded = factory.CreateCounter("monitor_records_decoded_total", "Step records decoded and analysed.");
        _failed = factory.CreateCounter("monitor_records_failed_total", "Records that could not be decoded, by reason.", "reason");
        _deadLettered = factory.CreateCounter("monitor_records_dead_lettered_total", "Undecodable records written to the dead-letter topic.");
        _deadLetterFailed = factory.CreateCounter("monitor_dead_letter_failures_total", "Undecodable records the dead-letter topic did not accept after retries (logged).");
        _lag = factory.CreateGauge("monitor_consumer_lag_records", "Records in the partition after the consumer's position.", "topic", "partition");
        _step = factory.CreateGauge("monitor_worker_step", "Last step received from a rank.", "run", "rank");
        _workerDropped = factory.CreateGauge("monitor_worker_dropped_records", "Records the rank reports it dropped before sending (queue full, failed delivery).", "run", "rank");
        _selectionVersion = factory.CreateGauge("monitor_selection_version", "Version of the selection the rank's last record was traced under.", "run", "rank");
        _alerts = factory.CreateGauge("monitor_alerts", "Active alerts (1 while pending or firing), like Prometheus' ALERTS.",
            "alertname", "alertstate", "severity", "run", "rank", "tensor");
        _alertsFired = factory.CreateCounter("monitor_alerts_fired_total", "Alerts that started firing.", "alertname");
        _ruleFaults = factory.CreateGauge("monitor_rule_faults", "Exceptions thrown by rules (each skips that rule for one record).");
        _outOfOrder = factory.CreateCounter("monitor_records_out_of_order_total", "Records older than their rank's newest, evaluated within the late grace.");
        _late = factory.CreateCounter("monitor_records_late_total", "Records older than their rank's newest beyond the late grace: not evaluated.");
        _duplicate = factory.CreateCounter("monitor_records_duplicate_total", "Records repeating a step and sequence number already evaluated: not evaluated.");
        _reloads = factory.CreateCounter("monitor_rule_reloads_total", "Rule file reloads, by result (a failed reload keeps the rules in force).", "result");
        _actions = factory.CreateCounter("monitor_actions_total", "Actions of firing alerts (e.g. stop), by result.", "action", "result");
        _notificationsQueued = factory.CreateCounter("monitor_notifications_queued_total", "Alert transitions queued for notification.");
        _notificationsDropped = factory.CreateCounter("monitor_notifications_dropped_total", "Alert transitions not queued: queue full or shutting down.");
        _notificationsQueueLength = factory.CreateGauge("monitor_notifications_queue_length", "Alert transitions waiting in the notification queue.");
        _notificationsFiring = factory.CreateGauge("monitor_notifications_firing_alerts", "Firing alerts re-sent to Alertmanager every resend interval.");
        _notificationsSent = factory.CreateCounter("monitor_notifications_sent_total", "Alerts accepted by a target (2xx, or a delivered Kafka message).", "target");
        _notificationsFailed = factory.CreateCounter("monitor_notifications_failed_total", "Alerts a target did not take after retries, or refused (4xx).", "target");
        _notificationsRetries = factory.CreateCounter("monitor_notifications_retries_total", "Notification requests retried (network error, timeout, 5xx, 429).", "target");
        _notificationsTargetDropped = factory.CreateCounter("monitor_notifications_target_dropped_total", "Alerts dropped from a failing target's full backlog.", "target");
        _notificationsRequests = factory.CreateCounter("monitor_notifications_requests_total", "Notification HTTP requests (retries included) or Kafka messages produced.", "target");
    }

    public CollectorRegistry Registry { get; }

    public void Consumed(string topic) => _consumed.WithLabels(topic).Inc();

    public void Failed(DecodeError error) => _failed.WithLabels(error.Kind.ToString().ToLowerInvariant()).Inc();

    public void DeadLettered(bool accepted) => (accepted ? _deadLettered : _deadLetterFailed).Inc();

    public void Engine(AnalysisEngine engine)
    {
        _ruleFaults.Set(engine.RuleFaults);
        _outOfOrder.IncTo(engine.OutOfOrderRecords);
        _late.IncTo(engine.LateRecords);
        _duplicate.IncTo(engine.DuplicateRecords);
    }

    public void Notifications(NotificationStatistics statistics)
    {
        _notificationsQueued.IncTo(statistics.Queued);
        _notificationsDropped.IncTo(statistics.Dropped);
        _notificationsQueueLength.Set(statistics.QueueLength);
        _notificationsFiring.Set(statistics.FiringAlerts);
        foreach ((string target, NotificationTargetStatistics counters) in (ReadOnlySpan<(string, NotificationTargetStatistics)>)
            [("alertmanager", statistics.Alertmanager), ("webhook", statistics.Webhook), ("kafka", statistics.Kafka)])
        {
            _notificationsSent.WithLabels(target).IncTo(counters.Sent);
            _notificationsFailed.WithLabels(target).IncTo(counters.Failed);
            _notificationsRetries.WithLabels(target).IncTo(counters.Retries);
            _notificationsTargetDropped.WithLabels(target).IncTo(counters.Dropped);
            _notificationsRequests.WithLabels(target).IncTo(counters.Requests);
        }
    }

    public void RuleReloads(long succeeded, long failed)
    {
        _reloads.WithLabels("success").IncTo(succeeded);
        _reloads.WithLabels("failure").IncTo(failed);
    }

    public void Action(string action, string result) => _actions.WithLabels(action, result).Inc();

    public void Lag(IReadOnlyList<PartitionLag> lags)
    {
        foreach (PartitionLag lag in lags)
        {
            if (lag.Lag >= 0)
            {
                _lag.WithLabels(lag.Topic, lag.Partition.ToString(CultureInfo.InvariantCulture)).Set(lag.Lag);
            }
        }
    }

    public void Record(StepRecord record)
    {
        _decoded.Inc();
        if (record.AtBegin)
        {
            // A one-shot capture, not a step: it neither moves the step gauges nor replaces the rank's series.
            return;
        }

        string rank = record.Rank.ToString(CultureInfo.InvariantCulture);
        _step.WithLabels(record.RunId, rank).Set(record.Step);
        _workerDropped.WithLabels(record.RunId, rank).Set(record.DroppedBefore);
        _selectionVersion.WithLabels(record.RunId, rank).Set(record.SelectionVersion);
        if (!_ranks.TryGetValue((record.RunId, record.Rank), out RankSeries? series))
        {
            series = new RankSeries();
            _ranks[(record.RunId, record.Rank)] = series;
        }

        if (series.SelectionVersion != record.SelectionVersion)
        {
            // A new selection: the tensors it no longer traces must not linger as stale series.
            series.SelectionVersion = record.SelectionVersion;
            var traced = record.Tensors.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
            foreach (string gone in series.Tensors.Where(t => !traced.Contains(t)).ToList())
            {
                RemoveTensorSeries(new SeriesKey(record.RunId, record.Rank, gone));
                series.Tensors.Remove(gone);
            }
        }

        foreach (TensorRecord tensor in record.Tensors)
        {
            if (tensor.Summary is not { } summary)
            {
                continue;
            }

            var key = new SeriesKey(record.RunId, record.Rank, tensor.Name);
            if (!_tensorSeries.TryGetValue(key, out TensorGauges? gauges))
            {
                if (_tensorSeries.Count >= _maxTensorSeries)
                {
                    _tensorSeriesRejected.Inc();
                    continue;
                }

                string[] labels = [record.RunId, rank, tensor.Name];
                gauges = new TensorGauges(
                    _tensorMin.WithLabels(labels), _tensorMax.WithLabels(labels), _tensorMean.WithLabels(labels),
                    _tensorVariance.WithLabels(labels), _tensorAbsMean.WithLabels(labels), _tensorL2.WithLabels(labels),
                    _tensorNan.WithLabels(labels), _tensorInf.WithLabels(labels), _tensorZeroFraction.WithLabels(labels));
                _tensorSeries[key] = gauges;
                _tensorSeriesCount.Set(_tensorSeries.Count);
                series.Tensors.Add(tensor.Name);
            }

            gauges.Min.Set(summary.Min);
            gauges.Max.Set(summary.Max);
            gauges.Mean.Set(summary.Mean);
            gauges.Variance.Set(summary.Variance);
            gauges.AbsMean.Set(summary.AbsMean);
            gauges.L2.Set(summary.L2);
            gauges.Nan.Set(summary.NanCount);
            gauges.Inf.Set(summary.InfCount);
            gauges.ZeroRatio.Set(summary.Count == 0 ? 0 : (double)summary.ZeroCount / summary.Count);
        }
    }

    public void Alert(AlertTransition transition)
    {
        AlertIdentity id = transition.Identity;
        string[] Labels(AlertState state) =>
        [
            id[AlertLabels.AlertName], state.ToString().ToLowerInvariant(), id[AlertLabels.Severity],
            id[AlertLabels.Run], id[AlertLabels.Rank], id[AlertLabels.Tensor],
        ];

        if (transition.PreviousState != AlertState.Inactive)
        {
            _alerts.RemoveLabelled(Labels(transition.PreviousState));
        }

        if (transition.State != AlertState.Inactive)
        {
            _alerts.WithLabels(Labels(transition.State)).Set(1);
        }

        if (transition.State == AlertState.Firing)
        {
            // The exemplar (OpenMetrics exposition only) is the worker's trace of the record that fired the alert, not
            // the span current here; without one, prometheus-net's default (the current span, if any) applies.
            Counter.Child fired = _alertsFired.WithLabels(id[AlertLabels.AlertName]);
            if (transition.TraceContext is { IsEmpty: false, TraceId: { } traceId } trace)
            {
                fired.Inc(trace.SpanId is { Length: > 0 } spanId
                    ? Exemplar.From(TraceIdKey.WithValue(traceId), SpanIdKey.WithValue(spanId))
                    : Exemplar.From(TraceIdKey.WithValue(traceId)));
            }
            else
            {
                fired.Inc();
            }
        }
    }

    private void RemoveTensorSeries(SeriesKey key)
    {
        if (!_tensorSeries.Remove(key, out TensorGauges? gauges))
        {
            return;
        }

        foreach (Gauge.Child child in new[] { gauges.Min, gauges.Max, gauges.Mean, gauges.Variance, gauges.AbsMean, gauges.L2, gauges.Nan, gauges.Inf, gauges.ZeroRatio })
        {
            child.Remove();
        }

        _tensorSeriesCount.Set(_tensorSeries.Count);
    }

    private sealed class RankSeries
    {
        public long SelectionVersion = -1;
        public readonly HashSet<string> Tensors = new(StringComparer.Ordinal);
    }

    private sealed record TensorGauges(
        Gauge.Child Min, Gauge.Child Max, Gauge.Child Mean, Gauge.Child Variance, Gauge.Child AbsMean, Gauge.Child L2,
        Gauge.Child Nan, Gauge.Child Inf, Gauge.Child ZeroRatio);
}
