using System.Globalization;
using Monitor.Archive;
using Monitor.Contracts;
using Prometheus;

namespace Monitor.Cli;

/// <summary>
/// The archive's Prometheus metrics (<c>monitor_archive_*</c>, listed in the README's archive section), read from a
/// <see cref="StepArchiver"/>'s counters when scraped: the archiver's loop counts with plain interlocked adds, and
/// pays nothing per record for the metrics.
/// </summary>
/// <remarks>
/// Updated by prometheus-net's before-collect callback, on the scraping thread (<see cref="StepArchiver.Statistics"/>
/// and <see cref="StepArchiver.Partitions"/> are thread-safe snapshots). The decode failures by reason exist at 0 from
/// the start, so a panel shows 0 rather than no data; the per-partition series follow the consumer's assignment.
/// </remarks>
internal sealed class ArchiveMetrics
{
    private static readonly DecodeErrorKind[] Kinds = Enum.GetValues<DecodeErrorKind>();

    private readonly StepArchiver _archiver;
    private readonly Counter _consumed, _records, _rows, _bytes, _filesClosed, _filesDeleted, _failed, _writeFailures, _commits, _duplicates;
    private readonly Gauge _filesOpen, _lastCommit, _committedOffset, _lag;
    private readonly Counter.Child[] _failedByKind;
    private readonly Lock _partitionsLock = new();
    private HashSet<(string Topic, string Partition)> _partitions = [];

    /// <summary>Registers the metrics in <paramref name="registry"/>, read from <paramref name="archiver"/> at each scrape.</summary>
    public ArchiveMetrics(CollectorRegistry registry, StepArchiver archiver)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(archiver);
        _archiver = archiver;
        MetricFactory factory = Metrics.WithCustomRegistry(registry);
        _consumed = factory.CreateCounter("monitor_archive_records_consumed_total", "Messages the archive read from the steps topic.");
        _records = factory.CreateCounter("monitor_archive_records_total", "Step records appended to archive files.");
        _rows = factory.CreateCounter("monitor_archive_rows_total", "Rows (one per traced tensor of a record) appended to archive files.");
        _bytes = factory.CreateCounter("monitor_archive_written_bytes_total", "Bytes of the archive files closed (complete, renamed and flushed to disk).");
        _filesClosed = factory.CreateCounter("monitor_archive_files_closed_total", "Archive files closed.");
        _filesDeleted = factory.CreateCounter("monitor_archive_files_deleted_total", "Archive files deleted by retention (and temporary files of crashed writers).");
        _failed = factory.CreateCounter("monitor_archive_records_failed_total", "Records that could not be decoded, left out of the archive, by reason.", "reason");
        _writeFailures = factory.CreateCounter("monitor_archive_write_failures_total", "Write failures; the first one stops the archiver (/healthz answers 503).");
        _commits = factory.CreateCounter("monitor_archive_commits_total", "Offset commits that moved at least one partition forward.");
        _duplicates = factory.CreateCounter("monitor_archive_duplicates_skipped_total", "Records read again (after a crash or a rebalance) and left out because a closed or open file already holds them.");
        _filesOpen = factory.CreateGauge("monitor_archive_files_open", "Archive files being written (one per run and rank with recent records).");
        _lastCommit = factory.CreateGauge("monitor_archive_last_commit_timestamp_seconds", "When the archive last committed offsets (Unix seconds; 0 before the first).");
        _committedOffset = factory.CreateGauge("monitor_archive_committed_offset", "Next offset to read of an assigned partition, as the archive last committed it (records below it are in closed files).", "topic", "partition");
        _lag = factory.CreateGauge("monitor_archive_consumer_lag_records", "Records in an assigned partition after the archive's position.", "topic", "partition");
        // The service's reason labels: the kind in lower case.
        _failedByKind = [.. Kinds.Select(k => _failed.WithLabels(k.ToString().ToLowerInvariant()))];
        registry.AddBeforeCollectCallback(Update);
    }

    private void Update()
    {
        StepArchiverStatistics statistics = _archiver.Statistics;
        _consumed.IncTo(statistics.Consumed);
        _records.IncTo(statistics.Writer.Records);
        _rows.IncTo(statistics.Writer.Rows);
        _bytes.IncTo(statistics.Writer.BytesClosed);
        _filesClosed.IncTo(statistics.Writer.FilesClosed);
        _filesDeleted.IncTo(statistics.Writer.FilesDeleted);
        _writeFailures.IncTo(statistics.Faults);
        _commits.IncTo(statistics.Commits);
        _duplicates.IncTo(statistics.Writer.DuplicatesSkipped);
        _filesOpen.Set(statistics.Writer.OpenFiles);
        _lastCommit.Set(statistics.LastCommit is { } at ? at.ToUnixTimeMilliseconds() / 1000.0 : 0);
        for (int i = 0; i < Kinds.Length; i++)
        {
            _failedByKind[i].IncTo(_archiver.UndecodableOf(Kinds[i]));
        }

        // Two scrapes may collect at once: the series of revoked partitions go under a lock.
        lock (_partitionsLock)
        {
            var assigned = new HashSet<(string Topic, string Partition)>();
            foreach (ArchivePartition partition in _archiver.Partitions)
            {
                (string Topic, string Partition) labels = (partition.Topic, partition.Partition.ToString(CultureInfo.InvariantCulture));
                assigned.Add(labels);
                if (partition.Lag >= 0)
                {
                    _lag.WithLabels(labels.Topic, labels.Partition).Set(partition.Lag);
                }

                if (partition.CommittedOffset >= 0)
                {
                    _committedOffset.WithLabels(labels.Topic, labels.Partition).Set(partition.CommittedOffset);
                }
            }

            foreach ((string topic, string number) in _partitions.Except(assigned))
            {
                _lag.RemoveLabelled(topic, number);
                _committedOffset.RemoveLabelled(topic, number);
            }

            _partitions = assigned;
        }
    }
}
