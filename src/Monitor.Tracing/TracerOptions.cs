using Microsoft.Extensions.Logging;
using Monitor.Contracts;

namespace Monitor.Tracing;

/// <summary>Configuration of one <see cref="StepTracer"/> (one rank of one run).</summary>
public sealed class TracerOptions
{
    /// <summary>Longest <see cref="MaxEnqueueWait"/> accepted: the training step must never wait longer.</summary>
    public static readonly TimeSpan MaxEnqueueWaitLimit = TimeSpan.FromMilliseconds(1);

    /// <summary>Run id (see <see cref="Contracts.RunId"/> for the allowed characters). Required.</summary>
    public required string RunId { get; init; }

    /// <summary>This worker's rank, 0-based. Default 0.</summary>
    public int Rank { get; init; }

    /// <summary>Number of ranks in the run. Default 1.</summary>
    public int WorldSize { get; init; } = 1;

    /// <summary>What to trace until a newer selection arrives. Default <see cref="TraceSelection.AllEveryStep"/>.</summary>
    public TraceSelection Selection { get; init; } = TraceSelection.AllEveryStep;

    /// <summary>Topic step records are produced to. Default <see cref="MonitorTopics.Steps"/>.</summary>
    public string Topic { get; init; } = MonitorTopics.Steps;

    /// <summary>
    /// Step records buffered between the training thread and the sender. Default 256. When the buffer is full the
    /// newest record is dropped and counted (<see cref="TracerStatistics.DroppedQueueFull"/>); training never blocks.
    /// </summary>
    public int QueueCapacity { get; init; } = 256;

    /// <summary>
    /// How long <see cref="StepTracer.EndStep"/> may wait for room in a full queue before dropping the record.
    /// Default zero (drop at once); at most <see cref="MaxEnqueueWaitLimit"/> (1 ms). The wait spins: it is meant to
    /// absorb a sender that is a few microseconds behind, not a broker that is down.
    /// </summary>
    public TimeSpan MaxEnqueueWait { get; init; } = TimeSpan.Zero;

    /// <summary>
    /// Largest serialized step record, in bytes. Default <see cref="DefaultMaxRecordBytes"/> (990,000: under the Kafka
    /// producer's default 1,000,000-byte <c>message.max.bytes</c>, with room for the key and the trace headers; raise
    /// both together). A record over it loses raw parts, the largest first, until it fits; every summary and
    /// histogram stays. A trimmed part keeps its <c>total_elements</c> and says <c>trimmed</c>; the parts are counted
    /// in <see cref="TracerStatistics.RawPartsTrimmed"/>, in the record (<c>raw_parts_trimmed</c>) and in the heartbeat.
    /// Summaries alone over the budget are sent as they are (and fail at the transport if it has a lower limit).
    /// At least 1,000.
    /// </summary>
    public int MaxRecordBytes { get; init; } = DefaultMaxRecordBytes;

    /// <summary>Default of <see cref="MaxRecordBytes"/>: 990,000 bytes.</summary>
    public const int DefaultMaxRecordBytes = 990_000;

    /// <summary>
    /// The fraction of the step time the tracer may spend on the training thread. Default
    /// <see cref="DefaultOverheadBudget"/> (0.02: 2%); null for none. A selection's <c>budget</c> overrides it. The
    /// tracer measures its own cost (its calls and the adapter's hooks and capture, on the training thread) against the
    /// step time (step start to step start; a step counts at most twice the previous window's mean, so a pause such as
    /// an evaluation pass between steps does not end the thinning) over windows of at least 8 steps; over budget it thins the heaviest
    /// collections, tracing each of their tensors every k-th traced step in rotation (k a power of two, up to
    /// <see cref="StepTracer.MaxThinningStride"/>), and it thins less again once well under. Losses, learning rates
    /// (the optimizer collection), the selection's explicitly named and pinned tensors are never thinned, nor anything
    /// while the selection sets <c>schedule.everySteps</c>. A cost under 0.1 ms per step is never thinned. Thinning
    /// shows in each record (<c>thinned</c>), the heartbeat and the metrics. Within (0, 1].
    /// </summary>
    public double? OverheadBudget { get; init; } = DefaultOverheadBudget;

    /// <summary>Default of <see cref="OverheadBudget"/>: 0.02 (2% of the step time).</summary>
    public const double DefaultOverheadBudget = 0.02;

    /// <summary>
    /// The run's hyperparameters, name → value (format numbers with <see cref="RunMetadata.FormatValue"/>, so runs
    /// compare as text). Default none. Recorded in the run metadata (<see cref="StepTracer.Metadata"/>), which
    /// <c>monitor runs diff</c> compares.
    /// </summary>
    public IReadOnlyDictionary<string, string> Hyperparameters { get; init; } = new Dictionary<string, string>();

    /// <summary>The data sets the run reads (name, URI, content hash). Default none. Recorded in the run metadata.</summary>
    public IReadOnlyList<DatasetReference> Datasets { get; init; } = [];

    /// <summary>The run this one continues or derives from (resumed, fine-tuned), a valid run id; default null (none). Recorded in the run metadata.</summary>
    public string? ParentRun { get; init; }

    /// <summary>The devices the rank trains on (e.g. <c>cuda:0</c>). Default none. Recorded in the run metadata.</summary>
    public IReadOnlyList<string> Devices { get; init; } = [];

    /// <summary>
    /// Where the code version is looked for: the git repository containing this directory (<see cref="CodeVersion.Find"/>).
    /// Default the process's working directory; null: record no code version.
    /// </summary>
    public string? CodeDirectory { get; init; } = Environment.CurrentDirectory;

    /// <summary>Clock for event times, the every-seconds schedule and the overhead budget's measurements. Default <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Where faults are reported (rate-limited to one line per fault kind per minute). Default none.</summary>
    public ILogger? Logger { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid option.</summary>
    public void Validate()
    {
        if (Contracts.RunId.Check(RunId) is { } problem)
        {
            throw new ArgumentException($"{nameof(RunId)}: {problem}");
        }

        if (WorldSize < 1)
        {
            throw new ArgumentException($"{nameof(WorldSize)} is {WorldSize}; it must be at least 1");
        }

        if (Rank < 0 || Rank >= WorldSize)
        {
            throw new ArgumentException($"{nameof(Rank)} {Rank} is outside 0..{WorldSize - 1}");
        }

        if (string.IsNullOrWhiteSpace(Topic))
        {
            throw new ArgumentException($"{nameof(Topic)} is empty");
        }

        if (QueueCapacity < 1)
        {
            throw new ArgumentException($"{nameof(QueueCapacity)} is {QueueCapacity}; it must be at least 1");
        }

        if (MaxEnqueueWait < TimeSpan.Zero || MaxEnqueueWait > MaxEnqueueWaitLimit)
        {
            throw new ArgumentException($"{nameof(MaxEnqueueWait)} is {MaxEnqueueWait.TotalMilliseconds} ms; it must be between 0 and {MaxEnqueueWaitLimit.TotalMilliseconds} ms");
        }

        if (MaxRecordBytes < 1_000)
        {
            throw new ArgumentException($"{nameof(MaxRecordBytes)} is {MaxRecordBytes}; it must be at least 1,000");
        }

        if (OverheadBudget is { } budget && TraceBudget.Check(budget) is { } problem2)
        {
            throw new ArgumentException($"{nameof(OverheadBudget)}: {problem2}");
        }

        if (ParentRun is not null && Contracts.RunId.Check(ParentRun) is { } problem3)
        {
            throw new ArgumentException($"{nameof(ParentRun)}: {problem3}");
        }

        ArgumentNullException.ThrowIfNull(Hyperparameters, nameof(Hyperparameters));
        ArgumentNullException.ThrowIfNull(Datasets, nameof(Datasets));
        ArgumentNullException.ThrowIfNull(Devices, nameof(Devices));
        if (Datasets.Any(d => d is null || string.IsNullOrWhiteSpace(d.Name) || d.Uri is null))
        {
            throw new ArgumentException($"{nameof(Datasets)}: every data set needs a name and a URI");
        }

        ArgumentNullException.ThrowIfNull(Selection, nameof(Selection));
        Selection.EnsureValid();
    }
}
