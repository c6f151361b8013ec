using System.CommandLine;
using Monitor.Cli;
using Monitor.Contracts;
using Monitor.ControlPlane;
using StackExchange.Redis;

namespace Monitor.IntegrationTests;

/// <summary><c>monitor trace ...</c> against a real redis-server and Garnet.</summary>
public sealed class TraceCommandTests
{
    private static async Task<(int ExitCode, string Output, string Error)> InvokeAsync(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int exitCode = await MonitorCommand.InvokeAsync(args, new InvocationConfiguration { Output = output, Error = error }, cancellationToken: TestContext.Current.CancellationToken);
        return (exitCode, output.ToString(), error.ToString());
    }

    [Theory]
    [InlineData("redis-server", "collections.gradients.include[0]", "--include", "gradients:(unclosed")]
    [InlineData("garnet", "schedule.stepRange", "--include", "gradients:^fc2\\.", "--step-range", "9:3")]
    [InlineData("redis-server", "unknown collection 'bogus'", "--include", "bogus:x")]
    [InlineData("garnet", "limitSize", "--collection", "weights", "--limit-size", "0")]
    [InlineData("redis-server", "budget: 2 is outside (0, 1]", "--collection", "weights", "--budget", "2")]
    [InlineData("garnet", "--budget: 'lots' is neither a fraction", "--collection", "weights", "--budget", "lots")]
    [InlineData("redis-server", "pin[0]: invalid regular expression", "--collection", "weights", "--pin", "(fc")]
    public async Task Set_FailsNamingTheField_AndStoresNothing_WhenTheSelectionIsInvalid(string backend, string expected, params string[] options)
    {
        await using IRedisEndpoint redis = await RedisEndpoints.StartAsync(backend, TestContext.Current.CancellationToken);
        var keys = new RunKeys();

        (int exitCode, _, string error) = await InvokeAsync(["trace", "set", "--redis", redis.ConnectionString, "--run", keys.Run, "--rank", "1", .. options]);

        Assert.Equal(2, exitCode);
        Assert.Contains(expected, error, StringComparison.Ordinal);
        Assert.Contains("nothing was stored", error, StringComparison.Ordinal);
        await using ConnectionMultiplexer client = await RedisEndpoints.ConnectAsync(redis);
        Assert.False(await client.GetDatabase().KeyExistsAsync(ControlPlaneKeys.RankSelection(keys.Run, 1)));
        Assert.Empty(await new SelectionStore(client).HistoryAsync(keys.Run));
    }

    [Theory, RedisBackends]
    public async Task SetGetHistoryTensors_RoundTrip(string backend)
    {
        await using IRedisEndpoint redis = await RedisEndpoints.StartAsync(backend, TestContext.Current.CancellationToken);
        var keys = new RunKeys();
        await using ConnectionMultiplexer client = await RedisEndpoints.ConnectAsync(redis);
        var store = new SelectionStore(client);
        await store.HeartbeatAsync(keys.Run, new WorkerStatus { Rank = 1 });
        await store.PublishCatalogAsync(keys.Run, 1, [new CatalogEntry("fc2.weight.grad", [4, 4], "float32", ["gradients"])]);

        (int setExit, string setOutput, _) = await InvokeAsync("trace", "set", "--redis", redis.ConnectionString, "--run", keys.Run, "--rank", "1",
            "--include", "gradients:^fc2\\.", "--every-steps", "1", "--who", "dave");
        (int getExit, string getOutput, _) = await InvokeAsync("trace", "get", "--redis", redis.ConnectionString, "--run", keys.Run, "--rank", "1", "--json");
        (int historyExit, string historyOutput, _) = await InvokeAsync("trace", "history", "--redis", redis.ConnectionString, "--run", keys.Run);
        (int tensorsExit, string tensorsOutput, _) = await InvokeAsync("trace", "tensors", "--redis", redis.ConnectionString, "--run", keys.Run);

        Assert.Equal((0, 0, 0, 0), (setExit, getExit, historyExit, tensorsExit));
        Assert.Contains("Stored selection version 1", setOutput, StringComparison.Ordinal);
        TraceSelection selection = SelectionJson.Parse(getOutput);
        Assert.Equal(["^fc2\\."], selection.Collections["gradients"].Include);
        Assert.Equal(1, selection.Schedule.EverySteps);
        Assert.Contains("dave via cli", historyOutput, StringComparison.Ordinal);
        Assert.Contains("rank 1: 1 tensors", tensorsOutput, StringComparison.Ordinal);
        Assert.Contains("fc2.weight.grad", tensorsOutput, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("0.05", 0.05)]
    [InlineData("none", null)]
    public async Task Set_StoresTheBudgetAndThePins_WhenGiven(string budget, double? expected)
    {
        await using IRedisEndpoint redis = await RedisEndpoints.StartAsync("garnet", TestContext.Current.CancellationToken);
        var keys = new RunKeys();

        (int setExit, _, string setError) = await InvokeAsync("trace", "set", "--redis", redis.ConnectionString, "--run", keys.Run, "--collection", "gradients",
            "--budget", budget, "--pin", "^fc2\\.weight\\.grad$");
        (int getExit, string getOutput, _) = await InvokeAsync("trace", "get", "--redis", redis.ConnectionString, "--run", keys.Run, "--json");

        Assert.True((0, 0) == (setExit, getExit), setError);
        TraceSelection selection = SelectionJson.Parse(getOutput);
        Assert.Equal(expected, selection.Budget!.Fraction);
        Assert.Equal(["^fc2\\.weight\\.grad$"], selection.Pin);
    }

    [Fact]
    public async Task Workers_ShowsTheOverheadAndWhatTheBudgetThins_FromTheHeartbeats()
    {
        await using IRedisEndpoint redis = await RedisEndpoints.StartAsync("garnet", TestContext.Current.CancellationToken);
        var keys = new RunKeys();
        await using ConnectionMultiplexer client = await RedisEndpoints.ConnectAsync(redis);
        var store = new SelectionStore(client);
        await store.HeartbeatAsync(keys.Run, new WorkerStatus
        {
            Rank = 0,
            OverheadRatio = 0.014,
            OverheadBudget = 0.02,
            Thinned = [new ThinnedCollectionStatus("weights", 16), new ThinnedCollectionStatus("gradients", 8)],
        });
        await store.HeartbeatAsync(keys.Run, new WorkerStatus { Rank = 1, OverheadRatio = 0.09 });

        (int exitCode, string output, _) = await InvokeAsync("trace", "workers", "--redis", redis.ConnectionString, "--run", keys.Run);

        Assert.Equal(0, exitCode);
        string[] lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Contains(lines, l => l.StartsWith("rank 0", StringComparison.Ordinal) && l.Contains("overhead 1.4 % of 2.0 %  thinned weights/16 gradients/8", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("rank 1", StringComparison.Ordinal) && l.Contains("overhead 9.0 % (no budget)", StringComparison.Ordinal) && !l.Contains("thinned", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Set_FailsWithExitCode3_WhenRedisIsUnreachable()
    {
        (int exitCode, _, string error) = await InvokeAsync("trace", "set", "--redis", $"127.0.0.1:{Ports.Free()}", "--run", "r", "--collection", "weights");

        Assert.Equal(3, exitCode);
        Assert.Contains("cannot reach Redis", error, StringComparison.Ordinal);
    }
}
