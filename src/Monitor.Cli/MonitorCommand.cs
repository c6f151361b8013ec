using Monitor.Service.Notifications;
using System.CommandLine;
using System.CommandLine.Parsing;
using Microsoft.Extensions.Logging;
using Monitor.Contracts;
using Monitor.Hosting;
using Monitor.Samples.Training;
using Monitor.Service;
using Monitor.Service.Rules;
using Monitor.Tracing;

namespace Monitor.Cli;

/// <summary>The <c>monitor</c> command line.</summary>
internal static class MonitorCommand
{
    public static RootCommand Create() => Create(Console.In);

    /// <summary>The command line, reading standard input (for <c>drift detect</c>) from <paramref name="input"/>.</summary>
    public static RootCommand Create(TextReader input)
    {
        var root = new RootCommand("Monitor: a streaming monitor for online learning. Traces TorchSharp training to Kafka, evaluates training rules and drift, exports Prometheus metrics.")
        {
            CreateDemo(),
            CreateServe(),
            TraceCommands.Create(),
            ReplayCommands.Replay(),
            ReplayCommands.Rules(),
            DriftCommands.Create(input),
        };
        return root;
    }

    private static Command CreateDemo()
    {
        var steps = new Option<int>("--steps") { Description = "Training steps to run.", DefaultValueFactory = _ => 300 };
        var fault = new Option<string>("--fault") { Description = "Fault to inject into the sample job.", DefaultValueFactory = _ => "none" };
        fault.AcceptOnlyFromAmong([.. FaultNames.All]);
        var faultAt = new Option<int>("--fault-at") { Description = "First step with the fault.", DefaultValueFactory = _ => 150 };
        var metricsPort = new Option<int>("--metrics-port") { Description = "Port of /metrics, /healthz and /readyz on 127.0.0.1 (0 = any free port).", DefaultValueFactory = _ => 9464 };
        var kafka = new Option<string?>("--kafka") { Description = "Use Kafka instead of the in-process bus: bootstrap servers host:port[,...], or 'mock' for librdkafka's built-in mock cluster." };
        var run = new Option<string>("--run") { Description = "Run id.", DefaultValueFactory = _ => "demo" };
        var stepDelay = new Option<int>("--step-delay-ms") { Description = "Pause after each step, so the run lasts long enough to watch /metrics and change the selection.", DefaultValueFactory = _ => 0 };
        var ranks = new Option<int>("--ranks") { Description = "Data-parallel ranks trained in the process, each with its own tracer and connections.", DefaultValueFactory = _ => 1 };
        var redis = new Option<string?>("--redis") { Description = "Redis of the control plane (host:port). Default: an in-process Garnet server on a free port." };
        var rules = new Option<FileInfo?>("--rules") { Description = "Rule file (YAML or .json). Default: the default rule set (`monitor rules default`)." };
        var record = new Option<FileInfo?>("--record") { Description = "Record every step record the service analyses to this file, for `monitor replay` (.pb/.bin: protobuf, else JSON lines)." };
        var command = new Command("demo", "Run the sample TorchSharp job and the monitor service in one process, with no external servers, and print alerts as they fire.")
        {
            steps, fault, faultAt, metricsPort, kafka, run, stepDelay, ranks, redis, rules, record,
        };
        AddCheck(steps, value => value < 1 ? "--steps must be at least 1" : null);
        AddCheck(faultAt, value => value < 0 ? "--fault-at must not be negative" : null);
        AddCheck(metricsPort, value => value is < 0 or > 65535 ? "--metrics-port must be between 0 and 65535" : null);
        AddCheck(stepDelay, value => value < 0 ? "--step-delay-ms must not be negative" : null);
        AddCheck(run, value => RunId.Check(value) is { } problem ? "--run: " + problem : null);
        AddCheck(ranks, value => value is < 1 or > 64 ? "--ranks must be between 1 and 64" : null);
        command.SetAction(async (parse, cancellationToken) =>
        {
            var options = new DemoOptions
            {
                Steps = parse.GetValue(steps),
                Fault = FaultNames.Parse(parse.GetValue(fault)),
                FaultAt = parse.GetValue(faultAt),
                MetricsPort = parse.GetValue(metricsPort),
                Kafka = parse.GetValue(kafka),
                RunId = parse.GetValue(run)!,
                StepDelay = TimeSpan.FromMilliseconds(parse.GetValue(stepDelay)),
                Ranks = parse.GetValue(ranks),
                Redis = parse.GetValue(redis),
                RulesFile = parse.GetValue(rules)?.FullName,
                RecordFile = parse.GetValue(record)?.FullName,
            };
            // The worker's and the service's spans in one process; exported only when an OTLP endpoint is set.
            using OpenTelemetry.Trace.TracerProvider? tracing = OpenTelemetryExport.StartTracing("monitor-demo", StepTracer.ActivitySourceName, MonitorService.ActivitySourceName);
            var runner = new DemoRunner(options, Console.Out) { InteractiveProgress = !Console.IsOutputRedirected };
            try
            {
                DemoResult result = await runner.RunAsync(cancellationToken);
                return result.ExitCode;
            }
            catch (IOException ex)
            {
                await Console.Error.WriteLineAsync($"monitor demo: {ex.Message} (is port {options.MetricsPort} in use? try --metrics-port 0)");
                return 2;
            }
        });
        return command;
    }

    private static Command CreateServe()
    {
        var kafka = new Option<string>("--kafka") { Description = "Kafka bootstrap servers, host:port[,...].", Required = true };
        var group = new Option<string>("--group") { Description = "Consumer group; replicas with the same group share the partitions.", DefaultValueFactory = _ => "monitor-service" };
        var topic = new Option<string>("--topic") { Description = "Topic of step records.", DefaultValueFactory = _ => MonitorTopics.Steps };
        var deadLetterTopic = new Option<string>("--dead-letter-topic") { Description = "Topic for undecodable records.", DefaultValueFactory = _ => MonitorTopics.StepsDeadLetter };
        var listen = new Option<string>("--listen") { Description = "Address of /metrics, /healthz and /readyz.", DefaultValueFactory = _ => "http://0.0.0.0:9464" };
        var maxSeries = new Option<int>("--max-tensor-series") { Description = "Cap on exported (run, rank, tensor) combinations.", DefaultValueFactory = _ => 2_000 };
        var histogramTensors = new Option<string?>("--histogram-tensors") { Description = "Regular expression on tensor names whose histograms are exported (monitor_tensor_histogram_elements). Default: every tensor, up to --max-histogram-tensors." };
        var maxHistograms = new Option<int>("--max-histogram-tensors") { Description = "Cap on (run, rank, tensor) combinations with exported histograms (each is one series per bucket, 96 by default).", DefaultValueFactory = _ => 32 };
        var redis = new Option<string?>("--redis") { Description = $"Redis of the control plane; enables the /api endpoints (runs, catalogs, selections, history). Default: ${TraceCommands.RedisVariable}." , DefaultValueFactory = _ => Environment.GetEnvironmentVariable(TraceCommands.RedisVariable) };
        var alertmanager = new Option<Uri[]>("--alertmanager") { Description = "Alertmanager base URL to push alerts to (API v2), e.g. http://alertmanager:9093 (repeatable).", CustomParser = AbsoluteUrls };
        var webhook = new Option<Uri[]>("--webhook") { Description = "URL to POST alert notifications to as JSON (repeatable).", CustomParser = AbsoluteUrls };
        var externalUrl = new Option<Uri?>("--external-url") { Description = "This service's URL as seen by users; alerts link to {url}/api/alerts/{fingerprint}.", CustomParser = r => AbsoluteUrls(r).FirstOrDefault() };
        var rulesFile = new Option<FileInfo?>("--rules") { Description = "Rule file (YAML or .json), reloaded when it changes. Default: the default rule set (`monitor rules default`)." };
        var apiToken = new Option<string?>("--api-token") { Description = "Bearer token that /api writes require (reads are open). Default: $MONITOR_API_TOKEN; none disables writes.", DefaultValueFactory = _ => Environment.GetEnvironmentVariable("MONITOR_API_TOKEN") };
        var command = new Command("serve", "Run the monitor service alone: consume step records from Kafka, evaluate rules, serve /metrics.")
        {
            kafka, group, topic, deadLetterTopic, listen, maxSeries, histogramTensors, maxHistograms, redis, apiToken, rulesFile, alertmanager, webhook, externalUrl,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using ILoggerFactory logging = LoggerFactory.Create(b => b.AddSimpleConsole(o => o.SingleLine = true));
            ILogger log = logging.CreateLogger("monitor");
            string bootstrap = parse.GetValue(kafka)!;
            MonitorServiceOptions options;
            try
            {
                options = new MonitorServiceOptions
                {
                    StepsTopic = parse.GetValue(topic)!,
                    DeadLetterTopic = parse.GetValue(deadLetterTopic)!,
                    ListenUrl = parse.GetValue(listen)!,
                    MaxTensorSeries = parse.GetValue(maxSeries),
                    HistogramTensors = parse.GetValue(histogramTensors),
                    MaxHistogramTensors = parse.GetValue(maxHistograms),
                    Redis = parse.GetValue(redis),
                    ApiToken = parse.GetValue(apiToken),
                    RulesFile = parse.GetValue(rulesFile)?.FullName,
                    Notifications = new NotificationOptions
                    {
                        AlertmanagerUrls = parse.GetValue(alertmanager) ?? [],
                        Webhooks = [.. (parse.GetValue(webhook) ?? []).Select(url => new WebhookTarget { Url = url })],
                        GeneratorUrlBase = parse.GetValue(externalUrl),
                    },
                };
                options.Validate();
            }
            catch (ArgumentException ex)
            {
                await Console.Error.WriteLineAsync("monitor serve: " + ex.Message);
                return 2;
            }

            if (options.RulesFile is { } path)
            {
                try
                {
                    RuleConfiguration.Load(path, RuleCatalog.BuiltIn);
                }
                catch (RuleConfigurationException ex)
                {
                    await Console.Error.WriteLineAsync("monitor serve: " + string.Join(Environment.NewLine + "  ", ["rule file " + path + ":", .. ex.Problems]));
                    return 2;
                }
            }

            using OpenTelemetry.Trace.TracerProvider? tracing = OpenTelemetryExport.StartTracing("monitor-service", MonitorService.ActivitySourceName);
            var consumer = new KafkaRecordConsumer(
                new KafkaConsumerOptions { BootstrapServers = bootstrap, Topic = options.StepsTopic, GroupId = parse.GetValue(group)! },
                logging.CreateLogger<KafkaRecordConsumer>());
            var deadLetters = new KafkaRecordProducer(new KafkaProducerOptions { BootstrapServers = bootstrap, ClientId = "monitor-service-dlq" });
            await using var service = new MonitorService(options, consumer, deadLetters, logging);
            service.AlertChanged += alert =>
            {
#pragma warning disable CA1848, CA2254, CA1873 // One line per alert change.
                log.LogWarning($"alert {alert.RuleName} {alert.State} {alert.Identity} step={alert.Step}: {alert.Description}");
#pragma warning restore CA1848, CA2254, CA1873
            };
            await service.StartAsync(cancellationToken);
#pragma warning disable CA1848, CA2254, CA1873
            log.LogInformation($"monitor serve: consuming {options.StepsTopic} from {bootstrap} as group {parse.GetValue(group)}; metrics at {new Uri(service.BaseAddress!, "metrics")}");
#pragma warning restore CA1848, CA2254, CA1873
            try
            {
                await Task.Delay(Timeout.Infinite, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                // Ctrl+C / SIGTERM: stop cleanly, committing processed offsets.
            }

            return 0;
        });
        return command;
    }

    // System.CommandLine 3.0 has no built-in conversion to Uri: without this, any URL fails when the command runs.
    private static Uri[] AbsoluteUrls(ArgumentResult result)
    {
        var urls = new List<Uri>(result.Tokens.Count);
        foreach (Token token in result.Tokens)
        {
            if (Uri.TryCreate(token.Value, UriKind.Absolute, out Uri? url) && (url.Scheme == Uri.UriSchemeHttp || url.Scheme == Uri.UriSchemeHttps))
            {
                urls.Add(url);
            }
            else
            {
                result.AddError($"{token.Value} is not an absolute http(s) URL");
            }
        }

        return [.. urls];
    }

    private static void AddCheck<T>(Option<T> option, Func<T?, string?> check) =>
        option.Validators.Add(result =>
        {
            if (check(result.GetValueOrDefault<T>()) is { } error)
            {
                result.AddError(error);
            }
        });
}
