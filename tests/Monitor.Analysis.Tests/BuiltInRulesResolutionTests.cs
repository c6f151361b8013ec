using Monitor.Analysis.Drift;
using Monitor.Analysis.Rules;
using Monitor.Contracts.V1;
using static Monitor.Analysis.Tests.AnalysisTestDriver;
using static Monitor.Analysis.Tests.RuleTestData;

namespace Monitor.Analysis.Tests;

/// <summary>
/// Resolution of the built-in rules' alerts: the engine, not the rule, knows whether an alert is still tracked
/// (held by <c>keepFiringFor</c>, or carried over a reload to a rule instance that never saw the problem), so every
/// rule must report its passing verdicts for as long as the engine tracks an alert.
/// </summary>
public sealed class BuiltInRulesResolutionTests
{
    private const int MaxFaultySteps = 400;
    private const int MaxHealthySteps = 600;

    /// <summary>
    /// Built-in rules with a record-driven scenario: a faulty phase that makes them fire, then a healthy one.
    /// StalledTraining (time-driven) has its own tests below. Not here: PoorWeightInitialization, whose verdict is
    /// latched for the rest of the run by design (only a re-initialization resolves it), and SimilarAcrossRuns, which
    /// needs two runs (it reports every comparison, passing ones included).
    /// </summary>
    public static TheoryData<string> Rules =>
    [
        "AllZero", "CheckInputImages", "ClassImbalance", "ConceptDrift", "Confusion", "DataDrift", "DeadRelu",
        "ExplodingTensor", "LossNotDecreasing", "NLPSequenceRatio", "NonFiniteTensor", "Overfit", "Overtraining",
        "SaturatedActivation", "TensorVariance", "Threshold", "UnchangedTensor", "VanishingGradient", "WeightUpdateRatio",
    ];

    [Theory]
    [MemberData(nameof(Rules))]
    public void BuiltInRule_ResolvesAfterTheConditionClears_WithKeepFiringForEvaluations(string name)
    {
        long plain = ResolvingStep(name, new RuleBinding { Rule = Make(name) });
        long kept = ResolvingStep(name, new RuleBinding { Rule = Make(name), KeepFiringForEvaluations = 3 });

        // Kept firing through three passing evaluations: later than without, but it does resolve.
        Assert.True(kept > plain, $"{name}: resolved at step {kept} with keepFiringForEvaluations 3, at {plain} without");
    }

    [Theory]
    [MemberData(nameof(Rules))]
    public void BuiltInRule_ResolvesAfterTheConditionClears_WithKeepFiringFor(string name)
    {
        long plain = ResolvingStep(name, new RuleBinding { Rule = Make(name) });
        long kept = ResolvingStep(name, new RuleBinding { Rule = Make(name), KeepFiringFor = TimeSpan.FromSeconds(10) });

        // Steps are one second apart in event time: ten seconds of passing verdicts are at least ten steps.
        Assert.True(kept >= plain + 10, $"{name}: resolved at step {kept} with keepFiringFor 10 s, at {plain} without");
    }

    [Theory]
    [MemberData(nameof(Rules))]
    public void BuiltInRule_ResolvesAFiringAlert_AfterARuleReload(string name)
    {
        var driver = new AnalysisTestDriver(new RuleBinding { Rule = Make(name) });
        long step = FireFaulty(driver, name);

        // The reloaded configuration keeps the rule: a new instance with empty windows, the alert kept by the engine.
        Assert.Empty(driver.Engine.ReplaceRules([new RuleBinding { Rule = Make(name) }]));
        Assert.Single(driver.Engine.ActiveAlerts);

        AlertTransition resolved = PipeHealthyUntilResolved(driver, name, step);
        Assert.Equal(name, resolved.RuleName);
        Assert.Empty(driver.Engine.ActiveAlerts);
    }

    [Fact]
    public void StalledTraining_ResolvesAfterStepsResume_WithKeepFiringForEvaluations()
    {
        var driver = new AnalysisTestDriver(new RuleBinding { Rule = new StalledTrainingRule(), KeepFiringForEvaluations = 2 });
        DateTimeOffset now = Stall(driver);

        // Each record with a newer step is a passing evaluation: the third resolves.
        var resolutions = new List<long>();
        for (long step = 6; step <= 10; step++)
        {
            now = now.AddSeconds(1);
            driver.Time.SetUtcNow(now);
            resolutions.AddRange(driver.Pipe(Record(DefaultRun, 0, step, now)).Where(t => t.IsResolution).Select(t => t.Step));
        }

        Assert.Equal([8L], resolutions);
        Assert.Empty(driver.Engine.ActiveAlerts);
    }

    [Fact]
    public void StalledTraining_ResolvesAfterStepsResume_WithKeepFiringFor()
    {
        var driver = new AnalysisTestDriver(new RuleBinding { Rule = new StalledTrainingRule(), KeepFiringFor = TimeSpan.FromSeconds(30) });
        DateTimeOffset resumed = Stall(driver);

        driver.Time.SetUtcNow(resumed);
        Assert.Empty(driver.Pipe(Record(DefaultRun, 0, 6, resumed)));
        // The ticks report the rank as progressing; once 30 s have passed since the first passing verdict, it resolves.
        driver.Time.SetUtcNow(resumed.AddSeconds(29));
        Assert.Empty(driver.Engine.Tick());
        driver.Time.SetUtcNow(resumed.AddSeconds(30));
        AlertTransition resolved = Assert.Single(driver.Engine.Tick());
        Assert.True(resolved.IsResolution);
    }

    [Fact]
    public void StalledTraining_ResolvesAFiringAlert_AfterARuleReload()
    {
        var driver = new AnalysisTestDriver(new StalledTrainingRule());
        DateTimeOffset resumed = Stall(driver);

        Assert.Empty(driver.Engine.ReplaceRules([new RuleBinding { Rule = new StalledTrainingRule() }]));
        driver.Time.SetUtcNow(resumed);
        AlertTransition resolved = Assert.Single(driver.Pipe(Record(DefaultRun, 0, 6, resumed)));

        Assert.True(resolved.IsResolution);
        Assert.Equal("StalledTraining", resolved.RuleName);
    }

    // Steps 0..5, then a tick 31 minutes later: the rank's alert fires. Returns a time just after.
    private static DateTimeOffset Stall(AnalysisTestDriver driver)
    {
        driver.PipeSteps(0, 5, step => Record(step));
        DateTimeOffset stalled = TimeOfStep(5).AddMinutes(31);
        driver.Time.SetUtcNow(stalled);
        Assert.Equal(AlertState.Firing, Assert.Single(driver.Engine.Tick()).State);
        return stalled.AddSeconds(1);
    }

    private static long ResolvingStep(string name, RuleBinding binding)
    {
        var driver = new AnalysisTestDriver(binding);
        long step = FireFaulty(driver, name);
        return PipeHealthyUntilResolved(driver, name, step).Step;
    }

    // Pipes faulty records until the rule's alert fires; returns the next step.
    private static long FireFaulty(AnalysisTestDriver driver, string name)
    {
        for (long step = 0; step < MaxFaultySteps; step++)
        {
            if (driver.Pipe(At(name, step, faulty: true)).Any(t => t.State == AlertState.Firing))
            {
                return step + 1;
            }
        }

        Assert.Fail($"{name} did not fire within {MaxFaultySteps} faulty steps");
        return 0;
    }

    private static AlertTransition PipeHealthyUntilResolved(AnalysisTestDriver driver, string name, long from)
    {
        for (long step = from; step < from + MaxHealthySteps; step++)
        {
            foreach (AlertTransition transition in driver.Pipe(At(name, step, faulty: false)))
            {
                Assert.True(transition.IsResolution, $"{name}: unexpected {transition.State} at step {step}");
                return transition;
            }
        }

        Assert.Fail($"{name}: the alert did not resolve within {MaxHealthySteps} healthy steps");
        return null!;
    }

    internal static ITrainingRule Make(string name) => name switch
    {
        // A window of one record's samples, so each record is a verdict.
        "Confusion" => new ConfusionRule { Samples = 10 },
        "ConceptDrift" => new ConceptDriftRule(),
        "DataDrift" => new DataDriftRule { Test = "psi", ReferenceSteps = 10, WindowSteps = 10, RowsPerStep = 100 },
        "Threshold" => new ThresholdRule(),
        _ => BuiltInRules.TensorRules.TryGetValue(name, out Func<ITrainingRule>? tensorRule) ? tensorRule() : BuiltInRules.DataRules[name](),
    };

    // One record per step; the faulty one has the rule's problem, the healthy one not (values vary with the step).
    internal static StepRecord At(string name, long step, bool faulty)
    {
        switch (name)
        {
            case "ClassImbalance":
                // 50 labels a record: 44 of class 0 and 2 each of three others (ratio 22 > 10), or 13/13/12/12.
                return Record(step, RuleTestRecords.Labels(faulty ? Batch(44, 2, 2, 2) : Batch(13, 13, 12, 12)));
            case "Confusion":
                // Class 7 predicted right half of the time (below MinDiag 0.9), or every digit right.
                return Record(step, RuleTestRecords.Labels(Digits), RuleTestRecords.Predictions(faulty ? [0, 1, 2, 3, 7, 5, 6, 7, 8, 9] : Digits));
            case "Overfit":
                // Epochs of 100 steps: 90 training steps at loss 1.0, then a validation pass at 1.5 (overfitting) or 1.0.
                return step % 100 < 90
                    ? RuleTestRecords.InMode(Mode.Train, step, Loss("loss", 1.0))
                    : RuleTestRecords.InMode(Mode.Eval, step, Loss("loss", faulty ? 1.5 : 1.0));
            case "CheckInputImages":
                // Channel 0 in [0, 1] (mean 0.5, not normalized), or every channel at -1 / +1 (mean 0, std 1).
                return Record(step, CheckInputImagesRuleTests.Images(10, faulty ? CheckInputImagesRuleTests.Unnormalized : (_, p) => p % 2 == 0 ? -1f : 1f));
            case "NLPSequenceRatio":
                // 80% of every sequence is padding (above 50%), or 10%.
                return Record(step, NLPSequenceRatioRuleTests.Tokens(8, _ => faulty ? 8 : 1));
            case "ConceptDrift":
                // 10% of the predictions wrong for 200 steps, then 60%: drift; healthy, the rate stays where it went.
                return Drift.ConceptDriftRuleTests.Step(step, faulty && step < 200 ? 6 : 38);
            case "DataDrift":
                // Reference: the first 10 steps; faulty, feature c shifted by 2 after them.
                return Record(step, Drift.DataDriftRuleTests.Batch(step, shiftC: faulty && step >= 10 ? 2 : 0));
            case "Threshold":
                // Default: the mean of any tensor above 0, a window of one step.
                return Record(step, Tensor("w", faulty ? 1 : -1, 1, Collection.Weights));
            case "Overtraining":
                // A flat training loss finds no new optimum (patience 5); a falling one finds one every step.
                return Record(step, Loss("loss", faulty ? 6.0 : 6.0 - (0.2 * step)));
            default:
                break;
        }

        var random = new Random((int)step);
        float[] normal = Normal(random, 128);
        TensorRecord tensor = name switch
        {
            "AllZero" => Values("w", faulty ? Fill(64, 0) : normal[..64], raw: false, Collection.Weights),
            "ExplodingTensor" or "NonFiniteTensor" => Values("w", faulty ? Fill(64, float.NaN) : normal[..64], raw: false, Collection.Weights),
            "TensorVariance" => Values("w", [.. normal[..64].Select(x => x * (faulty ? 10f : 0.1f))], raw: false, Collection.Weights),
            "VanishingGradient" => Values("w.grad", faulty ? Fill(64, 0) : [.. normal[..64].Select(x => x * 0.01f)], raw: false, Collection.Gradients),
            "DeadRelu" => Values("relu.output", faulty ? Fill(128, 0) : [.. normal.Select(x => Math.Max(x, 0f))], [16, 8], raw: true, Collection.Activations),
            "SaturatedActivation" => Values("tanh.output", faulty ? Fill(128, 1) : [.. normal.Select(MathF.Tanh)], [16, 8], raw: true, Collection.Activations),
            // Unchanged weights: UnchangedTensor's problem, and an update ratio of 0 (below WeightUpdateRatio's small threshold).
            "UnchangedTensor" or "WeightUpdateRatio" => Values("w", faulty ? Normal(new Random(1), 64) : normal[..64], [8, 8], raw: true, Collection.Weights),
            "LossNotDecreasing" => Loss("loss", faulty ? 1 + (0.01 * step) : 2 * Math.Exp(-0.2 * step)),
            _ => throw new ArgumentOutOfRangeException(nameof(name), name, "no scenario"),
        };
        return Record(step, tensor);
    }

    private static readonly int[] Digits = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];

    private static int[] Batch(params int[] perClass) => [.. perClass.SelectMany((n, c) => Enumerable.Repeat(c, n))];
}
