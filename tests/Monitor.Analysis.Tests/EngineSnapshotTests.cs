using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Numerics;
using Monitor.Analysis.Drift;
using Monitor.Analysis.Rules;
using Monitor.Analysis.State;
using Monitor.Contracts.V1;
using static Monitor.Analysis.Tests.AnalysisTestDriver;
using static Monitor.Analysis.Tests.RuleTestData;

namespace Monitor.Analysis.Tests;

/// <summary>
/// Engine state as data: processing events 1..n in one engine gives the same alert transitions as processing 1..k,
/// snapshotting every key, restoring into a new engine and processing k+1..n, for every built-in training rule; and
/// the snapshot format is deterministic, round-trips, and rejects what it cannot read without changing anything.
/// </summary>
public sealed class EngineSnapshotTests(ITestOutputHelper output)
{
    private const int MaxFaultySteps = 600;
    private const int MaxHealthySteps = 800;

    /// <summary>The rules driven by <see cref="BuiltInRulesResolutionTests.At"/>'s faulty/healthy records.</summary>
    private static readonly string[] RecordRules =
    [
        "AllZero", "CheckInputImages", "ClassImbalance", "Confusion", "DeadRelu", "ExplodingTensor", "LossNotDecreasing",
        "NLPSequenceRatio", "NonFiniteTensor", "Overfit", "Overtraining", "SaturatedActivation", "TensorVariance", "Threshold",
        "UnchangedTensor", "VanishingGradient", "WeightUpdateRatio",
    ];

    /// <summary>Every built-in training rule with each binding variant (the drift rules: DriftSnapshotTests).</summary>
    public static TheoryData<string, int> Scenarios
    {
        get
        {
            var data = new TheoryData<string, int>();
            foreach (string rule in RecordRules.Concat(["PoorWeightInitialization", "SimilarAcrossRuns", "StalledTraining"]))
            {
                for (int variant = 0; variant < 3; variant++)
                {
                    data.Add(rule, variant);
                }
            }

            return data;
        }
    }

    [Theory]
    [MemberData(nameof(Scenarios))]
    public void RestoredEngine_EmitsTheSameTransitions_AsOneEngine_WhateverTheSplit(string rule, int variant)
    {
        Func<RuleBinding[]> bindings = () => [Bind(rule, variant)];
        Event[] events = Events(rule, bindings);
        (List<string> whole, List<int> at) = RunWhole(bindings, events);
        Assert.Contains(whole, t => t.Contains("-> Firing ", StringComparison.Ordinal));

        // Before anything happens, around every transition (pending, firing, kept firing, resolved), and midway.
        var splits = new SortedSet<int> { 1, events.Length / 2, events.Length - 1 };
        foreach (int index in at)
        {
            for (int k = index - 1; k <= index + 2; k++)
            {
                splits.Add(Math.Clamp(k, 1, events.Length - 1));
            }
        }

        foreach (int k in splits)
        {
            List<string> split = RunSplit(bindings, events, k);
            Assert.True(whole.SequenceEqual(split), $"{rule} variant {variant}, split after {k} of {events.Length} events:\nwhole:\n{string.Join('\n', whole)}\nsplit:\n{string.Join('\n', split)}");
        }
    }

    [Fact]
    public void WriteSnapshot_GivesTheSameBytes_ForTheSameState()
    {
        Event[] events = Events("UnchangedTensor", () => [Bind("UnchangedTensor", 1)]);
        var first = new AnalysisTestDriver(Bind("UnchangedTensor", 1));
        var second = new AnalysisTestDriver(Bind("UnchangedTensor", 1));
        Apply(first, events.AsSpan(0, 8), []);
        Apply(second, events.AsSpan(0, 8), []);

        byte[] bytes = first.Engine.WriteSnapshot(DefaultRun, 0);
        Assert.Equal(bytes, second.Engine.WriteSnapshot(DefaultRun, 0));
        Assert.Equal(bytes, first.Engine.WriteSnapshot(DefaultRun, 0));
    }

    [Fact]
    public void RestoreSnapshot_ThenWriteSnapshot_GivesIdenticalBytes_ForTheDefaultLikeRuleSet()
    {
        AnalysisTestDriver driver = DefaultLike(raw: true, steps: 20);
        byte[] bytes = driver.Engine.WriteSnapshot(DefaultRun, 0);

        var restored = new AnalysisTestDriver(DefaultLikeRules());
        Assert.Equal((DefaultRun, 0u), restored.Engine.RestoreSnapshot(bytes));

        Assert.Equal(bytes, restored.Engine.WriteSnapshot(DefaultRun, 0));
        Assert.Equal(driver.Engine.ActiveAlerts.Select(a => a.Identity.Fingerprint).Order(), restored.Engine.ActiveAlerts.Select(a => a.Identity.Fingerprint).Order());
    }

    [Fact]
    public void WriteSnapshot_Size_ForTheDefaultLikeRuleSetWithTenTensors()
    {
        foreach (bool raw in (bool[])[false, true])
        {
            AnalysisTestDriver driver = DefaultLike(raw, steps: 20);
            int size = driver.Engine.WriteSnapshot(DefaultRun, 0).Length;
            int alerts = driver.Engine.ActiveAlerts.Count();
            byte[] quiet = new AnalysisTestDriver(DefaultLikeRules()).Engine.WriteSnapshot(DefaultRun, 0);
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"snapshot of one key, {DefaultLikeRules().Length} rules, 10 tensors, raw values {(raw ? "of 64 elements" : "not traced")}: {size} bytes with {alerts} alerts pending or firing (an empty key: {quiet.Length} bytes)"));
            Assert.InRange(size, 100, raw ? 32_000 : 16_000);
        }
    }

    [Fact]
    public void WriteSnapshot_AllocatesNothing_OnceItsBuffersHaveGrown()
    {
        AnalysisTestDriver driver = DefaultLike(raw: true, steps: 20);
        Assert.NotEmpty(driver.Engine.ActiveAlerts);
        var buffer = new ArrayBufferWriter<byte>();
        void Pass()
        {
            buffer.ResetWrittenCount();
            driver.Engine.WriteSnapshot(DefaultRun, 0, buffer);
        }

        Pass();
        Pass();

        Assert.Equal(0, SteadyStateAllocation.LeastBytes(Pass));
    }

    [Fact]
    public void RestoredFiringAlert_DoesNotFireAgain_AndResolves()
    {
        var driver = new AnalysisTestDriver(new VanishingGradientRule());
        driver.PipeSteps(0, 5, step => Record(step, Gradient("w.grad", 0)));
        AlertTransition firing = Assert.Single(driver.Engine.ActiveAlerts);
        Assert.Equal(AlertState.Firing, firing.State);

        var restored = new AnalysisTestDriver(new VanishingGradientRule());
        restored.Engine.RestoreSnapshot(driver.Engine.WriteSnapshot(DefaultRun, 0));
        AlertTransition carried = Assert.Single(restored.Engine.ActiveAlerts);
        Assert.Equal((firing.Identity.Fingerprint, firing.State, firing.ActiveSince, firing.Step), (carried.Identity.Fingerprint, carried.State, carried.ActiveSince, carried.Step));

        Assert.Empty(restored.PipeSteps(6, 10, step => Record(step, Gradient("w.grad", 0))));
        // The window of five restored: a single healthy step does not yet lift its mean over the threshold... five do.
        AlertTransition resolved = Assert.Single(restored.PipeSteps(11, 20, step => Record(step, Gradient("w.grad", 1))));
        Assert.True(resolved.IsResolution);
        Assert.Equal(firing.ActiveSince, resolved.ActiveSince);
    }

    [Fact]
    public void Release_DropsTheKeyWithoutATransition_ReturnsItsActiveAlerts_AndLeavesOtherKeys()
    {
        var driver = new AnalysisTestDriver(new VanishingGradientRule(), new StalledTrainingRule());
        driver.PipeSteps(0, 5, step => Record(DefaultRun, 0, step, TimeOfStep(step), Gradient("w.grad", 0)));
        driver.PipeSteps(0, 5, step => Record("other", 3, step, TimeOfStep(step), Gradient("w.grad", 1)));
        AlertTransition firing = Assert.Single(driver.Engine.ActiveAlerts);

        AlertTransition released = Assert.Single(driver.Engine.Release(DefaultRun, 0));

        Assert.Equal((firing.Identity.Fingerprint, AlertState.Firing), (released.Identity.Fingerprint, released.State));
        Assert.Empty(driver.Engine.ActiveAlerts);
        Assert.False(driver.Engine.Holds(DefaultRun, 0));
        Assert.True(driver.Engine.Holds("other", 3));
        Assert.Equal([("other", 3u)], driver.Engine.Keys);
        // Its new owner carries it on: here, no stall is judged for it, however long the silence (the other rank, still
        // held, is judged as before).
        driver.Time.Advance(TimeSpan.FromHours(1));
        Assert.DoesNotContain(driver.Engine.Tick(caughtUp: true), t => t.Identity[AlertLabels.Run] == DefaultRun);
        Assert.Empty(driver.Engine.Release(DefaultRun, 0));
    }

    [Fact]
    public void RestoreSnapshot_ReplacesOnlyItsKey()
    {
        var driver = new AnalysisTestDriver(new VanishingGradientRule());
        driver.PipeSteps(0, 5, step => Record(DefaultRun, 0, step, TimeOfStep(step), Gradient("w.grad", 0)));
        byte[] empty = new AnalysisTestDriver(new VanishingGradientRule()).Engine.WriteSnapshot("other", 3);
        driver.PipeSteps(0, 5, step => Record("other", 3, step, TimeOfStep(step), Gradient("w.grad", 0)));
        Assert.Equal(2, driver.Engine.ActiveAlerts.Count());

        // The snapshot of a key the engine knew nothing of: restoring it forgets the key, and only it.
        driver.Engine.RestoreSnapshot(empty);

        Assert.Equal(DefaultRun, Assert.Single(driver.Engine.ActiveAlerts).Identity[AlertLabels.Run]);
        Assert.Equal([(DefaultRun, 0u)], driver.Engine.Keys);
    }

    [Fact]
    public void RestoreSnapshot_Throws_AndChangesNothing_WhenTruncated()
    {
        (AnalysisTestDriver target, byte[] before, byte[] other) = TwoStates();
        for (int length = 0; length < other.Length; length++)
        {
            Assert.Throws<InvalidDataException>(() => target.Engine.RestoreSnapshot(other.AsSpan(0, length)));
        }

        Assert.Equal(before, target.Engine.WriteSnapshot(DefaultRun, 0));
    }

    [Fact]
    public void RestoreSnapshot_Throws_AndChangesNothing_WhenAByteIsFlipped()
    {
        (AnalysisTestDriver target, byte[] before, byte[] other) = TwoStates();
        for (int i = 0; i < other.Length; i++)
        {
            byte[] corrupt = [.. other];
            corrupt[i] ^= 0x10;
            InvalidDataException ex = Assert.Throws<InvalidDataException>(() => target.Engine.RestoreSnapshot(corrupt));
            Assert.StartsWith("state snapshot", ex.Message, StringComparison.Ordinal);
        }

        Assert.Equal(before, target.Engine.WriteSnapshot(DefaultRun, 0));
    }

    [Fact]
    public void RestoreSnapshot_Throws_WhenTheSchemaVersionIsAnother()
    {
        (AnalysisTestDriver target, byte[] before, byte[] other) = TwoStates();
        other[4] = 2;

        InvalidDataException ex = Assert.Throws<InvalidDataException>(() => target.Engine.RestoreSnapshot(WithChecksum(other)));

        Assert.Contains("version 2 is not supported", ex.Message, StringComparison.Ordinal);
        Assert.Contains("byte 4", ex.Message, StringComparison.Ordinal);
        Assert.Equal(before, target.Engine.WriteSnapshot(DefaultRun, 0));
    }

    [Fact]
    public void RestoreSnapshot_Throws_WhenNotASnapshot()
    {
        var driver = new AnalysisTestDriver(new VanishingGradientRule());
        InvalidDataException ex = Assert.Throws<InvalidDataException>(() => driver.Engine.RestoreSnapshot("{\"json\": true}"u8));
        Assert.Contains("not a Monitor state snapshot", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RestoreSnapshot_Throws_AndChangesNothing_WhenTheSectionIsOfAnotherRuleType()
    {
        var source = new AnalysisTestDriver(new RuleBinding { Rule = new VanishingGradientRule(), Name = "Guard" });
        source.PipeSteps(0, 5, step => Record(step, Gradient("w.grad", 0)));
        var target = new AnalysisTestDriver(new RuleBinding { Rule = new ExplodingTensorRule(), Name = "Guard" });
        target.PipeSteps(0, 2, step => Record(step, Values("w", [float.NaN, 1], raw: false, Collection.Weights)));
        byte[] before = target.Engine.WriteSnapshot(DefaultRun, 0);

        InvalidDataException ex = Assert.Throws<InvalidDataException>(() => target.Engine.RestoreSnapshot(source.Engine.WriteSnapshot(DefaultRun, 0)));

        Assert.Contains("rule 'Guard'", ex.Message, StringComparison.Ordinal);
        Assert.Contains(typeof(VanishingGradientRule).FullName!, ex.Message, StringComparison.Ordinal);
        Assert.Equal(before, target.Engine.WriteSnapshot(DefaultRun, 0));
    }

    [Fact]
    public void RestoreSnapshot_Throws_WhenTheRuleStateVersionIsNewer()
    {
        var source = new AnalysisTestDriver(new VersionedRule { StateVersion = 2 });
        var target = new AnalysisTestDriver(new VersionedRule { StateVersion = 1 });

        InvalidDataException ex = Assert.Throws<InvalidDataException>(() => target.Engine.RestoreSnapshot(source.Engine.WriteSnapshot(DefaultRun, 0)));

        Assert.Contains("version 2 is newer", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RestoreSnapshot_SkipsAndCountsSectionsOfRulesNoLongerConfigured_AndStartsNewRulesEmpty()
    {
        var source = new AnalysisTestDriver(new VanishingGradientRule(), new VanishingGradientRule { Name = "Removed", Threshold = 1e-9 });
        source.PipeSteps(0, 5, step => Record(step, Gradient("w.grad", 0)));
        var target = new AnalysisTestDriver(new VanishingGradientRule(), new UnchangedTensorRule());

        target.Engine.RestoreSnapshot(source.Engine.WriteSnapshot(DefaultRun, 0));

        Assert.Equal(1, target.Engine.SnapshotSectionsSkipped);
        Assert.Equal(1, target.Engine.SnapshotAlertsDropped);
        Assert.Equal("VanishingGradient", Assert.Single(target.Engine.ActiveAlerts).RuleName);
        // The configured rule without a section starts empty: its snapshot equals a fresh engine's.
        byte[] restored = target.Engine.WriteSnapshot(DefaultRun, 0);
        var fresh = new AnalysisTestDriver(new VanishingGradientRule(), new UnchangedTensorRule());
        fresh.Engine.RestoreSnapshot(source.Engine.WriteSnapshot(DefaultRun, 0));
        Assert.Equal(restored, fresh.Engine.WriteSnapshot(DefaultRun, 0));
    }

    [Fact]
    public void AlertsOfRulesNoLongerConfigured_AreDroppedAndCounted()
    {
        var source = new AnalysisTestDriver(new VanishingGradientRule());
        source.PipeSteps(0, 5, step => Record(step, Gradient("w.grad", 0)));
        var target = new AnalysisTestDriver(new ExplodingTensorRule());

        target.Engine.RestoreSnapshot(source.Engine.WriteSnapshot(DefaultRun, 0));

        Assert.Empty(target.Engine.ActiveAlerts);
        Assert.Equal(1, target.Engine.SnapshotAlertsDropped);
        Assert.Equal(1, target.Engine.SnapshotSectionsSkipped);
    }

    [Fact]
    public void UnsnapshottedRules_ListsTheRulesWithoutState_AndTheirSectionsRestoreEmpty()
    {
        var driver = new AnalysisTestDriver(
            new RuleBinding { Rule = new VanishingGradientRule() },
            new RuleBinding { Rule = new DataDriftRule(), Name = "InputDrift" },
            new RuleBinding { Rule = new ConceptDriftRule() },
            new RuleBinding { Rule = new MeanAboveRule() });

        Assert.Equal(["MeanAbove"], driver.Engine.UnsnapshottedRules);
        driver.PipeSteps(0, 5, step => Record(step, Gradient("w.grad", 0)));
        byte[] bytes = driver.Engine.WriteSnapshot(DefaultRun, 0);

        driver.Engine.RestoreSnapshot(bytes);
        Assert.Equal(bytes, driver.Engine.WriteSnapshot(DefaultRun, 0));
        Assert.Empty(new AnalysisTestDriver(DefaultLikeRules()).Engine.UnsnapshottedRules);
    }

    [Fact]
    public void RestoreSnapshot_CarriesEndedRuns_SoRedeliveriesStayDuplicates()
    {
        var driver = new AnalysisTestDriver(new VanishingGradientRule());
        driver.PipeSteps(0, 3, step => Record(step, Gradient("w.grad", 1)));
        StepRecord end = Record(4);
        end.RunEnd = new RunEnd { Reason = RunEndReason.Done };
        driver.Pipe(end);

        var restored = new AnalysisTestDriver(new VanishingGradientRule());
        restored.Engine.RestoreSnapshot(driver.Engine.WriteSnapshot(DefaultRun, 0));
        restored.Pipe(Record(3, Gradient("w.grad", 1)));

        Assert.Equal(1, restored.Engine.DuplicateRecords);
        Assert.Equal([(DefaultRun, 0u)], restored.Engine.Keys);
    }

    [Fact]
    public void Fuzz_RestoreSnapshot_ThrowsOnlyInvalidData_WhenBytesAreFlipped()
    {
        AnalysisTestDriver source = DefaultLike(raw: true, steps: 12);
        byte[] valid = source.Engine.WriteSnapshot(DefaultRun, 0);
        var target = new AnalysisTestDriver(DefaultLikeRules());
        Random random = Fuzz.NewRandom(20_261_203);

        // Half the inputs keep a valid checksum, so that the mutations reach the parser behind it.
        Dictionary<string, int> outcomes = Fuzz.Run("state snapshot, flipped bytes", Fuzz.Inputs(4_000), i =>
        {
            byte[] mutated = Mutate(valid, random);
            if (i % 2 == 0 && mutated.Length > 4)
            {
                mutated = WithChecksum(mutated);
            }

            try
            {
                target.Engine.RestoreSnapshot(mutated);
                return "restored";
            }
            catch (InvalidDataException ex)
            {
                return ex.Message.Contains("checksum", StringComparison.Ordinal) ? "invalid: checksum" : "invalid: parse";
            }
        }, TimeSpan.FromSeconds(2));

        Assert.True(outcomes.GetValueOrDefault("invalid: parse") > 0, "no mutation reached the parser");
    }

    private static byte[] Mutate(byte[] valid, Random random)
    {
        var bytes = new List<byte>(valid);
        for (int edits = random.Next(1, 4); edits > 0 && bytes.Count > 0; edits--)
        {
            int at = random.Next(bytes.Count);
            switch (random.Next(5))
            {
                case 0:
                    bytes[at] ^= (byte)(1 << random.Next(8));
                    break;
                case 1:
                    bytes[at] = (byte)random.Next(256);
                    break;
                case 2:
                    bytes.RemoveRange(at, Math.Min(random.Next(1, 9), bytes.Count - at));
                    break;
                case 3:
                    bytes.Insert(at, (byte)random.Next(256));
                    break;
                default:
                    bytes.RemoveRange(at, bytes.Count - at);
                    break;
            }
        }

        return [.. bytes];
    }

    // The same CRC-32C the engine appends, recomputed over a changed body.
    private static byte[] WithChecksum(byte[] snapshot)
    {
        byte[] copy = [.. snapshot];
        uint crc = uint.MaxValue;
        foreach (byte b in copy.AsSpan(0, copy.Length - 4))
        {
            crc = BitOperations.Crc32C(crc, b);
        }

        BinaryPrimitives.WriteUInt32LittleEndian(copy.AsSpan(copy.Length - 4), ~crc);
        return copy;
    }

    // A target engine with state for the key, its snapshot, and the snapshot of another state of the same key.
    private static (AnalysisTestDriver Target, byte[] Before, byte[] Other) TwoStates()
    {
        AnalysisTestDriver target = DefaultLike(raw: true, steps: 6);
        AnalysisTestDriver other = DefaultLike(raw: true, steps: 14);
        return (target, target.Engine.WriteSnapshot(DefaultRun, 0), other.Engine.WriteSnapshot(DefaultRun, 0));
    }

    /// <summary>The default rule set's training rules (its drift rules: DriftSnapshotTests).</summary>
    private static RuleBinding[] DefaultLikeRules() =>
    [
        .. BuiltInRules.TensorRules.Values.Select(make => new RuleBinding { Rule = make() }),
        .. ((string[])["LossNotDecreasing", "Overfit", "Overtraining", "StalledTraining", "ClassImbalance"])
            .Select(name => new RuleBinding { Rule = BuiltInRules.DataRules[name]() }),
    ];

    // Ten tensors (four weights, three gradients, two ReLU activations, a loss); the weights stop changing and the
    // gradients vanish after step 8, so alerts are pending and firing.
    private static AnalysisTestDriver DefaultLike(bool raw, int steps)
    {
        var driver = new AnalysisTestDriver(DefaultLikeRules());
        for (long step = 0; step < steps; step++)
        {
            var random = new Random(step < 8 ? (int)step : 8);
            var tensors = new List<TensorRecord>();
            for (int w = 0; w < 4; w++)
            {
                tensors.Add(Values($"layer{w}.weight", Normal(random, 64), [8, 8], raw, Collection.Weights));
            }

            for (int g = 0; g < 3; g++)
            {
                tensors.Add(Values($"layer{g}.weight.grad", [.. Normal(random, 64).Select(x => step < 8 ? x : 0f)], raw, Collection.Gradients));
            }

            tensors.Add(Values("relu1.output", [.. Normal(random, 64).Select(x => Math.Max(x, 0f))], [8, 8], raw, Collection.Activations));
            tensors.Add(Values("relu2.output", [.. Normal(random, 64).Select(x => Math.Max(3 * x, 0f))], [8, 8], raw, Collection.Activations));
            tensors.Add(Loss("loss", 2.0 / (step + 1)));
            driver.Pipe(Record(step, [.. tensors]));
        }

        return driver;
    }

    private static RuleBinding Bind(string rule, int variant)
    {
        ITrainingRule made = rule switch
        {
            "SimilarAcrossRuns" => new SimilarAcrossRunsRule { OtherRun = "reference" },
            "PoorWeightInitialization" or "StalledTraining" => BuiltInRules.TensorRules.TryGetValue(rule, out var make) ? make() : BuiltInRules.DataRules[rule](),
            _ => BuiltInRulesResolutionTests.Make(rule),
        };
        return variant switch
        {
            0 => new RuleBinding { Rule = made },
            1 => new RuleBinding { Rule = made, ForEvaluations = 2, KeepFiringForEvaluations = 3 },
            _ => new RuleBinding { Rule = made, ForDuration = TimeSpan.FromSeconds(3), KeepFiringFor = TimeSpan.FromSeconds(10) },
        };
    }

    /// <summary>A record to process, or (when <see cref="Record"/> is null) a clock tick at <see cref="At"/>.</summary>
    private readonly record struct Event(StepRecord? Record, DateTimeOffset At);

    private static Event[] Events(string rule, Func<RuleBinding[]> bindings) => rule switch
    {
        "PoorWeightInitialization" => PoorInitialization(),
        "SimilarAcrossRuns" => AcrossRuns(),
        "StalledTraining" => Stall(),
        _ => FaultyThenHealthy(rule, bindings),
    };

    // Faulty records until the alert fires and five more, then healthy ones until it resolves and three more.
    private static Event[] FaultyThenHealthy(string rule, Func<RuleBinding[]> bindings)
    {
        var driver = new AnalysisTestDriver(bindings());
        var events = new List<Event>();
        long step = 0;
        for (int extra = -1; extra < 5; step++)
        {
            Assert.True(step < MaxFaultySteps, $"{rule} did not fire within {MaxFaultySteps} faulty steps");
            StepRecord record = BuiltInRulesResolutionTests.At(rule, step, faulty: true);
            events.Add(new Event(record, default));
            bool fired = driver.Pipe(record).Any(t => t.State == AlertState.Firing);
            extra = extra >= 0 || fired ? extra + 1 : -1;
        }

        for (int extra = -1; extra < 3; step++)
        {
            Assert.True(step < MaxFaultySteps + MaxHealthySteps, $"{rule} did not resolve within {MaxHealthySteps} healthy steps");
            StepRecord record = BuiltInRulesResolutionTests.At(rule, step, faulty: false);
            events.Add(new Event(record, default));
            bool resolved = driver.Pipe(record).Any(t => t.IsResolution);
            extra = extra >= 0 || resolved ? extra + 1 : -1;
        }

        return [.. events];
    }

    // Activation variances 100-fold apart from step 0 (latched until the window of ten steps ends), then a weight
    // re-initialization at step 13 starts a new window whose activations are fine.
    private static Event[] PoorInitialization() =>
    [
        .. Enumerable.Range(0, 40).Select(step =>
        {
            bool reinitialized = step >= 13;
            TensorRecord Activation(string name, double variance) =>
                Summary(name, new TensorSummary { Count = 100, Mean = 0, Min = -1, Max = 1, Variance = variance }, Collection.Activations);
            return new Event(Record(step,
                Activation("relu1.output", 1),
                Activation("relu2.output", reinitialized ? 2 : 100),
                Summary("layer.weight", new TensorSummary { Count = 100, Mean = 0, Min = -1, Max = 1, Variance = reinitialized ? 1000 : 1 }, Collection.Weights)), default);
        }),
    ];

    // Run "reference" and run-1 trace the same steps, in either order; run-1's tensor differs in steps 5 to 15.
    private static Event[] AcrossRuns()
    {
        var events = new List<Event>();
        for (long step = 0; step < 40; step++)
        {
            var reference = new Event(Record("reference", 0, step, TimeOfStep(step), RuleTestRecords.Summarized("w", 1)), default);
            var compared = new Event(Record(DefaultRun, 0, step, TimeOfStep(step), RuleTestRecords.Summarized("w", step is >= 5 and <= 15 ? 2 : 1)), default);
            events.AddRange(step % 2 == 0 ? [reference, compared] : [compared, reference]);
        }

        return [.. events];
    }

    // Steps 0 to 5, silence (ticks from 31 minutes on), then steps again, each followed by a tick.
    private static Event[] Stall()
    {
        var events = new List<Event>();
        for (long step = 0; step <= 5; step++)
        {
            events.Add(new Event(Record(step), default));
        }

        DateTimeOffset silent = TimeOfStep(5).AddMinutes(31);
        for (int i = 0; i < 5; i++)
        {
            events.Add(new Event(null, silent.AddSeconds(2 * i)));
        }

        for (long step = 6; step <= 30; step++)
        {
            DateTimeOffset at = silent.AddSeconds(10 + step);
            events.Add(new Event(Record(DefaultRun, 0, step, at), default));
            events.Add(new Event(null, at));
        }

        return [.. events];
    }

    private static (List<string> Transitions, List<int> At) RunWhole(Func<RuleBinding[]> bindings, Event[] events)
    {
        var driver = new AnalysisTestDriver(bindings());
        var transitions = new List<string>();
        var at = new List<int>();
        for (int i = 0; i < events.Length; i++)
        {
            int before = transitions.Count;
            Apply(driver, events.AsSpan(i, 1), transitions);
            if (transitions.Count > before)
            {
                at.Add(i);
            }
        }

        return (transitions, at);
    }

    private static List<string> RunSplit(Func<RuleBinding[]> bindings, Event[] events, int k)
    {
        var first = new AnalysisTestDriver(bindings());
        var transitions = new List<string>();
        Apply(first, events.AsSpan(0, k), transitions);

        var second = new AnalysisTestDriver(bindings());
        second.Time.SetUtcNow(first.Time.GetUtcNow());
        foreach ((string run, uint rank) in first.Engine.Keys.OrderBy(key => key.Run, StringComparer.Ordinal).ThenBy(key => key.Rank))
        {
            byte[] snapshot = first.Engine.WriteSnapshot(run, rank);
            Assert.Equal((run, rank), second.Engine.RestoreSnapshot(snapshot));
            Assert.Equal(snapshot, second.Engine.WriteSnapshot(run, rank));
        }

        Apply(second, events.AsSpan(k), transitions);
        return transitions;
    }

    private static void Apply(AnalysisTestDriver driver, ReadOnlySpan<Event> events, List<string> transitions)
    {
        foreach (Event e in events)
        {
            if (e.Record is { } record)
            {
                transitions.AddRange(driver.Pipe(record).Select(Describe));
            }
            else
            {
                driver.Time.SetUtcNow(e.At);
                transitions.AddRange(driver.Engine.Tick().Select(Describe));
            }
        }
    }

    private static string Describe(AlertTransition t) => string.Create(CultureInfo.InvariantCulture,
        $"{t.Identity} {t.Identity.Fingerprint} {t.PreviousState} -> {t.State} step {t.Step} value {t.Value:R} threshold {t.Threshold:R} since {t.ActiveSince:O} at {t.At:O}: {t.Description} | {string.Join("; ", t.Annotations.OrderBy(a => a.Key, StringComparer.Ordinal).Select(a => a.Key + "=" + a.Value))}");

    /// <summary>A rule that keeps nothing but declares a state version, for version checks.</summary>
    private sealed class VersionedRule : ITrainingRule, IStatefulRule
    {
        public string Name => "Versioned";

        public int StateVersion { get; init; } = 1;

        public void Evaluate(StepRecord record, RuleContext context)
        {
        }

        public void WriteState(string run, uint rank, ref StateWriter writer) => writer.WriteVarUInt(42);

        public Action ReadState(string run, uint rank, int version, ref StateReader reader)
        {
            reader.ReadVarUInt("answer");
            return StateRestore.None;
        }
    }
}
