using Monitor.Analysis.Rules;
using Monitor.Contracts.V1;
using static Monitor.Analysis.Tests.AnalysisTestDriver;
using static Monitor.Analysis.Tests.RuleTestData;

namespace Monitor.Analysis.Tests;

public sealed class UnchangedTensorRuleTests
{
    private const string Weight = "fc1.weight";

    // 64 values that move every step until step 40, stand still from 40 to 59, move again from 60.
    private static float[] Weights(long step)
    {
        long moving = step < 40 ? step : step < 60 ? 40 : step;
        return [.. Enumerable.Range(0, 64).Select(i => MathF.Sin(i + (0.01f * moving)))];
    }

    private static StepRecord Scenario(long step, bool raw = true) => Record(step, Values(Weight, Weights(step), raw, Collection.Weights));

    [Fact]
    public void Evaluate_FiresWhenThreeTracedStepsInARowAreEqual_AndResolvesWhenItMovesAgain()
    {
        var driver = new AnalysisTestDriver(new UnchangedTensorRule());

        driver.PipeSteps(0, 70, step => Scenario(step));

        // Steps 40, 41, 42 are the first three equal ones; 60 differs from 59.
        Assert.Equal([(AlertState.Firing, 42L), (AlertState.Inactive, 60L)], driver.Transitions.Select(t => (t.State, t.Step)));
        AlertTransition firing = driver.Transitions[0];
        Assert.Equal((3.0, 3.0), (firing.Value, firing.Threshold));
        Assert.Equal(Weight, firing.Identity[AlertLabels.Tensor]);
        Assert.Contains("over the last 3 traced steps (40 to 42", firing.Description, StringComparison.Ordinal);
        Assert.DoesNotContain("summaries", firing.Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_WaitsForNumSteps()
    {
        var driver = new AnalysisTestDriver(new UnchangedTensorRule { NumSteps = 10 });

        driver.PipeSteps(0, 59, step => Scenario(step));

        Assert.Equal(49, Assert.Single(driver.Transitions).Step);
    }

    [Fact]
    public void Evaluate_NeverFires_WhileTheTensorTrains()
    {
        var random = new Random(31);
        var driver = new AnalysisTestDriver(new UnchangedTensorRule());
        float[] weights = Normal(random, 128, std: 0.1);

        driver.PipeSteps(0, 300, step =>
        {
            float[] update = Normal(random, weights.Length, std: 1e-3);
            for (int i = 0; i < weights.Length; i++)
            {
                weights[i] += update[i];
            }

            return Record(step, Values(Weight, [.. weights], raw: step % 2 == 0, Collection.Weights));
        });

        Assert.Empty(driver.Transitions);
    }

    [Theory]
    [InlineData(1e-6f, true)] // relative change 1e-6 <= rtol 1e-5
    [InlineData(1e-4f, false)]
    public void Evaluate_UsesAllclose_WithRtolAndAtol(float relativeChange, bool unchanged)
    {
        var driver = new AnalysisTestDriver(new UnchangedTensorRule { NumSteps = 2 });

        driver.Pipe(Record(0, Values(Weight, Fill(8, 1f), raw: true, Collection.Weights)));
        driver.Pipe(Record(1, Values(Weight, Fill(8, 1f + relativeChange), raw: true, Collection.Weights)));

        Assert.Equal(unchanged, driver.Transitions.Count == 1);
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, true)]
    public void Evaluate_ComparesNaNAsEqual_OnlyWhenEqualNan(bool equalNan, bool unchanged)
    {
        var driver = new AnalysisTestDriver(new UnchangedTensorRule { NumSteps = 2, EqualNan = equalNan });
        float[] values = [1f, float.NaN, float.PositiveInfinity];

        driver.Pipe(Record(0, Values(Weight, values, raw: true, Collection.Weights)));
        driver.Pipe(Record(1, Values(Weight, values, raw: true, Collection.Weights)));

        Assert.Equal(unchanged, driver.Transitions.Count == 1);
    }

    [Fact]
    public void Evaluate_JudgesFromSummaries_WhenRawValuesAreNotTraced()
    {
        var driver = new AnalysisTestDriver(new UnchangedTensorRule());

        driver.PipeSteps(0, 70, step => Scenario(step, raw: false));

        Assert.Equal([(AlertState.Firing, 42L), (AlertState.Inactive, 60L)], driver.Transitions.Select(t => (t.State, t.Step)));
        Assert.Contains("judged from equal summaries", driver.Transitions[0].Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_CallsAPermutationUnchanged_OnlyWhenRawValuesAreMissing()
    {
        var withRaw = new AnalysisTestDriver(new UnchangedTensorRule { NumSteps = 2 });
        var summaryOnly = new AnalysisTestDriver(new UnchangedTensorRule { NumSteps = 2 });
        float[] values = [1f, 2f, 3f, 4f];
        float[] permuted = [4f, 3f, 2f, 1f];

        // The documented limit of the approximation: every statistic of a permutation is the same.
        withRaw.Pipe(Record(0, Values(Weight, values, raw: true, Collection.Weights)));
        withRaw.Pipe(Record(1, Values(Weight, permuted, raw: true, Collection.Weights)));
        summaryOnly.Pipe(Record(0, Values(Weight, values, raw: false, Collection.Weights)));
        summaryOnly.Pipe(Record(1, Values(Weight, permuted, raw: false, Collection.Weights)));

        Assert.Empty(withRaw.Transitions);
        Assert.Single(summaryOnly.Transitions);
    }

    [Fact]
    public void Evaluate_ChecksTheSummaries_WhenRawValuesAreTruncated()
    {
        var driver = new AnalysisTestDriver(new UnchangedTensorRule { NumSteps = 2 });
        float[] before = Fill(100, 1f);
        float[] after = Fill(100, 1f);
        after[99] = 2f;

        // The first 10 values are equal; the last one, beyond the captured slice, moved.
        driver.Pipe(Record(0, Truncated(Values(Weight, before, raw: true, Collection.Weights), 10)));
        driver.Pipe(Record(1, Truncated(Values(Weight, after, raw: true, Collection.Weights), 10)));
        driver.Pipe(Record(2, Truncated(Values(Weight, after, raw: true, Collection.Weights), 10)));

        Assert.Equal(2, Assert.Single(driver.Transitions).Step);
    }

    [Fact]
    public void Evaluate_SkipsEvaluationSteps()
    {
        var driver = new AnalysisTestDriver(new UnchangedTensorRule());

        // Steps 10..29 are evaluation with the weights of step 9: standing still there is expected.
        driver.PipeSteps(0, 40, step => step is >= 10 and < 30
            ? InMode(Record(step, Values(Weight, Weights(9), raw: true, Collection.Weights)), Mode.Eval)
            : Scenario(step));

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Evaluate_IgnoresGradientsAndActivations_ByDefault()
    {
        var driver = new AnalysisTestDriver(new UnchangedTensorRule());
        float[] constant = Fill(16, 0.25f);

        driver.PipeSteps(0, 10, step => Record(step,
            Values("fc1.weight.grad", constant, raw: true, Collection.Gradients),
            Values("act.output", constant, raw: true, Collection.Activations),
            Values("fc1.bias", constant, raw: true, Collection.Biases)));

        Assert.Equal("fc1.bias", Assert.Single(driver.Transitions).Identity[AlertLabels.Tensor]);
    }

    [Fact]
    public void Requirements_AskForRawWeightsAndBiases()
    {
        Assert.Equal([("weights", true), ("biases", true)], new UnchangedTensorRule().Requirements.Select(r => (r.Collection, r.Raw)));
    }

    [Fact]
    public void Init_Throws_WhenAParameterIsOutOfRange()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new UnchangedTensorRule { NumSteps = 1 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new UnchangedTensorRule { Rtol = -1e-5 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new UnchangedTensorRule { Atol = double.PositiveInfinity });
    }
}
