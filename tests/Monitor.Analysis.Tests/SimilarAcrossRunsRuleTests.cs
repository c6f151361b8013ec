using Monitor.Analysis.Rules;
using Monitor.Contracts.V1;
using static Monitor.Analysis.Tests.AnalysisTestDriver;
using static Monitor.Analysis.Tests.RuleTestRecords;

namespace Monitor.Analysis.Tests;

public sealed class SimilarAcrossRunsRuleTests
{
    private const string Reference = "run-a";
    private const string Candidate = "run-b";

    private static double Mean(long step) => 0.5 / (step + 1);

    private static StepRecord At(string run, long step, double mean, uint rank = 0) =>
        Record(run, rank, step, TimeOfStep(step), Summarized("w", mean, variance: 0.01 * mean), Summarized("b", -mean));

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Evaluate_FiresAtTheFirstStepThatDiffers_WhicheverRunComesFirst(bool referenceFirst)
    {
        var driver = new AnalysisTestDriver(new SimilarAcrossRunsRule { OtherRun = Reference });

        // Same tensors until step 49; from step 50 the candidate's "w" has a mean 1% higher (rtol is 1e-5).
        driver.PipeSteps(0, 100, step =>
        {
            StepRecord reference = At(Reference, step, Mean(step));
            StepRecord candidate = Record(Candidate, 0, step, TimeOfStep(step),
                Summarized("w", step < 50 ? Mean(step) : Mean(step) * 1.01, variance: 0.01 * Mean(step)), Summarized("b", -Mean(step)));
            driver.Pipe(referenceFirst ? reference : candidate);
            return referenceFirst ? candidate : reference;
        });

        AlertTransition fired = Assert.Single(driver.Transitions);
        Assert.Equal((AlertState.Firing, 50L), (fired.State, fired.Step));
        Assert.Equal((Candidate, "w"), (fired.Identity[AlertLabels.Run], fired.Identity[AlertLabels.Tensor]));
        Assert.Equal("SimilarAcrossRuns", fired.RuleName);
        Assert.Equal(1.0, fired.Threshold);
        double expected = Mean(50) * 0.01 / (1e-8 + (1e-5 * Mean(50)));
        Assert.Equal(expected, fired.Value, expected * 1e-9);
        Assert.Contains("w at step 50 differs from run run-a: mean", fired.Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_NeverFires_WhenTheRunsMatchWithinTolerance()
    {
        var driver = new AnalysisTestDriver(new SimilarAcrossRunsRule { OtherRun = Reference });

        // Two ranks; the candidate differs by 1e-7 relative (float rounding), well inside rtol 1e-5.
        driver.PipeSteps(0, 300, step =>
        {
            for (uint rank = 0; rank < 2; rank++)
            {
                driver.Pipe(At(Reference, step, Mean(step) + rank, rank));
            }

            driver.Pipe(At(Candidate, step, (Mean(step) + 1) * (1 + 1e-7), rank: 1));
            return At(Candidate, step, Mean(step) * (1 - 1e-7), rank: 0);
        });

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Evaluate_ComparesRanksWithTheSameRankOnly()
    {
        var driver = new AnalysisTestDriver(new SimilarAcrossRunsRule { OtherRun = Reference });

        // Rank 1 of the reference has other values than rank 0; each candidate rank matches its own rank.
        driver.Pipe(At(Reference, 0, 1.0, rank: 0));
        driver.Pipe(At(Reference, 0, 2.0, rank: 1));
        driver.Pipe(At(Candidate, 0, 2.0, rank: 1));
        driver.Pipe(At(Candidate, 0, 1.0, rank: 0));
        Assert.Empty(driver.Transitions);

        // Rank 1 of the candidate now has rank 0's values: both of its tensors differ.
        driver.Pipe(At(Candidate, 1, 1.0, rank: 1));
        driver.Pipe(At(Reference, 1, 2.0, rank: 1));
        Assert.Equal([("1", "w", 1L), ("1", "b", 1L)], driver.Transitions.Select(t => (t.Identity[AlertLabels.Rank], t.Identity[AlertLabels.Tensor], t.Step)));
    }

    [Fact]
    public void Evaluate_FiresWithInfiniteValue_WhenCountsDiffer()
    {
        var driver = new AnalysisTestDriver(new SimilarAcrossRunsRule { OtherRun = Reference });

        driver.Pipe(Record(Reference, 0, 0, TimeOfStep(0), Summarized("w", 0.1, nanCount: 0)));
        AlertTransition fired = Assert.Single(driver.Pipe(Record(Candidate, 0, 0, TimeOfStep(0), Summarized("w", 0.1, nanCount: 3))));

        Assert.Equal(double.PositiveInfinity, fired.Value);
        Assert.Contains("nan_count 3 vs 0", fired.Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_ComparesOnlyStepsStillBuffered_WhenTheReferenceIsReplayedFirst()
    {
        // The reference's 30 steps arrive first; only its last 10 are kept. The candidate differs at step 5 (evicted,
        // not compared) and at step 25 (compared).
        var driver = new AnalysisTestDriver(new SimilarAcrossRunsRule { OtherRun = Reference, MaxBufferedSteps = 10 });

        driver.PipeSteps(0, 29, step => At(Reference, step, Mean(step)));
        driver.PipeSteps(0, 29, step => At(Candidate, step, step is 5 or 25 ? 7.0 : Mean(step)));

        // Both tensors differ at step 25 and match again at step 26.
        Assert.Equal(
            [(AlertState.Firing, 25L, "w"), (AlertState.Firing, 25L, "b"), (AlertState.Inactive, 26L, "w"), (AlertState.Inactive, 26L, "b")],
            driver.Transitions.Select(t => (t.State, t.Step, t.Identity[AlertLabels.Tensor])));
    }

    [Fact]
    public void Evaluate_ComparesOnlyBaseRun_WhenItIsSet()
    {
        var driver = new AnalysisTestDriver(new SimilarAcrossRunsRule { OtherRun = Reference, BaseRun = Candidate });

        driver.PipeSteps(0, 10, step =>
        {
            driver.Pipe(At(Reference, step, Mean(step)));
            driver.Pipe(At("run-c", step, 5.0));
            return At(Candidate, step, Mean(step));
        });

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Evaluate_ComparesOnlySelectedTensors()
    {
        var driver = new AnalysisTestDriver(new SimilarAcrossRunsRule { OtherRun = Reference, Selector = new TensorSelector([], include: ["^b$"]) });

        driver.Pipe(At(Reference, 0, 1.0));
        driver.Pipe(Record(Candidate, 0, 0, TimeOfStep(0), Summarized("w", 9.0), Summarized("b", -1.0)));

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Evaluate_DoesNothing_WithoutOtherRun()
    {
        var driver = new AnalysisTestDriver(new SimilarAcrossRunsRule());

        driver.PipeSteps(0, 10, step =>
        {
            driver.Pipe(At(Reference, step, 1.0));
            return At(Candidate, step, 2.0);
        });

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Defaults_AreDocumented()
    {
        var rule = new SimilarAcrossRunsRule();

        Assert.Equal(("", (string?)null, 1e-5, 1e-8, 1000), (rule.OtherRun, rule.BaseRun, rule.Rtol, rule.Atol, rule.MaxBufferedSteps));
        Assert.Empty(rule.Selector.Collections);
        Assert.Empty(rule.Selector.Include);
    }

    [Fact]
    public void Init_Throws_WhenAParameterIsInvalid()
    {
        Assert.Throws<ArgumentNullException>(() => new SimilarAcrossRunsRule { OtherRun = null! });
        Assert.Throws<ArgumentOutOfRangeException>(() => new SimilarAcrossRunsRule { Rtol = -1 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new SimilarAcrossRunsRule { Atol = double.NaN });
        Assert.Throws<ArgumentOutOfRangeException>(() => new SimilarAcrossRunsRule { MaxBufferedSteps = 0 });
    }
}
