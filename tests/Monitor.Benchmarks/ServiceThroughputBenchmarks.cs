using System.Diagnostics;
using System.Globalization;
using Monitor.Analysis;
using Monitor.Contracts;
using Monitor.Contracts.V1;
using Monitor.Service;
using Monitor.Service.Rules;
using Monitor.Transport.Kafka;

namespace Monitor.Benchmarks;

/// <summary>
/// The whole service's cost over the librdkafka mock cluster (issue 13, part 5): the real <see cref="MonitorService"/>
/// (default rule set, Prometheus export, <c>/metrics</c> scraped every second) consumes <see cref="ServiceLoad"/> steps
/// (100 ranks × 1,000 tensor summaries) that a <see cref="ServiceFeeder"/> child process produces, and the figures are
/// records and summaries per second of wall time and per second of this process's CPU time (all its threads:
/// librdkafka's fetching and decompression, the pipeline, HTTP; with the split by thread), then the resident set with
/// every rank's series warm, then the CPU the same service spends idle.
/// A breakdown on one thread follows: decoding alone, and the engine alone, on the same records.
/// Targets: at least 1,000,000 summaries per second per core over Kafka, decode included; at most 300 MB RSS.
/// </summary>
/// <remarks>
/// Not a BenchmarkDotNet class: one measurement is minutes of streaming through a child process, and what is
/// measured is CPU time and memory of the process, not the time of a call. Run it with
/// <c>dotnet run -c Release --no-build --project tests/Monitor.Benchmarks -- service-throughput [STEPS]</c>
/// (default 300 measured steps, after at least 60 s of warm-up). It prints a Markdown table.
/// </remarks>
public static class ServiceThroughputBenchmarks
{
    private const int WarmSteps = 10;

    // The service runs for days: measured is its steady state, after tiered compilation has finished with the code
    // that runs once a second (scrapes, ticks, probes: a method is promoted after 30 calls). With 3 warm-up steps (3 s)
    // the JIT's background thread still took a fifth of the measured CPU time; after 60 s, a few percent.
    private static readonly TimeSpan WarmUp = TimeSpan.FromSeconds(60);

    // librdkafka's default fetch.wait.max.ms is 500. Against the mock cluster the consumer then waited about a quarter
    // of a second for each quarter step (the service read 98 records/s, the feeder's lock-step, at 0.1 cores); with
    // 10 ms it reads what the feeder produces as it comes. A Kafka broker answers a fetch as soon as fetch.min.bytes
    // (1) are there, so there the default costs no latency.
    private static readonly Dictionary<string, string> ConsumerProperties = new() { ["fetch.wait.max.ms"] = "10" };
    private const int Chunk = ServiceLoad.Ranks / 4;
    private const long Summaries = (long)ServiceLoad.Ranks * ServiceLoad.Tensors;

    public static int Run(string[] args)
    {
        string steps = args.Length > 0 ? args[0] : "300";
        int measured = int.Parse(steps, CultureInfo.InvariantCulture);
        switch (args.Length > 1 ? args[1] : null)
        {
            case "default":
                Console.WriteLine(MeasureService("default options (2,000 tensor series exported)", 2_000, measured).GetAwaiter().GetResult());
                return 0;
            case "gauges-off":
                Console.WriteLine(MeasureService("per-tensor gauges off (`MaxTensorSeries` 0)", 0, measured).GetAwaiter().GetResult());
                return 0;
            case "gauges-off-changelog":
                Console.WriteLine(MeasureService("per-tensor gauges off, exactly-once state in Kafka (`StateTopic`, commit every 1 s)", 0, measured, changelog: TimeSpan.FromSeconds(1)).GetAwaiter().GetResult());
                return 0;
            case "gauges-off-changelog-5s":
                Console.WriteLine(MeasureService("per-tensor gauges off, exactly-once state in Kafka (`StateTopic`, commit every 5 s)", 0, measured, changelog: TimeSpan.FromSeconds(5)).GetAwaiter().GetResult());
                return 0;
            case "gauges-off-uncompressed":
                Console.WriteLine(MeasureService("per-tensor gauges off, records sent uncompressed", 0, measured, compressed: false).GetAwaiter().GetResult());
                return 0;
            case "breakdown":
                Console.WriteLine(MeasureBreakdown(measured));
                return 0;
        }

        Console.WriteLine($"# Service throughput, {ServiceLoad.Ranks} ranks x {ServiceLoad.Tensors} tensors, at least {WarmUp.TotalSeconds:F0} s and {WarmSteps} steps of warm-up, then {steps} measured steps");
        Console.WriteLine($"processor: {Processor()}, {Environment.ProcessorCount} cores; load before: {File.ReadAllText("/proc/loadavg").Trim()}");
        Console.WriteLine();
        Console.WriteLine("| service | records/s | summaries/s | CPU cores used | summaries/s per core | allocated per summary | GC pauses (of wall time) | GCs gen0/1/2 | RSS before | RSS after | RSS per (rank, tensor) | managed heap | /metrics size |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        // Each part in a process of its own, so one's memory does not count in the next one's resident set.
        foreach (string part in new[] { "default", "gauges-off", "gauges-off-changelog", "gauges-off-changelog-5s", "gauges-off-uncompressed", "breakdown" })
        {
            if (part == "breakdown")
            {
                Console.WriteLine();
            }

            using Process child = Process.Start(ServiceLoad.StartSelf("service-throughput", steps, part)) ?? throw new InvalidOperationException("no child process");
            Console.Write(child.StandardOutput.ReadToEnd());
            child.WaitForExit();
            if (child.ExitCode != 0)
            {
                return child.ExitCode;
            }
        }

        Console.WriteLine($"load after: {File.ReadAllText("/proc/loadavg").Trim()}");
        return 0;
    }

    private static async Task<string> MeasureService(string name, int maxTensorSeries, int steps, bool compressed = true, TimeSpan? changelog = null)
    {
        using var feeder = ServiceFeeder.Start(compressed);
        // The topic exists (auto-created by the first records) before the consumer subscribes.
        feeder.Produce(0, 0, Chunk);
        feeder.WaitProduced();
        ServiceLoad.CollectEverything();
        long rssBefore = ServiceLoad.ResidentBytes();
        var consumer = new KafkaRecordConsumer(new KafkaConsumerOptions
        {
            BootstrapServers = feeder.BootstrapServers, Topic = MonitorTopics.Steps, GroupId = "svc-bench-" + Guid.NewGuid().ToString("N")[..8],
            ExactlyOnce = changelog is not null,
            Properties = ConsumerProperties,
        });
        var deadLetters = new KafkaRecordProducer(new KafkaProducerOptions { BootstrapServers = feeder.BootstrapServers, ClientId = "svc-bench-dlq" });
        string stateTopic = "svc-bench-state-" + Guid.NewGuid().ToString("N")[..8];
        KafkaStateChangelog? state = changelog is not null
            ? new KafkaStateChangelog(new KafkaStateChangelogOptions { BootstrapServers = feeder.BootstrapServers, Topic = stateTopic, TransactionalId = stateTopic })
            : null;
        await using var service = new MonitorService(
            new MonitorServiceOptions { ListenUrl = "http://127.0.0.1:0", MaxTensorSeries = maxTensorSeries, StateTopic = changelog is null ? null : stateTopic,
                CommitInterval = changelog ?? TimeSpan.FromSeconds(1) },
            consumer, deadLetters, changelog: state);
        await service.StartAsync();
        using var http = new HttpClient { BaseAddress = service.BaseAddress };
        using var stopScraping = new CancellationTokenSource();
        long scrapeBytes = 0;
        Task scraper = Task.Run(async () =>
        {
            // As a Prometheus server would, but every second rather than every 15 s.
            while (!stopScraping.IsCancellationRequested)
            {
                scrapeBytes = (await http.GetByteArrayAsync(new Uri("metrics", UriKind.Relative))).Length;
                try
                {
                    await Task.Delay(1000, stopScraping.Token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        });

        long fed = Chunk;
        long warmStart = Stopwatch.GetTimestamp();
        while (fed < WarmSteps * ServiceLoad.Ranks || Stopwatch.GetElapsedTime(warmStart) < WarmUp)
        {
            Feed(feeder, service, fed, fed + ServiceLoad.Ranks);
            fed += ServiceLoad.Ranks;
        }

        using Process self = Process.GetCurrentProcess();
        self.Refresh();
        TimeSpan cpuStart = self.TotalProcessorTime;
        long allocatedStart = GC.GetTotalAllocatedBytes(precise: true);
        TimeSpan pausedStart = GC.GetTotalPauseDuration();
        int[] collectionsStart = [GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2)];
        Dictionary<string, double> threadsStart = ThreadCpu.Snapshot();
        long jittedStart = System.Runtime.JitInfo.GetCompiledMethodCount();
        TimeSpan jitStart = System.Runtime.JitInfo.GetCompilationTime();
        long start = Stopwatch.GetTimestamp();
        Feed(feeder, service, fed, fed + (steps * ServiceLoad.Ranks));
        double wall = Stopwatch.GetElapsedTime(start).TotalSeconds;
        self.Refresh();
        double cpu = (self.TotalProcessorTime - cpuStart).TotalSeconds;
        long allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedStart;
        double paused = (GC.GetTotalPauseDuration() - pausedStart).TotalSeconds;
        string collections = $"{GC.CollectionCount(0) - collectionsStart[0]}/{GC.CollectionCount(1) - collectionsStart[1]}/{GC.CollectionCount(2) - collectionsStart[2]}";
        string threads = ThreadCpu.Describe(threadsStart, ThreadCpu.Snapshot());
        string jitted = JitSince(ref jittedStart, ref jitStart);
        // The same service with nothing to read, for as long: what it spends on its own (polls, ticks, scrapes).
        Dictionary<string, double> idleStart = ThreadCpu.Snapshot();
        self.Refresh();
        TimeSpan idleCpuStart = self.TotalProcessorTime;
        Thread.Sleep(TimeSpan.FromSeconds(Math.Min(wall, 10)));
        self.Refresh();
        double idleCores = (self.TotalProcessorTime - idleCpuStart).TotalSeconds / Math.Min(wall, 10);
        string idleThreads = ThreadCpu.Describe(idleStart, ThreadCpu.Snapshot());
        string idleJitted = JitSince(ref jittedStart, ref jitStart);
        await stopScraping.CancelAsync();
        await scraper;
        ServiceStatistics statistics = service.Statistics;
        if (statistics.Decoded != statistics.Processed || statistics.Failed != 0)
        {
            throw new InvalidOperationException($"not every record was analysed: {statistics}");
        }

        ServiceLoad.CollectEverything();
        long rssAfter = ServiceLoad.ResidentBytes();
        long heap = GC.GetTotalMemory(forceFullCollection: false);
        double records = (double)steps * ServiceLoad.Ranks;
        double summaries = records * ServiceLoad.Tensors;
        return string.Create(CultureInfo.InvariantCulture, $"""
            | {name} | {records / wall:N0} | {summaries / wall:N0} | {cpu / wall:F2} | {summaries / cpu:N0} | {allocated / summaries:N0} B | {paused / wall:P0} | {collections} | {rssBefore / 1e6:F0} MB | {rssAfter / 1e6:F0} MB | {(rssAfter - rssBefore) / (double)Summaries:N0} B | {heap / 1e6:F0} MB | {scrapeBytes / 1e3:N0} KB |

            CPU by thread while measured: {threads}; JIT: {jitted}
            idle afterwards: {idleCores:F3} cores ({idleThreads}); JIT: {idleJitted}
            """);
    }

    /// <summary>What the JIT compiled since the counts given, which it then advances to now.</summary>
    private static string JitSince(ref long methods, ref TimeSpan time)
    {
        long methodsNow = System.Runtime.JitInfo.GetCompiledMethodCount();
        TimeSpan timeNow = System.Runtime.JitInfo.GetCompilationTime();
        string since = string.Create(CultureInfo.InvariantCulture, $"{methodsNow - methods} methods compiled in {(timeNow - time).TotalSeconds:F2} s");
        (methods, time) = (methodsNow, timeNow);
        return since;
    }

    /// <summary>
    /// Records [from, to) (multiples of a quarter step, in step-major order: record r is rank r % 100 at step r / 100) through the feeder, a quarter
    /// of a step at a time, each quarter asked for only once the service has analysed all but the quarter before it
    /// (the mock cluster's bounded partitions would otherwise drop unread records); returns once the service has
    /// analysed them all.
    /// </summary>
    private static void Feed(ServiceFeeder feeder, MonitorService service, long from, long to)
    {
        for (long record = from; record < to; record += Chunk)
        {
            WaitProcessed(service, record - Chunk);
            feeder.Produce(record / ServiceLoad.Ranks, (int)(record % ServiceLoad.Ranks), Chunk);
            feeder.WaitProduced();
        }

        WaitProcessed(service, to);
    }

    private static void WaitProcessed(MonitorService service, long records)
    {
        long deadline = Stopwatch.GetTimestamp() + (120 * Stopwatch.Frequency);
        while (service.Statistics.Processed < records)
        {
            if (Stopwatch.GetTimestamp() > deadline)
            {
                throw new TimeoutException($"the service analysed {service.Statistics.Processed} of {records} records within 120 s (records dropped by the mock cluster?): {service.Statistics}");
            }

            // Not every millisecond: this thread's own polling is counted in the service process's CPU time.
            Thread.Sleep(5);
        }
    }

    /// <summary>Decoding alone and the engine alone, on one thread, on the records the service reads.</summary>
    private static string MeasureBreakdown(int steps)
    {
        var load = new ServiceLoad();
        // Written into one buffer, so the breakdown allocates nothing of its own (a 0.2 MB payload a record would
        // land on the large-object heap and bring full collections into the timings).
        byte[] payload = new byte[load.MaxPayloadBytes];
        ServiceLoad.CollectEverything();
        long rssBefore = ServiceLoad.ResidentBytes();
        var engine = new AnalysisEngine(RuleCatalog.DefaultRules(), TimeProvider.System);
        // The service's reader and the decoder it replaced, on each payload in turn, so both are timed in one process
        // on the same bytes; the engine then analyses the reader's record, as the service does.
        var reader = new StepRecordReader();
        long decodeTicks = 0, readTicks = 0, engineTicks = 0, decodeBytes = 0, readBytes = 0, engineBytes = 0;
        TimeSpan decodePaused = TimeSpan.Zero, readPaused = TimeSpan.Zero, enginePaused = TimeSpan.Zero;
        for (long step = 0; step < WarmSteps + steps; step++)
        {
            bool measured = step >= WarmSteps;
            for (int rank = 0; rank < ServiceLoad.Ranks; rank++)
            {
                int length = load.Write(rank, step, payload, DateTimeOffset.UnixEpoch.AddSeconds(1_700_000_000 + step));
                long allocated0 = GC.GetAllocatedBytesForCurrentThread();
                TimeSpan paused0 = GC.GetTotalPauseDuration();
                long t0 = Stopwatch.GetTimestamp();
                if (!StepRecordDecoder.TryDecode(payload.AsSpan(0, length), out _, out DecodeError error))
                {
                    throw new InvalidOperationException("the load does not decode: " + error);
                }

                long t1 = Stopwatch.GetTimestamp();
                long allocated1 = GC.GetAllocatedBytesForCurrentThread();
                TimeSpan paused1 = GC.GetTotalPauseDuration();
                if (!reader.TryRead(payload.AsSpan(0, length), out StepRecord? record, out error))
                {
                    throw new InvalidOperationException("the load does not read: " + error);
                }

                long t2 = Stopwatch.GetTimestamp();
                long allocated2 = GC.GetAllocatedBytesForCurrentThread();
                TimeSpan paused2 = GC.GetTotalPauseDuration();
                engine.Process(record);
                long t3 = Stopwatch.GetTimestamp();
                long allocated3 = GC.GetAllocatedBytesForCurrentThread();
                TimeSpan paused3 = GC.GetTotalPauseDuration();
                if (measured)
                {
                    decodeTicks += t1 - t0;
                    readTicks += t2 - t1;
                    engineTicks += t3 - t2;
                    decodeBytes += allocated1 - allocated0;
                    readBytes += allocated2 - allocated1;
                    engineBytes += allocated3 - allocated2;
                    decodePaused += paused1 - paused0;
                    readPaused += paused2 - paused1;
                    enginePaused += paused3 - paused2;
                }
            }
        }

        ServiceLoad.CollectEverything();
        long rssEngine = ServiceLoad.ResidentBytes();
        GC.KeepAlive(engine);
        double summaries = (double)steps * Summaries;
        double decodeNs = decodeTicks * 1e9 / Stopwatch.Frequency / summaries;
        double engineNs = engineTicks * 1e9 / Stopwatch.Frequency / summaries;
        double readNs = readTicks * 1e9 / Stopwatch.Frequency / summaries;
        return string.Create(CultureInfo.InvariantCulture, $"""
            | one thread, same records | ns per summary | summaries/s | allocated per summary | of which GC pauses |
            |---|---:|---:|---:|---:|
            | decode and validate, before (`StepRecordDecoder.TryDecode`) | {decodeNs:F0} | {1e9 / decodeNs:N0} | {decodeBytes / summaries:N0} B | {decodePaused.TotalSeconds * 1e9 / summaries:F0} ns |
            | decode and validate, now (`StepRecordReader.TryRead`, the service's) | {readNs:F0} | {1e9 / readNs:N0} | {readBytes / summaries:N0} B | {readPaused.TotalSeconds * 1e9 / summaries:F0} ns |
            | engine (`AnalysisEngine.Process`, default rules) | {engineNs:F0} | {1e9 / engineNs:N0} | {engineBytes / summaries:N0} B | {enginePaused.TotalSeconds * 1e9 / summaries:F0} ns |
            | reader and engine | {readNs + engineNs:F0} | {1e9 / (readNs + engineNs):N0} | | |
            | decoder and engine (before) | {decodeNs + engineNs:F0} | {1e9 / (decodeNs + engineNs):N0} | | |

            engine state of {ServiceLoad.Ranks} x {ServiceLoad.Tensors} warm (RSS growth after a full collection): {(rssEngine - rssBefore) / 1e6:F0} MB, {(rssEngine - rssBefore) / (double)Summaries:N0} B per (rank, tensor)
            """);
    }

    internal static string Processor() =>
        File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown";
}
