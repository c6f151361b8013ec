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
}
