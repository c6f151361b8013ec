using Monitor.Analysis.Rules;
using Monitor.Contracts.V1;
using static Monitor.Analysis.Tests.AnalysisTestDriver;

namespace Monitor.Analysis.Tests;

public sealed class VanishingGradientRuleTests
{
    private const string Grad = "fc1.weight.grad";

    // Healthy until step 100, then 1e-9 (far below the default threshold 1e-7) until step 150, healthy again after.
    private static StepRecord Scenario(long step) =>
        Record(step, Gradient(Grad, step is >= 100 and < 150 ? 1e-9 : 1e-3));

    [Fact]
    public void Evaluate_FiresExactlyWhenTheWindowHoldsOnlyVanishedSteps()
    {
        var driver = new AnalysisTestDriver(new VanishingGradientRule { WindowSteps = 5 });

        // Steps 100..103: the window still holds at least one healthy 1e-3, mean >= 2e-4.
        Assert.Empty(driver.PipeSteps(0, 103, Scenario));
        AlertTransition firing = Assert.Single(driver.Pipe(Scenario(104)));

        Assert.Equal(AlertState.Firing, firing.State);
        Assert.Equal(104, firing.Step);
        Assert.Equal(1e-9, firing.Value, 1e-15);
        Assert.Equal(1e-7, firing.Threshold);
        Assert.Equal(TimeOfStep(104), firing.ActiveSince);
        Assert.Equal("VanishingGradient", firing.RuleName);
        Assert.Equal("warning", firing.Identity[AlertLabels.Severity]);
        Assert.Equal(Grad, firing.Identity[AlertLabels.Tensor]);
        Assert.Contains(Grad, firing.Description, StringComparison.Ordinal);
        Assert.Contains("last 5 traced steps", firing.Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_ResolvesOnce_WhenGradientsRecover()
    {
        var driver = new AnalysisTestDriver(new VanishingGradientRule { WindowSteps = 5 });

        driver.PipeSteps(0, 300, Scenario);

        Assert.Equal(2, driver.Transitions.Count);
        AlertTransition resolved = driver.Transitions[1];
        Assert.True(resolved.IsResolution);
        // The first healthy step (150) lifts the window mean to about 2e-4.
        Assert.Equal(150, resolved.Step);
        Assert.True(resolved.Value > 1e-4);
        Assert.Empty(driver.Engine.ActiveAlerts);
    }

    [Fact]
    public void Evaluate_WaitsForEvaluations_WhenForEvaluationsIsSet()
    {
        var driver = new AnalysisTestDriver(new RuleBinding { Rule = new VanishingGradientRule { WindowSteps = 5 }, ForEvaluations = 2 });

        driver.PipeSteps(0, 149, Scenario);

        Assert.Equal([(AlertState.Pending, 104L), (AlertState.Firing, 106L)], driver.Transitions.Select(t => (t.State, t.Step)));
    }

    [Fact]
    public void Evaluate_NeverFires_WhenGradientsAreHealthy()
    {
        var random = new Random(42);
        var driver = new AnalysisTestDriver(new VanishingGradientRule());

        // abs_mean between 1e-6 and 1e-1, log-uniform: noisy, always above 1e-7.
        driver.PipeSteps(0, 2_000, step => Record(step,
            Gradient("a.grad", Math.Pow(10, -6 + 5 * random.NextDouble())),
            Gradient("b.grad", Math.Pow(10, -6 + 5 * random.NextDouble()))));

        Assert.Empty(driver.Transitions);
    }

    [Theory]
    [InlineData(Collection.Weights)]
    [InlineData(Collection.Activations)]
    [InlineData(Collection.Optimizer)]
    [InlineData(Collection.Custom)]
    [InlineData(Collection.Unspecified)]
    public void Evaluate_IgnoresTensors_OutsideTheGradientsCollection(Collection collection)
    {
        var driver = new AnalysisTestDriver(new VanishingGradientRule());

        driver.PipeSteps(0, 50, step => Record(step, Tensor("fc1.weight.grad", 0, 0, collection)));

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Evaluate_IgnoresTensorsWithoutCollections()
    {
        var driver = new AnalysisTestDriver(new VanishingGradientRule());

        driver.PipeSteps(0, 50, step => Record(step, Tensor("fc1.weight.grad", 0, 0)));

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Evaluate_ConsidersTensors_InGradientsAmongOtherCollections()
    {
        var driver = new AnalysisTestDriver(new VanishingGradientRule { WindowSteps = 3 });

        driver.PipeSteps(0, 10, step => Record(step, Tensor("g", 0, 0, Collection.Custom, Collection.Gradients)));

        Assert.Equal(2, Assert.Single(driver.Transitions).Step);
    }

    [Fact]
    public void Evaluate_DoesNotReport_BeforeTheWindowIsFull()
    {
        var driver = new AnalysisTestDriver(new VanishingGradientRule { WindowSteps = 5 });

        Assert.Empty(driver.PipeSteps(0, 3, step => Record(step, Gradient(Grad, 0))));
        AlertTransition firing = Assert.Single(driver.Pipe(Record(4, Gradient(Grad, 0))));

        Assert.Equal(4, firing.Step);
    }

    [Fact]
    public void Evaluate_IgnoresNaNAbsMean_WhenFillingTheWindow()
    {
        var driver = new AnalysisTestDriver(new VanishingGradientRule { WindowSteps = 5 });

        // Steps 2 and 4 carry NaN: they neither count towards the window nor spoil its mean.
        driver.PipeSteps(0, 6, step => Record(step, Gradient(Grad, step is 2 or 4 ? double.NaN : 1e-9)));

        AlertTransition firing = Assert.Single(driver.Transitions);
        Assert.Equal(6, firing.Step);
        Assert.Equal(1e-9, firing.Value, 1e-15);
    }

    [Fact]
    public void Evaluate_KeepsFiring_WhenNaNAbsMeanArrivesWhileFiring()
    {
        var driver = new AnalysisTestDriver(new VanishingGradientRule { WindowSteps = 5 });

        driver.PipeSteps(0, 120, Scenario);
        driver.PipeSteps(121, 140, step => Record(step, Gradient(Grad, double.NaN)));

        Assert.Single(driver.Transitions);
        Assert.Equal(AlertState.Firing, Assert.Single(driver.Engine.ActiveAlerts).State);
    }

    [Fact]
    public void Evaluate_IgnoresTensorsWithoutSummary()
    {
        var driver = new AnalysisTestDriver(new VanishingGradientRule { WindowSteps = 1 });
        var bare = new TensorRecord { Name = Grad, Collections = { Collection.Gradients } };

        driver.PipeSteps(0, 10, step => Record(step, bare));

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Evaluate_DoesNotFire_WhenMeanEqualsTheThreshold()
    {
        var driver = new AnalysisTestDriver(new VanishingGradientRule { WindowSteps = 1, Threshold = 1e-7 });

        driver.PipeSteps(0, 10, step => Record(step, Gradient(Grad, 1e-7)));
        AlertTransition below = Assert.Single(driver.Pipe(Record(11, Gradient(Grad, Math.BitDecrement(1e-7)))));

        Assert.Equal(11, below.Step);
    }

    [Fact]
    public void Evaluate_UsesTheConfiguredThresholdAndName()
    {
        var driver = new AnalysisTestDriver(new RuleBinding { Rule = new VanishingGradientRule { WindowSteps = 2, Threshold = 1e-2, Name = "Grad" }, Severity = "critical" });

        AlertTransition firing = Assert.Single(driver.PipeSteps(0, 5, step => Record(step, Gradient(Grad, 1e-3))));

        Assert.Equal(1, firing.Step);
        Assert.Equal("Grad", firing.RuleName);
        Assert.Equal("critical", firing.Identity[AlertLabels.Severity]);
        Assert.Equal(1e-2, firing.Threshold);
    }

    [Fact]
    public void Evaluate_KeepsSeparateWindows_PerRunRankAndTensor()
    {
        var driver = new AnalysisTestDriver(new VanishingGradientRule { WindowSteps = 5 });

        driver.PipeSteps(0, 20, step =>
        {
            // Interleaved: one vanishing series per (run, rank, tensor), everything else healthy.
            driver.Pipe(Record("run-1", 1, step, TimeOfStep(step), Gradient("a.grad", 1e-3), Gradient("b.grad", 1e-3)));
            driver.Pipe(Record("run-2", 0, step, TimeOfStep(step), Gradient("a.grad", 1e-3)));
            return Record("run-1", 0, step, TimeOfStep(step), Gradient("a.grad", 1e-3), Gradient("b.grad", 1e-10));
        });

        AlertTransition firing = Assert.Single(driver.Transitions);
        Assert.Equal(("run-1", "0", "b.grad"), (firing.Identity[AlertLabels.Run], firing.Identity[AlertLabels.Rank], firing.Identity[AlertLabels.Tensor]));
        Assert.Equal(4, firing.Step);
    }

    [Fact]
    public void Evaluate_DoesNotMixSeries_WhenOneRankVanishesLater()
    {
        var driver = new AnalysisTestDriver(new VanishingGradientRule { WindowSteps = 3 });

        // Rank 1's window must not be filled by rank 0's records: rank 1 starts at step 10 and fires 2 steps later.
        driver.PipeSteps(0, 9, step => Record("run-1", 0, step, TimeOfStep(step), Gradient(Grad, 1e-3)));
        driver.PipeSteps(10, 20, step => Record("run-1", 1, step, TimeOfStep(step), Gradient(Grad, 0)));

        AlertTransition firing = Assert.Single(driver.Transitions);
        Assert.Equal(("1", 12L), (firing.Identity[AlertLabels.Rank], firing.Step));
    }

    [Fact]
    public void Evaluate_LooksOnlyAtSelectedTensors_WhenTheSelectorIsNarrowed()
    {
        var driver = new AnalysisTestDriver(new VanishingGradientRule { WindowSteps = 2, Selector = new TensorSelector([Collection.Gradients], include: [@"^fc2\."]) });

        driver.PipeSteps(0, 10, step => Record(step, Gradient("fc1.weight.grad", 0), Gradient("fc2.weight.grad", step < 5 ? 1e-3 : 0)));

        AlertTransition firing = Assert.Single(driver.Transitions);
        Assert.Equal(("fc2.weight.grad", 6L), (firing.Identity[AlertLabels.Tensor], firing.Step));
    }

    [Fact]
    public void Requirements_NameTheGradientsCollection_WithoutRawValues()
    {
        TensorRequirement requirement = Assert.Single(new VanishingGradientRule().Requirements);

        Assert.Equal(("gradients", false), (requirement.Collection, requirement.Raw));
    }

    [Theory]
    [InlineData(0.0, 5)]
    [InlineData(-1e-7, 5)]
    [InlineData(1e-7, 0)]
    public void Init_Throws_WhenAParameterIsOutOfRange(double threshold, int window)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new VanishingGradientRule { Threshold = threshold, WindowSteps = window });
    }
}
