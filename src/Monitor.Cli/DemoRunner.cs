using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using Monitor.Analysis;
using Monitor.Archive;
using Monitor.Contracts;
using Monitor.Contracts.Transport;
using Monitor.Contracts.V1;
using Monitor.Samples.Training;
using Monitor.Service;
using Monitor.Tracing;
using Monitor.Tracing.Control;
using Monitor.Tracing.TorchSharp;
using Monitor.Transport.Kafka;

namespace Monitor.Cli;

/// <summary>What a demo run produced.</summary>
internal sealed record DemoResult(int ExitCode, long Steps, IReadOnlyList<AlertTransition> Fired, TracerStatistics Tracer, ServiceStatistics Service);

/// <summary>
/// <c>monitor demo</c>: the sample TorchSharp job (one or more data-parallel ranks) and the monitor service in one
/// process, connected by the in-process bus (default), librdkafka's mock cluster (<c>--kafka mock</c>) or a real
/// Kafka cluster; the ranks' selections live in an in-process Garnet server (default) or the given Redis.
/// </summary>
internal sealed class DemoRunner(DemoOptions options, TextWriter output)
{
    private readonly Lock _console = new();
    private readonly List<AlertTransition> _fired = [];
    private bool _progressLineOpen;
    private long _lastProgressTicks;

    public bool InteractiveProgress { get; init; }

    /// <summary>The Redis connection string the demo's control plane uses, once started (tests read it).</summary>
    public string? RedisConnection { get; private set; }

    /// <summary>Where the service listens, once started (tests read it).</summary>
    public Uri? ServiceAddress { get; private set; }

    /// <summary>Set when the tracers are attached: what the ranks are doing (tests read it).</summary>
    public IReadOnlyList<StepTracer> Tracers { get; private set; } = [];

    public async Task<DemoResult> RunAsync(CancellationToken cancellationToken)
    {
        using MockKafkaCluster? mock = options.Kafka == "mock" ? new MockKafkaCluster() : null;
        using EmbeddedRedis? garnet = options.Redis is null ? new EmbeddedRedis() : null;
        RedisConnection = garnet?.ConnectionString ?? options.Redis!;
        string? bootstrap = mock?.BootstrapServers ?? options.Kafka;
        var bus = new InProcessBus();
        // A fresh group per demo run on a shared cluster: the demo analyses its own run from the start.
        string group = "monitor-demo-" + Guid.NewGuid().ToString("N")[..8];
        IRecordConsumer consumer = bootstrap is null
            ? bus.CreateConsumer(MonitorTopics.Steps)
            : new KafkaRecordConsumer(new KafkaConsumerOptions { BootstrapServers = bootstrap, Topic = MonitorTopics.Steps, GroupId = group, Properties = options.KafkaProperties });
        IRecordProducer deadLetters = bootstrap is null
            ? bus.CreateProducer()
            : new KafkaRecordProducer(new KafkaProducerOptions { BootstrapServers = bootstrap, ClientId = "monitor-demo-dlq", Properties = options.KafkaProperties });

        // The archive reads the steps in a group of its own, created before any record is produced so it misses none.
        IRecordConsumer? archiveConsumer = options.ArchiveDirectory is null ? null
            : bootstrap is null ? bus.CreateConsumer(MonitorTopics.Steps, ArchiveOptionSet.DefaultGroup)
            : new KafkaRecordConsumer(new KafkaConsumerOptions { BootstrapServers = bootstrap, Topic = MonitorTopics.Steps, GroupId = group + "-archive", Properties = options.KafkaProperties });
        using IRecordConsumer? ownedArchiveConsumer = archiveConsumer;
        await using StepArchiver? archiver = archiveConsumer is null ? null : new StepArchiver(archiveConsumer, new ArchiveOptions { Directory = options.ArchiveDirectory! });
        archiver?.Start();

        string apiToken = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));
        var serviceOptions = new MonitorServiceOptions
        {
            ListenUrl = $"http://127.0.0.1:{options.MetricsPort}",
            Redis = RedisConnection,
            ApiToken = apiToken,
            RulesFile = options.RulesFile,
            RecordFile = options.RecordFile,
            // Stalled ranks are noticed within seconds in a demo.
            TickInterval = TimeSpan.FromSeconds(1),
            // The workers write a heartbeat every 2 s; read them as often.
            HeartbeatInterval = TimeSpan.FromSeconds(2),
        };
        await using var service = new MonitorService(serviceOptions, consumer, deadLetters);
        if (archiver is not null)
        {
            // The archive's metrics on the demo's /metrics, as with `serve --archive`.
            _ = new ArchiveMetrics(service.MetricsRegistry, archiver);
        }

        service.AlertChanged += OnAlert;
        await service.StartAsync(cancellationToken);
        ServiceAddress = service.BaseAddress;

        string transport = mock is not null ? $"librdkafka mock cluster at {bootstrap}"
            : bootstrap is not null ? $"Kafka at {bootstrap}"
            : "in-process bus (embedded)";
        Write($"Monitor demo: run '{options.RunId}', {options.Ranks} rank{(options.Ranks > 1 ? "s" : "")}, {options.Steps} steps, fault {FaultNames.NameOf(options.Fault)}"
            + (options.Fault == Fault.None ? "" : $" from step {options.FaultAt}"));
        Write($"Transport: {transport}");
        Write($"Control:   {(garnet is not null ? "in-process Garnet at " : "Redis at ")}{RedisConnection}");
        if (options.ArchiveDirectory is { } archiveDirectory)
        {
            Write($"Archive:   Parquet files under {archiveDirectory} (monitor export / monitor query --from {archiveDirectory})");
        }

        Write($"Metrics:   {new Uri(service.BaseAddress!, "metrics")}   (also /healthz, /readyz, /api/runs; API token {apiToken})");
        int exampleRank = options.Ranks > 1 ? 1 : 0;
        Write($"Change what rank {exampleRank} traces while it runs:");
        Write($"  dotnet run --project src/Monitor.Cli -- trace set --redis {RedisConnection} --run {options.RunId} --rank {exampleRank} --include 'gradients:^fc2\\.' --every-steps 1");
        Write($"  (list its tensors: dotnet run --project src/Monitor.Cli -- trace tensors --redis {RedisConnection} --run {options.RunId} --rank {exampleRank})");

        var jobOptions = new TrainingJobOptions
        {
            Steps = options.Steps,
            Fault = options.Fault,
            FaultAt = options.FaultAt,
            LearningRate = options.LearningRate,
            StepDelay = options.StepDelay,
            Ranks = options.Ranks,
        };
        var tracers = new StepTracer[options.Ranks];
        var controls = new TracerControlPlane?[options.Ranks];
        try
        {
            for (int rank = 0; rank < options.Ranks; rank++)
            {
                IRecordProducer producer = bootstrap is null
                    ? bus.CreateProducer()
                    : new KafkaRecordProducer(new KafkaProducerOptions { BootstrapServers = bootstrap, ClientId = $"monitor-demo-rank-{rank}", Properties = options.KafkaProperties });
                tracers[rank] = new StepTracer(
                    new TracerOptions
                    {
                        RunId = options.RunId, Rank = rank, WorldSize = options.Ranks, QueueCapacity = 1024, Selection = SampleSelection.Default,
                        Hyperparameters = jobOptions.Hyperparameters(), Devices = ["cpu"],
                    },
                    producer,
                    ownsProducer: true);
            }

            Tracers = tracers;
            var job = new TrainingJob(jobOptions);

            var clock = Stopwatch.StartNew();
            RunCommand? stop = null;
            long steps = await job.RunAsync(
                (rank, model, optimizer) =>
                {
                    TorchSharpTracer adapter = TorchSharpTracer.Attach(tracers[rank], model, optimizer);
                    controls[rank] = TracerControlPlane.Start(
                        tracers[rank],
                        new ControlPlaneOptions { Redis = RedisConnection, PollInterval = options.ControlPollInterval },
                        () => adapter.Catalog);
                    return adapter;
                },
                progress => Progress(progress, tracers, service, clock),
                // The sample job asks before every step; a stop command for any rank ends the whole data-parallel job.
                shouldStop: () => (stop ??= controls.FirstOrDefault(c => c?.ShouldStop == true)?.StopCommand) is not null,
                cancellationToken: cancellationToken);
            if (stop is not null)
            {
                EndProgressLine();
                Write($"Stopped:  training ended at step {steps} on the monitor's request ({stop.IssuedBy}): {stop.Reason}");
            }
            double trainingSeconds = clock.Elapsed.TotalSeconds;

            bool flushed = true;
            RunEndReason ended = cancellationToken.IsCancellationRequested ? RunEndReason.Cancelled
                : stop is not null ? RunEndReason.Stopped : RunEndReason.Done;
            foreach (StepTracer tracer in tracers)
            {
                tracer.Complete(ended);
                flushed &= await tracer.FlushAsync(options.DrainTimeout, CancellationToken.None);
            }

            long delivered = tracers.Sum(t => t.Statistics.Delivered);
            long lost = tracers.Sum(t => t.Statistics.Lost);
            bool drained = await WaitUntilAsync(() => service.Statistics.Processed >= delivered, options.DrainTimeout);
            ServiceStatistics analysed = service.Statistics;
            bool archived = true;
            if (archiver is not null)
            {
                archived = await WaitUntilAsync(() => archiver.Statistics.Consumed >= delivered || archiver.Failure is not null, options.DrainTimeout);
                await archiver.StopAsync();
                archived &= archiver.Failure is null;
            }

            EndProgressLine();

            Write(string.Create(CultureInfo.InvariantCulture,
                $"Summary: {steps} steps in {trainingSeconds:F1} s; records sent {delivered}, analysed {analysed.Decoded}, undecodable {analysed.Failed}, dropped on the workers {lost}; selection {Versions(tracers)}"));
            if (_fired.Count == 0)
            {
                Write("Alerts:  none fired");
            }
            else
            {
                foreach (IGrouping<string, AlertTransition> byRule in _fired.GroupBy(a => a.RuleName))
                {
                    Write($"Alerts:  {byRule.Key} fired {byRule.Count()}x, first at step {byRule.Min(a => a.Step)} ({string.Join(", ", byRule.Select(Subject).Distinct())})");
                }
            }

            if (archiver is not null)
            {
                Write(ArchiveCommands.Summary(archiver.Statistics, options.ArchiveDirectory!));
            }

            int exitCode = 0;
            if (!flushed || !drained)
            {
                Write($"Error: not every record reached the service (sent {delivered}, processed {analysed.Processed}) within {options.DrainTimeout.TotalSeconds:F0} s");
                exitCode = 1;
            }

            if (!archived)
            {
                Write($"Error: the archive did not write every record (sent {delivered}, archived {archiver!.Statistics.Consumed}){(archiver.Failure is { } failure ? ": " + failure : "")}");
                exitCode = 1;
            }

            return new DemoResult(exitCode, steps, _fired.ToArray(), tracers[0].Statistics, analysed);
        }
        finally
        {
            foreach (TracerControlPlane? control in controls)
            {
                if (control is not null)
                {
                    await control.DisposeAsync();
                }
            }

            foreach (StepTracer? tracer in tracers)
            {
                if (tracer is not null)
                {
                    await tracer.DisposeAsync();
                }
            }
        }
    }

    /// <summary>What an alert is about in the summary: the tensor, or for drift alerts the feature.</summary>
    private static string Subject(AlertTransition alert) =>
        alert.Identity[AlertLabels.Feature] is { Length: > 0 } feature ? feature : alert.Identity[AlertLabels.Tensor];

    private void OnAlert(AlertTransition transition)
    {
        if (ReplayCommands.AlertLine(transition) is not { } line)
        {
            return;
        }

        if (transition.State == AlertState.Firing)
        {
            lock (_fired)
            {
                _fired.Add(transition);
            }
        }

        Write(line);
    }

    private void Progress(StepProgress progress, StepTracer[] tracers, MonitorService service, Stopwatch clock)
    {
        bool last = progress.Step == options.Steps - 1;
        if (InteractiveProgress)
        {
            if (clock.ElapsedTicks - _lastProgressTicks < Stopwatch.Frequency / 10 && !last)
            {
                return;
            }

            _lastProgressTicks = clock.ElapsedTicks;
        }
        else if (progress.Step % 50 != 0 && !last)
        {
            return;
        }

        double seconds = Math.Max(clock.Elapsed.TotalSeconds, 1e-3);
        long delivered = tracers.Sum(t => t.Statistics.Delivered);
        string versions = Versions(tracers);
        string line = string.Create(CultureInfo.InvariantCulture,
            $"step {progress.Step + 1,6}/{options.Steps}  loss {progress.Loss,7:F4}  selection {versions}  records/s {delivered / seconds,6:F0}  analysed {service.Statistics.Decoded,6}  alerts {service.Statistics.AlertsFired}{(progress.FaultActive ? "  [fault]" : "")}");
        lock (_console)
        {
            if (InteractiveProgress)
            {
                output.Write("\r" + line.PadRight(120));
                _progressLineOpen = true;
            }
            else
            {
                output.WriteLine(line);
            }
        }
    }

    private static string Versions(StepTracer[] tracers) =>
        string.Join(" ", tracers.Select(t => string.Create(CultureInfo.InvariantCulture, $"r{t.Rank}:v{t.Statistics.SelectionVersion}")));

    private void EndProgressLine()
    {
        lock (_console)
        {
            if (_progressLineOpen)
            {
                output.WriteLine();
                _progressLineOpen = false;
            }
        }
    }

    private void Write(string line)
    {
        lock (_console)
        {
            if (_progressLineOpen)
            {
                output.Write("\r" + new string(' ', 120) + "\r");
                _progressLineOpen = false;
            }

            output.WriteLine(line);
        }
    }

    private static async Task<bool> WaitUntilAsync(Func<bool> condition, TimeSpan timeout)
    {
        long deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (!condition())
        {
            if (Stopwatch.GetTimestamp() > deadline)
            {
                return false;
            }

            await Task.Delay(20);
        }

        return true;
    }
}
