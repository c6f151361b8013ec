using Monitor.Analysis.Rules;
using Monitor.Contracts.V1;
using static Monitor.Analysis.Tests.AnalysisTestDriver;

namespace Monitor.Analysis.Tests;

public sealed class StalledTrainingRuleTests
{
    private static IReadOnlyList<AlertTransition> TickAt(AnalysisTestDriver driver, DateTimeOffset now)
    {
        driver.Time.SetUtcNow(now);
        return [.. driver.Engine.Tick()];
    }

    [Fact]
    public void Tick_Fires_WhenNoNewStepCameForTheThreshold_AndTheNextStepResolves()
    {
        var driver = new AnalysisTestDriver(new StalledTrainingRule());
        driver.PipeSteps(0, 10, step => Record(step));

        // Step 10's event time is StartTime + 10 s; the default threshold is 1800 s.
        Assert.Empty(TickAt(driver, TimeOfStep(10)));
        Assert.Empty(TickAt(driver, TimeOfStep(10).AddSeconds(1799)));
        AlertTransition fired = Assert.Single(TickAt(driver, TimeOfStep(10).AddSeconds(1800)));
        Assert.Empty(TickAt(driver, TimeOfStep(10).AddSeconds(2500)));

        Assert.Equal((AlertState.Firing, 10L), (fired.State, fired.Step));
        Assert.Equal((1800.0, 1800.0), (fired.Value, fired.Threshold));
        Assert.Equal(TimeOfStep(10).AddSeconds(1800), fired.At);
        Assert.Equal(("StalledTraining", DefaultRun, "0"), (fired.RuleName, fired.Identity[AlertLabels.Run], fired.Identity[AlertLabels.Rank]));
        Assert.False(fired.Identity.Labels.ContainsKey(AlertLabels.Tensor));
        Assert.Contains("no new step from run run-1 rank 0 for 1800 s (last step 10", fired.Description, StringComparison.Ordinal);

        DateTimeOffset resumed = TimeOfStep(10).AddSeconds(2600);
        driver.Time.SetUtcNow(resumed);
        AlertTransition resolved = Assert.Single(driver.Pipe(Record(DefaultRun, 0, 11, resumed)));
        Assert.True(resolved.IsResolution);
        Assert.Equal(11, resolved.Step);
        Assert.Empty(driver.Engine.ActiveAlerts);
        Assert.Empty(TickAt(driver, resumed.AddSeconds(1799)));
    }

    [Fact]
    public void Tick_FiresOnlyForTheSilentRank_WhileTheOthersKeepStepping()
    {
        var driver = new AnalysisTestDriver(new StalledTrainingRule { Threshold = TimeSpan.FromSeconds(120) });

        // Rank 1 sends a step every second; rank 0 stops after step 5 (event time StartTime + 5 s); a tick every second.
        for (long second = 0; second <= 300; second++)
        {
            DateTimeOffset now = TimeOfStep(second);
            driver.Time.SetUtcNow(now);
            driver.Pipe(Record(DefaultRun, 1, second, now));
            if (second <= 5)
            {
                driver.Pipe(Record(DefaultRun, 0, second, now));
            }

            foreach (AlertTransition t in driver.Engine.Tick())
            {
                Assert.Equal((AlertState.Firing, "0", TimeOfStep(125)), (t.State, t.Identity[AlertLabels.Rank], t.At));
            }
        }

        AlertTransition active = Assert.Single(driver.Engine.ActiveAlerts);
        Assert.Equal(("0", 5L), (active.Identity[AlertLabels.Rank], active.Step));
        Assert.Equal(TimeOfStep(125), active.ActiveSince);
    }

    [Fact]
    public void Tick_CountsFromTheFirstTickAfterTheRecord_WhenTheRecordHasNoEventTime()
    {
        var driver = new AnalysisTestDriver(new StalledTrainingRule { Threshold = TimeSpan.FromSeconds(60) });
        driver.Pipe(Record(DefaultRun, 0, 0, eventTime: null));

        Assert.Empty(TickAt(driver, StartTime.AddSeconds(100)));
        Assert.Empty(TickAt(driver, StartTime.AddSeconds(159)));
        Assert.Equal(StartTime.AddSeconds(160), Assert.Single(TickAt(driver, StartTime.AddSeconds(160))).At);
    }

    [Fact]
    public void Evaluate_CountsAnOlderStepWithALaterEventTime_AsTheStartOfANewSeries()
    {
        var driver = new AnalysisTestDriver(new StalledTrainingRule { Threshold = TimeSpan.FromSeconds(60) });
        driver.Pipe(Record(10));

        // A record of an older step, with a later event time: a job resumed from a checkpoint. The engine starts a new
        // series, so the rule counts the silence from it, not from step 10.
        driver.Pipe(Record(DefaultRun, 0, 9, TimeOfStep(40)));

        Assert.Empty(TickAt(driver, TimeOfStep(10).AddSeconds(60)));
        Assert.Single(TickAt(driver, TimeOfStep(40).AddSeconds(60)));
    }

    [Fact]
    public void Evaluate_DoesNotCountARepeatedStep_AsProgress()
    {
        var driver = new AnalysisTestDriver(new StalledTrainingRule { Threshold = TimeSpan.FromSeconds(60) });
        driver.Pipe(Record(10));

        // The same step again, later and with a lower sequence number (a restarted worker repeating it): no new step.
        StepRecord repeated = Record(DefaultRun, 0, 10, TimeOfStep(40));
        repeated.Sequence = 1;
        driver.Pipe(repeated);

        Assert.Single(TickAt(driver, TimeOfStep(10).AddSeconds(60)));
    }

    [Fact]
    public void Tick_HonoursTheBindingsForDuration_BecauseItReportsAtEveryTick()
    {
        var driver = new AnalysisTestDriver(new RuleBinding { Rule = new StalledTrainingRule(), ForDuration = TimeSpan.FromSeconds(60) });
        driver.Pipe(Record(0));

        Assert.Equal(AlertState.Pending, Assert.Single(TickAt(driver, StartTime.AddSeconds(1800))).State);
        Assert.Empty(TickAt(driver, StartTime.AddSeconds(1859)));
        Assert.Equal(AlertState.Firing, Assert.Single(TickAt(driver, StartTime.AddSeconds(1860))).State);
    }

    [Fact]
    public void Tick_ResolvesAndForgetsARank_SilentForForgetAfter()
    {
        var rule = new StalledTrainingRule { Threshold = TimeSpan.FromMinutes(30), ForgetAfter = TimeSpan.FromHours(2) };
        var driver = new AnalysisTestDriver(rule);
        driver.Pipe(Record(0));

        Assert.Equal(AlertState.Firing, Assert.Single(TickAt(driver, StartTime.AddMinutes(30))).State);
        Assert.Empty(TickAt(driver, StartTime.AddMinutes(119)));
        AlertTransition forgotten = Assert.Single(TickAt(driver, StartTime.AddHours(2)));

        Assert.True(forgotten.IsResolution);
        Assert.Contains("taken to have finished", forgotten.Description, StringComparison.Ordinal);
        Assert.Equal(0, rule.TrackedRanks);
        Assert.Empty(TickAt(driver, StartTime.AddHours(10)));
    }

    [Fact]
    public void Tick_NeverFires_WhileEveryRankKeepsStepping()
    {
        var random = new Random(3);
        var driver = new AnalysisTestDriver(new StalledTrainingRule { Threshold = TimeSpan.FromSeconds(120) });

        // Two runs of two ranks, a step every 30 to 90 s each, a tick every 5 s, for 5 hours.
        var next = new Dictionary<(string, uint), (long Step, DateTimeOffset At)>
        {
            [("run-1", 0)] = (0, StartTime),
            [("run-1", 1)] = (0, StartTime),
            [("run-2", 0)] = (0, StartTime),
            [("run-2", 1)] = (0, StartTime),
        };
        for (DateTimeOffset now = StartTime; now < StartTime.AddHours(5); now = now.AddSeconds(5))
        {
            driver.Time.SetUtcNow(now);
            foreach (((string run, uint rank), (long step, DateTimeOffset at)) in next.ToArray())
            {
                if (at <= now)
                {
                    driver.Pipe(Record(run, rank, step, now));
                    next[(run, rank)] = (step + 1, now.AddSeconds(random.Next(30, 91)));
                }
            }

            Assert.Empty(driver.Engine.Tick());
        }

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Defaults_MatchSmdebug()
    {
        var rule = new StalledTrainingRule();

        Assert.Equal(TimeSpan.FromSeconds(1800), rule.Threshold);
        Assert.Equal(TimeSpan.FromHours(24), rule.ForgetAfter);
        Assert.Equal("StalledTraining", rule.Name);
        Assert.Empty(((ITrainingRule)rule).Requirements);
    }

    [Fact]
    public void Init_Throws_WhenADurationIsNotPositive()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new StalledTrainingRule { Threshold = TimeSpan.Zero });
        Assert.Throws<ArgumentOutOfRangeException>(() => new StalledTrainingRule { Threshold = TimeSpan.FromSeconds(-1) });
        Assert.Throws<ArgumentOutOfRangeException>(() => new StalledTrainingRule { ForgetAfter = TimeSpan.Zero });
    }
}
