using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Monitor.Cli;
using Monitor.Transport.Kafka;

namespace Monitor.IntegrationTests;

/// <summary>
/// compose.yaml, the Dockerfiles and the compose-only configuration under dashboards/. No Docker engine runs here, so
/// the stack is checked piece by piece: Debian's docker-compose 1.29 validates the file, every mounted file and build
/// context must exist, Prometheus' and Alertmanager's own tools validate their configurations, the Grafana provisioning
/// must point where compose mounts things, and the commands compose gives the monitor services and the sample workers
/// are run for real (over a librdkafka mock cluster, a real redis-server and a real Alertmanager with the compose
/// configuration) to show they analyse both ranks of the run and raise the alert rank 1's fault causes.
/// </summary>
public sealed partial class DeploymentArtifactsComposeTests
{
    private static readonly string ComposeFile = Repository.PathOf("compose.yaml");

    private static CancellationToken Cancellation => TestContext.Current.CancellationToken;

    private static JsonObject Services => YamlJson.Load(ComposeFile)["services"]!.AsObject();

    [GeneratedRegex(@"\$\{(?<name>[A-Z0-9_]+):-(?<default>[^}]*)\}")]
    private static partial Regex Interpolation();

    [Fact]
    public async Task ComposeFile_IsValid_WhenDockerComposeConfigReadsIt()
    {
        string dockerCompose = Tool.Find("docker-compose", "apt-get install -y docker-compose");

        (int exitCode, string output, string error) = await Tool.RunAsync(dockerCompose, Repository.Root, "-f", "compose.yaml", "config");

        Assert.True(exitCode == 0, $"docker-compose -f compose.yaml config failed ({exitCode}):\n{error}\n{output}");
        Assert.Contains("monitor-1:", output, StringComparison.Ordinal);
    }

    [Fact]
    public void ComposeFile_EveryBindMountBuildContextAndDockerfile_Exists()
    {
        var checkedPaths = new List<string>();
        foreach ((string name, JsonNode? service) in Services)
        {
            foreach (string volume in YamlJson.Strings(service!["volumes"]))
            {
                string source = volume.Split(':')[0];
                if (source.StartsWith('.') || source.StartsWith('/'))
                {
                    string path = Repository.PathOf(source);
                    Assert.True(File.Exists(path) || Directory.Exists(path), $"service {name} mounts {source}, which does not exist");
                    checkedPaths.Add(source);
                }
            }

            if (service!["build"] is JsonObject build)
            {
                string context = Repository.PathOf(build["context"]!.ToString());
                Assert.True(Directory.Exists(context), $"service {name}: build context {build["context"]} does not exist");
                string dockerfile = Path.Combine(context, build["dockerfile"]?.ToString() ?? "Dockerfile");
                Assert.True(File.Exists(dockerfile), $"service {name}: {Repository.Relative(dockerfile)} does not exist");
                checkedPaths.Add(Repository.Relative(dockerfile));
            }
        }

        Assert.Contains("src/Monitor.Cli/Dockerfile", checkedPaths);
        Assert.Contains("src/Monitor.Samples.Training/Dockerfile", checkedPaths);
        Assert.Contains("./dashboards/provisioning", checkedPaths);
    }

    [Fact]
    public void ComposeFile_HasTheWholeStack_WithHealthchecksAndHealthyDependencies()
    {
        JsonObject services = Services;
        string[] expected = ["kafka", "kafka-init", "redis", "monitor-1", "monitor-2", "archive", "sample-rank-0", "sample-rank-1", "prometheus", "alertmanager", "grafana"];
        Assert.Equal(expected.Order(StringComparer.Ordinal), services.Select(s => s.Key).Order(StringComparer.Ordinal));
        Assert.StartsWith("apache/kafka:", services["kafka"]!["image"]!.ToString(), StringComparison.Ordinal);
        Assert.Contains("controller", services["kafka"]!["environment"]!["KAFKA_PROCESS_ROLES"]!.ToString(), StringComparison.Ordinal);

        // One-shot jobs (topic creation, the sample workers) end; everything else must report health.
        string[] oneShot = ["kafka-init", "sample-rank-0", "sample-rank-1"];
        foreach ((string name, JsonNode? service) in services)
        {
            if (!oneShot.Contains(name))
            {
                Assert.True(service!["healthcheck"]?["test"] is not null, $"service {name} has no healthcheck");
            }

            if (service!["depends_on"] is JsonObject dependsOn)
            {
                foreach ((string dependency, JsonNode? how) in dependsOn)
                {
                    string condition = how!["condition"]!.ToString();
                    string wanted = oneShot.Contains(dependency) ? "service_completed_successfully" : "service_healthy";
                    Assert.True(condition == wanted, $"{name} depends on {dependency} with condition {condition}, not {wanted}");
                }
            }
        }

        // Published host ports are distinct (two replicas cannot both take 9464).
        string[] published = [.. services.SelectMany(s => YamlJson.Strings(s.Value!["ports"])).Select(p => p.Split(':')[0])];
        Assert.Equal(published.Length, published.Distinct(StringComparer.Ordinal).Count());
    }

    [Fact]
    public void ComposeServiceCommands_Parse_WithTheMonitorCommandLine()
    {
        foreach (string name in new[] { "monitor-1", "monitor-2" })
        {
            string[] command = [.. YamlJson.Strings(Services[name]!["command"])];

            ParseResult parse = MonitorCommand.Create().Parse(command);

            Assert.True(parse.Errors.Count == 0, $"{name}: {string.Join("; ", parse.Errors.Select(e => e.Message))}");
            Assert.Equal("serve", parse.CommandResult.Command.Name);
            Assert.Equal("monitor-service", parse.GetValue<string>("--group"));
            Assert.Equal([new Uri("http://alertmanager:9093")], parse.GetValue<Uri[]>("--alertmanager")!);
            Assert.Equal("localhost", parse.GetValue<Uri?>("--external-url")!.Host);
        }

        ParseResult archive = MonitorCommand.Create().Parse([.. YamlJson.Strings(Services["archive"]!["command"])]);
        Assert.True(archive.Errors.Count == 0, "archive: " + string.Join("; ", archive.Errors.Select(e => e.Message)));
        Assert.Equal("archive", archive.CommandResult.Command.Name);
        Assert.Equal("/archive", archive.GetValue<DirectoryInfo>("--dir")!.FullName);
        // The archive's directory is its named volume.
        Assert.Contains("archive-data:/archive", YamlJson.Strings(Services["archive"]!["volumes"]));
        Assert.True(YamlJson.Load(ComposeFile)["volumes"]!.AsObject().ContainsKey("archive-data"), "compose declares the archive-data volume");
    }

    [Fact]
    public async Task PrometheusComposeConfig_PassesPromtool_AndScrapesBothReplicas()
    {
        string promtool = Tool.Find("promtool", "apt-get install -y prometheus");
        string config = Repository.PathOf("dashboards/prometheus/prometheus.compose.yml");

        (int exitCode, string output, string error) = await Tool.RunAsync(promtool, Repository.Root, "check", "config", config);

        Assert.True(exitCode == 0, $"promtool check config failed ({exitCode}):\n{output}\n{error}");
        JsonNode prometheus = YamlJson.Load(config);
        JsonNode monitorJob = prometheus["scrape_configs"]!.AsArray().Single(j => j!["job_name"]!.ToString() == "monitor")!;
        Assert.Equal(["monitor-1:9464", "monitor-2:9464"], YamlJson.Strings(monitorJob["static_configs"]![0]!["targets"]));
        JsonObject services = Services;
        foreach (string target in YamlJson.Strings(monitorJob["static_configs"]![0]!["targets"]))
        {
            string host = target.Split(':')[0];
            Assert.True(services.ContainsKey(host), $"Prometheus scrapes {target}, but compose has no service {host}");
            Assert.Contains("http://0.0.0.0:" + target.Split(':')[1], YamlJson.Strings(services[host]!["command"]));
        }

        JsonNode archiveJob = prometheus["scrape_configs"]!.AsArray().Single(j => j!["job_name"]!.ToString() == "monitor-archive")!;
        Assert.Equal(["archive:9466"], YamlJson.Strings(archiveJob["static_configs"]![0]!["targets"]));
        Assert.Contains("http://0.0.0.0:9466", YamlJson.Strings(services["archive"]!["command"]));
        Assert.Contains("9466:9466", YamlJson.Strings(services["archive"]!["ports"]));
        Assert.Contains("/healthz", string.Join(' ', YamlJson.Strings(services["archive"]!["healthcheck"]!["test"])), StringComparison.Ordinal);

        Assert.Equal(["alertmanager:9093"], YamlJson.Strings(prometheus["alerting"]!["alertmanagers"]![0]!["static_configs"]![0]!["targets"]));
        Assert.Contains(YamlJson.Strings(services["prometheus"]!["volumes"]), v => v.StartsWith("./dashboards/prometheus:", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AlertmanagerComposeConfig_PassesAmtool()
    {
        string amtool = Tool.Find("amtool", "apt-get install -y prometheus-alertmanager");

        (int exitCode, string output, string error) = await Tool.RunAsync(amtool, Repository.Root, "check-config", "dashboards/alertmanager/alertmanager.yml");

        Assert.True(exitCode == 0, $"amtool check-config failed ({exitCode}):\n{output}\n{error}");
    }

    [Fact]
    public void GrafanaProvisioning_PointsWhereComposeMountsPrometheusAndTheDashboards()
    {
        JsonObject services = Services;
        string[] grafanaVolumes = [.. YamlJson.Strings(services["grafana"]!["volumes"])];
        Assert.Contains("./dashboards/provisioning:/etc/grafana/provisioning:ro", grafanaVolumes);

        string[] datasourceFiles = Directory.GetFiles(Repository.PathOf("dashboards/provisioning/datasources"), "*.y*ml");
        JsonNode prometheus = datasourceFiles
            .SelectMany(f => YamlJson.Load(f)["datasources"]!.AsArray())
            .Single(d => d!["uid"]?.ToString() == "prometheus")!;
        var url = new Uri(prometheus["url"]!.ToString());
        Assert.True(services.ContainsKey(url.Host), $"datasource uid prometheus points at {url}, but compose has no service {url.Host}");
        Assert.Contains(services[url.Host]!["ports"]!.AsArray(), p => p!.ToString().EndsWith(":" + url.Port.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal));

        // Each dashboard provider reads a directory that compose fills from dashboards/.
        string[] providerFiles = Directory.GetFiles(Repository.PathOf("dashboards/provisioning/dashboards"), "*.y*ml");
        Assert.NotEmpty(providerFiles);
        foreach (JsonNode? provider in providerFiles.SelectMany(f => YamlJson.Load(f)["providers"]!.AsArray()))
        {
            string path = provider!["options"]!["path"]!.ToString().TrimEnd('/');
            Assert.True(
                grafanaVolumes.Any(v => v.Split(':') is [var source, var target, ..] && source == "./dashboards" && (path == target || path.StartsWith(target + "/", StringComparison.Ordinal))),
                $"dashboard provider {provider["name"]} reads {path}, where compose mounts nothing of ./dashboards");
        }
    }

    [Fact]
    public void Dockerfiles_RestoreTheWholeReferenceClosure_CopyOnlyExistingPaths_AndRunUnprivileged()
    {
        (string Dockerfile, string Project)[] images =
        [
            ("src/Monitor.Cli/Dockerfile", "src/Monitor.Cli/Monitor.Cli.csproj"),
            ("src/Monitor.Samples.Training/Dockerfile", "src/Monitor.Samples.Training/Monitor.Samples.Training.csproj"),
        ];
        foreach ((string dockerfile, string project) in images)
        {
            string[] lines = File.ReadAllLines(Repository.PathOf(dockerfile));
            string[] copies = [.. lines.Where(l => l.StartsWith("COPY ", StringComparison.Ordinal) && !l.Contains("--from=", StringComparison.Ordinal))];
            var copiedProjects = new HashSet<string>(StringComparer.Ordinal);
            foreach (string copy in copies)
            {
                string[] parts = copy.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1..^1];
                foreach (string source in parts)
                {
                    string path = Repository.PathOf(source);
                    Assert.True(File.Exists(path) || Directory.Exists(path), $"{dockerfile}: COPY {source}, which does not exist");
                    if (source.EndsWith(".csproj", StringComparison.Ordinal))
                    {
                        copiedProjects.Add(source);
                    }
                }
            }

            // The restore layer sees only these project files: a reference they miss fails `dotnet restore` in the image.
            Assert.Equal(ReferenceClosure(project).Order(StringComparer.Ordinal), copiedProjects.Order(StringComparer.Ordinal));
            Assert.Contains(lines, l => l.StartsWith("RUN dotnet publish " + project, StringComparison.Ordinal));
            string[] final = [.. lines.SkipWhile(l => !l.StartsWith("FROM ", StringComparison.Ordinal) || !l.Contains(" AS final", StringComparison.Ordinal))];
            Assert.Contains("USER $APP_UID", final);
        }

        // The build context is the repository root: .dockerignore must keep what the images build from.
        string[] ignored = [.. File.ReadAllLines(Repository.PathOf(".dockerignore")).Where(l => l.Length > 0 && !l.StartsWith('#'))];
        Assert.DoesNotContain(ignored, l => l.TrimEnd('/') is "src" or "*.props" or "*.targets" or "global.json" or ".editorconfig" or "BannedSymbols.txt");
    }

    [Fact]
    public async Task ComposeArchiveCommand_ArchivesTheRecords_AndAnswersItsHealthcheck_OverMockKafka()
    {
        using var kafka = new MockKafkaCluster();
        string directory = Directory.CreateTempSubdirectory("monitor-compose-archive-").FullName;
        try
        {
            // compose's addresses become this machine's: the broker above, a free port, a temporary directory.
            int port = Ports.Free();
            string[] arguments = [.. YamlJson.Strings(Services["archive"]!["command"]).Select(a => a switch
            {
                "kafka:9092" => kafka.BootstrapServers,
                "http://0.0.0.0:9466" => $"http://127.0.0.1:{port}",
                "/archive" => directory,
                _ => a,
            })];
            const int records = 12;
            using (var producer = new KafkaRecordProducer(new KafkaProducerOptions { BootstrapServers = kafka.BootstrapServers }))
            {
                for (int i = 0; i < records; i++)
                {
                    var record = ArchiveSupport.Record("compose", (uint)(i % 2), i / 2, start: TimeProvider.System.GetUtcNow());
                    producer.Produce(Monitor.Contracts.MonitorTopics.Steps, Monitor.Contracts.RecordKey.Format(record.RunId, (int)record.Rank), Google.Protobuf.MessageExtensions.ToByteArray(record), null, _ => { });
                }

                Assert.Equal(0, producer.Flush(TimeSpan.FromSeconds(30)));
            }

            var server = new ChildServer("archive");
            server.Launch("dotnet", Repository.Root, [Path.Combine(AppContext.BaseDirectory, "monitor.dll"), .. arguments]);
            try
            {
                using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
                var address = new Uri($"http://127.0.0.1:{port}/");
                // What compose's healthcheck asks.
                await server.WaitUntilReadyAsync(address.ToString(), token => IsOkAsync(http, new Uri(address, "healthz"), token), "healthy", TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(100), Cancellation);
                string metrics = "";
                await Eventually.TrueAsync(() =>
                {
                    metrics = Scrape(http, new Uri(address, "metrics"));
                    return Prometheus.Samples(metrics, "monitor_archive_records_total").Sum() == records;
                }, "compose's archive command archives every record", explain: () => metrics + server.Output());
                Assert.True(await IsOkAsync(http, new Uri(address, "readyz"), Cancellation), "the archive is ready");
            }
            finally
            {
                await server.StopAsync();
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task ComposeCommands_AnalyseBothRanks_AndAlertOnRankOnesFault_OverMockKafkaRedisAndAlertmanager()
    {
        JsonObject services = Services;
        using var kafka = new MockKafkaCluster();
        await using RedisServerProcess redis = await RedisServerProcess.StartNewAsync(Cancellation);
        await using AlertmanagerProcess alertmanager = await AlertmanagerProcess.StartNewAsync(
            File.ReadAllText(Repository.PathOf("dashboards/alertmanager/alertmanager.yml")), Cancellation);

        // compose's addresses become this machine's: the broker, Redis and Alertmanager above, a free port per replica.
        var replicas = new List<(ChildServer Server, Uri Address)>();
        try
        {
            foreach (string name in new[] { "monitor-1", "monitor-2" })
            {
                JsonNode service = services[name]!;
                var environment = service["environment"]!.AsObject().ToDictionary(e => e.Key, e => Interpolated(e.Value!.ToString()), StringComparer.Ordinal);
                Assert.Equal("redis:6379", environment["MONITOR_REDIS"]);
                environment["MONITOR_REDIS"] = redis.ConnectionString;
                int port = Ports.Free();
                string[] arguments = [.. YamlJson.Strings(service["command"]).Select(a => a switch
                {
                    "kafka:9092" => kafka.BootstrapServers,
                    "http://0.0.0.0:9464" => $"http://127.0.0.1:{port}",
                    "http://alertmanager:9093" => alertmanager.BaseAddress.ToString().TrimEnd('/'),
                    _ => a,
                })];
                var server = new ChildServer(name);
                server.Launch("dotnet", Repository.Root, [Path.Combine(AppContext.BaseDirectory, "monitor.dll"), .. arguments], environment);
                var address = new Uri($"http://127.0.0.1:{port}/");
                replicas.Add((server, address));
            }

            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            foreach ((ChildServer server, Uri address) in replicas)
            {
                await server.WaitUntilReadyAsync(address.ToString(), token => IsOkAsync(http, new Uri(address, "readyz"), token), "ready", TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(100), Cancellation);
            }

            // MONITOR_API_TOKEN from compose authorises writes on a replica, whose /api stores them in Redis (for another run:
            // the workers follow run compose's selection through Redis, and keep the sample job's default one).
            using (var put = new HttpRequestMessage(HttpMethod.Put, new Uri(replicas[0].Address, "api/runs/compose-api-check/selection")))
            {
                put.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Interpolated(services["monitor-1"]!["environment"]!["MONITOR_API_TOKEN"]!.ToString()));
                put.Content = new StringContent("""{"schedule":{"everySteps":1}}""", Encoding.UTF8, "application/json");
                using HttpResponseMessage response = await http.SendAsync(put, Cancellation);
                Assert.True(response.IsSuccessStatusCode, $"PUT selection with the compose API token: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(Cancellation)}");
            }

            // The two sample ranks with compose's arguments, made short: 60 steps, rank 1's fault from step 20.
            int steps = 60;
            var workers = new List<Task<(int ExitCode, string Output)>>();
            foreach (string name in new[] { "sample-rank-0", "sample-rank-1" })
            {
                string[] arguments = [.. YamlJson.Strings(services[name]!["command"]).Select(Interpolated)];
                SetOption(arguments, "--kafka", kafka.BootstrapServers);
                Assert.Equal("redis:6379", arguments[Array.IndexOf(arguments, "--redis") + 1]);
                SetOption(arguments, "--redis", redis.ConnectionString);
                SetOption(arguments, "--steps", steps.ToString(CultureInfo.InvariantCulture));
                SetOption(arguments, "--step-delay-ms", "0");
                if (name == "sample-rank-1")
                {
                    Assert.Equal("dead-relu", arguments[Array.IndexOf(arguments, "--fault") + 1]);
                    SetOption(arguments, "--fault-at", "20");
                    // Slow enough that its alert is seen in Alertmanager before the run's end resolves it.
                    SetOption(arguments, "--step-delay-ms", "150");
                }

                workers.Add(RunToEndAsync(Path.Combine(AppContext.BaseDirectory, "monitor-sample-training.dll"), arguments));
            }

            // Rank 1's dead ReLUs reach the compose Alertmanager, from whichever replica analysed rank 1, while it runs.
            var ranksAlerted = new HashSet<string>(StringComparer.Ordinal);
            Task<(int ExitCode, string Output)[]> finished = Task.WhenAll(workers);
            while (!finished.IsCompleted && !ranksAlerted.Contains("1"))
            {
                ranksAlerted.UnionWith(DeadReluRanks(http, alertmanager.BaseAddress));
                await Task.Delay(100, Cancellation);
            }

            foreach ((int exitCode, string output) in await finished)
            {
                Assert.True(exitCode == 0, $"sample worker exited with {exitCode}:\n{output}");
            }

            Assert.True(ranksAlerted.Contains("1"), "Alertmanager had DeadRelu for run compose rank 1 while the rank ran");
            Assert.DoesNotContain("0", ranksAlerted);

            // Both ranks are analysed (each by the replica that owns its partition) to their end-of-run record: the
            // ranks' series are gone from both replicas.
            string metrics = "";
            await Eventually.TrueAsync(() =>
            {
                metrics = string.Join('\n', replicas.Select(r => Scrape(http, new Uri(r.Address, "metrics"))));
                return Prometheus.Samples(metrics, "monitor_ranks_ended_total").Sum() == 2
                    && !metrics.Contains("monitor_worker_step{run=\"compose\"", StringComparison.Ordinal);
            }, "both replicas together have analysed both ranks to their end", seconds: 90, explain: () =>
                $"worker series seen: {string.Join(", ", metrics.Split('\n').Where(l => l.StartsWith("monitor_worker_step", StringComparison.Ordinal) || l.StartsWith("monitor_records_", StringComparison.Ordinal) || l.StartsWith("monitor_ranks_ended", StringComparison.Ordinal)))}\n"
                + string.Join('\n', replicas.Select((r, i) => $"monitor-{i + 1} output:\n{r.Server.Output()}")));

            // The run's end resolved rank 1's alert, in Alertmanager too.
            await Eventually.TrueAsync(() => DeadReluRanks(http, alertmanager.BaseAddress).Count == 0, "Alertmanager's DeadRelu for run compose resolved by the run's end", seconds: 60);
        }
        finally
        {
            foreach ((ChildServer server, _) in replicas)
            {
                await server.StopAsync();
            }
        }
    }

    // The ranks of run compose with an active DeadRelu alert in Alertmanager.
    private static HashSet<string> DeadReluRanks(HttpClient http, Uri alertmanager)
    {
        string alerts = http.GetStringAsync(new Uri(alertmanager, "api/v2/alerts?filter=alertname%3D%22DeadRelu%22"), Cancellation).GetAwaiter().GetResult();
        return [.. JsonNode.Parse(alerts)!.AsArray().Where(a => a!["labels"]!["run"]!.ToString() == "compose").Select(a => a!["labels"]!["rank"]!.ToString())];
    }

    private static void SetOption(string[] arguments, string option, string value)
    {
        int at = Array.IndexOf(arguments, option);
        Assert.True(at >= 0 && at + 1 < arguments.Length, $"the compose command has no {option}: {string.Join(' ', arguments)}");
        arguments[at + 1] = value;
    }

    /// <summary>compose's <c>${NAME:-default}</c> with the environment of this test run: the defaults.</summary>
    private static string Interpolated(string value) => Interpolation().Replace(value, m => m.Groups["default"].Value);

    private static async Task<bool> IsOkAsync(HttpClient http, Uri url, CancellationToken cancellationToken)
    {
        try
        {
            using HttpResponseMessage response = await http.GetAsync(url, cancellationToken);
            return response.StatusCode == HttpStatusCode.OK;
        }
        catch (HttpRequestException)
        {
            return false;
        }
        catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }

    private static string Scrape(HttpClient http, Uri url)
    {
        try
        {
            return http.GetStringAsync(url, Cancellation).GetAwaiter().GetResult();
        }
        catch (HttpRequestException)
        {
            return "";
        }
    }

    private static async Task<(int ExitCode, string Output)> RunToEndAsync(string dll, string[] arguments)
    {
        var output = new StringBuilder();
        using var process = new Process { StartInfo = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true } };
        process.StartInfo.ArgumentList.Add(dll);
        foreach (string argument in arguments)
        {
            process.StartInfo.ArgumentList.Add(argument);
        }

        process.OutputDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.ErrorDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await process.WaitForExitAsync(Cancellation).WaitAsync(TimeSpan.FromMinutes(3), Cancellation);
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
            return (process.ExitCode, output.ToString());
        }
    }

    /// <summary>Project files (repository-relative) of <paramref name="project"/> and everything it references, transitively.</summary>
    private static HashSet<string> ReferenceClosure(string project)
    {
        var closure = new HashSet<string>(StringComparer.Ordinal) { project };
        var pending = new Queue<string>([project]);
        while (pending.TryDequeue(out string? current))
        {
            string directory = Path.GetDirectoryName(Repository.PathOf(current))!;
            var document = System.Xml.Linq.XDocument.Load(Repository.PathOf(current));
            foreach (string include in document.Descendants("ProjectReference").Select(r => (string)r.Attribute("Include")!))
            {
                string referenced = Repository.Relative(Path.GetFullPath(Path.Combine(directory, include)));
                if (closure.Add(referenced))
                {
                    pending.Enqueue(referenced);
                }
            }
        }

        return closure;
    }
}
