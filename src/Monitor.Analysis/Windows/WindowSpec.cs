using System.Globalization;

namespace Monitor.Analysis.Windows;

/// <summary>How values of a series are grouped: over step numbers or over event time, tumbling or sliding.</summary>
/// <remarks>
/// A window covers <c>[start, start + size)</c>; windows start every <c>advance</c> (Kafka Streams' hopping windows).
/// <c>advance == size</c> (the default) makes them tumbling; a smaller advance makes them sliding (overlapping).
/// Step windows close when a value of a later step arrives; time windows close when the series' watermark (its newest
/// event time minus <see cref="Grace"/>) passes their end. A value for a window that has already closed is late: it
/// is counted and dropped (<see cref="WindowedSeries.LateValues"/>).
/// </remarks>
public sealed record WindowSpec
{
    /// <summary>Size in steps (step windows). Exactly one of <see cref="Steps"/> and <see cref="Duration"/> is set.</summary>
    public long? Steps { get; init; }

    /// <summary>Size in event time (time windows).</summary>
    public TimeSpan? Duration { get; init; }

    /// <summary>Steps between window starts; default <see cref="Steps"/> (tumbling).</summary>
    public long? AdvanceSteps { get; init; }

    /// <summary>Time between window starts; default <see cref="Duration"/> (tumbling).</summary>
    public TimeSpan? Advance { get; init; }

    /// <summary>Time windows only: how long after a window's end values are still accepted for it. Default zero.</summary>
    public TimeSpan Grace { get; init; }

    /// <summary>A tumbling window of <paramref name="steps"/> steps.</summary>
    public static WindowSpec OfSteps(long steps, long? advance = null) => new WindowSpec { Steps = steps, AdvanceSteps = advance }.EnsureValid();

    /// <summary>A tumbling (or, with <paramref name="advance"/>, sliding) window over event time.</summary>
    public static WindowSpec OfTime(TimeSpan duration, TimeSpan? advance = null, TimeSpan grace = default) =>
        new WindowSpec { Duration = duration, Advance = advance, Grace = grace }.EnsureValid();

    /// <summary>True for windows over event time.</summary>
    public bool IsTime => Duration is not null;

    /// <summary>True when windows overlap.</summary>
    public bool IsSliding => IsTime ? (Advance ?? Duration) < Duration : (AdvanceSteps ?? Steps) < Steps;

    /// <summary>Problems with the specification, each naming its field (empty when valid).</summary>
    public IReadOnlyList<string> Validate()
    {
        var problems = new List<string>();
        if ((Steps is null) == (Duration is null))
        {
            problems.Add("window: give exactly one of steps and duration");
            return problems;
        }

        if (Steps is { } steps)
        {
            if (steps < 1)
            {
                problems.Add($"window.steps: {steps} must be at least 1");
            }

            if (AdvanceSteps is { } advance && (advance < 1 || advance > steps))
            {
                problems.Add($"window.advance: {advance} steps must be between 1 and the window's {steps}");
            }

            if (Advance is not null || Grace != TimeSpan.Zero)
            {
                problems.Add("window: a step window takes an advance in steps and no grace");
            }
        }
        else
        {
            TimeSpan duration = Duration!.Value;
            if (duration <= TimeSpan.Zero)
            {
                problems.Add($"window.duration: {duration} must be positive");
            }

            if (Advance is { } advance && (advance <= TimeSpan.Zero || advance > duration))
            {
                problems.Add($"window.advance: {advance} must be positive and at most the window's {duration}");
            }

            if (Grace < TimeSpan.Zero)
            {
                problems.Add("window.grace: must not be negative");
            }

            if (AdvanceSteps is not null)
            {
                problems.Add("window: a time window takes an advance in time");
            }
        }

        return problems;
    }

    /// <summary>Throws <see cref="ArgumentException"/> listing the problems, if any.</summary>
    public WindowSpec EnsureValid()
    {
        IReadOnlyList<string> problems = Validate();
        return problems.Count == 0 ? this : throw new ArgumentException(string.Join("; ", problems));
    }

    /// <inheritdoc />
    public override string ToString() => IsTime
        ? string.Create(CultureInfo.InvariantCulture, $"{Duration!.Value.TotalSeconds}s window every {(Advance ?? Duration)!.Value.TotalSeconds}s")
        : string.Create(CultureInfo.InvariantCulture, $"{Steps}-step window every {AdvanceSteps ?? Steps} steps");
}

/// <summary>How a window's values become one number.</summary>
public enum WindowAggregate
{
    /// <summary>Arithmetic mean.</summary>
    Mean,

    /// <summary>Smallest value.</summary>
    Min,

    /// <summary>Largest value.</summary>
    Max,

    /// <summary>Sum.</summary>
    Sum,

    /// <summary>The value of the newest step (largest step or event time).</summary>
    Last,

    /// <summary>Number of values.</summary>
    Count,
}

/// <summary>A closed window of one series.</summary>
/// <param name="StartStep">First step in the window (step windows), or the first step seen (time windows).</param>
/// <param name="EndStep">Last step seen in the window.</param>
/// <param name="Start">Window start (time windows) or the event time of the first value.</param>
/// <param name="End">Window end (exclusive, time windows) or the event time of the last value.</param>
/// <param name="Value">The aggregate.</param>
/// <param name="Count">Values aggregated.</param>
public readonly record struct WindowResult(long StartStep, long EndStep, DateTimeOffset Start, DateTimeOffset End, double Value, int Count);
