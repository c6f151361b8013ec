using System.CommandLine;
using Confluent.Kafka;
using Microsoft.Extensions.Logging;
using Monitor.Analysis;
using Monitor.Archive;
using Monitor.Contracts;
using Monitor.Hosting;
using Monitor.Samples.Training;
using Monitor.Service;
using Monitor.Service.Notifications;
using Monitor.Service.Rules;
using Monitor.Tracing;
using Monitor.Transport.Kafka;

namespace Monitor.Cli;

/// <summary>The <c>monitor</c> command line.</summary>
internal static class MonitorCommand
{
    /// <summary>Environment variable that sets the default of <c>serve --api-token</c>.</summary>
    public const string ApiTokenVariable = "MONITOR_API_TOKEN";

    /// <summary>Environment variable that sets the default of <c>serve --api-read-token</c>.</summary>
    public const string ApiReadTokenVariable = "MONITOR_API_READ_TOKEN";

    /// <summary>Environment variable that sets the default of <c>serve --webhook-token</c>.</summary>
    public const string WebhookTokenVariable = "MONITOR_WEBHOOK_TOKEN";

    public static RootCommand Create() => Create(Console.In);

    /// <summary>
    /// Runs a <c>monitor</c> command line as the executable does: invalid input prints its errors and exits 2 (see
    /// <see cref="CommandLineEntry"/>). <paramref name="input"/> is standard input (for <c>drift detect</c>).
    /// </summary>
    public static Task<int> InvokeAsync(IReadOnlyList<string> args, InvocationConfiguration? configuration = null, TextReader? input = null, CancellationToken cancellationToken = default) =>
        CommandLineEntry.InvokeAsync("monitor", Create(input ?? Console.In), args, configuration, cancellationToken);

    /// <summary>As <see cref="InvokeAsync"/>, synchronously.</summary>
    public static int Invoke(IReadOnlyList<string> args, InvocationConfiguration? configuration = null, TextReader? input = null) =>
        CommandLineEntry.Invoke("monitor", Create(input ?? Console.In), args, configuration);

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
            ArchiveCommands.Archive(),
            ArchiveCommands.Export(),
            ArchiveCommands.Query(),
            RunsCommands.Create(),
            CreateKafkaMock(),
        };
        return root;
    }

    private static Command CreateDemo()
    {
        var defaults = new DemoOptions();
        var steps = new Option<int>("--steps") { Description = "Training steps to run.", DefaultValueFactory = _ => defaults.Steps };
        var fault = new Option<string>("--fault") { Description = "Fault to inject into the sample job.", DefaultValueFactory = _ => FaultNames.NameOf(defaults.Fault) };
        fault.AcceptOnlyFromAmong([.. FaultNames.All]);
        var faultAt = new Option<int>("--fault-at") { Description = "First step with the fault.", DefaultValueFactory = _ => defaults.FaultAt };
        var learningRate = new Option<double>("--learning-rate") { Description = "SGD learning rate of the sample job (recorded in the run metadata as learning_rate; compare runs with `monitor runs diff`).", DefaultValueFactory = _ => defaults.LearningRate };
        var metricsPort = new Option<int>("--metrics-port") { Description = "Port of /metrics, /healthz and /readyz on 127.0.0.1 (0 = any free port).", DefaultValueFactory = _ => defaults.MetricsPort };
        var kafka = new Option<string?>("--kafka") { Description = "Use Kafka instead of the in-process bus: bootstrap servers host:port[,...], or 'mock' for librdkafka's built-in mock cluster." };
        var kafkaClient = new KafkaClientProperties(readEnvironment: false);
        var run = new Option<string>("--run") { Description = "Run id.", DefaultValueFactory = _ => defaults.RunId };
        var stepDelay = new Option<int>("--step-delay-ms") { Description = "Pause after each step, so the run lasts long enough to watch /metrics and change the selection.", DefaultValueFactory = _ => (int)defaults.StepDelay.TotalMilliseconds };
        var ranks = new Option<int>("--ranks") { Description = "Data-parallel ranks trained in the process, each with its own tracer and connections.", DefaultValueFactory = _ => defaults.Ranks };
        var redis = new Option<string?>("--redis") { Description = "Redis of the control plane, StackExchange.Redis syntax (host:port[,user=...,password=...,ssl=true]). Default: an in-process Garnet server on a free port." };
        var rules = new Option<FileInfo?>("--rules") { Description = "Rule file (YAML or .json). Default: the default rule set (`monitor rules default`)." };
        var record = new Option<FileInfo?>("--record") { Description = "Record every step record the service analyses to this file, for `monitor replay` (.pb/.bin: protobuf, else JSON lines)." };
        var archive = new Option<DirectoryInfo?>("--archive") { Description = "Also archive every step record to Parquet files under this directory (as `monitor archive` does), for `monitor export` and `monitor query`." };
        var command = new Command("demo", "Run the sample TorchSharp job and the monitor service in one process, with no external servers, and print alerts as they fire.")
        {
            steps, fault, faultAt, learningRate, metricsPort, kafka, kafkaClient.Property, kafkaClient.ConfigFile, run, stepDelay, ranks, redis, rules, record, archive,
        };
        OptionValues.AddCheck(steps, value => value < 1 ? "--steps must be at least 1" : null);
        OptionValues.AddCheck(faultAt, value => value < 0 ? "--fault-at must not be negative" : null);
        OptionValues.AddCheck(learningRate, value => !(value > 0) || double.IsInfinity(value) ? "--learning-rate must be a positive number" : null);
        OptionValues.AddCheck(metricsPort, value => value is < 0 or > 65535 ? "--metrics-port must be between 0 and 65535" : null);
        OptionValues.AddCheck(stepDelay, value => value < 0 ? "--step-delay-ms must not be negative" : null);
        OptionValues.AddCheck(run, value => RunId.Check(value) is { } problem ? "--run: " + problem : null);
        OptionValues.AddCheck(ranks, value => value is < 1 or > 64 ? "--ranks must be between 1 and 64" : null);
        command.SetAction(async (parse, cancellationToken) =>
        {
            TextWriter error = parse.InvocationConfiguration.Error;
            KafkaClientSettings? kafkaSettings = null;
            try
            {
                if (parse.GetValue(kafka) is { } bootstrap)
                {
                    kafkaSettings = kafkaClient.Resolve(parse, bootstrap);
                }
                else if (kafkaClient.IsGiven(parse))
                {
                    throw new KafkaClientPropertiesException("--kafka-property and --kafka-config need --kafka (the in-process bus has no client properties)");
                }
            }
            catch (KafkaClientPropertiesException ex)
            {
                await error.WriteLineAsync("monitor demo: " + ex.Message);
                return 2;
            }

            var options = new DemoOptions
            {
                Steps = parse.GetValue(steps),
                Fault = FaultNames.Parse(parse.GetValue(fault)),
                FaultAt = parse.GetValue(faultAt),
                LearningRate = parse.GetValue(learningRate),
                MetricsPort = parse.GetValue(metricsPort),
                Kafka = kafkaSettings?.BootstrapServers,
                KafkaProperties = kafkaSettings?.Properties ?? defaults.KafkaProperties,
                RunId = parse.GetValue(run)!,
                StepDelay = TimeSpan.FromMilliseconds(parse.GetValue(stepDelay)),
                Ranks = parse.GetValue(ranks),
                Redis = parse.GetValue(redis),
                RulesFile = parse.GetValue(rules)?.FullName,
                RecordFile = parse.GetValue(record)?.FullName,
                ArchiveDirectory = parse.GetValue(archive)?.FullName,
            };
            // The worker's and the service's spans in one process; exported only when an OTLP endpoint is set.
            using OpenTelemetry.Trace.TracerProvider? tracing = OpenTelemetryExport.StartTracing("monitor-demo", StepTracer.ActivitySourceName, MonitorService.ActivitySourceName);
            var runner = new DemoRunner(options, parse.InvocationConfiguration.Output) { InteractiveProgress = !Console.IsOutputRedirected };
            try
            {
                DemoResult result = await runner.RunAsync(cancellationToken);
                return result.ExitCode;
            }
            catch (IOException ex)
            {
                await error.WriteLineAsync($"monitor demo: {ex.Message} (is port {options.MetricsPort} in use? try --metrics-port 0)");
                return 2;
            }
            catch (Exception ex) when (KafkaClientProperties.Describe(ex, out string message))
            {
                await error.WriteLineAsync("monitor demo: " + message);
                return 2;
            }
        });
        return command;
    }

    private static Command CreateKafkaMock()
    {
        var brokers = new Option<int>("--brokers") { Description = "Brokers of the mock cluster.", DefaultValueFactory = _ => 1 };
        OptionValues.AddCheck(brokers, value => value is < 1 or > 9 ? "--brokers must be between 1 and 9" : null);
        var command = new Command("kafka-mock", "Run librdkafka's mock Kafka cluster (in memory, the real protocol) until Ctrl+C, to try serve, archive and the sample job without a Kafka cluster: prints its bootstrap servers on the first line of stdout. For trying and testing only: nothing is kept, and the mock has no security.")
        {
            brokers,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var cluster = new MockKafkaCluster(parse.GetValue(brokers));
            TextWriter output = parse.InvocationConfiguration.Output;
            await output.WriteLineAsync(cluster.BootstrapServers);
            await output.FlushAsync(cancellationToken);
            await parse.InvocationConfiguration.Error.WriteLineAsync(
                $"monitor kafka-mock: librdkafka mock cluster at {cluster.BootstrapServers} (topics are created on first use); Ctrl+C stops it");
            try
            {
                await Task.Delay(Timeout.Infinite, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                // Ctrl+C / SIGTERM.
            }

            return 0;
        });
        return command;
    }

    private static Command CreateServe()
    {
        var defaults = new MonitorServiceOptions();
        var consumerDefaults = new KafkaConsumerOptions { BootstrapServers = "", Topic = defaults.StepsTopic };
        var kafka = new Option<string?>("--kafka") { Description = "Kafka bootstrap servers, host:port[,...]. Required unless bootstrap.servers comes with the client properties." };
        var kafkaClient = new KafkaClientProperties(readEnvironment: true);
        var group = new Option<string>("--group") { Description = "Consumer group; replicas with the same group share the partitions.", DefaultValueFactory = _ => consumerDefaults.GroupId };
        var offsetReset = new Option<AutoOffsetReset>("--offset-reset") { Description = "Where a group without committed offsets starts: earliest (no record skipped), latest (only new records) or error.", DefaultValueFactory = _ => consumerDefaults.AutoOffsetReset };
        var topic = new Option<string>("--topic") { Description = "Topic of step records.", DefaultValueFactory = _ => defaults.StepsTopic };
        var deadLetterTopic = new Option<string>("--dead-letter-topic") { Description = "Topic for undecodable records.", DefaultValueFactory = _ => defaults.DeadLetterTopic };
        var listenSet = new ListenOptionSet("/metrics, /healthz, /readyz and /api");
        Option<string> listen = listenSet.Listen;
        Option<FileInfo> tlsCertificate = listenSet.TlsCertificate;
        Option<FileInfo> tlsKey = listenSet.TlsKey;
        var maxSeries = new Option<int>("--max-tensor-series") { Description = "Cap on exported (run, rank, tensor) combinations.", DefaultValueFactory = _ => defaults.MaxTensorSeries };
        var histogramTensors = new Option<string?>("--histogram-tensors") { Description = "Regular expression on tensor names whose histograms are exported (monitor_tensor_histogram_elements). Default: every tensor, up to --max-histogram-tensors." };
        var maxHistograms = new Option<int>("--max-histogram-tensors") { Description = "Cap on (run, rank, tensor) combinations with exported histograms (each is one series per histogram bucket).", DefaultValueFactory = _ => defaults.MaxHistogramTensors };
        var redis = new Option<string?>("--redis") { Description = $"Redis of the control plane, StackExchange.Redis syntax (host:port[,user=...,password=...,ssl=true]); enables the /api endpoints (runs, catalogs, selections, history). Default: ${TraceCommands.RedisVariable}." };
        var alertmanager = new Option<Uri[]>("--alertmanager") { Description = "Alertmanager base URL to push alerts to (API v2), e.g. http://alertmanager:9093 (repeatable).", CustomParser = OptionValues.AbsoluteUrls };
        var webhook = new Option<Uri[]>("--webhook") { Description = "URL to POST alert notifications to as JSON (repeatable).", CustomParser = OptionValues.AbsoluteUrls };
        var webhookToken = new Option<string?>("--webhook-token") { Description = $"Bearer token sent to every --webhook (Authorization: Bearer TOKEN). Default: ${WebhookTokenVariable}." };
        var webhookHeader = new Option<Dictionary<string, string>>("--webhook-header") { Description = "'Name: value' header sent to every --webhook (repeatable), e.g. 'X-Api-Key: abc'.", CustomParser = OptionValues.Headers };
        var externalUrl = new Option<Uri?>("--external-url") { Description = "This service's URL as seen by users; alerts link to {url}/api/alerts/{fingerprint}.", CustomParser = r => OptionValues.AbsoluteUrls(r).FirstOrDefault() };
        var externalLabels = new Option<Dictionary<string, string>>("--external-label") { Description = "key=value label added to every alert that lacks it, e.g. cluster=eu1 (repeatable; Prometheus' external_labels).", CustomParser = OptionValues.KeyValues };
        var resendInterval = new Option<TimeSpan>("--resend-interval") { Description = "How often firing alerts are sent to Alertmanager again (endsAt = now + 4 x this), e.g. 30s, 5m.", DefaultValueFactory = _ => defaults.Notifications.ResendInterval, CustomParser = OptionValues.Duration };
        var stateTtl = new Option<TimeSpan>("--state-ttl") { Description = "How long a rank may send nothing before its state, alerts and series are forgotten, e.g. 24h or 7d (by the clock once caught up with the topic, in event time while lagging).", DefaultValueFactory = _ => defaults.Engine.IdleTtl, CustomParser = OptionValues.Duration };
        var lateGrace = new Option<TimeSpan>("--late-grace") { Description = "How far in event time a rank's record may lag behind its newest and still be evaluated; older ones are counted as late.", DefaultValueFactory = _ => defaults.Engine.LateGrace, CustomParser = OptionValues.Duration };
        var rulesFile = new Option<FileInfo?>("--rules") { Description = "Rule file (YAML or .json), reloaded when it changes. Default: the default rule set (`monitor rules default`)." };
        var stateDir = new Option<DirectoryInfo?>("--state-dir") { Description = "Keep the engine's state (windows, rule state, alerts) and the consumed offsets it reflects in this directory, saved together every --state-interval and at a clean stop, restored at start: a restart neither loses nor double-counts records nor re-fires alerts. One process per directory, group and topic. Default: in memory only." };
        var stateInterval = new Option<TimeSpan>("--state-interval") { Description = "How often the state is saved to --state-dir; after a crash at most this much of the stream is analysed again, e.g. 30s, 5m.", DefaultValueFactory = _ => defaults.StateInterval, CustomParser = OptionValues.Duration };
        var stateTopic = new Option<string?>("--state-topic") { Description = $"Exactly-once state in Kafka: keep the engine's state in this compacted changelog topic (e.g. {MonitorTopics.State}), written with the alerts ({defaults.Notifications.AlertsTopic}) and the consumed offsets in one transaction every --commit-interval; replicas of a group hand partitions over with their state and alerts. Excludes --state-dir. Default: in memory only." };
        var commitInterval = new Option<TimeSpan>("--commit-interval") { Description = "How often the --state-topic transaction commits: webhooks and Alertmanager hear of an alert at most this much later; each commit writes the state of every key that changed, so a shorter interval costs CPU, e.g. 1s, 10s.", DefaultValueFactory = _ => defaults.CommitInterval, CustomParser = OptionValues.Duration };
        var instanceId = new Option<string>("--instance-id") { Description = "This replica's stable name with --state-topic (its transactional.id is monitor-GROUP-ID): a replica restarted under the same name takes over its predecessor's open transaction at once. Two live replicas must not share one.", DefaultValueFactory = _ => Environment.MachineName };
        var record = new Option<FileInfo?>("--record") { Description = "Record every decoded step record to this file, for `monitor replay` (.pb/.bin: protobuf, else JSON lines)." };
        var apiToken = new Option<string?>("--api-token") { Description = $"Bearer token that /api writes require (it also allows reads). Default: ${ApiTokenVariable}; none disables writes." };
        var apiTokenFile = new Option<FileInfo>("--api-token-file") { Description = "Read the --api-token from this file (trailing line break removed)." };
        var apiReadToken = new Option<string?>("--api-read-token") { Description = $"Bearer token that /api reads require (the write token also reads). Default: ${ApiReadTokenVariable}; none leaves reads open." };
        var apiReadTokenFile = new Option<FileInfo>("--api-read-token-file") { Description = "Read the --api-read-token from this file (trailing line break removed)." };
        var archive = new Option<DirectoryInfo?>("--archive") { Description = "Also archive every step record to Parquet files under this directory, in a consumer group of its own (as `monitor archive` does)." };
        var archiveSet = new ArchiveOptionSet("archive-");
        foreach (Option<FileInfo> file in (Option<FileInfo>[])[apiTokenFile, apiReadTokenFile])
        {
            file.AcceptExistingOnly();
        }

        var command = new Command("serve", "Run the monitor service alone: consume step records from Kafka, evaluate rules, serve /metrics and /api, notify.")
        {
            kafka, kafkaClient.Property, kafkaClient.ConfigFile, group, offsetReset, topic, deadLetterTopic, listen, tlsCertificate, tlsKey,
            maxSeries, histogramTensors, maxHistograms, redis, apiToken, apiTokenFile, apiReadToken, apiReadTokenFile, rulesFile, record,
            alertmanager, webhook, webhookToken, webhookHeader, externalUrl, externalLabels, resendInterval, lateGrace, stateTtl, stateDir, stateInterval, stateTopic, commitInterval, instanceId, archive,
        };
        foreach (Option option in archiveSet.All)
        {
            command.Options.Add(option);
        }

        command.SetAction(async (parse, cancellationToken) =>
        {
            TextWriter error = parse.InvocationConfiguration.Error;
            // ASP.NET Core's per-request information lines would drown the service's own.
            using ILoggerFactory logging = LoggerFactory.Create(b => b.AddSimpleConsole(o => o.SingleLine = true).AddFilter("Microsoft.AspNetCore", LogLevel.Warning));
            ILogger log = logging.CreateLogger("monitor");
            MonitorServiceOptions options;
            KafkaClientSettings kafkaSettings;
            ArchiveOptions? archiveOptions = null;
            try
            {
                kafkaSettings = kafkaClient.Resolve(parse, parse.GetValue(kafka));
                string? token = OptionValues.Secret(parse, webhookToken, null, WebhookTokenVariable);
                Dictionary<string, string> headers = parse.GetValue(webhookHeader) ?? [];
                options = new MonitorServiceOptions
                {
                    StepsTopic = parse.GetValue(topic)!,
                    DeadLetterTopic = parse.GetValue(deadLetterTopic)!,
                    ListenUrl = parse.GetValue(listen)!,
                    TlsCertificateFile = parse.GetValue(tlsCertificate)?.FullName,
                    TlsKeyFile = parse.GetValue(tlsKey)?.FullName,
                    MaxTensorSeries = parse.GetValue(maxSeries),
                    HistogramTensors = parse.GetValue(histogramTensors),
                    MaxHistogramTensors = parse.GetValue(maxHistograms),
                    Redis = OptionValues.Secret(parse, redis, null, TraceCommands.RedisVariable),
                    ApiToken = OptionValues.Secret(parse, apiToken, apiTokenFile, ApiTokenVariable),
                    ApiReadToken = OptionValues.Secret(parse, apiReadToken, apiReadTokenFile, ApiReadTokenVariable),
                    RulesFile = parse.GetValue(rulesFile)?.FullName,
                    RecordFile = parse.GetValue(record)?.FullName,
                    Engine = new AnalysisEngineOptions { LateGrace = parse.GetValue(lateGrace), IdleTtl = parse.GetValue(stateTtl) },
                    StateDirectory = parse.GetValue(stateDir)?.FullName,
                    StateInterval = parse.GetValue(stateInterval),
                    StateTopic = parse.GetValue(stateTopic),
                    CommitInterval = parse.GetValue(commitInterval),
                    Notifications = new NotificationOptions
                    {
                        AlertmanagerUrls = parse.GetValue(alertmanager) ?? [],
                        Webhooks = [.. (parse.GetValue(webhook) ?? []).Select(url => new WebhookTarget { Url = url, BearerToken = string.IsNullOrEmpty(token) ? null : token, Headers = headers })],
                        GeneratorUrlBase = parse.GetValue(externalUrl),
                        ExternalLabels = parse.GetValue(externalLabels) ?? [],
                        ResendInterval = parse.GetValue(resendInterval),
                    },
                };
                if (options.StateDirectory is null && parse.GetResult(stateInterval) is { Implicit: false })
                {
                    throw new ArgumentException("--state-interval needs --state-dir DIR");
                }

                if (options.StateTopic is null && (parse.GetResult(commitInterval) is { Implicit: false } || parse.GetResult(instanceId) is { Implicit: false }))
                {
                    throw new ArgumentException("--commit-interval and --instance-id need --state-topic TOPIC");
                }

                if (options.StateTopic is not null && options.StateDirectory is not null)
                {
                    throw new ArgumentException("--state-topic and --state-dir exclude each other: the changelog is the state of a consumer group, the directory that of one process");
                }

                if ((token is { Length: > 0 } || headers.Count > 0) && options.Notifications.Webhooks.Count == 0)
                {
                    throw new ArgumentException("--webhook-token and --webhook-header need a --webhook");
                }

                options.Validate();
                if (parse.GetValue(archive) is { } archiveDirectory)
                {
                    archiveOptions = archiveSet.Resolve(parse, archiveDirectory.FullName);
                    archiveOptions.Validate();
                }
                else if (archiveSet.All.Any(o => parse.GetResult(o) is { Implicit: false }))
                {
                    throw new ArgumentException("the --archive-* options need --archive DIR");
                }
            }
            catch (Exception ex) when (ex is ArgumentException or KafkaClientPropertiesException)
            {
                await error.WriteLineAsync("monitor serve: " + ex.Message);
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
                    await error.WriteLineAsync("monitor serve: " + string.Join(Environment.NewLine + "  ", ["rule file " + path + ":", .. ex.Problems]));
                    return 2;
                }
            }

            using OpenTelemetry.Trace.TracerProvider? tracing = OpenTelemetryExport.StartTracing("monitor-service", MonitorService.ActivitySourceName);
            KafkaRecordConsumer consumer;
            KafkaRecordProducer deadLetters;
            try
            {
                consumer = new KafkaRecordConsumer(
                    new KafkaConsumerOptions
                    {
                        BootstrapServers = kafkaSettings.BootstrapServers,
                        Topic = options.StepsTopic,
                        GroupId = parse.GetValue(group)!,
                        AutoOffsetReset = parse.GetValue(offsetReset),
                        Properties = kafkaSettings.Properties,
                        ExactlyOnce = options.StateTopic is not null,
                    },
                    logging.CreateLogger<KafkaRecordConsumer>());
            }
            catch (Exception ex) when (KafkaClientProperties.Describe(ex, out string message))
            {
                await error.WriteLineAsync("monitor serve: " + message);
                return 2;
            }

            try
            {
                deadLetters = new KafkaRecordProducer(new KafkaProducerOptions { BootstrapServers = kafkaSettings.BootstrapServers, ClientId = "monitor-service-dlq", Properties = kafkaSettings.Properties });
            }
            catch (Exception ex) when (KafkaClientProperties.Describe(ex, out string message))
            {
                consumer.Dispose();
                await error.WriteLineAsync("monitor serve: " + message);
                return 2;
            }

            KafkaStateChangelog? changelog = options.StateTopic is not { } changelogTopic ? null : new KafkaStateChangelog(
                new KafkaStateChangelogOptions
                {
                    BootstrapServers = kafkaSettings.BootstrapServers,
                    Topic = changelogTopic,
                    TransactionalId = $"monitor-{parse.GetValue(group)}-{parse.GetValue(instanceId)}",
                    Properties = kafkaSettings.Properties,
                },
                logging.CreateLogger<KafkaStateChangelog>());
            await using var service = new MonitorService(options, consumer, deadLetters, logging, changelog: changelog);
            service.AlertChanged += alert =>
            {
#pragma warning disable CA1848, CA2254, CA1873 // One line per alert change.
                log.LogWarning($"alert {alert.RuleName} {alert.State} {alert.Identity} step={alert.Step}: {alert.Description}");
#pragma warning restore CA1848, CA2254, CA1873
            };
            try
            {
                await service.StartAsync(cancellationToken);
            }
            catch (ArgumentException ex)
            {
                await error.WriteLineAsync("monitor serve: " + ex.Message);
                return 2;
            }
            catch (Monitor.Service.State.StateDirectoryException ex)
            {
                await error.WriteLineAsync("monitor serve: " + ex.Message);
                return 2;
            }
            catch (Exception ex) when (options.StateTopic is not null && ex is Confluent.Kafka.KafkaException or InvalidOperationException)
            {
                await error.WriteLineAsync($"monitor serve: the state topic {options.StateTopic} cannot be used: {ex.Message}");
                return 2;
            }
            catch (IOException ex)
            {
                await error.WriteLineAsync($"monitor serve: cannot listen on {options.ListenUrl}: {ex.Message}");
                return 2;
            }

#pragma warning disable CA1848, CA2254, CA1873
            log.LogInformation($"monitor serve: consuming {options.StepsTopic} from {kafkaSettings.BootstrapServers}{KafkaClientProperties.Summary(kafkaSettings)} as group {parse.GetValue(group)}; metrics at {new Uri(service.BaseAddress!, "metrics")}");
#pragma warning restore CA1848, CA2254, CA1873
            await using ServeArchive? archiver = archiveOptions is null ? null : ServeArchive.Start(
                archiveOptions,
                new KafkaConsumerOptions
                {
                    BootstrapServers = kafkaSettings.BootstrapServers,
                    Topic = options.StepsTopic,
                    GroupId = parse.GetValue(archiveSet.Group)!,
                    AutoOffsetReset = parse.GetValue(offsetReset),
                    Properties = kafkaSettings.Properties,
                },
                logging,
                service.MetricsRegistry);
            if (archiver is not null)
            {
#pragma warning disable CA1848, CA2254, CA1873
                log.LogInformation($"monitor serve: archiving {options.StepsTopic} as group {parse.GetValue(archiveSet.Group)} into {archiveOptions!.Directory}");
#pragma warning restore CA1848, CA2254, CA1873
            }

            try
            {
                await Task.Delay(Timeout.Infinite, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                // Ctrl+C / SIGTERM: stop cleanly, committing processed offsets (the archive's after closing its files).
            }

            return 0;
        });
        return command;
    }

    /// <summary>
    /// <c>serve --archive</c>: the archiver and its own consumer, stopped (files closed, offsets committed) on dispose;
    /// its metrics (<see cref="ArchiveMetrics"/>) are on the service's <c>/metrics</c>.
    /// </summary>
    private sealed class ServeArchive(KafkaRecordConsumer consumer, Monitor.Archive.StepArchiver archiver) : IAsyncDisposable
    {
        public static ServeArchive Start(ArchiveOptions options, KafkaConsumerOptions consumerOptions, ILoggerFactory logging, Prometheus.CollectorRegistry registry)
        {
            var consumer = new KafkaRecordConsumer(consumerOptions, logging.CreateLogger<KafkaRecordConsumer>());
            try
            {
                var archiver = new Monitor.Archive.StepArchiver(consumer, options, logging.CreateLogger<Monitor.Archive.StepArchiver>());
                _ = new ArchiveMetrics(registry, archiver);
                archiver.Start();
                return new ServeArchive(consumer, archiver);
            }
            catch
            {
                consumer.Dispose();
                throw;
            }
        }

        public async ValueTask DisposeAsync()
        {
            await archiver.DisposeAsync();
            consumer.Dispose();
        }
    }

}
