using System.CommandLine;
using Monitor.Contracts.V1;
using Monitor.Hosting;
using Monitor.Tracing;
using Monitor.Tracing.Control;
using Monitor.Tracing.TorchSharp;
using Monitor.Transport.Kafka;

namespace Monitor.Samples.Training;

/// <summary>
/// The sample job's command line: the job on its own, tracing to a real Kafka cluster, with the control plane when
/// <c>--redis</c> is given (selections changed at run time, heartbeats, stop commands), as <c>monitor demo</c> wires it.
/// </summary>
/// <example><c>monitor-sample-training --kafka localhost:9092 --redis localhost:6379 --steps 1000 --fault vanishing-gradients</c></example>
public static class SampleJobCommand
{
    /// <summary>Environment variable that sets the default of <c>--redis</c> (as for <c>monitor trace</c>).</summary>
    public const string RedisVariable = "MONITOR_REDIS";

    /// <summary>
    /// Runs the sample job's command line as its executable does. Exit codes: 0 every record delivered, 1 records lost
    /// or not flushed, 2 invalid options (Kafka client properties included; errors on stderr, not the whole help).
    /// </summary>
    public static Task<int> InvokeAsync(IReadOnlyList<string> args, InvocationConfiguration? configuration = null, CancellationToken cancellationToken = default) =>
        CommandLineEntry.InvokeAsync("monitor-sample-training", Create(), args, configuration, cancellationToken);

    /// <summary>
    /// Creates the command. Exit codes: 0 every record delivered, 1 records lost or not flushed, 2 invalid options
    /// (Kafka client properties included). <see cref="InvokeAsync"/> runs it as the executable does.
    /// </summary>
    public static RootCommand Create()
    {
        var jobDefaults = new TrainingJobOptions();
        var tracerDefaults = new TracerOptions { RunId = "sample" };
        var controlDefaults = new ControlPlaneOptions { Redis = "" };
        var kafka = new Option<string?>("--kafka") { Description = "Kafka bootstrap servers, host:port[,host:port]. Required unless bootstrap.servers comes with the client properties." };
        var kafkaClient = new KafkaClientProperties(readEnvironment: true);
        var redis = new Option<string?>("--redis") { Description = $"Redis of the control plane, StackExchange.Redis syntax (host:port[,user=...,password=...,ssl=true]): the job applies selections set with `monitor trace set` or /api while it runs, publishes its catalog and heartbeat, and ends on a stop command. Default: ${RedisVariable}; none: the start-up selection only." };
        var run = new Option<string>("--run") { Description = "Run id (letters, digits, '.', '_', '-').", DefaultValueFactory = _ => tracerDefaults.RunId };
        var rank = new Option<int>("--rank") { Description = "This worker's rank.", DefaultValueFactory = _ => tracerDefaults.Rank };
        var worldSize = new Option<int>("--world-size") { Description = "Number of ranks in the run.", DefaultValueFactory = _ => tracerDefaults.WorldSize };
        var topic = new Option<string>("--topic") { Description = "Topic for step records.", DefaultValueFactory = _ => tracerDefaults.Topic };
        var steps = new Option<int>("--steps") { Description = "Steps to train.", DefaultValueFactory = _ => jobDefaults.Steps };
        var fault = new Option<string>("--fault") { Description = "Fault to inject: " + string.Join(", ", FaultNames.All) + ".", DefaultValueFactory = _ => FaultNames.NameOf(jobDefaults.Fault) };
        fault.AcceptOnlyFromAmong([.. FaultNames.All]);
        var faultAt = new Option<int>("--fault-at") { Description = "First step with the fault.", DefaultValueFactory = _ => jobDefaults.FaultAt };
        var learningRate = new Option<double>("--learning-rate") { Description = "SGD learning rate (recorded as the run's hyperparameter learning_rate).", DefaultValueFactory = _ => jobDefaults.LearningRate };
        var stepDelay = new Option<int>("--step-delay-ms") { Description = "Pause after each step, in milliseconds.", DefaultValueFactory = _ => (int)jobDefaults.StepDelay.TotalMilliseconds };
        var pollInterval = new Option<int>("--control-poll-ms") { Description = "With --redis: how often the selection is re-read without a change notice, in milliseconds.", DefaultValueFactory = _ => (int)controlDefaults.PollInterval.TotalMilliseconds };

        var root = new RootCommand("Monitor sample training job: a TorchSharp MLP on synthetic data, traced to Kafka.")
        {
            kafka, kafkaClient.Property, kafkaClient.ConfigFile, redis, run, rank, worldSize, topic, steps, fault, faultAt, learningRate, stepDelay, pollInterval,
        };
        root.SetAction(async (parse, cancellationToken) =>
        {
            TextWriter output = parse.InvocationConfiguration.Output;
            TextWriter error = parse.InvocationConfiguration.Error;
            TrainingJob job;
            TracerOptions tracerOptions;
            KafkaClientSettings kafkaSettings;
            try
            {
                kafkaSettings = kafkaClient.Resolve(parse, parse.GetValue(kafka));
                var jobOptions = new TrainingJobOptions
                {
                    Steps = parse.GetValue(steps),
                    Fault = FaultNames.Parse(parse.GetValue(fault)),
                    FaultAt = parse.GetValue(faultAt),
                    LearningRate = parse.GetValue(learningRate),
                    StepDelay = TimeSpan.FromMilliseconds(parse.GetValue(stepDelay)),
                };
                job = new TrainingJob(jobOptions);
                tracerOptions = new TracerOptions
                {
                    RunId = parse.GetValue(run)!,
                    Rank = parse.GetValue(rank),
                    WorldSize = parse.GetValue(worldSize),
                    Topic = parse.GetValue(topic)!,
                    Selection = SampleSelection.Default,
                    Hyperparameters = jobOptions.Hyperparameters(),
                    Devices = ["cpu"],
                };
                tracerOptions.Validate();
            }
            catch (Exception ex) when (ex is ArgumentException or KafkaClientPropertiesException)
            {
                await error.WriteLineAsync("monitor-sample-training: " + ex.Message);
                return 2;
            }

            // Spans of the tracer's sends go to OTLP only when OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT is set.
            using OpenTelemetry.Trace.TracerProvider? tracing = OpenTelemetryExport.StartTracing("monitor-sample-training", StepTracer.ActivitySourceName);
            KafkaRecordProducer producer;
            try
            {
                producer = new KafkaRecordProducer(new KafkaProducerOptions { BootstrapServers = kafkaSettings.BootstrapServers, Properties = kafkaSettings.Properties });
            }
            catch (Exception ex) when (KafkaClientProperties.Describe(ex, out string message))
            {
                await error.WriteLineAsync("monitor-sample-training: " + message);
                return 2;
            }

            await using var tracer = new StepTracer(tracerOptions, producer, ownsProducer: true);
            // Read here, not as the option's default, so that --help never prints a password.
            string? redisConnection = parse.GetValue(redis) is { Length: > 0 } value ? value
                : Environment.GetEnvironmentVariable(RedisVariable) is { Length: > 0 } fromEnvironment ? fromEnvironment : null;
            TracerControlPlane? control = null;
            try
            {
                long done = await job.RunAsync(
                    (model, optimizer) =>
                    {
                        TorchSharpTracer adapter = TorchSharpTracer.Attach(tracer, model, optimizer);
                        if (redisConnection is not null)
                        {
                            control = TracerControlPlane.Start(
                                tracer,
                                new ControlPlaneOptions { Redis = redisConnection, PollInterval = TimeSpan.FromMilliseconds(Math.Max(1, parse.GetValue(pollInterval))) },
                                () => adapter.Catalog);
                        }

                        return adapter;
                    },
                    progress =>
                    {
                        if (progress.Step % 50 == 0)
                        {
                            output.WriteLine($"step {progress.Step,6}  loss {progress.Loss:F4}  selection v{tracer.Statistics.SelectionVersion}{(progress.FaultActive ? "  (fault active)" : "")}");
                        }
                    },
                    shouldStop: () => control?.ShouldStop == true,
                    cancellationToken: cancellationToken);
                if (control?.StopCommand is { } stop)
                {
                    await output.WriteLineAsync($"stopped at step {done} on the monitor's request ({stop.IssuedBy}): {stop.Reason}");
                }

                // The end of the run, so the monitor resolves its alerts and never takes it for a stalled one.
                tracer.Complete(cancellationToken.IsCancellationRequested ? RunEndReason.Cancelled
                    : control?.StopCommand is not null ? RunEndReason.Stopped : RunEndReason.Done);

                bool flushed = await tracer.FlushAsync(TimeSpan.FromSeconds(30), cancellationToken);
                TracerStatistics stats = tracer.Statistics;
                await output.WriteLineAsync($"trained {done} steps; records delivered {stats.Delivered}, dropped {stats.DroppedQueueFull}, failed {stats.DeliveryFailed}, tracer faults {stats.Faults}");
                return flushed && stats.Lost == 0 ? 0 : 1;
            }
            finally
            {
                if (control is not null)
                {
                    await control.DisposeAsync();
                }
            }
        });
        return root;
    }
}
