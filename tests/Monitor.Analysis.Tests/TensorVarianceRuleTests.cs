using Monitor.Analysis.Rules;
using Monitor.Contracts.V1;
using static Monitor.Analysis.Tests.AnalysisTestDriver;
using static Monitor.Analysis.Tests.RuleTestData;

namespace Monitor.Analysis.Tests;

public sealed class TensorVarianceRuleTests
{
    private static TensorRecord Weight(string name, double variance, ulong count = 100) =>
        Summary(name, new TensorSummary { Count = count, Variance = variance, Mean = 0, Min = -1, Max = 1 }, Collection.Weights);

    [Fact]
    public void Evaluate_FiresWhenTheVarianceExceedsTheMaximum_AndResolvesBelowIt()
    {
        var driver = new AnalysisTestDriver(new TensorVarianceRule());

        // Variance 0.5 * 1.25^step: above 10 first at step 14 (0.5 * 1.25^14 = 11.4); back to 1 from step 20.
        driver.PipeSteps(0, 30, step => Record(step, Weight("fc1.weight", step < 20 ? 0.5 * Math.Pow(1.25, step) : 1)));

        Assert.Equal([(AlertState.Firing, 14L), (AlertState.Inactive, 20L)], driver.Transitions.Select(t => (t.State, t.Step)));
        AlertTransition firing = driver.Transitions[0];
        Assert.Equal(0.5 * Math.Pow(1.25, 14), firing.Value, 1e-9);
        Assert.Equal(10, firing.Threshold);
        Assert.Contains("above the maximum 10", firing.Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_FiresWhenTheVarianceFallsBelowTheMinimum()
    {
        var driver = new AnalysisTestDriver(new TensorVarianceRule());

        // Variance 0.1^step: below 1e-5 first at step 6 (1e-6); 1e-5 itself (step 5) is not below.
        driver.PipeSteps(0, 8, step => Record(step, Weight("fc1.weight", Math.Pow(10, -step))));

        AlertTransition firing = Assert.Single(driver.Transitions);
        Assert.Equal((6L, 1e-5), (firing.Step, firing.Threshold));
        Assert.Contains("below the minimum", firing.Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_NeverFires_WhenVariancesStayWithinBounds()
    {
        var random = new Random(5);
        var driver = new AnalysisTestDriver(new TensorVarianceRule());

        // Real weights: N(0, 0.05^2) .. N(0, 2^2), variance 2.5e-3 .. 4.
        driver.PipeSteps(0, 300, step => Record(step,
            Values("fc1.weight", Normal(random, 256, std: 0.05 + 1.95 * random.NextDouble()), raw: false, Collection.Weights)));

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Evaluate_ChecksOneSideOnly_WhenTheOtherIsNull()
    {
        var driver = new AnalysisTestDriver(new TensorVarianceRule { MaxThreshold = null, MinThreshold = 1 });

        driver.Pipe(Record(0, Weight("w", 1e9)));
        driver.Pipe(Record(1, Weight("w", 0.5)));

        Assert.Equal(1, Assert.Single(driver.Transitions).Step);
    }

    [Fact]
    public void Evaluate_SkipsTensorsWithFewerThanTwoFiniteElements()
    {
        var driver = new AnalysisTestDriver(new TensorVarianceRule());

        driver.Pipe(Record(0, Weight("scalar", 0, count: 1)));
        driver.Pipe(Record(1, Values("w", [1f, float.NaN, float.NaN], raw: false, Collection.Weights)));

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Evaluate_IgnoresBiases_ByDefault()
    {
        var driver = new AnalysisTestDriver(new TensorVarianceRule());

        // Zero-initialised biases have variance 0.
        driver.Pipe(Record(0, Values("fc1.bias", [0f, 0f, 0f], raw: false, Collection.Biases)));

        Assert.Empty(driver.Transitions);
    }

    [Theory]
    [InlineData(-1.0)]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    public void Init_Throws_WhenAThresholdIsNotAFiniteNonNegativeNumber(double threshold)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new TensorVarianceRule { MaxThreshold = threshold });
        Assert.Throws<ArgumentOutOfRangeException>(() => new TensorVarianceRule { MinThreshold = threshold });
    }
}
