using System.Diagnostics;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Engines;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Monitor.Cli;
using Monitor.Contracts;
using Monitor.Contracts.Transport;
using Monitor.Contracts.V1;
using Monitor.ControlPlane;
using Monitor.Tracing;
using Monitor.Tracing.Control;
using StackExchange.Redis;

namespace Monitor.Benchmarks;

/// <summary>
/// The control plane's reaction time: from <see cref="SelectionStore.SetAsync"/> (what <c>monitor trace set</c> does)
/// returning to the first step record of rank 1 traced under the new version, while rank 1 trains at one step every
/// 50 ms. Target: p99 within one step plus 100 ms (150 ms). Each invocation stores the next version and waits for it;
/// the measured time includes the store call itself, so it over-states the latency slightly.
/// </summary>
[Config(typeof(LatencyConfig))]
public class ReconfigurationLatencyBenchmarks
{
    private const int StepMilliseconds = 50;
    private const string Run = "bench-latency";

    private IDisposable? _server;
    private ConnectionMultiplexer _client = null!;
    private SelectionStore _store = null!;
    private StepTracer _tracer = null!;
    private TracerControlPlane _control = null!;
    private VersionWatch _watch = null!;
    private Thread _training = null!;
    private volatile bool _stop;
    private int _variant;

    /// <summary><c>garnet</c> (in-process, what the demo embeds) or <c>redis-server</c> (Debian's, a child process).</summary>
    [Params("garnet", "redis-server")]
    public string Backend { get; set; } = "garnet";

    [GlobalSetup]
    public void Setup()
    {
        string connection;
        if (Backend == "garnet")
        {
            var garnet = new EmbeddedRedis();
            _server = garnet;
            connection = garnet.ConnectionString;
        }
        else
        {
            var redis = RedisServerChild.Start();
            _server = redis;
            connection = redis.ConnectionString;
        }

        _client = ConnectionMultiplexer.Connect(connection);
        _store = new SelectionStore(_client);
        _watch = new VersionWatch();
        _tracer = new StepTracer(new TracerOptions { RunId = Run, Rank = 1, WorldSize = 2 }, _watch);
        _control = TracerControlPlane.Start(_tracer, new ControlPlaneOptions { Redis = connection });
        _training = new Thread(Train) { IsBackground = true, Name = "training" };
        _training.Start();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _stop = true;
        _training.Join();
        _control.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _tracer.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _client.Dispose();
        _server?.Dispose();
    }

    /// <summary>A random pause (not measured) so that changes arrive at every phase of the 50 ms step, not just after a record.</summary>
    [IterationSetup]
    public static void RandomPhase() => Thread.Sleep(Random.Shared.Next(0, StepMilliseconds));

    [Benchmark]
    public long TraceSetToFirstRecord()
    {
        // Alternate between two selections so that every invocation is a real change.
        var selection = new TraceSelection
        {
            Collections = new Dictionary<string, CollectionFilter> { ["gradients"] = new() { Include = [_variant++ % 2 == 0 ? "^fc2\\." : "^fc1\\."] } },
            Schedule = new TraceSchedule { EverySteps = 1 },
        };
        long version = _store.SetAsync(Run, selection, new SelectionChange("benchmark", "benchmark"), [1]).GetAwaiter().GetResult().Version;
        _watch.WaitFor(version, TimeSpan.FromSeconds(30));
        return version;
    }

    private void Train()
    {
        CollectionSet gradients = CollectionSet.Of(Collection.Gradients);
        float[] values = [.. Enumerable.Range(0, 4096).Select(i => i * 1e-4f)];
        for (long step = 0; !_stop; step++)
        {
            long start = Stopwatch.GetTimestamp();
            _tracer.BeginStep(step);
            _tracer.AddValues("fc1.weight.grad", gradients, DType.Float32, [64, 64], values);
            _tracer.AddValues("fc2.weight.grad", gradients, DType.Float32, [64, 64], values);
            _tracer.EndStep();
            TimeSpan left = TimeSpan.FromMilliseconds(StepMilliseconds) - Stopwatch.GetElapsedTime(start);
            if (left > TimeSpan.Zero)
            {
                Thread.Sleep(left);
            }
        }
    }

    /// <summary>Transport that notes the selection version of each record it is handed.</summary>
    private sealed class VersionWatch : IRecordProducer
    {
        private long _highest;

        public void WaitFor(long version, TimeSpan timeout)
        {
            var spinner = default(SpinWait);
            long deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
            while (Volatile.Read(ref _highest) < version)
            {
                if (Stopwatch.GetTimestamp() > deadline)
                {
                    throw new TimeoutException($"no record under selection version {version} within {timeout.TotalSeconds} s");
                }

                spinner.SpinOnce();
            }
        }

        public void Produce(string topic, string key, byte[] value, IReadOnlyList<KeyValuePair<string, byte[]>>? headers, Action<DeliveryReport> onDelivery)
        {
            long version = StepRecord.Parser.ParseFrom(value).SelectionVersion;
            long seen;
            while ((seen = Volatile.Read(ref _highest)) < version && Interlocked.CompareExchange(ref _highest, version, seen) != seen)
            {
            }

            onDelivery(new DeliveryReport(true, null));
        }

        public int Flush(TimeSpan timeout) => 0;

        public void Dispose()
        {
        }
    }

    /// <summary>Debian's redis-server as a child process on a free port, without persistence.</summary>
    private sealed class RedisServerChild : IDisposable
    {
        private readonly Process _process;

        private RedisServerChild(Process process, int port)
        {
            _process = process;
            ConnectionString = $"127.0.0.1:{port}";
        }

        public string ConnectionString { get; }

        public static RedisServerChild Start()
        {
            using var probe = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
            probe.Start();
            int port = ((System.Net.IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
            var process = Process.Start(new ProcessStartInfo("redis-server", ["--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            {
                RedirectStandardOutput = true,
                UseShellExecute = false,
            }) ?? throw new InvalidOperationException("redis-server did not start (install it: tests/install-test-servers.sh)");
            process.BeginOutputReadLine();
            var server = new RedisServerChild(process, port);
            long deadline = Stopwatch.GetTimestamp() + (10 * Stopwatch.Frequency);
            while (true)
            {
                try
                {
                    using var client = ConnectionMultiplexer.Connect(server.ConnectionString);
                    client.GetDatabase().Ping();
                    return server;
                }
                catch (RedisConnectionException) when (Stopwatch.GetTimestamp() < deadline)
                {
                    Thread.Sleep(20);
                }
            }
        }

        public void Dispose()
        {
            _process.Kill();
            _process.WaitForExit();
            _process.Dispose();
        }
    }

    private sealed class LatencyConfig : ManualConfig
    {
        public LatencyConfig()
        {
            AddJob(Job.Default.WithToolchain(InProcessEmitToolchain.Instance).WithStrategy(RunStrategy.Monitoring)
                .WithWarmupCount(5).WithIterationCount(200).WithInvocationCount(1).WithUnrollFactor(1));
            AddColumn(StatisticColumn.Median, StatisticColumn.P95, new PercentileColumn(99), StatisticColumn.Max);
        }
    }
}
