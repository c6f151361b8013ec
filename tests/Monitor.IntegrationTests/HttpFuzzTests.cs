using System.Net;
using System.Text;
using Monitor.Contracts;
using Monitor.Contracts.Transport;
using Monitor.Service;
using Monitor.Testing;

namespace Monitor.IntegrationTests;

/// <summary>
/// Seeded fuzzing of every HTTP endpoint of <c>monitor serve</c> (control-plane API with Redis, alerts, health,
/// metrics): random methods, mutated paths, query strings, headers and bodies. Each request gets an answer below 500
/// within the deadline: a typed 4xx for what is wrong, never a crash, a hang or a server error. Garnet in-process,
/// so the share in CI stays small; <c>MONITOR_FUZZ_INPUTS</c> sets a dedicated run's size (see <see cref="Fuzz"/>).
/// </summary>
public sealed class HttpFuzzTests
{
    private const string Token = "fuzz-token";

    private static readonly HttpMethod[] Methods =
        [HttpMethod.Get, HttpMethod.Get, HttpMethod.Put, HttpMethod.Put, HttpMethod.Delete, HttpMethod.Post, HttpMethod.Patch, HttpMethod.Head, HttpMethod.Options];

    private static readonly string[] Paths =
        ["/api/runs", "/api/runs/{run}/workers", "/api/runs/{run}/catalog", "/api/runs/{run}/selection", "/api/runs/{run}/history", "/api/alerts",
            "/api/alerts/{run}", "/healthz", "/readyz", "/metrics", "/api", "/api/runs/{run}", "/"];

    private static readonly string[] Queries =
        ["", "", "rank=1", "rank=-1", "rank=abc", "rank=99999999999", "rank=1&rank=2", "rank=", "count=-5", "count=0", "count=1e9", "count=2147483647", "run=a&state=firing",
            "state=%00", "rank=1&rank=1&rank=-3"];

    private static readonly string[] Authorizations = ["", "Bearer " + Token, "Bearer " + Token, "Bearer", "Bearer x", "Basic Zm9vOmJhcg==", "bearer " + Token, "Bearer " + Token + " extra"];

    private static readonly string[] JsonTokens = ["{", "}", "[", "]", "\"", ":", ",", "null", "1e999", "\"everySteps\":", "\"ranks\":[1]", "\"ranks\":[-1]", "\"include\":[\"(\"]"];

    [Fact]
    public async Task Fuzz_EveryEndpoint_AnswersBelow500_ForRandomRequests()
    {
        await using IRedisEndpoint redis = await RedisEndpoints.StartAsync(RedisEndpoints.Garnet, TestContext.Current.CancellationToken);
        var bus = new InProcessBus();
        await using var service = new MonitorService(
            new MonitorServiceOptions { ListenUrl = "http://127.0.0.1:0", Redis = redis.ConnectionString, ApiToken = Token },
            bus.CreateConsumer(MonitorTopics.Steps), bus.CreateProducer());
        await service.StartAsync(TestContext.Current.CancellationToken);
        using var http = new HttpClient { BaseAddress = service.BaseAddress, Timeout = TimeSpan.FromSeconds(10) };
        Random random = Fuzz.NewRandom(42_424);
        string run = new RunKeys().Run;
        string selection = SelectionJson.Serialize(new TraceSelection { Collections = new Dictionary<string, CollectionFilter> { ["gradients"] = new() { Include = ["^fc2\\."] } } });
        int inputs = Fuzz.Inputs(5_000);
        var outcomes = new Dictionary<string, int>(StringComparer.Ordinal);
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        for (int i = 0; i < inputs; i++)
        {
            using HttpRequestMessage request = Request(random, run, selection);
            string described = $"#{i} {request.Method} {request.RequestUri}";
            using HttpResponseMessage response = await http.SendAsync(request, TestContext.Current.CancellationToken);
            Assert.True((int)response.StatusCode < 500, $"{described} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken)}");
            string key = ((int)response.StatusCode).ToString(System.Globalization.CultureInfo.InvariantCulture);
            outcomes[key] = outcomes.GetValueOrDefault(key) + 1;
        }

        TestContext.Current.TestOutputHelper?.WriteLine($"fuzz HTTP: {inputs} requests in {System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalSeconds:F1} s; "
            + string.Join(", ", outcomes.OrderBy(o => o.Key, StringComparer.Ordinal).Select(o => $"{o.Key} {o.Value}")));
        Assert.True(outcomes.GetValueOrDefault("200") > 0 && outcomes.Keys.Any(k => k[0] == '4'), "the requests reach both the handlers and the refusals");
        using HttpResponseMessage health = await http.GetAsync(new Uri("/healthz", UriKind.Relative), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
    }

    private static HttpRequestMessage Request(Random random, string run, string selection)
    {
        string segment = random.Next(6) switch
        {
            0 => Uri.EscapeDataString(Fuzz.RandomText(random, 40)),
            1 => "..",
            2 => new string('r', random.Next(100, 3_000)),
            3 => "%2e%2e%2f" + run,
            _ => run,
        };
        string path = random.Next(12) == 0 ? "/" + Uri.EscapeDataString(Fuzz.RandomText(random, 30)) : Paths[random.Next(Paths.Length)].Replace("{run}", segment, StringComparison.Ordinal);
        string query = random.Next(8) == 0 ? Uri.EscapeDataString(Fuzz.RandomText(random, 30)) : Queries[random.Next(Queries.Length)];
        var request = new HttpRequestMessage(Methods[random.Next(Methods.Length)], new Uri(query.Length == 0 ? path : path + "?" + query, UriKind.Relative));
        string authorization = Authorizations[random.Next(Authorizations.Length)];
        if (authorization.Length > 0)
        {
            request.Headers.TryAddWithoutValidation("Authorization", authorization);
        }

        if (random.Next(3) == 0)
        {
            // HttpClient sends only ASCII headers; what a server gets beyond that is another client's problem.
            request.Headers.TryAddWithoutValidation("X-Monitor-Who", new string([.. Fuzz.RandomText(random, random.Next(2) == 0 ? 20 : 2_000).Select(c => (char)(32 + (c % 95)))]));
        }

        if (request.Method == HttpMethod.Put || request.Method == HttpMethod.Post || random.Next(10) == 0)
        {
            string body = random.Next(5) switch
            {
                0 => Fuzz.RandomText(random, 300),
                1 => selection,
                _ => Fuzz.MutateText(selection, random, JsonTokens),
            };
            string[] types = ["application/json", "application/json", "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin1"];
            request.Content = new StringContent(body, Encoding.UTF8);
            request.Content.Headers.Remove("Content-Type");
            request.Content.Headers.TryAddWithoutValidation("Content-Type", types[random.Next(types.Length)]);
        }

        return request;
    }
}
