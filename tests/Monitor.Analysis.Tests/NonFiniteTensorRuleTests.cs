using Monitor.Analysis.Rules;
using Monitor.Contracts.V1;
using static Monitor.Analysis.Tests.AnalysisTestDriver;
using static Monitor.Analysis.Tests.RuleTestData;

namespace Monitor.Analysis.Tests;

public sealed class NonFiniteTensorRuleTests
{
    private static TensorRecord Clean(string name, Collection collection) => Values(name, [0.5f, -1f, 2f, 0f], raw: false, collection);

    // fc2.weight.grad carries a NaN at steps 12, 13 and 14 (and an Inf at 13); every other step and tensor is finite.
    private static StepRecord Scenario(long step) => Record(step,
        Clean("fc1.weight", Collection.Weights),
        Clean("fc1.weight.grad", Collection.Gradients),
        step is >= 12 and <= 14
            ? Values("fc2.weight.grad", [1f, float.NaN, step == 13 ? float.PositiveInfinity : 3f, 4f], raw: false, Collection.Gradients)
            : Clean("fc2.weight.grad", Collection.Gradients));

    [Fact]
    public void Evaluate_FiresAtTheFirstNaN_AndResolvesAtTheFirstCleanStep()
    {
        var driver = new AnalysisTestDriver(new NonFiniteTensorRule());

        driver.PipeSteps(0, 40, Scenario);

        Assert.Equal([(AlertState.Firing, 12L), (AlertState.Inactive, 15L)], driver.Transitions.Select(t => (t.State, t.Step)));
        AlertTransition firing = driver.Transitions[0];
        Assert.Equal("NonFiniteTensor", firing.RuleName);
        Assert.Equal("", firing.Identity[AlertLabels.Tensor]);
        Assert.Equal(1, firing.Value);
        Assert.Contains("fc2.weight.grad", firing.Description, StringComparison.Ordinal);
        Assert.Contains("1 of 3 traced tensors", firing.Description, StringComparison.Ordinal);
        Assert.True(driver.Transitions[1].IsResolution);
    }

    [Fact]
    public void Evaluate_KeepsTheFirstStep_InLaterDescriptions()
    {
        var driver = new AnalysisTestDriver(new NonFiniteTensorRule());

        driver.PipeSteps(0, 13, Scenario);

        AlertTransition active = Assert.Single(driver.Engine.ActiveAlerts);
        Assert.Equal(13, active.Step);
        Assert.Equal(2, active.Value);
        Assert.Contains("(1 NaN, 1 Inf in all)", active.Description, StringComparison.Ordinal);
        Assert.Contains("non-finite since step 12", active.Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_RaisesOneAlertPerRank_WhenEveryTensorIsNaN()
    {
        var driver = new AnalysisTestDriver(new NonFiniteTensorRule());
        float[] poisoned = [float.NaN, float.NaN];

        driver.PipeSteps(0, 5, step => Record(step,
            Values("a", poisoned, raw: false, Collection.Weights),
            Values("b", poisoned, raw: false, Collection.Gradients),
            Values("c", poisoned, raw: false, Collection.Activations)));
        driver.Pipe(Record("run-1", 1, 6, TimeOfStep(6), Values("a", poisoned, raw: false, Collection.Weights)));

        Assert.Equal([("0", 0L), ("1", 6L)], driver.Transitions.Select(t => (t.Identity[AlertLabels.Rank], t.Step)));
        Assert.Contains("3 of 3 traced tensors", driver.Transitions[0].Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_NeverFires_WhenEveryValueIsFinite()
    {
        var random = new Random(7);
        var driver = new AnalysisTestDriver(new NonFiniteTensorRule());

        driver.PipeSteps(0, 500, step => Record(step,
            Values("w", Normal(random, 64, std: 1e3), raw: false, Collection.Weights),
            Values("g", Normal(random, 64, std: 1e-30), raw: false, Collection.Gradients)));

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Evaluate_IgnoresTensors_OutsideTheSelector()
    {
        var driver = new AnalysisTestDriver(new NonFiniteTensorRule { Selector = TensorSelector.Of(Collection.Weights) });

        driver.PipeSteps(0, 20, Scenario);

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Evaluate_GivesNoVerdict_WhenNoTensorIsSelected()
    {
        var driver = new AnalysisTestDriver(new NonFiniteTensorRule { Selector = TensorSelector.Of(Collection.Gradients) });

        driver.PipeSteps(0, 13, Scenario);
        // Records without gradients neither confirm nor clear the alert.
        driver.PipeSteps(14, 20, step => Record(step, Clean("fc1.weight", Collection.Weights)));

        AlertTransition firing = Assert.Single(driver.Transitions);
        Assert.Equal(12, firing.Step);
        Assert.Single(driver.Engine.ActiveAlerts);
    }

    [Fact]
    public void Requirements_AreNone_WhenEveryTensorIsSelected()
    {
        Assert.Empty(new NonFiniteTensorRule().Requirements);
        TensorRequirement requirement = Assert.Single(new NonFiniteTensorRule { Selector = TensorSelector.Of(Collection.Gradients) }.Requirements);
        Assert.Equal(("gradients", false), (requirement.Collection, requirement.Raw));
    }
}
