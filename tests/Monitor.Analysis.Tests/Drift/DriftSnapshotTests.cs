using System.Buffers;
using System.Globalization;
using Monitor.Analysis.Drift;
using Monitor.Analysis.State;
using Monitor.Contracts.V1;
using static Monitor.Analysis.Tests.AnalysisTestDriver;

namespace Monitor.Analysis.Tests.Drift;

/// <summary>
/// The drift rules' state as data: for DataDrift (first, sliding and stored references; per-feature and multivariate
/// tests) and ConceptDrift (each detector), processing records 1..n in one engine gives the same transitions, drift
/// observations and final state as processing 1..k, snapshotting, restoring into a new engine and processing k+1..n,
/// for every k (before the reference froze, just after, mid-window, right after a detection).
/// </summary>
public sealed class DriftSnapshotTests(ITestOutputHelper output)
{
    private const int DataSteps = 48;
    private const int ConceptSteps = 40;

    public static TheoryData<string> DataScenarios => new(DataRules.Keys.Order(StringComparer.Ordinal));

    public static TheoryData<string, ConceptDriftInput> ConceptScenarios
    {
        get
        {
            var data = new TheoryData<string, ConceptDriftInput>();
            foreach (string detector in DriftDetectors.Names)
            {
                data.Add(detector, ConceptDriftInput.Error);
                data.Add(detector, ConceptDriftInput.Values);
            }

            return data;
        }
    }

    // Reference 10 steps (after a warm-up of 2 where set), windows of 10 tested every 5 steps; feature c (or the
    // category mix, or the relation of c to a) changes from step 26 on, so alerts fire and resolve as windows pass.
    private static Dictionary<string, Func<DataDriftRule>> DataRules { get; } = new(StringComparer.Ordinal)
    {
        ["first-ks"] = () => new DataDriftRule { Test = "ks", ReferenceSteps = 10, WindowSteps = 10, EverySteps = 5, RowsPerStep = 20, WarmupSteps = 2 },
        ["first-auto-bonferroni"] = () => new DataDriftRule { ReferenceSteps = 10, WindowSteps = 10, EverySteps = 5, RowsPerStep = 20, Correction = DriftCorrection.Bonferroni },
        ["sliding-psi"] = () => new DataDriftRule { Test = "psi", Reference = DriftReferenceKind.Sliding, ReferenceSteps = 10, WindowSteps = 10, EverySteps = 5, RowsPerStep = 20 },
        ["stored-ks"] = () => new DataDriftRule { Test = "ks", StoredReference = StoredTable(), WindowSteps = 10, EverySteps = 5, RowsPerStep = 20 },
        ["categorical-jensenshannon"] = () => new DataDriftRule { Test = "jensenshannon", Categorical = ["c"], Features = ["a", "c"], ReferenceSteps = 10, WindowSteps = 10, EverySteps = 5, RowsPerStep = 20 },
        ["categorical-psi-sliding"] = () => new DataDriftRule { Test = "psi", Categorical = ["c"], Reference = DriftReferenceKind.Sliding, ReferenceSteps = 10, WindowSteps = 10, EverySteps = 5, RowsPerStep = 20 },
        ["mmd-first"] = () => new DataDriftRule { Test = DataDriftRule.NoTest, Multivariate = MultivariateDrift.Mmd, ReferenceSteps = 10, WindowSteps = 10, EverySteps = 5, RowsPerStep = 8 },
        ["mmd-sliding"] = () => new DataDriftRule { Test = "ks", Multivariate = MultivariateDrift.Mmd, Reference = DriftReferenceKind.Sliding, ReferenceSteps = 10, WindowSteps = 10, EverySteps = 5, RowsPerStep = 12 },
        ["mmd-stored"] = () => new DataDriftRule { Test = DataDriftRule.NoTest, Multivariate = MultivariateDrift.Mmd, StoredReference = StoredTable(), WindowSteps = 10, EverySteps = 5, RowsPerStep = 8 },
        ["pca-first"] = () => new DataDriftRule { Test = DataDriftRule.NoTest, Multivariate = MultivariateDrift.Pca, ReferenceSteps = 10, WindowSteps = 10, EverySteps = 5, RowsPerStep = 30 },
    };

    [Theory]
    [MemberData(nameof(DataScenarios))]
    public void DataDrift_RestoredEngine_ContinuesAsOneEngine_WhateverTheSplit(string scenario)
    {
        Func<DataDriftRule> make = DataRules[scenario];
        StepRecord[] records = [.. Enumerable.Range(0, DataSteps).Select(step => DataRecord(step, categorical: scenario.StartsWith("categorical", StringComparison.Ordinal), related: scenario.Contains("mmd", StringComparison.Ordinal) || scenario.Contains("pca", StringComparison.Ordinal)))];
        AssertEverySplit(scenario, () => new RuleBinding { Rule = make(), KeepFiringForEvaluations = 1 }, records);
    }

    [Theory]
    [MemberData(nameof(ConceptScenarios))]
    public void ConceptDrift_RestoredEngine_ContinuesAsOneEngine_WhateverTheSplit(string detector, ConceptDriftInput input)
    {
        Func<ConceptDriftRule> make = () => new ConceptDriftRule
        {
            Detector = detector,
            Input = input,
            DetectorParameters = detector switch
            {
                // A seeded KSWIN restarts the same way in both engines (unseeded, each restart draws a new seed).
                "kswin" => new Dictionary<string, string> { ["seed"] = "42", ["window_size"] = "60", ["stat_size"] = "20", ["alpha"] = "0.05" },
                "adwin" => new Dictionary<string, string> { ["clock"] = "4" },
                "page-hinkley" => new Dictionary<string, string> { ["threshold"] = "5" },
                _ => new Dictionary<string, string>(),
            },
        };
        StepRecord[] records = [.. Enumerable.Range(0, ConceptSteps).Select(step => ConceptRecord(step, input, binary: detector is "ddm" or "eddm"))];
        AssertEverySplit($"{detector} {input}", () => new RuleBinding { Rule = make() }, records);
    }

    [Theory]
    [MemberData(nameof(Detectors))]
    public void Detector_ReadState_ContinuesAsTheOriginal_FromEveryValue(string name)
    {
        var parameters = new Dictionary<string, string>(name == "kswin" ? [new("seed", "7")] : []);
        bool binary = name is "ddm" or "eddm" or "hddm-a" or "hddm-w";
        double[] stream = binary
            ? DriftStreams.Bernoulli(5, (300, 0.1), (300, 0.5), (200, 0.05))
            : DriftStreams.Gaussian(5, (300, 0, 1), (300, 2, 1), (200, -1, 0.5));
        IDriftDetector whole = DriftDetectors.Create(name, parameters);
        var signals = new List<(bool Drift, bool Warning)>();
        foreach (double value in stream)
        {
            whole.Update(value);
            signals.Add((whole.DriftDetected, whole.WarningDetected));
        }

        Assert.Contains(signals, s => s.Drift);
        byte[] end = Bytes(whole);
        for (int k = 0; k < stream.Length; k += name == "kswin" ? 13 : 1)
        {
            IDriftDetector first = DriftDetectors.Create(name, parameters);
            foreach (double value in stream.AsSpan(0, k))
            {
                first.Update(value);
            }

            byte[] state = Bytes(first);
            IDriftDetector second = DriftDetectors.Create(name, parameters);
            var reader = new StateReader(state, name);
            Assert.True(second.ReadState(ref reader));
            reader.EnsureEnd();
            Assert.Equal(state, Bytes(second));
            for (int i = k; i < stream.Length; i++)
            {
                second.Update(stream[i]);
                Assert.True(signals[i] == (second.DriftDetected, second.WarningDetected), $"{name} restored after {k} values differs at value {i}");
            }

            Assert.Equal(end, Bytes(second));
        }
    }

    [Fact]
    public void Detector_ReadState_StaysNew_WhenTheWindowParametersDiffer()
    {
        IDriftDetector kswin = DriftDetectors.Create("kswin", new Dictionary<string, string> { ["seed"] = "1" });
        IDriftDetector adwin = DriftDetectors.Create("adwin", new Dictionary<string, string> { ["max_buckets"] = "9" });
        foreach (double value in DriftStreams.Gaussian(2, (400, 0, 1)))
        {
            kswin.Update(value);
            adwin.Update(value);
        }

        foreach ((IDriftDetector written, IDriftDetector other) in new[]
        {
            (kswin, DriftDetectors.Create("kswin", new Dictionary<string, string> { ["seed"] = "1", ["window_size"] = "50" })),
            (adwin, DriftDetectors.Create("adwin", new Dictionary<string, string> { ["max_buckets"] = "3" })),
        })
        {
            byte[] fresh = Bytes(other);
            var reader = new StateReader(Bytes(written), written.Name);
            Assert.False(other.ReadState(ref reader));
            Assert.Equal(fresh, Bytes(other));
        }
    }

    public static TheoryData<string> Detectors => new(DriftDetectors.Names);

    private static byte[] Bytes(IDriftDetector detector)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var writer = new StateWriter(buffer);
        detector.WriteState(ref writer);
        return buffer.WrittenSpan.ToArray();
    }

    [Fact]
    public void UnsnapshottedRules_NoLongerListsTheDriftRules()
    {
        var driver = new AnalysisTestDriver(
            new RuleBinding { Rule = new DataDriftRule(), Name = "InputDrift" },
            new RuleBinding { Rule = new ConceptDriftRule() });

        Assert.Empty(driver.Engine.UnsnapshottedRules);
    }

    [Fact]
    public void WriteSnapshot_AllocatesNothing_OnceItsBuffersHaveGrown_WithDriftState()
    {
        AnalysisTestDriver driver = Combined();
        var buffer = new ArrayBufferWriter<byte>();
        void Pass()
        {
            buffer.ResetWrittenCount();
            driver.Engine.WriteSnapshot(DefaultRun, 0, buffer);
        }

        Pass();
        Assert.Equal(0, SteadyStateAllocation.LeastBytes(Pass));
    }

    [Fact]
    public void Fuzz_RestoreSnapshot_ThrowsOnlyInvalidData_AndChangesNothing_WhenDriftSectionsAreCorrupt()
    {
        AnalysisTestDriver source = Combined();
        byte[] valid = source.Engine.WriteSnapshot(DefaultRun, 0);
        AnalysisTestDriver target = Combined(steps: 12);
        byte[] before = target.Engine.WriteSnapshot(DefaultRun, 0);
        Random random = Fuzz.NewRandom(20_261_204);

        Dictionary<string, int> outcomes = Fuzz.Run("drift state snapshot, flipped bytes", Fuzz.Inputs(1_000), i =>
        {
            byte[] mutated = (byte[])valid.Clone();
            // Flip bytes behind the engine part (in the rule sections), and mend the checksum so the parser sees them.
            for (int n = random.Next(1, 4); n > 0; n--)
            {
                mutated[random.Next(valid.Length / 4, valid.Length - 4)] ^= (byte)random.Next(1, 256);
            }

            mutated = WithChecksum(mutated);
            try
            {
                target.Engine.RestoreSnapshot(mutated);
                target.Engine.RestoreSnapshot(before);
                return "restored";
            }
            catch (InvalidDataException)
            {
                Assert.Equal(before, target.Engine.WriteSnapshot(DefaultRun, 0));
                return "invalid";
            }
        }, TimeSpan.FromSeconds(2));

        Assert.True(outcomes.GetValueOrDefault("invalid") > 0, "no mutation was rejected");
    }

    [Fact]
    public void RestoreSnapshot_Rejects_ATruncatedDriftSection()
    {
        AnalysisTestDriver source = Combined();
        byte[] valid = source.Engine.WriteSnapshot(DefaultRun, 0);
        var target = new AnalysisTestDriver(CombinedRules());

        foreach (int cut in (int[])[1, 7, 100, valid.Length / 2])
        {
            byte[] truncated = WithChecksum([.. valid.AsSpan(0, valid.Length - 4 - cut), 0, 0, 0, 0]);
            Assert.Throws<InvalidDataException>(() => target.Engine.RestoreSnapshot(truncated));
        }

        Assert.Empty(target.Engine.Keys);
        target.Engine.RestoreSnapshot(valid);
        Assert.Equal(valid, target.Engine.WriteSnapshot(DefaultRun, 0));
    }

    [Fact]
    public void RestoreSnapshot_StartsASeriesOver_WhenTheParametersChanged()
    {
        AnalysisTestDriver source = Combined();
        byte[] bytes = source.Engine.WriteSnapshot(DefaultRun, 0);
        var changed = new AnalysisTestDriver(
            new RuleBinding { Rule = new DataDriftRule { Test = "ks", ReferenceSteps = 7, WindowSteps = 10, RowsPerStep = 20 }, Name = "Data" },
            new RuleBinding { Rule = new ConceptDriftRule { Detector = "adwin" }, Name = "Concept" },
            new RuleBinding { Rule = new ConceptDriftRule { Detector = "kswin", DetectorParameters = new Dictionary<string, string> { ["window_size"] = "50" } }, Name = "Kswin" });

        changed.Engine.RestoreSnapshot(bytes);
        var fresh = new AnalysisTestDriver(
            new RuleBinding { Rule = new DataDriftRule { Test = "ks", ReferenceSteps = 7, WindowSteps = 10, RowsPerStep = 20 }, Name = "Data" },
            new RuleBinding { Rule = new ConceptDriftRule { Detector = "adwin" }, Name = "Concept" },
            new RuleBinding { Rule = new ConceptDriftRule { Detector = "kswin", DetectorParameters = new Dictionary<string, string> { ["window_size"] = "50" } }, Name = "Kswin" });
        for (long step = 30; step < 40; step++)
        {
            StepRecord record = CombinedRecord(step);
            Assert.Equal(fresh.Pipe(record.Clone()).Select(t => t.ToString()), changed.Pipe(record).Select(t => t.ToString()));
        }
    }

    [Fact]
    public void WriteSnapshot_Size_OfTheDefaultRuleSetsDriftMonitors_AfterTheReferenceFroze()
    {
        // default-rules.yaml's InputDrift, PredictionDrift and ConceptDrift, fed the sample job's 16 features, 64
        // examples a step, past InputDrift's frozen reference (200 steps) and PredictionDrift's warm-up (200) and
        // sliding reference and window (200).
        Func<ITrainingRule>[] rules =
        [
            () => new DataDriftRule { Name = "InputDrift", RowsPerStep = 1, ReferenceSteps = 200, WindowSteps = 200, Correction = DriftCorrection.Bonferroni, Threshold = 0.001 },
            () => new DataDriftRule { Name = "PredictionDrift", Selector = TensorSelector.Of(Collection.Predictions), Categorical = ["predictions"], Test = "jensenshannon", RowsPerStep = 8, ReferenceSteps = 100, WindowSteps = 100, Reference = DriftReferenceKind.Sliding, WarmupSteps = 200 },
            () => new ConceptDriftRule { ValuesPerStep = 8 },
        ];
        int empty = new AnalysisTestDriver(new RuleBinding { Rule = rules[2]() }).Engine.WriteSnapshot(DefaultRun, 0).Length;
        var all = new AnalysisTestDriver([.. rules.Select(make => new RuleBinding { Rule = make() })]);
        var single = rules.Select(make => new AnalysisTestDriver(new RuleBinding { Rule = make() })).ToArray();
        for (long step = 0; step < 450; step++)
        {
            StepRecord record = SampleJobRecord(step);
            all.Pipe(record);
            foreach (AnalysisTestDriver driver in single)
            {
                driver.Pipe(record.Clone());
            }
        }

        int total = all.Engine.WriteSnapshot(DefaultRun, 0).Length;
        int[] sizes = [.. single.Select(d => d.Engine.WriteSnapshot(DefaultRun, 0).Length - empty)];
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"after 450 steps: InputDrift {sizes[0]} bytes, PredictionDrift {sizes[1]} bytes, ConceptDrift {sizes[2]} bytes (each beyond the {empty} bytes of a key with nothing); the three together {total} bytes"));
        Assert.InRange(sizes[0], 2 * 200 * 16 * 4, 2 * 200 * ((16 * 4) + 8));
        Assert.InRange(sizes[1], 200 * 8 * 4, 200 * ((8 * 4) + 8) + 100);
        Assert.InRange(sizes[2], 40, 200);
        Assert.Equal(total, all.Engine.WriteSnapshot(DefaultRun, 0).Length);
    }

    private static void AssertEverySplit(string scenario, Func<RuleBinding> binding, StepRecord[] records)
    {
        (List<string> whole, byte[] end) = Run(binding, records, split: -1);
        Assert.Contains(whole, t => t.Contains("-> Firing ", StringComparison.Ordinal));
        for (int k = 1; k < records.Length; k++)
        {
            (List<string> split, byte[] splitEnd) = Run(binding, records, k);
            Assert.True(whole.SequenceEqual(split), $"{scenario}, split after {k} of {records.Length} records:\nwhole:\n{string.Join('\n', whole)}\nsplit:\n{string.Join('\n', split)}");
            Assert.True(end.AsSpan().SequenceEqual(splitEnd), $"{scenario}, split after {k}: the final state differs");
        }
    }

    // Transitions and drift observations, and the key's final snapshot; restored from a snapshot after `split` records.
    private static (List<string> Events, byte[] End) Run(Func<RuleBinding> binding, StepRecord[] records, int split)
    {
        var driver = new AnalysisTestDriver(binding());
        var events = new List<string>();
        for (int i = 0; i < records.Length; i++)
        {
            if (i == split)
            {
                byte[] snapshot = driver.Engine.WriteSnapshot(DefaultRun, 0);
                var restored = new AnalysisTestDriver(binding());
                restored.Time.SetUtcNow(driver.Time.GetUtcNow());
                Assert.Equal((DefaultRun, 0u), restored.Engine.RestoreSnapshot(snapshot));
                Assert.Equal(snapshot, restored.Engine.WriteSnapshot(DefaultRun, 0));
                driver = restored;
            }

            events.AddRange(driver.Pipe(records[i].Clone()).Select(t => string.Create(CultureInfo.InvariantCulture,
                $"{t.Identity} {t.PreviousState} -> {t.State} step {t.Step} value {t.Value:R} threshold {t.Threshold:R}: {t.Description}")));
            events.AddRange(driver.Engine.DriftObservations.Select(o => o.ToString()));
        }

        return (events, driver.Engine.WriteSnapshot(DefaultRun, 0));
    }

    // DataDriftRuleTests' batch of a, b, c (c shifted from step 26 on); categorical: c as a code 0-3 whose mix changes;
    // related: c = a until step 26, then c = -a (a change only the multivariate tests see).
    private static StepRecord DataRecord(int step, bool categorical, bool related)
    {
        TensorRecord batch = DataDriftRuleTests.Batch(step, rows: 20, shiftC: related || step < 26 ? 0 : 1.5);
        float[] values = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(batch.Raw.Float32Le.Span).ToArray();
        for (int r = 0; r < 20; r++)
        {
            if (categorical)
            {
                values[(r * 3) + 2] = (step >= 26 ? r % 2 : r % 4) + (step % 7 == 0 ? float.NaN : 0);
            }
            else if (related)
            {
                values[(r * 3) + 2] = step < 26 ? values[r * 3] : -values[r * 3];
            }
        }

        batch.Raw.Float32Le = Google.Protobuf.ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));
        return Record(step, batch);
    }

    private static DriftReferenceTable StoredTable()
    {
        double[] a = DriftStreams.Gaussian(3, (200, 0, 1));
        double[] b = DriftStreams.Gaussian(4, (200, 0, 1));
        return new DriftReferenceTable("reference.csv", new Dictionary<string, double[]> { ["a"] = a, ["b"] = b, ["c"] = a });
    }

    // 10% errors (or losses around 0.2, or 0-1 losses with 10% ones for DDM and EDDM, which count ones) for 20 steps,
    // then 60% (around 0.7).
    private static StepRecord ConceptRecord(int step, ConceptDriftInput input, bool binary)
    {
        if (input == ConceptDriftInput.Error)
        {
            return ConceptDriftRuleTests.Step(step, step < 20 ? 6 : 38);
        }

        double[] noise = binary
            ? DriftStreams.Bernoulli((ulong)step + 1, (64, step < 20 ? 0.1 : 0.6))
            : DriftStreams.Gaussian((ulong)step + 1, (64, step < 20 ? 0.2 : 0.7, 0.05));
        float[] losses = [.. noise.Select(n => (float)Math.Clamp(n, 0, 1))];
        return Record(step, RuleTestRecords.Raw("loss", losses, [64], DType.Float32, Collection.Losses));
    }

    private static RuleBinding[] CombinedRules() =>
    [
        new RuleBinding { Rule = new DataDriftRule { Test = "ks", ReferenceSteps = 10, WindowSteps = 10, RowsPerStep = 20 }, Name = "Data" },
        new RuleBinding { Rule = new ConceptDriftRule { Detector = "adwin" }, Name = "Concept" },
        new RuleBinding { Rule = new ConceptDriftRule { Detector = "kswin", DetectorParameters = new Dictionary<string, string> { ["seed"] = "1" } }, Name = "Kswin" },
    ];

    private static StepRecord CombinedRecord(long step)
    {
        StepRecord record = ConceptDriftRuleTests.Step(step, step < 20 ? 6 : 38);
        record.Tensors.Add(DataDriftRuleTests.Batch(step, rows: 20));
        return record;
    }

    // Data drift with a frozen reference, ADWIN and KSWIN (its generator too), 30 steps.
    private static AnalysisTestDriver Combined(int steps = 30)
    {
        var driver = new AnalysisTestDriver(CombinedRules());
        for (long step = 0; step < steps; step++)
        {
            driver.Pipe(CombinedRecord(step));
        }

        return driver;
    }

    // The sample job's record: 64 examples of 16 features x0 ... x15, predicted classes and labels (4 classes).
    private static StepRecord SampleJobRecord(long step)
    {
        var random = new Random((int)step + 1);
        float[] inputs = [.. Enumerable.Range(0, 64 * 16).Select(_ => (float)random.NextDouble())];
        TensorRecord batch = RuleTestRecords.Raw("inputs", inputs, [64, 16], DType.Float32, Collection.Inputs);
        batch.FeatureNames.Add(Enumerable.Range(0, 16).Select(i => "x" + i.ToString(CultureInfo.InvariantCulture)));
        int[] labels = [.. Enumerable.Range(0, 64).Select(_ => random.Next(4))];
        int[] predictions = [.. labels.Select(l => random.NextDouble() < 0.8 ? l : (l + 1) % 4)];
        return Record(step, batch, RuleTestRecords.Labels(labels), RuleTestRecords.Predictions(predictions));
    }

    private static byte[] WithChecksum(byte[] snapshot)
    {
        byte[] copy = (byte[])snapshot.Clone();
        uint crc = ~0u;
        foreach (byte b in copy.AsSpan(0, copy.Length - 4))
        {
            crc = System.Numerics.BitOperations.Crc32C(crc, b);
        }

        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(copy.AsSpan(copy.Length - 4), ~crc);
        return copy;
    }
}
