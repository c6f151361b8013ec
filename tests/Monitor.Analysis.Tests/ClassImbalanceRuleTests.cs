using Monitor.Analysis.Rules;
using Monitor.Contracts.V1;
using static Monitor.Analysis.Tests.AnalysisTestDriver;
using static Monitor.Analysis.Tests.RuleTestRecords;

namespace Monitor.Analysis.Tests;

public sealed class ClassImbalanceRuleTests
{
    /// <summary>A batch with <paramref name="perClass"/>[c] samples of class c, in class order.</summary>
    private static int[] Batch(params int[] perClass) => [.. perClass.SelectMany((n, c) => Enumerable.Repeat(c, n))];

    [Fact]
    public void Evaluate_FiresWhenTheFirstWindowIsImbalanced()
    {
        var driver = new AnalysisTestDriver(new ClassImbalanceRule());

        // 50 labels a record: 44 of class 0, 2 each of classes 1..3. The default window (500 labels) closes at the
        // tenth record (step 9) with 440 / 20 = 22 > 10.
        driver.PipeSteps(0, 9, step => Record(step, Labels(Batch(44, 2, 2, 2))));

        AlertTransition fired = Assert.Single(driver.Transitions);
        Assert.Equal((AlertState.Firing, 9L, "labels"), (fired.State, fired.Step, fired.Identity[AlertLabels.Tensor]));
        Assert.Equal((22.0, 10.0), (fired.Value, fired.Threshold));
        Assert.Equal("ClassImbalance", fired.RuleName);
        Assert.Contains("class 0 has 440 samples and class 1 20 (ratio 22", fired.Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_NeverFires_WhenClassesAreBalancedAndWellPredicted()
    {
        var random = new Random(17);
        var driver = new AnalysisTestDriver(new ClassImbalanceRule());

        // Ten classes drawn uniformly, batches of 64; 10% of the predictions wrong.
        driver.PipeSteps(0, 500, step =>
        {
            int[] labels = [.. Enumerable.Range(0, 64).Select(_ => random.Next(10))];
            int[] predictions = [.. labels.Select(l => random.NextDouble() < 0.1 ? (l + 1) % 10 : l)];
            return Record(step, Labels(labels), Predictions(predictions));
        });

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Evaluate_FiresOnThePredictions_WhenAClassIsMostlyMispredicted()
    {
        var driver = new AnalysisTestDriver(new ClassImbalanceRule { Samples = 100 });

        // Balanced labels 0..4 (10 each a record); class 3 is predicted as 0 in 8 of 10 samples: 80% > 70%.
        int[] labels = Batch(10, 10, 10, 10, 10);
        int[] predictions = [.. labels.Select((l, i) => l == 3 && i % 10 < 8 ? 0 : l)];
        driver.PipeSteps(0, 5, step => Record(step, Labels(labels), Predictions(predictions)));

        // Windows of 100 labels close at steps 1, 3 and 5.
        AlertTransition fired = Assert.Single(driver.Transitions);
        Assert.Equal((1L, "predictions"), (fired.Step, fired.Identity[AlertLabels.Tensor]));
        Assert.Equal((0.8, 0.7), (fired.Value, fired.Threshold));
        Assert.Contains("16 of 20 samples of class 3 mispredicted", fired.Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_TakesTheArgmaxOfScores_WhenArgmaxIsSet()
    {
        var driver = new AnalysisTestDriver(new ClassImbalanceRule { Samples = 100, Argmax = true });

        int[] labels = Batch(10, 10, 10, 10, 10);
        int[] predicted = [.. labels.Select((l, i) => l == 3 && i % 10 < 8 ? 0 : l)];
        driver.PipeSteps(0, 1, step => Record(step, Labels(labels), Scores(5, predicted)));

        AlertTransition fired = Assert.Single(driver.Transitions);
        Assert.Equal(("logits", 0.8), (fired.Identity[AlertLabels.Tensor], fired.Value));
    }

    [Fact]
    public void Evaluate_TreatsAClassSeenBeforeButMissingFromTheWindow_AsInfinitelyImbalanced()
    {
        var driver = new AnalysisTestDriver(new ClassImbalanceRule { Samples = 10 });

        // First window (step 0): classes 0..4 twice each. Second (step 1): class 4 missing. Third (step 2): back.
        driver.Pipe(Record(0, Labels(Batch(2, 2, 2, 2, 2))));
        driver.Pipe(Record(1, Labels(Batch(3, 3, 2, 2, 0))));
        driver.Pipe(Record(2, Labels(Batch(2, 2, 2, 2, 2))));

        Assert.Equal([(AlertState.Firing, 1L), (AlertState.Inactive, 2L)], driver.Transitions.Select(t => (t.State, t.Step)));
        Assert.Equal(double.PositiveInfinity, driver.Transitions[0].Value);
    }

    [Fact]
    public void Evaluate_ReportsNothing_WithoutRawLabels()
    {
        var driver = new AnalysisTestDriver(new ClassImbalanceRule { Samples = 1 });

        // Summaries only (no raw values), as a selection without raw capture sends them.
        driver.PipeSteps(0, 50, step => Record(step, Tensor("labels", 0, 0, Collection.Labels), Tensor("predictions", 1, 1, Collection.Predictions)));

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Evaluate_IgnoresValuesThatAreNotClassIds()
    {
        var driver = new AnalysisTestDriver(new ClassImbalanceRule { Samples = 4 });
        float[] values = [0, 1, float.NaN, -3, 1e9f, 0, 1];

        driver.Pipe(Record(0, Raw("labels", values, [values.Length], DType.Float32, Collection.Labels)));

        // Only 0, 1, 0, 1 count: a balanced window of 4.
        Assert.Empty(driver.Transitions);
        driver.Pipe(Record(1, Labels(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)));
        Assert.Equal(11.0, Assert.Single(driver.Transitions).Value);
    }

    [Fact]
    public void Evaluate_KeepsSeparateCounts_PerRank()
    {
        var driver = new AnalysisTestDriver(new ClassImbalanceRule { Samples = 20 });

        driver.PipeSteps(0, 3, step =>
        {
            driver.Pipe(Record(DefaultRun, 1, step, TimeOfStep(step), Labels(Batch(5, 5))));
            return Record(DefaultRun, 0, step, TimeOfStep(step), Labels(Batch(10, 0)), Labels(Batch(0, 10)));
        });

        // Rank 0's first labels tensor has only class 0 (one class: ratio 1); rank 1 is balanced.
        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Defaults_MatchSmdebug()
    {
        var rule = new ClassImbalanceRule();

        Assert.Equal((10.0, 0.7, 500, false), (rule.ThresholdImbalance, rule.ThresholdMisprediction, rule.Samples, rule.Argmax));
        Assert.Equal([Collection.Labels], rule.LabelsSelector.Collections);
        Assert.Equal([Collection.Predictions], rule.PredictionsSelector.Collections);
        Assert.Equal([("labels", true), ("predictions", true)], rule.Requirements.Select(r => (r.Collection, r.Raw)));
    }

    [Fact]
    public void Init_Throws_WhenAParameterIsOutOfRange()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ClassImbalanceRule { ThresholdImbalance = 0.5 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new ClassImbalanceRule { ThresholdImbalance = double.NaN });
        Assert.Throws<ArgumentOutOfRangeException>(() => new ClassImbalanceRule { ThresholdMisprediction = 1.1 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new ClassImbalanceRule { ThresholdMisprediction = -0.1 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new ClassImbalanceRule { Samples = 0 });
    }
}
