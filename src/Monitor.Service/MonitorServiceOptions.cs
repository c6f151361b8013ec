using Monitor.Analysis;
using Monitor.Contracts;
using Monitor.Service.Notifications;
using Monitor.Transport.Kafka;

namespace Monitor.Service;

/// <summary>Configuration of the monitor service.</summary>
public sealed class MonitorServiceOptions
{
    /// <summary>Topic of step records. Default <see cref="MonitorTopics.Steps"/>.</summary>
    public string StepsTopic { get; init; } = MonitorTopics.Steps;

    /// <summary>Topic for records that cannot be decoded. Default <see cref="MonitorTopics.StepsDeadLetter"/>.</summary>
    public string DeadLetterTopic { get; init; } = MonitorTopics.StepsDeadLetter;

    /// <summary>
    /// Address the HTTP endpoints (<c>/metrics</c>, <c>/healthz</c>, <c>/readyz</c>, <c>/api</c>) listen on. Default
    /// <c>http://127.0.0.1:9464</c>; port 0 picks a free port (see <see cref="MonitorService.BaseAddress"/>). An
    /// <c>https://</c> address needs <see cref="TlsCertificateFile"/>.
    /// </summary>
    public string ListenUrl { get; init; } = "http://127.0.0.1:9464";

    /// <summary>
    /// Server certificate for an <c>https://</c> <see cref="ListenUrl"/>: a PEM file (with <see cref="TlsKeyFile"/>,
    /// or with the private key in the same file) or a PKCS#12 file (<c>.pfx</c>/<c>.p12</c>, without a password).
    /// Read once at <see cref="MonitorService.StartAsync"/>. Default none.
    /// </summary>
    public string? TlsCertificateFile { get; init; }

    /// <summary>PEM private key of <see cref="TlsCertificateFile"/>. Default none (the key is in the certificate file).</summary>
    public string? TlsKeyFile { get; init; }

    /// <summary>
    /// Most (run, rank, tensor) combinations exported as per-tensor gauges. Default 2,000 (each one is 10 Prometheus
    /// series, plus one <c>monitor_loss</c> per mode for tensors of the losses collection). Combinations beyond the cap are not exported and are counted in
    /// <c>monitor_tensor_series_rejected_total</c>; alerts are evaluated for every tensor regardless.
    /// </summary>
    public int MaxTensorSeries { get; init; } = 2_000;

    /// <summary>
    /// How long an exported tensor or drift series must go without an update before a new combination may evict it at
    /// the <see cref="MaxTensorSeries"/> cap (the least recently updated first). While none has been idle that long, a new
    /// combination is not exported and is counted in <c>monitor_tensor_series_rejected_total</c>: more live combinations
    /// than the cap keep the series exported first instead of replacing them at every record. Default 1 minute; zero
    /// evicts any series the current record did not update.
    /// </summary>
    public TimeSpan SeriesEvictionIdle { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// Regular expression (matched with <see cref="System.Text.RegularExpressions.RegexOptions.NonBacktracking"/>) on
    /// tensor names whose histograms are exported as <c>monitor_tensor_histogram_elements</c>. Default none: every
    /// tensor, up to <see cref="MaxHistogramTensors"/>.
    /// </summary>
    public string? HistogramTensors { get; init; }

    /// <summary>
    /// Most (run, rank, tensor) combinations whose histograms are exported, first come first served among the
    /// tensors that have exported gauges (see <see cref="MaxTensorSeries"/>) and match <see cref="HistogramTensors"/>.
    /// Default 32; each one is one series per histogram bucket (96 for the tracer's default log2 layout). 0 exports
    /// none.
    /// </summary>
    public int MaxHistogramTensors { get; init; } = 32;

    /// <summary>
    /// How often the worker heartbeats of the control plane (<see cref="Redis"/>) are read for
    /// <c>monitor_worker_heartbeat_timestamp_seconds</c>, off the pipeline thread. Default 5 s.
    /// </summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Redis (or Garnet) of the control plane, StackExchange.Redis syntax; enables the <c>/api</c> endpoints. Default
    /// none (they answer 503).
    /// </summary>
    public string? Redis { get; init; }

    /// <summary>
    /// Bearer token required by the <c>/api</c> endpoints that change something (it also allows reads). Default none:
    /// writes are refused (401).
    /// </summary>
    public string? ApiToken { get; init; }

    /// <summary>
    /// Bearer token that allows reading <c>/api</c> (runs, catalogs, selections, history, alerts); with one set, a read
    /// needs it or <see cref="ApiToken"/>. <c>/metrics</c>, <c>/healthz</c> and <c>/readyz</c> stay open. Default none:
    /// reads are open.
    /// </summary>
    public string? ApiReadToken { get; init; }

    /// <summary>
    /// Rule file (YAML, or JSON by extension): which rules run, with which parameters, windows, <c>for</c>, labels,
    /// annotations and actions. Reloaded when it changes; an invalid new version is logged and ignored. Default none:
    /// the default rule set (<c>monitor rules default</c>).
    /// </summary>
    public string? RulesFile { get; init; }

    /// <summary>How often the rule file is compared with what was loaded (besides file-change events). Default 2 s.</summary>
    public TimeSpan RulesPollInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>How often time-driven rules (e.g. StalledTraining) are evaluated without records. Default 5 s.</summary>
    public TimeSpan TickInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Ordering policy of the analysis engine (late-record grace). Default <see cref="AnalysisEngineOptions"/>'s.</summary>
    public AnalysisEngineOptions Engine { get; init; } = new();

    /// <summary>
    /// Where to record every decoded step record, for <c>monitor replay</c> (format by extension, see
    /// <see cref="StepRecordFile"/>). Default none.
    /// </summary>
    public string? RecordFile { get; init; }

    /// <summary>Alert notifications (Alertmanager, webhooks, the alerts topic). Default: only the alerts topic.</summary>
    public NotificationOptions Notifications { get; init; } = new();

    /// <summary>
    /// Most dead-letter writes outstanding at once (records that could not be decoded or processed, sent to
    /// <see cref="DeadLetterTopic"/> without waiting for the broker). Default 1,000. Only when that many are
    /// outstanding does the pipeline wait for one to settle, so a flood of bad records cannot hold more than this many
    /// copies in memory, and a single one never holds up analysis.
    /// </summary>
    public int MaxDeadLettersInFlight { get; init; } = 1_000;

    /// <summary>
    /// Directory of the service's local state store (<c>serve --state-dir</c>): every
    /// <see cref="StateInterval"/> and at a clean stop, every (run, rank) key's engine snapshot (windows, rule state,
    /// the alert lifecycle) and the consumed offsets they reflect are saved together, atomically; at start they are
    /// restored before the first record, and each partition resumes after the records the state reflects. Offsets are
    /// then committed to Kafka only as far as the last saved state. One process per directory (it is locked); the
    /// consumer must implement <see cref="IPositionedConsumer"/>. Default none: state lives in memory only, and a
    /// restart starts empty from the group's committed offsets.
    /// </summary>
    public string? StateDirectory { get; init; }

    /// <summary>
    /// How often the state is saved to <see cref="StateDirectory"/> (on the pipeline thread, between records). After a
    /// crash, at most this much of the stream is read and analysed again. Default 30 s.
    /// </summary>
    public TimeSpan StateInterval { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The compacted changelog topic of the engine's state (<c>serve --state-topic</c>, e.g.
    /// <see cref="MonitorTopics.State"/>): exactly-once processing in a consumer group. Every
    /// <see cref="CommitInterval"/>, and before a partition is revoked, the snapshots of the keys that changed, the alert
    /// transitions (to <see cref="NotificationOptions.AlertsTopic"/>) and the consumed offsets are written in one Kafka
    /// transaction; webhooks, Alertmanager and actions get only committed transitions. A newly assigned partition's keys
    /// are restored from the changelog (partition for partition: the topic must have at least as many partitions as
    /// the steps topic) before its first record. Needs the service's <see cref="Monitor.Transport.Kafka.KafkaStateChangelog"/> and a consumer in
    /// exactly-once mode (<see cref="KafkaConsumerOptions.ExactlyOnce"/>). Default none. Excludes
    /// <see cref="StateDirectory"/>.
    /// </summary>
    public string? StateTopic { get; init; }

    /// <summary>
    /// How often the transaction of <see cref="StateTopic"/> is committed: the most an alert waits before it is
    /// notified, and the most analysed again after a crash. Every commit writes the snapshot of each key that changed
    /// since the last one (about 110 bytes per tensor, 0.4 µs per tensor to write), so at one step per second per rank a
    /// 1 s interval costs about a sixth more CPU than analysis alone, 5 s a thirtieth. Default 5 s.
    /// </summary>
    public TimeSpan CommitInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>How often consumer lag is refreshed. Default 1 s.</summary>
    public TimeSpan LagInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Clock. Default <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid option.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(StepsTopic) || string.IsNullOrWhiteSpace(DeadLetterTopic))
        {
            throw new ArgumentException("topic names must not be empty");
        }

        OperationsEndpoints.ValidateListen(ListenUrl, TlsCertificateFile, TlsKeyFile);

        foreach (string? token in (string?[])[ApiToken, ApiReadToken])
        {
            if (token is not null && (token.Length == 0 || token.Any(char.IsControl) || token != token.Trim()))
            {
                throw new ArgumentException("an API token is empty, has surrounding spaces or contains control characters");
            }
        }

        ArgumentNullException.ThrowIfNull(Notifications);
        Notifications.Validate();
        if (MaxTensorSeries < 0)
        {
            throw new ArgumentException($"max tensor series is {MaxTensorSeries}; it must not be negative");
        }

        if (SeriesEvictionIdle < TimeSpan.Zero)
        {
            throw new ArgumentException($"the series eviction idle time is {SeriesEvictionIdle}; it must not be negative");
        }

        if (MaxDeadLettersInFlight < 1)
        {
            throw new ArgumentException($"max dead letters in flight is {MaxDeadLettersInFlight}; it must be at least 1");
        }

        if (MaxHistogramTensors < 0)
        {
            throw new ArgumentException($"max histogram tensors is {MaxHistogramTensors}; it must not be negative");
        }

        if (HistogramTensors is not null)
        {
            try
            {
                _ = new System.Text.RegularExpressions.Regex(HistogramTensors, System.Text.RegularExpressions.RegexOptions.NonBacktracking);
            }
            catch (Exception ex) when (ex is ArgumentException or NotSupportedException)
            {
                throw new ArgumentException($"histogram tensor pattern '{HistogramTensors}' is not a supported regular expression: {ex.Message}", ex);
            }
        }

        if (LagInterval <= TimeSpan.Zero || TickInterval <= TimeSpan.Zero || RulesPollInterval <= TimeSpan.Zero || HeartbeatInterval <= TimeSpan.Zero
            || StateInterval <= TimeSpan.Zero || CommitInterval <= TimeSpan.Zero)
        {
            throw new ArgumentException("lag, tick, rule-poll, heartbeat, state and commit intervals must be positive");
        }

        if (StateTopic is { } topic && (string.IsNullOrWhiteSpace(topic) || StateDirectory is not null))
        {
            throw new ArgumentException(StateDirectory is not null
                ? "a state topic and a state directory exclude each other: the changelog is the state of a consumer group, the directory that of one process"
                : "the state topic must not be empty");
        }

        if (StateDirectory is { } state && string.IsNullOrWhiteSpace(state))
        {
            throw new ArgumentException("the state directory must not be empty");
        }

        if (RulesFile is not null && !File.Exists(RulesFile))
        {
            throw new ArgumentException($"rule file '{RulesFile}' does not exist");
        }

    }
}
