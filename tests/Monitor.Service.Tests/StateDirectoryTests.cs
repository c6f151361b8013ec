using System.Buffers;
using Microsoft.Extensions.Time.Testing;
using Monitor.Analysis;
using Monitor.Analysis.Rules;
using Monitor.Contracts;
using Monitor.Contracts.Transport;
using Monitor.Contracts.V1;
using Monitor.Service.State;
using Monitor.Transport.Kafka;

namespace Monitor.Service.Tests;

/// <summary>
/// The <c>--state-dir</c> store (generations written atomically, the newest readable one read back) and the service
/// around it: offsets are handed to the consumer only once a saved state reflects them, and a restart resumes there.
/// </summary>
public sealed class StateDirectoryTests : IDisposable
{
    private static readonly StateIdentity Identity = new(AnalysisEngine.SnapshotSchemaVersion, "g", MonitorTopics.Steps);
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "state-tests-" + Guid.NewGuid().ToString("N")[..8]);
    // Just after the harness records' event times, so the idle TTL does not forget their rank.
    private readonly FakeTimeProvider _time = new(DateTimeOffset.FromUnixTimeSeconds(1_700_000_010));

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [Fact]
    public void Save_KeepsTheTwoNewestGenerations_AndOpenReadsTheNewest()
    {
        (StateDirectory store, StoredState? empty) = StateDirectory.Open(_directory, Identity, _time, out _);
        using (store)
        {
            Assert.Null(empty);
            for (long next = 1; next <= 3; next++)
            {
                store.Save(Offsets(next), [("r", 0)], (run, rank, output) => output.Write(new byte[] { (byte)next, 1, 2 }), []);
            }
        }

        Assert.Equal(["gen-0000000002", "gen-0000000003"], Directory.GetDirectories(_directory).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        (StateDirectory reopened, StoredState? state) = StateDirectory.Open(_directory, Identity, _time, out IReadOnlyList<string> problems);
        using (reopened)
        {
            Assert.Empty(problems);
            Assert.Equal(3, state!.Generation);
            Assert.Equal(3, state.NextOffsets[(MonitorTopics.Steps, 0)]);
            StoredKey key = Assert.Single(state.Keys);
            Assert.Equal(("r", 0u), (key.Run, key.Rank));
            Assert.Equal([3, 1, 2], key.Snapshot!.Value.ToArray());
        }
    }

    [Fact]
    public void Open_WithACorruptNewestCheckpoint_UsesTheGenerationBefore_AndDeletesAnInterruptedSave()
    {
        (StateDirectory store, _) = StateDirectory.Open(_directory, Identity, _time, out _);
        using (store)
        {
            store.Save(Offsets(5), [], (_, _, _) => { }, []);
            store.Save(Offsets(9), [], (_, _, _) => { }, []);
        }

        File.WriteAllText(Path.Combine(_directory, "gen-0000000002", "checkpoint.json"), "{ \"format\": 1, \"sch");
        Directory.CreateDirectory(Path.Combine(_directory, "gen-0000000003.tmp"));
        (StateDirectory reopened, StoredState? state) = StateDirectory.Open(_directory, Identity, _time, out IReadOnlyList<string> problems);
        using (reopened)
        {
            Assert.Contains("gen-0000000002", Assert.Single(problems), StringComparison.Ordinal);
            Assert.Equal(1, state!.Generation);
            Assert.Equal(5, state.NextOffsets[(MonitorTopics.Steps, 0)]);
            Assert.False(Directory.Exists(Path.Combine(_directory, "gen-0000000003.tmp")));
            // The next save does not reuse the number of the unreadable generation.
            reopened.Save(Offsets(10), [], (_, _, _) => { }, []);
            Assert.True(Directory.Exists(Path.Combine(_directory, "gen-0000000003")));
        }
    }

    [Fact]
    public void Open_WhileAnotherStoreHoldsTheDirectory_OrWithAnotherTopic_Refuses()
    {
        (StateDirectory store, _) = StateDirectory.Open(_directory, Identity, _time, out _);
        using (store)
        {
            StateDirectoryException locked = Assert.Throws<StateDirectoryException>(() => StateDirectory.Open(_directory, Identity, _time, out _));
            Assert.Contains("in use by another process", locked.Message, StringComparison.Ordinal);
            store.Save(Offsets(1), [], (_, _, _) => { }, []);
        }

        StateDirectoryException other = Assert.Throws<StateDirectoryException>(() => StateDirectory.Open(_directory, Identity with { Topic = "other" }, _time, out _));
        Assert.Contains("not of group 'g' on topic 'other'", other.Message, StringComparison.Ordinal);
        StateDirectoryException schema = Assert.Throws<StateDirectoryException>(() => StateDirectory.Open(_directory, Identity with { SchemaVersion = 99 }, _time, out _));
        Assert.Contains("schema version 1", schema.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Service_CommitsOnlyWhatTheSavedStateReflects_AndResumesAfterIt_WithTheWindowsItHad()
    {
        var options = new MonitorServiceOptions
        {
            ListenUrl = "http://127.0.0.1:0",
            StateDirectory = _directory,
            StateInterval = TimeSpan.FromMinutes(1),
            LagInterval = TimeSpan.FromMilliseconds(20),
            TimeProvider = _time,
        };
        RuleBinding[] rules = [new RuleBinding { Rule = new VanishingGradientRule { WindowSteps = 3 } }];
        var first = new ScriptedConsumer([Vanishing(0), Vanishing(1)]);
        await using (var service = new MonitorService(options, first, new InProcessBus().CreateProducer(), rules: rules))
        {
            await service.StartAsync(TestContext.Current.CancellationToken);
            await Eventually.TrueAsync(() => service.Statistics.Processed == 2, "both records were processed");
            Assert.Empty(first.Marked);

            _time.Advance(options.StateInterval);
            await Eventually.TrueAsync(() => first.Marked.Contains(1), "the saved state's offsets were handed to the consumer");
            Assert.Null(first.StartOffsets);
        }

        var second = new ScriptedConsumer([Vanishing(0), Vanishing(1), Vanishing(2)]);
        var alerts = new System.Collections.Concurrent.ConcurrentQueue<AlertTransition>();
        await using (var service = new MonitorService(options, second, new InProcessBus().CreateProducer(), rules: rules))
        {
            service.AlertChanged += alerts.Enqueue;
            await service.StartAsync(TestContext.Current.CancellationToken);
            Assert.Equal(2, second.StartOffsets![(MonitorTopics.Steps, 0)]);
            await Eventually.TrueAsync(() => service.Statistics.Processed == 1, "the one new record was processed");
            await Eventually.TrueAsync(() => !alerts.IsEmpty, "the alert changed");
            // Steps 0 and 1 came with the restored window: step 2 fills it.
            AlertTransition fired = alerts.First();
            Assert.Equal((AlertState.Firing, 2L), (fired.State, fired.Step));
        }
    }

    private static Dictionary<(string Topic, int Partition), long> Offsets(long next) => new() { [(MonitorTopics.Steps, 0)] = next };

    private static TransportMessage Vanishing(long step) => new()
    {
        Topic = MonitorTopics.Steps,
        Partition = 0,
        Offset = step,
        Key = "r/0",
        Value = Google.Protobuf.MessageExtensions.ToByteArray(ServiceHarness.Record("r", 0, step, ("fc1.weight.grad", Collection.Gradients, 1e-12))),
    };

    /// <summary>One partition of fixed records; a start offset skips those before it, as a seek does.</summary>
    private sealed class ScriptedConsumer(IReadOnlyList<TransportMessage> records) : IRecordConsumer, IPositionedConsumer
    {
        private int _next;

        public string GroupId => "g";

        public IReadOnlyDictionary<(string Topic, int Partition), long>? StartOffsets { get; private set; }

        public System.Collections.Concurrent.ConcurrentBag<long> Marked { get; } = [];

        public void StartAt(IReadOnlyDictionary<(string Topic, int Partition), long> nextOffsets)
        {
            StartOffsets = nextOffsets;
            _next = (int)nextOffsets.GetValueOrDefault((MonitorTopics.Steps, 0));
        }

        public TransportMessage? Consume(TimeSpan maxWait, CancellationToken cancellationToken)
        {
            if (_next < records.Count)
            {
                return records[_next++];
            }

            cancellationToken.WaitHandle.WaitOne(TimeSpan.FromMilliseconds(Math.Min(20, maxWait.TotalMilliseconds)));
            return null;
        }

        public void MarkProcessed(TransportMessage message) => Marked.Add(message.Offset);

        public void Commit()
        {
        }

        public IReadOnlyList<PartitionLag> GetLag() => [];

        public void Dispose()
        {
        }
    }
}
