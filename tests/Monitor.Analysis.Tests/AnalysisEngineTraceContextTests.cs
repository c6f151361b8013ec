using Monitor.Contracts.V1;
using static Monitor.Analysis.Tests.AnalysisTestDriver;

namespace Monitor.Analysis.Tests;

/// <summary>The engine copies the trace context passed in with a record onto the transitions that record causes.</summary>
public sealed class AnalysisEngineTraceContextTests
{
    private static readonly TraceContext Firing = new("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    private static readonly TraceContext Resolving = new("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331");

    private static StepRecord Mean(long step, double mean) => Record(step, Tensor("t", mean, Math.Abs(mean)));

    [Fact]
    public void Process_StampsEachTransition_WithTheTraceContextOfItsRecord()
    {
        var engine = new AnalysisEngine([new RuleBinding { Rule = new MeanAboveRule { Threshold = 0.5 } }], new Microsoft.Extensions.Time.Testing.FakeTimeProvider(StartTime));

        Assert.Empty(engine.Process(Mean(0, 0), new TraceContext("11111111111111111111111111111111", "2222222222222222")));
        AlertTransition fired = Assert.Single(engine.Process(Mean(1, 1), Firing));
        Assert.Empty(engine.Process(Mean(2, 1), Resolving));
        AlertTransition active = Assert.Single(engine.ActiveAlerts);
        AlertTransition resolved = Assert.Single(engine.Process(Mean(3, 0), Resolving));

        Assert.Equal(AlertState.Firing, fired.State);
        Assert.Equal(Firing, fired.TraceContext);
        Assert.Equal(Resolving, resolved.TraceContext);
        Assert.True(resolved.IsResolution);
        // Still firing at step 2: the active alert is the transition of step 2, with step 2's record.
        Assert.Equal(Resolving, active.TraceContext);
    }

    [Fact]
    public void Process_LeavesTheTraceContextEmpty_WhenTheRecordCarriedNone()
    {
        var engine = new AnalysisEngine([new RuleBinding { Rule = new MeanAboveRule { Threshold = 0.5 } }], new Microsoft.Extensions.Time.Testing.FakeTimeProvider(StartTime));

        AlertTransition fired = Assert.Single(engine.Process(Mean(0, 1)));

        Assert.True(fired.TraceContext.IsEmpty);
        Assert.Equal(TraceContext.None, fired.TraceContext);
    }

    [Fact]
    public void ReplaceRules_ResolvesWithoutATraceContext_TheRecordsContextIsNotReused()
    {
        var engine = new AnalysisEngine([new RuleBinding { Rule = new MeanAboveRule { Threshold = 0.5 } }], new Microsoft.Extensions.Time.Testing.FakeTimeProvider(StartTime));
        Assert.Single(engine.Process(Mean(0, 1), Firing));

        AlertTransition resolved = Assert.Single(engine.ReplaceRules([]));

        Assert.True(resolved.IsResolution);
        Assert.True(resolved.TraceContext.IsEmpty);
    }

    [Fact]
    public void TraceContext_IsNotPartOfTheAlertsIdentity()
    {
        var first = new AnalysisEngine([new RuleBinding { Rule = new MeanAboveRule { Threshold = 0.5 } }]);
        var second = new AnalysisEngine([new RuleBinding { Rule = new MeanAboveRule { Threshold = 0.5 } }]);

        AlertTransition traced = Assert.Single(first.Process(Mean(0, 1), Firing));
        AlertTransition untraced = Assert.Single(second.Process(Mean(0, 1)));

        Assert.Equal(untraced.Identity.Fingerprint, traced.Identity.Fingerprint);
        Assert.Equal(untraced.Identity, traced.Identity);
    }
}
