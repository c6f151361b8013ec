using Monitor.Analysis.Rules;
using Monitor.Contracts.V1;
using static Monitor.Analysis.Tests.AnalysisTestDriver;
using static Monitor.Analysis.Tests.RuleTestData;

namespace Monitor.Analysis.Tests;

public sealed class PoorWeightInitializationRuleTests
{
    private static TensorRecord Activation(string name, double variance) =>
        Summary(name, new TensorSummary { Count = 100, Variance = variance, Mean = 0.5, Min = 0, Max = 3 }, Collection.Activations);

    private static TensorRecord LossOf(double value) =>
        Summary("loss", new TensorSummary { Count = 1, Mean = value, Min = value, Max = value }, Collection.Losses);

    // Evenly spaced values over [-a, a] (101 of them): numpy's percentile 95 - percentile 5 is exactly 1.8a.
    private static TensorRecord Gradient(double halfWidth, bool raw = true) =>
        Values("fc1.weight.grad", [.. Enumerable.Range(0, 101).Select(i => (float)(-halfWidth + (2 * halfWidth * i / 100)))], raw, Collection.Gradients);

    private static StepRecord Healthy(long step, uint rank = 0) => Record("run-1", rank, step, TimeOfStep(step),
        Activation("relu1.output", 1), Activation("relu2.output", 0.5), Gradient(0.01), LossOf(2.0 / (step + 1)));

    [Fact]
    public void Evaluate_FiresWhenActivationVariancesDifferTooMuch_AndKeepsTheVerdict()
    {
        var driver = new AnalysisTestDriver(new PoorWeightInitializationRule());

        // Step 3: variances 1 and 0.08, a 12.5-fold spread (threshold 10); every other step 2-fold.
        driver.PipeSteps(0, 30, step => step == 3
            ? Record(step, Activation("relu1.output", 1), Activation("relu2.output", 0.08))
            : Healthy(step));

        AlertTransition firing = Assert.Single(driver.Transitions);
        Assert.Equal((AlertState.Firing, 3L), (firing.State, firing.Step));
        Assert.Equal((12.5, 10.0), (firing.Value, firing.Threshold));
        Assert.Equal(("PoorWeightInitialization", ""), (firing.RuleName, firing.Identity[AlertLabels.Tensor]));
        Assert.Contains("differ 12.5-fold across 2 layers", firing.Description, StringComparison.Ordinal);
        Assert.Contains("relu2.output 0.08", firing.Description, StringComparison.Ordinal);
        // Latched: still firing after the window of 10 steps, with the step 3 verdict.
        Assert.Equal(9, Assert.Single(driver.Engine.ActiveAlerts).Step);
    }

    [Fact]
    public void Evaluate_FiresWhenAGradientIsTooNarrow_WithRawValues()
    {
        var driver = new AnalysisTestDriver(new PoorWeightInitializationRule());

        // From step 4 the gradient spans [-5e-4, 5e-4]: percentile 95 - percentile 5 = 9e-4 < 1e-3.
        driver.PipeSteps(0, 9, step => Record(step, Gradient(step >= 4 ? 5e-4 : 0.01)));

        AlertTransition firing = Assert.Single(driver.Transitions);
        Assert.Equal(4, firing.Step);
        Assert.Equal(9e-4, firing.Value, 1e-9);
        Assert.Equal(1e-3, firing.Threshold);
        Assert.Contains("gradient fc1.weight.grad spans only", firing.Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_ProvesANarrowGradientFromTheHistogram_WhenRawValuesAreMissing()
    {
        var driver = new AnalysisTestDriver(new PoorWeightInitializationRule());

        // 49 values at -3e-4, 49 at +3e-4 and two outliers at -1 and +1: min/max span 2, but the 5th and 95th
        // percentiles fall in the buckets [-2^-11, -2^-12] and [2^-12, 2^-11), so the spread is at most 2^-10 < 1e-3.
        float[] values = [-1f, .. Fill(49, -3e-4f), .. Fill(49, 3e-4f), 1f];
        driver.Pipe(Record(0, Values("fc1.weight.grad", values, raw: false, Collection.Gradients)));

        AlertTransition firing = Assert.Single(driver.Transitions);
        Assert.Equal(Math.ScaleB(1, -10), firing.Value, 1e-15);
    }

    [Fact]
    public void Evaluate_DoesNotFire_WhenTheHistogramCannotProveTheGradientNarrow()
    {
        var random = new Random(37);
        var driver = new AnalysisTestDriver(new PoorWeightInitializationRule());

        driver.PipeSteps(0, 9, step => Record(step, Values("fc1.weight.grad", Normal(random, 1000, std: 0.01), raw: false, Collection.Gradients)));

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Evaluate_FiresWhenTheLossStopsImproving_ForPatienceSteps()
    {
        var driver = new AnalysisTestDriver(new PoorWeightInitializationRule());

        // Improves until step 3, then flat: 5 traced steps without a new best at step 8.
        driver.PipeSteps(0, 20, step => Record(step, LossOf(step <= 3 ? 2.0 - (0.1 * step) : 1.7)));

        AlertTransition firing = Assert.Single(driver.Transitions);
        Assert.Equal((8L, 5.0, 5.0), (firing.Step, firing.Value, firing.Threshold));
        Assert.Contains("loss has not improved for 5 traced steps", firing.Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_NeverFires_OnAWellInitializedRun()
    {
        var driver = new AnalysisTestDriver(new PoorWeightInitializationRule());

        driver.PipeSteps(0, 50, step => Healthy(step));

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Evaluate_IgnoresSteps_FromStepsOn()
    {
        var driver = new AnalysisTestDriver(new PoorWeightInitializationRule { Steps = 5 });

        driver.PipeSteps(0, 4, step => Healthy(step));
        driver.PipeSteps(5, 30, step => Record(step, Activation("relu1.output", 100), Activation("relu2.output", 1e-3), Gradient(0), LossOf(9)));

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Evaluate_JudgesEachRankApart()
    {
        var driver = new AnalysisTestDriver(new PoorWeightInitializationRule());

        driver.PipeSteps(0, 9, step =>
        {
            driver.Pipe(Healthy(step, rank: 0));
            return Record("run-1", 1, step, TimeOfStep(step), Activation("relu1.output", 1), Activation("relu2.output", 1e-3));
        });

        AlertTransition firing = Assert.Single(driver.Transitions);
        Assert.Equal(("1", 0L), (firing.Identity[AlertLabels.Rank], firing.Step));
    }

    [Fact]
    public void Evaluate_ComparesAnActivationWithZeroVariance_AsInfinitelyFar()
    {
        var driver = new AnalysisTestDriver(new PoorWeightInitializationRule());

        driver.Pipe(Record(0, Activation("relu1.output", 1), Activation("relu2.output", 0)));

        Assert.Equal(double.PositiveInfinity, Assert.Single(driver.Transitions).Value);
    }

    [Fact]
    public void Requirements_NameActivationsGradientsAndLosses()
    {
        Assert.Equal([("activations", false), ("gradients", true), ("losses", false), ("weights", false)],
            new PoorWeightInitializationRule().Requirements.Select(r => (r.Collection, r.Raw)));
        Assert.Equal([("activations", false), ("gradients", true), ("losses", false)],
            new PoorWeightInitializationRule { ReinitializationRatio = 0 }.Requirements.Select(r => (r.Collection, r.Raw)));
    }

    [Fact]
    public void Init_Throws_WhenAParameterIsOutOfRange()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new PoorWeightInitializationRule { Threshold = 0.5 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new PoorWeightInitializationRule { DistributionRange = -1 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new PoorWeightInitializationRule { Patience = 0 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new PoorWeightInitializationRule { Steps = 0 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new PoorWeightInitializationRule { ReinitializationRatio = 1 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new PoorWeightInitializationRule { ReinitializationRatio = double.PositiveInfinity });
    }

    private static TensorRecord Weight(double variance) =>
        Summary("fc1.weight", new TensorSummary { Count = 100, Variance = variance, Mean = 0, Min = -1, Max = 1 }, Collection.Weights);

    [Fact]
    public void Evaluate_JudgesARe_initializationLaterInTheRun_AsANewWindow()
    {
        var driver = new AnalysisTestDriver(new PoorWeightInitializationRule());

        // Healthy weights (variance 0.03, drifting 1% a step) until step 200, then drawn with std 1e-3 (variance 1e-6):
        // a 30000-fold jump. The gradients of the new initialization are too narrow.
        driver.PipeSteps(0, 260, step => step < 200
            ? Record(step, Weight(0.03 * (1 + (0.01 * step))), Gradient(0.01))
            : Record(step, Weight(1e-6), Gradient(1e-4)));

        AlertTransition firing = Assert.Single(driver.Transitions);
        Assert.Equal((AlertState.Firing, 200L), (firing.State, firing.Step));
        Assert.Contains("gradient fc1.weight.grad spans only", firing.Description, StringComparison.Ordinal);
        Assert.Equal(209, Assert.Single(driver.Engine.ActiveAlerts).Step);
    }

    [Fact]
    public void Evaluate_ResolvesTheOldVerdict_WhenAGoodRe_initializationFollows()
    {
        var driver = new AnalysisTestDriver(new PoorWeightInitializationRule());

        driver.PipeSteps(0, 100, step => step < 50
            ? Record(step, Weight(1e-6), Gradient(1e-4))
            : Record(step, Weight(0.03), Gradient(0.01)));

        Assert.Equal([(AlertState.Firing, 0L), (AlertState.Inactive, 50L)], driver.Transitions.Select(t => (t.State, t.Step)));
        Assert.Contains("new window from step 50 (weights re-initialized: fc1.weight variance 1E-06 -> 0.03)",
            driver.Transitions[1].Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_IgnoresLaterSteps_WhenRe_initializationDetectionIsOff()
    {
        var driver = new AnalysisTestDriver(new PoorWeightInitializationRule { ReinitializationRatio = 0 });

        driver.PipeSteps(0, 260, step => step < 200
            ? Record(step, Weight(0.03), Gradient(0.01))
            : Record(step, Weight(1e-6), Gradient(1e-4)));

        Assert.Empty(driver.Transitions);
    }
}
