using Monitor.Archive;
using Monitor.Contracts.Transport;
using Monitor.Transport.Kafka;
using static Monitor.IntegrationTests.ArchiveSupport;

namespace Monitor.IntegrationTests;

/// <summary>
/// Records read again by the archive (its offsets not committed after the files holding them were closed: a crash
/// between the rename and the commit, or a partition assigned again) are left out, not archived twice: each closed
/// file names the source offsets it holds in its footer, and the next writer of a rank reads them.
/// </summary>
public sealed class ArchiveRedeliveryTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("monitor-archive-redelivery-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    // A hang in librdkafka (a close while a rebalance is pending) fails the test instead of stalling the run.
    [Fact(Timeout = 240_000)]
    public async Task ArchiverRestarted_BeforeItsOffsetsWereCommitted_ReadsTheRecordsAgain_AndArchivesEachOnce()
    {
        CancellationToken timedOut = TestContext.Current.CancellationToken;
        using var cluster = new MockKafkaCluster();
        string topic = "it-archive-redelivery-" + Guid.NewGuid().ToString("N")[..8];
        string group = topic + "-archive";
        KafkaConsumerOptions Options() => FastRebalances(cluster, topic, group);
        ArchiveEndpointsTests.Produce(cluster, topic, 0, 12, 0);

        // The first archiver closes its files (renamed, flushed) but its commits never reach the group: as if it had
        // been killed right after the rename.
        using (var lostCommits = new CommitsNothing(new KafkaRecordConsumer(Options())))
        {
            await using var first = new StepArchiver(lostCommits, new ArchiveOptions { Directory = _directory });
            first.Start();
            await Eventually.TrueAsync(() => first.Statistics.Consumed == 12, "the first archiver read all twelve records");
            await first.StopAsync();
            Assert.Equal(4, first.Statistics.Writer.FilesClosed);
        }

        ArchiveEndpointsTests.Produce(cluster, topic, 12, 8, 0);
        using var consumer = new KafkaRecordConsumer(Options());
        await using var second = new StepArchiver(consumer, new ArchiveOptions { Directory = _directory });
        second.Start();
        await Eventually.TrueAsync(() => second.Statistics.Consumed == 20, "the second archiver read the twelve again and the eight new ones");
        await second.StopAsync();

        timedOut.ThrowIfCancellationRequested();
        Assert.Equal(12, second.Statistics.Writer.DuplicatesSkipped);
        Assert.Equal(8, second.Statistics.Writer.Records);
        // DuckDB, not our reader: every (rank, step, tensor) once, 20 records of 3 tensors.
        object?[] counts = Duck($"SELECT count(*), count(DISTINCT (rank, step, tensor)) FROM {Files(_directory)}")[0];
        Assert.Equal([60L, 60L], counts);
        // Each closed file's footer names the offsets it holds.
        List<object?[]> footers = Duck($"SELECT decode(value) FROM parquet_kv_metadata('{_directory}/**/*.parquet') WHERE decode(key) = '{ArchiveSourceRanges.MetadataKey}'");
        Assert.Equal(8, footers.Count);
        Assert.All(footers, f => Assert.Contains($"\"topic\":\"{topic}\"", (string)f[0]!, StringComparison.Ordinal));
    }

    // A hang in librdkafka (a close while a rebalance is pending) fails the test instead of stalling the run.
    [Fact(Timeout = 240_000)]
    public async Task SecondArchiverJoinsTheGroup_TheFirstClosesTheFilesOfItsRevokedPartitions_AndCommits_SoNoRecordIsArchivedTwice()
    {
        CancellationToken timedOut = TestContext.Current.CancellationToken;
        using var cluster = new MockKafkaCluster();
        string topic = "it-archive-rebalance-" + Guid.NewGuid().ToString("N")[..8];
        string group = topic + "-archive";
        KafkaConsumerOptions Options() => FastRebalances(cluster, topic, group);
        ArchiveEndpointsTests.Produce(cluster, topic, 0, 16, 0);

        using var firstConsumer = new KafkaRecordConsumer(Options());
        await using var first = new StepArchiver(firstConsumer, new ArchiveOptions { Directory = _directory });
        first.Start();
        await Eventually.TrueAsync(() => first.Statistics.Consumed == 16, "the first archiver read all sixteen records");
        // Its files stay open (a minute's age): without the release on revocation the second member would read their
        // records again from the uncommitted offsets and archive them a second time.
        Assert.Equal(0, first.Statistics.Writer.FilesClosed);

        using var secondConsumer = new KafkaRecordConsumer(Options());
        await using var second = new StepArchiver(secondConsumer, new ArchiveOptions { Directory = _directory });
        second.Start();
        await Eventually.TrueAsync(() => second.Partitions.Count > 0 && first.Partitions.Count + second.Partitions.Count == 4, "the group shared the four partitions", seconds: 120);
        Assert.True(first.Statistics.Writer.FilesClosed > 0, "the first archiver closed the files of its revoked partitions");

        ArchiveEndpointsTests.Produce(cluster, topic, 16, 16, 0);
        await Eventually.TrueAsync(() => first.Statistics.Writer.Records + second.Statistics.Writer.Records == 32, "the two archived the sixteen new records too");
        await Eventually.TrueAsync(() => first.Statistics.Consumed + second.Statistics.Consumed == 32 + first.Statistics.Writer.DuplicatesSkipped + second.Statistics.Writer.DuplicatesSkipped, "what was read again was left out");
        // The first member leaves while the second still polls, so the second takes that rebalance: a member that has
        // stopped polling and closes while a rebalance is pending can hang in librdkafka's close.
        await first.StopAsync();
        firstConsumer.Dispose();
        await Eventually.TrueAsync(() => second.Partitions.Count == 4 && second.Partitions.All(p => p.Lag <= 0), "the second member owns the four partitions and has nothing left to read (lag 0, or -1: no position yet)");
        await second.StopAsync();

        timedOut.ThrowIfCancellationRequested();
        // The group may refuse the commit on revocation (the mock cluster does, once the rebalance has begun): then the
        // next owner reads those records again, and every one it read again was left out.
        long readAgain = first.Statistics.Consumed + second.Statistics.Consumed - 32;
        Assert.Equal(readAgain, first.Statistics.Writer.DuplicatesSkipped + second.Statistics.Writer.DuplicatesSkipped);
        output.WriteLine($"records read again after the rebalance, all left out: {readAgain}");
        object?[] counts = Duck($"SELECT count(*), count(DISTINCT (rank, step, tensor)) FROM {Files(_directory)}")[0];
        Assert.Equal([96L, 96L], counts);
    }

    [Fact]
    public async Task Writer_LeavesOutRecordsAtOrBelowTheOffsetsItsRankHasArchived_ByThisWriterOrInClosedFiles()
    {
        var source = (long offset) => new ArchiveSource("steps", 3, offset);
        await using (var first = new ArchiveWriter(new ArchiveOptions { Directory = _directory }))
        {
            for (long step = 0; step < 5; step++)
            {
                await first.AppendAsync(Record("run", 0, step), source(100 + step), TestContext.Current.CancellationToken);
            }

            // Read again while the file is still open (a partition assigned again): left out.
            await first.AppendAsync(Record("run", 0, 3), source(103), TestContext.Current.CancellationToken);
            Assert.Equal(1, first.Statistics.DuplicatesSkipped);
            // Another rank, and a record without a source (the embedded demo), are never left out.
            await first.AppendAsync(Record("run", 1, 0), source(100), TestContext.Current.CancellationToken);
            await first.AppendAsync(Record("run", 0, 2), cancellationToken: TestContext.Current.CancellationToken);
            Assert.Equal(1, first.Statistics.DuplicatesSkipped);
            await first.CloseAllAsync(TestContext.Current.CancellationToken);
        }

        await using var second = new ArchiveWriter(new ArchiveOptions { Directory = _directory });
        for (long step = 2; step < 8; step++)
        {
            await second.AppendAsync(Record("run", 0, step), source(100 + step), TestContext.Current.CancellationToken);
        }

        // Another partition's offsets are not comparable: kept.
        await second.AppendAsync(Record("run", 0, 9), new ArchiveSource("steps", 4, 0), TestContext.Current.CancellationToken);
        await second.CloseAllAsync(TestContext.Current.CancellationToken);
        Assert.Equal(3, second.Statistics.DuplicatesSkipped);
        Assert.Equal(4, second.Statistics.Records);
        List<object?[]> steps = Duck($"SELECT step, count(*) FROM {Files(_directory)} WHERE rank = 0 GROUP BY step ORDER BY step");
        Assert.Equal([0L, 1L, 2L, 3L, 4L, 5L, 6L, 7L, 9L], steps.Select(row => row[0]));
        Assert.Equal([3L, 3L, 6L, 3L, 3L, 3L, 3L, 3L, 3L], steps.Select(row => row[1]));
    }

    [Theory]
    [InlineData("")]
    [InlineData("{}")]
    [InlineData("[{\"topic\":\"t\",\"partition\":1}]")]
    [InlineData("[{\"topic\":null,\"partition\":1,\"first\":1,\"last\":2}]")]
    public void SourceRanges_OfAFooterEntryThatIsNotTheDocumentedJson_AreNone(string entry) =>
        Assert.Empty(ArchiveSourceRanges.Parse(entry));

    [Fact]
    public void SourceRanges_RoundTripThroughTheFooterEntry()
    {
        ArchiveSourceRange[] ranges = [new("monitor.steps", 0, 10, 20), new("monitor.steps", 7, 0, 0)];
        Assert.Equal(ranges, ArchiveSourceRanges.Parse(ArchiveSourceRanges.Metadata(ranges)[ArchiveSourceRanges.MetadataKey]));
    }

    /// <summary>Heartbeats every 500 ms and a 6 s session: a member learns of a rebalance within a second, and one that
    /// left without a word is dropped after 6 s, not librdkafka's 3 s and 45 s.</summary>
    private static KafkaConsumerOptions FastRebalances(MockKafkaCluster cluster, string topic, string group) => new()
    {
        BootstrapServers = cluster.BootstrapServers,
        Topic = topic,
        GroupId = group,
        Properties = new Dictionary<string, string> { ["heartbeat.interval.ms"] = "500", ["session.timeout.ms"] = "6000" },
    };

    /// <summary>A real consumer whose marks and commits are dropped: the group's offsets never move.</summary>
    private sealed class CommitsNothing(IRecordConsumer inner) : IRecordConsumer
    {
        public TransportMessage? Consume(TimeSpan maxWait, CancellationToken cancellationToken) => inner.Consume(maxWait, cancellationToken);

        public void MarkProcessed(TransportMessage message)
        {
        }

        public void Commit()
        {
        }

        public IReadOnlyList<PartitionLag> GetLag() => inner.GetLag();

        public void Dispose() => inner.Dispose();
    }
}
