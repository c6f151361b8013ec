using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;

namespace Monitor.Analysis.State;

/// <summary>Writes one value of a rule's per-series state.</summary>
public delegate void StateWrite<in T>(ref StateWriter writer, T value);

/// <summary>Reads one value of a rule's per-series state.</summary>
public delegate T StateRead<out T>(ref StateReader reader);

/// <summary>Restore actions shared by rules.</summary>
public static class StateRestore
{
    /// <summary>An action that changes nothing: the restore of a rule that keeps no state.</summary>
    public static Action None { get; } = static () => { };
}

/// <summary>Writes and reads a dictionary keyed by name, sorted by name so the bytes are deterministic.</summary>
public static class StateByName
{
    private static readonly Comparison<string> OrdinalOrder = string.CompareOrdinal;

    /// <summary>Writes a count, then each name and value in ordinal order of the names. Allocates nothing (the sort
    /// buffer is pooled) when <paramref name="write"/> is a static lambda.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="entries"/> or <paramref name="write"/> is null.</exception>
    public static void Write<T>(Dictionary<string, T> entries, ref StateWriter writer, StateWrite<T> write)
    {
        ArgumentNullException.ThrowIfNull(entries);
        ArgumentNullException.ThrowIfNull(write);
        string[] names = ArrayPool<string>.Shared.Rent(Math.Max(1, entries.Count));
        try
        {
            WriteSorted(entries, names, ref writer, write);
        }
        finally
        {
            ArrayPool<string>.Shared.Return(names, clearArray: true);
        }
    }

    /// <summary><see cref="Write"/> with a sort buffer of the caller's, grown when too small.</summary>
    internal static void WriteWith<T>(Dictionary<string, T> entries, ref string[] scratch, ref StateWriter writer, StateWrite<T> write)
    {
        if (scratch.Length < entries.Count)
        {
            scratch = new string[Math.Max(entries.Count, 2 * scratch.Length)];
        }

        WriteSorted(entries, scratch, ref writer, write);
        // No references kept to names the rule may forget.
        Array.Clear(scratch, 0, entries.Count);
    }

    private static void WriteSorted<T>(Dictionary<string, T> entries, string[] buffer, ref StateWriter writer, StateWrite<T> write)
    {
        entries.Keys.CopyTo(buffer, 0);
        Span<string> sorted = buffer.AsSpan(0, entries.Count);
        // A Comparison, not StringComparer.Ordinal: sorting a span with an IComparer allocates a delegate per call.
        sorted.Sort(OrdinalOrder);
        writer.WriteVarUInt((ulong)sorted.Length);
        foreach (string name in sorted)
        {
            writer.WriteString(name);
            write(ref writer, entries[name]);
        }
    }

    /// <summary>Reads what <see cref="Write"/> wrote into a new dictionary (ordinal keys).</summary>
    /// <exception cref="ArgumentNullException"><paramref name="read"/> is null.</exception>
    /// <exception cref="InvalidDataException">Corrupt or truncated bytes, or names out of order or repeated.</exception>
    public static Dictionary<string, T> Read<T>(ref StateReader reader, string what, StateRead<T> read)
    {
        ArgumentNullException.ThrowIfNull(read);
        int count = reader.ReadCount(what, 2);
        var entries = new Dictionary<string, T>(count, StringComparer.Ordinal);
        string? previous = null;
        for (int i = 0; i < count; i++)
        {
            string name = reader.ReadString(what);
            if (previous is not null && string.CompareOrdinal(previous, name) >= 0)
            {
                throw reader.Invalid(what, $"'{name}' is out of order or repeated");
            }

            previous = name;
            entries[name] = read(ref reader);
        }

        return entries;
    }
}

/// <summary>
/// What a rule keeps per series (<see cref="SeriesKey"/>: run, rank, tensor), grouped by (run, rank), so that what
/// the engine does per key (<see cref="ITrainingRule.ForgetRank"/>, snapshots) costs the key's own series, not every
/// series of every rank. The one way rules keep per-series state and snapshot it (<see cref="IStatefulRule"/>).
/// </summary>
/// <remarks>
/// Not thread-safe (owned by one rule). A lookup costs one string hash (the tensor's): the table remembers the last
/// rank it was asked about, and a record's tensors all belong to one rank. Once a series exists, looking it up and
/// writing a snapshot allocate nothing (the snapshot's sort buffer is kept; pass static lambdas as value writers).
/// </remarks>
/// <typeparam name="T">The state of one series.</typeparam>
public sealed class SeriesTable<T>
{
    private readonly Dictionary<(string Run, uint Rank), Dictionary<string, T>> _ranks = [];
    private string? _lastRun;
    private uint _lastRank;
    private Dictionary<string, T>? _last;
    // The tensor names of a key, sorted for a snapshot (a buffer of the table's own: a rule's values may use the pool).
    private string[] _names = [];

    /// <summary>Series held, over every rank.</summary>
    public int Count { get; private set; }

    /// <summary>Whether the table holds a series of <paramref name="rank"/> of <paramref name="run"/>.</summary>
    public bool Holds(string run, uint rank) => _ranks.TryGetValue((run, rank), out Dictionary<string, T>? inner) && inner.Count > 0;

    /// <summary>The state of <paramref name="key"/>; setting it adds or replaces it.</summary>
    /// <exception cref="KeyNotFoundException">Getting a series that is not held.</exception>
    public T this[SeriesKey key]
    {
        get => TryGetValue(key, out T? value) ? value : throw new KeyNotFoundException($"no series {key}");
        set
        {
            Dictionary<string, T> inner = Inner(key.Run, key.Rank, create: true)!;
            ref T? slot = ref CollectionsMarshal.GetValueRefOrAddDefault(inner, key.Tensor, out bool exists);
            Count += exists ? 0 : 1;
            slot = value;
        }
    }

    /// <summary>Looks a series up.</summary>
    public bool TryGetValue(SeriesKey key, [MaybeNullWhen(false)] out T value)
    {
        if (Inner(key.Run, key.Rank, create: false) is { } inner)
        {
            return inner.TryGetValue(key.Tensor, out value);
        }

        value = default;
        return false;
    }

    /// <summary>
    /// A reference to the state of <paramref name="key"/>, added as <c>default</c> when absent
    /// (as <c>CollectionsMarshal.GetValueRefOrAddDefault</c>): valid until the table changes next.
    /// </summary>
    public ref T? GetValueRefOrAddDefault(SeriesKey key, out bool exists)
    {
        Dictionary<string, T> inner = Inner(key.Run, key.Rank, create: true)!;
        ref T? slot = ref CollectionsMarshal.GetValueRefOrAddDefault(inner, key.Tensor, out exists);
        Count += exists ? 0 : 1;
        return ref slot;
    }

    /// <summary>Removes a series; false when it was not held.</summary>
    public bool Remove(SeriesKey key)
    {
        if (Inner(key.Run, key.Rank, create: false)?.Remove(key.Tensor) != true)
        {
            return false;
        }

        Count--;
        return true;
    }

    /// <summary>Removes every series of one rank of a run.</summary>
    public void Forget(string run, uint rank)
    {
        if (_ranks.Remove((run, rank), out Dictionary<string, T>? inner))
        {
            Count -= inner.Count;
            if (ReferenceEquals(inner, _last))
            {
                (_lastRun, _last) = (null, null);
            }
        }
    }

    /// <summary>
    /// Writes the series of <paramref name="run"/>/<paramref name="rank"/>, sorted by tensor name (deterministic
    /// bytes): a count, then each tensor name and value; nothing at all when the key has none (so the engine leaves
    /// the rule's section out).
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="write"/> is null.</exception>
    public void WriteState(string run, uint rank, ref StateWriter writer, StateWrite<T> write)
    {
        ArgumentNullException.ThrowIfNull(write);
        if (_ranks.TryGetValue((run, rank), out Dictionary<string, T>? inner) && inner.Count > 0)
        {
            StateByName.WriteWith(inner, ref _names, ref writer, write);
        }
    }

    /// <summary>
    /// Reads what <see cref="WriteState"/> wrote (no bytes: no series) without changing the table; returns the action
    /// that replaces the series of <paramref name="run"/>/<paramref name="rank"/> with it.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="read"/> is null.</exception>
    /// <exception cref="InvalidDataException">Corrupt or truncated bytes, or tensors out of order or repeated.</exception>
    public Action ReadState(string run, uint rank, ref StateReader reader, StateRead<T> read)
    {
        ArgumentNullException.ThrowIfNull(read);
        Dictionary<string, T> entries = reader.Remaining == 0 ? [] : StateByName.Read(ref reader, "tensor", read);
        return () =>
        {
            Forget(run, rank);
            if (entries.Count > 0)
            {
                _ranks[(run, rank)] = entries;
                Count += entries.Count;
            }
        };
    }

    private Dictionary<string, T>? Inner(string run, uint rank, bool create)
    {
        if (_last is not null && rank == _lastRank && (ReferenceEquals(run, _lastRun) || run == _lastRun))
        {
            return _last;
        }

        if (!_ranks.TryGetValue((run, rank), out Dictionary<string, T>? inner))
        {
            if (!create)
            {
                return null;
            }

            inner = new Dictionary<string, T>(StringComparer.Ordinal);
            _ranks[(run, rank)] = inner;
        }

        (_lastRun, _lastRank, _last) = (run, rank, inner);
        return inner;
    }
}
