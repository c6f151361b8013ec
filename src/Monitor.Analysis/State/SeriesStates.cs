using System.Buffers;

namespace Monitor.Analysis.State;

/// <summary>Writes one value of a rule's per-series state.</summary>
public delegate void StateWrite<in T>(ref StateWriter writer, T value);

/// <summary>Reads one value of a rule's per-series state.</summary>
public delegate T StateRead<out T>(ref StateReader reader);

/// <summary>
/// The one way rules snapshot the per-series state they keep in a <c>Dictionary&lt;SeriesKey, T&gt;</c>: the entries of
/// one (run, rank), sorted by tensor name (so the bytes are deterministic), each as its tensor name and value.
/// </summary>
/// <remarks>Writing scans the dictionary (like <see cref="ITrainingRule.ForgetRank"/>) and rents its sort buffer from
/// <see cref="ArrayPool{T}"/>; the value delegates should be static lambdas, so a write allocates nothing.</remarks>
public static class SeriesStates
{
    /// <summary>Writes the entries of <paramref name="run"/>/<paramref name="rank"/>: a count, then tensor name and value
    /// each; nothing at all when there are none.</summary>
    public static void Write<T>(Dictionary<SeriesKey, T> series, string run, uint rank, ref StateWriter writer, StateWrite<T> write)
    {
        ArgumentNullException.ThrowIfNull(series);
        ArgumentNullException.ThrowIfNull(write);
        SeriesKey[] keys = ArrayPool<SeriesKey>.Shared.Rent(Math.Max(1, series.Count));
        try
        {
            int count = 0;
            foreach (SeriesKey key in series.Keys)
            {
                if (key.Rank == rank && key.Run == run)
                {
                    keys[count++] = key;
                }
            }

            if (count == 0)
            {
                // Nothing kept for the key: no bytes, so the engine leaves the rule's section out.
                return;
            }

            Span<SeriesKey> mine = keys.AsSpan(0, count);
            mine.Sort(static (a, b) => string.CompareOrdinal(a.Tensor, b.Tensor));
            writer.WriteVarUInt((ulong)count);
            foreach (SeriesKey key in mine)
            {
                writer.WriteString(key.Tensor);
                write(ref writer, series[key]);
            }
        }
        finally
        {
            ArrayPool<SeriesKey>.Shared.Return(keys, clearArray: true);
        }
    }

    /// <summary>
    /// Reads what <see cref="Write"/> wrote; returns the action that replaces the entries of
    /// <paramref name="run"/>/<paramref name="rank"/> in <paramref name="series"/> with them.
    /// </summary>
    /// <exception cref="InvalidDataException">Corrupt or truncated bytes, or a tensor named twice.</exception>
    public static Action Read<T>(Dictionary<SeriesKey, T> series, string run, uint rank, ref StateReader reader, StateRead<T> read)
    {
        ArgumentNullException.ThrowIfNull(series);
        ArgumentNullException.ThrowIfNull(read);
        int count = reader.Remaining == 0 ? 0 : reader.ReadCount("series count", 2);
        var entries = new List<(SeriesKey Key, T Value)>(count);
        string? previous = null;
        for (int i = 0; i < count; i++)
        {
            string tensor = reader.ReadString("tensor name");
            if (previous is not null && string.CompareOrdinal(previous, tensor) >= 0)
            {
                throw reader.Invalid("tensor name", $"'{tensor}' is out of order or repeated");
            }

            previous = tensor;
            entries.Add((new SeriesKey(run, rank, tensor), read(ref reader)));
        }

        return () =>
        {
            Forget(series, run, rank);
            foreach ((SeriesKey key, T value) in entries)
            {
                series[key] = value;
            }
        };
    }

    /// <summary>Removes the entries of one rank of a run.</summary>
    public static void Forget<T>(Dictionary<SeriesKey, T> series, string run, uint rank)
    {
        ArgumentNullException.ThrowIfNull(series);
        foreach (SeriesKey key in series.Keys)
        {
            if (key.Rank == rank && key.Run == run)
            {
                // Removing while enumerating is allowed for Dictionary since .NET Core 3.0.
                series.Remove(key);
            }
        }
    }

    /// <summary>An action that changes nothing: the state of a rule that keeps none, or that starts empty.</summary>
    public static Action Nothing { get; } = static () => { };
}
