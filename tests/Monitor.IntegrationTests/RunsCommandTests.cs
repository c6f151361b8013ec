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
