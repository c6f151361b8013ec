using Monitor.Analysis;
using Monitor.Cli;
using Monitor.Samples.Training;

namespace Monitor.IntegrationTests;

/// <summary>
/// The demo's faults against the default rule set (<c>monitor rules default</c>), each in a real TorchSharp run: the
/// rule named after the pathology fires within its detection delay of the fault, nothing fires before it, and a healthy
/// run stays silent (no drift alert either, over 3,000 steps). The table in README.md ("Faults and what catches them") quotes these delays.
/// </summary>
public sealed class FaultDetectionTests
{
    private const int FaultAt = 200;

    public static TheoryData<Fault, string, int> Faults => new()
    {
        // fault, rule that must fire, last step it may first fire at
        { Fault.VanishingGradients, "VanishingGradient", FaultAt + 10 },
        { Fault.ExplodingGradients, "ExplodingTensor", FaultAt + 50 },
        { Fault.DeadRelu, "DeadRelu", FaultAt + 5 },
        { Fault.SaturatedActivation, "SaturatedActivation", FaultAt + 5 },
        { Fault.PoorInit, "PoorWeightInitialization", FaultAt + 10 },
        // Blocks of 200 steps: the first whole block after the fault (400-599) is judged at its last step.
        { Fault.LossPlateau, "LossNotDecreasing", 599 },
        { Fault.Overfit, "Overfit", FaultAt + 100 },
        { Fault.Nan, "NonFiniteTensor", FaultAt },
        { Fault.ClassImbalance, "ClassImbalance", FaultAt + 5 },
        { Fault.UnchangedWeights, "UnchangedTensor", FaultAt + 5 },
    };

    [Theory]
    [MemberData(nameof(Faults))]
    public async Task DefaultRules_CatchEachFault_AfterItStarts_AndNeverBefore(Fault fault, string rule, int latestStep)
    {
        var output = new StringWriter();
        var runner = new DemoRunner(new DemoOptions { Steps = 600, Fault = fault, FaultAt = FaultAt, MetricsPort = 0, RunId = "fault-" + fault }, output);

        DemoResult result = await runner.RunAsync(TestContext.Current.CancellationToken);

        Assert.True(result.ExitCode == 0, output.ToString());
        Assert.All(result.Fired, alert => Assert.True(alert.Step >= FaultAt, $"{alert.RuleName} fired at step {alert.Step}, before the fault:\n{output}"));
        AlertTransition? first = result.Fired.Where(a => a.RuleName == rule).MinBy(a => a.Step);
        Assert.True(first is not null, $"{rule} never fired:\n{output}");
        Assert.True(first.Step <= latestStep, $"{rule} first fired at step {first.Step}, later than {latestStep}:\n{output}");
    }

    [Fact]
    public async Task DefaultRules_RaiseInputDriftForTheShiftedFeaturesOnly_AfterTheFault()
    {
        // As the README runs it: `monitor demo --steps 800 --fault input-drift --fault-at 300`.
        var output = new StringWriter();
        var runner = new DemoRunner(new DemoOptions { Steps = 800, Fault = Fault.InputDrift, FaultAt = 300, MetricsPort = 0, RunId = "input-drift" }, output);

        DemoResult result = await runner.RunAsync(TestContext.Current.CancellationToken);

        Assert.True(result.ExitCode == 0, output.ToString());
        AlertTransition[] drift = [.. result.Fired.Where(a => a.Identity[AlertLabels.Feature].Length > 0)];
        Assert.True(drift.All(a => a.Step >= 300), output.ToString());
        // The first window after the fault (steps 300-399) catches every shifted feature, and nothing else drifts.
        Assert.Equal(["x0", "x1", "x2", "x3"], drift.Select(a => a.Identity[AlertLabels.Feature]).Distinct().Order(StringComparer.Ordinal));
        Assert.All(drift, a => Assert.Equal(("InputDrift", 399L), (a.RuleName, a.Step)));
        Assert.Contains("feature=x0", output.ToString(), StringComparison.Ordinal);
        Assert.All(result.Fired, alert => Assert.True(alert.Step >= 300, $"{alert.RuleName} fired at step {alert.Step}, before the fault:\n{output}"));
    }

    [Fact]
    public async Task DefaultRules_RaiseConceptDrift_SoonAfterTheTeacherChanges()
    {
        var output = new StringWriter();
        var runner = new DemoRunner(new DemoOptions { Steps = 500, Fault = Fault.ConceptDrift, FaultAt = 300, MetricsPort = 0, RunId = "concept-drift" }, output);

        DemoResult result = await runner.RunAsync(TestContext.Current.CancellationToken);

        Assert.True(result.ExitCode == 0, output.ToString());
        Assert.All(result.Fired, alert => Assert.True(alert.Step >= 300, $"{alert.RuleName} fired at step {alert.Step}, before the fault:\n{output}"));
        AlertTransition concept = Assert.Single(result.Fired, a => a.RuleName == "ConceptDrift");
        Assert.Equal("error", concept.Identity[AlertLabels.Feature]);
        Assert.InRange(concept.Step, 300, 320);
    }

    [Fact]
    public async Task DefaultRules_StaySilent_OnAHealthyRunOf3000Steps()
    {
        var output = new StringWriter();
        var runner = new DemoRunner(new DemoOptions { Steps = 3000, MetricsPort = 0, RunId = "healthy-3000" }, output);

        DemoResult result = await runner.RunAsync(TestContext.Current.CancellationToken);

        Assert.True(result.ExitCode == 0, output.ToString());
        Assert.Empty(result.Fired);
        Assert.Contains("Alerts:  none fired", output.ToString(), StringComparison.Ordinal);
        // 3000 training steps, a validation pass every 10 and the end-of-run record, none lost.
        Assert.Equal(3301, result.Service.Decoded);
        Assert.Equal(0, result.Tracer.Lost);
    }
}
