using Monitor.Analysis.Rules;
using Monitor.Contracts.V1;
using static Monitor.Analysis.Tests.AnalysisTestDriver;
using static Monitor.Analysis.Tests.RuleTestData;

namespace Monitor.Analysis.Tests;

public sealed class AllZeroRuleTests
{
    // n zeros among 10 elements, the rest 0.5.
    private static float[] Zeros(int n) => [.. Enumerable.Range(0, 10).Select(i => i < n ? 0f : 0.5f)];

    [Fact]
    public void Evaluate_FiresWhenEveryElementIsZero_AndResolvesWhenOneIsNot()
    {
        var driver = new AnalysisTestDriver(new AllZeroRule());

        // Step s has min(s, 10) zeros until step 20, then 9 zeros.
        driver.PipeSteps(0, 30, step => Record(step,
            Values("fc1.weight.grad", Zeros(step < 20 ? (int)Math.Min(step, 10) : 9), raw: false, Collection.Gradients)));

        Assert.Equal([(AlertState.Firing, 10L), (AlertState.Inactive, 20L)], driver.Transitions.Select(t => (t.State, t.Step)));
        AlertTransition firing = driver.Transitions[0];
        Assert.Equal((100.0, 100.0), (firing.Value, firing.Threshold));
        Assert.Equal("fc1.weight.grad", firing.Identity[AlertLabels.Tensor]);
        Assert.Contains("100% of fc1.weight.grad's 10 elements are zero", firing.Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_FiresAtThePercentage_WhenTheThresholdIsLower()
    {
        var driver = new AnalysisTestDriver(new AllZeroRule { Threshold = 60 });

        // 60% zeros reached at step 6 (>= threshold fires).
        driver.PipeSteps(0, 9, step => Record(step, Values("w", Zeros((int)step), raw: false, Collection.Weights)));

        AlertTransition firing = Assert.Single(driver.Transitions);
        Assert.Equal((6L, 60.0), (firing.Step, firing.Value));
    }

    [Fact]
    public void Evaluate_NeverFires_WhenTensorsHaveNonZeroValues()
    {
        var random = new Random(11);
        var driver = new AnalysisTestDriver(new AllZeroRule());

        // ReLU-like outputs: about half zeros, never all.
        driver.PipeSteps(0, 300, step => Record(step,
            Values("relu.output", [.. Normal(random, 64).Select(x => Math.Max(x, 0f))], raw: false, Collection.Activations),
            Values("fc1.bias", Zeros(9), raw: false, Collection.Biases)));

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Evaluate_CountsNonFiniteElements_AsNotZero()
    {
        var driver = new AnalysisTestDriver(new AllZeroRule());

        driver.Pipe(Record(0, Values("g", [0f, 0f, float.NaN], raw: false, Collection.Gradients)));
        driver.Pipe(Record(1, Values("g", [0f, -0f, 0f], raw: false, Collection.Gradients)));

        Assert.Equal(1, Assert.Single(driver.Transitions).Step);
    }

    [Fact]
    public void Evaluate_SkipsEmptyTensors()
    {
        var driver = new AnalysisTestDriver(new AllZeroRule());

        driver.PipeSteps(0, 5, step => Record(step, Values("empty", [], raw: false, Collection.Weights)));

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Evaluate_LooksOnlyAtSelectedTensors_WhenTheSelectorIsNarrowed()
    {
        var driver = new AnalysisTestDriver(new AllZeroRule { Selector = TensorSelector.Of(Collection.Gradients) });

        driver.PipeSteps(0, 5, step => Record(step, Values("fc1.bias", Zeros(10), raw: false, Collection.Biases)));

        Assert.Empty(driver.Transitions);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(-5.0)]
    [InlineData(100.5)]
    [InlineData(double.NaN)]
    public void Init_Throws_WhenThresholdIsNotAPercentage(double threshold)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new AllZeroRule { Threshold = threshold });
    }
}
