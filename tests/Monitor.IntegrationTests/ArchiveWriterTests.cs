using Google.Protobuf;
using Microsoft.Extensions.Time.Testing;
using Monitor.Archive;
using Monitor.Contracts;
using Monitor.Contracts.Transport;
using static Monitor.IntegrationTests.ArchiveSupport;

namespace Monitor.IntegrationTests;

/// <summary>The archive's files: layout, atomic visibility, rolling, retention, and when offsets are committed.</summary>
public sealed class ArchiveWriterTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("monitor-archive-").FullName;
    private readonly FakeTimeProvider _clock = new(Start);

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static IEnumerable<T> Items<T>(object? list) => ((System.Collections.IEnumerable)list!).Cast<T>();

    private static string[] Visible(string directory) => [.. Directory.EnumerateFiles(directory, "*.parquet", SearchOption.AllDirectories)];

    [Fact]
    public async Task AppendAsync_KeepsTheFileHidden_UntilItIsClosed_ThenDuckDbReadsEveryRow()
    {
        await using var writer = new ArchiveWriter(new ArchiveOptions { Directory = _directory, MaxFileAge = TimeSpan.FromMinutes(1), TimeProvider = _clock });
        for (long step = 0; step < 10; step++)
        {
            Assert.Equal(0, await writer.AppendAsync(Record("run-a", 1, step), cancellationToken: TestContext.Current.CancellationToken));
        }

        await writer.AppendAsync(Record("run-b", 0, 0), cancellationToken: TestContext.Current.CancellationToken);
        Assert.Empty(Visible(_directory));
        Assert.Equal(2, Directory.EnumerateFiles(_directory, "*.tmp", SearchOption.AllDirectories).Count());
        Assert.Throws<ArchiveReadException>(() => ArchiveFiles.Find(_directory));

        _clock.Advance(TimeSpan.FromSeconds(59));
        Assert.Equal(0, await writer.RollDueAsync(TestContext.Current.CancellationToken));
        _clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(2, await writer.RollDueAsync(TestContext.Current.CancellationToken));

        string[] files = Visible(_directory);
        Assert.Equal(2, files.Length);
        Assert.Empty(Directory.EnumerateFiles(_directory, "*.tmp", SearchOption.AllDirectories));
        Assert.Contains(files, f => f.StartsWith(Path.Combine(_directory, "run-a", "rank-1", "part-20260102T030405000Z-"), StringComparison.Ordinal));
        Assert.Equal(33L, Duck($"SELECT count(*) FROM {Files(_directory)}")[0][0]);
        object?[] gradient = Duck($"SELECT rank, world_size, step, mode, collections, dtype, shape, abs_mean, histogram_layout, histogram_first_bucket, histogram_edges, histogram_counts, raw_values FROM {Files(_directory)} WHERE run_id = 'run-a' AND step = 3 AND tensor = 'fc1.weight.grad'")[0];
        Assert.Equal([1, 4, 3L, "train", "gradients", "float32"], gradient[..6]);
        Assert.Equal([64L, 16L], Items<long>(gradient[6]));
        Assert.Equal(1e-2, (double)gradient[7]!);
        Assert.Equal("log2_magnitude", gradient[8]);
        Assert.Equal(40, gradient[9]);
        // A named layout's edges are not stored in the file; the readers of `steps` (query, export) fill them in.
        Assert.Null(gradient[10]);
        var answer = new StringWriter();
        ArchiveQuery.Run(_directory, "SELECT histogram_edges FROM steps WHERE run_id = 'run-a' AND step = 3 AND tensor = 'fc1.weight.grad'", answer, TestContext.Current.CancellationToken);
        Assert.Equal("histogram_edges\n" + System.Text.Json.JsonSerializer.Serialize(Log2Histogram.Edges.Slice(40, 4).ToArray()).Replace("E-", "E-", StringComparison.Ordinal) + "\n", answer.ToString().Replace("\r", "", StringComparison.Ordinal));
        Assert.Equal([10L, 500L, 514L], Items<long>(gradient[11]));
        Assert.Null(gradient[12]);
        object?[] inputs = Duck($"SELECT collections, histogram_edges, raw_values, raw_total_elements, raw_sample_rows, feature_names FROM {Files(_directory)} WHERE run_id = 'run-b' AND tensor = 'inputs'")[0];
        Assert.Equal("inputs,tabular", inputs[0]);
        Assert.Equal([double.NegativeInfinity, 0, double.PositiveInfinity], Items<double>(inputs[1]));
        Assert.Equal([-1f, 0.5f, 0.5f, 2f], Items<float>(inputs[2]));
        Assert.Equal(4L, inputs[3]);
        Assert.Equal(2, inputs[4]);
        Assert.Equal("x0,x1", inputs[5]);
    }

    [Fact]
    public async Task AppendAsync_RollsBySize_AfterEachRowGroup()
    {
        await using var writer = new ArchiveWriter(new ArchiveOptions { Directory = _directory, MaxFileBytes = 1024, RowGroupRows = 6, TimeProvider = _clock });
        int closed = 0;
        for (long step = 0; step < 20; step++)
        {
            closed += await writer.AppendAsync(Record("big", 0, step), cancellationToken: TestContext.Current.CancellationToken);
        }

        Assert.True(closed >= 5, $"{closed} files closed for 20 records of > 1 KiB each two");
        Assert.Equal(closed, Visible(_directory).Length);
        Assert.All(Visible(_directory), f => Assert.True(new FileInfo(f).Length >= 1024));
        await writer.CloseAllAsync(TestContext.Current.CancellationToken);
        Assert.Equal(60L, Duck($"SELECT count(*) FROM {Files(_directory)}")[0][0]);
        Assert.Equal(writer.Statistics.FilesClosed, Visible(_directory).Length);
    }

    [Fact]
    public async Task DeleteExpired_RemovesFilesOpenedBeforeTheRetention_AndTheirEmptyDirectories()
    {
        await using var writer = new ArchiveWriter(new ArchiveOptions { Directory = _directory, Retention = TimeSpan.FromDays(7), TimeProvider = _clock });
        await writer.AppendAsync(Record("old", 0, 0), cancellationToken: TestContext.Current.CancellationToken);
        await writer.CloseAllAsync(TestContext.Current.CancellationToken);
        _clock.Advance(TimeSpan.FromDays(5));
        await writer.AppendAsync(Record("new", 0, 0), cancellationToken: TestContext.Current.CancellationToken);
        await writer.CloseAllAsync(TestContext.Current.CancellationToken);

        _clock.Advance(TimeSpan.FromDays(2));
        Assert.Equal(0, writer.DeleteExpired());
        _clock.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(1, writer.DeleteExpired());
        Assert.False(Directory.Exists(Path.Combine(_directory, "old")));
        Assert.Single(Visible(_directory), f => f.Contains($"{Path.DirectorySeparatorChar}new{Path.DirectorySeparatorChar}", StringComparison.Ordinal));
    }

    [Fact]
    public async Task StepArchiver_CommitsOffsets_OnlyAfterTheFileHoldingTheRecordIsClosed()
    {
        var bus = new InProcessBus();
        using IRecordProducer producer = bus.CreateProducer();
        var consumer = new RecordingConsumer(bus.CreateConsumer(MonitorTopics.Steps, "archive"));
        await using var archiver = new StepArchiver(consumer, new ArchiveOptions { Directory = _directory, MaxFileAge = TimeSpan.FromMinutes(1), TimeProvider = _clock })
        {
            CheckInterval = TimeSpan.FromMilliseconds(10),
        };
        archiver.Start();
        for (long step = 0; step < 5; step++)
        {
            producer.Produce(MonitorTopics.Steps, "r/0", Record("r", 0, step).ToByteArray(), null, _ => { });
        }

        producer.Produce(MonitorTopics.Steps, "r/0", [0xFF, 0x01], null, _ => { });
        await Eventually.TrueAsync(() => archiver.Statistics.Consumed == 6, "the archiver read all six messages");
        // Several checks pass with the file still open: nothing may be committed.
        await Task.Delay(100, TestContext.Current.CancellationToken);
        Assert.Equal(-1, consumer.Marked);
        Assert.Empty(Visible(_directory));

        _clock.Advance(TimeSpan.FromMinutes(1));
        await Eventually.TrueAsync(() => consumer.Marked == 5, "every offset is marked once the file is closed");
        Assert.Single(Visible(_directory));
        Assert.True(consumer.Commits > 0);
        Assert.Equal(1, archiver.Statistics.Undecodable);
        Assert.Equal(15, archiver.Statistics.Writer.Rows);

        producer.Produce(MonitorTopics.Steps, "r/0", Record("r", 0, 5).ToByteArray(), null, _ => { });
        await Eventually.TrueAsync(() => archiver.Statistics.Consumed == 7, "the archiver read the seventh");
        await archiver.StopAsync();
        Assert.Equal(6, consumer.Marked);
        Assert.Equal(18L, Duck($"SELECT count(*) FROM {Files(_directory)}")[0][0]);
    }

    /// <summary>A real consumer of the bus that also remembers what the archiver marked and how often it committed.</summary>
    private sealed class RecordingConsumer(IRecordConsumer inner) : IRecordConsumer
    {
        private long _marked = -1;
        private int _commits;

        public long Marked => Interlocked.Read(ref _marked);

        public int Commits => Volatile.Read(ref _commits);

        public TransportMessage? Consume(TimeSpan maxWait, CancellationToken cancellationToken) => inner.Consume(maxWait, cancellationToken);

        public void MarkProcessed(TransportMessage message)
        {
            Interlocked.Exchange(ref _marked, message.Offset);
            inner.MarkProcessed(message);
        }

        public void Commit()
        {
            Interlocked.Increment(ref _commits);
            inner.Commit();
        }

        public IReadOnlyList<PartitionLag> GetLag() => inner.GetLag();

        public void Dispose() => inner.Dispose();
    }
}
