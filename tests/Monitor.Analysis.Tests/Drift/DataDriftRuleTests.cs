using Monitor.Analysis.Drift;
using Monitor.Contracts.V1;

namespace Monitor.Analysis.Tests.Drift;

/// <summary><see cref="DataDriftRule"/> through the engine: windows, references, alerts per feature, observations.</summary>
public sealed class DataDriftRuleTests
{
    private static readonly string[] Names = ["a", "b", "c"];

    /// <summary>
    /// A batch of <paramref name="rows"/> examples (the rules keep 100 a step, so windows of 10 steps hold 1,000 values,
    /// where PSI without drift stays near 0.02, far from its 0.1) of three named features: a and b standard normal, c too unless
    /// <paramref name="shiftC"/> moves it; every step draws new values from its own seed.
    /// </summary>
    internal static TensorRecord Batch(long step, int rows = 100, double shiftC = 0, double shiftA = 0)
    {
        var random = new Random((int)step + 1);
        float[] values = new float[rows * 3];
        for (int r = 0; r < rows; r++)
        {
            values[(r * 3) + 0] = (float)(Normal(random) + shiftA);
            values[(r * 3) + 1] = (float)Normal(random);
            values[(r * 3) + 2] = (float)(Normal(random) + shiftC);
        }

        TensorRecord tensor = RuleTestRecords.Raw("inputs", values, [rows, 3], DType.Float32, Collection.Inputs);
        tensor.FeatureNames.Add(Names);
        tensor.Raw.SampleRows = (uint)rows;
        return tensor;
    }

    private static double Normal(Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());

    private static AnalysisTestDriver Driver(DataDriftRule rule) => new(rule);

    [Fact]
    public void Evaluate_FiresForTheShiftedFeatureOnly_AfterTheFirstDriftedWindow()
    {
        var driver = Driver(new DataDriftRule { Test = "psi", ReferenceSteps = 10, WindowSteps = 10, RowsPerStep = 100 });

        driver.PipeSteps(0, 59, step => AnalysisTestDriver.Record(step, Batch(step, shiftC: step >= 40 ? 2 : 0)));

        AlertTransition fired = Assert.Single(driver.Transitions, t => t.State == AlertState.Firing);
        Assert.Equal("DataDrift", fired.RuleName);
        Assert.Equal("c", fired.Identity[AlertLabels.Feature]);
        Assert.Equal("inputs", fired.Identity[AlertLabels.Tensor]);
        // Windows 10-19, 20-29, 30-39 are clean; 40-49 is the first drifted one.
        Assert.Equal(49, fired.Step);
        Assert.Contains("c of inputs drifted: psi", fired.Description, StringComparison.Ordinal);
        Assert.Contains("steps 40-49 against the first 10 steps 0-9", fired.Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_ReportsAnObservationPerFeature_EveryWindow()
    {
        var driver = Driver(new DataDriftRule { Test = "psi", ReferenceSteps = 10, WindowSteps = 10, RowsPerStep = 100 });
        var observed = new List<DriftObservation>();

        for (long step = 0; step < 40; step++)
        {
            driver.Pipe(AnalysisTestDriver.Record(step, Batch(step)));
            observed.AddRange(driver.Engine.DriftObservations);
        }

        // Reference 0-9; windows end at steps 19, 29, 39: three tests of three features.
        Assert.Equal(9, observed.Count);
        Assert.Equal([19L, 29L, 39L], observed.Select(o => o.Step).Distinct());
        Assert.All(observed, o => Assert.Equal(("run-1", 0u, "inputs", "psi"), (o.Run, o.Rank, o.Tensor, o.Test)));
        Assert.Equal(Names, observed.Take(3).Select(o => o.Feature));
        Assert.All(observed, o => Assert.True(double.IsNaN(o.PValue)));
        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Evaluate_ResolvesTheAlert_WhenASlidingReferenceCatchesUp()
    {
        var driver = Driver(new DataDriftRule { Test = "psi", Reference = DriftReferenceKind.Sliding, ReferenceSteps = 10, WindowSteps = 10, RowsPerStep = 100 });

        driver.PipeSteps(0, 69, step => AnalysisTestDriver.Record(step, Batch(step, shiftC: step >= 30 ? 3 : 0)));

        // 30-39 against 20-29 drifted; 40-49 against 30-39 (both shifted) did not.
        AlertTransition[] changes = [.. driver.Transitions.Where(t => t.State == AlertState.Firing || t.IsResolution)];
        Assert.Equal(2, changes.Length);
        Assert.Equal((AlertState.Firing, 39L), (changes[0].State, changes[0].Step));
        Assert.True(changes[1].IsResolution);
        Assert.Equal(49, changes[1].Step);
    }

    [Fact]
    public void Evaluate_SkipsTheWarmupSteps_BeforeTheReference()
    {
        var driver = Driver(new DataDriftRule { Test = "psi", WarmupSteps = 20, ReferenceSteps = 10, WindowSteps = 10, RowsPerStep = 100 });
        var tested = new List<long>();

        // The first 20 steps are far off (a young model); the reference starts at step 20.
        for (long step = 0; step < 50; step++)
        {
            driver.Pipe(AnalysisTestDriver.Record(step, Batch(step, shiftA: step < 20 ? 5 : 0)));
            tested.AddRange(driver.Engine.DriftObservations.Select(o => o.Step).Distinct());
        }

        Assert.Empty(driver.Transitions);
        Assert.Equal([39L, 49L], tested);
    }

    [Fact]
    public void Evaluate_TestsOnlyTheNamedFeatures()
    {
        var driver = Driver(new DataDriftRule { Test = "psi", Features = ["c"], ReferenceSteps = 10, WindowSteps = 10, RowsPerStep = 100 });

        driver.PipeSteps(0, 19, step => AnalysisTestDriver.Record(step, Batch(step, shiftC: step >= 10 ? 3 : 0, shiftA: step >= 10 ? 3 : 0)));

        AlertTransition fired = Assert.Single(driver.Transitions);
        Assert.Equal("c", fired.Identity[AlertLabels.Feature]);
    }

    [Fact]
    public void Evaluate_ComparesWithTheStoredReference()
    {
        var random = new Random(9);
        double[] stored = [.. Enumerable.Range(0, 2000).Select(_ => Normal(random))];
        var table = new DriftReferenceTable("ref.csv", new Dictionary<string, double[]> { ["a"] = stored, ["c"] = stored });
        var driver = Driver(new DataDriftRule { Test = "psi", StoredReference = table, WindowSteps = 10, RowsPerStep = 100 });

        driver.PipeSteps(0, 19, step => AnalysisTestDriver.Record(step, Batch(step, shiftC: step >= 10 ? 3 : 0)));

        // Windows 0-9 and 10-19 are tested against the table at once; b is not in it and is not tested.
        AlertTransition fired = Assert.Single(driver.Transitions);
        Assert.Equal(("c", 19L), (fired.Identity[AlertLabels.Feature], fired.Step));
        Assert.Contains("against the reference ref.csv", fired.Description, StringComparison.Ordinal);
        Assert.Equal(["a", "c"], driver.Engine.DriftObservations.Select(o => o.Feature));
    }

    [Fact]
    public void Evaluate_NamesUnnamedColumnsByIndex_AndAOneColumnTensorByItsName()
    {
        var driver = Driver(new DataDriftRule { Test = "psi", Selector = TensorSelector.Of(Collection.Predictions, Collection.Inputs), Categorical = ["predictions"], ReferenceSteps = 2, WindowSteps = 2 });
        var observed = new List<string>();

        for (long step = 0; step < 4; step++)
        {
            TensorRecord unnamed = RuleTestRecords.Raw("inputs", [.. Enumerable.Range(0, 60).Select(i => (float)((i * 7 % 23) + step))], [30, 2], DType.Float32, Collection.Inputs);
            TensorRecord predictions = RuleTestRecords.Predictions([.. Enumerable.Range(0, 30).Select(i => i % 3)]);
            driver.Pipe(AnalysisTestDriver.Record(step, unnamed, predictions));
            observed.AddRange(driver.Engine.DriftObservations.Select(o => $"{o.Tensor}:{o.Feature}"));
        }

        Assert.Equal(["inputs:0", "inputs:1", "predictions:predictions"], observed);
    }

    [Fact]
    public void Evaluate_DropsNonFiniteValues_AndSkipsOtherModes()
    {
        var driver = Driver(new DataDriftRule { Test = "psi", ReferenceSteps = 10, WindowSteps = 10, RowsPerStep = 100 });

        for (long step = 0; step < 20; step++)
        {
            TensorRecord batch = Batch(step);
            float[] values = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(batch.Raw.Float32Le.Span).ToArray();
            values[0] = float.NaN;
            values[1] = float.PositiveInfinity;
            batch.Raw.Float32Le = Google.Protobuf.ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));
            driver.Pipe(AnalysisTestDriver.Record(step, batch));
            // Validation passes are not training data.
            driver.Pipe(RuleTestRecords.InMode(Mode.Eval, step, Batch(step, shiftA: 9)));
        }

        Assert.Empty(driver.Transitions);
        Assert.Equal(0, driver.Engine.RuleFaults);
    }

    [Fact]
    public void Evaluate_CorrectsThePValues_WithBonferroni()
    {
        // c moves a little: the z-test finds it at 0.05 but not at 0.05 / 3.
        var plain = Driver(new DataDriftRule { Test = "z", Categorical = ["a", "b", "c"], ReferenceSteps = 5, WindowSteps = 5, RowsPerStep = 40 });
        var corrected = Driver(new DataDriftRule { Test = "z", Categorical = ["a", "b", "c"], ReferenceSteps = 5, WindowSteps = 5, RowsPerStep = 40, Correction = DriftCorrection.Bonferroni });
        Func<long, StepRecord> records = step =>
        {
            // Binary features, 200 values a window: a and b half ones throughout; c 100 ones in the reference (steps
            // 0-4) and 122 in the window (steps 5-9): z = 2.21, p = 0.027.
            float[] values = new float[40 * 3];
            for (int r = 0; r < 40; r++)
            {
                long inWindow = ((step % 5) * 40) + r;
                values[r * 3] = r % 2;
                values[(r * 3) + 1] = (r + 1) % 2;
                values[(r * 3) + 2] = inWindow < (step >= 5 ? 122 : 100) ? 1 : 0;
            }

            TensorRecord tensor = RuleTestRecords.Raw("inputs", values, [40, 3], DType.Float32, Collection.Inputs);
            tensor.FeatureNames.Add(Names);
            return AnalysisTestDriver.Record(step, tensor);
        };

        plain.PipeSteps(0, 9, records);
        corrected.PipeSteps(0, 9, records);

        DriftObservation c = plain.Engine.DriftObservations.Single(o => o.Feature == "c");
        Assert.InRange(c.PValue, 0.05 / 3, 0.05);
        Assert.Contains(plain.Transitions, t => t.Identity[AlertLabels.Feature] == "c");
        Assert.DoesNotContain(corrected.Transitions, t => t.Identity[AlertLabels.Feature] == "c");
    }

    [Fact]
    public void Test_RejectsAnUnknownTestName_ListingTheKnownOnes()
    {
        ArgumentException error = Assert.Throws<ArgumentException>(() => new DataDriftRule { Test = "kolmogorov" });

        Assert.Contains("unknown drift test 'kolmogorov'", error.Message, StringComparison.Ordinal);
        Assert.Contains("psi", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_NamesTheProblem_WhenAStoredReferenceIsMissingOrLacksAFeature()
    {
        Assert.Contains("referenceFile", Assert.Single(new DataDriftRule { Reference = DriftReferenceKind.Stored }.Validate()), StringComparison.Ordinal);
        var table = new DriftReferenceTable("ref.csv", new Dictionary<string, double[]> { ["a"] = [1, 2] });
        Assert.Contains("'z' is not a column of the reference ref.csv", Assert.Single(new DataDriftRule { StoredReference = table, Features = ["a", "z"] }.Validate()), StringComparison.Ordinal);
        Assert.Empty(new DataDriftRule().Validate());
    }

    [Theory]
    [InlineData(MultivariateDrift.Mmd, "mmd")]
    [InlineData(MultivariateDrift.Pca, "pca")]
    public void Evaluate_TestsAllFeaturesTogether_WithAMultivariateTest(MultivariateDrift method, string name)
    {
        var driver = Driver(new DataDriftRule { Test = DataDriftRule.NoTest, Multivariate = method, ReferenceSteps = 10, WindowSteps = 10, RowsPerStep = 30 });
        var observed = new List<DriftObservation>();

        // c follows a (c = a) until step 30, then goes its own way: each feature keeps its distribution, the vectors do
        // not (NannyML's example of a drift only a multivariate test sees).
        for (long step = 0; step < 50; step++)
        {
            TensorRecord batch = Batch(step, rows: 30);
            if (step < 30)
            {
                float[] values = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(batch.Raw.Float32Le.Span).ToArray();
                for (int r = 0; r < 30; r++)
                {
                    values[(r * 3) + 2] = values[r * 3];
                }

                batch.Raw.Float32Le = Google.Protobuf.ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));
            }

            driver.Pipe(AnalysisTestDriver.Record(step, batch));
            observed.AddRange(driver.Engine.DriftObservations);
        }

        Assert.All(observed, o => Assert.Equal((DataDriftRule.AllFeatures, name), (o.Feature, o.Test)));
        Assert.Equal([19L, 29L, 39L, 49L], observed.Select(o => o.Step));
        Assert.Equal([false, false, true, true], observed.Select(o => o.Drift));
        AlertTransition fired = Assert.Single(driver.Transitions, t => t.State == AlertState.Firing);
        Assert.Equal(("*", 39L), (fired.Identity[AlertLabels.Feature], fired.Step));
        Assert.Contains("the 3 features of inputs drifted together", fired.Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_AsksForAMultivariateTest_WhenThePerFeatureTestIsNone() =>
        Assert.Contains("multivariate", Assert.Single(new DataDriftRule { Test = DataDriftRule.NoTest }.Validate()), StringComparison.Ordinal);
}
