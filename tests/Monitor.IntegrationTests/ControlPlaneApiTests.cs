using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Monitor.Contracts;
using Monitor.Contracts.Transport;
using Monitor.ControlPlane;
using Monitor.Service;
using StackExchange.Redis;

namespace Monitor.IntegrationTests;

/// <summary>The service's <c>/api</c> control-plane endpoints over a real redis-server and Garnet.</summary>
public sealed class ControlPlaneApiTests
{
    private const string Token = "s3cret-token";

    private static async Task<(MonitorService Service, HttpClient Http)> StartAsync(IRedisEndpoint redis, string? token = Token)
    {
        var bus = new InProcessBus();
        var service = new MonitorService(
            new MonitorServiceOptions { ListenUrl = "http://127.0.0.1:0", Redis = redis.ConnectionString, ApiToken = token },
            bus.CreateConsumer(MonitorTopics.Steps),
            bus.CreateProducer());
        await service.StartAsync(TestContext.Current.CancellationToken);
        return (service, new HttpClient { BaseAddress = service.BaseAddress });
    }

    private static StringContent Body(string json) => new(json, Encoding.UTF8, "application/json");

    [Theory, RedisBackends]
    public async Task PutSelection_RequiresTheBearerToken_ValidatesAndStores(string backend)
    {
        await using IRedisEndpoint redis = await RedisEndpoints.StartAsync(backend, TestContext.Current.CancellationToken);
        (MonitorService service, HttpClient http) = await StartAsync(redis);
        await using MonitorService _ = service;
        using HttpClient __ = http;
        var keys = new RunKeys();
        string uri = $"api/runs/{keys.Run}/selection";
        const string selection = """{"collections":{"gradients":{"include":["^fc2\\."]}},"schedule":{"everySteps":1}}""";

        using HttpResponseMessage anonymous = await http.PutAsync(uri, Body(selection), TestContext.Current.CancellationToken);
        using var wrong = new HttpRequestMessage(HttpMethod.Put, uri) { Content = Body(selection) };
        wrong.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "not-the-token");
        using HttpResponseMessage wrongToken = await http.SendAsync(wrong, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, wrongToken.StatusCode);
        Assert.Equal("Bearer", anonymous.Headers.WwwAuthenticate.Single().Scheme);

        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Token);
        http.DefaultRequestHeaders.Add("X-Monitor-Who", "carol");
        using HttpResponseMessage invalid = await http.PutAsync(uri, Body("""{"schedule":{"stepRange":{"start":9,"end":3}}}"""), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.BadRequest, invalid.StatusCode);
        Assert.Contains("schedule.stepRange", await invalid.Content.ReadAsStringAsync(TestContext.Current.CancellationToken), StringComparison.Ordinal);
        using HttpResponseMessage notFoundYet = await http.GetAsync(uri, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.NotFound, notFoundYet.StatusCode);

        using HttpResponseMessage stored = await http.PutAsync(uri + "?rank=1", Body(selection), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, stored.StatusCode);
        TraceSelection result = SelectionJson.Parse(await stored.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
        Assert.Equal(1, result.Version);
        Assert.Equal([1], result.Ranks);

        using JsonDocument forRank1 = JsonDocument.Parse(await http.GetStringAsync(uri + "?rank=1", TestContext.Current.CancellationToken));
        Assert.Equal(1, forRank1.RootElement.GetProperty("rank").GetInt32());
        Assert.Equal(1, forRank1.RootElement.GetProperty("selection").GetProperty("version").GetInt64());
        using HttpResponseMessage forRank0 = await http.GetAsync(uri + "?rank=0", TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.NotFound, forRank0.StatusCode);

        using JsonDocument history = JsonDocument.Parse(await http.GetStringAsync($"api/runs/{keys.Run}/history", TestContext.Current.CancellationToken));
        JsonElement entry = history.RootElement.EnumerateArray().Single();
        Assert.Equal("carol", entry.GetProperty("who").GetString());
        Assert.Equal("api", entry.GetProperty("source").GetString());

        using HttpResponseMessage cleared = await http.DeleteAsync(uri + "?rank=1", TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.NoContent, cleared.StatusCode);
    }

    [Theory, RedisBackends]
    public async Task Reads_AreOpen_AndListRunsWorkersCatalogsAndMetadata(string backend)
    {
        await using IRedisEndpoint redis = await RedisEndpoints.StartAsync(backend, TestContext.Current.CancellationToken);
        (MonitorService service, HttpClient http) = await StartAsync(redis, token: null);
        await using MonitorService _ = service;
        using HttpClient __ = http;
        var keys = new RunKeys();
        await using ConnectionMultiplexer client = await RedisEndpoints.ConnectAsync(redis);
        var store = new SelectionStore(client);
        await store.HeartbeatAsync(keys.Run, new WorkerStatus { Rank = 0, Host = "h", SelectionVersion = 3 });
        await store.PublishCatalogAsync(keys.Run, 0, [new CatalogEntry("fc1.weight", [4, 2], "float32", ["weights"])]);

        using JsonDocument runs = JsonDocument.Parse(await http.GetStringAsync("api/runs", TestContext.Current.CancellationToken));
        JsonElement run = runs.RootElement.EnumerateArray().Single(r => r.GetProperty("run").GetString() == keys.Run);
        Assert.Equal(3, run.GetProperty("workers")[0].GetProperty("selectionVersion").GetInt64());
        using JsonDocument catalog = JsonDocument.Parse(await http.GetStringAsync($"api/runs/{keys.Run}/catalog", TestContext.Current.CancellationToken));
        Assert.Equal("fc1.weight", catalog.RootElement.GetProperty("0")[0].GetProperty("name").GetString());

        using HttpResponseMessage unknown = await http.GetAsync($"api/runs/{keys.Run}", TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        await store.PublishMetadataAsync(new RunMetadata { Run = keys.Run, Rank = 0, Hyperparameters = new Dictionary<string, string> { ["learning_rate"] = "0.05" } });
        await store.AppendArtifactsAsync(keys.Run, [new ArtifactRecord(0, "/ckpt/a.pt", null, 5, "produced", "checkpoint", DateTimeOffset.UnixEpoch)]);
        using JsonDocument lineage = JsonDocument.Parse(await http.GetStringAsync($"api/runs/{keys.Run}", TestContext.Current.CancellationToken));
        Assert.Equal("0.05", lineage.RootElement.GetProperty("metadata")[0].GetProperty("hyperparameters").GetProperty("learning_rate").GetString());
        Assert.Equal("/ckpt/a.pt", lineage.RootElement.GetProperty("artifacts")[0].GetProperty("path").GetString());

        // No token configured: every write is refused, saying why.
        using HttpResponseMessage write = await http.PutAsync($"api/runs/{keys.Run}/selection", Body("""{"tensors":["x"]}"""), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.Unauthorized, write.StatusCode);
        Assert.Contains("no API token", await write.Content.ReadAsStringAsync(TestContext.Current.CancellationToken), StringComparison.Ordinal);
    }
}
