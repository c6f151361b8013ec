using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Monitor.Contracts;
using Monitor.Contracts.V1;
using Monitor.Transport.Kafka;
using Monitor.Trials;
using static Monitor.IntegrationTests.ArchiveSupport;

namespace Monitor.IntegrationTests;

/// <summary>
/// <c>monitor demo --steps 500 --fault vanishing-gradients --fault-at 250 --archive DIR</c>, run once for the tests of
/// <see cref="DemoArchiveTests"/> as a user runs it (its own process: only the TorchSharp tests load libtorch here).
/// The tests only read its archive.
/// </summary>
public sealed class DemoArchiveFixture : IAsyncLifetime
{
    public const int FaultAt = 250;

    public string Directory { get; } = System.IO.Directory.CreateTempSubdirectory("monitor-trial-demo-").FullName;

    public string Archive => Path.Combine(Directory, "archive");

    /// <summary>The demo's standard output and error.</summary>
    public string Output { get; private set; } = "";

    public async ValueTask InitializeAsync()
    {
        var output = new StringBuilder();
        using var process = new Process
        {
            StartInfo = new ProcessStartInfo("dotnet")
            {
                ArgumentList =
                {
                    Path.Combine(AppContext.BaseDirectory, "monitor.dll"), "demo", "--steps", "500", "--fault", "vanishing-gradients",
                    "--fault-at", FaultAt.ToString(CultureInfo.InvariantCulture), "--archive", Archive, "--metrics-port", "0",
                },
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            },
        };
        process.OutputDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.ErrorDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        Assert.True(process.Start());
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(4));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }

        lock (output)
        {
            Output = output.ToString();
        }

        Assert.True(process.ExitCode == 0, Output);
    }

    public ValueTask DisposeAsync()
    {
        System.IO.Directory.Delete(Directory, recursive: true);
        return ValueTask.CompletedTask;
    }
}

/// <summary>The tests that read the archive of one demo run (<see cref="DemoArchiveFixture"/>).</summary>
[CollectionDefinition(Name)]
public sealed class DemoArchiveTests : ICollectionFixture<DemoArchiveFixture>
{
    public const string Name = "demo archive";
}

/// <summary>
/// <c>monitor rules run</c> over the demo's archive gives the demo's live alerts, smdebug's documented custom rule runs
/// over a trial of it, and <c>--kafka</c> / <see cref="Trial.Live"/> read the steps topic.
/// </summary>
[Collection(DemoArchiveTests.Name)]
public sealed partial class TrialCommandTests(DemoArchiveFixture demo)
{
    [GeneratedRegex(@"^ALERT FIRING\s+(?<rule>\w+) run=(?<run>\S+) rank=(?<rank>\d+) tensor=(?<tensor>\S+) .*step=(?<step>\d+) ", RegexOptions.Multiline)]
    private static partial Regex FiringLine();

    private static List<(string Rule, string Run, string Rank, string Tensor, long Step)> Firing(string output) =>
        [.. FiringLine().Matches(output).Select(m => (m.Groups["rule"].Value, m.Groups["run"].Value, m.Groups["rank"].Value, m.Groups["tensor"].Value, long.Parse(m.Groups["step"].Value, CultureInfo.InvariantCulture)))];

    [Fact]
    public async Task RulesRun_OverTheDemoArchive_GivesTheDemosLiveAlerts()
    {
        List<(string Rule, string Run, string Rank, string Tensor, long Step)> live = Firing(demo.Output);
        Assert.Contains(live, a => a is ("VanishingGradient", "demo", "0", "fc1.weight.grad", >= DemoArchiveFixture.FaultAt));

        (int exitCode, string output, string error) = await InvokeAsync("rules", "run", "--trial", demo.Archive);

        Assert.True(exitCode == 0, error);
        // The same lines as the demo printed, value and description included.
        string[] liveLines = [.. demo.Output.Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.StartsWith("ALERT FIRING", StringComparison.Ordinal))];
        string[] trialLines = [.. output.Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.StartsWith("ALERT FIRING", StringComparison.Ordinal))];
        Assert.Equal(liveLines, trialLines);
        Assert.Equal(live, Firing(output));
        // The end-of-run record is not archived: what it resolved live stays firing in the trial.
        Assert.DoesNotContain("ALERT RESOLVED", output, StringComparison.Ordinal);
        Assert.Matches(@"^monitor rules run: .*: 1 run \(demo\), \d+ records, \d+ alert transitions, 0 rule faults", error);

        // JSON lines: every transition (pending ones too), in the alerts topic's format.
        (exitCode, output, error) = await InvokeAsync("rules", "run", "--trial", demo.Archive, "--run", "demo", "--format", "json");
        Assert.True(exitCode == 0, error);
        List<(string, string, string, string, long)> firing = [.. output.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => JsonDocument.Parse(l).RootElement)
            .Where(e => e.GetProperty("state").GetString() == "firing" && e.GetProperty("previousState").GetString() != "firing")
            .Select(e => (e.GetProperty("labels").GetProperty("alertname").GetString()!, e.GetProperty("labels").GetProperty("run").GetString()!,
                e.GetProperty("labels").GetProperty("rank").GetString()!, e.GetProperty("labels").GetProperty("tensor").GetString()!, e.GetProperty("step").GetInt64()))];
        Assert.Equal(live, firing);
    }

    [Fact]
    public async Task RulesRun_RefusesWhatItCannotRun_WithTheExitCodesOfReplay()
    {
        (int exitCode, _, string error) = await InvokeAsync("rules", "run");
        Assert.Equal((2, "monitor rules run: give either --trial DIR or --kafka BOOTSTRAP"), (exitCode, error.Trim()));

        (exitCode, _, error) = await InvokeAsync("rules", "run", "--trial", demo.Archive, "--kafka", "127.0.0.1:1");
        Assert.Equal(2, exitCode);

        string missing = Path.Combine(demo.Directory, "missing");
        (exitCode, _, error) = await InvokeAsync("rules", "run", "--trial", missing);
        Assert.Equal((1, $"monitor rules run: {missing}: no such file or directory"), (exitCode, error.Trim()));

        (exitCode, _, error) = await InvokeAsync("rules", "run", "--trial", demo.Archive, "--run", "other");
        Assert.Equal(1, exitCode);
        Assert.Contains("no archive files (*.parquet) of run other", error, StringComparison.Ordinal);

        string rules = Path.Combine(demo.Directory, "bad-rules.yaml");
        await File.WriteAllTextAsync(rules, "rules:\n  - rule: NoSuchRule\n", TestContext.Current.CancellationToken);
        (exitCode, _, error) = await InvokeAsync("rules", "run", "--trial", demo.Archive, "--rules", rules);
        Assert.Equal(2, exitCode);
        Assert.Contains("NoSuchRule", error, StringComparison.Ordinal);
    }

    /// <summary>
    /// smdebug's documented custom rule (docs/analysis.md, "Writing a custom rule"): a rule over a trial that reads the
    /// mean |gradient| of every tensor of the gradients collection with <c>reduction_value(step, 'mean', abs=True)</c>
    /// and holds when one is below the threshold. Here it returns true when any gradient vanished (the documented
    /// simplified version returns after the first tensor).
    /// </summary>
    private sealed class VanishingGradientRule(Trial baseTrial, double threshold = 0.0000001)
    {
        public bool InvokeAtStep(long step)
        {
            foreach (string name in baseTrial.TensorNames(collection: "gradients"))
            {
                TrialTensor tensor = baseTrial.Tensor(name);
                double absMean = tensor.Reduction(step, "mean", abs: true);
                if (absMean < threshold)
                {
                    return true;
                }
            }

            return false;
        }
    }

    [Fact]
    public void SmdebugCustomRule_OverATrialOfTheDemoArchive_HoldsFromTheFaultOn()
    {
        using Trial trial = Trial.Open(demo.Archive, cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal([0], trial.Workers);
        Assert.Equal([Mode.Train, Mode.Eval], trial.Modes);
        Assert.Contains("fc1.weight.grad", trial.TensorNames(collection: "gradients"));

        var rule = new VanishingGradientRule(trial);
        // As smdebug's invoke_rule(rule, start_step=0): every step the gradients were traced at.
        long[] held = [.. trial.Tensor("fc1.weight.grad").Steps(Mode.Train).Where(rule.InvokeAtStep)];

        Assert.Equal(Enumerable.Range(DemoArchiveFixture.FaultAt, 500 - DemoArchiveFixture.FaultAt).Select(s => (long)s), held);

        // The README's sketch: a histogram of the gradient, the weight traced as a summary only.
        TrialHistogram histogram = trial.Tensor("fc1.weight.grad").Histogram(255);
        Assert.Equal(histogram.Counts.Length + 1, histogram.Edges.Length);
        Assert.True(histogram.Counts.Sum() > 0);
        Assert.Throws<TensorUnavailableForStepException>(() => trial.Tensor("fc1.weight").Value(255));
    }

    [Fact]
    public async Task RulesRunWithKafka_ReadsTheTopicToItsEnd_AndALiveTrialFollowsTheRun()
    {
        using var cluster = new MockKafkaCluster();
        string topic = "trial-steps-" + Guid.NewGuid().ToString("N")[..8];
        const string Run = "kafka-trial";
        using var producer = new KafkaRecordProducer(new KafkaProducerOptions { BootstrapServers = cluster.BootstrapServers });
        void Produce(IEnumerable<StepRecord> records)
        {
            foreach (StepRecord record in records)
            {
                producer.Produce(topic, RecordKey.Format(record.RunId, (int)record.Rank), Google.Protobuf.MessageExtensions.ToByteArray(record), null, _ => { });
            }

            Assert.Equal(0, producer.Flush(TimeSpan.FromSeconds(30)));
        }

        // Gradients vanish at step 50 (window of 4: firing at 53); another run's records are left out by --run.
        Produce(Enumerable.Range(0, 60).Select(s => Record(Run, 0, s, gradientAbsMean: s >= 50 ? 1e-9 : 1e-2)));
        Produce(Enumerable.Range(0, 5).Select(s => Record("other-run", 0, s)));

        using Trial live = Trial.Live(new KafkaTrialOptions { BootstrapServers = cluster.BootstrapServers, Topic = topic, Run = Run });
        await live.WaitUntilCaughtUpAsync(TestContext.Current.CancellationToken).WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);
        Assert.Equal(60, live.RecordCount);

        // The run goes on, and ends: the live trial sees the new steps.
        var end = Record(Run, 0, 99);
        end.Tensors.Clear();
        end.Sequence = 101;
        end.RunEnd = new RunEnd { Reason = RunEndReason.Done };
        Produce([.. Enumerable.Range(60, 40).Select(s => Record(Run, 0, s, gradientAbsMean: s < 80 ? 1e-9 : 1e-2)), end]);
        await live.WaitForStepsAsync([99], Mode.Train, TestContext.Current.CancellationToken).WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);
        Assert.Equal(Enumerable.Range(0, 100).Select(s => (long)s), live.Tensor("fc1.weight.grad").Steps());
        Assert.Equal(1e-9, live.Tensor("fc1.weight.grad").Reduction(70, "mean", abs: true));
        Assert.Null(live.Failure);

        string rules = Path.Combine(demo.Directory, $"rules-{topic}.yaml");
        await File.WriteAllTextAsync(rules, "rules:\n  - rule: VanishingGradient\n    parameters: {threshold: 1e-7, windowSteps: 4}\n", TestContext.Current.CancellationToken);
        (int exitCode, string output, string error) = await InvokeAsync("rules", "run", "--kafka", cluster.BootstrapServers, "--topic", topic, "--run", Run, "--rules", rules);

        Assert.True(exitCode == 0, error);
        Assert.Equal(
            [$"ALERT FIRING   VanishingGradient run={Run} rank=0 tensor=fc1.weight.grad step=53", $"ALERT RESOLVED VanishingGradient run={Run} rank=0 tensor=fc1.weight.grad step=80"],
            output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l[..l.IndexOf(" value=", StringComparison.Ordinal)]));
        Assert.Contains($"1 run ({Run}), 101 records, 2 alert transitions", error, StringComparison.Ordinal);
    }
}
