using Monitor.Analysis.Rules;
using Monitor.Contracts;
using Monitor.Contracts.V1;
using static Monitor.Analysis.Tests.AnalysisTestDriver;
using static Monitor.Analysis.Tests.RuleTestData;

namespace Monitor.Analysis.Tests;

/// <summary>
/// Runs that end (the tracer's end-of-run record), runs that resume from a checkpoint (steps going back), and
/// StalledTraining while the host lags behind its topic.
/// </summary>
public sealed class RunEndTests
{
    [Theory]
    [InlineData(RunEndReason.Done, "done")]
    [InlineData(RunEndReason.Stopped, "stopped by the monitor")]
    [InlineData(RunEndReason.Cancelled, "cancelled")]
    [InlineData(RunEndReason.Unspecified, "no reason given")]
    public void Process_ResolvesTheRanksAlertsAsRunEnded_WhateverKeepFiringFor(RunEndReason reason, string words)
    {
        var driver = new AnalysisTestDriver(new RuleBinding { Rule = new ExplodingTensorRule(), KeepFiringFor = TimeSpan.FromDays(1) });
        driver.PipeSteps(0, 3, step => Record(DefaultRun, 0, step, TimeOfStep(step), NaNs("w")));
        driver.PipeSteps(0, 3, step => Record("other-run", 0, step, TimeOfStep(step), NaNs("w")));

        AlertTransition resolved = Assert.Single(driver.Pipe(End(DefaultRun, 0, 3, TimeOfStep(4), reason)));

        Assert.True(resolved.IsResolution);
        Assert.Equal((AlertState.Firing, 3L, DefaultRun), (resolved.PreviousState, resolved.Step, resolved.Identity[AlertLabels.Run]));
        Assert.Equal($"run ended ({words}) at step 3", resolved.Description);
        Assert.Equal(TimeOfStep(4), resolved.At);
        Assert.Equal(new RankEnded(DefaultRun, 0, 3, reason), driver.Engine.LastRankEnded);
        Assert.Equal(1, driver.Engine.RanksEnded);
        // The other run's alert is untouched.
        Assert.Equal("other-run", Assert.Single(driver.Engine.ActiveAlerts).Identity[AlertLabels.Run]);
        driver.Pipe(Record("other-run", 0, 4, TimeOfStep(4), NaNs("w")));
        Assert.Null(driver.Engine.LastRankEnded);
    }

    [Fact]
    public void Process_ResolvesOnlyTheEndedRanksAlerts_InARunOfSeveralRanks()
    {
        var driver = new AnalysisTestDriver(new ExplodingTensorRule());
        driver.Pipe(Record(DefaultRun, 0, 1, TimeOfStep(1), NaNs("w")));
        driver.Pipe(Record(DefaultRun, 1, 1, TimeOfStep(1), NaNs("w")));

        AlertTransition resolved = Assert.Single(driver.Pipe(End(DefaultRun, 1, 1, TimeOfStep(2), RunEndReason.Done)));

        Assert.Equal("1", resolved.Identity[AlertLabels.Rank]);
        Assert.Equal("0", Assert.Single(driver.Engine.ActiveAlerts).Identity[AlertLabels.Rank]);
    }

    [Fact]
    public void Process_ForgetsTheRanksState_AndTreatsItsRedeliveredRecordsAsDuplicates()
    {
        var stalled = new StalledTrainingRule();
        var driver = new AnalysisTestDriver(stalled);
        driver.PipeSteps(0, 5, step => Record(step));
        Assert.Equal(1, stalled.TrackedRanks);

        driver.Pipe(End(DefaultRun, 0, 5, TimeOfStep(6), RunEndReason.Done, sequence: 7));
        Assert.Equal(0, stalled.TrackedRanks);

        // Kafka redelivers the rank's last records and its end: they must not bring the rank back.
        driver.Pipe(Record(5));
        driver.Pipe(End(DefaultRun, 0, 5, TimeOfStep(6), RunEndReason.Done, sequence: 7));
        Assert.Equal(0, stalled.TrackedRanks);
        Assert.Equal(2, driver.Engine.DuplicateRecords);
        Assert.Equal(1, driver.Engine.RanksEnded);

        // A new job under the same run id (sequence from 1, a later clock) is a rank like any other.
        long evaluated = driver.Engine.RecordsEvaluated;
        driver.Pipe(Record(DefaultRun, 0, 0, TimeOfStep(100)));
        Assert.Equal(evaluated + 1, driver.Engine.RecordsEvaluated);
        Assert.Equal(1, stalled.TrackedRanks);
    }

    [Fact]
    public void StalledTraining_RaisesNothing_TenMinutesAfterARunEnded()
    {
        var driver = new AnalysisTestDriver(new StalledTrainingRule { Threshold = TimeSpan.FromMinutes(1) });
        // Rank 0 finishes at step 5; rank 1 of the same run just goes silent after step 5 (its worker hung).
        driver.PipeSteps(0, 5, step => Record(DefaultRun, 0, step, TimeOfStep(step)));
        driver.PipeSteps(0, 5, step => Record(DefaultRun, 1, step, TimeOfStep(step)));
        driver.Pipe(End(DefaultRun, 0, 5, TimeOfStep(5), RunEndReason.Done));

        var fired = new List<AlertTransition>();
        for (int second = 10; second <= 600 + 5; second += 10)
        {
            driver.Time.SetUtcNow(TimeOfStep(5).AddSeconds(second));
            fired.AddRange(driver.Engine.Tick());
        }

        // Only the hung rank fires; the finished one never does, ten minutes (fake time) after its last step.
        Assert.Equal(["1"], fired.Select(t => t.Identity[AlertLabels.Rank]));
        Assert.Equal(AlertState.Firing, fired[0].State);
    }

    [Fact]
    public void StalledTraining_DoesNotFire_WhileTheHostLagsBehind_AndFiresOnceCaughtUp()
    {
        var driver = new AnalysisTestDriver(new StalledTrainingRule { Threshold = TimeSpan.FromMinutes(1) });
        // The service reads an hour-old backlog: the records' event times are far behind the clock.
        driver.Time.SetUtcNow(TimeOfStep(3600));
        driver.PipeSteps(0, 30, step => Record(step));

        Assert.Empty(driver.Engine.Tick(caughtUp: false));
        Assert.Empty(driver.Engine.ActiveAlerts);

        // Caught up (nothing more in the topic), the clock applies: the rank has been silent for an hour.
        AlertTransition fired = Assert.Single(driver.Engine.Tick(caughtUp: true));
        Assert.Equal(AlertState.Firing, fired.State);
    }

    [Fact]
    public void StalledTraining_WhileLagging_StillFindsARankSilentInEventTime()
    {
        var driver = new AnalysisTestDriver(new StalledTrainingRule { Threshold = TimeSpan.FromMinutes(1) });
        driver.Time.SetUtcNow(TimeOfStep(3600));
        // Rank 1 kept stepping for five minutes of event time; rank 0 stopped after step 5.
        driver.PipeSteps(0, 5, step => Record(DefaultRun, 0, step, TimeOfStep(step)));
        driver.PipeSteps(0, 300, step => Record(DefaultRun, 1, step, TimeOfStep(step)));

        AlertTransition fired = Assert.Single(driver.Engine.Tick(caughtUp: false));

        Assert.Equal(("0", TimeOfStep(300)), (fired.Identity[AlertLabels.Rank], fired.At));
    }

    [Fact]
    public void Tick_WhileLagging_EvaluatesNothing_BeforeTheFirstRecord()
    {
        var driver = new AnalysisTestDriver(new StalledTrainingRule());

        Assert.Empty(driver.Engine.Tick(caughtUp: false));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Process_StartsANewSeries_WhenAJobResumesFromACheckpoint(bool newProcess)
    {
        var driver = new AnalysisTestDriver(new StalledTrainingRule { Threshold = TimeSpan.FromMinutes(1) });
        driver.PipeSteps(0, 100, step => Record(step));

        // The job crashed after step 100 and resumed from its step-50 checkpoint at t = 200 s: a new process starts
        // its sequence again; a job that reloads in-process keeps counting.
        for (long i = 0; i <= 10; i++)
        {
            StepRecord resumed = Record(DefaultRun, 0, 50 + i, TimeOfStep(200 + i));
            resumed.Sequence = newProcess ? (ulong)i + 1 : 102 + (ulong)i;
            driver.Pipe(resumed);
        }

        // The resumed steps are progress: no stall 15 s after the last of them, although none passes step 100.
        driver.Time.SetUtcNow(TimeOfStep(225));
        Assert.Empty(driver.Engine.Tick());
        Assert.Equal(1, driver.Engine.SeriesRestarts);
        Assert.Equal(0, driver.Engine.OutOfOrderRecords);
        Assert.Equal(112, driver.Engine.RecordsEvaluated);
    }

    [Fact]
    public void Process_ResumedJob_RulesJudgeTheRepeatedStepsAfresh()
    {
        var driver = new AnalysisTestDriver(new UnchangedTensorRule());
        var random = new Random(3);
        driver.PipeSteps(0, 20, step => Record(step, Values("w", Normal(random, 16), raw: true, Collection.Weights)));

        // Resumed from step 10: without a new series, UnchangedTensor would skip every step up to 20.
        float[] frozen = Normal(random, 16);
        for (long i = 0; i < 5; i++)
        {
            StepRecord resumed = Record(DefaultRun, 0, 10 + i, TimeOfStep(100 + i), Values("w", frozen, raw: true, Collection.Weights));
            resumed.Sequence = (ulong)i + 1;
            driver.Pipe(resumed);
        }

        Assert.Equal(AlertState.Firing, Assert.Single(driver.Transitions).State);
    }

    private static TensorRecord NaNs(string name) => Values(name, Fill(4, float.NaN), raw: false, Collection.Weights);

    private static StepRecord End(string run, uint rank, long step, DateTimeOffset at, RunEndReason reason, ulong sequence = 1000)
    {
        StepRecord record = Record(run, rank, step, at);
        record.Mode = Mode.Unspecified;
        record.Sequence = sequence;
        record.RunEnd = new RunEnd { Reason = reason };
        Assert.Null(StepRecordDecoder.Validate(record, out _));
        return record;
    }

    [Fact]
    public void Tick_ForgetsARankIdlePastTheTtl_ResolvingItsAlerts_AndKeepsTheOthers()
    {
        var driver = new AnalysisTestDriver(new RuleBinding { Rule = new ExplodingTensorRule(), KeepFiringFor = TimeSpan.FromDays(7) });
        driver.Pipe(Record(DefaultRun, 0, 1, TimeOfStep(1), NaNs("w")));
        driver.Time.SetUtcNow(TimeOfStep(1) + TimeSpan.FromHours(23));
        driver.Pipe(Record(DefaultRun, 1, 1, driver.Time.GetUtcNow(), NaNs("w")));

        Assert.Empty(driver.Engine.Tick());
        driver.Time.Advance(TimeSpan.FromHours(1) + TimeSpan.FromSeconds(1));
        AlertTransition resolved = Assert.Single(driver.Engine.Tick());

        Assert.True(resolved.IsResolution);
        Assert.Equal("0", resolved.Identity[AlertLabels.Rank]);
        Assert.Equal("forgotten after 24 h without a record (idle TTL)", resolved.Description);
        Assert.Equal([(DefaultRun, 0u)], driver.Engine.RanksForgotten);
        Assert.Equal(1, driver.Engine.RanksEvicted);
        Assert.Equal("1", Assert.Single(driver.Engine.ActiveAlerts).Identity[AlertLabels.Rank]);
        Assert.Empty(driver.Engine.Tick());
        Assert.Empty(driver.Engine.RanksForgotten);
    }
}
