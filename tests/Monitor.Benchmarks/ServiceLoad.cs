using System.Diagnostics;
using System.Globalization;
using Google.Protobuf;
using Monitor.Contracts;
using Monitor.Contracts.V1;
using Monitor.Transport.Kafka;

namespace Monitor.Benchmarks;

/// <summary>
/// The design load of issue 13 at one step: 100 ranks × 1,000 tensor summaries (36-bucket histograms, the records of
/// <see cref="AnalysisThroughputBenchmarks"/>), about 0.2 MB a record; two versions of each rank's tensors alternate,
/// so every summary changes from one step to the next, as in training.
/// </summary>
/// <remarks>
/// A record is its header (run, rank, step, sequence, event time) encoded apart and followed by its rank's tensors,
/// encoded once: protobuf reads concatenated messages as one merged message, so the bytes are a valid step record
/// (the breakdown of <see cref="ServiceThroughputBenchmarks"/> decodes every one with <see cref="StepRecordDecoder"/>) and a feeder makes them at memory speed.
/// </remarks>
internal sealed class ServiceLoad
{
    public const int Ranks = 100;
    public const int Tensors = 1_000;
    public const string Run = "svc-bench";

    private readonly byte[][][] _tensors;

    public ServiceLoad()
    {
        var random = new Random(13);
        _tensors = [.. Enumerable.Range(0, 2).Select(_ => Enumerable.Range(0, Ranks).Select(rank =>
        {
            var tensorsOnly = new StepRecord();
            tensorsOnly.Tensors.AddRange(AnalysisThroughputBenchmarks.Record(rank, random, Tensors, Ranks).Tensors);
            return tensorsOnly.ToByteArray();
        }).ToArray())];
    }

    /// <summary>The largest payload, for <see cref="Write"/>'s buffer.</summary>
    public int MaxPayloadBytes => _tensors.SelectMany(v => v).Max(t => t.Length) + 64;

    /// <summary>The encoded record of <paramref name="rank"/> at <paramref name="step"/> (step 0 and up), stamped with the current time, as a worker stamps it.</summary>
    public byte[] Payload(int rank, long step)
    {
        byte[] buffer = new byte[MaxPayloadBytes];
        return buffer[..Write(rank, step, buffer, DateTimeOffset.UtcNow)];
    }

    /// <summary>
    /// Writes the record of <paramref name="rank"/> at <paramref name="step"/>, with event time
    /// <paramref name="eventTime"/>, into <paramref name="buffer"/>; returns its length. The event time matters to a
    /// service that ticks: ranks whose newest record is a day older than its clock are forgotten, their series removed.
    /// </summary>
    public int Write(int rank, long step, byte[] buffer, DateTimeOffset eventTime)
    {
        var header = new StepRecord
        {
            SchemaVersion = StepRecordDecoder.CurrentSchemaVersion, RunId = Run, Rank = (uint)rank, WorldSize = Ranks, Mode = Mode.Train,
            Step = step, Sequence = (ulong)step + 1, EventTimeUnixNanos = (eventTime - DateTimeOffset.UnixEpoch).Ticks * 100,
        };
        byte[] tensors = _tensors[step % 2][rank];
        int headerLength = header.CalculateSize();
        header.WriteTo(buffer.AsSpan(0, headerLength));
        tensors.CopyTo(buffer, headerLength);
        return headerLength + tensors.Length;
    }

    /// <summary>This executable again, with <paramref name="arguments"/> (under <c>dotnet</c> when run as a DLL), its standard streams redirected.</summary>
    public static ProcessStartInfo StartSelf(params string[] arguments)
    {
        string self = Environment.ProcessPath ?? throw new InvalidOperationException("no process path");
        var start = new ProcessStartInfo(self) { RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            start.ArgumentList.Add(typeof(ServiceLoad).Assembly.Location);
        }

        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        return start;
    }

    /// <summary>Resident set size of this process (<c>VmRSS</c> of <c>/proc/self/status</c>), in bytes.</summary>
    public static long ResidentBytes()
    {
        string line = File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
    }

    /// <summary>Collects the managed heap fully (compacting, finalizers run), so RSS reflects what is live.</summary>
    public static void CollectEverything()
    {
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
    }
}

/// <summary>
/// A child process (this executable, <c>service-feeder</c>) that hosts a librdkafka mock cluster and produces
/// <see cref="ServiceLoad"/> steps into <see cref="MonitorTopics.Steps"/> on request with the tracer's real Kafka
/// producer (zstd, as workers send), so neither the brokers nor the producer run in the process whose CPU time and
/// memory are measured.
/// </summary>
/// <remarks>
/// Protocol on its standard streams: it writes <c>bootstrap HOST:PORT</c>, then answers each line <c>produce STEP
/// FIRST COUNT</c> (the records of ranks FIRST to FIRST+COUNT-1 at STEP) with <c>produced</c> once the producer has
/// flushed them; it exits when its standard input closes. The mock cluster keeps only a bounded tail of each
/// partition (records beyond it are dropped unread), so the measuring side asks for a quarter of a step at a time and
/// only when the service has read all but the quarter before.
/// </remarks>
internal sealed class ServiceFeeder : IDisposable
{
    private readonly Process _process;

    private ServiceFeeder(Process process, string bootstrap)
    {
        _process = process;
        BootstrapServers = bootstrap;
    }

    public string BootstrapServers { get; }

    /// <summary>Starts the child; it sends with the tracer's default compression (zstd) unless <paramref name="compressed"/> is false.</summary>
    public static ServiceFeeder Start(bool compressed = true)
    {
        Process process = Process.Start(ServiceLoad.StartSelf("service-feeder", compressed ? "zstd" : "none")) ?? throw new InvalidOperationException("the feeder did not start");
        string? first = process.StandardOutput.ReadLine();
        if (first is null || !first.StartsWith("bootstrap ", StringComparison.Ordinal))
        {
            process.Kill();
            throw new InvalidOperationException($"the feeder said '{first}' instead of its bootstrap servers");
        }

        return new ServiceFeeder(process, first["bootstrap ".Length..]);
    }

    /// <summary>Asks for the records of ranks [<paramref name="first"/>, first + count) at <paramref name="step"/> without waiting; see <see cref="WaitProduced"/>.</summary>
    public void Produce(long step, int first, int count) => _process.StandardInput.WriteLine(string.Create(CultureInfo.InvariantCulture, $"produce {step} {first} {count}"));

    /// <summary>Waits for the answer to one <see cref="Produce"/>.</summary>
    public void WaitProduced()
    {
        string? line = _process.StandardOutput.ReadLine();
        if (line != "produced")
        {
            throw new InvalidOperationException($"the feeder said '{line}' instead of 'produced'");
        }
    }

    public void Dispose()
    {
        _process.StandardInput.Close();
        if (!_process.WaitForExit(30_000))
        {
            _process.Kill();
        }

        _process.Dispose();
    }

    /// <summary>The child's side.</summary>
    public static int RunChild(string compression)
    {
        var load = new ServiceLoad();
        using var cluster = new MockKafkaCluster();
        using var producer = new KafkaRecordProducer(new KafkaProducerOptions
        {
            BootstrapServers = cluster.BootstrapServers, ClientId = "service-feeder",
            Compression = compression == "none" ? Confluent.Kafka.CompressionType.None : Confluent.Kafka.CompressionType.Zstd,
        });
        string[] keys = [.. Enumerable.Range(0, ServiceLoad.Ranks).Select(rank => RecordKey.Format(ServiceLoad.Run, rank))];
        long failed = 0;
        Console.WriteLine("bootstrap " + cluster.BootstrapServers);
        while (Console.ReadLine() is { } line)
        {
            string[] parts = line.Split(' ');
            long step = long.Parse(parts[1], CultureInfo.InvariantCulture);
            int first = int.Parse(parts[2], CultureInfo.InvariantCulture);
            int count = int.Parse(parts[3], CultureInfo.InvariantCulture);
            for (int rank = first; rank < first + count; rank++)
            {
                producer.Produce(MonitorTopics.Steps, keys[rank], load.Payload(rank, step), null, report =>
                {
                    if (!report.Delivered)
                    {
                        Interlocked.Increment(ref failed);
                    }
                });
            }

            producer.Flush(TimeSpan.FromMinutes(1));
            Console.WriteLine(Interlocked.Read(ref failed) == 0 ? "produced" : $"failed {failed} deliveries");
        }

        return 0;
    }
}
