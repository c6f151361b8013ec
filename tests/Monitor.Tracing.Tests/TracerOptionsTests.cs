using Monitor.Contracts;

namespace Monitor.Tracing.Tests;

public sealed class TracerOptionsTests
{
    public static TheoryData<string, string> InvalidOptions => new()
    {
        { "empty-run-id", "RunId" },
        { "run-id-with-slash", "RunId" },
        { "run-id-too-long", "RunId" },
        { "world-size-zero", "WorldSize" },
        { "rank-negative", "Rank" },
        { "rank-equal-to-world-size", "Rank" },
        { "empty-topic", "Topic" },
        { "queue-capacity-zero", "QueueCapacity" },
        { "queue-capacity-negative", "QueueCapacity" },
        { "max-enqueue-wait-two-ms", "MaxEnqueueWait" },
        { "max-enqueue-wait-just-over-limit", "MaxEnqueueWait" },
        { "max-enqueue-wait-negative", "MaxEnqueueWait" },
        { "invalid-selection", "schedule.everySteps" },
        { "overhead-budget-zero", "OverheadBudget" },
        { "overhead-budget-over-one", "OverheadBudget" },
        { "overhead-budget-nan", "OverheadBudget" },
    };

    [Theory]
    [MemberData(nameof(InvalidOptions))]
    public void Validate_ThrowsArgumentExceptionNamingTheOption_WhenAnOptionIsInvalid(string invalid, string named)
    {
        TracerOptions options = Invalid(invalid);

        ArgumentException exception = Assert.ThrowsAny<ArgumentException>(options.Validate);

        Assert.Contains(named, exception.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_ThrowsArgumentNullExceptionNamingSelection_WhenSelectionIsNull()
    {
        var options = new TracerOptions { RunId = "run", Selection = null! };

        ArgumentNullException exception = Assert.Throws<ArgumentNullException>(options.Validate);

        Assert.Equal("Selection", exception.ParamName);
    }

    [Fact]
    public void Validate_Accepts_TheDefaultsWithARunId()
    {
        var options = new TracerOptions { RunId = "run-1" };

        options.Validate();

        Assert.Equal(0, options.Rank);
        Assert.Equal(1, options.WorldSize);
        Assert.Equal(256, options.QueueCapacity);
        Assert.Equal(TimeSpan.Zero, options.MaxEnqueueWait);
        Assert.Equal(MonitorTopics.Steps, options.Topic);
        Assert.Same(TraceSelection.AllEveryStep, options.Selection);
        Assert.Same(TimeProvider.System, options.TimeProvider);
        Assert.Equal(0.02, options.OverheadBudget);
    }

    [Fact]
    public void Validate_Accepts_ValuesOnTheirLimits()
    {
        var options = new TracerOptions
        {
            RunId = new string('r', RunId.MaxLength),
            Rank = 7,
            WorldSize = 8,
            QueueCapacity = 1,
            MaxEnqueueWait = TracerOptions.MaxEnqueueWaitLimit,
            OverheadBudget = 1,
        };

        options.Validate();

        Assert.Equal(TimeSpan.FromMilliseconds(1), TracerOptions.MaxEnqueueWaitLimit);
    }

    private static TracerOptions Invalid(string invalid) => invalid switch
    {
        "empty-run-id" => new TracerOptions { RunId = "" },
        "run-id-with-slash" => new TracerOptions { RunId = "run/1" },
        "run-id-too-long" => new TracerOptions { RunId = new string('r', RunId.MaxLength + 1) },
        "world-size-zero" => new TracerOptions { RunId = "run", WorldSize = 0 },
        "rank-negative" => new TracerOptions { RunId = "run", Rank = -1 },
        "rank-equal-to-world-size" => new TracerOptions { RunId = "run", Rank = 4, WorldSize = 4 },
        "empty-topic" => new TracerOptions { RunId = "run", Topic = " " },
        "queue-capacity-zero" => new TracerOptions { RunId = "run", QueueCapacity = 0 },
        "queue-capacity-negative" => new TracerOptions { RunId = "run", QueueCapacity = -5 },
        "max-enqueue-wait-two-ms" => new TracerOptions { RunId = "run", MaxEnqueueWait = TimeSpan.FromMilliseconds(2) },
        "max-enqueue-wait-just-over-limit" => new TracerOptions { RunId = "run", MaxEnqueueWait = TracerOptions.MaxEnqueueWaitLimit + TimeSpan.FromTicks(1) },
        "max-enqueue-wait-negative" => new TracerOptions { RunId = "run", MaxEnqueueWait = TimeSpan.FromTicks(-1) },
        "overhead-budget-zero" => new TracerOptions { RunId = "run", OverheadBudget = 0 },
        "overhead-budget-over-one" => new TracerOptions { RunId = "run", OverheadBudget = 1.01 },
        "overhead-budget-nan" => new TracerOptions { RunId = "run", OverheadBudget = double.NaN },
        "invalid-selection" => new TracerOptions { RunId = "run", Selection = new TraceSelection { Schedule = new TraceSchedule { EverySteps = 0 } } },
        _ => throw new ArgumentOutOfRangeException(nameof(invalid), invalid, "unknown case"),
    };
}
