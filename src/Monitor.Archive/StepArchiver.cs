using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Monitor.Contracts;
using Monitor.Contracts.Transport;
using Monitor.Contracts.V1;

namespace Monitor.Archive;

/// <summary>Counters of a <see cref="StepArchiver"/>.</summary>
/// <param name="Consumed">Messages read from the topic.</param>
/// <param name="Undecodable">Messages that were not valid step records (left out; the service dead-letters them).</param>
/// <param name="Writer">The file writer's counters.</param>
/// <param name="Faults">Write failures (the first one stops the archiver; see <see cref="StepArchiver.Failure"/>).</param>
/// <param name="Commits">Offset commits that moved at least one partition forward.</param>
/// <param name="LastCommit">When the last of them succeeded (the archiver's clock), or null before the first.</param>
public readonly record struct StepArchiverStatistics(long Consumed, long Undecodable, ArchiveWriterStatistics Writer, long Faults,
    long Commits = 0, DateTimeOffset? LastCommit = null);

/// <summary>A partition assigned to the archiver, as of its last check (every <see cref="StepArchiver.CheckInterval"/>).</summary>
/// <param name="Topic">Topic.</param>
/// <param name="Partition">Partition.</param>
/// <param name="Lag">Records after the consumer's position; -1 when unknown.</param>
/// <param name="CommittedOffset">The next offset to read as this archiver last committed it, or -1 when it has committed
/// none of the partition yet.</param>
public readonly record struct ArchivePartition(string Topic, int Partition, long Lag, long CommittedOffset);

/// <summary>
/// The archive: a consumer of <c>monitor.steps</c> (its own consumer group) that writes every record to Parquet with an
/// <see cref="ArchiveWriter"/>, and commits a partition's offsets only up to records whose files are closed (renamed to
/// their final name and flushed to disk). After a crash or a rebalance the records after the last commit are read
/// again, and those a file already holds are left out (<see cref="ArchiveWriter.AppendAsync"/>); with a consumer that
/// tells about its partitions (<see cref="IPartitionOwnershipEvents"/>, the Kafka one), the files holding records of
/// partitions about to be revoked are closed and their offsets committed first, so the next owner starts after them.
/// </summary>
/// <remarks>
/// <para><see cref="Start"/> runs the loop on a thread of its own; <see cref="Statistics"/> may be read from any thread.
/// The consumer is used only by that thread and is not disposed here; its <see cref="IPartitionOwnershipEvents"/>
/// handlers, when it has them, are replaced (the ones set before are still called first).</para>
/// <para>A write failure (disk full, permissions) is logged and stops the loop (<see cref="Failure"/>): the open files are
/// abandoned under their temporary names and nothing past the last closed file is committed, so a restarted archiver
/// reads those records again.</para>
/// </remarks>
public sealed class StepArchiver : IAsyncDisposable
{
    private readonly IRecordConsumer _consumer;
    private readonly ArchiveOptions _options;
    private readonly ILogger? _logger;
    private readonly Dictionary<(string Topic, int Partition), (long Consumed, long Committed)> _positions = [];
    private readonly CancellationTokenSource _stopping = new();
    private readonly ArchiveWriter _writer;
    private readonly Lock _statisticsLock = new();
    private Task? _loop;
    private long _consumed;
    private long _undecodable;
    private long _faults;
    private long _commits;
    // Unix milliseconds of the last successful commit; 0 before the first.
    private long _lastCommitAt;
    // Indexed by DecodeErrorKind.
    private readonly long[] _undecodableByKind = new long[Enum.GetValues<DecodeErrorKind>().Length];
    private IReadOnlyList<ArchivePartition> _partitions = [];
    private ArchiveWriterStatistics _writerStatistics;
    private volatile string? _failure;

    /// <summary>Creates the archiver; nothing is read before <see cref="Start"/>.</summary>
    /// <param name="consumer">A member of the archive's own consumer group on the steps topic.</param>
    /// <param name="options">Where and how to write.</param>
    /// <param name="logger">Write failures and retention; default none.</param>
    /// <exception cref="ArgumentException">An option is unusable.</exception>
    public StepArchiver(IRecordConsumer consumer, ArchiveOptions options, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(consumer);
        ArgumentNullException.ThrowIfNull(options);
        _consumer = consumer;
        _options = options;
        _logger = logger;
        _writer = new ArchiveWriter(options);
        if (consumer is IPartitionOwnershipEvents events)
        {
            Action<IReadOnlyList<int>>? assigned = events.PartitionsAssigned;
            Action<IReadOnlyList<int>, bool>? revoked = events.PartitionsRevoked;
            events.PartitionsAssigned = partitions =>
            {
                assigned?.Invoke(partitions);
                Release(partitions, commit: false);
            };
            events.PartitionsRevoked = (partitions, lost) =>
            {
                revoked?.Invoke(partitions, lost);
                Release(partitions, commit: !lost);
            };
        }
    }

    /// <summary>How often the loop checks file ages and commits when idle. Default 1 s.</summary>
    public TimeSpan CheckInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>How often retention runs. Default 1 minute.</summary>
    public TimeSpan RetentionInterval { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>Counters so far (thread-safe snapshot).</summary>
    public StepArchiverStatistics Statistics
    {
        get
        {
            ArchiveWriterStatistics writer;
            lock (_statisticsLock)
            {
                writer = _writerStatistics;
            }

            long committedAt = Interlocked.Read(ref _lastCommitAt);
            return new(Interlocked.Read(ref _consumed), Interlocked.Read(ref _undecodable), writer, Interlocked.Read(ref _faults),
                Interlocked.Read(ref _commits), committedAt == 0 ? null : DateTimeOffset.FromUnixTimeMilliseconds(committedAt));
        }
    }

    /// <summary>Undecodable records of one kind so far (thread-safe); they add up to <see cref="StepArchiverStatistics.Undecodable"/>.</summary>
    public long UndecodableOf(DecodeErrorKind kind) => Interlocked.Read(ref _undecodableByKind[(int)kind]);

    /// <summary>
    /// The partitions assigned to the archiver's consumer, their lag and committed offsets, refreshed every
    /// <see cref="CheckInterval"/> by the loop (thread-safe snapshot; empty before the first check).
    /// </summary>
    public IReadOnlyList<ArchivePartition> Partitions => Volatile.Read(ref _partitions);

    /// <summary>Starts the loop on its own thread. Call once.</summary>
    /// <exception cref="InvalidOperationException">Already started.</exception>
    public void Start()
    {
        if (_loop is not null)
        {
            throw new InvalidOperationException("the archiver is already started");
        }

        _loop = Task.Factory.StartNew(() => RunAsync(_stopping.Token), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
    }

    /// <summary>Stops the loop, closes every open file and commits their offsets. Idempotent.</summary>
    public async Task StopAsync()
    {
        if (!_stopping.IsCancellationRequested)
        {
            await _stopping.CancelAsync().ConfigureAwait(false);
        }

        if (_loop is { } loop)
        {
            await loop.ConfigureAwait(false);
        }
    }

    /// <summary>Same as <see cref="StopAsync"/>.</summary>
    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        _stopping.Dispose();
    }

    private async Task RunAsync(CancellationToken stopping)
    {
        long nextCheck = Stopwatch.GetTimestamp();
        long nextRetention = nextCheck;
        // One record refilled per message: AppendAsync copies what it keeps (rows, metadata file, artifact lines) before
        // it returns, and the loop reads the next message only after it did.
        var reader = new StepRecordReader();
        try
        {
            while (!stopping.IsCancellationRequested)
            {
                try
                {
                    int closed = 0;
                    TransportMessage? message = _consumer.Consume(TimeSpan.FromMilliseconds(100), stopping);
                    if (_failure is not null)
                    {
                        return; // a write failed inside Consume, releasing revoked partitions
                    }

                    if (message is not null)
                    {
                        Interlocked.Increment(ref _consumed);
                        var key = (message.Topic, message.Partition);
                        _positions[key] = (message.Offset, _positions.TryGetValue(key, out var position) ? position.Committed : -1);
                        if (reader.TryRead(message.Value, out StepRecord? record, out DecodeError error))
                        {
                            closed += await _writer.AppendAsync(record, new ArchiveSource(message.Topic, message.Partition, message.Offset), CancellationToken.None).ConfigureAwait(false);
                        }
                        else
                        {
                            CountUndecodable(error.Kind);
                        }
                    }

                    long now = Stopwatch.GetTimestamp();
                    bool check = now >= nextCheck;
                    if (check)
                    {
                        nextCheck = now + (long)(CheckInterval.TotalSeconds * Stopwatch.Frequency);
                        closed += await _writer.RollDueAsync(CancellationToken.None).ConfigureAwait(false);
                    }

                    if (now >= nextRetention)
                    {
                        nextRetention = now + (long)(RetentionInterval.TotalSeconds * Stopwatch.Frequency);
                        int deleted = _writer.DeleteExpired();
                        if (deleted > 0)
                        {
                            Log(LogLevel.Information, $"archive: retention deleted {deleted} file(s) under {_options.Directory}");
                        }
                    }

                    // After a close, or now and then for records that went into no file (undecodable ones).
                    if (closed > 0 || check)
                    {
                        CommitClosed();
                    }

                    if (check)
                    {
                        RefreshPartitions();
                    }

                    PublishStatistics();
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or Parquet.ParquetException)
                {
                    Fail(ex);
                    return;
                }
            }
        }
        finally
        {
            if (_failure is null)
            {
                try
                {
                    await _writer.CloseAllAsync(CancellationToken.None).ConfigureAwait(false);
                    CommitClosed();
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or Parquet.ParquetException)
                {
                    Fail(ex);
                }
            }

            PublishStatistics();
        }
    }

    /// <summary>
    /// On the loop's thread, inside <see cref="IRecordConsumer.Consume"/>: partitions arrive or leave. Their files are
    /// closed, their offsets committed while this member still owns them (not for lost ones, which another member may
    /// own already), and their positions forgotten, so nothing is committed for them after they left.
    /// </summary>
    private void Release(IReadOnlyList<int> partitions, bool commit)
    {
        if (_failure is not null)
        {
            return;
        }

        try
        {
            int closed = _writer.ReleasePartitionsAsync(partitions).AsTask().GetAwaiter().GetResult();
            if (commit)
            {
                CommitClosed();
            }

            foreach (var key in _positions.Keys.Where(k => partitions.Contains(k.Partition)).ToList())
            {
                _positions.Remove(key);
            }

            if (closed > 0)
            {
                Log(LogLevel.Information, $"archive: partition(s) {string.Join(",", partitions)} {(commit ? "revoked" : "moved")}: closed {closed} file(s) holding their records");
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or Parquet.ParquetException)
        {
            Fail(ex);
        }
    }

    /// <summary>Why the archiver stopped on its own (a write failure), or null while it runs or after a clean stop.</summary>
    public string? Failure => _failure;

    /// <summary>
    /// A write failed: the files being written stay under their temporary names and nothing is committed any more, so
    /// a restarted archiver reads their records again from the last committed offsets. The loop ends.
    /// </summary>
    private void Fail(Exception failure)
    {
        Interlocked.Increment(ref _faults);
        _failure = $"writing under {_options.Directory} failed: {failure.Message}";
        Log(LogLevel.Error, $"archive: {_failure}; the archiver stops, its uncommitted records are read again when it restarts");
    }

    private void PublishStatistics()
    {
        lock (_statisticsLock)
        {
            _writerStatistics = _writer.Statistics;
        }
    }

    /// <summary>Marks, per partition, the offsets below the lowest one still in an open file, and commits them.</summary>
    private void CommitClosed()
    {
        if (_failure is not null)
        {
            return;
        }

        bool marked = false;
        foreach (((string topic, int partition), (long consumed, long committed)) in _positions.ToList())
        {
            long safe = _writer.LowestOpenOffset(topic, partition) is { } lowest ? lowest - 1 : consumed;
            if (safe > committed)
            {
                // MarkProcessed stores offset + 1: the next record to read.
                _consumer.MarkProcessed(new TransportMessage { Topic = topic, Partition = partition, Offset = safe, Value = [] });
                _positions[(topic, partition)] = (consumed, safe);
                marked = true;
            }
        }

        if (marked)
        {
            _consumer.Commit();
            Interlocked.Increment(ref _commits);
            Interlocked.Exchange(ref _lastCommitAt, _options.TimeProvider.GetUtcNow().ToUnixTimeMilliseconds());
        }
    }

    /// <summary>
    /// Counts an undecodable record by its kind. The decode call above discards its error, so the rare failure is
    /// decoded once more here for it (a few microseconds per bad record, nothing per good one).
    /// </summary>
    private void CountUndecodable(DecodeErrorKind kind)
    {
        Interlocked.Increment(ref _undecodable);
        Interlocked.Increment(ref _undecodableByKind[(int)kind]);
    }

    /// <summary>Publishes the consumer's assignment with its lag (no network call: the consumer's last fetch) and our commits.</summary>
    private void RefreshPartitions()
    {
        IReadOnlyList<PartitionLag> lags = _consumer.GetLag();
        var partitions = new ArchivePartition[lags.Count];
        for (int i = 0; i < lags.Count; i++)
        {
            PartitionLag lag = lags[i];
            // Committed holds the last offset marked; the committed position is the one after it.
            long committed = _positions.TryGetValue((lag.Topic, lag.Partition), out var position) && position.Committed >= 0 ? position.Committed + 1 : -1;
            partitions[i] = new ArchivePartition(lag.Topic, lag.Partition, lag.Lag, committed);
        }

        Volatile.Write(ref _partitions, partitions);
    }

    private void Log(LogLevel level, string message)
    {
#pragma warning disable CA1848, CA2254 // Rare path; the message is data.
        _logger?.Log(level, message);
#pragma warning restore CA1848, CA2254
    }
}
