using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Monitor.Contracts;
using static Monitor.IntegrationTests.ArchiveSupport;

namespace Monitor.IntegrationTests;

/// <summary>
/// Run lineage end to end: two <c>monitor demo</c> runs with different <c>--learning-rate</c> record their metadata in
/// an archive and in the control plane, and <c>monitor runs list|show|diff</c> reads it from either.
/// </summary>
public sealed class RunsCommandTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("monitor-runs-cli-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task RunsDiff_OfTwoDemosWithDifferentLearningRates_NamesLearningRate_FromTheArchiveAndFromRedis()
    {
        await using IRedisEndpoint redis = await RedisEndpoints.StartAsync(RedisEndpoints.Garnet, TestContext.Current.CancellationToken);
        string archive = Path.Combine(_directory, "archive");
        string suffix = Guid.NewGuid().ToString("N")[..8];
        string good = "lr-good-" + suffix, bad = "lr-bad-" + suffix;
        await DemoAsync(good, "0.05", archive, redis.ConnectionString);
        await DemoAsync(bad, "0.5", archive, redis.ConnectionString);

        Assert.True(File.Exists(Path.Combine(archive, good, "rank-0", "run.json")), "the archive keeps the run's metadata");
        foreach (string[] source in new[] { new[] { "--archive", archive }, ["--redis", redis.ConnectionString] })
        {
            (int exitCode, string output, string error) = await InvokeAsync(["runs", "diff", good, bad, .. source]);
            Assert.True(exitCode == 0, error);
            Assert.Contains($"{good} -> {bad} (rank 0): 1 difference", output, StringComparison.Ordinal);
            Assert.Contains("changed  hyperparameter  learning_rate: 0.05 -> 0.5", output, StringComparison.Ordinal);

            (exitCode, output, error) = await InvokeAsync(["runs", "diff", good, bad, "--json", .. source]);
            Assert.True(exitCode == 0, error);
            using JsonDocument diff = JsonDocument.Parse(output);
            JsonElement change = Assert.Single(diff.RootElement.GetProperty("changes").EnumerateArray());
            Assert.Equal("learning_rate", change.GetProperty("name").GetString());
            Assert.Equal("0.5", change.GetProperty("after").GetString());

            (exitCode, output, error) = await InvokeAsync(["runs", "show", bad, "--json", .. source]);
            Assert.True(exitCode == 0, error);
            RunMetadata metadata = RunMetadata.TryParse(output)!;
            Assert.Equal("6", metadata.Hyperparameters["steps"]);
            Assert.Equal("none", metadata.Hyperparameters["fault"]);
            Assert.Equal("7", metadata.Hyperparameters["seed"]);
            Assert.Equal("1024", metadata.Hyperparameters["batch_size"]);
            Assert.Equal(["cpu"], metadata.Devices);
            Assert.Equal(Environment.MachineName, metadata.Host);
            Assert.True(metadata.Versions.ContainsKey(".NET") && metadata.Versions.ContainsKey("Monitor"), string.Join(", ", metadata.Versions.Keys));
            Assert.False(string.IsNullOrEmpty(metadata.Versions["TorchSharp"]));
            Assert.False(string.IsNullOrEmpty(metadata.Versions["libtorch"]));
            // The test runs in the repository's build output: the commit is HEAD's.
            Assert.Matches("^[0-9a-f]{40}$", metadata.Code?.Commit ?? "");

            (exitCode, output, error) = await InvokeAsync(["runs", "list", .. source]);
            Assert.True(exitCode == 0, error);
            Assert.Contains(good, output, StringComparison.Ordinal);
            Assert.Contains("learning_rate=0.5", output, StringComparison.Ordinal);
        }

        (int missing, _, string message) = await InvokeAsync("runs", "show", "no-such-run", "--archive", archive);
        Assert.Equal(1, missing);
        Assert.Contains("no metadata of run 'no-such-run' rank 0", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RunsArtifacts_ListsTheArchivedArtifactEventsByStep_OnceEachWhenARecordIsArchivedTwice()
    {
        string archive = Path.Combine(_directory, "archive");
        Monitor.Contracts.V1.StepRecord first = Record("art-run", 1, 0), later = Record("art-run", 0, 5);
        first.Artifacts.Add(new Monitor.Contracts.V1.ArtifactEvent { Path = "s3://models/base.pt", Hash = "sha256:ab", Step = 0, Direction = Monitor.Contracts.V1.ArtifactDirection.Consumed, Type = "model" });
        later.Artifacts.Add(new Monitor.Contracts.V1.ArtifactEvent { Path = "/ckpt/step-5.pt", Step = 5, Direction = Monitor.Contracts.V1.ArtifactDirection.Produced, Type = "checkpoint" });
        await using (var writer = new Monitor.Archive.ArchiveWriter(new Monitor.Archive.ArchiveOptions { Directory = archive }))
        {
            // The second record twice, as after an archiver's crash before its offsets were committed.
            foreach (Monitor.Contracts.V1.StepRecord record in new[] { later, first, later })
            {
                await writer.AppendAsync(record, cancellationToken: TestContext.Current.CancellationToken);
            }
        }

        (int exitCode, string output, string error) = await InvokeAsync("runs", "artifacts", "art-run", "--archive", archive);
        Assert.True(exitCode == 0, error);
        string[] lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.Equal(3, lines.Length);
        Assert.Matches(@"^0\s+1\s+consumed\s+model\s+sha256:ab\s+s3://models/base\.pt$", lines[1]);
        Assert.Matches(@"^5\s+0\s+produced\s+checkpoint\s+-\s+/ckpt/step-5\.pt$", lines[2]);

        (exitCode, output, error) = await InvokeAsync("runs", "artifacts", "art-run", "--archive", archive, "--json");
        Assert.True(exitCode == 0, error);
        ArtifactRecord[] artifacts = JsonSerializer.Deserialize<ArtifactRecord[]>(output, SelectionJson.StatusOptions)!;
        Assert.Equal(["consumed", "produced"], artifacts.Select(a => a.Event));

        (exitCode, _, _) = await InvokeAsync("runs", "artifacts", "other-run", "--archive", archive);
        Assert.Equal(1, exitCode);

        // The same events from the control plane, as a worker's loop stores them.
        await using IRedisEndpoint redis = await RedisEndpoints.StartAsync(RedisEndpoints.Garnet, TestContext.Current.CancellationToken);
        await using (StackExchange.Redis.ConnectionMultiplexer client = await RedisEndpoints.ConnectAsync(redis))
        {
            await new Monitor.ControlPlane.SelectionStore(client).AppendArtifactsAsync("art-run", artifacts);
        }

        (exitCode, string fromRedis, error) = await InvokeAsync("runs", "artifacts", "art-run", "--redis", redis.ConnectionString);
        Assert.True(exitCode == 0, error);
        Assert.Equal(lines, fromRedis.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
    }

    /// <summary>A short demo (6 steps) as a user starts it, in a process of its own.</summary>
    private static async Task DemoAsync(string run, string learningRate, string archive, string redis)
    {
        var output = new StringBuilder();
        using var process = new Process
        {
            StartInfo = new ProcessStartInfo("dotnet")
            {
                ArgumentList =
                {
                    Path.Combine(AppContext.BaseDirectory, "monitor.dll"), "demo", "--steps", "6", "--run", run, "--learning-rate", learningRate,
                    "--archive", archive, "--redis", redis, "--metrics-port", "0",
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
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(TimeSpan.FromMinutes(2));
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

        Assert.True(process.ExitCode == 0, $"demo {run} exited with {process.ExitCode}: {output}");
    }
}
