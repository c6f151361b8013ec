using Monitor.Analysis.Windows;

namespace Monitor.Analysis.Tests;

public sealed class WindowedSeriesTests
{
    private static readonly SeriesKey KeyA = new("run-1", 0, "a");
    private static readonly SeriesKey KeyB = new("run-1", 1, "a");

    /// <summary>Epoch-aligned (a multiple of every window size used here), so time windows start at T0.</summary>
    private static readonly DateTimeOffset T0 = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);

    // Two full 5-step windows, then an open one; Last differs from Max in both windows.
    private static readonly double[] StepValues = [2, 7, 1, 8, 3, 4, 9, 0, 5, 6, 1, 1, 1];

    private static DateTimeOffset At(double seconds) => T0.AddSeconds(seconds);

    private static List<WindowResult> AddSteps(WindowedSeries series, SeriesKey key, IEnumerable<long> steps, Func<long, double> value)
    {
        var closed = new List<WindowResult>();
        foreach (long step in steps)
        {
            series.Add(key, step, At(step), value(step), closed);
        }

        return closed;
    }

    private static List<WindowResult> AddAt(WindowedSeries series, SeriesKey key, double seconds, double value)
    {
        var closed = new List<WindowResult>();
        series.Add(key, (long)seconds, At(seconds), value, closed);
        return closed;
    }

    [Theory]
    [InlineData(WindowAggregate.Mean, 4.2, 4.8)]
    [InlineData(WindowAggregate.Min, 1, 0)]
    [InlineData(WindowAggregate.Max, 8, 9)]
    [InlineData(WindowAggregate.Sum, 21, 24)]
    [InlineData(WindowAggregate.Last, 3, 6)]
    [InlineData(WindowAggregate.Count, 5, 5)]
    public void Add_ClosesTumblingStepWindowsWithExactAggregates_WhenALaterStepArrives(WindowAggregate aggregate, double first, double second)
    {
        var series = new WindowedSeries(WindowSpec.OfSteps(5), aggregate);

        List<WindowResult> closed = AddSteps(series, KeyA, Enumerable.Range(0, 13).Select(s => (long)s), s => StepValues[s]);

        Assert.Equal(2, closed.Count);
        Assert.Equal(new WindowResult(0, 4, At(0), At(4), first, 5), closed[0]);
        Assert.Equal(new WindowResult(5, 9, At(5), At(9), second, 5), closed[1]);
        Assert.Equal(0, series.LateValues);
    }

    [Fact]
    public void Add_ClosesAStepWindow_OnlyWhenAStepAtOrAfterItsEndArrives()
    {
        var series = new WindowedSeries(WindowSpec.OfSteps(5), WindowAggregate.Sum);

        Assert.Empty(AddSteps(series, KeyA, [0, 1, 2, 3, 4], s => 1));
        WindowResult closed = Assert.Single(AddSteps(series, KeyA, [5], s => 1));

        Assert.Equal((0L, 4L, 5.0, 5), (closed.StartStep, closed.EndStep, closed.Value, closed.Count));
    }

    [Fact]
    public void Add_EmitsOverlappingWindowsInOrder_WhenStepWindowsSlide()
    {
        var series = new WindowedSeries(WindowSpec.OfSteps(10, advance: 5), WindowAggregate.Mean);

        List<WindowResult> closed = AddSteps(series, KeyA, Enumerable.Range(0, 25).Select(s => (long)s), s => s);

        // No window starts before step 0 (as in Kafka Streams): the first is [0, 10).
        Assert.Equal(
            [(0L, 9L, 4.5, 10), (5L, 14L, 9.5, 10), (10L, 19L, 14.5, 10)],
            closed.Select(w => (w.StartStep, w.EndStep, w.Value, w.Count)));
    }

    [Fact]
    public void Add_EmitsEachSlidingStepWindow_WhenTheStepThatEndsItArrives()
    {
        var series = new WindowedSeries(WindowSpec.OfSteps(10, advance: 5), WindowAggregate.Count);
        AddSteps(series, KeyA, Enumerable.Range(0, 10).Select(s => (long)s), s => s);

        WindowResult closed = Assert.Single(AddSteps(series, KeyA, [10], s => s));

        Assert.Equal((0L, 9L, 10.0), (closed.StartStep, closed.EndStep, closed.Value));
    }

    [Fact]
    public void Add_AggregatesOnlyTracedSteps_WhenStepsAreSparse()
    {
        var series = new WindowedSeries(WindowSpec.OfSteps(5), WindowAggregate.Count);

        // Traced every 3 steps: 0, 3, 6, ..., 27.
        List<WindowResult> closed = AddSteps(series, KeyA, Enumerable.Range(0, 10).Select(i => i * 3L), s => s);

        Assert.Equal(
            [(0L, 3L, 2.0), (5L, 9L, 2.0), (10L, 12L, 1.0), (15L, 18L, 2.0), (20L, 24L, 2.0)],
            closed.Select(w => (w.StartStep, w.EndStep, w.Value)));
    }

    [Fact]
    public void Add_SkipsEmptyWindows_WhenStepsJumpPastSeveralWindows()
    {
        var series = new WindowedSeries(WindowSpec.OfSteps(5), WindowAggregate.Sum);
        AddSteps(series, KeyA, [0, 3], s => s);

        // [0,5) closes; [5,10), [10,15) and [15,20) hold nothing and are not emitted.
        List<WindowResult> closed = AddSteps(series, KeyA, [21], s => s);

        WindowResult only = Assert.Single(closed);
        Assert.Equal((0L, 3L, 3.0, 2), (only.StartStep, only.EndStep, only.Value, only.Count));
        WindowResult next = Assert.Single(AddSteps(series, KeyA, [25], s => s));
        Assert.Equal((20L, 21L, 21.0), (next.StartStep, next.EndStep, next.Value));
    }

    [Fact]
    public void Add_KeepsWindowsPerKeyIndependent()
    {
        var series = new WindowedSeries(WindowSpec.OfSteps(5), WindowAggregate.Sum);

        AddSteps(series, KeyA, [0, 1, 2, 3, 4], s => 1);
        Assert.Empty(AddSteps(series, KeyB, [100, 101], s => 10));

        // Step 5 of key A closes A's window only; key B's window [100,105) stays open.
        WindowResult a = Assert.Single(AddSteps(series, KeyA, [5], s => 1));
        Assert.Equal((0L, 5.0), (a.StartStep, a.Value));

        // Key B's own alignment; A's step 5 is not late for B and B's steps are not late for A.
        WindowResult b = Assert.Single(AddSteps(series, KeyB, [105], s => 10));
        Assert.Equal((100L, 101L, 20.0), (b.StartStep, b.EndStep, b.Value));
        Assert.Equal(0, series.LateValues);
    }

    [Fact]
    public void Add_CountsAndDropsAValue_WhenItsStepWindowHasClosed()
    {
        var series = new WindowedSeries(WindowSpec.OfSteps(5), WindowAggregate.Sum);
        AddSteps(series, KeyA, [0, 1, 2, 3, 4, 5], s => 1);

        List<WindowResult> closed = AddSteps(series, KeyA, [3], s => 1000);

        Assert.Empty(closed);
        Assert.Equal(1, series.LateValues);
        WindowResult next = Assert.Single(AddSteps(series, KeyA, [6, 7, 8, 9, 10], s => 1));
        Assert.Equal((5L, 5.0, 5), (next.StartStep, next.Value, next.Count));
    }

    [Fact]
    public void Remove_ForgetsTheKey_SoItsWindowsStartAfresh()
    {
        var series = new WindowedSeries(WindowSpec.OfSteps(5), WindowAggregate.Sum);
        AddSteps(series, KeyA, [10, 11], s => 1);

        Assert.True(series.Remove(KeyA));
        Assert.False(series.Remove(KeyA));

        // Step 3 would be late for the old window [10,15); after Remove it opens [0,5).
        Assert.Empty(AddSteps(series, KeyA, [3], s => 7));
        WindowResult closed = Assert.Single(AddSteps(series, KeyA, [5], s => 1));
        Assert.Equal((0L, 7.0), (closed.StartStep, closed.Value));
        Assert.Equal(0, series.LateValues);
    }

    [Fact]
    public void Add_ClosesATimeWindow_WhenTheWatermarkReachesItsEnd()
    {
        var series = new WindowedSeries(WindowSpec.OfTime(TimeSpan.FromSeconds(10)), WindowAggregate.Sum);

        Assert.Empty(AddAt(series, KeyA, 1, 1));
        Assert.Empty(AddAt(series, KeyA, 4, 2));
        Assert.Empty(AddAt(series, KeyA, 9.999, 4));
        WindowResult closed = Assert.Single(AddAt(series, KeyA, 10, 8));

        Assert.Equal(new WindowResult(1, 9, At(0), At(10), 7, 3), closed);
        WindowResult next = Assert.Single(AddAt(series, KeyA, 25, 0));
        Assert.Equal(new WindowResult(10, 10, At(10), At(20), 8, 1), next);
    }

    [Fact]
    public void Add_AcceptsAValueWithinTheGrace_AndClosesLater()
    {
        var series = new WindowedSeries(WindowSpec.OfTime(TimeSpan.FromSeconds(10), grace: TimeSpan.FromSeconds(5)), WindowAggregate.Sum);

        Assert.Empty(AddAt(series, KeyA, 1, 1));

        // Watermark 12 - 5 = 7: [0,10) stays open.
        Assert.Empty(AddAt(series, KeyA, 12, 100));

        // 3 s behind the newest value, within the grace: still counted in [0,10).
        Assert.Empty(AddAt(series, KeyA, 9, 2));
        Assert.Empty(AddAt(series, KeyA, 14.9, 1000));
        WindowResult closed = Assert.Single(AddAt(series, KeyA, 15, 10000));

        Assert.Equal((1L, 9L, 3.0, 2), (closed.StartStep, closed.EndStep, closed.Value, closed.Count));
        Assert.Equal((At(0), At(10)), (closed.Start, closed.End));
        Assert.Equal(0, series.LateValues);
    }

    [Fact]
    public void Add_CountsAndDropsATimeValue_WhenItsWindowHasClosed()
    {
        var series = new WindowedSeries(WindowSpec.OfTime(TimeSpan.FromSeconds(10), grace: TimeSpan.FromSeconds(5)), WindowAggregate.Sum);
        AddAt(series, KeyA, 1, 1);
        Assert.Single(AddAt(series, KeyA, 15, 1));

        Assert.Empty(AddAt(series, KeyA, 8, 1000));

        Assert.Equal(1, series.LateValues);
        WindowResult next = Assert.Single(AddAt(series, KeyA, 25, 1));
        Assert.Equal((At(10), 1.0, 1), (next.Start, next.Value, next.Count));
    }

    [Fact]
    public void Add_DropsAValue3sLate_WhenThereIsNoGrace()
    {
        var series = new WindowedSeries(WindowSpec.OfTime(TimeSpan.FromSeconds(10)), WindowAggregate.Sum);
        AddAt(series, KeyA, 1, 1);
        Assert.Single(AddAt(series, KeyA, 12, 1));

        Assert.Empty(AddAt(series, KeyA, 9, 1));

        Assert.Equal(1, series.LateValues);
    }

    [Fact]
    public void Add_EmitsOverlappingTimeWindowsInOrder_WhenTimeWindowsSlide()
    {
        var series = new WindowedSeries(WindowSpec.OfTime(TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(5)), WindowAggregate.Mean);

        var closed = new List<WindowResult>();
        for (int second = 0; second <= 24; second++)
        {
            closed.AddRange(AddAt(series, KeyA, second, second));
        }

        Assert.Equal(
            [(At(-5), At(5), 2.0, 5), (At(0), At(10), 4.5, 10), (At(5), At(15), 9.5, 10), (At(10), At(20), 14.5, 10)],
            closed.Select(w => (w.Start, w.End, w.Value, w.Count)));
    }

    [Fact]
    public void Add_KeepsTimeWindowsPerKeyIndependent()
    {
        var series = new WindowedSeries(WindowSpec.OfTime(TimeSpan.FromSeconds(10)), WindowAggregate.Count);
        AddAt(series, KeyA, 1, 1);

        // Key B far ahead in time does not move key A's watermark.
        Assert.Empty(AddAt(series, KeyB, 100, 1));
        Assert.Empty(AddAt(series, KeyA, 5, 1));

        WindowResult a = Assert.Single(AddAt(series, KeyA, 10, 1));
        Assert.Equal((At(0), 2.0), (a.Start, a.Value));
        Assert.Equal(0, series.LateValues);
    }

    [Fact]
    public void Constructor_Throws_WhenTheSpecIsInvalid()
    {
        var invalid = new WindowSpec { Steps = 0 };

        ArgumentException ex = Assert.Throws<ArgumentException>(() => new WindowedSeries(invalid, WindowAggregate.Mean));

        Assert.Contains("window.steps: 0 must be at least 1", ex.Message, StringComparison.Ordinal);
    }

    public static TheoryData<WindowSpec, string> InvalidSpecs => new()
    {
        { new WindowSpec { Steps = 5, Duration = TimeSpan.FromSeconds(10) }, "window: give exactly one of steps and duration" },
        { new WindowSpec(), "window: give exactly one of steps and duration" },
        { new WindowSpec { Steps = 5, AdvanceSteps = 6 }, "window.advance: 6 steps must be between 1 and the window's 5" },
        { new WindowSpec { Steps = 5, AdvanceSteps = 0 }, "window.advance: 0 steps must be between 1 and the window's 5" },
        { new WindowSpec { Duration = TimeSpan.FromSeconds(10), Advance = TimeSpan.FromSeconds(11) }, "window.advance: 00:00:11 must be positive and at most the window's 00:00:10" },
        { new WindowSpec { Duration = TimeSpan.FromSeconds(10), Advance = TimeSpan.Zero }, "window.advance: 00:00:00 must be positive and at most the window's 00:00:10" },
        { new WindowSpec { Steps = 0 }, "window.steps: 0 must be at least 1" },
        { new WindowSpec { Steps = -3 }, "window.steps: -3 must be at least 1" },
        { new WindowSpec { Duration = TimeSpan.Zero }, "window.duration: 00:00:00 must be positive" },
        { new WindowSpec { Duration = TimeSpan.FromSeconds(-1) }, "window.duration: -00:00:01 must be positive" },
        { new WindowSpec { Steps = 5, Grace = TimeSpan.FromSeconds(1) }, "window: a step window takes an advance in steps and no grace" },
        { new WindowSpec { Steps = 5, Advance = TimeSpan.FromSeconds(1) }, "window: a step window takes an advance in steps and no grace" },
        { new WindowSpec { Duration = TimeSpan.FromSeconds(10), Grace = TimeSpan.FromSeconds(-1) }, "window.grace: must not be negative" },
        { new WindowSpec { Duration = TimeSpan.FromSeconds(10), AdvanceSteps = 2 }, "window: a time window takes an advance in time" },
    };

    [Theory]
    [MemberData(nameof(InvalidSpecs))]
    public void Validate_NamesTheFieldAndProblem_WhenTheSpecIsInvalid(WindowSpec spec, string expected)
    {
        Assert.Contains(expected, spec.Validate());
        ArgumentException ex = Assert.Throws<ArgumentException>(() => spec.EnsureValid());
        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_ListsEveryProblem_WhenThereAreSeveral()
    {
        var spec = new WindowSpec { Steps = 0, AdvanceSteps = 2, Grace = TimeSpan.FromSeconds(1) };

        Assert.Equal(
            ["window.steps: 0 must be at least 1", "window.advance: 2 steps must be between 1 and the window's 0", "window: a step window takes an advance in steps and no grace"],
            spec.Validate());
    }

    [Fact]
    public void Validate_IsEmpty_WhenTheSpecIsValid()
    {
        Assert.Empty(WindowSpec.OfSteps(5).Validate());
        Assert.Empty(WindowSpec.OfSteps(10, 5).Validate());
        Assert.Empty(WindowSpec.OfSteps(5, 5).Validate());
        Assert.Empty(WindowSpec.OfTime(TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(5)).Validate());
    }

    [Fact]
    public void Factories_Throw_WhenTheSpecIsInvalid()
    {
        Assert.Throws<ArgumentException>(() => WindowSpec.OfSteps(0));
        Assert.Throws<ArgumentException>(() => WindowSpec.OfSteps(5, 6));
        Assert.Throws<ArgumentException>(() => WindowSpec.OfTime(TimeSpan.Zero));
        Assert.Throws<ArgumentException>(() => WindowSpec.OfTime(TimeSpan.FromSeconds(10), grace: TimeSpan.FromSeconds(-1)));
    }

    [Fact]
    public void IsSliding_IsTrue_OnlyWhenTheAdvanceIsSmallerThanTheSize()
    {
        Assert.False(WindowSpec.OfSteps(5).IsSliding);
        Assert.False(WindowSpec.OfSteps(5, 5).IsSliding);
        Assert.True(WindowSpec.OfSteps(10, 5).IsSliding);
        Assert.False(WindowSpec.OfTime(TimeSpan.FromSeconds(10)).IsSliding);
        Assert.True(WindowSpec.OfTime(TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(5)).IsSliding);
        Assert.True(WindowSpec.OfTime(TimeSpan.FromSeconds(10)).IsTime);
        Assert.False(WindowSpec.OfSteps(5).IsTime);
    }
}
