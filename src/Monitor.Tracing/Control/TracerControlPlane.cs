using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Monitor.Contracts;
using Monitor.ControlPlane;
using StackExchange.Redis;

namespace Monitor.Tracing.Control;

/// <summary>Options of <see cref="TracerControlPlane"/>.</summary>
public sealed class ControlPlaneOptions
{
    /// <summary>StackExchange.Redis configuration string, e.g. <c>localhost:6379</c> or <c>redis:6379,password=...</c>. Required.</summary>
    public required string Redis { get; init; }

    /// <summary>How often the selection is re-read without a notice (the safety net for lost pub/sub messages). Default 2 s.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>How often the heartbeat is written. Default 2 s.</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Clock for heartbeat timestamps. Default <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Where connection problems are logged (at most once a minute). Default none.</summary>
    public ILogger? Logger { get; init; }

    /// <summary>
    /// How long a finished run's control-plane keys stay in Redis: when the last of its ranks stops (every rank of
    /// <see cref="StepTracer.WorldSize"/> has written its stopped heartbeat), its keys get this expiry. Default 7 days.
    /// A worker that starts under the run id again removes the expiry. <see cref="TimeSpan.Zero"/>: keys never expire.
    /// </summary>
    public TimeSpan FinishedRunRetention { get; init; } = TimeSpan.FromDays(7);
}

/// <summary>Counters of a worker's control loop.</summary>
/// <param name="Refreshes">Times the selection was read.</param>
/// <param name="Applied">Selections handed to the tracer.</param>
/// <param name="Rejected">Selections the tracer (or parsing) refused; the previous one stayed.</param>
/// <param name="Errors">Redis errors (unreachable, timeouts); the loop retried.</param>
/// <param name="Connected">Whether Redis is reachable now.</param>
/// <param name="LastError">The most recent error or rejection.</param>
public sealed record ControlPlaneStatistics(long Refreshes, long Applied, long Rejected, long Errors, bool Connected, string? LastError);

/// <summary>
/// A worker's side of the control plane: keeps the tracer's selection in step with Redis, publishes the rank's
/// run metadata (<see cref="StepTracer.Metadata"/>, once when it first reaches Redis), artifact events
/// (<see cref="StepTracer.RecordArtifact"/>), catalog and heartbeat.
/// </summary>
/// <remarks>
/// <para>The selection is re-read when a notice arrives on the run's channel, when the connection comes back, and
/// every <see cref="ControlPlaneOptions.PollInterval"/>; a changed version is handed to
/// <see cref="StepTracer.UpdateSelection"/>, which applies it at the next step boundary. The rank applies its own
/// selection if it has one, else the run's (when the run's targets it), else the one the tracer started with. A selection that does not parse or that the
/// tracer refuses is not applied again; the previous one stays and the refusal goes into the heartbeat.</para>
/// <para>Everything runs on a background task: nothing here blocks or throws into the training loop. If Redis is
/// unreachable, training continues with the last selection and the connection is retried by itself.</para>
/// </remarks>
public sealed class TracerControlPlane : IAsyncDisposable
{
    private static readonly TimeSpan ErrorLogInterval = TimeSpan.FromMinutes(1);
    private static readonly TimeSpan FinalHeartbeatTimeout = TimeSpan.FromSeconds(2);

    private readonly StepTracer _tracer;
    private readonly ControlPlaneOptions _options;
    private readonly Func<IReadOnlyCollection<CatalogEntry>>? _catalog;
    private readonly SemaphoreSlim _wake = new(0);
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _loop;
    private ConnectionMultiplexer? _redis;
    private readonly TraceSelection _initialSelection;
    private long _refreshes, _applied, _rejected, _errors;
    private readonly DateTimeOffset _startedAt;
    // The run's command sequence at this worker's first read of Redis (-1 until then): later commands have larger ids.
    private long _commandsBefore = -1;
    private volatile RunCommand? _stop;
    private long? _rejectedVersion;
    private string? _rejectionReason;
    private string? _lastError;
    private long _lastErrorLog = long.MinValue;
    private int _disposed;

    private TracerControlPlane(StepTracer tracer, ControlPlaneOptions options, Func<IReadOnlyCollection<CatalogEntry>>? catalog)
    {
        _tracer = tracer;
        _initialSelection = tracer.Selection;
        _options = options;
        _catalog = catalog;
        _startedAt = options.TimeProvider.GetUtcNow();
        tracer.AttachControl();
        _loop = Task.Run(RunAsync);
    }

    /// <summary>Whether Redis is reachable now.</summary>
    public bool IsConnected => _redis?.IsConnected ?? false;

    /// <summary>
    /// True once a stop command for this rank has arrived (issued after this loop started). The training loop should
    /// end at its next step; <see cref="StopCommand"/> says why. Thread-safe.
    /// </summary>
    public bool ShouldStop => _stop is not null;

    /// <summary>The stop command received, if any.</summary>
    public RunCommand? StopCommand => _stop;

    /// <summary>Raised once, on the control loop's thread, when a stop command arrives. Handlers must be quick and must not throw.</summary>
    public event Action<RunCommand>? StopRequested;

    /// <summary>Counters so far.</summary>
    public ControlPlaneStatistics Statistics => new(
        Interlocked.Read(ref _refreshes), Interlocked.Read(ref _applied), Interlocked.Read(ref _rejected),
        Interlocked.Read(ref _errors), IsConnected, Volatile.Read(ref _lastError));

    /// <summary>Starts the control loop of <paramref name="tracer"/>'s rank. Returns at once; connecting happens in the background.</summary>
    /// <param name="tracer">The tracer whose selection is managed (not owned).</param>
    /// <param name="options">Redis and intervals.</param>
    /// <param name="catalog">The rank's traceable tensors (e.g. <c>TorchSharpTracer.Catalog</c>); republished when it grows. Called on the background task.</param>
    public static TracerControlPlane Start(StepTracer tracer, ControlPlaneOptions options, Func<IReadOnlyCollection<CatalogEntry>>? catalog = null)
    {
        ArgumentNullException.ThrowIfNull(tracer);
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrWhiteSpace(options.Redis))
        {
            throw new ArgumentException("Redis connection string is empty", nameof(options));
        }

        if (options.PollInterval <= TimeSpan.Zero || options.HeartbeatInterval <= TimeSpan.Zero)
        {
            throw new ArgumentException("poll and heartbeat intervals must be positive", nameof(options));
        }

        return new TracerControlPlane(tracer, options, catalog);
    }

    /// <summary>
    /// Stops the loop, writes a last heartbeat marked <see cref="WorkerStatus.Stopped"/> (when Redis is reachable; at
    /// most 2 s), and closes the connection. Idempotent.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        if (_redis is not null)
        {
            await _redis.DisposeAsync().ConfigureAwait(false);
        }

        _stopping.Dispose();
        _wake.Dispose();
    }

    private async Task RunAsync()
    {
        CancellationToken stopping = _stopping.Token;
        SelectionStore? store = await ConnectAsync().ConfigureAwait(false);
        if (store is null)
        {
            return;
        }

        int publishedCatalog = -1;
        RunMetadata? publishedMetadata = null;
        long lastHeartbeat = long.MinValue;
        bool kept = false;
        while (!stopping.IsCancellationRequested)
        {
            if (_redis!.IsConnected)
            {
                try
                {
                    if (!kept)
                    {
                        // A run id used again after its run finished: its keys must not expire under this run.
                        await store.KeepRunAsync(_tracer.RunId, _tracer.Rank).ConfigureAwait(false);
                        kept = true;
                    }

                    if (!ReferenceEquals(_tracer.Metadata, publishedMetadata))
                    {
                        RunMetadata metadata = _tracer.Metadata;
                        await store.PublishMetadataAsync(metadata).ConfigureAwait(false);
                        publishedMetadata = metadata;
                    }

                    await PublishArtifactsAsync(store).ConfigureAwait(false);
                    await RefreshSelectionAsync(stopping).ConfigureAwait(false);
                    if (_catalog?.Invoke() is { } entries && entries.Count != publishedCatalog)
                    {
                        await store.PublishCatalogAsync(_tracer.RunId, _tracer.Rank, entries).ConfigureAwait(false);
                        publishedCatalog = entries.Count;
                    }

                    if (lastHeartbeat == long.MinValue || Stopwatch.GetElapsedTime(lastHeartbeat) >= _options.HeartbeatInterval)
                    {
                        await store.HeartbeatAsync(_tracer.RunId, Heartbeat()).ConfigureAwait(false);
                        lastHeartbeat = Stopwatch.GetTimestamp();
                    }
                }
                catch (Exception ex) when (ex is RedisException or TimeoutException)
                {
                    Error(ex.Message);
                }
            }

            try
            {
                TimeSpan wait = _options.PollInterval < _options.HeartbeatInterval ? _options.PollInterval : _options.HeartbeatInterval;
                await _wake.WaitAsync(wait, stopping).ConfigureAwait(false);
                // Several notices in a burst need one re-read.
                while (_wake.CurrentCount > 0 && _wake.Wait(0, CancellationToken.None))
                {
                }
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        if (_redis!.IsConnected)
        {
            try
            {
                if (!ReferenceEquals(_tracer.Metadata, publishedMetadata))
                {
                    // A run shorter than the connection's set-up still leaves its lineage.
                    await store.PublishMetadataAsync(_tracer.Metadata).WaitAsync(FinalHeartbeatTimeout, CancellationToken.None).ConfigureAwait(false);
                }

                await PublishArtifactsAsync(store).WaitAsync(FinalHeartbeatTimeout, CancellationToken.None).ConfigureAwait(false);

                // Bounded: disposing must not hang on a slow Redis. A missed last heartbeat only looks like a lost worker.
                await store.HeartbeatAsync(_tracer.RunId, Heartbeat() with { Stopped = true }).WaitAsync(FinalHeartbeatTimeout, CancellationToken.None).ConfigureAwait(false);
                if (_options.FinishedRunRetention > TimeSpan.Zero)
                {
                    await store.ExpireIfFinishedAsync(_tracer.RunId, _tracer.WorldSize, _options.FinishedRunRetention)
                        .WaitAsync(FinalHeartbeatTimeout, CancellationToken.None).ConfigureAwait(false);
                }
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                Error(ex.Message);
            }
        }
    }

    // Artifact events taken and not yet stored (Redis failed): stored first on the next attempt, so none is lost or reordered.
    private List<ArtifactRecord> _unstoredArtifacts = [];

    private async Task PublishArtifactsAsync(SelectionStore store)
    {
        _unstoredArtifacts.AddRange(_tracer.TakeArtifactsForControl());
        if (_unstoredArtifacts.Count > StepTracer.MaxPendingArtifacts)
        {
            // A Redis that keeps failing must not grow the worker's memory: the oldest events go, as in the tracer.
            _unstoredArtifacts.RemoveRange(0, _unstoredArtifacts.Count - StepTracer.MaxPendingArtifacts);
        }

        if (_unstoredArtifacts.Count > 0)
        {
            await store.AppendArtifactsAsync(_tracer.RunId, _unstoredArtifacts).ConfigureAwait(false);
            _unstoredArtifacts = [];
        }
    }

    private async Task<SelectionStore?> ConnectAsync()
    {
        try
        {
            ConfigurationOptions configuration = RedisConnection.Parse(_options.Redis);
            // Never give up: a worker outlives Redis restarts and starts even before Redis is up.
            configuration.AbortOnConnectFail = false;
            configuration.ClientName ??= $"monitor-worker-{_tracer.RunId}-{_tracer.Rank}";
            _redis = await ConnectionMultiplexer.ConnectAsync(configuration).ConfigureAwait(false);
            _redis.ConnectionRestored += (_, _) => Wake();
            await _redis.GetSubscriber().SubscribeAsync(RedisChannel.Literal(ControlPlaneKeys.Control(_tracer.RunId)), (_, _) => Wake()).ConfigureAwait(false);
            return new SelectionStore(_redis, _options.TimeProvider);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or ArgumentException)
        {
            // Only a malformed configuration string ends up here (AbortOnConnectFail is off): nothing to retry.
            Error($"control plane disabled: {ex.Message}");
            return null;
        }
    }

    private void Wake()
    {
        try
        {
            _wake.Release();
        }
        catch (ObjectDisposedException)
        {
            // Disposed while a notice arrived.
        }
    }

    private async Task RefreshSelectionAsync(CancellationToken stopping)
    {
        stopping.ThrowIfCancellationRequested();
        Interlocked.Increment(ref _refreshes);
        IDatabase db = _redis!.GetDatabase();
        RedisValue[] values = await db.StringGetAsync(
            [ControlPlaneKeys.RankSelection(_tracer.RunId, _tracer.Rank), ControlPlaneKeys.Selection(_tracer.RunId), ControlPlaneKeys.Command(_tracer.RunId),
                ControlPlaneKeys.CommandSequence(_tracer.RunId)]).ConfigureAwait(false);
        CheckCommand(SelectionStore.ParseCommand(values[2]), values[3].TryParse(out long sequence) ? sequence : 0);
        EffectiveSelection? effective;
        try
        {
            effective = SelectionStore.Effective(values[0], values[1], _tracer.Rank);
        }
        catch (SelectionValidationException ex)
        {
            Reject(null, "the stored selection does not parse: " + ex.Message);
            return;
        }

        if (effective is null)
        {
            // No stored selection targets this rank (none was set, or its own was cleared and the run's does not target
            // it): the rank goes back to the selection it started with, as `trace clear` promises.
            if (!ReferenceEquals(_tracer.Selection, _initialSelection) && _tracer.UpdateSelection(_initialSelection) is null)
            {
                Interlocked.Increment(ref _applied);
            }

            return;
        }

        TraceSelection selection = effective.Selection;
        if (selection.Version == _tracer.Selection.Version || selection.Version == _rejectedVersion)
        {
            return;
        }

        if (_tracer.UpdateSelection(selection) is { } reason)
        {
            Reject(selection.Version, reason);
            return;
        }

        Interlocked.Increment(ref _applied);
    }

    private void CheckCommand(RunCommand? command, long sequence)
    {
        if (_commandsBefore < 0)
        {
            _commandsBefore = sequence;
        }

        // A command stored after this worker first reached Redis has a larger id than the sequence it read then; no
        // clock is compared. Only a command without an id (from an issuer of an older version) falls back to its issue time.
        bool issuedSinceStart = command is not null && (command.Id == 0 ? command.IssuedAt >= _startedAt : command.Id > _commandsBefore);
        if (_stop is not null || command is null || command.Command != "stop" || !issuedSinceStart
            || (command.Ranks.Count > 0 && !command.Ranks.Contains(_tracer.Rank)))
        {
            return;
        }

        _stop = command;
        // The run's end record then says it was stopped by the monitor, also when the job just disposes the tracer.
        _tracer.NoteStopRequested();
        try
        {
            StopRequested?.Invoke(command);
        }
#pragma warning disable CA1031 // A handler's fault must not stop the control loop.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Error($"a StopRequested handler threw: {ex.Message}");
        }
    }

    private void Reject(long? version, string reason)
    {
        if (version == _rejectedVersion && reason == _rejectionReason)
        {
            return;
        }

        Interlocked.Increment(ref _rejected);
        _rejectedVersion = version;
        _rejectionReason = reason;
        Volatile.Write(ref _lastError, $"selection {version?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "?"} rejected: {reason}");
    }

    private WorkerStatus Heartbeat()
    {
        TracerStatistics stats = _tracer.Statistics;
        return new WorkerStatus
        {
            Rank = _tracer.Rank,
            Host = Environment.MachineName,
            ProcessId = Environment.ProcessId,
            At = _options.TimeProvider.GetUtcNow(),
            SelectionVersion = stats.SelectionVersion,
            RejectedVersion = _rejectedVersion,
            RejectionReason = _rejectionReason,
            Steps = stats.StepsSeen,
            RecordsDelivered = stats.Delivered,
            RecordsLost = stats.Lost,
            RawPartsTrimmed = stats.RawPartsTrimmed,
            OverheadRatio = stats.OverheadRatio,
            OverheadBudget = stats.OverheadBudget,
            Thinned = stats.Thinned.Count == 0 ? null : stats.Thinned,
        };
    }

    private void Error(string message)
    {
        Interlocked.Increment(ref _errors);
        Volatile.Write(ref _lastError, message);
        if (_options.Logger is { } logger && (_lastErrorLog == long.MinValue || Stopwatch.GetElapsedTime(_lastErrorLog) >= ErrorLogInterval))
        {
            _lastErrorLog = Stopwatch.GetTimestamp();
#pragma warning disable CA1848, CA2254, CA1873 // Rare path; the message is data.
            logger.LogWarning($"Monitor control plane {_tracer.RunId}/{_tracer.Rank}: {message} (training continues with the last selection)");
#pragma warning restore CA1848, CA2254, CA1873
        }
    }
}
