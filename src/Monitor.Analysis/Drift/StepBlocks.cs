using Monitor.Analysis.State;

namespace Monitor.Analysis.Drift;

/// <summary>
/// The sampled examples of the last steps of one series: a ring of step blocks, each the rows one record contributed
/// (row-major over the monitored columns). Arrays are reused as the ring turns, so a steady stream allocates nothing.
/// </summary>
/// <remarks>Plain data (arrays and counters), so the engine's state can be snapshotted. Not thread-safe.</remarks>
internal sealed class StepBlocks
{
    private readonly float[][] _values;
    private readonly int[] _rows;
    private readonly long[] _steps;
    private readonly int _columns;
    private int _start;

    public StepBlocks(int capacity, int rowsPerStep, int columns)
    {
        _values = new float[capacity][];
        _rows = new int[capacity];
        _steps = new long[capacity];
        _columns = columns;
        RowsPerStep = rowsPerStep;
    }

    /// <summary>Blocks held (at most the capacity).</summary>
    public int Count { get; private set; }

    /// <summary>Largest number of rows a block holds.</summary>
    public int RowsPerStep { get; }

    /// <summary>Appends a block for <paramref name="step"/>, dropping the oldest when full; returns its row buffer.</summary>
    public Span<float> Append(long step, int rows)
    {
        int slot;
        if (Count < _values.Length)
        {
            slot = (_start + Count) % _values.Length;
            Count++;
        }
        else
        {
            slot = _start;
            _start = (_start + 1) % _values.Length;
        }

        _values[slot] ??= new float[RowsPerStep * _columns];
        _rows[slot] = rows;
        _steps[slot] = step;
        return _values[slot].AsSpan(0, rows * _columns);
    }

    /// <summary>The rows of the <paramref name="index"/>-th block, oldest first.</summary>
    public ReadOnlySpan<float> Block(int index)
    {
        int slot = (_start + index) % _values.Length;
        return _values[slot].AsSpan(0, _rows[slot] * _columns);
    }

    /// <summary>The step of the <paramref name="index"/>-th block, oldest first.</summary>
    public long StepOf(int index) => _steps[(_start + index) % _values.Length];

    /// <summary>Rows in blocks <paramref name="from"/> (inclusive) to <paramref name="to"/> (exclusive).</summary>
    public int RowsIn(int from, int to)
    {
        int rows = 0;
        for (int i = from; i < to; i++)
        {
            rows += _rows[(_start + i) % _values.Length];
        }

        return rows;
    }

    /// <summary>
    /// Copies the finite values of every column of blocks <paramref name="from"/> to <paramref name="to"/> in one pass:
    /// column c goes to <c>destination[c·stride ..]</c> (<paramref name="stride"/> at least <see cref="RowsIn"/>), and
    /// <c>counts[c]</c> says how many it got. One pass over the blocks instead of one per column, whose per-block
    /// overhead (the ring's index, the span) would otherwise be paid per column.
    /// </summary>
    public void GatherColumns(int from, int to, Span<double> destination, int stride, Span<int> counts)
    {
        counts[.._columns].Clear();
        for (int i = from; i < to; i++)
        {
            ReadOnlySpan<float> block = Block(i);
            for (int start = 0; start + _columns <= block.Length; start += _columns)
            {
                ReadOnlySpan<float> row = block.Slice(start, _columns);
                for (int c = 0; c < row.Length; c++)
                {
                    float value = row[c];
                    if (float.IsFinite(value))
                    {
                        destination[(c * stride) + counts[c]++] = value;
                    }
                }
            }
        }
    }

    /// <summary>
    /// Copies the rows of blocks <paramref name="from"/> to <paramref name="to"/> whose every column is finite into
    /// <paramref name="destination"/> (row-major); returns how many rows.
    /// </summary>
    public int GatherRows(int from, int to, Span<double> destination)
    {
        int rows = 0;
        for (int i = from; i < to; i++)
        {
            ReadOnlySpan<float> block = Block(i);
            for (int start = 0; start + _columns <= block.Length; start += _columns)
            {
                ReadOnlySpan<float> row = block.Slice(start, _columns);
                if (!AllFinite(row))
                {
                    continue;
                }

                Span<double> target = destination.Slice(rows * _columns, _columns);
                for (int c = 0; c < _columns; c++)
                {
                    target[c] = row[c];
                }

                rows++;
            }
        }

        return rows;
    }

    /// <summary>
    /// Writes the blocks, oldest first: their count, then per block its step (the first as it is, the others as the
    /// difference from the one before: mostly one byte) and its values (<see cref="StateWriter.WriteSingles"/>).
    /// </summary>
    public void WriteState(ref StateWriter writer)
    {
        writer.WriteVarUInt((ulong)Count);
        long previous = 0;
        for (int i = 0; i < Count; i++)
        {
            long step = StepOf(i);
            writer.WriteVarInt(unchecked(step - previous));
            writer.WriteSingles(Block(i));
            previous = step;
        }
    }

    /// <summary>Reads what <see cref="WriteState"/> wrote, as (step, values) per block, oldest first.</summary>
    public static (long Step, float[] Values)[] ReadState(ref StateReader reader)
    {
        var blocks = new (long Step, float[] Values)[reader.ReadCount("blocks", 2)];
        long previous = 0;
        for (int i = 0; i < blocks.Length; i++)
        {
            previous = unchecked(previous + reader.ReadVarInt("block step"));
            blocks[i] = (previous, reader.ReadSingles("block values"));
        }

        return blocks;
    }

    /// <summary>
    /// Appends blocks read by <see cref="ReadState"/> to these (empty) blocks; false, appending nothing, when they do
    /// not fit: more blocks than the capacity, or a block that is not whole rows of these columns or has more rows
    /// than <see cref="RowsPerStep"/> (written under other parameters).
    /// </summary>
    public bool TryRestore((long Step, float[] Values)[] blocks)
    {
        if (blocks.Length > _values.Length)
        {
            return false;
        }

        foreach ((long _, float[] values) in blocks)
        {
            if (values.Length % _columns != 0 || values.Length / _columns > RowsPerStep)
            {
                return false;
            }
        }

        foreach ((long step, float[] values) in blocks)
        {
            values.CopyTo(Append(step, values.Length / _columns));
        }

        return true;
    }

    private static bool AllFinite(ReadOnlySpan<float> row)
    {
        foreach (float value in row)
        {
            if (!float.IsFinite(value))
            {
                return false;
            }
        }

        return true;
    }
}
