using System.Diagnostics;
using System.Globalization;
using Monitor.Analysis;
using Monitor.Contracts;
using Monitor.Contracts.Transport;
using Monitor.Samples.Training;
using Monitor.Service;
using Monitor.Tracing;
using Monitor.Tracing.TorchSharp;

namespace Monitor.Cli;

/// <summary>What a demo run produced.</summary>
internal sealed record DemoResult(int ExitCode, long Steps, IReadOnlyList<AlertTransition> Fired, TracerStatistics Tracer, ServiceStatistics Service);

/// <summary>
/// <c>monitor demo</c>: the sample TorchSharp job and the monitor service in one process, connected by the in-process
/// bus (default), librdkafka's mock cluster (<c>--kafka mock</c>) or a real Kafka cluster.
/// </summary>
internal sealed class DemoRunner(DemoOptions options, TextWriter output)
{
    private readonly Lock _console = new();
    private readonly List<AlertTransition> _fired = [];
    private bool _progressLineOpen;

    public bool InteractiveProgress { get; init; }

    public async Task<DemoResult> RunAsync(CancellationToken cancellationToken)
    {
        using MockKafkaCluster? mock = options.Kafka == "mock" ? new MockKafkaCluster() : null;
        string? bootstrap = mock?.BootstrapServers ?? options.Kafka;
        var bus = new InProcessBus();
        // A fresh group per demo run on a shared cluster: the demo analyses its own run from the start.
        string group = "monitor-demo-" + Guid.NewGuid().ToString("N")[..8];
        IRecordConsumer consumer = bootstrap is null
            ? bus.CreateConsumer(MonitorTopics.Steps)
            : new KafkaRecordConsumer(new KafkaConsumerOptions { BootstrapServers = bootstrap, Topic = MonitorTopics.Steps, GroupId = group });
        IRecordProducer deadLetters = bootstrap is null
            ? bus.CreateProducer()
            : new KafkaRecordProducer(new KafkaProducerOptions { BootstrapServers = bootstrap, ClientId = "monitor-demo-dlq" });

        var serviceOptions = new MonitorServiceOptions { ListenUrl = $"http://127.0.0.1:{options.MetricsPort}" };
        await using var service = new MonitorService(serviceOptions, consumer, deadLetters);
        service.AlertChanged += OnAlert;
        await service.StartAsync(cancellationToken);

        string transport = mock is not null ? $"librdkafka mock cluster at {bootstrap}"
            : bootstrap is not null ? $"Kafka at {bootstrap}"
            : "in-process bus (embedded)";
        Write($"Monitor demo: run '{options.RunId}', {options.Steps} steps, fault {FaultNames.NameOf(options.Fault)}"
            + (options.Fault == Fault.None ? "" : $" from step {options.FaultAt}"));
        Write($"Transport: {transport}");
        Write($"Metrics:   {new Uri(service.BaseAddress!, "metrics")}   (also /healthz, /readyz)");

        IRecordProducer producer = bootstrap is null
            ? bus.CreateProducer()
            : new KafkaRecordProducer(new KafkaProducerOptions { BootstrapServers = bootstrap });
        var tracerOptions = new TracerOptions { RunId = options.RunId, QueueCapacity = 1024 };
        await using var tracer = new StepTracer(tracerOptions, producer, ownsProducer: true);
        var job = new TrainingJob(new TrainingJobOptions
        {
            Steps = options.Steps,
            Fault = options.Fault,
            FaultAt = options.FaultAt,
            StepDelay = options.StepDelay,
        });

        var clock = Stopwatch.StartNew();
        long steps = await job.RunAsync(
            (model, optimizer) => TorchSharpTracer.Attach(tracer, model, optimizer),
            progress => Progress(progress, tracer, service, clock),
            cancellationToken: cancellationToken);
        double trainingSeconds = clock.Elapsed.TotalSeconds;

        bool flushed = await tracer.FlushAsync(options.DrainTimeout, CancellationToken.None);
        TracerStatistics sent = tracer.Statistics;
        bool drained = await WaitUntilAsync(() => service.Statistics.Consumed >= sent.Delivered, options.DrainTimeout);
        ServiceStatistics analysed = service.Statistics;
        EndProgressLine();

        Write(string.Create(CultureInfo.InvariantCulture,
            $"Summary: {steps} steps in {trainingSeconds:F1} s; records sent {sent.Delivered}, analysed {analysed.Decoded}, undecodable {analysed.Failed}, dropped on the worker {sent.Lost}"));
        if (_fired.Count == 0)
        {
            Write("Alerts:  none fired");
        }
        else
        {
            foreach (IGrouping<string, AlertTransition> byRule in _fired.GroupBy(a => a.RuleName))
            {
                Write($"Alerts:  {byRule.Key} fired {byRule.Count()}x, first at step {byRule.Min(a => a.Step)} ({string.Join(", ", byRule.Select(a => a.Identity[AlertLabels.Tensor]).Distinct())})");
            }
        }

        int exitCode = 0;
        if (!flushed || !drained)
        {
            Write($"Error: not every record reached the service (sent {sent.Delivered}, analysed {analysed.Consumed}) within {options.DrainTimeout.TotalSeconds:F0} s");
            exitCode = 1;
        }

        return new DemoResult(exitCode, steps, _fired.ToArray(), sent, analysed);
    }

    private void OnAlert(AlertTransition transition)
    {
        if (transition.State != AlertState.Firing && !transition.IsResolution)
        {
            return;
        }

        string what = transition.IsResolution ? "RESOLVED" : "FIRING  ";
        if (transition.State == AlertState.Firing)
        {
            lock (_fired)
            {
                _fired.Add(transition);
            }
        }

        AlertIdentity id = transition.Identity;
        Write(string.Create(CultureInfo.InvariantCulture,
            $"ALERT {what} {transition.RuleName} run={id[AlertLabels.Run]} rank={id[AlertLabels.Rank]} tensor={id[AlertLabels.Tensor]} step={transition.Step} value={transition.Value:G3}: {transition.Description}"));
    }

    private long _lastProgressTicks;

    private void Progress(StepProgress progress, StepTracer tracer, MonitorService service, Stopwatch clock)
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
        TracerStatistics stats = tracer.Statistics;
        string line = string.Create(CultureInfo.InvariantCulture,
            $"step {progress.Step + 1,6}/{options.Steps}  loss {progress.Loss,8:F4}  records/s {stats.Delivered / seconds,7:F0}  analysed {service.Statistics.Decoded,6}  alerts fired {service.Statistics.AlertsFired}{(progress.FaultActive ? "  [fault active]" : "")}");
        lock (_console)
        {
            if (InteractiveProgress)
            {
                output.Write("\r" + line.PadRight(110));
                _progressLineOpen = true;
            }
            else
            {
                output.WriteLine(line);
            }
        }
    }

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
                output.Write("\r" + new string(' ', 110) + "\r");
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
