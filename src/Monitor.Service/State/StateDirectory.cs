using System.Buffers;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Monitor.Service.State;

/// <summary>
/// <c>serve --state-dir</c> is unusable: not writable, locked by another process, or holding the state of another
/// schema version, consumer group or topic. The message says which and what to do.
/// </summary>
public sealed class StateDirectoryException : Exception
{
    /// <summary>Creates the exception.</summary>
    public StateDirectoryException()
    {
    }

    /// <summary>Creates the exception with its message.</summary>
    public StateDirectoryException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with its message and cause.</summary>
    public StateDirectoryException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>Whose state a directory holds: a state is only ever restored by the same group reading the same topic
/// with the same snapshot schema.</summary>
/// <param name="SchemaVersion">The engine's <see cref="Analysis.AnalysisEngine.SnapshotSchemaVersion"/>.</param>
/// <param name="Group">The consumer group.</param>
/// <param name="Topic">The steps topic.</param>
internal readonly record struct StateIdentity(int SchemaVersion, string Group, string Topic);

/// <summary>A generation read back: the offsets it reflects and one snapshot per key.</summary>
/// <param name="Generation">Its number.</param>
/// <param name="NextOffsets">Per (topic, partition), the offset of the first record the state has not seen.</param>
/// <param name="Keys">The keys' snapshots (<see cref="StoredKey.Snapshot"/> null: unreadable, see <see cref="StoredKey.Where"/>).</param>
internal sealed record StoredState(long Generation, IReadOnlyDictionary<(string Topic, int Partition), long> NextOffsets, IReadOnlyList<StoredKey> Keys);

/// <summary>One key of a generation.</summary>
/// <param name="Run">Run id, from the checkpoint.</param>
/// <param name="Rank">Rank, from the checkpoint.</param>
/// <param name="Snapshot">The bytes, or null when they could not be read.</param>
/// <param name="Where">The file and byte range of the bytes; when they could not be read, also why.</param>
internal sealed record StoredKey(string Run, uint Rank, ReadOnlyMemory<byte>? Snapshot, string Where);

/// <summary>
/// The local state store of <c>serve --state-dir</c>, the Kafka Streams way: a directory of generations, each a
/// sub-directory <c>gen-NNNNNNNNNN</c> with <c>snapshots.bin</c> (every key's engine snapshot, back to back) and
/// <c>checkpoint.json</c> (identity, the consumed offsets the snapshots reflect, and where each key's bytes are).
/// </summary>
/// <remarks>
/// <para><b>Atomic.</b> A generation is written into <c>gen-N.tmp</c>, both files flushed to disk (fsync), then renamed
/// to <c>gen-N</c>: a reader sees a whole generation or none. The previous generation is deleted only after the new
/// one is in place (the two newest are kept), so a failed or interrupted save leaves the last good one. A
/// <c>.tmp</c> left by a crash is deleted on open.</para>
/// <para><b>Single process.</b> <c>.lock</c> is held open exclusively while the store is open; a second process on the
/// same directory is refused.</para>
/// <para>Not thread-safe: the service's pipeline thread only.</para>
/// </remarks>
internal sealed partial class StateDirectory : IDisposable
{
    /// <summary>The layout of the directory and its checkpoint (not the snapshots': see the identity's schema version).</summary>
    public const int FormatVersion = 1;

    private const string SnapshotsFile = "snapshots.bin";
    private const string CheckpointFile = "checkpoint.json";
    private const int GenerationsKept = 2;

    private static readonly JsonWriterOptions JsonOptions = new() { Indented = true };

    private readonly FileStream _lock;
    private readonly StateIdentity _identity;
    private readonly TimeProvider _time;
    private long _generation;

    private StateDirectory(string path, FileStream lockFile, StateIdentity identity, TimeProvider time, long generation)
    {
        Path = path;
        _lock = lockFile;
        _identity = identity;
        _time = time;
        _generation = generation;
    }

    /// <summary>The directory (full path).</summary>
    public string Path { get; }

    /// <summary>The newest generation written or found (0: none).</summary>
    public long Generation => _generation;

    /// <summary>
    /// Opens (creating it if needed) and locks the directory, deletes leftovers of an interrupted save, and checks that
    /// the newest readable generation is of <paramref name="identity"/>.
    /// </summary>
    /// <param name="path">The directory; created when missing.</param>
    /// <param name="identity">Whose state it must hold.</param>
    /// <param name="time">Clock of the checkpoints' <c>writtenAt</c>.</param>
    /// <param name="problems">Generations that could not be read (their checkpoint is corrupt): the next older one is
    /// used. Each is a sentence naming the file.</param>
    /// <returns>The store, and the newest readable generation (null: none, start empty).</returns>
    /// <exception cref="StateDirectoryException">Not writable, locked by another process, or another identity's state.</exception>
    public static (StateDirectory Store, StoredState? State) Open(string path, StateIdentity identity, TimeProvider time, out IReadOnlyList<string> problems)
    {
        string full = System.IO.Path.GetFullPath(path);
        FileStream lockFile;
        try
        {
            Directory.CreateDirectory(full);
            lockFile = new FileStream(System.IO.Path.Combine(full, ".lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (Exception ex) when (ex is UnauthorizedAccessException or IOException)
        {
            bool locked = ex is IOException && Directory.Exists(full) && File.Exists(System.IO.Path.Combine(full, ".lock"));
            throw new StateDirectoryException(locked
                ? $"state directory {full} is in use by another process (its .lock is held): one service per state directory"
                : $"state directory {full} is not writable: {ex.Message}", ex);
        }

        try
        {
            ProbeWritable(full);
            foreach (string leftover in Directory.EnumerateDirectories(full, "gen-*.tmp"))
            {
                Directory.Delete(leftover, recursive: true);
            }

            var found = new List<string>();
            StoredState? state = null;
            long newest = 0;
            foreach ((long generation, string directory) in Generations(full).OrderByDescending(g => g.Generation))
            {
                newest = Math.Max(newest, generation);
                try
                {
                    state = Read(directory, generation, identity);
                    break;
                }
                catch (Exception ex) when (ex is JsonException or InvalidDataException or IOException or KeyNotFoundException or InvalidOperationException or FormatException)
                {
                    found.Add($"{System.IO.Path.Combine(directory, CheckpointFile)} cannot be read ({ex.Message}); trying the generation before it");
                }
            }

            problems = found;
            return (new StateDirectory(full, lockFile, identity, time, newest), state);
        }
        catch
        {
            lockFile.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Writes a new generation: every key's snapshot (written by <paramref name="writeSnapshot"/> into the buffer it is
    /// given) and the offsets they reflect, atomically (see the remarks of the type); then deletes generations older
    /// than the previous one.
    /// </summary>
    /// <returns>The size of the snapshots file in bytes.</returns>
    /// <exception cref="IOException">The disk is full or went away: the previous generation stays in force.</exception>
    /// <exception cref="UnauthorizedAccessException">The directory's permissions changed.</exception>
    public long Save(IReadOnlyDictionary<(string Topic, int Partition), long> nextOffsets, IReadOnlyCollection<(string Run, uint Rank)> keys,
        Action<string, uint, IBufferWriter<byte>> writeSnapshot, IReadOnlyList<string> unsnapshottedRules)
    {
        long generation = _generation + 1;
        string final = GenerationPath(generation);
        string temporary = final + ".tmp";
        if (Directory.Exists(temporary))
        {
            Directory.Delete(temporary, recursive: true);
        }

        Directory.CreateDirectory(temporary);
        var ranges = new List<(string Run, uint Rank, long Offset, int Length)>(keys.Count);
        var buffer = new ArrayBufferWriter<byte>(64 * 1024);
        long size;
        try
        {
            using (var snapshots = new FileStream(System.IO.Path.Combine(temporary, SnapshotsFile), FileMode.CreateNew, FileAccess.Write, FileShare.None, 64 * 1024))
            {
                // Sorted, so the same state gives the same file.
                foreach ((string run, uint rank) in keys.OrderBy(k => k.Run, StringComparer.Ordinal).ThenBy(k => k.Rank))
                {
                    buffer.ResetWrittenCount();
                    writeSnapshot(run, rank, buffer);
                    ranges.Add((run, rank, snapshots.Position, buffer.WrittenCount));
                    snapshots.Write(buffer.WrittenSpan);
                }

                size = snapshots.Position;
                snapshots.Flush(flushToDisk: true);
            }

            using (var checkpoint = new FileStream(System.IO.Path.Combine(temporary, CheckpointFile), FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                using (var json = new Utf8JsonWriter(checkpoint, JsonOptions))
                {
                    WriteCheckpoint(json, generation, nextOffsets, ranges, unsnapshottedRules);
                }

                checkpoint.Flush(flushToDisk: true);
            }

            Directory.Move(temporary, final);
        }
        catch
        {
            TryDelete(temporary);
            throw;
        }

        _generation = generation;
        foreach ((long old, string directory) in Generations(Path))
        {
            if (old <= generation - GenerationsKept)
            {
                TryDelete(directory);
            }
        }

        return size;
    }

    /// <summary>Releases the lock.</summary>
    public void Dispose() => _lock.Dispose();

    private string GenerationPath(long generation) =>
        System.IO.Path.Combine(Path, string.Create(CultureInfo.InvariantCulture, $"gen-{generation:D10}"));

    private static IEnumerable<(long Generation, string Directory)> Generations(string path)
    {
        foreach (string directory in Directory.EnumerateDirectories(path, "gen-*"))
        {
            if (GenerationName().Match(System.IO.Path.GetFileName(directory)) is { Success: true } match)
            {
                yield return (long.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture), directory);
            }
        }
    }

    private static void ProbeWritable(string path)
    {
        // The lock file can be opened read-write in a directory that no longer accepts new files (a read-only remount
        // keeps nothing from opening, root ignores modes): the first save would fail much later.
        string probe = System.IO.Path.Combine(path, ".probe-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        try
        {
            File.WriteAllBytes(probe, []);
            File.Delete(probe);
        }
        catch (Exception ex) when (ex is UnauthorizedAccessException or IOException)
        {
            throw new StateDirectoryException($"state directory {path} is not writable: {ex.Message}", ex);
        }
    }

    private void WriteCheckpoint(Utf8JsonWriter json, long generation, IReadOnlyDictionary<(string Topic, int Partition), long> nextOffsets,
        List<(string Run, uint Rank, long Offset, int Length)> ranges, IReadOnlyList<string> unsnapshottedRules)
    {
        json.WriteStartObject();
        json.WriteNumber("format", FormatVersion);
        json.WriteNumber("schemaVersion", _identity.SchemaVersion);
        json.WriteString("group", _identity.Group);
        json.WriteString("topic", _identity.Topic);
        json.WriteNumber("generation", generation);
        json.WriteString("writtenAt", _time.GetUtcNow().ToString("O", CultureInfo.InvariantCulture));
        json.WriteStartArray("offsets");
        foreach (((string topic, int partition), long next) in nextOffsets.OrderBy(o => o.Key.Topic, StringComparer.Ordinal).ThenBy(o => o.Key.Partition))
        {
            json.WriteStartObject();
            json.WriteString("topic", topic);
            json.WriteNumber("partition", partition);
            json.WriteNumber("nextOffset", next);
            json.WriteEndObject();
        }

        json.WriteEndArray();
        json.WriteStartArray("unsnapshottedRules");
        foreach (string rule in unsnapshottedRules)
        {
            json.WriteStringValue(rule);
        }

        json.WriteEndArray();
        json.WriteStartArray("keys");
        foreach ((string run, uint rank, long offset, int length) in ranges)
        {
            json.WriteStartObject();
            json.WriteString("run", run);
            json.WriteNumber("rank", rank);
            json.WriteNumber("offset", offset);
            json.WriteNumber("length", length);
            json.WriteEndObject();
        }

        json.WriteEndArray();
        json.WriteEndObject();
    }

    private static StoredState Read(string directory, long generation, StateIdentity identity)
    {
        string checkpointPath = System.IO.Path.Combine(directory, CheckpointFile);
        using JsonDocument document = JsonDocument.Parse(File.ReadAllBytes(checkpointPath));
        JsonElement root = document.RootElement;
        int format = root.GetProperty("format").GetInt32();
        int schema = root.GetProperty("schemaVersion").GetInt32();
        string group = root.GetProperty("group").GetString() ?? "";
        string topic = root.GetProperty("topic").GetString() ?? "";
        if (format != FormatVersion || schema != identity.SchemaVersion)
        {
            throw new StateDirectoryException(string.Create(CultureInfo.InvariantCulture,
                $"state directory {System.IO.Path.GetDirectoryName(directory)} holds state of format {format}, snapshot schema version {schema}; this service reads format {FormatVersion}, schema version {identity.SchemaVersion}. Use another --state-dir, or delete this one to start from the group's committed offsets with empty state"));
        }

        if (group != identity.Group || topic != identity.Topic)
        {
            throw new StateDirectoryException(
                $"state directory {System.IO.Path.GetDirectoryName(directory)} holds the state of consumer group '{group}' on topic '{topic}', not of group '{identity.Group}' on topic '{identity.Topic}'. Use another --state-dir (one per group and topic)");
        }

        var offsets = new Dictionary<(string Topic, int Partition), long>();
        foreach (JsonElement offset in root.GetProperty("offsets").EnumerateArray())
        {
            offsets[(offset.GetProperty("topic").GetString() ?? "", offset.GetProperty("partition").GetInt32())] = offset.GetProperty("nextOffset").GetInt64();
        }

        string snapshotsPath = System.IO.Path.Combine(directory, SnapshotsFile);
        byte[]? snapshots = null;
        string? unreadable = null;
        try
        {
            snapshots = File.ReadAllBytes(snapshotsPath);
        }
        catch (IOException ex)
        {
            unreadable = ex.Message;
        }

        var keys = new List<StoredKey>();
        foreach (JsonElement key in root.GetProperty("keys").EnumerateArray())
        {
            string run = key.GetProperty("run").GetString() ?? "";
            uint rank = key.GetProperty("rank").GetUInt32();
            long start = key.GetProperty("offset").GetInt64();
            int length = key.GetProperty("length").GetInt32();
            string where = string.Create(CultureInfo.InvariantCulture, $"{snapshotsPath} bytes {start}..{start + length}");
            if (snapshots is null)
            {
                keys.Add(new StoredKey(run, rank, null, $"{snapshotsPath} cannot be read: {unreadable}"));
            }
            else if (start < 0 || length < 0 || start + length > snapshots.Length)
            {
                keys.Add(new StoredKey(run, rank, null, string.Create(CultureInfo.InvariantCulture, $"{where}: the file has only {snapshots.Length} bytes (truncated)")));
            }
            else
            {
                keys.Add(new StoredKey(run, rank, snapshots.AsMemory((int)start, length), where));
            }
        }

        return new StoredState(generation, offsets, keys);
    }

    private static void TryDelete(string directory)
    {
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // An old generation left behind costs disk, not correctness: the newest complete one is always read first.
        }
    }

    [GeneratedRegex(@"^gen-(\d{10})$")]
    private static partial Regex GenerationName();
}
