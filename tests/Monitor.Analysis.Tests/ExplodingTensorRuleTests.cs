using Monitor.Analysis.Rules;
using Monitor.Contracts.V1;
using static Monitor.Analysis.Tests.AnalysisTestDriver;
using static Monitor.Analysis.Tests.RuleTestData;

namespace Monitor.Analysis.Tests;

public sealed class ExplodingTensorRuleTests
{
    // From step 30 the gradient overflows to +Inf; from step 35 it is NaN; from step 40 it is finite again.
    private static StepRecord Scenario(long step) => Record(step,
        Values("fc1.weight", [0.1f, -0.2f, 0.3f], raw: false, Collection.Weights),
        Values("fc1.weight.grad", step switch
        {
            >= 30 and < 35 => [1e-3f, float.PositiveInfinity, float.NegativeInfinity],
            >= 35 and < 40 => [float.NaN, 1e-3f, 2e-3f],
            _ => [1e-3f, -2e-3f, 3e-3f],
        }, raw: false, Collection.Gradients));

    [Fact]
    public void Evaluate_FiresAtTheFirstInf_AndResolvesWhenFiniteAgain()
    {
        var driver = new AnalysisTestDriver(new ExplodingTensorRule());

        driver.PipeSteps(0, 60, Scenario);

        Assert.Equal([(AlertState.Firing, 30L), (AlertState.Inactive, 40L)], driver.Transitions.Select(t => (t.State, t.Step)));
        AlertTransition firing = driver.Transitions[0];
        Assert.Equal(("ExplodingTensor", "fc1.weight.grad"), (firing.RuleName, firing.Identity[AlertLabels.Tensor]));
        Assert.Equal(2, firing.Value);
        Assert.Equal(0, firing.Threshold);
        Assert.Contains("0 NaN and 2 Inf of 3 elements at step 30", firing.Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_IgnoresInfinities_WhenOnlyNan()
    {
        var driver = new AnalysisTestDriver(new ExplodingTensorRule { OnlyNan = true });

        driver.PipeSteps(0, 60, Scenario);

        Assert.Equal([(AlertState.Firing, 35L), (AlertState.Inactive, 40L)], driver.Transitions.Select(t => (t.State, t.Step)));
    }

    [Fact]
    public void Evaluate_NeverFires_WhenValuesAreLargeButFinite()
    {
        var random = new Random(3);
        var driver = new AnalysisTestDriver(new ExplodingTensorRule());

        driver.PipeSteps(0, 300, step => Record(step,
            Values("w", Normal(random, 32, std: 1e30), raw: false, Collection.Weights),
            Values("g", [float.MaxValue, -float.MaxValue, float.Epsilon], raw: false, Collection.Gradients)));

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Evaluate_LooksOnlyAtSelectedTensors_WhenTheSelectorIsNarrowed()
    {
        var driver = new AnalysisTestDriver(new ExplodingTensorRule { Selector = new TensorSelector([], exclude: [@"\.grad$"]) });

        driver.PipeSteps(0, 60, Scenario);

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Evaluate_ReportsEachTensorApart()
    {
        var driver = new AnalysisTestDriver(new ExplodingTensorRule());
        float[] nan = [float.NaN];

        driver.Pipe(Record(0, Values("a", nan, raw: false, Collection.Weights), Values("b", nan, raw: false, Collection.Losses)));

        Assert.Equal(["a", "b"], driver.Transitions.Select(t => t.Identity[AlertLabels.Tensor]));
    }
}
