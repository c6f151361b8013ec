using System.Collections.Concurrent;
using System.Globalization;
using System.Text.RegularExpressions;
using Monitor.Analysis;
using Monitor.Contracts;
using Monitor.Contracts.Transport;
using Monitor.Contracts.V1;
using Monitor.Service.Notifications;
using Prometheus;
using Histogram = Monitor.Contracts.V1.Histogram;

namespace Monitor.Service;

/// <summary>
/// The service's Prometheus metrics, in their own <see cref="CollectorRegistry"/> (so several services can live in one
/// process, as in tests). Names and labels are listed in the README's metric reference.
/// </summary>
/// <remarks>
/// Updated by the pipeline thread, except <see cref="Heartbeats"/> (the heartbeat poller's, one at a time); scraped
/// from Kestrel threads (prometheus-net is thread-safe). Series that dashboards and alerts read from the start
/// (decode failures by reason, actions, firings per rule) are created at 0, so a panel shows 0 rather than no data.
/// <see cref="Record"/> allocates nothing once the record's rank and tensors have their series.
/// </remarks>
internal sealed class ServiceMetrics
{
    /// <summary>Results of the stop action, created at 0 (see <see cref="Action"/>).</summary>
    internal static readonly string[] ActionResults = ["issued", "failed", "no_control_plane"];

    private static readonly string[] TensorLabels = ["run", "rank", "tensor"];
    private static readonly string[] DriftLabels = ["run", "rank", "tensor", "feature", "test"];
    private static readonly string[] HistogramLabels = ["run", "rank", "tensor", "le"];

    // Indexed by Mode; a mode this build does not know is reported as unspecified.
    private static readonly string[] ModeNames = ["unspecified", "train", "eval", "predict"];

    // prometheus-net's own names for trace exemplars (Exemplar.FromTraceContext), which Grafana links to traces.
    private static readonly Exemplar.LabelKey TraceIdKey = Exemplar.Key("trace_id");
    private static readonly Exemplar.LabelKey SpanIdKey = Exemplar.Key("span_id");

    private readonly int _maxTensorSeries;
    private readonly Dictionary<SeriesKey, TensorGauges> _tensorSeries = [];
    private readonly Gauge _tensorMin, _tensorMax, _tensorMean, _tensorVariance, _tensorAbsMean, _tensorL1, _tensorL2;
    private readonly Gauge _tensorNan, _tensorInf, _tensorZeroFraction;
    private readonly Gauge _tensorSeriesCount;
    private readonly Counter _tensorSeriesRejected, _tensorSeriesEvicted;
    // Advanced per record: the stamp of the series a record updates, so the least recently updated can be evicted.
    private long _recordStamp;
    // The clock's timestamp of the record being exported, how long a series must go without an update before it can
    // be evicted, and per kind the earliest timestamp at which one can be (no scan for a newcomer before then).
    private readonly TimeProvider _time;
    private readonly long _evictionIdle;
    private long _recordAt, _tensorsEvictableAt, _driftEvictableAt;
    private readonly Regex? _histogramPattern;
    private readonly int _maxHistogramTensors;
    private readonly Gauge _histogram, _histogramCount;
    private int _histogramTensors;
    private readonly Gauge _loss;
    private readonly Counter _consumed, _decoded, _failed, _deadLettered, _deadLetterFailed;
    private readonly Gauge _lag, _deadLettersInFlight;
    private readonly Gauge _step, _workerDropped, _workerRawTrimmed, _workerOverhead, _workerThinned, _selectionVersion, _heartbeat;
    private readonly Counter _workerRecords;
    private readonly Dictionary<(string Run, uint Rank), RankSeries> _ranks = [];
    // Written by the pipeline, read by the heartbeat poller: the ranks this service received records from.
    private readonly ConcurrentDictionary<(string Run, uint Rank), byte> _seenRanks = new();
    // Heartbeat poller only.
    private readonly Dictionary<(string Run, int Rank), Gauge.Child> _heartbeats = [];
    private readonly Gauge _alerts;
    private readonly Counter _alertsFired;
    private readonly Gauge _ruleFaults;
    private readonly Counter _outOfOrder, _late, _duplicate, _reloads, _actions, _ranksEnded, _ranksEvicted, _seriesRestarts;
    private readonly Counter _notificationsQueued, _notificationsDropped;
    private readonly Gauge _notificationsQueueLength, _notificationsFiring;
    private readonly Counter _notificationsSent, _notificationsFailed, _notificationsRetries, _notificationsTargetDropped, _notificationsRequests;
    private readonly Dictionary<(string Run, uint Rank, string Tensor, string Feature, string Test), DriftGauges> _driftSeries = [];
    private readonly Gauge _driftStatistic, _driftPValue, _driftDrifted, _driftSeriesCount;
    private readonly Counter _driftDetections, _driftSeriesRejected, _driftSeriesEvicted;
    private readonly Counter _stateSaves, _stateRestoreFailures;
    private readonly Gauge _stateSaveSeconds, _stateKeys, _stateBytes, _stateSavedAt;

    public ServiceMetrics(CollectorRegistry registry, MonitorServiceOptions options)
    {
        Registry = registry;
        _maxTensorSeries = options.MaxTensorSeries;
        _time = options.TimeProvider;
        _evictionIdle = (long)(options.SeriesEvictionIdle.TotalSeconds * _time.TimestampFrequency);
        _maxHistogramTensors = options.MaxHistogramTensors;
        _histogramPattern = options.HistogramTensors is { } pattern ? new Regex(pattern, RegexOptions.NonBacktracking | RegexOptions.CultureInvariant) : null;
        MetricFactory factory = Metrics.WithCustomRegistry(registry);
        var tensor = new GaugeConfiguration { LabelNames = TensorLabels };
        _tensorMin = factory.CreateGauge("monitor_tensor_min", "Smallest finite element of the tensor at the last traced step.", tensor);
        _tensorMax = factory.CreateGauge("monitor_tensor_max", "Largest finite element of the tensor at the last traced step.", tensor);
        _tensorMean = factory.CreateGauge("monitor_tensor_mean", "Mean of the finite elements at the last traced step.", tensor);
        _tensorVariance = factory.CreateGauge("monitor_tensor_variance", "Population variance of the finite elements at the last traced step.", tensor);
        _tensorAbsMean = factory.CreateGauge("monitor_tensor_abs_mean", "Mean absolute value of the finite elements at the last traced step.", tensor);
        _tensorL1 = factory.CreateGauge("monitor_tensor_l1_norm", "L1 norm (sum of |x|) of the finite elements at the last traced step.", tensor);
        _tensorL2 = factory.CreateGauge("monitor_tensor_l2_norm", "L2 norm of the finite elements at the last traced step.", tensor);
        _tensorNan = factory.CreateGauge("monitor_tensor_nan_elements", "NaN elements at the last traced step.", tensor);
        _tensorInf = factory.CreateGauge("monitor_tensor_inf_elements", "Infinite elements at the last traced step.", tensor);
        _tensorZeroFraction = factory.CreateGauge("monitor_tensor_zero_ratio", "Fraction of elements equal to zero at the last traced step.", tensor);
        _tensorSeriesCount = factory.CreateGauge("monitor_tensor_series", "(run, rank, tensor) combinations exported as monitor_tensor_* gauges.");
        factory.CreateGauge("monitor_tensor_series_limit", "Cap on monitor_tensor_series (configuration).").Set(_maxTensorSeries);
        _tensorSeriesRejected = factory.CreateCounter("monitor_tensor_series_rejected_total", "Tensor summaries not exported: the series cap is 0, or every series was updated by the same record.");
        _tensorSeriesEvicted = factory.CreateCounter("monitor_tensor_series_evicted_total", "Tensor series removed to make room under the cap (the least recently updated go first).");
        _histogram = factory.CreateGauge("monitor_tensor_histogram_elements",
            "Elements in the histogram buckets up to the one whose upper edge is le, at the last traced step (cumulative, like a histogram's _bucket; estimated from the sample for a sampled histogram).",
            new GaugeConfiguration { LabelNames = HistogramLabels });
        _histogramCount = factory.CreateGauge("monitor_tensor_histograms", "(run, rank, tensor) combinations whose histograms are exported.");
        factory.CreateGauge("monitor_tensor_histograms_limit", "Cap on monitor_tensor_histograms (configuration).").Set(_maxHistogramTensors);
        _loss = factory.CreateGauge("monitor_loss", "Mean of a tensor of the losses collection at the rank's last step of the mode.", "run", "rank", "mode", "tensor");

        _consumed = factory.CreateCounter("monitor_records_consumed_total", "Records read from the steps topic.", "topic");
        _decoded = factory.CreateCounter("monitor_records_decoded_total", "Step records decoded and analysed.");
        _failed = factory.CreateCounter("monitor_records_failed_total", "Records that could not be decoded, or whose processing threw (reason processing), by reason.", "reason");
        _deadLettered = factory.CreateCounter("monitor_records_dead_lettered_total", "Records written to the dead-letter topic (acknowledged), by reason.", "reason");
        _deadLetterFailed = factory.CreateCounter("monitor_dead_letter_failures_total", "Records the dead-letter topic did not accept after retries, by reason: lost (logged).", "reason");
        _deadLettersInFlight = factory.CreateGauge("monitor_dead_letters_in_flight", "Dead-letter writes outstanding (their records' offsets are not committed yet).");
        _lag = factory.CreateGauge("monitor_consumer_lag_records", "Records in the partition after the consumer's position.", "topic", "partition");
        _step = factory.CreateGauge("monitor_worker_step", "Last step received from a rank.", "run", "rank");
        _workerDropped = factory.CreateGauge("monitor_worker_dropped_records", "Records the rank reports it dropped before sending (queue full, failed delivery).", "run", "rank");
        _workerRawTrimmed = factory.CreateGauge("monitor_worker_raw_trimmed_parts", "Raw parts the rank left out of its records to keep them within its byte budget (summaries were sent).", "run", "rank");
        _workerOverhead = factory.CreateGauge("monitor_worker_overhead_ratio", "The rank's tracer cost on its training thread as a fraction of its step time (its last budget window).", "run", "rank");
        _workerThinned = factory.CreateGauge("monitor_worker_thinned_tensors", "Selected tensors the rank's overhead budget left out of its last record (0: nothing thinned).", "run", "rank");
        _selectionVersion = factory.CreateGauge("monitor_selection_version", "Version of the selection the rank's last record was traced under.", "run", "rank");
        _workerRecords = factory.CreateCounter("monitor_worker_records_total", "Step records decoded from the rank.", "run", "rank");
        _heartbeat = factory.CreateGauge("monitor_worker_heartbeat_timestamp_seconds",
            "When the rank last wrote its control-plane heartbeat (Unix seconds, the worker's clock); gone once the rank stopped on purpose.", "run", "rank");
        _alerts = factory.CreateGauge("monitor_alerts", "Active alerts (1 while pending or firing), like Prometheus' ALERTS.",
            "alertname", "alertstate", "severity", "run", "rank", "tensor", "feature");
        _alertsFired = factory.CreateCounter("monitor_alerts_fired_total", "Alerts that started firing.", "alertname");
        _ruleFaults = factory.CreateGauge("monitor_rule_faults", "Exceptions thrown by rules (each skips that rule for one record).");
        _outOfOrder = factory.CreateCounter("monitor_records_out_of_order_total", "Records older than their rank's newest, evaluated within the late grace.");
        _late = factory.CreateCounter("monitor_records_late_total", "Records older than their rank's newest beyond the late grace: not evaluated.");
        _duplicate = factory.CreateCounter("monitor_records_duplicate_total", "Records repeating a step and sequence number already evaluated: not evaluated.");
        _ranksEnded = factory.CreateCounter("monitor_ranks_ended_total", "End-of-run records processed: ranks whose run ended (their alerts resolved, their series removed).");
        _ranksEvicted = factory.CreateCounter("monitor_ranks_evicted_total", "Ranks forgotten after the idle TTL (--state-ttl) without a record: their alerts resolved, their state and series removed.");
        _seriesRestarts = factory.CreateCounter("monitor_series_restarts_total", "Times a rank's training steps went back (a job resumed from a checkpoint): a new series began.");
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

        foreach (string reason in Enum.GetValues<DecodeErrorKind>().Select(DeadLetter.LabelOf).Append(DeadLetter.ProcessingLabel))
        {
            _failed.WithLabels(reason);
            _deadLettered.WithLabels(reason);
            _deadLetterFailed.WithLabels(reason);
        }

        foreach (string result in ActionResults)
        {
            _actions.WithLabels("stop", result);
        }

        var drift = new GaugeConfiguration { LabelNames = DriftLabels };
        _driftStatistic = factory.CreateGauge("monitor_drift_statistic", "Statistic of the last drift test of the feature (for detectors: the mean of the values fed from the last record).", drift);
        _driftPValue = factory.CreateGauge("monitor_drift_p_value", "p-value of the last drift test of the feature (hypothesis tests only).", drift);
        _driftDrifted = factory.CreateGauge("monitor_drift_drifted", "1 when the last drift test of the feature (or the detector, on the last record) found drift, else 0.", drift);
        _driftDetections = factory.CreateCounter("monitor_drift_detections_total", "Drift tests that found drift and detector signals, per feature.", DriftLabels);
        _driftSeriesCount = factory.CreateGauge("monitor_drift_series", "(run, rank, tensor, feature, test) combinations exported as monitor_drift_* series.");
        factory.CreateGauge("monitor_drift_series_limit", "Cap on monitor_drift_series (configuration: the same cap as monitor_tensor_series).").Set(_maxTensorSeries);
        _driftSeriesRejected = factory.CreateCounter("monitor_drift_series_rejected_total", "Drift results not exported: the series cap is 0, or every series was updated by the same record.");
        _driftSeriesEvicted = factory.CreateCounter("monitor_drift_series_evicted_total", "Drift series removed to make room under the cap (the least recently updated go first).");

        // serve --state-dir; at 0 without one (the demo keeps its state in memory).
        _stateSaves = factory.CreateCounter("monitor_state_saves_total", "State generations written to --state-dir, or transactions committed to --state-topic (snapshots and offsets together), by result.", "result");
        _stateSaves.WithLabels("success");
        _stateSaves.WithLabels("failure");
        _stateSaveSeconds = factory.CreateGauge("monitor_state_save_seconds", "Duration of the last successful state save or changelog commit (pipeline paused meanwhile).");
        _stateKeys = factory.CreateGauge("monitor_state_keys", "(run, rank) keys in the last state saved or restored.");
        _stateBytes = factory.CreateGauge("monitor_state_bytes", "Size of the snapshots of the last state saved (with --state-topic: those the last commit wrote, the keys that changed).");
        _stateSavedAt = factory.CreateGauge("monitor_state_last_save_timestamp_seconds", "When the last state save succeeded (Unix seconds); 0 before the first.");
        _stateRestoreFailures = factory.CreateCounter("monitor_state_restore_failures_total", "Saved keys that could not be restored (corrupt or truncated bytes) and started empty, and unreadable generations.");
    }

    /// <summary>A state generation was written.</summary>
    public void StateSaved(TimeSpan took, int keys, long bytes, DateTimeOffset at)
    {
        _stateSaves.WithLabels("success").Inc();
        _stateSaveSeconds.Set(took.TotalSeconds);
        _stateKeys.Set(keys);
        _stateBytes.Set(bytes);
        _stateSavedAt.Set(at.ToUnixTimeMilliseconds() / 1000.0);
    }

    /// <summary>A state save failed (the previous generation stays in force).</summary>
    public void StateSaveFailed() => _stateSaves.WithLabels("failure").Inc();

    /// <summary>A state was restored: <paramref name="keys"/> keys, <paramref name="failures"/> of them (or generations) unreadable.</summary>
    public void StateRestored(int keys, int failures)
    {
        _stateKeys.Set(keys);
        _stateRestoreFailures.Inc(failures);
    }

    /// <summary>An alert restored from saved state: its <c>monitor_alerts</c> series, without counting a firing.</summary>
    public void AlertRestored(AlertTransition transition) => _alerts.WithLabels(AlertSeriesLabels(transition)).Set(1);

    /// <summary>The alert's key went to another replica: its <c>monitor_alerts</c> series goes (the new owner exports it).</summary>
    public void AlertHandedOver(AlertTransition transition) => _alerts.RemoveLabelled(AlertSeriesLabels(transition));

    private static string[] AlertSeriesLabels(AlertTransition transition)
    {
        AlertIdentity id = transition.Identity;
        return
        [
            id[AlertLabels.AlertName], transition.State.ToString().ToLowerInvariant(), id[AlertLabels.Severity],
            id[AlertLabels.Run], id[AlertLabels.Rank], id[AlertLabels.Tensor], id[AlertLabels.Feature],
        ];
    }

    public CollectorRegistry Registry { get; }

    public void Consumed(string topic) => _consumed.WithLabels(topic).Inc();

    /// <summary>Runs with a rank this service received records from (any thread).</summary>
    public IReadOnlyCollection<string> RunsSeen => [.. _seenRanks.Keys.Select(k => k.Run).Distinct(StringComparer.Ordinal)];

    public void Failed(string reason) => _failed.WithLabels(reason).Inc();

    /// <summary>Creates <c>monitor_alerts_fired_total</c> at 0 for every rule in force (at start and after a reload).</summary>
    public void RulesLoaded(IEnumerable<RuleBinding> rules)
    {
        foreach (RuleBinding rule in rules)
        {
            _alertsFired.WithLabels(rule.AlertName);
        }
    }

    /// <summary>
    /// Sets the heartbeat timestamps of <paramref name="run"/>'s ranks this service received records from; removes the
    /// series of ranks that stopped on purpose or have no heartbeat any more. Called by the heartbeat poller only.
    /// </summary>
    public void Heartbeats(string run, IReadOnlyList<WorkerStatus> workers)
    {
        var present = new HashSet<int>();
        foreach (WorkerStatus worker in workers)
        {
            if (worker.Stopped || worker.Rank < 0 || !_seenRanks.ContainsKey((run, (uint)worker.Rank)))
            {
                continue;
            }

            present.Add(worker.Rank);
            if (!_heartbeats.TryGetValue((run, worker.Rank), out Gauge.Child? child))
            {
                child = _heartbeat.WithLabels(run, worker.Rank.ToString(CultureInfo.InvariantCulture));
                _heartbeats[(run, worker.Rank)] = child;
            }

            child.Set(worker.At.ToUnixTimeMilliseconds() / 1000.0);
        }

        foreach ((string Run, int Rank) gone in _heartbeats.Keys.Where(k => k.Run == run && !present.Contains(k.Rank)).ToList())
        {
            _heartbeats.Remove(gone, out Gauge.Child? child);
            child!.Remove();
        }
    }

    /// <summary>
    /// Drops the heartbeat series of ranks whose run ended (<see cref="RankEnded"/>). Called by the heartbeat poller
    /// only, before it reads the runs still seen.
    /// </summary>
    public void ForgetEndedHeartbeats()
    {
        foreach ((string Run, int Rank) gone in _heartbeats.Keys.Where(k => !_seenRanks.ContainsKey((k.Run, (uint)k.Rank))).ToList())
        {
            _heartbeats.Remove(gone, out Gauge.Child? child);
            child!.Remove();
        }
    }

    /// <summary>
    /// Removes every series of a rank whose run ended: its records, step, dropped and selection series, its tensor,
    /// loss and histogram series and its drift series. Its heartbeat goes at the poller's next round
    /// (<see cref="ForgetEndedHeartbeats"/>); its alert series went with the alerts' resolutions. Pipeline thread.
    /// </summary>
    public void RankEnded(string run, uint rank)
    {
        if (_ranks.Remove((run, rank), out RankSeries? series))
        {
            foreach (string tensor in series.Tensors)
            {
                RemoveTensorSeries(new SeriesKey(run, rank, tensor));
            }

            series.Records.Remove();
            series.Step?.Remove();
            series.Dropped?.Remove();
            series.RawTrimmed?.Remove();
            series.Overhead?.Remove();
            series.Thinned?.Remove();
            series.Selection?.Remove();
        }

        foreach (var key in _driftSeries.Keys.Where(k => k.Run == run && k.Rank == rank).ToList())
        {
            RemoveDriftSeries(key);
        }

        _driftSeriesCount.Set(_driftSeries.Count);
        _seenRanks.TryRemove((run, rank), out _);
    }

    /// <summary>A dead-letter write settled; called on the transport's thread.</summary>
    public void DeadLettered(string reason, bool accepted) => (accepted ? _deadLettered : _deadLetterFailed).WithLabels(reason).Inc();

    public void DeadLettersInFlight(int count) => _deadLettersInFlight.Set(count);

    public void Engine(AnalysisEngine engine)
    {
        _ruleFaults.Set(engine.RuleFaults);
        _outOfOrder.IncTo(engine.OutOfOrderRecords);
        _late.IncTo(engine.LateRecords);
        _duplicate.IncTo(engine.DuplicateRecords);
        _ranksEnded.IncTo(engine.RanksEnded);
        _ranksEvicted.IncTo(engine.RanksEvicted);
        _seriesRestarts.IncTo(engine.SeriesRestarts);
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
        _recordStamp++;
        _recordAt = _time.GetTimestamp();
        if (record.RunEnd is not null)
        {
            // The rank's end: RankEnded removes its series; a redelivered end must not bring them back.
            return;
        }

        if (!_ranks.TryGetValue((record.RunId, record.Rank), out RankSeries? series))
        {
            string rankLabel = record.Rank.ToString(CultureInfo.InvariantCulture);
            series = new RankSeries(rankLabel, _workerRecords.WithLabels(record.RunId, rankLabel));
            _ranks[(record.RunId, record.Rank)] = series;
            _seenRanks.TryAdd((record.RunId, record.Rank), 0);
        }

        series.Records.Inc();
        if (record.AtBegin)
        {
            // A one-shot capture, not a step: it neither moves the step gauges nor replaces the rank's series.
            return;
        }

        // The rank's children are looked up once: a steady stream of records allocates nothing here.
        string rank = series.Rank;
        series.Step ??= _step.WithLabels(record.RunId, rank);
        series.Dropped ??= _workerDropped.WithLabels(record.RunId, rank);
        series.Selection ??= _selectionVersion.WithLabels(record.RunId, rank);
        series.Step.Set(record.Step);
        series.Dropped.Set(record.DroppedBefore);
        (series.RawTrimmed ??= _workerRawTrimmed.WithLabels(record.RunId, rank)).Set(record.RawPartsTrimmed);
        (series.Overhead ??= _workerOverhead.WithLabels(record.RunId, rank)).Set(record.OverheadRatio);
        long thinned = 0;
        for (int i = 0; i < record.Thinned.Count; i++)
        {
            // Indexed: the repeated field's enumerator would be boxed every record.
            thinned += record.Thinned[i].SkippedTensors;
        }

        (series.Thinned ??= _workerThinned.WithLabels(record.RunId, rank)).Set(thinned);

        series.Selection.Set(record.SelectionVersion);
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

        int mode = (int)record.Mode;
        if (mode < 0 || mode >= ModeNames.Length)
        {
            mode = 0;
        }

        // Indexed: RepeatedField's enumerator is a class, and this runs for every tensor of every record.
        for (int t = 0; t < record.Tensors.Count; t++)
        {
            TensorRecord tensor = record.Tensors[t];
            if (tensor.Summary is not { } summary)
            {
                continue;
            }

            var key = new SeriesKey(record.RunId, record.Rank, tensor.Name);
            if (!_tensorSeries.TryGetValue(key, out TensorGauges? gauges))
            {
                if (_tensorSeries.Count >= _maxTensorSeries && !EvictLeastRecent(_tensorSeries, g => g.LastUpdate, g => g.UpdatedAt, RemoveEvictedTensorSeries, _tensorSeriesEvicted, ref _tensorsEvictableAt))
                {
                    _tensorSeriesRejected.Inc();
                    continue;
                }

                string[] labels = [record.RunId, rank, tensor.Name];
                gauges = new TensorGauges(labels,
                [
                    _tensorMin.WithLabels(labels), _tensorMax.WithLabels(labels), _tensorMean.WithLabels(labels),
                    _tensorVariance.WithLabels(labels), _tensorAbsMean.WithLabels(labels), _tensorL1.WithLabels(labels),
                    _tensorL2.WithLabels(labels), _tensorNan.WithLabels(labels), _tensorInf.WithLabels(labels),
                    _tensorZeroFraction.WithLabels(labels),
                ]);
                _tensorSeries[key] = gauges;
                _tensorSeriesCount.Set(_tensorSeries.Count);
                series.Tensors.Add(tensor.Name);
            }

            gauges.LastUpdate = _recordStamp;
            gauges.UpdatedAt = _recordAt;
            Gauge.Child[] g = gauges.Summary;
            g[0].Set(summary.Min);
            g[1].Set(summary.Max);
            g[2].Set(summary.Mean);
            g[3].Set(summary.Variance);
            g[4].Set(summary.AbsMean);
            g[5].Set(summary.L1);
            g[6].Set(summary.L2);
            g[7].Set(summary.NanCount);
            g[8].Set(summary.InfCount);
            g[9].Set(summary.Count == 0 ? 0 : (double)summary.ZeroCount / summary.Count);
            if (tensor.Collections.Contains(Collection.Losses))
            {
                (gauges.Loss[mode] ??= _loss.WithLabels(record.RunId, rank, ModeNames[mode], tensor.Name)).Set(summary.Mean);
            }

            if (summary.Histogram is { } histogram)
            {
                ExportHistogram(gauges, histogram, HistogramBuckets.ElementsPerCount(summary));
            }
        }
    }

    /// <summary>Exports the drift evaluations of the last record (gauges per feature and test, within the series cap).</summary>
    public void Drift(IReadOnlyList<DriftObservation> observations)
    {
        for (int i = 0; i < observations.Count; i++)
        {
            DriftObservation o = observations[i];
            var key = (o.Run, o.Rank, o.Tensor, o.Feature, o.Test);
            if (!_driftSeries.TryGetValue(key, out DriftGauges? gauges))
            {
                if (_driftSeries.Count >= _maxTensorSeries && !EvictLeastRecent(_driftSeries, g => g.LastUpdate, g => g.UpdatedAt, RemoveDriftSeries, _driftSeriesEvicted, ref _driftEvictableAt))
                {
                    _driftSeriesRejected.Inc();
                    continue;
                }

                string[] labels = [o.Run, o.Rank.ToString(CultureInfo.InvariantCulture), o.Tensor, o.Feature, o.Test];
                gauges = new DriftGauges(labels, _driftStatistic.WithLabels(labels), _driftDrifted.WithLabels(labels), _driftDetections.WithLabels(labels));
                _driftSeries[key] = gauges;
                _driftSeriesCount.Set(_driftSeries.Count);
            }

            gauges.LastUpdate = _recordStamp;
            gauges.UpdatedAt = _recordAt;
            gauges.Statistic.Set(o.Statistic);
            gauges.Drifted.Set(o.Drift ? 1 : 0);
            if (o.Drift)
            {
                gauges.Detections.Inc();
            }

            if (!double.IsNaN(o.PValue))
            {
                // Created on the first p-value only: detectors and distances have none, and an empty series would read as 0.
                gauges.PValue ??= _driftPValue.WithLabels(gauges.Labels);
                gauges.PValue.Set(o.PValue);
            }
        }
    }

    public void Alert(AlertTransition transition)
    {
        AlertIdentity id = transition.Identity;
        string[] Labels(AlertState state) =>
        [
            id[AlertLabels.AlertName], state.ToString().ToLowerInvariant(), id[AlertLabels.Severity],
            id[AlertLabels.Run], id[AlertLabels.Rank], id[AlertLabels.Tensor], id[AlertLabels.Feature],
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

    /// <summary>Prometheus' spelling of a bucket's upper edge: <c>+Inf</c>, else the shortest round-trip form.</summary>
    private static string FormatEdge(double edge) =>
        double.IsPositiveInfinity(edge) ? "+Inf" : edge == 0 ? "0" : edge.ToString("R", CultureInfo.InvariantCulture);

    // elementsPerCount: 1, or for a sampled histogram the elements one count of the sample stands for.
    private void ExportHistogram(TensorGauges gauges, Histogram histogram, double elementsPerCount)
    {
        if (gauges.Histogram is null)
        {
            if (gauges.HistogramExcluded || _histogramTensors >= _maxHistogramTensors)
            {
                return;
            }

            if (_histogramPattern is not null && !_histogramPattern.IsMatch(gauges.Labels[2]))
            {
                // The pattern is fixed for the service's life: decide once per series.
                gauges.HistogramExcluded = true;
                return;
            }
        }

        int buckets = HistogramBuckets.CountOf(histogram);
        if (buckets == 0)
        {
            return;
        }

        if (gauges.Histogram is not { } children || !SameLayout(gauges, histogram, buckets))
        {
            if (gauges.Histogram is not null)
            {
                RemoveHistogram(gauges);
            }

            // Explicit edges arrive in the record; only a change of layout or edges (rare) allocates here.
            ReadOnlySpan<double> edges = HistogramEdges.Of(histogram);
            children = new Gauge.Child[buckets];
            for (int i = 0; i < buckets; i++)
            {
                children[i] = _histogram.WithLabels(gauges.Labels[0], gauges.Labels[1], gauges.Labels[2], FormatEdge(edges[i + 1]));
            }

            gauges.Histogram = children;
            gauges.HistogramLayout = histogram.Layout;
            gauges.ExplicitEdges = histogram.Layout == HistogramLayout.Explicit ? edges.ToArray() : null;
            _histogramTensors++;
            _histogramCount.Set(_histogramTensors);
        }

        ulong cumulative = 0;
        for (int i = 0; i < children.Length; i++)
        {
            cumulative += HistogramBuckets.Get(histogram, i);
            children[i].Set(cumulative * elementsPerCount);
        }
    }

    private static bool SameLayout(TensorGauges gauges, Histogram histogram, int buckets)
    {
        if (gauges.HistogramLayout != histogram.Layout || gauges.Histogram!.Length != buckets)
        {
            return false;
        }

        if (gauges.ExplicitEdges is { } edges)
        {
            for (int i = 0; i < edges.Length; i++)
            {
                if (edges[i] != histogram.Edges[i])
                {
                    return false;
                }
            }
        }

        return true;
    }

    private void RemoveHistogram(TensorGauges gauges)
    {
        foreach (Gauge.Child child in gauges.Histogram!)
        {
            child.Remove();
        }

        gauges.Histogram = null;
        gauges.ExplicitEdges = null;
        _histogramTensors--;
        _histogramCount.Set(_histogramTensors);
    }

    /// <summary>
    /// Makes room under the cap: removes the least recently updated 1% of <paramref name="series"/> (at least one) among
    /// those idle for <see cref="MonitorServiceOptions.SeriesEvictionIdle"/>, never one the current record updated, so
    /// the sort is paid once per hundred new series. False when nothing could go; then no newcomer scans again before the
    /// least recently updated series can have become idle (<paramref name="evictableAt"/>), so a cap too small for the
    /// live series costs a comparison per newcomer, not a sort, and the exported series stay put instead of churning.
    /// </summary>
    private bool EvictLeastRecent<TKey, TValue>(Dictionary<TKey, TValue> series, Func<TValue, long> lastUpdate, Func<TValue, long> updatedAt,
        Action<TKey> remove, Counter evicted, ref long evictableAt)
        where TKey : notnull
    {
        if (_maxTensorSeries == 0 || _recordAt < evictableAt)
        {
            return false;
        }

        long idleSince = _recordAt - _evictionIdle;
        TKey[] oldest = [.. series.Where(s => lastUpdate(s.Value) < _recordStamp && updatedAt(s.Value) <= idleSince)
            .OrderBy(s => lastUpdate(s.Value)).Take(Math.Max(1, _maxTensorSeries / 100)).Select(s => s.Key)];
        if (oldest.Length == 0)
        {
            evictableAt = series.Count == 0 ? _recordAt : series.Values.Min(updatedAt) + _evictionIdle;
            return false;
        }

        foreach (TKey key in oldest)
        {
            remove(key);
        }

        evicted.Inc(oldest.Length);
        return oldest.Length > 0;
    }

    private void RemoveEvictedTensorSeries(SeriesKey key)
    {
        RemoveTensorSeries(key);
        if (_ranks.TryGetValue((key.Run, key.Rank), out RankSeries? rank))
        {
            rank.Tensors.Remove(key.Tensor);
        }
    }

    private void RemoveDriftSeries((string Run, uint Rank, string Tensor, string Feature, string Test) key)
    {
        if (_driftSeries.Remove(key, out DriftGauges? gauges))
        {
            gauges.Statistic.Remove();
            gauges.Drifted.Remove();
            gauges.Detections.Remove();
            gauges.PValue?.Remove();
            _driftSeriesCount.Set(_driftSeries.Count);
        }
    }

    private void RemoveTensorSeries(SeriesKey key)
    {
        if (!_tensorSeries.Remove(key, out TensorGauges? gauges))
        {
            return;
        }

        foreach (Gauge.Child child in gauges.Summary)
        {
            child.Remove();
        }

        foreach (Gauge.Child? child in gauges.Loss)
        {
            child?.Remove();
        }

        if (gauges.Histogram is not null)
        {
            RemoveHistogram(gauges);
        }

        _tensorSeriesCount.Set(_tensorSeries.Count);
    }

    private sealed class RankSeries(string rank, Counter.Child records)
    {
        public readonly string Rank = rank;
        public readonly Counter.Child Records = records;
        public Gauge.Child? Step, Dropped, RawTrimmed, Overhead, Thinned, Selection;
        public long SelectionVersion = -1;
        public readonly HashSet<string> Tensors = new(StringComparer.Ordinal);
    }

    private sealed record DriftGauges(string[] Labels, Gauge.Child Statistic, Gauge.Child Drifted, Counter.Child Detections)
    {
        public Gauge.Child? PValue { get; set; }

        /// <summary>The stamp of the record that last updated it.</summary>
        public long LastUpdate { get; set; }

        /// <summary>The clock's timestamp of that update.</summary>
        public long UpdatedAt { get; set; }
    }

    /// <summary>The exported series of one (run, rank, tensor).</summary>
    /// <param name="labels">run, rank, tensor.</param>
    /// <param name="summary">min, max, mean, variance, abs mean, L1, L2, NaN, Inf, zero ratio, in that order.</param>
    private sealed class TensorGauges(string[] labels, Gauge.Child[] summary)
    {
        public string[] Labels { get; } = labels;

        public Gauge.Child[] Summary { get; } = summary;

        /// <summary>monitor_loss by mode, for tensors of the losses collection.</summary>
        public Gauge.Child?[] Loss { get; } = new Gauge.Child?[ModeNames.Length];

        /// <summary>Cumulative bucket gauges, one per bucket; null while not exported.</summary>
        public Gauge.Child[]? Histogram { get; set; }

        public HistogramLayout HistogramLayout { get; set; }

        /// <summary>The explicit edges the children were made for; null for a named layout.</summary>
        public double[]? ExplicitEdges { get; set; }

        /// <summary>The name does not match the histogram pattern.</summary>
        public bool HistogramExcluded { get; set; }

        /// <summary>The stamp of the record that last updated it.</summary>
        public long LastUpdate { get; set; }

        /// <summary>The clock's timestamp of that update.</summary>
        public long UpdatedAt { get; set; }
    }
}
