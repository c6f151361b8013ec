using Monitor.Analysis.Rules;
using Monitor.Contracts.V1;
using static Monitor.Analysis.Tests.AnalysisTestDriver;
using static Monitor.Analysis.Tests.RuleTestRecords;

namespace Monitor.Analysis.Tests;

public sealed class OvertrainingRuleTests
{
    // Training loss falls 0.2 a step (more than the default delta 0.1) to 6.0 at step 20, then only 0.01 a step: the
    // next optimum (below 5.9) would come at step 31, so the scenarios stop at step 28.
    private static double PlateauingTraining(long step) => step <= 20 ? 10 - (0.2 * step) : 6.0 - (0.01 * (step - 20));

    [Fact]
    public void Evaluate_Fires_WhenTrainingLossFindsNoNewOptimumForPatienceTrainSteps()
    {
        var driver = new AnalysisTestDriver(new OvertrainingRule());

        driver.PipeSteps(0, 28, step => Record(step, Loss("loss", PlateauingTraining(step))));

        // The last optimum is step 20; steps 21..25 improve by less than delta: the fifth of them holds.
        AlertTransition fired = Assert.Single(driver.Transitions);
        Assert.Equal((AlertState.Firing, 25L), (fired.State, fired.Step));
        Assert.Equal((5.0, 5.0), (fired.Value, fired.Threshold));
        Assert.Equal("Overtraining", fired.RuleName);
        Assert.Contains("training loss has not improved on 6 by more than 0.1 for 5 traced training steps", fired.Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_Resolves_WhenTrainingLossReachesANewOptimum()
    {
        var driver = new AnalysisTestDriver(new OvertrainingRule());

        // Step 30 is a new optimum (5.0); flat after it, the condition would hold again at step 35.
        driver.PipeSteps(0, 34, step => Record(step, Loss("loss", step < 30 ? PlateauingTraining(step) : 5.0)));

        Assert.Equal([(AlertState.Firing, 25L), (AlertState.Inactive, 30L)], driver.Transitions.Select(t => (t.State, t.Step)));
    }

    [Fact]
    public void Evaluate_Resolves_WhenSmallImprovementsAddUpToMoreThanDelta()
    {
        var driver = new AnalysisTestDriver(new OvertrainingRule());

        // Improvements are measured from the best value, not the previous one: 0.01 a step adds up to more than 0.1
        // below 6.0 at step 31 (5.89).
        driver.PipeSteps(0, 31, step => Record(step, Loss("loss", PlateauingTraining(step))));

        Assert.Equal([(AlertState.Firing, 25L), (AlertState.Inactive, 31L)], driver.Transitions.Select(t => (t.State, t.Step)));
    }

    // Training improves at every step; validation (steps 10, 20, ...) falls 0.5 a pass to 3.0 at step 40, then stays.
    private static StepRecord PlateauingValidation(long step) => step % 10 != 0 || step == 0
        ? InMode(Mode.Train, step, Loss("loss", 1_000 - (0.2 * step)))
        : InMode(Mode.Eval, step, Loss("loss", Math.Max(3.0, 5.0 - (0.05 * step))));

    [Fact]
    public void Evaluate_Fires_WhenValidationLossFindsNoNewOptimumForPatienceValidationSteps()
    {
        var driver = new AnalysisTestDriver(new OvertrainingRule());

        driver.PipeSteps(0, 300, PlateauingValidation);

        // The last validation optimum is step 40; the tenth validation value after it is at step 140.
        AlertTransition fired = Assert.Single(driver.Transitions);
        Assert.Equal(140, fired.Step);
        Assert.Equal((10.0, 10.0), (fired.Value, fired.Threshold));
        Assert.Contains("validation loss has not improved on 3", fired.Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_UsesTheConfiguredPatiences()
    {
        var training = new AnalysisTestDriver(new OvertrainingRule { PatienceTrain = 2 });
        training.PipeSteps(0, 28, step => Record(step, Loss("loss", PlateauingTraining(step))));
        var validation = new AnalysisTestDriver(new OvertrainingRule { PatienceValidation = 3 });
        validation.PipeSteps(0, 300, PlateauingValidation);

        Assert.Equal(22, Assert.Single(training.Transitions).Step);
        Assert.Equal(70, Assert.Single(validation.Transitions).Step);
    }

    [Fact]
    public void Evaluate_NeverFires_WhileBothLossesKeepImprovingByMoreThanDelta()
    {
        var random = new Random(5);
        var driver = new AnalysisTestDriver(new OvertrainingRule());

        // Training falls 0.05 a step with +/-0.01 noise: a new optimum (0.1 lower) at least every 3 steps.
        // Validation (every 10th step) falls 0.5 a pass.
        driver.PipeSteps(0, 1_500, step => step % 10 != 0 || step == 0
            ? InMode(Mode.Train, step, Loss("loss", 100 - (0.05 * step) + (0.02 * (random.NextDouble() - 0.5))))
            : InMode(Mode.Eval, step, Loss("loss", 100 - (0.05 * step))));

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Evaluate_KeepsSeparateState_PerRankAndTensor()
    {
        var driver = new AnalysisTestDriver(new OvertrainingRule { PatienceTrain = 3 });

        driver.PipeSteps(0, 10, step =>
        {
            driver.Pipe(Record("run-1", 1, step, TimeOfStep(step), Loss("loss", 100 - step)));
            return Record("run-1", 0, step, TimeOfStep(step), Loss("loss", 100 - step), Loss("aux", 1.0));
        });

        AlertTransition fired = Assert.Single(driver.Transitions);
        Assert.Equal(("0", "aux", 3L), (fired.Identity[AlertLabels.Rank], fired.Identity[AlertLabels.Tensor], fired.Step));
    }

    [Fact]
    public void Defaults_MatchSmdebug()
    {
        var rule = new OvertrainingRule();

        Assert.Equal((5, 10, 0.1), (rule.PatienceTrain, rule.PatienceValidation, rule.Delta));
        Assert.Equal([Collection.Losses], rule.Selector.Collections);
    }

    [Fact]
    public void Init_Throws_WhenAParameterIsOutOfRange()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new OvertrainingRule { PatienceTrain = 0 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new OvertrainingRule { PatienceValidation = 0 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new OvertrainingRule { Delta = -0.1 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new OvertrainingRule { Delta = double.NaN });
    }
}
