using Microsoft.Extensions.Time.Testing;
using Monitor.Contracts.V1;
using static Monitor.Analysis.Tests.AnalysisTestDriver;

namespace Monitor.Analysis.Tests;

public sealed class AnalysisEngineLifecycleTests
{
    private static StepRecord Mean(long step, double mean) => Record(step, Tensor("t", mean, Math.Abs(mean)));

    /// <summary>A record of step <paramref name="step"/> at event time <paramref name="seconds"/> after the start.</summary>
    private static StepRecord MeanAt(long step, double seconds, double mean) =>
        Record(DefaultRun, 0, step, StartTime.AddSeconds(seconds), Tensor("t", mean, Math.Abs(mean)));

    /// <summary>A record produced after everything else (a higher producer sequence number) though of an older step:
    /// genuinely out of order, not a redelivery.</summary>
    private static StepRecord Late(StepRecord record)
    {
        record.Sequence = (ulong)Interlocked.Increment(ref _lateSequence);
        return record;
    }

    private static long _lateSequence = 1_000_000;

    private static StepRecord WithMode(StepRecord record, Mode mode)
    {
        record.Mode = mode;
        return record;
    }

    private static RuleBinding Binding(ITrainingRule rule, string? name = null) => new() { Rule = rule, Name = name };

    [Fact]
    public void Process_StaysPendingUntilForDurationHasPassedInEventTime_ThenFires()
    {
        var driver = new AnalysisTestDriver(new RuleBinding { Rule = new MeanAboveRule { Threshold = 0.5 }, ForDuration = TimeSpan.FromSeconds(10) });

        Assert.Empty(driver.PipeSteps(0, 2, step => Mean(step, 0)));
        AlertTransition pending = Assert.Single(driver.Pipe(Mean(3, 1)));

        // Steps are 1 s apart: 3 + 10 = 13 is the first step at which the condition has held for 10 s.
        Assert.Empty(driver.PipeSteps(4, 12, step => Mean(step, 1)));
        AlertTransition firing = Assert.Single(driver.Pipe(Mean(13, 1)));
        Assert.Empty(driver.PipeSteps(14, 20, step => Mean(step, 1)));
        AlertTransition resolved = Assert.Single(driver.Pipe(Mean(21, 0)));

        Assert.Equal((AlertState.Inactive, AlertState.Pending, 3L), (pending.PreviousState, pending.State, pending.Step));
        Assert.Equal((AlertState.Pending, AlertState.Firing, 13L), (firing.PreviousState, firing.State, firing.Step));
        Assert.Equal((TimeOfStep(3), TimeOfStep(13)), (firing.ActiveSince, firing.At));
        Assert.True(resolved.IsResolution);
        Assert.Equal((21L, TimeOfStep(3)), (resolved.Step, resolved.ActiveSince));
    }

    [Fact]
    public void Process_UsesRecordEventTime_NotTheClock_ForForDuration()
    {
        var driver = new AnalysisTestDriver(new RuleBinding { Rule = new MeanAboveRule(), ForDuration = TimeSpan.FromMinutes(1) });

        // The clock moves a day, event time only 59 s: still pending.
        driver.Pipe(MeanAt(0, 0, 1));
        driver.Time.Advance(TimeSpan.FromDays(1));
        Assert.Empty(driver.Pipe(MeanAt(1, 59, 1)));
        AlertTransition firing = Assert.Single(driver.Pipe(MeanAt(2, 60, 1)));

        Assert.Equal(AlertState.Firing, firing.State);
        Assert.Equal(StartTime.AddSeconds(60), firing.At);
    }

    [Fact]
    public void Process_DropsPendingWithoutFiring_WhenTheConditionStopsBeforeForDuration()
    {
        var driver = new AnalysisTestDriver(new RuleBinding { Rule = new MeanAboveRule(), ForDuration = TimeSpan.FromSeconds(10) });

        driver.PipeSteps(0, 8, step => Mean(step, 1));
        AlertTransition dropped = Assert.Single(driver.Pipe(Mean(9, 0)));
        driver.PipeSteps(10, 19, step => Mean(step, 1));

        Assert.Equal((AlertState.Pending, AlertState.Inactive), (dropped.PreviousState, dropped.State));
        Assert.False(dropped.IsResolution);

        // The duration counts afresh from step 10.
        Assert.Equal(AlertState.Pending, Assert.Single(driver.Engine.ActiveAlerts).State);
        AlertTransition firing = Assert.Single(driver.Pipe(Mean(20, 1)));
        Assert.Equal((AlertState.Firing, TimeOfStep(10)), (firing.State, firing.ActiveSince));
    }

    [Theory]
    [InlineData(2, 1.0, 10L)] // the duration decides: 10 records 100 ms apart
    [InlineData(20, 1.0, 20L)] // the evaluations decide
    [InlineData(10, 1.0, 10L)] // both are met by the same record
    public void Process_FiresOnlyWhenBothForEvaluationsAndForDurationAreMet(int forEvaluations, double forSeconds, long firingStep)
    {
        var driver = new AnalysisTestDriver(new RuleBinding
        {
            Rule = new MeanAboveRule(),
            ForEvaluations = forEvaluations,
            ForDuration = TimeSpan.FromSeconds(forSeconds),
        });

        driver.PipeSteps(0, 40, step => MeanAt(step, step / 10.0, 1));

        Assert.Equal(
            [(AlertState.Pending, 0L), (AlertState.Firing, firingStep)],
            driver.Transitions.Select(t => (t.State, t.Step)));
    }

    [Fact]
    public void Process_KeepsFiringThroughPassingEvaluations_UntilKeepFiringForEvaluationsHavePassedInARow()
    {
        var driver = new AnalysisTestDriver(new RuleBinding { Rule = new MeanAboveRule(), KeepFiringForEvaluations = 3 });

        AlertTransition firing = Assert.Single(driver.Pipe(Mean(0, 1)));
        Assert.Empty(driver.PipeSteps(1, 3, step => Mean(step, 0)));
        Assert.Equal(AlertState.Firing, Assert.Single(driver.Engine.ActiveAlerts).State);
        // The condition returns: still the same firing alert, and the count of passing evaluations starts over.
        Assert.Empty(driver.Pipe(Mean(4, 1)));
        Assert.Empty(driver.PipeSteps(5, 7, step => Mean(step, 0)));
        AlertTransition resolved = Assert.Single(driver.Pipe(Mean(8, 0)));

        Assert.Equal((AlertState.Firing, 0L), (firing.State, firing.Step));
        Assert.True(resolved.IsResolution);
        Assert.Equal((8L, firing.ActiveSince), (resolved.Step, resolved.ActiveSince));
    }

    [Theory]
    [InlineData(0, 0.0, 10L)] // Prometheus' default: resolve at the first passing evaluation
    [InlineData(2, 1.0, 20L)] // the duration decides: passing from step 10 (1.0 s), records 100 ms apart
    [InlineData(20, 1.0, 30L)] // the evaluations decide
    public void Process_ResolvesOnlyWhenBothKeepFiringForEvaluationsAndKeepFiringForHavePassed(int evaluations, double seconds, long resolvingStep)
    {
        var driver = new AnalysisTestDriver(new RuleBinding
        {
            Rule = new MeanAboveRule(),
            KeepFiringForEvaluations = evaluations,
            KeepFiringFor = TimeSpan.FromSeconds(seconds),
        });

        driver.PipeSteps(0, 40, step => MeanAt(step, step / 10.0, step < 10 ? 1 : 0));

        Assert.Equal(
            [(AlertState.Firing, 0L), (AlertState.Inactive, resolvingStep)],
            driver.Transitions.Select(t => (t.State, t.Step)));
    }

    [Fact]
    public void Process_DropsAPendingAlert_AtOnce_WhateverKeepFiringFor()
    {
        var driver = new AnalysisTestDriver(new RuleBinding { Rule = new MeanAboveRule(), ForEvaluations = 2, KeepFiringForEvaluations = 5 });

        driver.Pipe(Mean(0, 1));
        AlertTransition dropped = Assert.Single(driver.Pipe(Mean(1, 0)));

        Assert.Equal((AlertState.Pending, AlertState.Inactive), (dropped.PreviousState, dropped.State));
        Assert.Empty(driver.Engine.ActiveAlerts);
    }

    [Fact]
    public void Process_RendersAnnotationTemplates_WithValuesAndLabels()
    {
        var driver = new AnalysisTestDriver(new RuleBinding
        {
            Rule = new MeanAboveRule("HighMean") { Threshold = 0.5 },
            Severity = "critical",
            Labels = new Dictionary<string, string> { ["team"] = "ml" },
            Annotations = new Dictionary<string, string>
            {
                ["summary"] = "{{labels.alertname}} on {{labels.run}}/{{labels.rank}} {{labels.tensor}} ({{labels.severity}}, team {{labels.team}})",
                ["runbook"] = "value {{value}} vs {{threshold}} at step {{step}}: {{description}}; {{labels.missing}} {{unknown}}",
            },
        });

        AlertTransition firing = Assert.Single(driver.Pipe(Record("run-7", 3, 12, TimeOfStep(12), Tensor("fc.weight", 1.234567, 1))));

        Assert.Equal(
            new Dictionary<string, string>
            {
                ["summary"] = "HighMean on run-7/3 fc.weight (critical, team ml)",
                ["description"] = "mean of fc.weight is 1.234567",
                ["runbook"] = "value 1.235 vs 0.5 at step 12: mean of fc.weight is 1.234567; {{labels.missing}} {{unknown}}",
            },
            firing.Annotations);
    }

    [Fact]
    public void Process_SetsDefaultSummaryAndDescription_WhenNoTemplatesAreGiven()
    {
        var driver = new AnalysisTestDriver(new RuleBinding { Rule = new MeanAboveRule() });

        AlertTransition firing = Assert.Single(driver.Pipe(Record("run-7", 3, 0, TimeOfStep(0), Tensor("fc.weight", 1, 1))));
        var rankLevel = new AnalysisTestDriver(new RuleBinding { Rule = new MeanAboveRule { RankLevel = true } });
        AlertTransition rank = Assert.Single(rankLevel.Pipe(Record("run-7", 3, 0, TimeOfStep(0), Tensor("fc.weight", 1, 1))));

        Assert.Equal(
            new Dictionary<string, string>
            {
                ["summary"] = "MeanAbove on run run-7 rank 3 tensor fc.weight",
                ["description"] = "mean of fc.weight is 1",
            },
            firing.Annotations);
        Assert.Equal("MeanAbove on run run-7 rank 3", rank.Annotations["summary"]);
    }

    [Fact]
    public void Process_RendersAnnotations_OnEveryTransitionWithThatTransitionsValues()
    {
        var driver = new AnalysisTestDriver(new RuleBinding
        {
            Rule = new MeanAboveRule { Threshold = 0.5 },
            ForEvaluations = 1,
            Annotations = new Dictionary<string, string> { ["at"] = "{{step}}={{value}}" },
        });

        driver.PipeAll([Mean(0, 0.75), Mean(1, 2), Mean(2, 0.25)]);

        Assert.Equal(["0=0.75", "1=2", "2=0.25"], driver.Transitions.Select(t => t.Annotations["at"]));
    }

    [Fact]
    public void Process_AddsBindingLabelsAndSeverity_ToTheAlertIdentity()
    {
        var driver = new AnalysisTestDriver(new RuleBinding
        {
            Rule = new MeanAboveRule(),
            Name = "Renamed",
            Severity = "page",
            Labels = new Dictionary<string, string> { ["team"] = "ml", ["env"] = "test" },
        });

        AlertTransition firing = Assert.Single(driver.Pipe(Mean(0, 1)));

        Assert.Equal(
            new Dictionary<string, string>
            {
                [AlertLabels.AlertName] = "Renamed",
                [AlertLabels.Run] = DefaultRun,
                [AlertLabels.Rank] = "0",
                [AlertLabels.Tensor] = "t",
                [AlertLabels.Severity] = "page",
                ["team"] = "ml",
                ["env"] = "test",
            },
            firing.Identity.Labels);
        Assert.Equal("Renamed", firing.RuleName);
    }

    [Fact]
    public void Process_UsesSeverityWarning_ByDefault()
    {
        var driver = new AnalysisTestDriver(new RuleBinding { Rule = new MeanAboveRule() });

        AlertTransition firing = Assert.Single(driver.Pipe(Mean(0, 1)));

        Assert.Equal("warning", firing.Identity[AlertLabels.Severity]);
        Assert.Empty(firing.Actions);
    }

    [Fact]
    public void Process_PassesTheBindingsActions_OnItsTransitions()
    {
        var driver = new AnalysisTestDriver(
            new RuleBinding { Rule = new MeanAboveRule("Stopper"), ForEvaluations = 1, Actions = ["stop"] },
            new RuleBinding { Rule = new MeanAboveRule("Quiet") });

        driver.PipeAll([Mean(0, 1), Mean(1, 1), Mean(2, 0)]);

        AlertTransition firing = Assert.Single(driver.Transitions, t => t.RuleName == "Stopper" && t.State == AlertState.Firing);
        Assert.Equal(["stop"], firing.Actions);
        Assert.All(driver.Transitions.Where(t => t.RuleName == "Stopper"), t => Assert.Equal(["stop"], t.Actions));
        Assert.All(driver.Transitions.Where(t => t.RuleName == "Quiet"), t => Assert.Empty(t.Actions));
    }

    [Fact]
    public void ReplaceRules_KeepsAFiringAlert_WhenTheNewRulesKeepItsName()
    {
        var driver = new AnalysisTestDriver(Binding(new MeanAboveRule("A") { Threshold = 0.5 }));
        driver.Pipe(Mean(0, 1));
        string fingerprint = Assert.Single(driver.Engine.ActiveAlerts).Identity.Fingerprint;

        IReadOnlyList<AlertTransition> replaced = driver.Engine.ReplaceRules(
        [
            new RuleBinding
            {
                Rule = new MeanAboveRule("A") { Threshold = 0.5 },
                Annotations = new Dictionary<string, string> { ["note"] = "new template {{value}}" },
            },
        ]);

        Assert.Empty(replaced);
        AlertTransition active = Assert.Single(driver.Engine.ActiveAlerts);
        Assert.Equal((AlertState.Firing, fingerprint), (active.State, active.Identity.Fingerprint));

        // The new rule instance reports the condition still holds: no second firing transition.
        Assert.Empty(driver.PipeSteps(1, 5, step => Mean(step, 1)));

        // Its next transition is rendered with the new binding's templates.
        AlertTransition resolved = Assert.Single(driver.Pipe(Mean(6, 0.25)));
        Assert.True(resolved.IsResolution);
        Assert.Equal(fingerprint, resolved.Identity.Fingerprint);
        Assert.Equal("new template 0.25", resolved.Annotations["note"]);
        Assert.Equal([AlertState.Firing, AlertState.Inactive], driver.Transitions.Select(t => t.State));
    }

    [Fact]
    public void ReplaceRules_AppliesTheNewRule_ToLaterRecords()
    {
        var old = new MeanAboveRule("A") { Threshold = 0.5 };
        var driver = new AnalysisTestDriver(Binding(old));
        driver.Pipe(Mean(0, 0));
        var replacement = new MeanAboveRule("A") { Threshold = 5 };

        driver.Engine.ReplaceRules([Binding(replacement), Binding(new MeanAboveRule("B"))]);
        IReadOnlyList<AlertTransition> caused = driver.Pipe(Mean(1, 1));

        Assert.Equal(["A", "B"], driver.Engine.Rules.Select(r => r.AlertName));
        Assert.Equal((1, 1), (old.Evaluations, replacement.Evaluations));
        Assert.Equal("B", Assert.Single(caused).RuleName);
    }

    [Fact]
    public void ReplaceRules_ResolvesTheAlertsOfRemovedRules()
    {
        var driver = new AnalysisTestDriver(
            Binding(new MeanAboveRule("Gone")),
            new RuleBinding { Rule = new MeanAboveRule("GonePending"), ForEvaluations = 5 },
            Binding(new MeanAboveRule("Kept")));
        driver.Pipe(Mean(4, 1));
        driver.Time.Advance(TimeSpan.FromMinutes(1));

        AlertTransition[] replaced = [.. driver.Engine.ReplaceRules([Binding(new MeanAboveRule("Kept"))])];

        AlertTransition resolved = Assert.Single(replaced, t => t.RuleName == "Gone");
        Assert.True(resolved.IsResolution);
        Assert.Equal((AlertState.Firing, AlertState.Inactive, 4L), (resolved.PreviousState, resolved.State, resolved.Step));
        Assert.Equal("the rule was removed from the configuration", resolved.Description);
        Assert.Equal(driver.Time.GetUtcNow(), resolved.At);

        // A pending alert of a removed rule goes inactive without being a resolution.
        AlertTransition dropped = Assert.Single(replaced, t => t.RuleName == "GonePending");
        Assert.Equal((AlertState.Pending, AlertState.Inactive), (dropped.PreviousState, dropped.State));
        Assert.False(dropped.IsResolution);

        Assert.Equal(2, replaced.Length);
        Assert.Equal("Kept", Assert.Single(driver.Engine.ActiveAlerts).RuleName);
    }

    [Fact]
    public void ReplaceRules_Throws_AndKeepsTheRules_WhenTwoNewRulesShareAName()
    {
        var driver = new AnalysisTestDriver(Binding(new MeanAboveRule("A")));
        driver.Pipe(Mean(0, 1));

        ArgumentException ex = Assert.Throws<ArgumentException>(() =>
            driver.Engine.ReplaceRules([Binding(new MeanAboveRule("B")), Binding(new MeanAboveRule("X"), name: "B")]));

        Assert.Contains("'B'", ex.Message, StringComparison.Ordinal);
        Assert.Equal(["A"], driver.Engine.Rules.Select(r => r.AlertName));
        Assert.Equal("A", Assert.Single(driver.Engine.ActiveAlerts).RuleName);
        Assert.Empty(driver.Pipe(Mean(1, 1)));
        Assert.True(Assert.Single(driver.Pipe(Mean(2, 0))).IsResolution);
    }

    [Fact]
    public void ReplaceRules_KeepsAFiringAlertFiring_WhenTheNewBindingAsksForMoreEvaluations()
    {
        var driver = new AnalysisTestDriver(Binding(new MeanAboveRule("A")));
        driver.Pipe(Mean(0, 1));

        driver.Engine.ReplaceRules([new RuleBinding { Rule = new MeanAboveRule("A"), ForEvaluations = 10 }]);

        Assert.Empty(driver.PipeSteps(1, 3, step => Mean(step, 1)));
        Assert.Equal(AlertState.Firing, Assert.Single(driver.Engine.ActiveAlerts).State);
    }

    [Fact]
    public void Process_DropsAndCountsAnExactDuplicate_OfTheNewestRecord()
    {
        var rule = new MeanAboveRule();
        var driver = new AnalysisTestDriver(rule);

        driver.Pipe(Mean(5, 0));
        driver.Pipe(Mean(5, 1));

        Assert.Equal((1L, 0L, 0L, 1L), (driver.Engine.DuplicateRecords, driver.Engine.OutOfOrderRecords, driver.Engine.LateRecords, driver.Engine.RecordsEvaluated));
        Assert.Equal(1, rule.Evaluations);
        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Process_DropsAndCountsADuplicate_OfAnOlderRecord()
    {
        var rule = new MeanAboveRule();
        var driver = new AnalysisTestDriver(rule);
        driver.PipeSteps(0, 10, step => Mean(step, 0));

        driver.Pipe(Mean(8, 0));

        Assert.Equal((1L, 0L), (driver.Engine.DuplicateRecords, driver.Engine.OutOfOrderRecords));
        Assert.Equal(11, rule.Evaluations);
    }

    [Fact]
    public void Process_EvaluatesTheSameStep_WhenItsSequenceNumberDiffers()
    {
        var rule = new MeanAboveRule();
        var driver = new AnalysisTestDriver(rule);
        driver.Pipe(Mean(5, 0));
        StepRecord again = Mean(5, 0);
        again.Sequence = 99;

        driver.Pipe(again);

        Assert.Equal((0L, 1L, 2L), (driver.Engine.DuplicateRecords, driver.Engine.OutOfOrderRecords, driver.Engine.RecordsEvaluated));
        Assert.Equal(2, rule.Evaluations);
    }

    [Fact]
    public void Process_EvaluatesAndCountsAnOlderRecord_WhenWithinTheGrace()
    {
        var rule = new MeanAboveRule();
        var driver = new AnalysisTestDriver(rule);
        driver.Pipe(Mean(100, 0));

        // 30 s behind the newest, exactly the default grace: still evaluated.
        AlertTransition firing = Assert.Single(driver.Pipe(Late(Mean(70, 1))));

        Assert.Equal((1L, 0L, 2L), (driver.Engine.OutOfOrderRecords, driver.Engine.LateRecords, driver.Engine.RecordsEvaluated));
        Assert.Equal(70, firing.Step);
        Assert.Equal(2, rule.Evaluations);
    }

    [Fact]
    public void Process_DropsAndCountsAnOlderRecord_WhenBeyondTheGrace()
    {
        var rule = new MeanAboveRule();
        var driver = new AnalysisTestDriver(rule);
        driver.Pipe(Mean(100, 0));

        Assert.Empty(driver.Pipe(Late(Mean(69, 1))));

        Assert.Equal((0L, 1L, 1L), (driver.Engine.OutOfOrderRecords, driver.Engine.LateRecords, driver.Engine.RecordsEvaluated));
        Assert.Equal(1, rule.Evaluations);
    }

    [Fact]
    public void Process_UsesTheConfiguredLateGrace()
    {
        var rule = new MeanAboveRule();
        var engine = new AnalysisEngine([Binding(rule)], new FakeTimeProvider(StartTime), new AnalysisEngineOptions { LateGrace = TimeSpan.FromSeconds(5) });

        engine.Process(Mean(10, 0));
        engine.Process(Late(Mean(5, 0)));
        engine.Process(Late(Mean(4, 0)));

        Assert.Equal((1L, 1L, 2L), (engine.OutOfOrderRecords, engine.LateRecords, engine.RecordsEvaluated));
        Assert.Equal(TimeSpan.FromSeconds(30), new AnalysisEngineOptions().LateGrace);
    }

    [Fact]
    public void Process_MeasuresTheGrace_FromTheNewestRecordsEventTime_NotAnOutOfOrderOne()
    {
        var driver = new AnalysisTestDriver(new MeanAboveRule());
        driver.Pipe(Mean(100, 0));
        driver.Pipe(Late(Mean(80, 0)));

        // 31 s behind step 100 though only 11 s behind the out-of-order step 80: late.
        driver.Pipe(Late(Mean(69, 0)));

        Assert.Equal((1L, 1L), (driver.Engine.OutOfOrderRecords, driver.Engine.LateRecords));
    }

    [Fact]
    public void Process_KeepsTrainAndEvalApart_WhenEvalStepsRepeatTrainStepNumbers()
    {
        var rule = new MeanAboveRule();
        var driver = new AnalysisTestDriver(rule);

        driver.PipeSteps(0, 100, step => Mean(step, 0));
        driver.PipeSteps(0, 10, step => WithMode(Mean(step, 0), Mode.Eval));
        driver.PipeSteps(0, 3, step => WithMode(Mean(step, 0), Mode.Predict));

        Assert.Equal((0L, 0L, 0L), (driver.Engine.OutOfOrderRecords, driver.Engine.LateRecords, driver.Engine.DuplicateRecords));
        Assert.Equal(101 + 11 + 4, rule.Evaluations);
    }

    [Fact]
    public void Process_AppliesTheOrderingPolicy_WithinTheEvalStream()
    {
        var driver = new AnalysisTestDriver(new MeanAboveRule());
        driver.PipeSteps(0, 100, step => Mean(step, 0));

        driver.Pipe(WithMode(Mean(10, 0), Mode.Eval));
        driver.Pipe(WithMode(Mean(10, 0), Mode.Eval));
        driver.Pipe(WithMode(Late(Mean(5, 0)), Mode.Eval));

        Assert.Equal((1L, 1L), (driver.Engine.DuplicateRecords, driver.Engine.OutOfOrderRecords));
    }

    [Fact]
    public void Process_KeepsStreamsApart_PerRunAndRank()
    {
        var rule = new MeanAboveRule();
        var driver = new AnalysisTestDriver(rule);

        driver.Pipe(Record("run-1", 0, 100, TimeOfStep(100), Tensor("t", 0, 0)));
        driver.Pipe(Record("run-1", 1, 0, TimeOfStep(0), Tensor("t", 0, 0)));
        driver.Pipe(Record("run-2", 0, 0, TimeOfStep(0), Tensor("t", 0, 0)));

        Assert.Equal((0L, 0L, 0L), (driver.Engine.OutOfOrderRecords, driver.Engine.LateRecords, driver.Engine.DuplicateRecords));
        Assert.Equal(3, rule.Evaluations);
    }

    [Fact]
    public void Process_DoesNotEvaluateAtBeginRecords()
    {
        var rule = new MeanAboveRule();
        var driver = new AnalysisTestDriver(rule);
        StepRecord atBegin = Mean(0, 1);
        atBegin.AtBegin = true;

        Assert.Empty(driver.Pipe(atBegin));

        Assert.Equal((0, 0L), (rule.Evaluations, driver.Engine.RecordsEvaluated));

        // Nor do they take a place in the stream: the step-0 record after it is no duplicate.
        Assert.Single(driver.Pipe(Mean(0, 1)));
        Assert.Equal((0L, 1L), (driver.Engine.DuplicateRecords, driver.Engine.RecordsEvaluated));
    }

    [Fact]
    public void Tick_CallsTimedRulesWithTheClocksTime_AndTurnsTheirReportsIntoTransitions()
    {
        var timed = new TimedProbeRule { Holds = true };
        var plain = new MeanAboveRule();
        var driver = new AnalysisTestDriver(
            new RuleBinding { Rule = timed, Severity = "critical", Actions = ["stop"] },
            Binding(plain));

        AlertTransition firing = Assert.Single(driver.Engine.Tick());

        Assert.Equal([StartTime], timed.Ticks);
        Assert.Equal(0, plain.Evaluations);
        Assert.Equal((AlertState.Firing, 42L, StartTime), (firing.State, firing.Step, firing.At));
        Assert.Equal(("Stalled", "run-9", "2", "critical"), (firing.RuleName, firing.Identity[AlertLabels.Run], firing.Identity[AlertLabels.Rank], firing.Identity[AlertLabels.Severity]));
        Assert.False(firing.Identity.Labels.ContainsKey(AlertLabels.Tensor));
        Assert.Equal(["stop"], firing.Actions);

        driver.Time.Advance(TimeSpan.FromSeconds(5));
        Assert.Empty(driver.Engine.Tick());
        timed.Holds = false;
        driver.Time.Advance(TimeSpan.FromSeconds(5));
        AlertTransition resolved = Assert.Single(driver.Engine.Tick());

        Assert.Equal([StartTime, StartTime.AddSeconds(5), StartTime.AddSeconds(10)], timed.Ticks);
        Assert.True(resolved.IsResolution);
        Assert.Equal(StartTime.AddSeconds(10), resolved.At);
    }

    [Fact]
    public void Tick_AppliesForDuration_InClockTime()
    {
        var timed = new TimedProbeRule { Holds = true };
        var driver = new AnalysisTestDriver(new RuleBinding { Rule = timed, ForDuration = TimeSpan.FromMinutes(1) });

        Assert.Equal(AlertState.Pending, Assert.Single(driver.Engine.Tick()).State);
        driver.Time.Advance(TimeSpan.FromSeconds(59));
        Assert.Empty(driver.Engine.Tick());
        driver.Time.Advance(TimeSpan.FromSeconds(1));
        AlertTransition firing = Assert.Single(driver.Engine.Tick());

        Assert.Equal((AlertState.Firing, StartTime, StartTime.AddMinutes(1)), (firing.State, firing.ActiveSince, firing.At));
    }

    [Fact]
    public void Tick_CountsAFaultyTimedRule_AndRunsTheOthers()
    {
        var other = new TimedProbeRule("Other") { Holds = true };
        var driver = new AnalysisTestDriver(Binding(new TimedProbeRule("Broken") { Throws = true }), Binding(other));

        Assert.Single(driver.Engine.Tick());

        Assert.Equal(1, driver.Engine.RuleFaults);
        Assert.Equal("Broken: InvalidOperationException: tick failed", driver.Engine.LastRuleFault);
        Assert.Single(other.Ticks);
    }

    /// <summary>A timed rule that reports about run-9 rank 2 at step 42 on every tick.</summary>
    private sealed class TimedProbeRule(string name = "Stalled") : ITimedTrainingRule
    {
        public string Name { get; } = name;

        public bool Holds { get; set; }

        public bool Throws { get; init; }

        public List<DateTimeOffset> Ticks { get; } = [];

        public void Evaluate(StepRecord record, RuleContext context)
        {
        }

        public void Tick(DateTimeOffset now, RuleContext context)
        {
            Ticks.Add(now);
            if (Throws)
            {
                throw new InvalidOperationException("tick failed");
            }

            context.ReportFor("run-9", 2, 42, null, Holds, 120, 60, "no record for 120 s");
        }
    }
}
