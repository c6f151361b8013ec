using Monitor.Analysis.Rules;
using Monitor.Contracts.V1;
using static Monitor.Analysis.Tests.AnalysisTestDriver;
using static Monitor.Analysis.Tests.RuleTestData;

namespace Monitor.Analysis.Tests;

public sealed class WeightUpdateRatioRuleTests
{
    private const string Weight = "fc1.weight";

    // Every element of the weight at step t: +0.001 per step, a jump of +15 at step 20, frozen from step 30 on.
    private static float Level(long step) => step switch
    {
        < 20 => 1f + (0.001f * step),
        < 30 => 16.019f + (0.001f * (step - 20)),
        _ => 16.5f,
    };

    private static StepRecord Scenario(long step, bool raw = true) =>
        Record(step, Values(Weight, Fill(100, Level(step)), raw, Collection.Weights));

    // ||w_t - w_prev|| / (||w_prev|| + 1e-9) for 100 equal elements, computed as the rule does (in double).
    private static double Ratio(long step) => Math.Abs((double)Level(step) - Level(step - 1)) * 10 / ((Level(step - 1) * 10.0) + 1e-9);

    [Fact]
    public void Evaluate_FiresWhenAnUpdateIsTooLarge_AndResolvesAtTheNextNormalOne()
    {
        var driver = new AnalysisTestDriver(new WeightUpdateRatioRule());

        driver.PipeSteps(0, 25, step => Scenario(step));

        Assert.Equal([(AlertState.Firing, 20L), (AlertState.Inactive, 21L)], driver.Transitions.Select(t => (t.State, t.Step)));
        AlertTransition firing = driver.Transitions[0];
        Assert.Equal(Ratio(20), firing.Value, 1e-9);
        Assert.True(firing.Value > 14);
        Assert.Equal(10, firing.Threshold);
        Assert.Equal(Weight, firing.Identity[AlertLabels.Tensor]);
        Assert.Contains("from step 19 to 20", firing.Description, StringComparison.Ordinal);
        Assert.Contains("above the large threshold", firing.Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_FiresWhenTheWeightsStopMoving()
    {
        var driver = new AnalysisTestDriver(new WeightUpdateRatioRule());

        driver.PipeSteps(21, 40, step => Scenario(step));

        // Frozen from step 30: the first update of zero is step 31's.
        AlertTransition firing = Assert.Single(driver.Transitions);
        Assert.Equal((31L, 0.0, 1e-8), (firing.Step, firing.Value, firing.Threshold));
        Assert.Contains("below the small threshold", firing.Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_NeverFires_OnOrdinaryUpdates()
    {
        var random = new Random(29);
        var driver = new AnalysisTestDriver(new WeightUpdateRatioRule());
        float[] weights = Normal(random, 256, std: 0.1);

        driver.PipeSteps(0, 300, step =>
        {
            float[] update = Normal(random, weights.Length, std: 1e-3);
            for (int i = 0; i < weights.Length; i++)
            {
                weights[i] += update[i];
            }

            return Record(step, Values(Weight, [.. weights], raw: true, Collection.Weights));
        });

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Evaluate_SkipsEvaluationSteps()
    {
        var driver = new AnalysisTestDriver(new WeightUpdateRatioRule());

        // Steps 10..19 are evaluation: the weights stand still, which is not a vanished update.
        driver.PipeSteps(0, 25, step => step is >= 10 and < 20
            ? InMode(Record(step, Values(Weight, Fill(100, Level(9)), raw: true, Collection.Weights)), Mode.Eval)
            : Record(step, Values(Weight, Fill(100, step >= 20 ? Level(9) + (0.001f * (step - 19)) : Level(step)), raw: true, Collection.Weights)));

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Evaluate_ProvesOnlyLargeUpdates_WhenOnlySummariesAreTraced()
    {
        var driver = new AnalysisTestDriver(new WeightUpdateRatioRule());

        driver.PipeSteps(0, 40, step => Scenario(step, raw: false));

        // The jump at 20 is proven by the norms; the frozen weights from 30 cannot be told from small moves.
        Assert.Equal([(AlertState.Firing, 20L), (AlertState.Inactive, 21L)], driver.Transitions.Select(t => (t.State, t.Step)));
        Assert.Equal(Ratio(20), driver.Transitions[0].Value, 1e-6);
        Assert.Contains("is at least", driver.Transitions[0].Description, StringComparison.Ordinal);
        Assert.Contains("summary bound", driver.Transitions[0].Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_BoundsTheUpdateByTheMeanShift_WhenNormsAgree()
    {
        var driver = new AnalysisTestDriver(new WeightUpdateRatioRule { LargeThreshold = 0.9 });

        // Nearly the same L2 norm (10 and 10.1), the mean moves from +1 to 0: ||Δw|| >= sqrt(100) * 1 = 10, ratio >= 1.
        float[] before = Fill(100, 1f);
        float[] after = [.. Enumerable.Range(0, 100).Select(i => i % 2 == 0 ? 1.01f : -1.01f)];
        driver.Pipe(Record(0, Values(Weight, before, raw: false, Collection.Weights)));
        driver.Pipe(Record(1, Values(Weight, after, raw: false, Collection.Weights)));

        AlertTransition firing = Assert.Single(driver.Transitions);
        Assert.Equal(1.0, firing.Value, 1e-6);
    }

    [Theory]
    [InlineData(1, 0)] // traced every 2 steps: no pair is close enough to compare
    [InlineData(2, 1)]
    public void Evaluate_ComparesOnlyStepsWithinNumSteps(int numSteps, int alerts)
    {
        var driver = new AnalysisTestDriver(new WeightUpdateRatioRule { NumSteps = numSteps });

        for (long step = 0; step <= 24; step += 2)
        {
            driver.Pipe(Scenario(step));
        }

        Assert.Equal(alerts, driver.Transitions.Count(t => t.State == AlertState.Firing));
    }

    [Fact]
    public void Evaluate_IgnoresRedeliveredRecords()
    {
        var driver = new AnalysisTestDriver(new WeightUpdateRatioRule());

        driver.PipeSteps(0, 10, step => Scenario(step));
        driver.Pipe(Record(5, Values(Weight, Fill(100, 1000f), raw: true, Collection.Weights)));
        driver.PipeSteps(11, 15, step => Scenario(step));

        Assert.Equal(1, driver.Engine.DuplicateRecords);
        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Evaluate_ComparesTheCapturedSlice_WhenRawValuesAreTruncated()
    {
        var driver = new AnalysisTestDriver(new WeightUpdateRatioRule());

        driver.PipeSteps(0, 25, step => Record(step, Truncated(Values(Weight, Fill(100, Level(step)), raw: true, Collection.Weights), 10)));

        AlertTransition firing = Assert.Single(driver.Transitions, t => t.State == AlertState.Firing);
        Assert.Equal(20, firing.Step);
        Assert.Equal(Ratio(20), firing.Value, 1e-6);
    }

    [Fact]
    public void Requirements_AskForRawWeights()
    {
        TensorRequirement requirement = Assert.Single(new WeightUpdateRatioRule().Requirements);

        Assert.Equal(("weights", true), (requirement.Collection, requirement.Raw));
    }

    [Fact]
    public void Init_Throws_WhenAParameterIsOutOfRange()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new WeightUpdateRatioRule { NumSteps = 0 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new WeightUpdateRatioRule { LargeThreshold = 0 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new WeightUpdateRatioRule { SmallThreshold = -1e-8 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new WeightUpdateRatioRule { Epsilon = double.NaN });
    }
}
