using System.CommandLine;
using System.Text.Json;
using Monitor.Cli;
using Monitor.Contracts;
using Monitor.Contracts.V1;
using Monitor.Service;

namespace Monitor.IntegrationTests;

public sealed class ReplayCommandTests : IDisposable
{
    private const string Run = "replay-run";

    /// <summary>Gradients vanish at this step and recover at <see cref="RecoveryStep"/>.</summary>
    private const long VanishStep = 50;

    private const long RecoveryStep = 80;

    private const int WindowSteps = 4;

    private static readonly DateTimeOffset Start = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private readonly string _directory = Directory.CreateTempSubdirectory("monitor-replay-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static (int ExitCode, string Output, string Error) Invoke(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int exitCode = MonitorCommand.Invoke(args, new InvocationConfiguration { Output = output, Error = error });
        return (exitCode, output.ToString(), error.ToString());
    }

    private string PathOf(string name) => Path.Combine(_directory, name);

    private string WriteText(string name, string text)
    {
        string path = PathOf(name);
        File.WriteAllText(path, text);
        return path;
    }

    /// <summary>Steps 0-99 of rank 0, one per second: gradients of 1e-2 that vanish (1e-9) in [50, 80).</summary>
    private static IEnumerable<StepRecord> Recording()
    {
        for (long step = 0; step < 100; step++)
        {
            var gradient = new TensorRecord
            {
                Name = "fc1.weight.grad",
                Dtype = DType.Float32,
                Summary = new TensorSummary { Count = 100, AbsMean = step is >= VanishStep and < RecoveryStep ? 1e-9 : 1e-2 },
            };
            gradient.Shape.Add(100);
            gradient.Collections.Add(Collection.Gradients);
            var record = new StepRecord
            {
                SchemaVersion = StepRecordDecoder.CurrentSchemaVersion,
                RunId = Run,
                Rank = 0,
                WorldSize = 1,
                Step = step,
                Mode = Mode.Train,
                EventTimeUnixNanos = (Start.AddSeconds(step) - DateTimeOffset.UnixEpoch).Ticks * 100,
                Sequence = (ulong)step + 1,
            };
            record.Tensors.Add(gradient);
            yield return record;
        }
    }

    private string WriteRecording(string name, StepRecordFileFormat? format = null)
    {
        string path = PathOf(name);
        using StepRecordWriter writer = StepRecordFile.CreateWriter(path, format);
        foreach (StepRecord record in Recording())
        {
            writer.Write(record);
        }

        return path;
    }

    private string WriteRules() => WriteText("rules.yaml", $"""
        rules:
          - rule: VanishingGradient
            parameters: {"{"}threshold: 1e-7, windowSteps: {WindowSteps}{"}"}
            severity: critical
            labels: {"{"}team: ml{"}"}
            annotations:
              summary: "{"{{"}labels.tensor{"}}"} vanished"
            actions: [stop]
        """);

    private static List<JsonElement> Lines(string output) =>
        [.. output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(l => JsonDocument.Parse(l).RootElement.Clone())];

    private static void AssertFiringThenResolved(string output)
    {
        List<JsonElement> lines = Lines(output);
        Assert.Equal(2, lines.Count);

        // The window of 4 traced steps holds only vanished gradients first at step 50 + 4 - 1, and
        // holds a recovered one first at step 80.
        JsonElement firing = lines[0];
        Assert.Equal(("firing", "firing", "inactive"),
            (firing.GetProperty("status").GetString(), firing.GetProperty("state").GetString(), firing.GetProperty("previousState").GetString()));
        Assert.Equal("VanishingGradient", firing.GetProperty("labels").GetProperty("alertname").GetString());
        Assert.Equal(VanishStep + WindowSteps - 1, firing.GetProperty("step").GetInt64());
        Assert.Equal(1e-9, firing.GetProperty("value").GetDouble(), 1e-15);
        Assert.Equal(1e-7, firing.GetProperty("threshold").GetDouble());
        JsonElement labels = firing.GetProperty("labels");
        Assert.Equal(
            [("alertname", "VanishingGradient"), ("rank", "0"), ("run", Run), ("severity", "critical"), ("team", "ml"), ("tensor", "fc1.weight.grad")],
            labels.EnumerateObject().Select(p => (p.Name, p.Value.GetString()!)).OrderBy(p => p.Name, StringComparer.Ordinal));
        Assert.Equal("fc1.weight.grad vanished", firing.GetProperty("annotations").GetProperty("summary").GetString());
        Assert.StartsWith("mean |gradient| of fc1.weight.grad over the last 4 traced steps", firing.GetProperty("annotations").GetProperty("description").GetString(), StringComparison.Ordinal);
        Assert.Equal(["stop"], firing.GetProperty("actions").EnumerateArray().Select(a => a.GetString()));
        // Event times of the records: the rule's condition first holds at the firing step itself.
        Assert.Equal(Start.AddSeconds(VanishStep + WindowSteps - 1), firing.GetProperty("activeSince").GetDateTimeOffset());
        Assert.Equal(Start.AddSeconds(VanishStep + WindowSteps - 1), firing.GetProperty("at").GetDateTimeOffset());
        Assert.Matches("^[0-9a-f]{16}$", firing.GetProperty("fingerprint").GetString());

        JsonElement resolved = lines[1];
        Assert.Equal(("resolved", "inactive", "firing"),
            (resolved.GetProperty("status").GetString(), resolved.GetProperty("state").GetString(), resolved.GetProperty("previousState").GetString()));
        Assert.Equal(RecoveryStep, resolved.GetProperty("step").GetInt64());
        Assert.Equal(firing.GetProperty("fingerprint").GetString(), resolved.GetProperty("fingerprint").GetString());
    }

    [Fact]
    public void Replay_PrintsTheVanishingGradientAlert_AtTheComputedStep()
    {
        string rules = WriteRules();
        string input = WriteRecording("steps.jsonl");

        (int exitCode, string output, string error) = Invoke("replay", "--rules", rules, "--input", input);

        Assert.Equal(0, exitCode);
        AssertFiringThenResolved(output);
        Assert.Equal("monitor replay: 100 records, 2 alert transitions, 0 rule faults, 0 late and 0 duplicate records skipped", error.Trim());
    }

    [Fact]
    public void Replay_ReadsDelimitedProtobuf_WhenTheFormatIsProtobuf()
    {
        string rules = WriteRules();
        string input = WriteRecording("steps.bin");

        (int exitCode, string output, string error) = Invoke("replay", "--rules", rules, "--input", input, "--format", "protobuf");

        Assert.Equal(0, exitCode);
        AssertFiringThenResolved(output);
        Assert.StartsWith("monitor replay: 100 records, 2 alert transitions", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Replay_FollowsTheFormatOption_OverTheExtension()
    {
        string rules = WriteRules();
        string input = WriteRecording("steps.dat", StepRecordFileFormat.Protobuf);

        (int exitCode, string output, _) = Invoke("replay", "--rules", rules, "--input", input, "--format", "protobuf");

        Assert.Equal(0, exitCode);
        AssertFiringThenResolved(output);
    }

    [Fact]
    public void Replay_UsesTheBuiltInDefaults_WhenNoRuleFileIsGiven()
    {
        string input = WriteRecording("steps.jsonl");

        (int exitCode, string output, string error) = Invoke("replay", "--input", input);

        // VanishingGradient's default window is 5 traced steps. Other default rules judge the synthetic weights too.
        Assert.Equal(0, exitCode);
        JsonElement firing = Lines(output).First(l => l.GetProperty("labels").GetProperty("alertname").GetString() == "VanishingGradient");
        Assert.Equal(("firing", VanishStep + 4), (firing.GetProperty("status").GetString(), firing.GetProperty("step").GetInt64()));
        Assert.Contains("0 rule faults", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Replay_CountsDuplicateRecords_InTheSummary()
    {
        string input = PathOf("steps.jsonl");
        using (StepRecordWriter writer = StepRecordFile.CreateWriter(input))
        {
            foreach (StepRecord record in Recording().Take(10))
            {
                writer.Write(record);
                writer.Write(record);
            }
        }

        (int exitCode, _, string error) = Invoke("replay", "--rules", WriteRules(), "--input", input);

        Assert.Equal(0, exitCode);
        Assert.Equal("monitor replay: 20 records, 0 alert transitions, 0 rule faults, 0 late and 10 duplicate records skipped", error.Trim());
    }

    [Fact]
    public void Replay_Exits2_WhenTheInputIsMissing()
    {
        string missing = PathOf("missing.jsonl");

        (int exitCode, string output, string error) = Invoke("replay", "--rules", WriteRules(), "--input", missing);

        Assert.Equal(2, exitCode);
        Assert.Equal("", output);
        Assert.Equal($"monitor replay: {missing} does not exist", error.Trim());
    }

    [Fact]
    public void Replay_Exits2AndListsTheProblems_WhenTheRuleFileIsInvalid()
    {
        string rules = WriteText("bad.yaml", "rules:\n  - rule: Nope\n  - rule: VanishingGradient\n    for: soon\n");

        (int exitCode, string output, string error) = Invoke("replay", "--rules", rules, "--input", WriteRecording("steps.jsonl"));

        Assert.Equal(2, exitCode);
        Assert.Equal("", output);
        Assert.StartsWith("monitor replay: invalid rule configuration: ", error, StringComparison.Ordinal);
        Assert.Contains("rules[0] (Nope).rule: unknown rule 'Nope'", error, StringComparison.Ordinal);
        Assert.Contains("rules[1] (VanishingGradient).for: expected a duration", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Replay_Exits2_WhenTheRuleFileIsMissing()
    {
        (int exitCode, _, string error) = Invoke("replay", "--rules", PathOf("none.yaml"), "--input", WriteRecording("steps.jsonl"));

        Assert.Equal(2, exitCode);
        Assert.Contains("none.yaml", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Replay_Exits1AndNamesTheLine_WhenTheInputIsMalformed()
    {
        string input = WriteRecording("steps.jsonl");
        File.AppendAllText(input, "{broken\n");

        (int exitCode, string output, string error) = Invoke("replay", "--rules", WriteRules(), "--input", input);

        // Everything before the broken line was replayed and printed.
        Assert.Equal(1, exitCode);
        AssertFiringThenResolved(output);
        Assert.StartsWith($"monitor replay: {input}:101: ", error, StringComparison.Ordinal);
        Assert.Contains("(after 100 records)", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Replay_Fails_WhenTheFormatIsUnknown()
    {
        (int exitCode, _, string error) = Invoke("replay", "--input", WriteRecording("steps.jsonl"), "--format", "csv");

        Assert.NotEqual(0, exitCode);
        Assert.Contains("csv", error, StringComparison.Ordinal);
    }

    [Fact]
    public void RulesCheck_Exits0AndNamesTheRules_WhenTheFileIsValid()
    {
        string rules = WriteText("rules.yaml", "rules:\n  - rule: VanishingGradient\n  - rule: Threshold\n    name: BigGradients\n  - rule: LossNotDecreasing\n    enabled: false\n");

        (int exitCode, string output, string error) = Invoke("rules", "check", rules);

        Assert.Equal(0, exitCode);
        Assert.Equal("2 rules OK: VanishingGradient, BigGradients", output.Trim());
        Assert.Equal("", error);
    }

    [Fact]
    public void RulesCheck_Exits2AndListsEachProblemOnItsOwnLine_WhenTheFileIsInvalid()
    {
        string rules = WriteText("rules.json", """
            {"rules": [
              {"rule": "Nope"},
              {"rule": "VanishingGradient", "parameters": {"threshold": -1}, "labels": {"run": "x"}}
            ]}
            """);

        (int exitCode, string output, string error) = Invoke("rules", "check", rules);

        Assert.Equal(2, exitCode);
        Assert.Equal("", output);
        string[] lines = error.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.Equal(3, lines.Length);
        Assert.StartsWith("rules[0] (Nope).rule: unknown rule 'Nope'", lines[0], StringComparison.Ordinal);
        Assert.Equal("rules[1] (VanishingGradient).parameters.threshold: Threshold must be positive", lines[1]);
        Assert.Equal("rules[1] (VanishingGradient).labels.run: set by the engine; choose another label name", lines[2]);
    }

    [Fact]
    public void RulesCheck_Exits2_WhenTheJsonRepeatsAKey()
    {
        string rules = WriteText("rules.json", """{"rules": [{"rule": "VanishingGradient", "name": "A", "name": "B"}]}""");

        (int exitCode, _, string error) = Invoke("rules", "check", rules);

        Assert.Equal(2, exitCode);
        Assert.DoesNotContain("   at ", error, StringComparison.Ordinal);
    }

    [Fact]
    public void RulesList_PrintsEveryBuiltInRuleWithItsParametersAndDefaults()
    {
        (int exitCode, string output, _) = Invoke("rules", "list");

        Assert.Equal(0, exitCode);
        string[] lines = [.. output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd())];
        int vanishing = Array.IndexOf(lines, "VanishingGradient");
        Assert.True(vanishing >= 0, output);
        Assert.Equal(["  selector = { collections: [gradients] }", "  threshold = 1E-07", "  windowSteps = 5"], lines[(vanishing + 1)..(vanishing + 4)]);
        Assert.Contains("LossNotDecreasing", lines);
        Assert.Contains("  numSteps = 10", lines);
        Assert.Contains("Threshold", lines);
        Assert.Contains("  statistic = Mean", lines);
        Assert.Contains("  labelsSelector = { collections: [labels] }", lines);
        Assert.DoesNotContain(lines, l => l.Trim().StartsWith("name =", StringComparison.Ordinal) || l.Contains("Monitor.Analysis.TensorSelector", StringComparison.Ordinal));
    }
}
