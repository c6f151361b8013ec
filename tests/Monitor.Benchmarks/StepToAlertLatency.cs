using System.Diagnostics;
using System.Globalization;
using Monitor.Analysis;
using Monitor.Contracts;
using Monitor.Contracts.Transport;
using Monitor.Contracts.V1;
using Monitor.Service;
using Monitor.Tracing;
using Monitor.Transport.Kafka;

namespace Monitor.Benchmarks;

/// <summary>
/// From a worker's <see cref="StepTracer.EndStep"/> of a step whose loss is NaN to the <c>NonFiniteTensor</c> alert
/// firing on the service's <c>/metrics</c> (issue 13, part 5): embedded (the in-process bus, as <c>monitor demo</c>
/// wires it) and over the librdkafka mock cluster (hosted in this process, as <c>monitor demo --kafka mock</c>), each
/// with the tracer's and the service's default options. Target: p99 at most 250 ms embedded.
/// </summary>
/// <remarks>
/// <para>Each trial waits a random 0-20 ms (so steps do not line up with the service's polls), takes the time, ends a
/// step with a NaN loss, and scrapes <c>/metrics</c> in a loop until the firing alert is there; healthy steps then
/// resolve it (the rule resolves at the first healthy step) and the next trial waits until it is gone from
/// <c>/metrics</c>. The time the <see cref="MonitorService.AlertChanged"/> event is raised on the pipeline thread is
/// reported too, so the part the scrape adds is visible.</para>
/// <para>Run: <c>dotnet run -c Release --no-build --project tests/Monitor.Benchmarks -- step-to-alert [TRIALS]</c>
/// (default 200 per transport, after 10 not kept).</para>
/// </remarks>
public static class StepToAlertLatency
{
    private const string LatencyRun = "alert-latency";
    private const int WarmupTrials = 10;
    private const string FiringLine = "monitor_alerts{alertname=\"NonFiniteTensor\",alertstate=\"firing\",severity=\"critical\",run=\"" + LatencyRun + "\"";

    // The mock broker answers a fetch that finds no data only after the consumer's fetch.wait.max.ms (500 ms by
    // default), even when a record arrives meanwhile; a real broker answers as soon as there is data. This variant
    // shortens the wait to show what is the mock's and what is the pipeline's.
    private const string FastFetch = "kafka-mock, fetch.wait.max.ms 10";

    public static int Run(string[] args)
    {
        int trials = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 200;
        Console.WriteLine($"# Step to alert on /metrics, {trials} trials per transport");
        Console.WriteLine($"processor: {ServiceThroughputBenchmarks.Processor()}, {Environment.ProcessorCount} cores; load before: {File.ReadAllText("/proc/loadavg").Trim()}");
        Console.WriteLine();
        Console.WriteLine("| transport | until | p50 | p90 | p99 | max | mean |");
        Console.WriteLine("|---|---|---:|---:|---:|---:|---:|");
        foreach (string transport in new[] { "embedded", "kafka-mock", FastFetch })
        {
            foreach (string row in Measure(transport, trials).GetAwaiter().GetResult())
            {
                Console.WriteLine(row);
            }
        }

        Console.WriteLine($"load after: {File.ReadAllText("/proc/loadavg").Trim()}");
        return 0;
    }

    private static async Task<string[]> Measure(string transport, int trials)
    {
        var bus = new InProcessBus();
        using MockKafkaCluster? mock = transport == "embedded" ? null : new MockKafkaCluster();
        IRecordConsumer consumer = mock is null
            ? bus.CreateConsumer(MonitorTopics.Steps)
            : new KafkaRecordConsumer(new KafkaConsumerOptions
            {
                BootstrapServers = mock.BootstrapServers, Topic = MonitorTopics.Steps, GroupId = "alert-latency",
                Properties = transport == FastFetch ? new Dictionary<string, string> { ["fetch.wait.max.ms"] = "10" } : new Dictionary<string, string>(),
            });
        IRecordProducer deadLetters = mock is null ? bus.CreateProducer()
            : new KafkaRecordProducer(new KafkaProducerOptions { BootstrapServers = mock.BootstrapServers, ClientId = "alert-latency-dlq" });
        IRecordProducer steps = mock is null ? bus.CreateProducer()
            : new KafkaRecordProducer(new KafkaProducerOptions { BootstrapServers = mock.BootstrapServers, ClientId = "alert-latency-rank-0" });
        // As monitor demo sets it.
        await using var service = new MonitorService(new MonitorServiceOptions { ListenUrl = "http://127.0.0.1:0", TickInterval = TimeSpan.FromSeconds(1) }, consumer, deadLetters);
        long firedAt = 0;
        service.AlertChanged += transition =>
        {
            if (transition.RuleName == "NonFiniteTensor" && transition.State == AlertState.Firing)
            {
                Volatile.Write(ref firedAt, Stopwatch.GetTimestamp());
            }
        };
        await service.StartAsync();
        using var http = new HttpClient { BaseAddress = service.BaseAddress };
        await using var tracer = new StepTracer(new TracerOptions { RunId = LatencyRun, Rank = 0, WorldSize = 1 }, steps, ownsProducer: true);
        float[] gradient = [.. Enumerable.Range(0, 4096).Select(i => (i - 2048) * 1e-5f)];
        long step = 0;
        void Step(double loss, out long endedAt)
        {
            tracer.BeginStep(step++);
            tracer.AddValues("fc1.weight.grad", CollectionSet.Of(Collection.Gradients), DType.Float32, [64, 64], gradient);
            tracer.AddScalar("loss", CollectionSet.Of(Collection.Losses), loss);
            endedAt = Stopwatch.GetTimestamp();
            tracer.EndStep();
        }

        async Task<bool> Firing() => (await http.GetStringAsync(new Uri("metrics", UriKind.Relative))).Contains(FiringLine, StringComparison.Ordinal);

        // Until the service reads the rank's records (a Kafka consumer first joins its group).
        long deadline = Stopwatch.GetTimestamp() + (60 * Stopwatch.Frequency);
        while (service.Statistics.Processed < 5)
        {
            Step(1.0, out _);
            Thread.Sleep(20);
            if (Stopwatch.GetTimestamp() > deadline)
            {
                throw new TimeoutException($"the service read no record within 60 s: {service.Statistics}");
            }
        }

        var toMetrics = new double[trials];
        var toEvent = new double[trials];
        // The first trials (not kept) bring the alert path and the scrape of its series through the JIT.
        for (int trial = -WarmupTrials; trial < trials; trial++)
        {
            Thread.Sleep(Random.Shared.Next(0, 21));
            Volatile.Write(ref firedAt, 0);
            Step(double.NaN, out long ended);
            while (!await Firing())
            {
                if (Stopwatch.GetElapsedTime(ended) > TimeSpan.FromSeconds(30))
                {
                    throw new TimeoutException($"trial {trial}: no firing alert on /metrics within 30 s: {service.Statistics}");
                }
            }

            double metricsMilliseconds = Stopwatch.GetElapsedTime(ended).TotalMilliseconds;
            // The gauge is set just before the event is raised, so a scrape can see the alert a moment earlier.
            while (Volatile.Read(ref firedAt) == 0)
            {
                if (Stopwatch.GetElapsedTime(ended) > TimeSpan.FromSeconds(30))
                {
                    throw new TimeoutException($"trial {trial}: the alert is on /metrics but AlertChanged was not raised");
                }

                Thread.Yield();
            }

            if (trial >= 0)
            {
                toMetrics[trial] = metricsMilliseconds;
                toEvent[trial] = Stopwatch.GetElapsedTime(ended, Volatile.Read(ref firedAt)).TotalMilliseconds;
            }

            do
            {
                Step(1.0, out _);
                Thread.Sleep(10);
            }
            while (await Firing());
        }

        return [Row(transport, "firing on /metrics (scraped in a loop)", toMetrics), Row(transport, "AlertChanged raised (pipeline thread)", toEvent)];
    }

    private static string Row(string transport, string until, double[] milliseconds)
    {
        double[] sorted = [.. milliseconds.Order()];
        double Percentile(double p) => sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];
        return string.Create(CultureInfo.InvariantCulture,
            $"| {transport} | {until} | {Percentile(0.5):F1} ms | {Percentile(0.9):F1} ms | {Percentile(0.99):F1} ms | {sorted[^1]:F1} ms | {sorted.Average():F1} ms |");
    }
}
