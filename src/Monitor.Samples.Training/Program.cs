using System.CommandLine;
using Monitor.Contracts;
using Monitor.Hosting;
using Monitor.Samples.Training;
using Monitor.Tracing;
using Monitor.Tracing.TorchSharp;

// The sample job on its own, tracing to a real Kafka cluster:
//   dotnet run --project src/Monitor.Samples.Training -- --kafka localhost:9092 --steps 1000 --fault vanishing-gradients
// With OTEL_EXPORTER_OTLP_ENDPOINT set, each record's `send monitor.steps` span is exported over OTLP.
var kafka = new Option<string>("--kafka") { Description = "Kafka bootstrap servers, host:port[,host:port].", Required = true };
var run = new Option<string>("--run") { Description = "Run id (letters, digits, '.', '_', '-').", DefaultValueFactory = _ => "sample" };
var rank = new Option<int>("--rank") { Description = "This worker's rank.", DefaultValueFactory = _ => 0 };
var worldSize = new Option<int>("--world-size") { Description = "Number of ranks in the run.", DefaultValueFactory = _ => 1 };
var topic = new Option<string>("--topic") { Description = "Topic for step records.", DefaultValueFactory = _ => MonitorTopics.Steps };
var steps = new Option<int>("--steps") { Description = "Steps to train.", DefaultValueFactory = _ => 300 };
var fault = new Option<string>("--fault") { Description = "Fault to inject: " + string.Join(", ", FaultNames.All) + ".", DefaultValueFactory = _ => "none" };
fault.AcceptOnlyFromAmong([.. FaultNames.All]);
var faultAt = new Option<int>("--fault-at") { Description = "First step with the fault.", DefaultValueFactory = _ => 150 };
var stepDelay = new Option<int>("--step-delay-ms") { Description = "Pause after each step, in milliseconds.", DefaultValueFactory = _ => 0 };

var root = new RootCommand("Monitor sample training job: a TorchSharp MLP on synthetic data, traced to Kafka.")
{
    kafka, run, rank, worldSize, topic, steps, fault, faultAt, stepDelay,
};
root.SetAction(async (parse, cancellationToken) =>
{
    // Spans of the tracer's sends go to OTLP only when OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT is set.
    using OpenTelemetry.Trace.TracerProvider? tracing = OpenTelemetryExport.StartTracing("monitor-sample-training", StepTracer.ActivitySourceName);
    var job = new TrainingJob(new TrainingJobOptions
    {
        Steps = parse.GetValue(steps),
        Fault = FaultNames.Parse(parse.GetValue(fault)),
        FaultAt = parse.GetValue(faultAt),
        StepDelay = TimeSpan.FromMilliseconds(parse.GetValue(stepDelay)),
    });
    var tracerOptions = new TracerOptions
    {
        RunId = parse.GetValue(run)!,
        Rank = parse.GetValue(rank),
        WorldSize = parse.GetValue(worldSize),
        Topic = parse.GetValue(topic)!,
        Selection = SampleSelection.Default,
    };
    await using var tracer = new StepTracer(
        tracerOptions,
        new KafkaRecordProducer(new KafkaProducerOptions { BootstrapServers = parse.GetValue(kafka)! }),
        ownsProducer: true);
    long done = await job.RunAsync(
        (model, optimizer) => TorchSharpTracer.Attach(tracer, model, optimizer),
        progress =>
        {
            if (progress.Step % 50 == 0)
            {
                Console.WriteLine($"step {progress.Step,6}  loss {progress.Loss:F4}{(progress.FaultActive ? "  (fault active)" : "")}");
            }
        },
        cancellationToken: cancellationToken);
    bool flushed = await tracer.FlushAsync(TimeSpan.FromSeconds(30), cancellationToken);
    TracerStatistics stats = tracer.Statistics;
    Console.WriteLine($"trained {done} steps; records delivered {stats.Delivered}, dropped {stats.DroppedQueueFull}, failed {stats.DeliveryFailed}, tracer faults {stats.Faults}");
    return flushed && stats.Lost == 0 ? 0 : 1;
});
return await root.Parse(args).InvokeAsync();
