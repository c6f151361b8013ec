using System.Globalization;
using Monitor.Contracts.V1;
using Parquet;

namespace Monitor.Archive;

/// <summary>Options of <see cref="ArchiveWriter"/> and <see cref="StepArchiver"/>.</summary>
public sealed class ArchiveOptions
{
    /// <summary>Root directory of the archive. Required; created when missing.</summary>
    public required string Directory { get; init; }

    /// <summary>A file is closed (and a new one opened) once it holds this many bytes. Default 64 MiB.</summary>
    public long MaxFileBytes { get; init; } = 64L * 1024 * 1024;

    /// <summary>A file is closed at the latest this long after it was opened, so recent steps become readable and
    /// their offsets committed. Default 1 minute.</summary>
    public TimeSpan MaxFileAge { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>Rows buffered per open file before they are written as one Parquet row group. Default 8,192.</summary>
    public int RowGroupRows { get; init; } = 8_192;

    /// <summary>
    /// Bound on the rows buffered over all open files, in approximate bytes (a few hundred a row, more with raw values):
    /// past it, the file with the most buffered rows writes them as a row group early. Default 512 MiB, so a thousand
    /// ranks' open files do not hold a thousand full row groups.
    /// </summary>
    public long MaxBufferedBytes { get; init; } = 512L * 1024 * 1024;

    /// <summary>Open files (one per run and rank) at most; the least recently written is closed to open another. Default 4,096.</summary>
    public int MaxOpenFiles { get; init; } = 4_096;

    /// <summary>Closed files older than this (by the time they were opened, in their name) are deleted; null keeps
    /// everything. Default null.</summary>
    public TimeSpan? Retention { get; init; }

    /// <summary>Compression of the column chunks. Default Snappy (what every Parquet reader reads).</summary>
    public CompressionMethod Compression { get; init; } = CompressionMethod.Snappy;

    /// <summary>Clock for file names, rolling and retention. Default <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first unusable setting.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Directory))
        {
            throw new ArgumentException("the archive directory is empty");
        }

        if (MaxFileBytes < 1024)
        {
            throw new ArgumentException("the archive's maximum file size must be at least 1 KiB");
        }

        if (MaxFileAge <= TimeSpan.Zero)
        {
            throw new ArgumentException("the archive's maximum file age must be positive");
        }

        if (RowGroupRows < 1)
        {
            throw new ArgumentException("the archive's row group size must be at least 1 row");
        }

        if (MaxBufferedBytes < 1)
        {
            throw new ArgumentException("the archive's buffer bound must be positive");
        }

        if (MaxOpenFiles < 1)
        {
            throw new ArgumentException("the archive must be allowed at least 1 open file");
        }

        if (Retention is { } retention && retention <= TimeSpan.Zero)
        {
            throw new ArgumentException("the archive's retention must be positive");
        }
    }
}

/// <summary>Where a record came from: its topic, partition and offset (for committing offsets).</summary>
/// <param name="Topic">Topic.</param>
/// <param name="Partition">Partition.</param>
/// <param name="Offset">Offset in the partition.</param>
public readonly record struct ArchiveSource(string Topic, int Partition, long Offset);

/// <summary>Counters of an <see cref="ArchiveWriter"/>.</summary>
/// <param name="Records">Step records appended.</param>
/// <param name="Rows">Rows (tensors) appended.</param>
/// <param name="FilesClosed">Files completed and made visible.</param>
/// <param name="BytesClosed">Bytes of the completed files.</param>
/// <param name="FilesDeleted">Files deleted by retention.</param>
/// <param name="OpenFiles">Files open now.</param>
/// <param name="DuplicatesSkipped">Records read again (after a crash between a file's close and its offsets' commit,
/// or a partition assigned again) and left out because a file already holds them.</param>
public readonly record struct ArchiveWriterStatistics(long Records, long Rows, long FilesClosed, long BytesClosed, long FilesDeleted, int OpenFiles, long DuplicatesSkipped = 0);

/// <summary>
/// Writes step records to Parquet files under <see cref="ArchiveOptions.Directory"/>: one open file per run and rank,
/// <c>{run}/rank-{rank}/part-{opened:yyyyMMddTHHmmssfffZ}-{writer}-{n}.parquet</c>, one row per tensor
/// (<see cref="ArchiveSchema"/>). A file is written under a hidden temporary name (<c>.part-....parquet.tmp</c>) and
/// renamed when complete, so readers globbing <c>*.parquet</c> never see a half-written file.
/// </summary>
/// <remarks>
/// <para>Not thread-safe: one thread appends, rolls and closes (the <see cref="StepArchiver"/> loop).</para>
/// <para>Memory: rows wait in per-file buffers until a row group is full (<see cref="ArchiveOptions.RowGroupRows"/>)
/// or the buffers of all files together pass <see cref="ArchiveOptions.MaxBufferedBytes"/>; written row groups' and
/// closed files' buffers are reused, idle ones kept up to <see cref="ArchiveOptions.MaxBufferedBytes"/> too.</para>
/// <para>Files roll at <see cref="ArchiveOptions.MaxFileBytes"/> (checked after each row group) and
/// <see cref="ArchiveOptions.MaxFileAge"/> (checked by <see cref="RollDueAsync"/>). An I/O failure propagates as
/// <see cref="IOException"/>; the failed file stays under its temporary name and its records' offsets are never
/// committed by the archiver, so they are read again.</para>
/// </remarks>
public sealed class ArchiveWriter : IAsyncDisposable
{
    /// <summary>Extension of completed archive files.</summary>
    public const string FileExtension = ".parquet";

    /// <summary>Extension of files being written.</summary>
    public const string TemporaryExtension = ".tmp";

    private readonly ArchiveOptions _options;
    private readonly Dictionary<(string Run, uint Rank), ArchiveFile> _open = [];
    // Buffers of written row groups and closed files, reused by the next ones: a file's columns grow to a row group's
    // size once, not once per file (files roll every minute per rank at the design load). Idle buffers are kept up to
    // the same bound as buffered rows.
    private readonly BatchPool _spareBatches;
    // A per-writer id in file names, so two archivers writing into one directory never pick the same name.
    private readonly string _writerId = Guid.NewGuid().ToString("N")[..8];
    private long _fileNumber;
    private long _records;
    private long _rows;
    private long _filesClosed;
    private long _bytesClosed;
    private long _filesDeleted;
    private long _duplicatesSkipped;
    // Per run, rank and source partition: the highest offset appended by this writer or found in a closed file's
    // footer (ArchiveSourceRanges). A rank's records are in one partition, in offset order, so a record at or below it
    // is already in a file. A (run, rank) is looked up on disk once, at its first record with a source.
    private readonly Dictionary<(string Run, uint Rank, string Topic, int Partition), long> _archivedThrough = [];
    private readonly HashSet<(string Run, uint Rank)> _lookedUp = [];
    private long _appendTick;
    private long _bufferedBytes;

    /// <summary>Creates the writer; creates the directory.</summary>
    /// <exception cref="ArgumentException">An option is unusable.</exception>
    /// <exception cref="IOException">The directory cannot be created.</exception>
    public ArchiveWriter(ArchiveOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _spareBatches = new BatchPool(options.MaxBufferedBytes);
        System.IO.Directory.CreateDirectory(options.Directory);
    }

    /// <summary>Counters so far.</summary>
    public ArchiveWriterStatistics Statistics => new(_records, _rows, _filesClosed, _bytesClosed, _filesDeleted, _open.Count, _duplicatesSkipped);

    /// <summary>
    /// Appends every tensor of <paramref name="record"/> to its run and rank's open file. With a
    /// <paramref name="source"/>, a record whose offset is at or below one this writer appended, or one a closed file's
    /// footer names for its run, rank and partition (any writer's, in this directory), is left out: it is a copy read
    /// again after a crash or a rebalance (<see cref="ArchiveWriterStatistics.DuplicatesSkipped"/>).
    /// </summary>
    /// <returns>Files closed by this call (the size limit, or the open-file cap).</returns>
    /// <exception cref="IOException">A file cannot be written, or the rank's directory cannot be listed.</exception>
    public async ValueTask<int> AppendAsync(StepRecord record, ArchiveSource? source = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(record);
        if (source is { } origin && await AlreadyArchivedAsync(record, origin, cancellationToken).ConfigureAwait(false))
        {
            _duplicatesSkipped++;
            return 0;
        }

        if (record.RunMetadata.Length > 0)
        {
            WriteMetadata(record);
        }

        if (record.Artifacts.Count > 0)
        {
            AppendArtifacts(record);
        }

        int closed = 0;
        var key = (record.RunId, record.Rank);
        if (_open.TryGetValue(key, out ArchiveFile? file)
            && file.Batch.Rows > 0 && file.Batch.Rows + record.Tensors.Count > _options.RowGroupRows)
        {
            // A row group ends before a record that would overfill it, so the buffers grow to a row group's size and
            // no further (a doubling past it would hold twice the memory, pooled, for every open file).
            if (await FlushAsync(file, cancellationToken).ConfigureAwait(false) == 1)
            {
                closed++;
                file = null;
            }
        }

        if (file is null)
        {
            if (_open.Count >= _options.MaxOpenFiles)
            {
                ArchiveFile oldest = _open.Values.MinBy(f => f.LastAppend)!;
                await CloseAsync(oldest, cancellationToken).ConfigureAwait(false);
                closed++;
            }

            file = await OpenAsync(record.RunId, record.Rank, cancellationToken).ConfigureAwait(false);
            _open.Add(key, file);
        }

        long before = file.Batch.ApproximateBytes;
        file.Batch.Add(record);
        _bufferedBytes += file.Batch.ApproximateBytes - before;
        file.LastAppend = ++_appendTick;
        if (source is { } from)
        {
            file.Holds(from);
        }

        _records++;
        _rows += record.Tensors.Count;
        if (file.Batch.Rows >= _options.RowGroupRows)
        {
            closed += await FlushAsync(file, cancellationToken).ConfigureAwait(false);
        }

        if (_bufferedBytes > _options.MaxBufferedBytes && _open.Count > 0)
        {
            closed += await FlushAsync(_open.Values.MaxBy(f => f.Batch.ApproximateBytes)!, cancellationToken).ConfigureAwait(false);
        }

        return closed;
    }

    private async ValueTask<bool> AlreadyArchivedAsync(StepRecord record, ArchiveSource source, CancellationToken cancellationToken)
    {
        if (!_lookedUp.Contains((record.RunId, record.Rank)))
        {
            if (_lookedUp.Count >= MaxTrackedRanks)
            {
                ForgetRanksWithoutOpenFiles();
            }

            _lookedUp.Add((record.RunId, record.Rank));
            await LookUpClosedFilesAsync(record.RunId, record.Rank, cancellationToken).ConfigureAwait(false);
        }

        var key = (record.RunId, record.Rank, source.Topic, source.Partition);
        if (_archivedThrough.TryGetValue(key, out long through) && source.Offset <= through)
        {
            return true;
        }

        _archivedThrough[key] = source.Offset;
        return false;
    }

    // Bound on the (run, rank)s remembered: past it, those without an open file are forgotten and looked up on disk
    // again at their next record (their closed files' footers hold what this writer had remembered).
    private const int MaxTrackedRanks = 65_536;

    private void ForgetRanksWithoutOpenFiles()
    {
        _lookedUp.RemoveWhere(rank => !_open.ContainsKey(rank));
        foreach (var key in _archivedThrough.Keys.Where(k => !_lookedUp.Contains((k.Run, k.Rank))).ToList())
        {
            _archivedThrough.Remove(key);
        }
    }

    /// <summary>
    /// Reads the source ranges in the footers of a rank's newest closed files (<see cref="LookedUpFiles"/>, by the time
    /// in their names): the files of the writers before this one, of this process or another sharing the directory.
    /// Files written before the footers held ranges add nothing.
    /// </summary>
    private async Task LookUpClosedFilesAsync(string run, uint rank, CancellationToken cancellationToken)
    {
        string directory = Path.Combine(_options.Directory, DirectoryOf(run), "rank-" + rank.ToString(CultureInfo.InvariantCulture));
        List<(string Path, DateTimeOffset Opened)> newest;
        try
        {
            newest = [.. System.IO.Directory.EnumerateFiles(directory, "part-*" + FileExtension)
                .Select(path => (Path: path, Opened: ArchiveFileName.TryParseOpenedAt(Path.GetFileName(path), out DateTimeOffset opened) ? opened : DateTimeOffset.MinValue))
                .OrderByDescending(file => file.Opened)
                .Take(LookedUpFiles)];
        }
        catch (DirectoryNotFoundException)
        {
            return; // a new rank, or its files all deleted by retention
        }

        foreach ((string path, _) in newest)
        {
            IReadOnlyList<ArchiveSourceRange> ranges;
            try
            {
                ranges = await ArchiveSourceRanges.ReadAsync(path, cancellationToken).ConfigureAwait(false);
            }
            catch (FileNotFoundException)
            {
                continue; // deleted by retention meanwhile
            }

            foreach (ArchiveSourceRange range in ranges)
            {
                var key = (run, rank, range.Topic, range.Partition);
                if (!_archivedThrough.TryGetValue(key, out long through) || range.Last > through)
                {
                    _archivedThrough[key] = range.Last;
                }
            }
        }
    }

    /// <summary>Closed files of a rank whose footers are read at its first record: 3. The newest file a writer closed
    /// holds its highest offsets, and files are ordered by the time they were opened, so the newest three cover the
    /// last owners of the rank around a rebalance (each footer read is a file open and about a millisecond, once per rank).</summary>
    internal const int LookedUpFiles = 3;

    /// <summary>Closes the files opened <see cref="ArchiveOptions.MaxFileAge"/> ago or earlier.</summary>
    /// <returns>Files closed.</returns>
    public async ValueTask<int> RollDueAsync(CancellationToken cancellationToken = default)
    {
        DateTimeOffset now = _options.TimeProvider.GetUtcNow();
        int closed = 0;
        foreach (ArchiveFile file in _open.Values.Where(f => now - f.OpenedAt >= _options.MaxFileAge).ToList())
        {
            await CloseAsync(file, cancellationToken).ConfigureAwait(false);
            closed++;
        }

        return closed;
    }

    /// <summary>Closes every open file.</summary>
    /// <returns>Files closed.</returns>
    public async ValueTask<int> CloseAllAsync(CancellationToken cancellationToken = default)
    {
        int closed = 0;
        foreach (ArchiveFile file in _open.Values.ToList())
        {
            await CloseAsync(file, cancellationToken).ConfigureAwait(false);
            closed++;
        }

        return closed;
    }

    /// <summary>
    /// Closes every open file holding a record of one of <paramref name="partitions"/> (of any topic), and forgets what
    /// was appended from them: called when the partitions leave this writer's consumer, so their records are in closed
    /// files (whose offsets can be committed) before another member reads them, and when partitions arrive, so their
    /// ranks' closed files are looked up again (another member may have archived more meanwhile).
    /// </summary>
    /// <returns>Files closed.</returns>
    /// <exception cref="IOException">A file cannot be written.</exception>
    public async ValueTask<int> ReleasePartitionsAsync(IReadOnlyCollection<int> partitions, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(partitions);
        int closed = 0;
        foreach (ArchiveFile file in _open.Values.Where(f => f.Sources.Keys.Any(source => partitions.Contains(source.Partition))).ToList())
        {
            await CloseAsync(file, cancellationToken).ConfigureAwait(false);
            closed++;
        }

        foreach (var key in _archivedThrough.Keys.Where(k => partitions.Contains(k.Partition)).ToList())
        {
            _archivedThrough.Remove(key);
            _lookedUp.Remove((key.Run, key.Rank));
        }

        return closed;
    }

    /// <summary>
    /// The lowest offset of <paramref name="topic"/>[<paramref name="partition"/>] held by an open file, or null
    /// when no open file holds a record of that partition: offsets below it are in closed files.
    /// </summary>
    public long? LowestOpenOffset(string topic, int partition)
    {
        long? lowest = null;
        foreach (ArchiveFile file in _open.Values)
        {
            if (file.Sources.TryGetValue((topic, partition), out var range) && (lowest is null || range.First < lowest))
            {
                lowest = range.First;
            }
        }

        return lowest;
    }

    /// <summary>
    /// Deletes closed files older than <see cref="ArchiveOptions.Retention"/> (by the time in their name), temporary
    /// files of crashed writers (older than four file ages), and emptied directories. Does nothing without retention,
    /// except the temporary files.
    /// </summary>
    /// <returns>Files deleted.</returns>
    public int DeleteExpired()
    {
        DateTimeOffset now = _options.TimeProvider.GetUtcNow();
        int deleted = 0;
        if (!System.IO.Directory.Exists(_options.Directory))
        {
            return 0;
        }

        foreach (string path in System.IO.Directory.EnumerateFiles(_options.Directory, "*", SearchOption.AllDirectories))
        {
            string name = Path.GetFileName(path);
            bool temporary = name.EndsWith(TemporaryExtension, StringComparison.Ordinal);
            if (!ArchiveFileName.TryParseOpenedAt(temporary ? name[1..^TemporaryExtension.Length] : name, out DateTimeOffset opened)
                || (temporary && _open.Values.Any(f => f.TemporaryPath == path)))
            {
                continue;
            }

            bool expired = temporary
                ? now - opened > 4 * _options.MaxFileAge + TimeSpan.FromHours(1)
                : _options.Retention is { } retention && now - opened > retention;
            if (!expired)
            {
                continue;
            }

            try
            {
                File.Delete(path);
                deleted++;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Another archiver deleted it first, or it is not ours to delete: try again next time.
            }
        }

        foreach (string directory in System.IO.Directory.EnumerateDirectories(_options.Directory, "*", SearchOption.AllDirectories)
            .OrderByDescending(d => d.Length).ToList())
        {
            try
            {
                if (!System.IO.Directory.EnumerateFileSystemEntries(directory).Any())
                {
                    System.IO.Directory.Delete(directory);
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Being written into again: keep it.
            }
        }

        _filesDeleted += deleted;
        return deleted;
    }

    /// <summary>Closes every open file.</summary>
    public async ValueTask DisposeAsync() => await CloseAllAsync().ConfigureAwait(false);

    /// <summary>The directory name of a run: the run id, except that "." and ".." (valid run ids) get a leading "_".</summary>
    /// <summary>
    /// Writes the run metadata a rank's first record carries to <c>{run}/rank-{rank}/run.json</c> (replacing an earlier
    /// run's under the same id), through a temporary file so readers never see half of it. Written at once, not with
    /// the Parquet files: a record read again after a crash writes it again, the same document. Retention leaves it.
    /// </summary>
    private void WriteMetadata(StepRecord record)
    {
        string directory = Path.Combine(_options.Directory, DirectoryOf(record.RunId), "rank-" + record.Rank.ToString(CultureInfo.InvariantCulture));
        System.IO.Directory.CreateDirectory(directory);
        string path = Path.Combine(directory, MetadataFileName);
        string temporary = Path.Combine(directory, "." + MetadataFileName + "." + _writerId + TemporaryExtension);
        File.WriteAllText(temporary, record.RunMetadata);
        File.Move(temporary, path, overwrite: true);
    }

    /// <summary>
    /// Appends the artifact events a record carries to <c>{run}/rank-{rank}/artifacts.jsonl</c>, one JSON line each
    /// (<see cref="Monitor.Contracts.ArtifactRecord"/>). A record read again after a crash appends them again:
    /// <see cref="ArchiveRuns.ReadArtifacts"/> drops such repeats.
    /// </summary>
    private void AppendArtifacts(StepRecord record)
    {
        string directory = Path.Combine(_options.Directory, DirectoryOf(record.RunId), "rank-" + record.Rank.ToString(CultureInfo.InvariantCulture));
        System.IO.Directory.CreateDirectory(directory);
        File.AppendAllLines(Path.Combine(directory, ArtifactsFileName), record.Artifacts.Select(a =>
            System.Text.Json.JsonSerializer.Serialize(Monitor.Contracts.ArtifactRecord.From((int)record.Rank, a), Monitor.Contracts.SelectionJson.Options)));
    }

    /// <summary>Name of a rank's artifact events file in its directory (JSON lines of <see cref="Monitor.Contracts.ArtifactRecord"/>).</summary>
    public const string ArtifactsFileName = "artifacts.jsonl";

    /// <summary>Name of a rank's run metadata file in its directory (<see cref="Monitor.Contracts.RunMetadata"/> JSON).</summary>
    public const string MetadataFileName = "run.json";

    internal static string DirectoryOf(string run) => run is "." or ".." ? "_" + run : run;

    private async Task<ArchiveFile> OpenAsync(string run, uint rank, CancellationToken cancellationToken)
    {
        string directory = Path.Combine(_options.Directory, DirectoryOf(run), "rank-" + rank.ToString(CultureInfo.InvariantCulture));
        System.IO.Directory.CreateDirectory(directory);
        DateTimeOffset now = _options.TimeProvider.GetUtcNow();
        string name = ArchiveFileName.Format(now, _writerId, ++_fileNumber);
        string finalPath = Path.Combine(directory, name);
        string temporaryPath = Path.Combine(directory, "." + name + TemporaryExtension);
        var stream = new FileStream(temporaryPath, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16);
        try
        {
            ParquetWriter writer = await ParquetWriter.CreateAsync(
                ArchiveSchema.Parquet, stream, ArchiveSchema.WriterOptions(_options.Compression), cancellationToken: cancellationToken).ConfigureAwait(false);
            return new ArchiveFile(run, rank, stream, writer, temporaryPath, finalPath, now, _spareBatches);
        }
        catch
        {
            await stream.DisposeAsync().ConfigureAwait(false);
            File.Delete(temporaryPath);
            throw;
        }
    }

    /// <summary>Writes a file's buffered rows as a row group; closes it when that made it reach the size limit.</summary>
    /// <returns>1 when the file was closed, else 0.</returns>
    private async Task<int> FlushAsync(ArchiveFile file, CancellationToken cancellationToken)
    {
        _bufferedBytes -= file.Batch.ApproximateBytes;
        await file.FlushRowGroupAsync(cancellationToken).ConfigureAwait(false);
        if (file.Length >= _options.MaxFileBytes)
        {
            await CloseAsync(file, cancellationToken).ConfigureAwait(false);
            return 1;
        }

        return 0;
    }

    private async Task CloseAsync(ArchiveFile file, CancellationToken cancellationToken)
    {
        _open.Remove((file.Run, file.Rank));
        _bufferedBytes -= file.Batch.ApproximateBytes;
        long bytes = await file.CompleteAsync(cancellationToken).ConfigureAwait(false);

        _filesClosed++;
        _bytesClosed += bytes;
    }

    /// <summary>Buffers of written row groups, for reuse (thread-safe: the background writes return them).</summary>
    /// <remarks>Bounded by the bytes of the buffers kept, not their number: at the design load every open file (one per
    /// rank) needs two (one filling, one being written), and a count bound of 64 had the writer allocate and grow about
    /// 2 GB of fresh buffers per million rows once more than 32 ranks rolled together.</remarks>
    private sealed class BatchPool(long maxBytes)
    {
        private readonly Stack<ArchiveBatch> _batches = new();
        private readonly Lock _lock = new();
        private long _bytes;

        public ArchiveBatch Take()
        {
            lock (_lock)
            {
                if (_batches.TryPop(out ArchiveBatch? batch))
                {
                    _bytes -= batch.CapacityBytes;
                    return batch;
                }
            }

            return new ArchiveBatch();
        }

        public void Return(ArchiveBatch batch)
        {
            batch.Clear();
            long bytes = batch.CapacityBytes;
            lock (_lock)
            {
                if (_bytes + bytes <= maxBytes)
                {
                    _batches.Push(batch);
                    _bytes += bytes;
                }
            }
        }
    }

    /// <summary>
    /// One open file: its temporary and final paths, the Parquet writer and the rows not yet written. A full row group
    /// is encoded and written on the thread pool while the archiver's thread goes on filling the next one (one write
    /// in flight per file, so the file's row groups stay in order); its failure surfaces at the next flush or the close.
    /// </summary>
    private sealed class ArchiveFile(string run, uint rank, FileStream stream, ParquetWriter writer, string temporaryPath, string finalPath, DateTimeOffset openedAt, BatchPool pool)
    {
        private Task _pending = Task.CompletedTask;
        private long _writtenLength;

        public ArchiveBatch Batch { get; private set; } = pool.Take();

        public string TemporaryPath { get; } = temporaryPath;

        public DateTimeOffset OpenedAt { get; } = openedAt;

        /// <summary>Per source partition, the lowest and highest offset of the records appended.</summary>
        public Dictionary<(string Topic, int Partition), (long First, long Last)> Sources { get; } = [];

        public long LastAppend { get; set; }

        public string Run { get; } = run;

        public uint Rank { get; } = rank;

        /// <summary>Bytes in the file after the last row group whose write completed (the size roll lags one row group).</summary>
        public long Length => Interlocked.Read(ref _writtenLength);

        public void Holds(ArchiveSource source)
        {
            var key = (source.Topic, source.Partition);
            Sources[key] = Sources.TryGetValue(key, out var range) ? (range.First, Math.Max(range.Last, source.Offset)) : (source.Offset, source.Offset);
        }

        /// <summary>Hands the buffered rows to a background write (after the previous one completed).</summary>
        public async Task FlushRowGroupAsync(CancellationToken cancellationToken)
        {
            await _pending.ConfigureAwait(false);
            if (Batch.Rows == 0)
            {
                return;
            }

            ArchiveBatch full = Batch;
            Batch = pool.Take();
            _pending = Task.Run(
                async () =>
                {
                    try
                    {
                        await full.WriteAsync(writer, cancellationToken).ConfigureAwait(false);
                        Interlocked.Exchange(ref _writtenLength, stream.Length);
                    }
                    finally
                    {
                        pool.Return(full);
                    }
                },
                CancellationToken.None);
        }

        /// <summary>Writes the last rows and the footer, makes the bytes durable, then gives the file its final name.</summary>
        public async Task<long> CompleteAsync(CancellationToken cancellationToken)
        {
            try
            {
                await FlushRowGroupAsync(cancellationToken).ConfigureAwait(false);
                await _pending.ConfigureAwait(false);
                if (Sources.Count > 0)
                {
                    writer.CustomMetadata = ArchiveSourceRanges.Metadata(Sources.Select(s => new ArchiveSourceRange(s.Key.Topic, s.Key.Partition, s.Value.First, s.Value.Last)));
                }

                await writer.DisposeAsync().ConfigureAwait(false);
                // Durable before it is visible: a crash after the rename must not leave a truncated file behind a final name.
                stream.Flush(flushToDisk: true);
            }
            finally
            {
                pool.Return(Batch);
                await stream.DisposeAsync().ConfigureAwait(false);
            }

            File.Move(TemporaryPath, finalPath);
            return new FileInfo(finalPath).Length;
        }
    }
}

/// <summary>Names of archive files: <c>part-{opened:yyyyMMddTHHmmssfffZ}-{writer}-{n:D6}.parquet</c>.</summary>
internal static class ArchiveFileName
{
    private const string TimeFormat = "yyyyMMdd'T'HHmmssfff'Z'";

    public static string Format(DateTimeOffset openedAt, string writerId, long number) =>
        string.Create(CultureInfo.InvariantCulture, $"part-{openedAt.UtcDateTime.ToString(TimeFormat, CultureInfo.InvariantCulture)}-{writerId}-{number:D6}{ArchiveWriter.FileExtension}");

    public static bool TryParseOpenedAt(string name, out DateTimeOffset openedAt)
    {
        openedAt = default;
        const int timeLength = 19;
        return name.StartsWith("part-", StringComparison.Ordinal)
            && name.EndsWith(ArchiveWriter.FileExtension, StringComparison.Ordinal)
            && name.Length > 5 + timeLength
            && DateTimeOffset.TryParseExact(name.AsSpan(5, timeLength), TimeFormat, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out openedAt);
    }
}
