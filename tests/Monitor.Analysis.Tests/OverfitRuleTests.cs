using Monitor.Analysis.Rules;
using Monitor.Contracts.V1;
using static Monitor.Analysis.Tests.AnalysisTestDriver;
using static Monitor.Analysis.Tests.RuleTestRecords;

namespace Monitor.Analysis.Tests;

public sealed class OverfitRuleTests
{
    // Epochs of 100 steps: training steps 100e .. 100e+89 at loss 1.0, then a validation pass at 100e+90 .. 100e+99
    // whose values alternate 0.02 above and below 1 + 0.03e (the pass mean). A pass is evaluated at the first training
    // record after it, step 100(e+1).
    private static StepRecord Diverging(long step)
    {
        long epoch = step / 100;
        return step % 100 < 90
            ? InMode(Mode.Train, step, Loss("loss", 1.0))
            : InMode(Mode.Eval, step, Loss("loss", 1 + (0.03 * epoch) + (step % 2 == 0 ? 0.02 : -0.02)));
    }

    [Fact]
    public void Evaluate_FiresAfterTheFirstValidationPassAboveTheRatio()
    {
        var driver = new AnalysisTestDriver(new OverfitRule());

        driver.PipeSteps(0, 1_000, Diverging);

        // Pass e has ratio 0.03e: 0.09 for e = 3, 0.12 for e = 4, evaluated at step 500.
        long firing = 100 * (Enumerable.Range(0, 10).First(e => 0.03 * e > 0.1) + 1);
        Assert.Equal(500, firing);
        AlertTransition fired = Assert.Single(driver.Transitions);
        Assert.Equal((AlertState.Firing, firing), (fired.State, fired.Step));
        Assert.Equal(0.12, fired.Value, 1e-9);
        Assert.Equal(0.1, fired.Threshold);
        Assert.Equal("loss", fired.Identity[AlertLabels.Tensor]);
        Assert.Equal("Overfit", fired.RuleName);
        Assert.Contains("validation loss 1.12 (mean of 10 values)", fired.Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_WaitsForPatienceExceedingPasses()
    {
        var driver = new AnalysisTestDriver(new OverfitRule { Patience = 3 });

        driver.PipeSteps(0, 1_000, Diverging);

        // Passes 4, 5 and 6 exceed; the third of them (evaluated at step 700) makes the condition hold.
        Assert.Equal(700, Assert.Single(driver.Transitions).Step);
    }

    // Training loss 1.0; the first validation pass (steps 90..99) at 1.2, later ones at 1.0.
    private static StepRecord EarlyGap(long step) => step % 100 < 90
        ? InMode(Mode.Train, step, Loss("loss", 1.0))
        : InMode(Mode.Eval, step, Loss("loss", step < 100 ? 1.2 : 1.0));

    [Fact]
    public void Evaluate_FiresOnAnEarlyGapAndResolvesAtTheNextPass_ByDefault()
    {
        var driver = new AnalysisTestDriver(new OverfitRule());

        driver.PipeSteps(0, 300, EarlyGap);

        Assert.Equal([(AlertState.Firing, 100L), (AlertState.Inactive, 200L)], driver.Transitions.Select(t => (t.State, t.Step)));
        Assert.Equal(0.2, driver.Transitions[0].Value, 1e-9);
    }

    [Fact]
    public void Evaluate_IgnoresRecordsBeforeStartStep()
    {
        var driver = new AnalysisTestDriver(new OverfitRule { StartStep = 100 });

        driver.PipeSteps(0, 300, EarlyGap);

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Evaluate_NeverFires_WhenValidationTracksTraining()
    {
        var random = new Random(11);
        var driver = new AnalysisTestDriver(new OverfitRule());

        // Epochs of 100 steps: 90 training steps, then a validation pass of 10 batches (as many as WindowSteps, so the
        // validation mean is the last pass). Both losses decrease together; validation 2-8% above training, noisy.
        driver.PipeSteps(0, 3_000, step =>
        {
            double training = 2.0 * Math.Exp(-step / 500.0);
            return step % 100 < 90
                ? InMode(Mode.Train, step, Loss("loss", training * (1 + (0.02 * (random.NextDouble() - 0.5)))))
                : InMode(Mode.Eval, step, Loss("loss", training * (1.02 + (0.06 * random.NextDouble()))));
        });

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Evaluate_DoesNotReport_ForAPassWithoutTrainingBeforeIt_AndIgnoresPredictRecords()
    {
        var driver = new AnalysisTestDriver(new OverfitRule());

        // A pass (steps 0 and 6; predict records in between neither end nor join it) ended by the training record at
        // step 7: no training value before it, nothing to compare.
        driver.Pipe(InMode(Mode.Eval, 0, Loss("loss", 5.0)));
        driver.PipeSteps(1, 5, step => InMode(Mode.Predict, step, Loss("loss", 0.1)));
        driver.Pipe(InMode(Mode.Eval, 6, Loss("loss", 5.0)));
        driver.Pipe(InMode(Mode.Unspecified, 7, Loss("loss", 1.0)));
        Assert.Empty(driver.Transitions);

        // The next pass (step 8) ends at step 9 and is compared with the training value of step 7 (no mode: training).
        driver.Pipe(InMode(Mode.Eval, 8, Loss("loss", 5.0)));
        AlertTransition fired = Assert.Single(driver.Pipe(InMode(Mode.Train, 9, Loss("loss", 1.0))));
        Assert.Equal((9L, 4.0), (fired.Step, fired.Value));
    }

    [Fact]
    public void Defaults_MatchSmdebug()
    {
        var rule = new OverfitRule();

        Assert.Equal((0L, 1, 0.1, 10), (rule.StartStep, rule.Patience, rule.RatioThreshold, rule.WindowSteps));
        Assert.Equal([Collection.Losses], rule.Selector.Collections);
        Assert.False(Assert.Single(rule.Requirements).Raw);
    }

    [Fact]
    public void Init_Throws_WhenAParameterIsOutOfRange()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new OverfitRule { StartStep = -1 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new OverfitRule { Patience = 0 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new OverfitRule { RatioThreshold = -0.1 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new OverfitRule { RatioThreshold = double.NaN });
        Assert.Throws<ArgumentOutOfRangeException>(() => new OverfitRule { RatioThreshold = double.PositiveInfinity });
        Assert.Throws<ArgumentOutOfRangeException>(() => new OverfitRule { WindowSteps = 0 });
    }
}
