using Monitor.Analysis.State;

namespace Monitor.Analysis;

/// <summary>
/// A count-based sliding window over the last <see cref="Capacity"/> values of a series, with an O(1) running sum.
/// </summary>
/// <remarks>Not thread-safe. The running sum is recomputed from the buffer every <see cref="Capacity"/> additions so
/// floating-point drift cannot accumulate.</remarks>
public sealed class StepWindow
{
    private readonly double[] _values;
    private int _next;
    private int _count;
    private double _sum;
    private long _added;

    /// <summary>Creates an empty window of <paramref name="capacity"/> values (at least 1).</summary>
    public StepWindow(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _values = new double[capacity];
    }

    /// <summary>Values the window holds when full.</summary>
    public int Capacity => _values.Length;

    /// <summary>Values held now.</summary>
    public int Count => _count;

    /// <summary>True when the window holds <see cref="Capacity"/> values.</summary>
    public bool IsFull => _count == _values.Length;

    /// <summary>Values added since creation.</summary>
    public long Added => _added;

    /// <summary>Mean of the values held; NaN when empty.</summary>
    public double Mean => _count == 0 ? double.NaN : _sum / _count;

    /// <summary>The most recent value; NaN when empty.</summary>
    public double Last => _count == 0 ? double.NaN : _values[(_next - 1 + _values.Length) % _values.Length];

    /// <summary>Adds a value, evicting the oldest when full.</summary>
    public void Add(double value)
    {
        if (_count == _values.Length)
        {
            _sum -= _values[_next];
        }
        else
        {
            _count++;
        }

        _values[_next] = value;
        _sum += value;
        _next = (_next + 1) % _values.Length;
        _added++;
        if (_next == 0)
        {
            _sum = 0;
            for (int i = 0; i < _count; i++)
            {
                _sum += _values[i];
            }
        }
    }

    /// <summary>
    /// Writes the window (its values, position and running sum, bit for bit) for an engine snapshot
    /// (<see cref="IStatefulRule"/>).
    /// </summary>
    public void WriteState(ref StateWriter writer)
    {
        writer.WriteVarInt(_values.Length);
        writer.WriteVarInt(_next);
        writer.WriteVarInt(_added);
        writer.WriteDouble(_sum);
        writer.WriteDoubles(_values.AsSpan(0, _count));
    }

    /// <summary>
    /// Reads a window written by <see cref="WriteState"/> into a window of <paramref name="capacity"/> values: the same
    /// window when the capacity is the one written, else (the rule's window was reconfigured) the most recent values
    /// that fit, with the sum recomputed.
    /// </summary>
    /// <exception cref="InvalidDataException">Corrupt or truncated bytes.</exception>
    public static StepWindow ReadState(ref StateReader reader, int capacity)
    {
        var window = new StepWindow(capacity);
        int written = reader.ReadInt32("window capacity", int.MaxValue);
        int next = reader.ReadInt32("window position", int.MaxValue);
        long added = reader.ReadVarInt("window values added", 0, long.MaxValue);
        double sum = reader.ReadDouble("window sum");
        double[] values = reader.ReadDoubles("window values");
        if (written < 1 || values.Length > written || next >= written || (values.Length < written && next != values.Length) || added < values.Length)
        {
            throw reader.Invalid("window", $"{values.Length} values at position {next} do not fit a window of {written} ({added} added)");
        }

        window._added = added;
        if (written == capacity)
        {
            values.CopyTo(window._values, 0);
            (window._next, window._count, window._sum) = (next, values.Length, sum);
            return window;
        }

        // Oldest first: a full ring starts at its next slot.
        int oldest = values.Length == written ? next : 0;
        int keep = Math.Min(values.Length, capacity);
        for (int i = values.Length - keep; i < values.Length; i++)
        {
            window.Add(values[(oldest + i) % values.Length]);
        }

        window._added = added;
        return window;
    }
}
