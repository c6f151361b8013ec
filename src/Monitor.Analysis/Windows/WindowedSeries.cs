using Monitor.Analysis.State;

namespace Monitor.Analysis.Windows;

/// <summary>
/// Windows over one series' values (one per key: run, rank, tensor), as specified by a <see cref="WindowSpec"/>,
/// emitting each window with its aggregate when it closes.
/// </summary>
/// <remarks>Not thread-safe (owned by one rule). Memory per key is bounded by the values of one window.</remarks>
public sealed class WindowedSeries
{
    private readonly WindowSpec _spec;
    private readonly WindowAggregate _aggregate;
    private readonly SeriesTable<State> _series = new();

    /// <summary>Creates the windows of every key for one specification and aggregate.</summary>
    public WindowedSeries(WindowSpec spec, WindowAggregate aggregate)
    {
        ArgumentNullException.ThrowIfNull(spec);
        _spec = spec.EnsureValid();
        _aggregate = aggregate;
    }

    /// <summary>Values dropped because their window had already closed (late beyond the grace).</summary>
    public long LateValues { get; private set; }

    /// <summary>Forgets the windows of one rank of a run (its run ended, or its steps started over).</summary>
    public void Forget(string run, uint rank) => _series.Forget(run, rank);

    /// <summary>
    /// Adds a value of <paramref name="key"/> at <paramref name="step"/> / <paramref name="time"/>; the windows it closes
    /// are appended to <paramref name="closed"/>, oldest first.
    /// </summary>
    public void Add(SeriesKey key, long step, DateTimeOffset time, double value, List<WindowResult> closed)
    {
        ArgumentNullException.ThrowIfNull(closed);
        if (!_series.TryGetValue(key, out State? state))
        {
            state = new State();
            _series[key] = state;
        }

        if (_spec.IsTime)
        {
            AddTimed(state, step, time, value, closed);
        }
        else
        {
            AddStepped(state, step, time, value, closed);
        }
    }

    /// <summary>
    /// Writes the open windows of <paramref name="run"/>/<paramref name="rank"/> (every tensor's values not yet
    /// evicted, next window end and watermark) for an engine snapshot, with the window specification and aggregate
    /// they were built under; nothing when the key has no window.
    /// </summary>
    public void WriteState(string run, uint rank, ref StateWriter writer)
    {
        if (!_series.Holds(run, rank))
        {
            return;
        }

        writer.WriteString(_spec.ToString());
        writer.WriteVarInt((long)_aggregate);
        _series.WriteState(run, rank, ref writer, static (ref StateWriter w, State state) =>
        {
            w.WriteVarInt(state.NextEnd);
            w.WriteVarInt(state.Watermark);
            w.WriteVarUInt((ulong)state.Values.Count);
            foreach ((long step, DateTimeOffset time, double value) in state.Values)
            {
                w.WriteVarInt(step);
                w.WriteTime(time);
                w.WriteDouble(value);
            }
        });
    }

    /// <summary>
    /// Reads what <see cref="WriteState"/> wrote; returns the action that replaces the key's windows with it. Windows
    /// written under another specification or aggregate cannot carry over: the key then starts with empty windows.
    /// </summary>
    /// <exception cref="InvalidDataException">Corrupt or truncated bytes.</exception>
    public Action ReadState(string run, uint rank, ref StateReader reader)
    {
        if (reader.Remaining == 0)
        {
            return () => Forget(run, rank);
        }

        string spec = reader.ReadString("window specification");
        long aggregate = reader.ReadVarInt("window aggregate");
        Action restore = _series.ReadState(run, rank, ref reader, static (ref StateReader r) =>
        {
            var state = new State { NextEnd = r.ReadVarInt("next window end"), Watermark = r.ReadVarInt("watermark") };
            for (int i = r.ReadCount("window values", 10); i > 0; i--)
            {
                state.Values.Add((r.ReadVarInt("step"), r.ReadTime("time"), r.ReadDouble("value")));
            }

            return state;
        });
        return spec == _spec.ToString() && aggregate == (long)_aggregate ? restore : () => Forget(run, rank);
    }

    /// <summary>Forgets a key (e.g. when its run ended).</summary>
    public bool Remove(SeriesKey key) => _series.Remove(key);

    private void AddStepped(State state, long step, DateTimeOffset time, double value, List<WindowResult> closed)
    {
        long size = _spec.Steps!.Value;
        long advance = _spec.AdvanceSteps ?? size;
        if (state.NextEnd == long.MinValue)
        {
            // The first window is the one containing the first step, aligned to multiples of the advance.
            state.NextEnd = (Math.DivRem(step, advance, out long remainder) - (remainder < 0 ? 1 : 0)) * advance + size;
            while (state.NextEnd - advance > step)
            {
                state.NextEnd -= advance;
            }

            // No window starts before step 0 (as in Kafka Streams): skip to the first one at or after 0 that still holds the step.
            while (state.NextEnd - size < 0 && state.NextEnd + advance - size <= step)
            {
                state.NextEnd += advance;
            }
        }

        if (step < state.NextEnd - size)
        {
            LateValues++;
            return;
        }

        while (state.NextEnd <= step)
        {
            Emit(state, state.NextEnd - size, state.NextEnd, closed, byStep: true);
            state.NextEnd += advance;
            Evict(state, state.NextEnd - size, byStep: true);
        }

        state.Values.Add((step, time, value));
    }

    private void AddTimed(State state, long step, DateTimeOffset time, double value, List<WindowResult> closed)
    {
        long size = _spec.Duration!.Value.Ticks;
        long advance = (_spec.Advance ?? _spec.Duration!.Value).Ticks;
        long at = time.UtcTicks;
        if (state.NextEnd == long.MinValue)
        {
            state.NextEnd = (at / advance * advance) + size;
            while (state.NextEnd - advance > at)
            {
                state.NextEnd -= advance;
            }
        }

        if (at < state.NextEnd - size)
        {
            LateValues++;
            return;
        }

        state.Values.Add((step, time, value));
        state.Watermark = Math.Max(state.Watermark, at - _spec.Grace.Ticks);
        while (state.NextEnd <= state.Watermark)
        {
            Emit(state, state.NextEnd - size, state.NextEnd, closed, byStep: false);
            state.NextEnd += advance;
            Evict(state, state.NextEnd - size, byStep: false);
        }
    }

    private void Emit(State state, long start, long end, List<WindowResult> closed, bool byStep)
    {
        int count = 0;
        double sum = 0, min = double.PositiveInfinity, max = double.NegativeInfinity, last = double.NaN;
        long firstStep = long.MaxValue, lastStep = long.MinValue, lastPosition = long.MinValue;
        DateTimeOffset firstTime = DateTimeOffset.MaxValue, lastTime = DateTimeOffset.MinValue;
        foreach ((long step, DateTimeOffset time, double value) in state.Values)
        {
            long position = byStep ? step : time.UtcTicks;
            if (position < start || position >= end)
            {
                continue;
            }

            count++;
            sum += value;
            min = Math.Min(min, value);
            max = Math.Max(max, value);
            if (position >= lastPosition)
            {
                lastPosition = position;
                last = value;
            }

            firstStep = Math.Min(firstStep, step);
            lastStep = Math.Max(lastStep, step);
            firstTime = time < firstTime ? time : firstTime;
            lastTime = time > lastTime ? time : lastTime;
        }

        if (count == 0)
        {
            // Steps are often traced sparsely: an empty window is no evidence either way.
            return;
        }

        double aggregate = _aggregate switch
        {
            WindowAggregate.Mean => sum / count,
            WindowAggregate.Min => min,
            WindowAggregate.Max => max,
            WindowAggregate.Sum => sum,
            WindowAggregate.Last => last,
            _ => count,
        };
        closed.Add(byStep
            ? new WindowResult(start, lastStep, firstTime, lastTime, aggregate, count)
            : new WindowResult(firstStep, lastStep, new DateTimeOffset(start, TimeSpan.Zero), new DateTimeOffset(end, TimeSpan.Zero), aggregate, count));
    }

    private static void Evict(State state, long keepFrom, bool byStep) =>
        state.Values.RemoveAll(v => (byStep ? v.Step : v.Time.UtcTicks) < keepFrom);

    private sealed class State
    {
        public readonly List<(long Step, DateTimeOffset Time, double Value)> Values = [];
        public long NextEnd = long.MinValue;
        public long Watermark = long.MinValue;
    }
}
