using Monitor.Analysis.Rules;
using Monitor.Contracts.V1;
using static Monitor.Analysis.Tests.AnalysisTestDriver;
using static Monitor.Analysis.Tests.RuleTestRecords;

namespace Monitor.Analysis.Tests;

public sealed class ConfusionRuleTests
{
    // smdebug's own case: labels 0..9, the prediction of sample 4 is 7. Column 7 holds labels 7 and 4: diagonal 1/2.
    private static readonly int[] Digits = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
    private static readonly int[] DigitsWithOneError = [0, 1, 2, 3, 7, 5, 6, 7, 8, 9];

    [Fact]
    public void Evaluate_FiresOnTheDiagonal_WhenAPredictedClassIsHalfWrong()
    {
        var driver = new AnalysisTestDriver(new ConfusionRule { Samples = 10 });

        AlertTransition fired = Assert.Single(driver.Pipe(Record(0, Labels(Digits), Predictions(DigitsWithOneError))));

        Assert.Equal((AlertState.Firing, 0L, "predictions"), (fired.State, fired.Step, fired.Identity[AlertLabels.Tensor]));
        Assert.Equal((0.5, 0.9), (fired.Value, fired.Threshold));
        Assert.Equal("Confusion", fired.RuleName);
        Assert.Contains("only 50.0% of the predictions of class 7 were right", fired.Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_FiresOffTheDiagonal_WhenOnlyThatCheckIsStrict()
    {
        var driver = new AnalysisTestDriver(new ConfusionRule { Samples = 10, MinDiag = 0, MaxOffDiag = 0.01 });

        AlertTransition fired = Assert.Single(driver.Pipe(Record(0, Labels(Digits), Predictions(DigitsWithOneError))));

        Assert.Equal((0.5, 0.01), (fired.Value, fired.Threshold));
        Assert.Contains("50.0% of the predictions of class 7 were of class 4", fired.Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_DoesNotFire_WhenPredictionsArePerfect()
    {
        var random = new Random(23);
        var driver = new AnalysisTestDriver(new ConfusionRule { Samples = 100 });

        driver.PipeSteps(0, 100, step =>
        {
            int[] labels = [.. Enumerable.Range(0, 32).Select(_ => random.Next(10))];
            return Record(step, Labels(labels), Predictions(labels));
        });

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Evaluate_NeverFires_WhenAFewPercentOfPredictionsAreWrong()
    {
        var random = new Random(29);
        var driver = new AnalysisTestDriver(new ConfusionRule());

        // 1% of the predictions are a random other class: each column keeps about 99% on its diagonal. (At a few
        // percent, the ~50 predictions per class in a window of 500 make a column below 90% a matter of chance.)
        driver.PipeSteps(0, 1_000, step =>
        {
            int[] labels = [.. Enumerable.Range(0, 64).Select(_ => random.Next(10))];
            int[] predictions = [.. labels.Select(l => random.NextDouble() < 0.01 ? (l + 1 + random.Next(9)) % 10 : l)];
            return Record(step, Labels(labels), Predictions(predictions));
        });

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Evaluate_EvaluatesWhenTheWindowReachesSamples()
    {
        var driver = new AnalysisTestDriver(new ConfusionRule());

        // Batches of 64, labels i % 4; 4 of the 16 samples of class 3 are predicted as 2. Column 2: 16 right, 4 wrong.
        // The default window of 500 pairs closes at the eighth batch (512 pairs, step 7).
        int[] labels = [.. Enumerable.Range(0, 64).Select(i => i % 4)];
        int[] predictions = [.. labels.Select((l, i) => l == 3 && i < 16 ? 2 : l)];
        driver.PipeSteps(0, 7, step => Record(step, Labels(labels), Predictions(predictions)));

        AlertTransition fired = Assert.Single(driver.Transitions);
        Assert.Equal((7L, 0.8), (fired.Step, fired.Value));
        Assert.Contains("over the last 512 samples", fired.Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_ResolvesAtTheNextWindow_WhenPredictionsImprove()
    {
        var driver = new AnalysisTestDriver(new ConfusionRule { Samples = 10 });

        driver.Pipe(Record(0, Labels(Digits), Predictions(DigitsWithOneError)));
        driver.Pipe(Record(1, Labels(Digits), Predictions(Digits)));

        Assert.Equal([(AlertState.Firing, 0L), (AlertState.Inactive, 1L)], driver.Transitions.Select(t => (t.State, t.Step)));
    }

    [Fact]
    public void Evaluate_IgnoresIdsAtOrAboveCategoryNo()
    {
        // Label 5 predicted as 0 would put a wrong sample in column 0; with CategoryNo 3 the pair is not counted.
        StepRecord record = Record(0, Labels(0, 1, 2, 5, 0, 1, 2, 5), Predictions(0, 1, 2, 0, 0, 1, 2, 0));

        var bounded = new AnalysisTestDriver(new ConfusionRule { Samples = 6, CategoryNo = 3 });
        bounded.Pipe(record);
        var inferred = new AnalysisTestDriver(new ConfusionRule { Samples = 6 });
        inferred.Pipe(record);

        Assert.Empty(bounded.Transitions);
        Assert.Equal(0.5, Assert.Single(inferred.Transitions).Value);
    }

    [Fact]
    public void Evaluate_TakesTheArgmaxOfScores_WhenArgmaxIsSet()
    {
        var driver = new AnalysisTestDriver(new ConfusionRule { Samples = 10, Argmax = true });

        AlertTransition fired = Assert.Single(driver.Pipe(Record(0, Labels(Digits), Scores(10, DigitsWithOneError))));

        Assert.Equal(("logits", 0.5), (fired.Identity[AlertLabels.Tensor], fired.Value));
    }

    [Fact]
    public void Evaluate_ReportsNothing_WithoutRawLabelsAndPredictions()
    {
        var driver = new AnalysisTestDriver(new ConfusionRule { Samples = 1 });

        driver.Pipe(Record(0, Labels(Digits)));
        driver.Pipe(Record(1, Predictions(DigitsWithOneError)));
        driver.Pipe(Record(2, Tensor("labels", 0, 0, Collection.Labels), Tensor("predictions", 0, 0, Collection.Predictions)));

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Defaults_MatchSmdebug()
    {
        var rule = new ConfusionRule();

        Assert.Equal(((int?)null, 0.9, 0.1, 500, false), (rule.CategoryNo, rule.MinDiag, rule.MaxOffDiag, rule.Samples, rule.Argmax));
        Assert.Equal([Collection.Labels], rule.LabelsSelector.Collections);
        Assert.Equal([Collection.Predictions], rule.PredictionsSelector.Collections);
        Assert.All(rule.Requirements, r => Assert.True(r.Raw));
    }

    [Fact]
    public void Init_Throws_WhenAParameterIsOutOfRange()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ConfusionRule { CategoryNo = 1 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new ConfusionRule { CategoryNo = ConfusionRule.MaxCategories + 1 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new ConfusionRule { MinDiag = -0.1 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new ConfusionRule { MinDiag = double.NaN });
        Assert.Throws<ArgumentOutOfRangeException>(() => new ConfusionRule { MaxOffDiag = 1.5 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new ConfusionRule { Samples = 0 });
    }
}
