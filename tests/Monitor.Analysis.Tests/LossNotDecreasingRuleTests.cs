using Monitor.Analysis.Rules;
using Monitor.Contracts.V1;
using static Monitor.Analysis.Tests.AnalysisTestDriver;
using static Monitor.Analysis.Tests.RuleTestRecords;

namespace Monitor.Analysis.Tests;

public sealed class LossNotDecreasingRuleTests
{
    [Fact]
    public void Evaluate_NeverFires_WhenLossDecreases()
    {
        var random = new Random(7);
        var driver = new AnalysisTestDriver(new LossNotDecreasingRule());

        // Exponential decay by ~1% per step with +/-0.5% noise: every block of 10 is ~10% below the one before.
        driver.PipeSteps(0, 1_000, step => Record(step, Loss("loss", 10 * Math.Exp(-0.01 * step) * (1 + 0.01 * (random.NextDouble() - 0.5)))));

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Evaluate_FiresAtTheComputedBlockBoundary_WhenLossPlateaus()
    {
        const int NumSteps = 10;
        const int ForEvaluations = 2;
        const long PlateauStart = 50;
        var driver = new AnalysisTestDriver(new RuleBinding { Rule = new LossNotDecreasingRule { NumSteps = NumSteps }, ForEvaluations = ForEvaluations });

        // Linear decrease until step 49, flat at 5.0 from step 50 (a block boundary). Blocks are steps [10k, 10k+9].
        // Block 5 (50..59, mean 5.0) still beats block 4 (40..49, mean 5.55). Block 6 (60..69) is the first equal to
        // the one before: the condition first holds at step 69, then again at 79, 89, ...; the alert is pending for
        // ForEvaluations reports and fires on the next one.
        driver.PipeSteps(0, 200, step => Record(step, Loss("loss", step < PlateauStart ? 10 - 0.1 * step : 5.0)));

        const long FirstHolding = PlateauStart + (2 * NumSteps) - 1;
        const long Firing = FirstHolding + (ForEvaluations * NumSteps);
        Assert.Equal(69, FirstHolding);
        Assert.Equal(89, Firing);
        Assert.Equal([(AlertState.Pending, FirstHolding), (AlertState.Firing, Firing)], driver.Transitions.Select(t => (t.State, t.Step)));
        AlertTransition firing = driver.Transitions[1];
        Assert.Equal(5.0, firing.Value);
        // DiffPercent defaults to 0 (smdebug's diff_percent): the loss only has to go below the previous block mean.
        Assert.Equal(5.0, firing.Threshold, 1e-12);
        Assert.Equal(TimeOfStep(FirstHolding), firing.ActiveSince);
        Assert.Equal("loss", firing.Identity[AlertLabels.Tensor]);
        Assert.Equal("LossNotDecreasing", firing.RuleName);
    }

    [Fact]
    public void Evaluate_FiresAtTheFirstComparison_WhenLossIncreases()
    {
        var driver = new AnalysisTestDriver(new LossNotDecreasingRule { NumSteps = 5 });

        // Blocks 0..4 and 5..9; the first comparison is at step 9.
        driver.PipeSteps(0, 100, step => Record(step, Loss("loss", 1 + (0.01 * step))));

        AlertTransition firing = Assert.Single(driver.Transitions);
        Assert.Equal((AlertState.Firing, 9L), (firing.State, firing.Step));
        Assert.Equal(1.07, firing.Value, 1e-12);
        Assert.Contains("last 5 traced steps is 1.07, previous 5: 1.02", firing.Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_DoesNotReport_BeforeTwoBlocksAreComplete()
    {
        var driver = new AnalysisTestDriver(new LossNotDecreasingRule { NumSteps = 10 });

        Assert.Empty(driver.PipeSteps(0, 18, step => Record(step, Loss("loss", 1.0))));
        Assert.Single(driver.Pipe(Record(19, Loss("loss", 1.0))));
    }

    [Theory]
    [InlineData(0.05, 0.1, true)]
    [InlineData(0.09, 0.1, true)]
    [InlineData(0.0, 0.1, true)]
    [InlineData(0.11, 0.1, false)]
    [InlineData(0.2, 0.1, false)]
    [InlineData(5.0, 0.1, false)]
    [InlineData(0.9, 1.0, true)]
    [InlineData(1.1, 1.0, false)]
    [InlineData(0.01, 0.0, false)]
    public void Evaluate_ComparesBlockDecreaseWithDiffPercent(double decreasePercent, double diffPercent, bool fires)
    {
        var driver = new AnalysisTestDriver(new LossNotDecreasingRule { NumSteps = 4, DiffPercent = diffPercent });

        // Constant within each block of 4, each block decreasePercent below the one before.
        driver.PipeSteps(0, 79, step => Record(step, Loss("loss", 100 * Math.Pow(1 - (decreasePercent / 100), step / 4))));

        if (fires)
        {
            AlertTransition firing = Assert.Single(driver.Transitions);
            Assert.Equal(7, firing.Step);
        }
        else
        {
            Assert.Empty(driver.Transitions);
        }
    }

    [Fact]
    public void Evaluate_DoesNotFire_WhenDecreaseEqualsTheRequiredDecreaseExactly()
    {
        var driver = new AnalysisTestDriver(new LossNotDecreasingRule { NumSteps = 2, DiffPercent = 1 });

        // Block means 100 then 99: the decrease (1.0) is exactly 1% of 100, which is enough; then 99 again is not.
        Assert.Empty(driver.PipeSteps(0, 3, step => Record(step, Loss("loss", step < 2 ? 100.0 : 99.0))));
        AlertTransition firing = Assert.Single(driver.PipeSteps(4, 5, step => Record(step, Loss("loss", 99.0))));

        Assert.Equal(5, firing.Step);
        Assert.Equal(99.0 - 0.99, firing.Threshold, 1e-12);
    }

    [Fact]
    public void Evaluate_UsesTheMagnitude_WhenLossIsNegative()
    {
        var driver = new AnalysisTestDriver(new LossNotDecreasingRule { NumSteps = 2 });

        // A negative loss (e.g. a log-likelihood objective) that keeps going down by 1% a block: healthy.
        driver.PipeSteps(0, 60, step => Record(step, Loss("elbo", -10 * Math.Pow(1.01, step / 2))));
        Assert.Empty(driver.Transitions);

        // ... and a negative loss that goes up fires.
        var rising = new AnalysisTestDriver(new LossNotDecreasingRule { NumSteps = 2 });
        rising.PipeSteps(0, 60, step => Record(step, Loss("elbo", -10 + (0.5 * step))));
        Assert.Equal(3, Assert.Single(rising.Transitions).Step);
    }

    [Fact]
    public void Evaluate_ResolvesAtTheNextBlock_WhenLossDecreasesAgain()
    {
        var driver = new AnalysisTestDriver(new LossNotDecreasingRule { NumSteps = 10 });

        // Flat for steps 0..39, then decreasing: block 4 (40..49) is below block 3.
        driver.PipeSteps(0, 100, step => Record(step, Loss("loss", step < 40 ? 2.0 : 2.0 - (0.01 * (step - 39)))));

        Assert.Equal([(AlertState.Firing, 19L), (AlertState.Inactive, 49L)], driver.Transitions.Select(t => (t.State, t.Step)));
        Assert.True(driver.Transitions[1].IsResolution);
    }

    [Theory]
    [InlineData(Collection.Weights)]
    [InlineData(Collection.Gradients)]
    [InlineData(Collection.Predictions)]
    [InlineData(Collection.Custom)]
    public void Evaluate_IgnoresTensors_OutsideTheLossesCollection(Collection collection)
    {
        var driver = new AnalysisTestDriver(new LossNotDecreasingRule { NumSteps = 2 });

        driver.PipeSteps(0, 50, step => Record(step, Tensor("loss", 1 + step, 1 + step, collection)));

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Evaluate_KeepsSeparateBlocks_PerLossTensor()
    {
        var driver = new AnalysisTestDriver(new LossNotDecreasingRule { NumSteps = 3 });

        driver.PipeSteps(0, 30, step => Record(step, Loss("train_loss", 10.0 / (step + 1)), Loss("aux_loss", 1.0)));

        AlertTransition firing = Assert.Single(driver.Transitions);
        Assert.Equal("aux_loss", firing.Identity[AlertLabels.Tensor]);
        Assert.Equal(5, firing.Step);
    }

    [Fact]
    public void Evaluate_KeepsSeparateBlocks_PerRunAndRank()
    {
        var driver = new AnalysisTestDriver(new LossNotDecreasingRule { NumSteps = 3 });

        driver.PipeSteps(0, 30, step =>
        {
            driver.Pipe(Record("run-1", 1, step, TimeOfStep(step), Loss("loss", 10.0 / (step + 1))));
            driver.Pipe(Record("run-2", 0, step, TimeOfStep(step), Loss("loss", 10.0 / (step + 1))));
            return Record("run-1", 0, step, TimeOfStep(step), Loss("loss", 4.0));
        });

        AlertTransition firing = Assert.Single(driver.Transitions);
        Assert.Equal(("run-1", "0"), (firing.Identity[AlertLabels.Run], firing.Identity[AlertLabels.Rank]));
        Assert.Equal(5, firing.Step);
    }

    [Fact]
    public void Evaluate_SkipsNonFiniteLoss_WhenFillingBlocks()
    {
        var driver = new AnalysisTestDriver(new LossNotDecreasingRule { NumSteps = 3 });

        // Non-finite losses (steps 1, 3, 4) are not counted: the two blocks end at steps 5 and 8.
        driver.PipeSteps(0, 8, step => Record(step, Loss("loss", step switch
        {
            1 => double.NaN,
            3 => double.PositiveInfinity,
            4 => double.NegativeInfinity,
            _ => 1.0,
        })));

        AlertTransition firing = Assert.Single(driver.Transitions);
        Assert.Equal(8, firing.Step);
        Assert.Equal(1.0, firing.Value);
    }

    [Fact]
    public void Evaluate_IgnoresTensorsWithoutSummary()
    {
        var driver = new AnalysisTestDriver(new LossNotDecreasingRule { NumSteps = 1 });
        var bare = new TensorRecord { Name = "loss", Collections = { Collection.Losses } };

        driver.PipeSteps(0, 10, step => Record(step, bare));

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Defaults_MatchSmdebug()
    {
        var rule = new LossNotDecreasingRule();

        Assert.Equal(10, rule.NumSteps);
        Assert.Equal(0.0, rule.DiffPercent);
        Assert.Equal(5.0, rule.IncreaseThresholdPercent);
        Assert.True(rule.UseLossesCollection);
        Assert.Equal(Mode.Train, rule.Mode);
        Assert.Equal([Collection.Losses], rule.Selector.Collections);
        Assert.Equal("LossNotDecreasing", rule.Name);
        TensorRequirement requirement = Assert.Single(rule.Requirements);
        Assert.Equal(("losses", false), (requirement.Collection, requirement.Raw));
    }

    [Fact]
    public void Init_Throws_WhenAParameterIsOutOfRange()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new LossNotDecreasingRule { NumSteps = 0 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new LossNotDecreasingRule { DiffPercent = -0.1 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new LossNotDecreasingRule { DiffPercent = 100 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new LossNotDecreasingRule { DiffPercent = double.NaN });
        Assert.Throws<ArgumentOutOfRangeException>(() => new LossNotDecreasingRule { IncreaseThresholdPercent = -1 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new LossNotDecreasingRule { IncreaseThresholdPercent = double.NaN });
    }

    // Block means with NumSteps 2 (block k = steps 2k and 2k+1, reported at step 2k+1): 1.0, 0.9, 1.5, 1.4, 1.3, 0.92.
    private static readonly double[] DriftingBlocks = [1.0, 0.9, 1.5, 1.4, 1.3, 0.92];

    [Fact]
    public void Evaluate_KeepsFiring_WhileTheLossStaysMoreThanIncreaseThresholdAboveItsBest()
    {
        var driver = new AnalysisTestDriver(new LossNotDecreasingRule { NumSteps = 2 });

        // Step 5: 1.5 >= 0.9, not decreasing. Steps 7 and 9: decreasing block to block, but 1.4 and 1.3 are more than
        // 5% above the best block (0.9, allowed up to 0.945). Step 11: 0.92 is within 5% of the best: resolved.
        driver.PipeSteps(0, 7, step => Record(step, Loss("loss", DriftingBlocks[step / 2])));
        AlertTransition active = Assert.Single(driver.Engine.ActiveAlerts);
        Assert.Equal(1.4, active.Value, 1e-12);
        Assert.Equal(0.9 * 1.05, active.Threshold, 1e-12);
        Assert.Contains("more than 5% above its best block mean 0.9", active.Description, StringComparison.Ordinal);
        driver.PipeSteps(8, 11, step => Record(step, Loss("loss", DriftingBlocks[step / 2])));

        Assert.Equal([(AlertState.Firing, 5L), (AlertState.Inactive, 11L)], driver.Transitions.Select(t => (t.State, t.Step)));
    }

    [Fact]
    public void Evaluate_ResolvesAtTheFirstDecrease_WhenIncreaseThresholdIsOff()
    {
        var driver = new AnalysisTestDriver(new LossNotDecreasingRule { NumSteps = 2, IncreaseThresholdPercent = double.PositiveInfinity });

        driver.PipeSteps(0, 11, step => Record(step, Loss("loss", DriftingBlocks[step / 2])));

        Assert.Equal([(AlertState.Firing, 5L), (AlertState.Inactive, 7L)], driver.Transitions.Select(t => (t.State, t.Step)));
    }

    [Fact]
    public void Evaluate_LooksOnlyAtTrainingRecords_ByDefault()
    {
        var driver = new AnalysisTestDriver(new LossNotDecreasingRule { NumSteps = 2 });

        // Training loss decreases; the evaluation loss (same tensor name) rises but is not looked at.
        driver.PipeSteps(0, 40, step => step % 2 == 0
            ? InMode(Mode.Train, step, Loss("loss", 10.0 - (0.2 * step)))
            : InMode(Mode.Eval, step, Loss("loss", 1.0 + step)));

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Evaluate_FiresOnTheEvaluationLoss_WhenModeIsEval()
    {
        var driver = new AnalysisTestDriver(new LossNotDecreasingRule { NumSteps = 2, Mode = Mode.Eval });

        // Evaluation records at odd steps 1, 3, 5, 7: blocks {1, 3} and {5, 7}; the second is higher: fires at step 7.
        driver.PipeSteps(0, 40, step => step % 2 == 0
            ? InMode(Mode.Train, step, Loss("loss", 10.0 - (0.2 * step)))
            : InMode(Mode.Eval, step, Loss("loss", 1.0 + step)));

        Assert.Equal(7, Assert.Single(driver.Transitions).Step);
    }

    [Fact]
    public void Evaluate_CountsRecordsWithoutMode_AsTraining()
    {
        var driver = new AnalysisTestDriver(new LossNotDecreasingRule { NumSteps = 2 });

        driver.PipeSteps(0, 10, step => InMode(Mode.Unspecified, step, Loss("loss", 1.0)));

        Assert.Equal(3, Assert.Single(driver.Transitions).Step);
    }

    [Fact]
    public void Evaluate_MixesEveryMode_WhenModeIsUnspecified()
    {
        var driver = new AnalysisTestDriver(new LossNotDecreasingRule { NumSteps = 2, Mode = Mode.Unspecified });

        // One series over every record (smdebug's GLOBAL): blocks {train 10, eval 1} then {train 9.6, eval 3}: means
        // 5.5 then 6.3, not decreasing at step 3.
        driver.PipeSteps(0, 3, step => step % 2 == 0
            ? InMode(Mode.Train, step, Loss("loss", 10.0 - (0.2 * step)))
            : InMode(Mode.Eval, step, Loss("loss", step)));

        Assert.Equal(3, Assert.Single(driver.Transitions).Step);
    }

    [Fact]
    public void Evaluate_LooksAtSelectedTensors_AndAtLossesOnlyWhenUseLossesCollection()
    {
        var selector = new TensorSelector([], include: ["^objective$"]);
        StepRecord At(long step) => Record(step, Loss("loss", 1.0), Tensor("objective", 1.0 + step, 1.0 + step, Collection.Custom));

        var both = new AnalysisTestDriver(new LossNotDecreasingRule { NumSteps = 2, Selector = selector });
        both.PipeSteps(0, 3, At);
        var selectedOnly = new AnalysisTestDriver(new LossNotDecreasingRule { NumSteps = 2, Selector = selector, UseLossesCollection = false });
        selectedOnly.PipeSteps(0, 3, At);

        Assert.Equal(["loss", "objective"], both.Transitions.Select(t => t.Identity[AlertLabels.Tensor]));
        Assert.Equal(["objective"], selectedOnly.Transitions.Select(t => t.Identity[AlertLabels.Tensor]));
    }
}
