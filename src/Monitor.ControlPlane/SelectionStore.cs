using System.Text.Json;
using Monitor.Contracts;
using StackExchange.Redis;

namespace Monitor.ControlPlane;

/// <summary>Who changes a selection and through what, for the audit list.</summary>
/// <param name="Who">User or principal.</param>
/// <param name="Source">Surface: <c>cli</c>, <c>api</c>, ...</param>
public sealed record SelectionChange(string Who, string Source);

/// <summary>The selection a rank would apply, and where it comes from.</summary>
/// <param name="Selection">The selection.</param>
/// <param name="Rank">The rank whose own selection it is, or null when it is the run's.</param>
public sealed record EffectiveSelection(TraceSelection Selection, int? Rank);

/// <summary>
/// The control plane's store in Redis (or Garnet): selections with versions and an audit trail, catalogs, heartbeats.
/// Used by the CLI and the service to change selections and by workers to read them.
/// </summary>
/// <remarks>
/// <para>A selection is validated before it is stored; nothing is stored when it is invalid. Each store takes a new
/// version from the run's counter (INCR) and writes the selection and its audit entry in one MULTI/EXEC guarded by a
/// check that nobody changed the key meanwhile (retried on conflict), then publishes a wake-up notice on the run's
/// channel. Workers re-read on that notice, on reconnect and periodically, so a lost notice only delays a change.</para>
/// <para>Thread-safe (StackExchange.Redis multiplexes). Redis errors surface as <see cref="RedisException"/> or
/// <see cref="TimeoutException"/>.</para>
/// </remarks>
public sealed class SelectionStore
{
    private const int MaxAttempts = 50;
    private readonly IConnectionMultiplexer _redis;
    private readonly TimeProvider _timeProvider;

    /// <summary>Creates a store over an existing connection (not owned).</summary>
    public SelectionStore(IConnectionMultiplexer redis, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(redis);
        _redis = redis;
        _timeProvider = timeProvider ?? TimeProvider.System;
    }

    private IDatabase Database => _redis.GetDatabase();

    /// <summary>
    /// Validates and stores a selection for the whole run (<paramref name="ranks"/> and the selection's own
    /// <see cref="TraceSelection.Ranks"/> empty) or as the own selection of each rank listed, in either (the other
    /// ranks keep theirs). Returns the stored selection with its new version.
    /// </summary>
    /// <exception cref="SelectionValidationException">The selection is invalid, or it names other ranks than
    /// <paramref name="ranks"/>; nothing was stored.</exception>
    public async Task<TraceSelection> SetAsync(string run, TraceSelection selection, SelectionChange change,
        IReadOnlyList<int>? ranks = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(selection);
        ArgumentNullException.ThrowIfNull(change);
        RunId.Validate(run);
        ranks ??= [];
        if (ranks.Count == 0)
        {
            // The document's own "ranks" is honoured: a change meant for one rank must not be stored for all.
            ranks = selection.Ranks;
        }
        else if (selection.Ranks.Count > 0 && !selection.Ranks.Distinct().Order().SequenceEqual(ranks.Distinct().Order()))
        {
            throw new SelectionValidationException(
                $"ranks: the selection names ranks [{string.Join(", ", selection.Ranks)}] but it is being stored for ranks [{string.Join(", ", ranks)}]; give the ranks in one place");
        }

        if (ranks.Any(r => r < 0))
        {
            throw new SelectionValidationException("ranks: a rank is negative");
        }

        selection = (selection with { Ranks = [.. ranks.Distinct().Order()] }).EnsureValid();
        RedisKey[] keys = ranks.Count == 0
            ? [ControlPlaneKeys.Selection(run)]
            : [.. selection.Ranks.Select(r => (RedisKey)ControlPlaneKeys.RankSelection(run, r))];
        IDatabase db = Database;
        for (int attempt = 0; attempt < MaxAttempts; attempt++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            RedisValue[] current = await db.StringGetAsync(keys).ConfigureAwait(false);
            long version = await db.StringIncrementAsync(ControlPlaneKeys.Version(run)).ConfigureAwait(false);
            TraceSelection stored = selection with { Version = version };
            string json = SelectionJson.Serialize(stored);
            ITransaction transaction = db.CreateTransaction();
            for (int i = 0; i < keys.Length; i++)
            {
                transaction.AddCondition(current[i].IsNull ? Condition.KeyNotExists(keys[i]) : Condition.StringEqual(keys[i], current[i]));
                _ = transaction.StringSetAsync(keys[i], json);
                var entry = new AuditEntry
                {
                    At = _timeProvider.GetUtcNow(),
                    Who = change.Who,
                    Source = change.Source,
                    Action = "set",
                    Rank = ranks.Count == 0 ? null : stored.Ranks[i],
                    OldVersion = VersionOf(current[i]),
                    NewVersion = version,
                    Selection = stored,
                };
                _ = transaction.ListLeftPushAsync(ControlPlaneKeys.Audit(run), JsonSerializer.Serialize(entry, SelectionJson.Options));
            }

            _ = transaction.ListTrimAsync(ControlPlaneKeys.Audit(run), 0, ControlPlaneKeys.AuditLength - 1);
            if (await transaction.ExecuteAsync().ConfigureAwait(false))
            {
                // Outside the transaction: the runs set is not in the run's hash slot.
                await db.SetAddAsync(ControlPlaneKeys.Runs, run).ConfigureAwait(false);
                await NotifyAsync(run, new ControlNotice("selection", ranks.Count == 1 ? ranks[0] : null, version)).ConfigureAwait(false);
                return stored;
            }

            await BackOffAsync(attempt, cancellationToken).ConfigureAwait(false);
        }

        throw new InvalidOperationException($"the selection of run '{run}' kept changing during {MaxAttempts} attempts to store it; try again");
    }

    /// <summary>Removes a rank's own selection (it falls back to the run's). False when it had none.</summary>
    public async Task<bool> ClearRankAsync(string run, int rank, SelectionChange change, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(change);
        RunId.Validate(run);
        ArgumentOutOfRangeException.ThrowIfNegative(rank);
        IDatabase db = Database;
        RedisKey key = ControlPlaneKeys.RankSelection(run, rank);
        for (int attempt = 0; attempt < MaxAttempts; attempt++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            RedisValue current = await db.StringGetAsync(key).ConfigureAwait(false);
            if (current.IsNull)
            {
                return false;
            }

            ITransaction transaction = db.CreateTransaction();
            transaction.AddCondition(Condition.StringEqual(key, current));
            _ = transaction.KeyDeleteAsync(key);
            var entry = new AuditEntry { At = _timeProvider.GetUtcNow(), Who = change.Who, Source = change.Source, Action = "clear", Rank = rank, OldVersion = VersionOf(current) };
            _ = transaction.ListLeftPushAsync(ControlPlaneKeys.Audit(run), JsonSerializer.Serialize(entry, SelectionJson.Options));
            _ = transaction.ListTrimAsync(ControlPlaneKeys.Audit(run), 0, ControlPlaneKeys.AuditLength - 1);
            if (await transaction.ExecuteAsync().ConfigureAwait(false))
            {
                await NotifyAsync(run, new ControlNotice("selection", rank, null)).ConfigureAwait(false);
                return true;
            }

            await BackOffAsync(attempt, cancellationToken).ConfigureAwait(false);
        }

        throw new InvalidOperationException($"the selection of rank {rank} of run '{run}' kept changing; try again");
    }

    /// <summary>
    /// The selection in the store for the run (<paramref name="rank"/> null) or the one rank <paramref name="rank"/>
    /// would apply (its own, else the run's when that targets it); null when there is none.
    /// </summary>
    /// <exception cref="SelectionValidationException">A stored document is not a valid selection.</exception>
    public async Task<EffectiveSelection?> GetAsync(string run, int? rank = null)
    {
        RunId.Validate(run);
        if (rank is not { } r)
        {
            RedisValue value = await Database.StringGetAsync(ControlPlaneKeys.Selection(run)).ConfigureAwait(false);
            return value.IsNull ? null : new EffectiveSelection(SelectionJson.Parse(value.ToString()), null);
        }

        RedisValue[] values = await Database.StringGetAsync([ControlPlaneKeys.RankSelection(run, r), ControlPlaneKeys.Selection(run)]).ConfigureAwait(false);
        return Effective(values[0], values[1], r);
    }

    /// <summary>The selection rank <paramref name="rank"/> applies, from the raw values of its own key and the run's.</summary>
    internal static EffectiveSelection? Effective(RedisValue rankValue, RedisValue runValue, int rank)
    {
        if (!rankValue.IsNull)
        {
            return new EffectiveSelection(SelectionJson.Parse(rankValue.ToString()), rank);
        }

        if (runValue.IsNull)
        {
            return null;
        }

        TraceSelection run = SelectionJson.Parse(runValue.ToString());
        return run.Ranks.Count == 0 || run.Ranks.Contains(rank) ? new EffectiveSelection(run, null) : null;
    }

    /// <summary>The audit trail, newest first.</summary>
    public async Task<IReadOnlyList<AuditEntry>> HistoryAsync(string run, int count = 100)
    {
        RunId.Validate(run);
        RedisValue[] values = await Database.ListRangeAsync(ControlPlaneKeys.Audit(run), 0, Math.Max(0, count - 1)).ConfigureAwait(false);
        return [.. values.Select(v => ParseStatus<AuditEntry>(v)).OfType<AuditEntry>()];
    }

    /// <summary>Runs that have control-plane state; runs whose keys have all expired are dropped from the set.</summary>
    public async Task<IReadOnlyList<string>> RunsAsync()
    {
        IDatabase db = Database;
        RedisValue[] members = await db.SetMembersAsync(ControlPlaneKeys.Runs).ConfigureAwait(false);
        string[] runs = [.. members.Select(m => m.ToString()).Where(r => RunId.Check(r) is null)];
        bool[] present = await Task.WhenAll(runs.Select(async run =>
            await db.KeyExistsAsync(ControlPlaneKeys.Workers(run)).ConfigureAwait(false)
            || await db.KeyExistsAsync(ControlPlaneKeys.Selection(run)).ConfigureAwait(false)
            || await db.KeyExistsAsync(ControlPlaneKeys.Audit(run)).ConfigureAwait(false)
            || await db.KeyExistsAsync(ControlPlaneKeys.Command(run)).ConfigureAwait(false)
            || await db.KeyExistsAsync(ControlPlaneKeys.Metadata(run)).ConfigureAwait(false))).ConfigureAwait(false);
        string[] gone = [.. runs.Where((_, i) => !present[i])];
        if (gone.Length > 0)
        {
            await db.SetRemoveAsync(ControlPlaneKeys.Runs, [.. gone.Select(r => (RedisValue)r)]).ConfigureAwait(false);
        }

        return [.. runs.Where((_, i) => present[i]).Order(StringComparer.Ordinal)];
    }

    /// <summary>
    /// Gives the run's keys <paramref name="retention"/> to live once every rank of a run of
    /// <paramref name="worldSize"/> has written a stopped heartbeat (worker side, at the end of each rank); returns
    /// whether the run was finished.
    /// </summary>
    public async Task<bool> ExpireIfFinishedAsync(string run, int worldSize, TimeSpan retention)
    {
        RunId.Validate(run);
        HashEntry[] entries = await Database.HashGetAllAsync(ControlPlaneKeys.Workers(run)).ConfigureAwait(false);
        HashSet<int> stopped = [.. entries.Select(e => ParseStatus<WorkerStatus>(e.Value)).OfType<WorkerStatus>().Where(w => w.Stopped).Select(w => w.Rank)];
        if (Enumerable.Range(0, worldSize).Any(rank => !stopped.Contains(rank)))
        {
            return false;
        }

        await Task.WhenAll(RunKeys(run, worldSize).Select(key => Database.KeyExpireAsync(key, retention))).ConfigureAwait(false);
        return true;
    }

    /// <summary>Removes an expiry a finished earlier run under the same id left on the run's keys and this rank's (worker side, at start).</summary>
    public async Task KeepRunAsync(string run, int rank)
    {
        RunId.Validate(run);
        RedisKey[] keys = [.. RunKeys(run, 0), ControlPlaneKeys.RankSelection(run, rank), ControlPlaneKeys.Catalog(run, rank)];
        await Task.WhenAll(keys.Select(key => Database.KeyPersistAsync(key))).ConfigureAwait(false);
    }

    /// <summary>The run's keys, and those of ranks 0 ... <paramref name="ranks"/> - 1.</summary>
    private static IEnumerable<RedisKey> RunKeys(string run, int ranks) =>
        new RedisKey[]
        {
            ControlPlaneKeys.Selection(run), ControlPlaneKeys.Version(run), ControlPlaneKeys.Workers(run), ControlPlaneKeys.Audit(run),
            ControlPlaneKeys.Command(run), ControlPlaneKeys.CommandSequence(run), ControlPlaneKeys.Metadata(run),
            ControlPlaneKeys.Artifacts(run),
        }.Concat(Enumerable.Range(0, ranks).SelectMany(rank => new RedisKey[] { ControlPlaneKeys.RankSelection(run, rank), ControlPlaneKeys.Catalog(run, rank) }));

    /// <summary>The heartbeats of the run's ranks, by rank.</summary>
    public async Task<IReadOnlyList<WorkerStatus>> WorkersAsync(string run)
    {
        RunId.Validate(run);
        HashEntry[] entries = await Database.HashGetAllAsync(ControlPlaneKeys.Workers(run)).ConfigureAwait(false);
        return [.. entries.Select(e => ParseStatus<WorkerStatus>(e.Value)).OfType<WorkerStatus>().OrderBy(w => w.Rank)];
    }

    /// <summary>The catalog a rank published, by name.</summary>
    public async Task<IReadOnlyList<CatalogEntry>> CatalogAsync(string run, int rank)
    {
        RunId.Validate(run);
        HashEntry[] entries = await Database.HashGetAllAsync(ControlPlaneKeys.Catalog(run, rank)).ConfigureAwait(false);
        return [.. entries.Select(e => ParseStatus<CatalogEntry>(e.Value)).OfType<CatalogEntry>().OrderBy(c => c.Name, StringComparer.Ordinal)];
    }

    /// <summary>The run metadata its ranks published (<see cref="ControlPlaneKeys.Metadata"/>), by rank; unreadable entries are left out.</summary>
    public async Task<IReadOnlyList<RunMetadata>> MetadataAsync(string run)
    {
        RunId.Validate(run);
        HashEntry[] entries = await Database.HashGetAllAsync(ControlPlaneKeys.Metadata(run)).ConfigureAwait(false);
        return [.. entries.Select(e => RunMetadata.TryParse(e.Value.ToString())).OfType<RunMetadata>().OrderBy(m => m.Rank)];
    }

    /// <summary>Stores a rank's run metadata, replacing an earlier run's under the same id (worker side, once at start).</summary>
    public async Task PublishMetadataAsync(RunMetadata metadata)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        RunId.Validate(metadata.Run);
        await Database.HashSetAsync(ControlPlaneKeys.Metadata(metadata.Run), metadata.Rank, metadata.ToJson()).ConfigureAwait(false);
        await Database.SetAddAsync(ControlPlaneKeys.Runs, metadata.Run).ConfigureAwait(false);
    }

    /// <summary>The run's artifact events (<see cref="ControlPlaneKeys.Artifacts"/>) in the order they were stored; unreadable entries are left out.</summary>
    public async Task<IReadOnlyList<ArtifactRecord>> ArtifactsAsync(string run)
    {
        RunId.Validate(run);
        RedisValue[] values = await Database.ListRangeAsync(ControlPlaneKeys.Artifacts(run)).ConfigureAwait(false);
        return [.. values.Select(v => ParseStatus<ArtifactRecord>(v)).OfType<ArtifactRecord>()];
    }

    /// <summary>Appends artifact events of the run (worker side), keeping the newest <see cref="ControlPlaneKeys.ArtifactsLength"/>.</summary>
    public async Task AppendArtifactsAsync(string run, IReadOnlyCollection<ArtifactRecord> artifacts)
    {
        ArgumentNullException.ThrowIfNull(artifacts);
        RunId.Validate(run);
        if (artifacts.Count == 0)
        {
            return;
        }

        ITransaction transaction = Database.CreateTransaction();
        _ = transaction.ListRightPushAsync(ControlPlaneKeys.Artifacts(run), [.. artifacts.Select(a => (RedisValue)JsonSerializer.Serialize(a, SelectionJson.Options))]);
        _ = transaction.ListTrimAsync(ControlPlaneKeys.Artifacts(run), -ControlPlaneKeys.ArtifactsLength, -1);
        await transaction.ExecuteAsync().ConfigureAwait(false);
        await Database.SetAddAsync(ControlPlaneKeys.Runs, run).ConfigureAwait(false);
    }

    /// <summary>Replaces a rank's catalog (worker side).</summary>
    public async Task PublishCatalogAsync(string run, int rank, IReadOnlyCollection<CatalogEntry> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        RedisKey key = ControlPlaneKeys.Catalog(run, rank);
        ITransaction transaction = Database.CreateTransaction();
        _ = transaction.KeyDeleteAsync(key);
        if (entries.Count > 0)
        {
            _ = transaction.HashSetAsync(key, [.. entries.Select(e => new HashEntry(e.Name, JsonSerializer.Serialize(e, SelectionJson.Options)))]);
        }

        await transaction.ExecuteAsync().ConfigureAwait(false);
        await Database.SetAddAsync(ControlPlaneKeys.Runs, run).ConfigureAwait(false);
    }

    /// <summary>Stores a command for the run's workers (e.g. stop) and wakes them up.</summary>
    public async Task IssueCommandAsync(string run, RunCommand command)
    {
        ArgumentNullException.ThrowIfNull(command);
        RunId.Validate(run);
        long id = await Database.StringIncrementAsync(ControlPlaneKeys.CommandSequence(run)).ConfigureAwait(false);
        command = command with { Id = id };
        await Database.StringSetAsync(ControlPlaneKeys.Command(run), JsonSerializer.Serialize(command, SelectionJson.Options)).ConfigureAwait(false);
        await Database.SetAddAsync(ControlPlaneKeys.Runs, run).ConfigureAwait(false);
        await NotifyAsync(run, new ControlNotice("command", command.Ranks.Count == 1 ? command.Ranks[0] : null, null)).ConfigureAwait(false);
    }

    /// <summary>The run's current command, if any.</summary>
    public async Task<RunCommand?> GetCommandAsync(string run)
    {
        RunId.Validate(run);
        RedisValue value = await Database.StringGetAsync(ControlPlaneKeys.Command(run)).ConfigureAwait(false);
        return value.IsNull ? null : ParseCommand(value);
    }

    internal static RunCommand? ParseCommand(RedisValue value) => ParseStatus<RunCommand>(value);

    /// <summary>
    /// A status document (<see cref="SelectionJson.StatusOptions"/>: fields of newer versions skipped), or null when the
    /// value is missing or not such a document: one unreadable entry must not hide the others.
    /// </summary>
    internal static T? ParseStatus<T>(RedisValue value)
        where T : class
    {
        try
        {
            return value.IsNull ? null : JsonSerializer.Deserialize<T>(value.ToString(), SelectionJson.StatusOptions);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>Writes a rank's heartbeat (worker side).</summary>
    public Task HeartbeatAsync(string run, WorkerStatus status)
    {
        ArgumentNullException.ThrowIfNull(status);
        return Database.HashSetAsync(ControlPlaneKeys.Workers(run), status.Rank, JsonSerializer.Serialize(status, SelectionJson.Options));
    }

    /// <summary>Random back-off after a lost race, so concurrent writers spread out instead of colliding again.</summary>
    private Task BackOffAsync(int attempt, CancellationToken cancellationToken) =>
        Task.Delay(TimeSpan.FromMilliseconds(Random.Shared.Next(1, 5 * (attempt + 1))), _timeProvider, cancellationToken);

    private Task<long> NotifyAsync(string run, ControlNotice notice) =>
        _redis.GetSubscriber().PublishAsync(RedisChannel.Literal(ControlPlaneKeys.Control(run)), JsonSerializer.Serialize(notice, SelectionJson.Options));

    private static long? VersionOf(RedisValue stored)
    {
        if (stored.IsNull)
        {
            return null;
        }

        try
        {
            using var document = JsonDocument.Parse(stored.ToString());
            return document.RootElement.TryGetProperty("version", out JsonElement version) ? version.GetInt64() : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
