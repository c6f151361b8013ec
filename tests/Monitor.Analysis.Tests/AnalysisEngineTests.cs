using Monitor.Contracts.V1;
using static Monitor.Analysis.Tests.AnalysisTestDriver;

namespace Monitor.Analysis.Tests;

public sealed class AnalysisEngineTests
{
    private static StepRecord Mean(long step, double mean) => Record(step, Tensor("t", mean, Math.Abs(mean)));

    [Fact]
    public void Process_GoesInactivePendingFiringResolved_WhenConditionHoldsForForEvaluationsThenStops()
    {
        var driver = new AnalysisTestDriver(new MeanAboveRule { ForEvaluations = 2, Threshold = 0.5 });

        Assert.Empty(driver.Pipe(Mean(0, 0.1)));
        AlertTransition pending = Assert.Single(driver.Pipe(Mean(1, 0.9)));
        Assert.Empty(driver.Pipe(Mean(2, 0.9)));
        AlertTransition firing = Assert.Single(driver.Pipe(Mean(3, 0.8)));
        Assert.Empty(driver.Pipe(Mean(4, 0.7)));
        AlertTransition resolved = Assert.Single(driver.Pipe(Mean(5, 0.2)));
        Assert.Empty(driver.Pipe(Mean(6, 0.2)));

        Assert.Equal((AlertState.Inactive, AlertState.Pending, 1L), (pending.PreviousState, pending.State, pending.Step));
        Assert.Equal((AlertState.Pending, AlertState.Firing, 3L), (firing.PreviousState, firing.State, firing.Step));
        Assert.Equal((AlertState.Firing, AlertState.Inactive, 5L), (resolved.PreviousState, resolved.State, resolved.Step));
        Assert.False(pending.IsResolution);
        Assert.False(firing.IsResolution);
        Assert.True(resolved.IsResolution);

        // ActiveSince is when the condition started to hold; At is the event time of the record that caused the change.
        Assert.All([pending, firing, resolved], t => Assert.Equal(TimeOfStep(1), t.ActiveSince));
        Assert.Equal(TimeOfStep(1), pending.At);
        Assert.Equal(TimeOfStep(3), firing.At);
        Assert.Equal(TimeOfStep(5), resolved.At);

        Assert.Equal(0.8, firing.Value);
        Assert.Equal(0.5, firing.Threshold);
        Assert.Equal("mean of t is 0.8", firing.Description);
        Assert.Equal(0.2, resolved.Value);
        Assert.Equal("MeanAbove", firing.RuleName);
        Assert.Equal(pending.Identity, firing.Identity);
        Assert.Equal(firing.Identity, resolved.Identity);
        Assert.Equal(3, driver.Transitions.Count);
    }

    [Fact]
    public void Process_FiresAtOnce_WhenForEvaluationsIsZero()
    {
        var driver = new AnalysisTestDriver(new MeanAboveRule { ForEvaluations = 0 });

        AlertTransition firing = Assert.Single(driver.Pipe(Mean(7, 1)));

        Assert.Equal(AlertState.Inactive, firing.PreviousState);
        Assert.Equal(AlertState.Firing, firing.State);
        Assert.Equal(7, firing.Step);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(10)]
    public void Process_FiresOnTheEvaluationAfterForEvaluationsPendingOnes(int forEvaluations)
    {
        var driver = new AnalysisTestDriver(new MeanAboveRule { ForEvaluations = forEvaluations });

        driver.PipeSteps(0, 50, step => Mean(step, 1));

        Assert.Equal(2, driver.Transitions.Count);
        Assert.Equal((AlertState.Pending, 0L), (driver.Transitions[0].State, driver.Transitions[0].Step));
        Assert.Equal((AlertState.Firing, (long)forEvaluations), (driver.Transitions[1].State, driver.Transitions[1].Step));
    }

    [Fact]
    public void Process_DoesNotReEmitFiring_WhileConditionKeepsHolding()
    {
        var driver = new AnalysisTestDriver(new MeanAboveRule { ForEvaluations = 1 });

        driver.PipeSteps(0, 1, step => Mean(step, 1));
        IReadOnlyList<AlertTransition> later = driver.PipeSteps(2, 500, step => Mean(step, 1 + step));

        Assert.Empty(later);
        Assert.Equal([AlertState.Pending, AlertState.Firing], driver.Transitions.Select(t => t.State));
    }

    [Fact]
    public void Process_EmitsResolutionOnce_WhenConditionStopsHolding()
    {
        var driver = new AnalysisTestDriver(new MeanAboveRule());
        driver.PipeSteps(0, 4, step => Mean(step, 1));

        IReadOnlyList<AlertTransition> after = driver.PipeSteps(5, 100, step => Mean(step, -1));

        AlertTransition resolution = Assert.Single(after);
        Assert.True(resolution.IsResolution);
        Assert.Equal(5, resolution.Step);
    }

    [Fact]
    public void Process_ReportsPendingToInactive_AsNotAResolution()
    {
        var driver = new AnalysisTestDriver(new MeanAboveRule { ForEvaluations = 3 });

        driver.PipeSteps(0, 1, step => Mean(step, 1));
        AlertTransition dropped = Assert.Single(driver.Pipe(Mean(2, 0)));

        Assert.Equal(AlertState.Pending, dropped.PreviousState);
        Assert.Equal(AlertState.Inactive, dropped.State);
        Assert.False(dropped.IsResolution);
    }

    [Fact]
    public void Process_CountsForEvaluationsAfresh_WhenConditionHoldsAgainAfterPendingDropped()
    {
        var driver = new AnalysisTestDriver(new MeanAboveRule { ForEvaluations = 2 });

        driver.PipeSteps(0, 1, step => Mean(step, 1)); // pending at 0
        driver.Pipe(Mean(2, 0));                       // back to inactive
        driver.PipeSteps(3, 10, step => Mean(step, 1)); // pending at 3, firing at 5

        Assert.Equal(
            [(AlertState.Pending, 0L), (AlertState.Inactive, 2L), (AlertState.Pending, 3L), (AlertState.Firing, 5L)],
            driver.Transitions.Select(t => (t.State, t.Step)));
        Assert.Equal(TimeOfStep(3), driver.Transitions[3].ActiveSince);
    }

    [Fact]
    public void Process_EmitsNothing_WhenConditionNeverHolds()
    {
        var driver = new AnalysisTestDriver(new MeanAboveRule());

        driver.PipeSteps(0, 100, step => Mean(step, -step));

        Assert.Empty(driver.Transitions);
        Assert.Empty(driver.Engine.ActiveAlerts);
    }

    [Fact]
    public void Process_KeepsAlertState_WhenRuleDoesNotReportOnTheSeries()
    {
        var driver = new AnalysisTestDriver(new MeanAboveRule());
        driver.Pipe(Mean(0, 1));

        // Records without the tensor: the rule says nothing about it, so the alert keeps firing.
        driver.PipeSteps(1, 10, step => Record(step));

        Assert.Single(driver.Transitions);
        Assert.Equal(AlertState.Firing, Assert.Single(driver.Engine.ActiveAlerts).State);
    }

    [Fact]
    public void Process_SetsLabels_FromRuleRunRankAndTensor()
    {
        var driver = new AnalysisTestDriver(new MeanAboveRule("HighMean") { Severity = "critical" });

        AlertTransition firing = Assert.Single(driver.Pipe(Record("run-7", 3, 0, TimeOfStep(0), Tensor("fc1.weight.grad", 1, 1))));

        Assert.Equal(
            new Dictionary<string, string>
            {
                [AlertLabels.AlertName] = "HighMean",
                [AlertLabels.Run] = "run-7",
                [AlertLabels.Rank] = "3",
                [AlertLabels.Tensor] = "fc1.weight.grad",
                [AlertLabels.Severity] = "critical",
            },
            firing.Identity.Labels);
        Assert.Equal("fc1.weight.grad", firing.Identity[AlertLabels.Tensor]);
        Assert.Equal("", firing.Identity["no-such-label"]);
    }

    [Fact]
    public void Process_OmitsTensorLabel_WhenRuleReportsAboutTheRank()
    {
        var driver = new AnalysisTestDriver(new MeanAboveRule { RankLevel = true });

        AlertTransition firing = Assert.Single(driver.Pipe(Mean(0, 1)));

        Assert.False(firing.Identity.Labels.ContainsKey(AlertLabels.Tensor));
        Assert.Equal(4, firing.Identity.Labels.Count);
    }

    [Fact]
    public void Process_KeepsSeparateAlerts_PerRunRankAndTensor()
    {
        var driver = new AnalysisTestDriver(new MeanAboveRule());
        StepRecord[] records =
        [
            Record("run-1", 0, 0, TimeOfStep(0), Tensor("a", 1, 1), Tensor("b", 1, 1)),
            Record("run-1", 1, 0, TimeOfStep(0), Tensor("a", 1, 1)),
            Record("run-2", 0, 0, TimeOfStep(0), Tensor("a", 1, 1)),
        ];

        IReadOnlyList<AlertTransition> fired = driver.PipeAll(records);

        Assert.Equal(4, fired.Count);
        Assert.All(fired, t => Assert.Equal(AlertState.Firing, t.State));
        Assert.Equal(4, fired.Select(t => t.Identity.Fingerprint).Distinct().Count());
        Assert.Equal(
            ["run-1/0/a", "run-1/0/b", "run-1/1/a", "run-2/0/a"],
            fired.Select(t => $"{t.Identity[AlertLabels.Run]}/{t.Identity[AlertLabels.Rank]}/{t.Identity[AlertLabels.Tensor]}"));

        // Resolving one series leaves the others firing.
        AlertTransition resolved = Assert.Single(driver.Pipe(Record("run-1", 1, 1, TimeOfStep(1), Tensor("a", 0, 0))));
        Assert.True(resolved.IsResolution);
        Assert.Equal("1", resolved.Identity[AlertLabels.Rank]);
        Assert.Equal(3, driver.Engine.ActiveAlerts.Count());
    }

    [Fact]
    public void Process_KeepsSeparateAlerts_PerRule()
    {
        var driver = new AnalysisTestDriver(new MeanAboveRule("A"), new MeanAboveRule("B") { Threshold = 5 });

        IReadOnlyList<AlertTransition> first = driver.Pipe(Mean(0, 10));
        IReadOnlyList<AlertTransition> second = driver.Pipe(Mean(1, 3));

        Assert.Equal(["A", "B"], first.Select(t => t.RuleName));
        AlertTransition resolved = Assert.Single(second);
        Assert.Equal("B", resolved.RuleName);
        Assert.True(resolved.IsResolution);
    }

    [Fact]
    public void Process_CountsRuleFaults_AndStillRunsTheOtherRules()
    {
        var before = new MeanAboveRule("Before");
        var after = new MeanAboveRule("After");
        var driver = new AnalysisTestDriver(before, new ThrowingRule("Broken"), after);

        IReadOnlyList<AlertTransition> fired = driver.Pipe(Mean(0, 1));
        driver.Pipe(Mean(1, 1));
        driver.Pipe(Mean(2, 1));

        Assert.Equal(3, driver.Engine.RuleFaults);
        Assert.Equal("Broken: InvalidOperationException: broken at step 2", driver.Engine.LastRuleFault);
        Assert.Equal(["Before", "After"], fired.Select(t => t.RuleName));
        Assert.Equal(3, before.Evaluations);
        Assert.Equal(3, after.Evaluations);
    }

    [Fact]
    public void Process_KeepsWhatAFaultyRuleReportedBeforeThrowing()
    {
        var driver = new AnalysisTestDriver(new ThrowingRule { ReportFirst = true });

        AlertTransition fired = Assert.Single(driver.Pipe(Mean(0, 1)));

        Assert.Equal("Throwing", fired.RuleName);
        Assert.Equal(1, driver.Engine.RuleFaults);
    }

    [Fact]
    public void RuleFaults_IsZero_WhenNoRuleThrew()
    {
        var driver = new AnalysisTestDriver(new MeanAboveRule());
        driver.Pipe(Mean(0, 1));

        Assert.Equal(0, driver.Engine.RuleFaults);
        Assert.Null(driver.Engine.LastRuleFault);
    }

    [Fact]
    public void Constructor_Throws_WhenTwoRulesShareAName()
    {
        var ex = Assert.Throws<ArgumentException>(() => new AnalysisEngine([new MeanAboveRule("Same"), new MeanAboveRule("Other"), new MeanAboveRule("Same")]));

        Assert.Contains("'Same'", ex.Message, StringComparison.Ordinal);
        Assert.Equal("rules", ex.ParamName);
    }

    [Fact]
    public void Constructor_AcceptsNamesDifferingOnlyInCase()
    {
        var engine = new AnalysisEngine([new MeanAboveRule("rule"), new MeanAboveRule("Rule")]);

        Assert.Equal(["rule", "Rule"], engine.Rules.Select(r => r.AlertName));
    }

    [Fact]
    public void Constructor_Throws_WhenRulesIsNull()
    {
        Assert.Throws<ArgumentNullException>(() => new AnalysisEngine((IEnumerable<RuleBinding>)null!));
    }

    [Fact]
    public void Process_Throws_WhenRecordIsNull()
    {
        var driver = new AnalysisTestDriver(new MeanAboveRule());

        Assert.Throws<ArgumentNullException>(() => driver.Engine.Process(null!));
    }

    [Fact]
    public void ActiveAlerts_ListsPendingAndFiringOnly()
    {
        var driver = new AnalysisTestDriver(new MeanAboveRule { ForEvaluations = 1 });

        driver.Pipe(Record(0, Tensor("pending", 1, 1), Tensor("firing", 1, 1), Tensor("resolved", 1, 1), Tensor("never", 0, 0)));
        driver.Pipe(Record(1, Tensor("firing", 1, 1), Tensor("resolved", 1, 1)));
        driver.Pipe(Record(2, Tensor("pending", 0, 0), Tensor("resolved", 0, 0)));
        driver.Pipe(Record(3, Tensor("pending", 1, 1), Tensor("firing", 2, 2)));

        var active = driver.Engine.ActiveAlerts.ToDictionary(a => a.Identity[AlertLabels.Tensor]);
        Assert.Equal(["firing", "pending"], active.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(AlertState.Pending, active["pending"].State);
        Assert.Equal(AlertState.Firing, active["firing"].State);
        // The entry describes the latest evaluation, while ActiveSince stays at the start.
        Assert.Equal(3, active["firing"].Step);
        Assert.Equal(2.0, active["firing"].Value);
        Assert.Equal(TimeOfStep(0), active["firing"].ActiveSince);
        Assert.Equal(TimeOfStep(3), active["pending"].ActiveSince);
    }

    [Fact]
    public void Process_UsesTheTimeProvider_WhenRecordHasNoEventTime()
    {
        var driver = new AnalysisTestDriver(new MeanAboveRule { ForEvaluations = 1 });
        DateTimeOffset first = driver.Time.GetUtcNow();

        driver.Pipe(Record(DefaultRun, 0, 0, null, Tensor("t", 1, 1)));
        driver.Time.Advance(TimeSpan.FromMinutes(5));
        driver.Pipe(Record(DefaultRun, 0, 1, null, Tensor("t", 1, 1)));

        Assert.Equal(first, driver.Transitions[0].At);
        Assert.Equal(first.AddMinutes(5), driver.Transitions[1].At);
        Assert.Equal(first, driver.Transitions[1].ActiveSince);
    }

    [Fact]
    public void Process_UsesTheRecordsEventTime_ToTheTick_WhenSet()
    {
        var driver = new AnalysisTestDriver(new MeanAboveRule());
        DateTimeOffset eventTime = new DateTimeOffset(2024, 6, 1, 12, 0, 0, TimeSpan.Zero).AddTicks(1234567);
        driver.Time.Advance(TimeSpan.FromDays(300));

        AlertTransition fired = Assert.Single(driver.Pipe(Record(DefaultRun, 0, 0, eventTime, Tensor("t", 1, 1))));

        Assert.Equal(eventTime, fired.At);
    }

    [Fact]
    public void Fingerprint_IsTheSame_ForEqualLabelsInAnyInsertionOrder()
    {
        var forward = new Dictionary<string, string> { ["alertname"] = "X", ["run"] = "r", ["rank"] = "0", ["tensor"] = "t" };
        var backward = new Dictionary<string, string> { ["tensor"] = "t", ["rank"] = "0", ["run"] = "r", ["alertname"] = "X" };

        var a = new AlertIdentity(forward);
        var b = new AlertIdentity(backward);

        Assert.Equal(a.Fingerprint, b.Fingerprint);
        Assert.Equal(a, b);
        Assert.Equal(a.GetHashCode(), b.GetHashCode());
        Assert.Equal(a.ToString(), b.ToString());
        Assert.Equal("{alertname=\"X\", rank=\"0\", run=\"r\", tensor=\"t\"}", a.ToString());
        Assert.Matches("^[0-9a-f]{16}$", a.Fingerprint);
    }

    [Fact]
    public void Fingerprint_IsFnv1aOffsetBasis_WhenThereAreNoLabels()
    {
        // FNV-1a 64 of nothing is its offset basis; pins the algorithm so fingerprints stay stable across releases.
        Assert.Equal("cbf29ce484222325", new AlertIdentity(new Dictionary<string, string>()).Fingerprint);
    }

    [Fact]
    public void Fingerprint_IsStable_AcrossEngines()
    {
        var first = new AnalysisTestDriver(new MeanAboveRule());
        var second = new AnalysisTestDriver(new MeanAboveRule());

        string a = Assert.Single(first.Pipe(Mean(0, 1))).Identity.Fingerprint;
        second.Pipe(Mean(0, -1));
        string b = Assert.Single(second.Pipe(Mean(1, 1))).Identity.Fingerprint;

        Assert.Equal(a, b);
    }

    [Theory]
    [InlineData("run", "r2")]
    [InlineData("rank", "1")]
    [InlineData("tensor", "u")]
    [InlineData("alertname", "Y")]
    [InlineData("extra", "")]
    public void Fingerprint_Differs_WhenAnyLabelDiffers(string name, string value)
    {
        var labels = new Dictionary<string, string> { ["alertname"] = "X", ["run"] = "r", ["rank"] = "0", ["tensor"] = "t" };
        var changed = new Dictionary<string, string>(labels) { [name] = value };

        Assert.NotEqual(new AlertIdentity(labels).Fingerprint, new AlertIdentity(changed).Fingerprint);
        Assert.NotEqual(new AlertIdentity(labels), new AlertIdentity(changed));
    }

    [Fact]
    public void Fingerprint_Differs_WhenTheSameCharactersAreSplitDifferently()
    {
        var a = new AlertIdentity(new Dictionary<string, string> { ["ab"] = "c" });
        var b = new AlertIdentity(new Dictionary<string, string> { ["a"] = "bc" });

        Assert.NotEqual(a.Fingerprint, b.Fingerprint);
    }
}
