using Monitor.Analysis.Drift;
using Monitor.Contracts.V1;

namespace Monitor.Analysis.Tests.Drift;

/// <summary><see cref="ConceptDriftRule"/> through the engine: the error stream, detectors, alerts and parameters.</summary>
public sealed class ConceptDriftRuleTests
{
    /// <summary>A step of 64 labelled examples of which <paramref name="wrong"/>, spread over the batch, are mispredicted.</summary>
    internal static StepRecord Step(long step, int wrong)
    {
        int[] labels = [.. Enumerable.Range(0, 64).Select(i => i % 4)];
        // Example i is wrong when the count of wrong ones up to it rises: wrong of 64, evenly spaced.
        int[] predictions = [.. labels.Select((l, i) => (i + 1) * wrong / 64 > i * wrong / 64 ? (l + 1) % 4 : l)];
        return AnalysisTestDriver.Record(step, RuleTestRecords.Labels(labels), RuleTestRecords.Predictions(predictions));
    }

    [Fact]
    public void Evaluate_FiresOnceWhenTheErrorRateJumps_AndResolvesAtTheNextRecordWithoutKeepFiring()
    {
        var driver = new AnalysisTestDriver(new ConceptDriftRule());

        // 10% errors for 200 steps, then 60%.
        driver.PipeSteps(0, 249, step => Step(step, step < 200 ? 6 : 38));

        AlertTransition fired = Assert.Single(driver.Transitions, t => t.State == AlertState.Firing);
        Assert.Equal(("ConceptDrift", "error", "predictions"), (fired.RuleName, fired.Identity[AlertLabels.Feature], fired.Identity[AlertLabels.Tensor]));
        Assert.InRange(fired.Step, 200, 205);
        Assert.Contains("ddm signalled concept drift in the per-example error of predictions", fired.Description, StringComparison.Ordinal);
        Assert.Contains(driver.Transitions, t => t.IsResolution && t.Step == fired.Step + 1);
    }

    [Fact]
    public void Evaluate_KeepsTheAlertFiring_ForKeepFiringForEvaluations()
    {
        var driver = new AnalysisTestDriver(new RuleBinding { Rule = new ConceptDriftRule(), KeepFiringForEvaluations = 20 });

        driver.PipeSteps(0, 299, step => Step(step, step < 200 ? 6 : 38));

        AlertTransition fired = Assert.Single(driver.Transitions, t => t.State == AlertState.Firing);
        AlertTransition resolved = Assert.Single(driver.Transitions, t => t.IsResolution);
        Assert.Equal(fired.Step + 21, resolved.Step);
    }

    [Fact]
    public void Evaluate_StaysQuiet_WhileTheErrorRateFalls()
    {
        var driver = new AnalysisTestDriver(new ConceptDriftRule());

        // A model that learns: errors fall from 60% to 5%.
        driver.PipeSteps(0, 299, step => Step(step, Math.Max(3, 38 - (int)(step / 8))));

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Evaluate_FeedsTheDetectorTheValuesOfALossTensor_WithInputValues()
    {
        var driver = new AnalysisTestDriver(new ConceptDriftRule { Detector = "page-hinkley", Input = ConceptDriftInput.Values, DetectorParameters = new Dictionary<string, string> { ["mode"] = "up", ["threshold"] = "5" } });
        var observed = new List<DriftObservation>();

        for (long step = 0; step < 40; step++)
        {
            float level = step < 20 ? 0.5f : 3f;
            TensorRecord losses = RuleTestRecords.Raw("loss", [.. Enumerable.Repeat(level, 64)], [64], DType.Float32, Collection.Losses);
            driver.Pipe(AnalysisTestDriver.Record(step, losses));
            observed.AddRange(driver.Engine.DriftObservations);
        }

        AlertTransition fired = Assert.Single(driver.Transitions, t => t.State == AlertState.Firing);
        Assert.Equal(("values", "loss", 20L), (fired.Identity[AlertLabels.Feature], fired.Identity[AlertLabels.Tensor], fired.Step));
        Assert.Equal(40, observed.Count);
        Assert.All(observed, o => Assert.Equal("page-hinkley", o.Test));
        Assert.Equal(3, observed[^1].Statistic, 6);
    }

    [Fact]
    public void Evaluate_FeedsOneMeanPerRecord_WithInputMean()
    {
        var driver = new AnalysisTestDriver(new ConceptDriftRule { Detector = "adwin", Input = ConceptDriftInput.Mean });

        driver.PipeSteps(0, 299, step => AnalysisTestDriver.Record(step, AnalysisTestDriver.Loss("loss", step < 150 ? 0.2 : 0.9)));

        AlertTransition fired = Assert.Single(driver.Transitions, t => t.State == AlertState.Firing);
        Assert.Equal("mean", fired.Identity[AlertLabels.Feature]);
        Assert.InRange(fired.Step, 150, 200);
    }

    [Fact]
    public void Validate_NamesTheParameter_WhenTheDetectorDoesNotTakeIt()
    {
        var rule = new ConceptDriftRule { Detector = "ddm", DetectorParameters = new Dictionary<string, string> { ["delta"] = "0.1" } };

        string problem = Assert.Single(rule.Validate());

        Assert.StartsWith("detectorParameters: ", problem, StringComparison.Ordinal);
        Assert.Contains("delta", problem, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new ConceptDriftRule { Detector = "cusum" });
    }
}
