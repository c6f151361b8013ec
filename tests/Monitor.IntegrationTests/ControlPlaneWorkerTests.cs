using System.Collections.Concurrent;
using System.Diagnostics;
using Monitor.Contracts;
using Monitor.Contracts.Transport;
using Monitor.Contracts.V1;
using Monitor.ControlPlane;
using Monitor.Tracing;
using Monitor.Tracing.Control;
using StackExchange.Redis;

namespace Monitor.IntegrationTests;

/// <summary>
/// A worker's control loop (<see cref="TracerControlPlane"/>) against a real redis-server and Garnet: a selection
/// stored for rank 1 reaches its tracer at the next step, the others keep theirs; refusals are reported; Redis
/// going away does not disturb training.
/// </summary>
public sealed class ControlPlaneWorkerTests
{
    private static readonly CollectionSet Gradients = CollectionSet.Of(Collection.Gradients);
    private static readonly CollectionSet Losses = CollectionSet.Of(Collection.Losses);
    private static readonly string[] TensorNames = ["fc1.weight.grad", "fc2.weight.grad", "fc2.bias.grad"];

    private static TraceSelection Fc2Gradients => new()
    {
        Collections = new Dictionary<string, CollectionFilter> { ["gradients"] = new() { Include = ["^fc2\\."] } },
        Schedule = new TraceSchedule { EverySteps = 1 },
    };

    [Theory, RedisBackends]
    public async Task SelectionForRank1_IsAppliedAtTheNextStep_AndRanks0And2KeepTheirs(string backend)
    {
        await using IRedisEndpoint redis = await RedisEndpoints.StartAsync(backend, TestContext.Current.CancellationToken);
        var keys = new RunKeys();
        await using var workers = await Workers.StartAsync(keys.Run, redis.ConnectionString, ranks: 3);
        await using ConnectionMultiplexer client = await RedisEndpoints.ConnectAsync(redis);
        var store = new SelectionStore(client);
        await Eventually.TrueAsync(() => workers.Producer.Records.Count > 30, "the ranks are training");

        TraceSelection stored = await store.SetAsync(keys.Run, Fc2Gradients, new SelectionChange("test", "test"), [1], TestContext.Current.CancellationToken);
        long setAt = Stopwatch.GetTimestamp();
        await Eventually.TrueAsync(() => workers.Producer.Records.Any(r => r.Rank == 1 && r.SelectionVersion == stored.Version), "rank 1 traces under the new version");
        TimeSpan latency = Stopwatch.GetElapsedTime(setAt);
        // Let every rank take a few more steps.
        long mark = workers.Producer.Records.Count;
        await Eventually.TrueAsync(() => workers.Producer.Records.Count > mark + 15, "more steps");

        StepRecord[] records = [.. workers.Producer.Records];
        StepRecord firstNew = records.First(r => r.Rank == 1 && r.SelectionVersion == stored.Version);
        Assert.Equal(["fc2.bias.grad", "fc2.weight.grad"], firstNew.Tensors.Select(t => t.Name).Order(StringComparer.Ordinal));
        // Applied at a step boundary: rank 1's records switch versions once and never go back.
        long[] rank1Versions = [.. records.Where(r => r.Rank == 1).Select(r => r.SelectionVersion)];
        Assert.Equal(rank1Versions.Order(), rank1Versions);
        Assert.All(records.Where(r => r.Rank != 1), r => Assert.Equal(0, r.SelectionVersion));
        Assert.All(records.Where(r => r.Rank != 1), r => Assert.Equal(4, r.Tensors.Count));
        // One step (20 ms here) plus the notice's round trip, with a wide margin for a loaded machine.
        Assert.True(latency < TimeSpan.FromSeconds(2), $"applied after {latency.TotalMilliseconds:F0} ms");

        await Eventually.TrueAsync(() => store.CatalogAsync(keys.Run, 2).GetAwaiter().GetResult().Count == 4, "rank 2 published its catalog");
        IReadOnlyList<CatalogEntry> catalog = await store.CatalogAsync(keys.Run, 2);
        Assert.Equal(["fc1.weight.grad", "fc2.bias.grad", "fc2.weight.grad", "loss"], catalog.Select(c => c.Name));
        Assert.Equal(["gradients"], catalog[0].Collections);
        await Eventually.TrueAsync(() => store.WorkersAsync(keys.Run).GetAwaiter().GetResult().Any(w => w.Rank == 1 && w.SelectionVersion == stored.Version), "rank 1's heartbeat shows the version");
        IReadOnlyList<WorkerStatus> heartbeats = await store.WorkersAsync(keys.Run);
        Assert.Equal([0, 1, 2], heartbeats.Select(h => h.Rank));
        Assert.All(heartbeats, h => Assert.Null(h.RejectedVersion));
    }

    [Theory, RedisBackends]
    public async Task ClearedRankSelection_TheRankGoesBackToTheSelectionItStartedWith(string backend)
    {
        await using IRedisEndpoint redis = await RedisEndpoints.StartAsync(backend, TestContext.Current.CancellationToken);
        var keys = new RunKeys();
        await using var workers = await Workers.StartAsync(keys.Run, redis.ConnectionString, ranks: 2);
        await using ConnectionMultiplexer client = await RedisEndpoints.ConnectAsync(redis);
        var store = new SelectionStore(client);
        await Eventually.TrueAsync(() => workers.Producer.Records.Count > 10, "the ranks are training");
        TraceSelection stored = await store.SetAsync(keys.Run, Fc2Gradients, new SelectionChange("test", "test"), [1], TestContext.Current.CancellationToken);
        await Eventually.TrueAsync(() => workers.Producer.Records.Any(r => r.Rank == 1 && r.SelectionVersion == stored.Version), "rank 1 traces under its own selection");

        // The run has no selection of its own: `trace clear` leaves rank 1 with nothing stored, so it goes back to its start.
        Assert.True(await store.ClearRankAsync(keys.Run, 1, new SelectionChange("test", "test"), TestContext.Current.CancellationToken));
        long mark = workers.Producer.Records.Count;
        await Eventually.TrueAsync(() => workers.Producer.Records.Skip((int)mark).Any(r => r.Rank == 1 && r.SelectionVersion == 0), "rank 1 traces under its starting selection again");

        StepRecord[] rank1 = [.. workers.Producer.Records.Where(r => r.Rank == 1)];
        StepRecord back = rank1.Last();
        Assert.Equal(0, back.SelectionVersion);
        Assert.Equal(4, back.Tensors.Count);
        Assert.Equal(0, workers.Tracers[1].Statistics.SelectionVersion);
        Assert.Equal(2, workers.Controls[1].Statistics.Applied);
        Assert.All(workers.Producer.Records.Where(r => r.Rank == 0), r => Assert.Equal(0, r.SelectionVersion));
    }

    [Theory, RedisBackends]
    public async Task UnusableStoredSelection_IsRefused_ThePreviousStays_AndTheRefusalIsReported(string backend)
    {
        await using IRedisEndpoint redis = await RedisEndpoints.StartAsync(backend, TestContext.Current.CancellationToken);
        var keys = new RunKeys();
        await using var workers = await Workers.StartAsync(keys.Run, redis.ConnectionString, ranks: 1);
        await using ConnectionMultiplexer client = await RedisEndpoints.ConnectAsync(redis);
        // Written past the store's validation, as a newer writer or a hand edit could: a pattern this worker cannot run.
        await client.GetDatabase().StringSetAsync(ControlPlaneKeys.Selection(keys.Run),
            """{"version":41,"collections":{"gradients":{"include":["(a)\\1"]}}}""");
        await client.GetSubscriber().PublishAsync(RedisChannel.Literal(ControlPlaneKeys.Control(keys.Run)), "{}");

        var store = new SelectionStore(client);
        await Eventually.TrueAsync(() => store.WorkersAsync(keys.Run).GetAwaiter().GetResult().Any(w => w.RejectionReason is not null), "the refusal is in the heartbeat");

        WorkerStatus status = (await store.WorkersAsync(keys.Run)).Single();
        Assert.Equal(0, status.SelectionVersion);
        Assert.Contains("collections.gradients.include[0]", status.RejectionReason, StringComparison.Ordinal);
        Assert.Equal(0, workers.Tracers[0].Statistics.SelectionVersion);
        Assert.Equal(1, workers.Controls[0].Statistics.Rejected);
        long before = workers.Producer.Records.Count;
        await Eventually.TrueAsync(() => workers.Producer.Records.Count > before + 5, "training goes on under the previous selection");
        Assert.All(workers.Producer.Records, r => Assert.Equal(0, r.SelectionVersion));
    }

    [Theory, RedisBackends]
    public async Task RedisStoppedMidRun_TrainingContinues_AndAfterRestartANewSelectionIsApplied(string backend)
    {
        await using IRedisEndpoint redis = await RedisEndpoints.StartAsync(backend, TestContext.Current.CancellationToken);
        var keys = new RunKeys();
        await using var workers = await Workers.StartAsync(keys.Run, redis.ConnectionString, ranks: 1, pollInterval: TimeSpan.FromMilliseconds(500));
        await Eventually.TrueAsync(() => workers.Controls[0].IsConnected && workers.Producer.Records.Count > 10, "connected and training");

        await redis.StopAsync(TestContext.Current.CancellationToken);
        long atStop = workers.Tracers[0].Statistics.StepsSeen;
        await Eventually.TrueAsync(() => !workers.Controls[0].IsConnected, "the worker noticed");
        await Eventually.TrueAsync(() => workers.Tracers[0].Statistics.StepsSeen > atStop + 40, "training continues without Redis");
        Assert.Null(workers.LoopFault);
        Assert.Equal(0, workers.Tracers[0].Statistics.Faults);

        await redis.StartAsync(TestContext.Current.CancellationToken);
        await using ConnectionMultiplexer client = await RedisEndpoints.ConnectAsync(redis);
        TraceSelection stored = await new SelectionStore(client).SetAsync(keys.Run, Fc2Gradients, new SelectionChange("test", "test"), cancellationToken: TestContext.Current.CancellationToken);
        await Eventually.TrueAsync(() => workers.Producer.Records.Any(r => r.SelectionVersion == stored.Version), "the selection stored after the restart is applied", seconds: 60);
        Assert.Null(workers.LoopFault);
    }

    [Fact]
    public async Task CatastrophicBacktrackingPattern_CannotHangAWorker()
    {
        await using IRedisEndpoint redis = await RedisEndpoints.StartAsync(RedisEndpoints.Garnet, TestContext.Current.CancellationToken);
        var keys = new RunKeys();
        await using ConnectionMultiplexer client = await RedisEndpoints.ConnectAsync(redis);
        var selection = new TraceSelection { Collections = new Dictionary<string, CollectionFilter> { ["gradients"] = new() { Include = ["(a+)+$"] } } };
        TraceSelection stored = await new SelectionStore(client).SetAsync(keys.Run, selection, new SelectionChange("test", "test"), cancellationToken: TestContext.Current.CancellationToken);
        string longName = new string('a', 100_000) + "!";
        var producer = new CapturingProducer();
        await using var tracer = new StepTracer(new TracerOptions { RunId = keys.Run }, producer);
        await using var control = TracerControlPlane.Start(tracer, new ControlPlaneOptions { Redis = redis.ConnectionString });
        await Eventually.TrueAsync(() => tracer.Statistics.SelectionVersion == stored.Version, "the worker took the selection");

        Task<bool> matching = Task.Run(() =>
        {
            tracer.BeginStep(1_000_000);
            bool wanted = tracer.Wants(longName, Gradients);
            tracer.EndStep();
            return wanted;
        }, TestContext.Current.CancellationToken);

        // A backtracking engine needs astronomically long for this input; the non-backtracking one is linear.
        Assert.False(await matching.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
    }

    /// <summary>Decodes every record produced; delivers at once.</summary>
    private sealed class CapturingProducer : IRecordProducer
    {
        private readonly ConcurrentQueue<StepRecord> _records = new();

        public ConcurrentQueue<StepRecord> Records => _records;

        public void Produce(string topic, string key, byte[] value, IReadOnlyList<KeyValuePair<string, byte[]>>? headers, Action<DeliveryReport> onDelivery)
        {
            Assert.True(StepRecordDecoder.TryDecode(value, out StepRecord? record, out DecodeError error), error.ToString());
            _records.Enqueue(record);
            onDelivery(new DeliveryReport(true, null));
        }

        public int Flush(TimeSpan timeout) => 0;

        public void Dispose()
        {
        }
    }

    [Theory, RedisBackends]
    public async Task Worker_StoresItsRunMetadataAndItsArtifactEvents_InTheControlPlane(string backend)
    {
        await using IRedisEndpoint redis = await RedisEndpoints.StartAsync(backend, TestContext.Current.CancellationToken);
        var keys = new RunKeys();
        await using var workers = await Workers.StartAsync(keys.Run, redis.ConnectionString, ranks: 2);
        await using ConnectionMultiplexer client = await RedisEndpoints.ConnectAsync(redis);
        var store = new SelectionStore(client);
        await Eventually.TrueAsync(() => store.MetadataAsync(keys.Run).GetAwaiter().GetResult().Count == 2, "both ranks stored their metadata");
        Assert.Equal([0, 1], (await store.MetadataAsync(keys.Run)).Select(m => m.Rank));
        Assert.Contains(keys.Run, await store.RunsAsync());

        workers.Tracers[1].RecordArtifact("/ckpt/step-10.pt", "sha256:cd", 10, ArtifactDirection.Produced);
        await Eventually.TrueAsync(() => store.ArtifactsAsync(keys.Run).GetAwaiter().GetResult().Count == 1, "the artifact event reached Redis");
        ArtifactRecord artifact = Assert.Single(await store.ArtifactsAsync(keys.Run));
        Assert.Equal((1, "/ckpt/step-10.pt", "sha256:cd", 10L, "produced", "checkpoint"), (artifact.Rank, artifact.Path, artifact.Hash, artifact.Step, artifact.Event, artifact.Type));
        // And in the stream, for the archive.
        await Eventually.TrueAsync(() => workers.Producer.Records.Any(r => r.Artifacts.Any(a => a.Path == "/ckpt/step-10.pt")), "a record carries the artifact event");
    }

    /// <summary>Ranks of one run, each with a tracer and a control loop, stepping every 20 ms on a background task.</summary>
    private sealed class Workers : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private Task _loop = Task.CompletedTask;

        public CapturingProducer Producer { get; private init; } = null!;

        public StepTracer[] Tracers { get; private init; } = [];

        public TracerControlPlane[] Controls { get; private init; } = [];

        public Exception? LoopFault { get; private set; }

        public static Task<Workers> StartAsync(string run, string redis, int ranks, TimeSpan? pollInterval = null)
        {
            var producer = new CapturingProducer();
            StepTracer[] tracers = [.. Enumerable.Range(0, ranks).Select(r => new StepTracer(
                new TracerOptions
                {
                    RunId = run,
                    Rank = r,
                    WorldSize = ranks,
                    Selection = new TraceSelection { Collections = new Dictionary<string, CollectionFilter> { ["gradients"] = new(), ["losses"] = new() } },
                },
                producer))];
            CatalogEntry[] catalog =
            [
                .. TensorNames.Select(n => new CatalogEntry(n, [4], "float32", ["gradients"])),
                new CatalogEntry("loss", [], "float64", ["losses"]),
            ];
            var workers = new Workers
            {
                Producer = producer,
                Tracers = tracers,
                Controls = [.. tracers.Select(t => TracerControlPlane.Start(t, new ControlPlaneOptions
                {
                    Redis = redis,
                    PollInterval = pollInterval ?? TimeSpan.FromSeconds(2),
                    HeartbeatInterval = TimeSpan.FromMilliseconds(200),
                }, () => catalog))],
            };
            workers._loop = Task.Run(workers.TrainAsync);
            return Task.FromResult(workers);
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await _loop;
            foreach (TracerControlPlane control in Controls)
            {
                await control.DisposeAsync();
            }

            foreach (StepTracer tracer in Tracers)
            {
                await tracer.DisposeAsync();
            }

            _stop.Dispose();
        }

        private async Task TrainAsync()
        {
            float[] values = [0.1f, -0.2f, 0.3f, -0.4f];
            try
            {
                for (long step = 0; !_stop.IsCancellationRequested; step++)
                {
                    foreach (StepTracer tracer in Tracers)
                    {
                        tracer.BeginStep(step);
                        foreach (string name in TensorNames)
                        {
                            tracer.AddValues(name, Gradients, DType.Float32, [4], values);
                        }

                        tracer.AddScalar("loss", Losses, 1.0 / (step + 1));
                        tracer.EndStep();
                    }

                    await Task.Delay(20, _stop.Token);
                }
            }
            catch (OperationCanceledException)
            {
            }
            catch (Exception ex)
            {
                LoopFault = ex;
            }
        }
    }
}
