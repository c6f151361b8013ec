using System.Diagnostics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Monitor.Analysis;
using Monitor.Contracts;
using Monitor.Contracts.Transport;
using Monitor.Contracts.V1;
using Monitor.ControlPlane;
using Monitor.Service.Notifications;
using Monitor.Service.Rules;
using Monitor.Service.State;
using Monitor.Transport.Kafka;
using Prometheus;
using StackExchange.Redis;

namespace Monitor.Service;

/// <summary>Counters of a running service.</summary>
/// <param name="Consumed">Records read.</param>
/// <param name="Processed">
/// Records done with: analysed (alert transitions raised and <see cref="MonitorService.AlertChanged"/> called), or
/// their dead-letter write settled (accepted, or its loss counted in <paramref name="DeadLetterLost"/>). Wait on this,
/// not <paramref name="Consumed"/>, to know a record's alerts are out.
/// </param>
/// <param name="Decoded">Records decoded and analysed.</param>
/// <param name="Failed">Records that could not be decoded.</param>
/// <param name="DeadLettered">Records (undecodable, or whose processing threw) accepted by the dead-letter topic.</param>
/// <param name="AlertsFired">Alerts that started firing.</param>
/// <param name="RuleFaults">Exceptions thrown by rules.</param>
/// <param name="ProcessingFailed">Records that decoded but whose processing threw: dead-lettered with the exception
/// as reason, and the pipeline went on.</param>
/// <param name="DeadLetterLost">Records the dead-letter topic did not accept after the retries (counted and logged;
/// their offsets are then committed, so they are lost).</param>
public sealed record ServiceStatistics(long Consumed, long Processed, long Decoded, long Failed, long DeadLettered, long AlertsFired, long RuleFaults,
    long ProcessingFailed = 0, long DeadLetterLost = 0);

/// <summary>
/// The monitor service: consumes step records, decodes them (undecodable ones go to the dead-letter topic), runs
/// the <see cref="AnalysisEngine"/>, and serves <c>/metrics</c>, <c>/healthz</c> and <c>/readyz</c> over HTTP.
/// </summary>
/// <remarks>
/// <para>One pipeline thread consumes, analyses and marks records processed, in that order, so a record's offset is
/// committed only after it has been analysed (or dead-lettered). <see cref="AlertChanged"/> handlers run on that thread
/// and must be quick; an exception from a handler is logged and ignored.</para>
/// <para><b>Bad records.</b> A record that cannot be decoded, or whose processing throws, is copied to the dead-letter
/// topic with the reason in headers and the pipeline goes on with the next one: the write is not waited for (at most
/// <see cref="MonitorServiceOptions.MaxDeadLettersInFlight"/> are outstanding), and the record's offset is committed
/// only once the write is acknowledged, or its loss counted (<c>monitor_dead_letter_failures_total</c>). So a
/// restart resumes after it instead of failing on it again.</para>
/// <para><b>State.</b> With <see cref="MonitorServiceOptions.StateDirectory"/>, the engine's state and the offsets it reflects
/// are saved together every <see cref="MonitorServiceOptions.StateInterval"/> and at a clean stop, on the pipeline
/// thread, and restored by <see cref="StartAsync"/> before the first record; offsets are committed only as far as the
/// last saved state (see <c>README.md</c>, "State directory"). With <see cref="MonitorServiceOptions.StateTopic"/>,
/// the state is a compacted changelog written in Kafka transactions with the alert messages and the offsets; a
/// partition's keys are restored when it is assigned and handed over when it is revoked, and notifications and actions
/// wait for the commit (see <c>README.md</c>, "State in Kafka"). <see cref="AlertChanged"/> is raised as transitions are
/// analysed, before their commit.</para>
/// <para>Start once with <see cref="StartAsync"/>; <see cref="DisposeAsync"/> stops the pipeline, saves the state (with a state directory), commits, and stops
/// the HTTP server. The consumer and dead-letter producer are owned by the service.</para>
/// <para><b>OpenTelemetry.</b> Every record's W3C trace context (its <c>traceparent</c> header, written by the worker's
/// <c>send</c> span) is read whether or not anyone listens, and the alert transitions the record causes carry it
/// (<see cref="AlertTransition.TraceContext"/>: in the notification payloads, and as the exemplar of
/// <c>monitor_alerts_fired_total</c>). When a listener is attached to <see cref="ActivitySourceName"/>, each record is
/// processed inside a <c>process {topic}</c> CONSUMER span linked to the worker's span, with one event per alert
/// transition. A malformed <c>traceparent</c> is ignored.</para>
/// </remarks>
public sealed class MonitorService : IAsyncDisposable
{
    /// <summary>Name of the <see cref="System.Diagnostics.ActivitySource"/> of the service's spans (add it to a tracer provider).</summary>
    public const string ActivitySourceName = "Monitor.Service";

    private readonly MonitorServiceOptions _options;
    private readonly IRecordConsumer _consumer;
    private readonly IRecordProducer _deadLetterProducer;
    private readonly DeadLetterSink _deadLetters;
    private readonly ProcessedOffsets _offsets;
    private readonly RateLimitedLog _faultLog;
    private readonly AnalysisEngine _engine;
    private readonly ServiceMetrics _metrics;
    private readonly AlertDispatcher _notifications;
    private readonly AlertBook _alerts;
    private readonly AlertActions _actions;
    private readonly ILogger _logger;
    private readonly ILoggerFactory _loggerFactory;
    private readonly CancellationTokenSource _stopping = new();
    private readonly RuleFileWatcher? _ruleFile;
    private readonly StepRecordWriter? _recorder;

    // Used by the pipeline thread only (Process): refills one record per message, so nothing on the path below may
    // keep the record or its messages past the call (audited: the recorder serializes at once, metrics, spans, the
    // changelog and the engine's rules keep strings and copied values only).
    private readonly StepRecordReader _reader = new();
    private readonly string _processSpanName;
    private OperationsEndpoints? _endpoints;
    private SelectionStore? _store;
    private ConnectionMultiplexer? _redis;
    private Task? _pipeline;
    private Task? _heartbeats;
    private StateDirectory? _state;
    private readonly KafkaStateChangelog? _changelogProducer;
    private readonly ChangelogState? _changelog;
    // The offsets the last saved (or restored) state reflects: what a save of untouched partitions carries over.
    private Dictionary<(string Topic, int Partition), long> _savedOffsets = [];
    private long _consumed, _processed, _decoded, _failed, _deadLettered, _alertsFired, _processingFailed, _deadLetterLost;
    private volatile bool _ready;
    private volatile string? _pipelineFault;
    private int _disposed;

    /// <summary>Creates the service (nothing runs until <see cref="StartAsync"/>).</summary>
    /// <param name="options">Validated here.</param>
    /// <param name="consumer">Source of step records; owned by the service.</param>
    /// <param name="deadLetterProducer">Transport for the dead-letter topic; owned by the service.</param>
    /// <param name="loggerFactory">Logging; default none.</param>
    /// <param name="rules">Rules to evaluate; default those of <see cref="MonitorServiceOptions.RulesFile"/>, else the
    /// default rule set (<see cref="RuleCatalog.DefaultRules"/>).</param>
    /// <param name="changelog">The state changelog, required with <see cref="MonitorServiceOptions.StateTopic"/> (and then
    /// the consumer must be an <see cref="ITransactionalConsumer"/> in exactly-once mode); owned by the service.</param>
    public MonitorService(MonitorServiceOptions options, IRecordConsumer consumer, IRecordProducer deadLetterProducer,
        ILoggerFactory? loggerFactory = null, IEnumerable<RuleBinding>? rules = null, KafkaStateChangelog? changelog = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(consumer);
        ArgumentNullException.ThrowIfNull(deadLetterProducer);
        options.Validate();
        _options = options;
        _consumer = consumer;
        _deadLetterProducer = deadLetterProducer;
        _loggerFactory = loggerFactory ?? NullLoggerFactory.Instance;
        _logger = _loggerFactory.CreateLogger<MonitorService>();
        _deadLetters = new DeadLetterSink(deadLetterProducer, options.DeadLetterTopic, options.MaxDeadLettersInFlight);
        _deadLetters.Settled += DeadLetterSettled;
        if (options.StateDirectory is not null && consumer is not IPositionedConsumer)
        {
            throw new ArgumentException($"a state directory needs a consumer that can start partitions at given offsets ({nameof(IPositionedConsumer)}); {consumer.GetType().Name} cannot");
        }

        ITransactionalConsumer? transactional = null;
        if (options.StateTopic is not null)
        {
            _changelogProducer = changelog ?? throw new ArgumentException("a state topic needs the service's state changelog", nameof(changelog));
            transactional = consumer as ITransactionalConsumer
                ?? throw new ArgumentException($"a state topic needs a consumer that commits in transactions ({nameof(ITransactionalConsumer)}); {consumer.GetType().Name} does not", nameof(consumer));
        }

        // With saved state (a directory or the changelog), offsets are committed only together with the state that reflects them.
        _offsets = new ProcessedOffsets(consumer, holdCommits: options.StateDirectory is not null || transactional is not null);
        _faultLog = new RateLimitedLog(_logger, options.TimeProvider, TimeSpan.FromMinutes(1));
        if (rules is null && options.RulesFile is { } file)
        {
            _ruleFile = new RuleFileWatcher(file, RuleCatalog.BuiltIn, options.TimeProvider, options.RulesPollInterval, _loggerFactory.CreateLogger<RuleFileWatcher>());
            rules = _ruleFile.Initial;
        }

        _engine = new AnalysisEngine(rules ?? RuleCatalog.DefaultRules(), options.TimeProvider, options.Engine);
        _recorder = options.RecordFile is { } recordTo ? StepRecordFile.CreateWriter(recordTo) : null;
        _processSpanName = MessagingAttributes.ProcessSpanName(options.StepsTopic);
        _metrics = new ServiceMetrics(Metrics.NewCustomRegistry(), options);
        _metrics.RulesLoaded(_engine.Rules);
        // Alert messages share the dead-letter producer (one Kafka producer per service); the dispatcher does not own it.
        // With the changelog, alert messages are written in the service's transactions instead.
        _notifications = new AlertDispatcher(options.Notifications, transactional is null ? deadLetterProducer : null, options.TimeProvider, _loggerFactory.CreateLogger<AlertDispatcher>());
        _alerts = new AlertBook(_metrics, _notifications);
        _actions = new AlertActions(_metrics, options.TimeProvider, _logger);
        if (transactional is not null)
        {
            _changelog = new ChangelogState(_changelogProducer!, transactional, _engine, _offsets, options, _notifications, _alerts, _metrics, Notify, _logger, _faultLog);
        }
        _metrics.Registry.AddBeforeCollectCallback(() => _metrics.Notifications(_notifications.Statistics));
        _metrics.Registry.AddBeforeCollectCallback(() => _metrics.DeadLettersInFlight(_deadLetters.InFlight));
    }

    /// <summary>The source of the service's spans (see <see cref="ActivitySourceName"/>).</summary>
    internal static ActivitySource Source { get; } = new(ActivitySourceName, typeof(MonitorService).Assembly.GetName().Version?.ToString());

    /// <summary>Raised on the pipeline thread for every alert state change.</summary>
    public event Action<AlertTransition>? AlertChanged;

    /// <summary>Where the HTTP endpoints listen (the real port when configured with port 0). Set by <see cref="StartAsync"/>.</summary>
    public Uri? BaseAddress { get; private set; }

    /// <summary>
    /// The registry <c>/metrics</c> exposes. A host may add collectors of its own, registered before the first scrape
    /// (<c>monitor serve --archive</c> adds the archive's); their names must not clash with the service's.
    /// </summary>
    public CollectorRegistry MetricsRegistry => _metrics.Registry;

    /// <summary>The analysis engine (for its active alerts; read it only from <see cref="AlertChanged"/> handlers).</summary>
    public AnalysisEngine Engine => _engine;

    /// <summary>
    /// True while the pipeline runs and the consumer is ready (a Kafka consumer: it has its partition assignment and
    /// the brokers answer, see <see cref="KafkaRecordConsumer.IsReady"/>); what <c>/readyz</c> answers.
    /// </summary>
    public bool IsReady => Readiness(out _);

    /// <summary>Notification counters so far.</summary>
    public NotificationStatistics NotificationStatistics => _notifications.Statistics;

    /// <summary>Alerts pending or firing now, by fingerprint (a snapshot safe to read from any thread).</summary>
    public IReadOnlyCollection<AlertTransition> ActiveAlerts => [.. _alerts.Active];

    /// <summary>Counters so far.</summary>
    public ServiceStatistics Statistics => new(
        Interlocked.Read(ref _consumed), Interlocked.Read(ref _processed), Interlocked.Read(ref _decoded), Interlocked.Read(ref _failed),
        Interlocked.Read(ref _deadLettered), Interlocked.Read(ref _alertsFired), _engine.RuleFaults,
        Interlocked.Read(ref _processingFailed), Interlocked.Read(ref _deadLetterLost));

    /// <summary>
    /// Restores the saved state (with <see cref="MonitorServiceOptions.StateDirectory"/>), then starts the HTTP server,
    /// then the pipeline.
    /// </summary>
    /// <exception cref="InvalidOperationException">Already started.</exception>
    /// <exception cref="IOException">The listen address is in use.</exception>
    /// <exception cref="ArgumentException">The TLS certificate cannot be loaded.</exception>
    /// <exception cref="StateDirectoryException">The state directory is not writable, is in use by another process, or
    /// holds the state of another snapshot schema version, consumer group or topic. (Corrupt saved keys are not
    /// thrown: they are logged, counted in <c>monitor_state_restore_failures_total</c>, and start empty.)</exception>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        if (_endpoints is not null || _state is not null)
        {
            throw new InvalidOperationException("the service is already started");
        }

        if (_options.StateDirectory is { } stateDirectory)
        {
            RestoreState(stateDirectory);
        }

        if (_changelogProducer is not null)
        {
            // Registers the transactional id (aborting a dead predecessor's transaction) before any partition is assigned.
            await Task.Run(() => _changelogProducer.Start(_options.StepsTopic), cancellationToken).ConfigureAwait(false);
        }

        if (_options.Redis is { Length: > 0 } redis)
        {
            ConfigurationOptions configuration = RedisConnection.Parse(redis);
            configuration.AbortOnConnectFail = false;
            configuration.ClientName ??= "monitor-service";
            _redis = await ConnectionMultiplexer.ConnectAsync(configuration).ConfigureAwait(false);
        }

        _store = _redis is null ? null : new SelectionStore(_redis, _options.TimeProvider);
        _actions.Store = _store;
        var authorization = new ApiAuthorization(_options.ApiToken, _options.ApiReadToken);
        _endpoints = await OperationsEndpoints.StartAsync(
            new OperationsEndpointsOptions
            {
                ListenUrl = _options.ListenUrl,
                TlsCertificateFile = _options.TlsCertificateFile,
                TlsKeyFile = _options.TlsKeyFile,
                Registry = _metrics.Registry,
                Failure = () => _pipelineFault is { } fault ? "pipeline failed: " + fault : null,
                Readiness = Readiness,
                LoggerFactory = _loggerFactory,
                MapEndpoints = web =>
                {
                    RouteGroupBuilder api = web.MapGroup("/api");
                    api.AddEndpointFilter(async (context, next) => authorization.RequireRead(context.HttpContext) ?? await next(context).ConfigureAwait(false));
                    ControlPlaneApi.Map(api, _store, authorization);
                    AlertsApi.Map(api, () => _alerts.Active);
                },
            },
            cancellationToken).ConfigureAwait(false);
        BaseAddress = _endpoints.BaseAddress;
        // The pipeline must not inherit the caller's ambient state: a current span there would become the parent of
        // every process span, which are roots linked to the workers' spans.
        using (ExecutionContext.SuppressFlow())
        {
            _pipeline = Task.Factory.StartNew(RunPipeline, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        }

        if (_store is not null)
        {
            _heartbeats = PollHeartbeatsAsync(_store);
        }
    }

    /// <summary>Stops the pipeline (processed offsets are committed), then the HTTP server. Idempotent.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_pipeline is not null)
        {
            await _pipeline.ConfigureAwait(false);
        }

        if (_heartbeats is not null)
        {
            await _heartbeats.ConfigureAwait(false);
        }

        // After the pipeline (no more Publish calls), before the producer it uses.
        _changelog?.NotificationsStopped();
        await _notifications.DisposeAsync().ConfigureAwait(false);
        _consumer.Dispose();
        _changelog?.Dispose();
        _deadLetterProducer.Dispose();
        _deadLetters.Dispose();
        _ruleFile?.Dispose();
        try
        {
            _recorder?.Dispose();
        }
        catch (IOException ex)
        {
            // The disk filled up or went away: the records' analysis is done, only the recording is short.
            LogError(ex, $"The record file {_options.RecordFile} could not be completed: {ex.Message}");
        }
        if (_endpoints is not null)
        {
            await _endpoints.DisposeAsync().ConfigureAwait(false);
        }

        if (_redis is not null)
        {
            await _redis.DisposeAsync().ConfigureAwait(false);
        }

        _state?.Dispose();
        _changelogProducer?.Dispose();
        _stopping.Dispose();
    }

    /// <summary>
    /// Opens the state directory and restores every saved key into the engine, before the pipeline runs; the consumer
    /// then starts each partition after the records the state reflects. Restored alerts are active again (API,
    /// <c>monitor_alerts</c>, Alertmanager resends) without a transition: they were notified before the restart.
    /// </summary>
    private void RestoreState(string directory)
    {
        var positioned = (IPositionedConsumer)_consumer;
        var identity = new StateIdentity(AnalysisEngine.SnapshotSchemaVersion, positioned.GroupId, _options.StepsTopic);
        (StateDirectory store, StoredState? state) = StateDirectory.Open(directory, identity, _options.TimeProvider, out IReadOnlyList<string> problems);
        _state = store;
        int failures = problems.Count;
        foreach (string problem in problems)
        {
            LogError(null, "State directory: " + problem);
        }

        if (_engine.UnsnapshottedRules.Count > 0)
        {
            LogWarning($"State directory {store.Path}: the state of rules {string.Join(", ", _engine.UnsnapshottedRules)} is not snapshotted; they start empty after a restart");
        }

        if (state is null)
        {
            if (failures > 0)
            {
                LogError(null, $"State directory {store.Path}: no readable generation is left; the service starts with empty state from the group's committed offsets");
            }

            _metrics.StateRestored(0, failures);
            return;
        }

        int restored = 0;
        foreach (StoredKey key in state.Keys)
        {
            if (key.Snapshot is not { } bytes)
            {
                failures++;
                LogError(null, $"State directory: the state of {key.Run}/{key.Rank} cannot be read ({key.Where}); that key starts empty");
                continue;
            }

            try
            {
                _engine.RestoreSnapshot(bytes.Span);
                restored++;
            }
            catch (InvalidDataException ex)
            {
                failures++;
                LogError(null, $"State directory: the state of {key.Run}/{key.Rank} in {key.Where} is corrupt ({ex.Message}); that key starts empty");
            }
        }

        if (_engine.SnapshotAlertsDropped > 0)
        {
            LogWarning($"State directory {store.Path}: {_engine.SnapshotAlertsDropped} saved alerts belong to rules no longer configured and were dropped");
        }

        int alerts = 0;
        foreach (AlertTransition alert in _engine.ActiveAlerts)
        {
            alerts++;
            _alerts.Restored(alert);
        }

        _savedOffsets = new Dictionary<(string Topic, int Partition), long>(state.NextOffsets);
        positioned.StartAt(new Dictionary<(string Topic, int Partition), long>(_savedOffsets));
        _metrics.StateRestored(restored, failures);
        _metrics.Engine(_engine);
        string offsets = string.Join(", ", _savedOffsets.OrderBy(o => o.Key.Partition).Select(o => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{o.Key.Topic}[{o.Key.Partition}]@{o.Value}")));
        LogInformation($"State directory {store.Path}: restored {restored} of {state.Keys.Count} keys and {alerts} active alerts from generation {state.Generation}; partitions resume at {(offsets.Length == 0 ? "their committed offsets" : offsets)}");
    }

    /// <summary>
    /// Writes every key's snapshot and the offsets they reflect as a new generation, then lets the consumer commit
    /// those offsets (pipeline thread, between records). A failed save is logged and counted; the previous generation
    /// stays in force and nothing new is committed.
    /// </summary>
    private void SaveState()
    {
        if (_state is null)
        {
            return;
        }

        TimeProvider time = _options.TimeProvider;
        long started = time.GetTimestamp();
        Dictionary<(string Topic, int Partition), long> touched = _offsets.Committable();
        var offsets = new Dictionary<(string Topic, int Partition), long>(_savedOffsets);
        foreach ((var partition, long next) in touched)
        {
            offsets[partition] = next;
        }

        IReadOnlyCollection<(string Run, uint Rank)> keys = _engine.Keys;
        long bytes;
        try
        {
            bytes = _state.Save(offsets, keys, _engine.WriteSnapshot, _engine.UnsnapshottedRules);
        }
#pragma warning disable CA1031 // A full disk or a rule's WriteState bug must not stop analysis: counted, logged, retried next interval.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            _metrics.StateSaveFailed();
            _faultLog.Error("state", ex, $"Saving the state to {_state.Path} failed: {ex.Message}; the previous generation stays in force and offsets are not committed past it");
            return;
        }

        _savedOffsets = offsets;
        foreach (((string topic, int partition), long next) in touched)
        {
            _consumer.MarkProcessed(new TransportMessage { Topic = topic, Partition = partition, Offset = next - 1, Value = [] });
        }

        _metrics.StateSaved(time.GetElapsedTime(started), keys.Count, bytes, time.GetUtcNow());
    }

    private void RunPipeline()
    {
        _ready = true;
        CancellationToken stopping = _stopping.Token;
        TimeProvider time = _options.TimeProvider;
        long lastLag = long.MinValue;
        long lastTick = time.GetTimestamp();
        long lastSave = time.GetTimestamp();
        try
        {
            while (!stopping.IsCancellationRequested)
            {
                TimeSpan wait = _options.LagInterval < _options.TickInterval ? _options.LagInterval : _options.TickInterval;
                if (_state is not null && _options.StateInterval < wait)
                {
                    wait = _options.StateInterval;
                }

                if (_changelog is not null && _options.CommitInterval < wait)
                {
                    wait = _options.CommitInterval;
                }

                if (_consumer.Consume(wait, stopping) is { } message)
                {
                    Handle(message, stopping);
                }

                SettleDeadLetters();

                if (_ruleFile?.TryTake(out IReadOnlyList<RuleBinding> reloaded) == true)
                {
                    Handle(_engine.ReplaceRules(reloaded));
                    _metrics.RulesLoaded(_engine.Rules);
                }

                _metrics.RuleReloads(_ruleFile?.Reloads ?? 0, _ruleFile?.Failures ?? 0);
                if (time.GetElapsedTime(lastTick) >= _options.TickInterval)
                {
                    lastTick = time.GetTimestamp();
                    // Silence is judged against the clock only when nothing is waiting in the topic: while the service
                    // lags behind, against the newest event time read, so unread records do not look like a stall.
                    Handle(_engine.Tick(caughtUp: !_consumer.GetLag().Any(l => l.Lag > 0)));
                    foreach ((string run, uint rank) in _engine.RanksForgotten)
                    {
                        _changelog?.Forgotten(run, rank);

                        // Idle past the TTL: the rank's series go with its state, as for an end-of-run record.
                        _metrics.RankEnded(run, rank);
                    }

                    _metrics.Engine(_engine);
                }

                if (_state is not null && time.GetElapsedTime(lastSave) >= _options.StateInterval)
                {
                    lastSave = time.GetTimestamp();
                    SaveState();
                }

                if (_changelog is not null && time.GetElapsedTime(lastSave) >= _options.CommitInterval)
                {
                    lastSave = time.GetTimestamp();
                    _changelog.Commit();
                }

                // Also when idle, so the gauge falls to 0 once the consumer has caught up.
                if (lastLag == long.MinValue || time.GetElapsedTime(lastLag) >= _options.LagInterval)
                {
                    lastLag = time.GetTimestamp();
                    _metrics.Lag(_consumer.GetLag());
                }
            }
        }
#pragma warning disable CA1031 // Reported through /healthz and the log; the process decides what to do.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            _pipelineFault = $"{ex.GetType().Name}: {ex.Message}";
            LogError(ex, "Monitor pipeline stopped: " + _pipelineFault);
        }
        finally
        {
            _ready = false;
            // Outstanding dead-letter writes get a last chance to settle, so their offsets are committed at close.
            if (!_deadLetters.WaitForAll(TimeSpan.FromSeconds(10)))
            {
                LogError(null, $"{_deadLetters.InFlight} dead-letter writes were still outstanding at shutdown; their records are read again after a restart");
            }

            SettleDeadLetters();
            // A clean stop saves what was analysed since the last interval, so a restart reads nothing twice.
            SaveState();
            if (_pipelineFault is null && _changelog is not null)
            {
                // What the webhooks finish now is tombstoned by this last commit, so the next owner does not send it again.
                _changelog.WaitForDeliveries();
                _changelog.Commit();
            }
        }
    }

    private bool Readiness(out string detail)
    {
        if (!_ready)
        {
            detail = _pipelineFault is { } fault ? "pipeline failed: " + fault : "pipeline not running";
            return false;
        }

        if (_consumer is IConsumerReadiness readiness)
        {
            return readiness.IsReady(out detail);
        }

        detail = "pipeline running";
        return true;
    }

    /// <summary>
    /// Processes one record; a record that cannot be decoded, or whose processing throws, starts its dead-letter write
    /// and the pipeline goes on. Its offset is marked processed by <see cref="ProcessedOffsets"/> once safe.
    /// </summary>
    private void Handle(TransportMessage message, CancellationToken stopping)
    {
        DeadLetter? why;
        try
        {
            why = Process(message);
        }
#pragma warning disable CA1031 // One record must not stop the pipeline: it is dead-lettered with the exception as reason.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            why = DeadLetter.Of(ex);
            Interlocked.Increment(ref _processingFailed);
            _metrics.Failed(DeadLetter.ProcessingLabel);
            _faultLog.Error("processing", ex, $"Processing record {message.Topic}[{message.Partition}]@{message.Offset} threw; it goes to the dead-letter topic: {why.Value.Reason}");
        }

        if (why is not { } deadLetter)
        {
            _offsets.Done(message);
            Interlocked.Increment(ref _processed);
            return;
        }

        if (_deadLetters.Send(message, deadLetter, stopping))
        {
            _offsets.Started(message);
        }
        else
        {
            // Stopping while every dead-letter slot is taken: the record stays uncommitted and is read again.
            _offsets.Abandoned(message);
        }
    }

    /// <summary>On the transport's thread, once per dead-letter write: counters and the log.</summary>
    private void DeadLetterSettled(DeadLetterOutcome outcome)
    {
        _metrics.DeadLettered(outcome.Why.Label, outcome.Accepted);
        if (outcome.Accepted)
        {
            Interlocked.Increment(ref _deadLettered);
        }
        else
        {
            Interlocked.Increment(ref _deadLetterLost);
            TransportMessage message = outcome.Message;
            _faultLog.Error("dead-letter", null,
                $"Record {message.Topic}[{message.Partition}]@{message.Offset} ({outcome.Why.Kind}: {outcome.Why.Reason}) was not accepted by the dead-letter topic: {outcome.Failure}; it is lost (counted in monitor_dead_letter_failures_total)");
        }

        Interlocked.Increment(ref _processed);
    }

    /// <summary>Marks the offsets of settled dead-letter writes (pipeline thread).</summary>
    private void SettleDeadLetters()
    {
        while (_deadLetters.TryTake(out DeadLetterOutcome outcome))
        {
            _offsets.Settled(outcome.Message);
        }
    }

    /// <summary>
    /// Reads the heartbeats of the runs this service has records of, every <see cref="MonitorServiceOptions.HeartbeatInterval"/>,
    /// into <c>monitor_worker_heartbeat_timestamp_seconds</c>. Off the pipeline thread, so Redis latency never holds up
    /// analysis; a Redis failure keeps the last values (their age grows, which is what the heartbeat alert watches) and
    /// is logged at most once a minute.
    /// </summary>
    private async Task PollHeartbeatsAsync(SelectionStore store)
    {
        CancellationToken stopping = _stopping.Token;
        var log = new RateLimitedLog(_logger, _options.TimeProvider, TimeSpan.FromMinutes(1));
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(_options.HeartbeatInterval, _options.TimeProvider, stopping).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            _metrics.ForgetEndedHeartbeats();
            foreach (string run in _metrics.RunsSeen)
            {
                try
                {
                    _metrics.Heartbeats(run, await store.WorkersAsync(run).ConfigureAwait(false));
                }
                catch (Exception ex) when (ex is RedisException or TimeoutException or System.Text.Json.JsonException)
                {
                    log.Warning("heartbeats", ex, $"Could not read the worker heartbeats of run '{run}': {ex.Message}");
                }
            }
        }
    }

    /// <returns>Null when the record was analysed (or is a one-shot capture); else why it goes to the dead-letter topic.</returns>
    private DeadLetter? Process(TransportMessage message)
    {
        Interlocked.Increment(ref _consumed);
        _metrics.Consumed(message.Topic);
        // Read for every record (no allocation but the two ids), so alerts carry the worker's trace id also when this
        // process exports no spans.
        bool traced = TraceContextHeaders.TryExtract(message.Headers, out ActivityContext producer);
        var trace = traced ? new TraceContext(producer.TraceId.ToHexString(), producer.SpanId.ToHexString()) : TraceContext.None;
        using Activity? span = ProcessSpan.Start(
            message.Topic == _options.StepsTopic ? _processSpanName : MessagingAttributes.ProcessSpanName(message.Topic), message, producer);
        if (!_reader.TryRead(message.Value, out StepRecord? record, out DecodeError error))
        {
            ProcessSpan.Undecodable(span, error);
            Interlocked.Increment(ref _failed);
            _metrics.Failed(DeadLetter.LabelOf(error.Kind));
            return DeadLetter.Of(error);
        }

        Interlocked.Increment(ref _decoded);
        ProcessSpan.Decoded(span, record);
        _recorder?.Write(record);
        _metrics.Record(record);
        if (record.AtBegin)
        {
            // One-shot captures hold values, not a training step: rules do not see them.
            return null;
        }

        _changelog?.Processed(record.RunId, record.Rank, message.Partition);

        Handle(_engine.Process(record, trace), span);
        _metrics.Drift(_engine.DriftObservations);
        if (_engine.LastRankEnded is { } ended)
        {
            // After the resolutions: the rank's per-run series go with its state.
            _metrics.RankEnded(ended.Run, ended.Rank);
        }

        _metrics.Engine(_engine);
        return null;
    }

    private void Handle(IReadOnlyList<AlertTransition> transitions, Activity? span = null)
    {
        foreach (AlertTransition transition in transitions)
        {
            ProcessSpan.Alert(span, transition);
            _alerts.Changed(transition);
            if (_changelog is null)
            {
                Notify(transition);
            }
            else
            {
                // Notified once the transaction that writes it (and the key's state after it) commits.
                _changelog.Hold(transition);
            }

            if (transition.State == AlertState.Firing)
            {
                Interlocked.Increment(ref _alertsFired);
            }

            try
            {
                AlertChanged?.Invoke(transition);
            }
#pragma warning disable CA1031 // A listener must not stop the pipeline.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                LogError(ex, "An AlertChanged handler threw");
            }
        }
    }

    /// <summary>Notifications and actions of a transition (with the changelog: once committed, and
    /// <paramref name="webhooksSettled"/> is told when the webhooks are done with it).</summary>
    private void Notify(AlertTransition transition, Action? webhooksSettled = null)
    {
        _actions.Run(transition);
        _notifications.Publish(transition, webhooksSettled);
    }

    private void LogWarning(string message)
    {
#pragma warning disable CA1848, CA2254 // Rare path; the message is data.
        _logger.LogWarning(message);
#pragma warning restore CA1848, CA2254
    }

    private void LogInformation(string message)
    {
#pragma warning disable CA1848, CA2254 // Rare path; the message is data.
        _logger.LogInformation(message);
#pragma warning restore CA1848, CA2254
    }

    private void LogError(Exception? exception, string message)
    {
#pragma warning disable CA1848, CA2254 // Rare path; the message is data.
        _logger.LogError(exception, message);
#pragma warning restore CA1848, CA2254
    }
}
