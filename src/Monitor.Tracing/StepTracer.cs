using System.Buffers;
using System.Diagnostics;
using System.Reflection;
using System.Threading.Channels;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using Monitor.Contracts;
using Monitor.Contracts.Transport;
using Monitor.Contracts.V1;

namespace Monitor.Tracing;

/// <summary>
/// The framework-neutral tracer of one rank: decides which steps and tensors are traced, summarizes them, builds one
/// <see cref="StepRecord"/> per traced step and hands it to a background sender through a bounded queue.
/// </summary>
/// <remarks>
/// <para><b>Threading.</b> <see cref="BeginStep"/>, the <c>Add*</c> methods and <see cref="EndStep"/> are called by the
/// one training thread of the rank (framework hooks run on it too). The sender runs on its own thread; delivery
/// reports arrive on the transport's thread. <see cref="Statistics"/> may be read from any thread.</para>
/// <para><b>Failure.</b> No method throws into the training loop: every exception inside the tracer is caught,
/// counted in <see cref="TracerStatistics.Faults"/> and logged at most once a minute per kind. A full queue drops
/// the record (counted) instead of waiting longer than <see cref="TracerOptions.MaxEnqueueWait"/>.</para>
/// <para><b>Allocation.</b> A traced step allocates nothing on the training thread once warm (after a few steps under
/// the same selection): the tracer reuses its step records, refilling their messages in place, and the sender gives a
/// record back as soon as it has encoded it, never earlier (up to 8 free records are kept). What still allocates: a
/// record growing to more tensors than it held before, a tensor whose raw values change length from the previous use
/// of its slot (a small wrapper), the records of a burst while the sender is further behind than ever before, and, on
/// the sender thread, the encoded message the transport keeps.</para>
/// <para><b>Overhead budget.</b> The tracer weighs its own cost on the training thread (its <c>Add*</c> calls and
/// <see cref="EndStep"/>, and what an adapter wraps in its cost scope: hooks, recorders, the capture at the end of a
/// step; nested scopes count once) against the step time (<see cref="BeginStep"/> to <see cref="BeginStep"/>), both
/// read from <see cref="TracerOptions.TimeProvider"/>, over windows of at least 8 steps. Over
/// <see cref="TracerOptions.OverheadBudget"/> (or the selection's <c>budget</c>) it thins the heaviest collections: their
/// tensors are traced every k-th traced step, in rotation, so <see cref="Wants"/> answers false for the others and an
/// adapter skips their capture. Losses, the optimizer collection, scalars, the selection's named and pinned tensors are
/// never thinned, nor anything under a schedule with <c>everySteps</c>. Strides change only at a step boundary, so a
/// step is thinned one way throughout; the record lists the thinned collections (<c>thinned</c>) and the measured
/// ratio (<c>overhead_ratio</c>), <see cref="Statistics"/> the same for the heartbeat and the meter. Measuring costs
/// two timestamp reads per call and allocates nothing.</para>
/// <para><b>OpenTelemetry.</b> When a listener is attached to <see cref="ActivitySourceName"/> (an OpenTelemetry SDK
/// that adds this source), the sender emits a <c>send {topic}</c> PRODUCER span per record, a child of the span that
/// was current on the training thread at <see cref="EndStep"/> (if any), and writes its W3C trace context into the
/// record's <c>traceparent</c>/<c>tracestate</c> headers (<see cref="TraceContextHeaders"/>). Without a listener no span
/// is started and no header is written; the training thread then only checks for listeners.</para>
/// </remarks>
public sealed class StepTracer : IAsyncDisposable
{
    /// <summary>Name of the <see cref="System.Diagnostics.ActivitySource"/> of the worker's spans (add it to a tracer provider).</summary>
    public const string ActivitySourceName = "Monitor.Tracing";

    private static readonly TimeSpan FaultLogInterval = TimeSpan.FromMinutes(1);

    private readonly TracerOptions _options;
    private readonly IRecordProducer _producer;
    private readonly bool _ownsProducer;
    // Room kept under the byte budget for raw_parts_trimmed, set after trimming (a 2-byte tag and a varint of up to 10).
    private const int TrimmedCountReserve = 12;

    private readonly Channel<QueuedRecord> _queue;
    private readonly Task _sender;
    private readonly string _key;
    private readonly string _sendSpanName;
    private readonly Action<DeliveryReport> _onDelivery;
    private readonly HashSet<string> _namesThisStep = new(StringComparer.Ordinal);
    private readonly ulong[] _buckets = new ulong[TensorSummarizer.BucketCount];
    private readonly Dictionary<string, long> _lastFaultLog = new(StringComparer.Ordinal);
    private readonly StepRecordPool _pool = new();
    private readonly OverheadGovernor _governor;
    // The tensors the budget left out of this step, and how many per collection.
    private readonly HashSet<string> _thinnedThisStep = new(StringComparer.Ordinal);
    private readonly int[] _skipped = new int[32];

    private volatile CompiledSelection _selection;
    private CompiledSelection _stepSelection;
    private CompiledSelection? _atBeginTakenFor;
    private long _lastStep = -1;
    private PooledStepRecord? _current;
    private long _sequence;
    private long _stepsSeen;
    private long _stepsTraced;
    private long _recordsCreated;
    private long _droppedQueueFull;
    private long _delivered;
    private long _deliveryFailed;
    private long _faults;
    private long _rawPartsTrimmed;
    private long _rawBytesTrimmed;
    private long _tensorsThinned;
    // The tracer's cost this step: time inside its outermost calls (nested ones, an adapter's capture around the
    // tracer's own, count once).
    private int _costDepth;
    private long _costStart;
    private long _stepCost;
    private long _stepStart = long.MinValue;
    // The current step is thinned (the budget is on, it is a scheduled step), and its place in the rotation.
    private bool _thinActive;
    private long _thinTick;
    private long _budgetBits = BitConverter.DoubleToInt64Bits(double.NaN);
    // Records queued or handed to the transport and not yet delivered or failed: what FlushAsync waits for.
    private long _unfinished;
    private string? _lastFault;
    private int _disposed;
    private int _completed;
    private volatile bool _stopRequested;
    private volatile RunMetadata _metadata;
    private readonly Lock _metadataLock = new();
    // Only the sender reads and sets it.
    private bool _metadataSent;
    private readonly System.Collections.Concurrent.ConcurrentQueue<ArtifactEvent> _artifacts = new();
    private int _artifactsPending;
    // The same events for the control plane, once one is attached (bounded like the sender's: oldest dropped).
    private readonly System.Collections.Concurrent.ConcurrentQueue<ArtifactRecord> _artifactsForControl = new();
    private volatile bool _controlAttached;

    /// <summary>Creates a tracer and starts its sender.</summary>
    /// <param name="options">Validated here; see <see cref="TracerOptions"/> for defaults.</param>
    /// <param name="producer">Transport for the records.</param>
    /// <param name="ownsProducer">Dispose <paramref name="producer"/> with the tracer.</param>
    /// <exception cref="ArgumentException">An option is invalid (this is the one place the tracer throws: at set-up,
    /// before training starts).</exception>
    public StepTracer(TracerOptions options, IRecordProducer producer, bool ownsProducer = false)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(producer);
        options.Validate();
        _options = options;
        _producer = producer;
        _ownsProducer = ownsProducer;
        _key = RecordKey.Format(options.RunId, options.Rank);
        _sendSpanName = MessagingAttributes.SendSpanName(options.Topic);
        _selection = new CompiledSelection(options.Selection);
        _stepSelection = _selection;
        _governor = new OverheadGovernor(options.TimeProvider.TimestampFrequency);
        _metadata = CreateMetadata(options);
        _onDelivery = OnDelivery;
        _queue = Channel.CreateBounded<QueuedRecord>(new BoundedChannelOptions(options.QueueCapacity)
        {
            SingleReader = true,
            SingleWriter = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
        // The sender must not inherit the constructing thread's ambient state (its current span above all: every
        // send span would become that span's child).
        using (ExecutionContext.SuppressFlow())
        {
            _sender = Task.Factory.StartNew(SendLoopAsync, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
        }

        TracerMetrics.Register(this);
    }

    /// <summary>The source of the worker's spans (see <see cref="ActivitySourceName"/>).</summary>
    internal static ActivitySource Source { get; } = new(ActivitySourceName, typeof(StepTracer).Assembly.GetName().Version?.ToString());

    /// <summary>
    /// The parent of the next send span: the training thread's current span when someone listens. Only this runs on
    /// the training thread (a field check, and an async-local read when someone listens); the span itself is started
    /// by the sender.
    /// </summary>
    internal static ActivityContext CurrentParent() =>
        Source.HasListeners() && Activity.Current is { IdFormat: ActivityIdFormat.W3C } current ? current.Context : default;

    /// <summary>Largest stride the overhead budget thins a collection with (<see cref="TracerOptions.OverheadBudget"/>).</summary>
    public const int MaxThinningStride = OverheadGovernor.MaxStride;

    /// <summary>Run id.</summary>
    public string RunId => _options.RunId;

    /// <summary>Rank.</summary>
    public int Rank => _options.Rank;

    /// <summary>
    /// The rank's run metadata (lineage), gathered at construction from the options (hyperparameters, data sets,
    /// devices, parent run), the git repository of <see cref="TracerOptions.CodeDirectory"/>, the runtime and this
    /// library; an adapter adds its framework's versions (the TorchSharp adapter: TorchSharp and libtorch). The sender
    /// puts it on the first record it sends (<c>run_metadata</c>; lost only if that record's delivery fails) and the
    /// control plane writes it to Redis. Thread-safe.
    /// </summary>
    public RunMetadata Metadata => _metadata;

    /// <summary>
    /// Adds (or replaces) a component's version in <see cref="Metadata"/>: a framework's (the TorchSharp adapter adds
    /// TorchSharp and libtorch), a library's, the job's own. Call it before the first step: the first record carries
    /// the metadata as it is when the sender sends it; the control plane republishes a changed one. Thread-safe; null
    /// or empty arguments are ignored (never throws).
    /// </summary>
    public void AddVersion(string component, string version)
    {
        if (string.IsNullOrEmpty(component) || version is null)
        {
            return;
        }

        lock (_metadataLock)
        {
            var versions = new SortedDictionary<string, string>(_metadata.Versions.ToDictionary(), StringComparer.Ordinal) { [component] = version };
            _metadata = _metadata with { Versions = versions };
        }
    }

    private static RunMetadata CreateMetadata(TracerOptions options)
    {
        var versions = new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            [".NET"] = System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription,
            ["Monitor"] = typeof(StepTracer).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
                ?? typeof(StepTracer).Assembly.GetName().Version?.ToString() ?? "",
        };
        return new RunMetadata
        {
            Run = options.RunId,
            Rank = options.Rank,
            WorldSize = options.WorldSize,
            StartedAt = options.TimeProvider.GetUtcNow(),
            Hyperparameters = new SortedDictionary<string, string>(options.Hyperparameters.ToDictionary(), StringComparer.Ordinal),
            Datasets = [.. options.Datasets],
            Code = options.CodeDirectory is { } directory ? CodeVersion.Find(directory) : null,
            Versions = versions,
            Host = Environment.MachineName,
            Devices = [.. options.Devices],
            ParentRun = options.ParentRun,
        };
    }

    /// <summary>Ranks in the run (<see cref="TracerOptions.WorldSize"/>).</summary>
    public int WorldSize => _options.WorldSize;

    /// <summary>The step most recently begun (-1 before the first).</summary>
    public long LastStep => Volatile.Read(ref _lastStep);

    /// <summary>True between <see cref="BeginStep"/> and <see cref="EndStep"/> of a step the schedule selected.</summary>
    public bool IsTracingStep => _current is not null;

    /// <summary>The selection in force (the current step keeps the one it began with).</summary>
    public TraceSelection Selection => _selection.Source;

    /// <summary>A consistent snapshot of the counters.</summary>
    public TracerStatistics Statistics => new(
        Interlocked.Read(ref _stepsSeen),
        Interlocked.Read(ref _stepsTraced),
        Interlocked.Read(ref _recordsCreated),
        Interlocked.Read(ref _droppedQueueFull),
        Interlocked.Read(ref _delivered),
        Interlocked.Read(ref _deliveryFailed),
        Interlocked.Read(ref _faults),
        _queue.Reader.CanCount ? _queue.Reader.Count : -1,
        _selection.Version,
        Volatile.Read(ref _lastFault),
        Interlocked.Read(ref _rawPartsTrimmed),
        Interlocked.Read(ref _rawBytesTrimmed))
    {
        OverheadRatio = _governor.Ratio,
        OverheadBudget = BitConverter.Int64BitsToDouble(Volatile.Read(ref _budgetBits)) is var budget && double.IsNaN(budget) ? null : budget,
        Thinned = ThinnedNow(),
        TensorsThinned = Interlocked.Read(ref _tensorsThinned),
    };

    private ThinnedCollectionStatus[] ThinnedNow()
    {
        if (!_governor.Thinning)
        {
            return [];
        }

        var thinned = new List<ThinnedCollectionStatus>();
        for (int i = 0; i < _skipped.Length; i++)
        {
            if (_governor.StrideOf((Collection)i) is > 1 and int stride)
            {
                thinned.Add(new ThinnedCollectionStatus(CollectionNames.NameOf((Collection)i), stride));
            }
        }

        return [.. thinned];
    }

    /// <summary>
    /// Counts the time until the returned scope is disposed as the tracer's own cost of the step (for the overhead
    /// budget). Framework adapters wrap their hooks and captures in it; scopes nest, and only the outermost counts.
    /// Training thread only.
    /// </summary>
    internal CostScope MeasureCost()
    {
        if (_costDepth++ == 0)
        {
            _costStart = _options.TimeProvider.GetTimestamp();
        }

        return new CostScope(this);
    }

    private void EndCost()
    {
        if (--_costDepth == 0)
        {
            _stepCost += _options.TimeProvider.GetTimestamp() - _costStart;
        }
    }

    /// <summary>The span of one <see cref="MeasureCost"/>; a struct, so measuring allocates nothing.</summary>
    internal readonly struct CostScope(StepTracer tracer) : IDisposable
    {
        public void Dispose() => tracer.EndCost();
    }

    /// <summary>
    /// Replaces the selection from the next <see cref="BeginStep"/> on; a step already begun finishes under the old
    /// one, so every record is traced under exactly one selection version. Thread-safe.
    /// </summary>
    /// <returns>Null when applied, else the reason it was rejected (the previous selection stays in force).</returns>
    public string? UpdateSelection(TraceSelection selection)
    {
        try
        {
            _selection = new CompiledSelection(selection);
            return null;
        }
        catch (ArgumentException ex)
        {
            return ex.Message;
        }
    }

    /// <summary>Starts a step. Returns whether the selection traces it. Never throws.</summary>
    /// <param name="step">The global step of this rank (monotonic).</param>
    /// <param name="mode">What the loop is doing.</param>
    public bool BeginStep(long step, Mode mode = Mode.Train)
    {
        try
        {
            if (Volatile.Read(ref _completed) != 0)
            {
                // The end-of-run record is sent: nothing may follow it.
                DiscardCurrent();
                return false;
            }

            Interlocked.Increment(ref _stepsSeen);
            Volatile.Write(ref _lastStep, step);
            _stepSelection = _selection;
            double? budget = _stepSelection.BudgetOr(_options.OverheadBudget);
            CloseBudgetStep(budget);
            bool traced = _stepSelection.IsScheduled(step, mode, _options.Rank, _options.TimeProvider);
            bool started = StartRecord(step, mode, _stepSelection.Version, atBegin: false, traced);
            _thinActive = started && budget is not null && _governor.Thinning;
            if (started)
            {
                _thinTick++;
            }

            return started;
        }
#pragma warning disable CA1031 // The tracer must never throw into the training loop; faults are counted and logged.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Fault("begin-step", ex);
            DiscardCurrent();
            return false;
        }
    }

    /// <summary>
    /// Starts the one-shot capture of a selection that has an <c>atBegin</c> part and has not had it taken yet (the
    /// start-up selection before the first step, a new selection at the step boundary where it takes effect). When
    /// it returns true, add the tensors as for a step and call <see cref="EndStep"/>, then begin the step itself.
    /// Framework adapters call this; never throws.
    /// </summary>
    public bool BeginAtBeginCapture(long step)
    {
        try
        {
            CompiledSelection latest = _selection;
            if (latest.AtBegin is null || ReferenceEquals(_atBeginTakenFor, latest))
            {
                return false;
            }

            _atBeginTakenFor = latest;
            // Only ranks that trace at all take the one-shot capture (chiefOnly); it belongs to no mode.
            _stepSelection = latest.AtBegin;
            return StartRecord(step, Mode.Unspecified, latest.Version, atBegin: true, traced: !latest.Source.ChiefOnly || _options.Rank == 0);
        }
#pragma warning disable CA1031 // See BeginStep.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Fault("begin-at-begin", ex);
            DiscardCurrent();
            return false;
        }
    }

    // The step that began at the previous BeginStep ends here: its time and cost go to the budget's window.
    private void CloseBudgetStep(double? budget)
    {
        long now = _options.TimeProvider.GetTimestamp();
        if (_stepStart != long.MinValue)
        {
            _governor.CloseStep(now - _stepStart, _stepCost, budget);
        }

        _stepStart = now;
        _stepCost = 0;
        Volatile.Write(ref _budgetBits, BitConverter.DoubleToInt64Bits(budget ?? double.NaN));
    }

    private bool StartRecord(long step, Mode mode, long selectionVersion, bool atBegin, bool traced)
    {
        _namesThisStep.Clear();
        _thinActive = false;
        if (_thinnedThisStep.Count > 0)
        {
            _thinnedThisStep.Clear();
            Array.Clear(_skipped);
        }

        DiscardCurrent();
        if (!traced)
        {
            return false;
        }

        if (!atBegin)
        {
            Interlocked.Increment(ref _stepsTraced);
        }

        PooledStepRecord record = _pool.Rent();
        record.Begin(_options.RunId, _options.Rank, _options.WorldSize, step, mode, selectionVersion, atBegin);
        _current = record;
        return true;
    }

    // A step begun and not ended: its record goes back to the pool unsent.
    private void DiscardCurrent()
    {
        PooledStepRecord? record = _current;
        _current = null;
        if (record is not null)
        {
            _pool.Return(record);
        }
    }

    /// <summary>
    /// Whether the current step traces the tensor: the step is scheduled, the selection selects the name with
    /// these collections, and the name was not added yet this step. Use it to skip expensive captures. Never throws.
    /// </summary>
    public bool Wants(string name, CollectionSet collections) => CaptureOf(name, collections).Traced;

    /// <summary>What the current step captures of the tensor (<see cref="CaptureSpec.None"/> when nothing). Never throws.</summary>
    /// <param name="name">The tensor.</param>
    /// <param name="collections">Its collections.</param>
    /// <param name="thin">Whether the overhead budget may leave it out (false for scalars).</param>
    internal CaptureSpec CaptureOf(string name, CollectionSet collections, bool thin = true)
    {
        try
        {
            if (string.IsNullOrEmpty(name))
            {
                // A nameless tensor would make the whole record undecodable: refuse just the tensor.
                Fault("select", new ArgumentException("tensor name is empty", nameof(name)));
                return CaptureSpec.None;
            }

            if (_current is null || _namesThisStep.Contains(name))
            {
                return CaptureSpec.None;
            }

            CaptureSpec spec = _stepSelection.Capture(name, collections);
            return thin && _thinActive && spec.ThinCollection != Collection.Unspecified && IsThinnedOut(name, spec) ? CaptureSpec.None : spec;
        }
#pragma warning disable CA1031 // See BeginStep.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Fault("select", ex);
            return CaptureSpec.None;
        }
    }

    // Rotation: tensor i of a collection thinned with stride k is traced at the traced steps t with (i + t) % k == 0.
    private bool IsThinnedOut(string name, CaptureSpec spec)
    {
        int stride = _governor.StrideOf(spec.ThinCollection);
        if (stride <= 1 || ((spec.ThinIndex + _thinTick) & (stride - 1)) == 0)
        {
            return false;
        }

        if (_thinnedThisStep.Add(name))
        {
            _skipped[(int)spec.ThinCollection]++;
            Interlocked.Increment(ref _tensorsThinned);
        }

        return true;
    }

    /// <summary>
    /// Summarizes float32 values with the fused summarizer and adds them to the step, with the histogram and raw
    /// values when the selection asks for them, if <see cref="Wants"/>. Never throws.
    /// </summary>
    public void AddValues(string name, CollectionSet collections, DType dtype, ReadOnlySpan<long> shape, ReadOnlySpan<float> values)
    {
        try
        {
            using CostScope cost = MeasureCost();
            CaptureSpec spec = CaptureOf(name, collections);
            if (!spec.Traced)
            {
                return;
            }

            TensorSummarizer.Summarize(values, _buckets, out TensorStatistics statistics);
            AddTensor(spec.ThinCollection, name, collections, dtype, shape, statistics, spec.Histogram ? _buckets : [], RawPart(spec, values), values.Length);
        }
#pragma warning disable CA1031 // See BeginStep.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Fault("add-values", ex);
        }
    }

    /// <summary>
    /// Adds a batch of examples (first dimension: examples; e.g. tabular inputs <c>[batch, features]</c>, predictions,
    /// labels or per-example losses <c>[batch]</c>), if <see cref="Wants"/>: the summary covers every value, and raw
    /// values, when the selection asks for them, are whole examples: as many as <c>limitSize</c> holds, evenly spaced
    /// over the batch (rows <c>floor(i * batch / kept)</c>), so the record says how many it sampled
    /// (<c>raw.sample_rows</c>) and tensors of one batch are sampled at the same rows. Never throws.
    /// </summary>
    /// <param name="name">Tensor name, unique within the step.</param>
    /// <param name="collections">Its collections (inputs, predictions, labels, losses).</param>
    /// <param name="dtype">Its element type.</param>
    /// <param name="shape">Its shape; the first dimension is the batch (a rank-0 tensor is one example).</param>
    /// <param name="values">Its values as float32, row-major.</param>
    /// <param name="featureNames">Names of the columns (the product of the dimensions after the first), e.g.
    /// <c>x0</c>...<c>x15</c>; null for unnamed columns. A list of the wrong length is left out (counted as a fault).</param>
    public void AddBatch(string name, CollectionSet collections, DType dtype, ReadOnlySpan<long> shape, ReadOnlySpan<float> values,
        IReadOnlyList<string>? featureNames = null)
    {
        try
        {
            using CostScope cost = MeasureCost();
            CaptureSpec spec = CaptureOf(name, collections);
            if (!spec.Traced)
            {
                return;
            }

            TensorSummarizer.Summarize(values, _buckets, out TensorStatistics statistics);
            AddBatchTensor(spec.ThinCollection, name, collections, dtype, shape, statistics, spec.Histogram ? _buckets : [], values, spec.RawLimit, featureNames);
        }
#pragma warning disable CA1031 // See BeginStep.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Fault("add-batch", ex);
        }
    }

    /// <summary>
    /// Adds a batch whose statistics were computed elsewhere (e.g. on a GPU), if <see cref="Wants"/>: as
    /// <see cref="AddBatch"/>, with the sampled rows already taken (<see cref="BatchSampleRows"/> of them, at the rows
    /// <see cref="BatchSampleRow"/> gives). Never throws.
    /// </summary>
    /// <param name="name">Tensor name, unique within the step.</param>
    /// <param name="collections">Its collections.</param>
    /// <param name="dtype">Its element type.</param>
    /// <param name="shape">Its shape; the first dimension is the batch.</param>
    /// <param name="statistics">The statistics of every value.</param>
    /// <param name="buckets"><see cref="Log2Histogram"/> counts or empty.</param>
    /// <param name="sampledRows">The sampled rows, row-major, or empty when no raw values are wanted.</param>
    /// <param name="featureNames">Names of the columns, or null.</param>
    public void AddBatchSummary(string name, CollectionSet collections, DType dtype, ReadOnlySpan<long> shape, in TensorStatistics statistics,
        ReadOnlySpan<ulong> buckets, ReadOnlySpan<float> sampledRows, IReadOnlyList<string>? featureNames = null)
    {
        try
        {
            using CostScope cost = MeasureCost();
            CaptureSpec spec = CaptureOf(name, collections);
            if (!spec.Traced)
            {
                return;
            }

            long columns = Columns(shape);
            int rows = columns == 0 ? 0 : (int)Math.Min(sampledRows.Length / columns, BatchSampleRows(shape, spec.RawLimit));
            AddTensor(spec.ThinCollection, name, collections, dtype, shape, statistics, spec.Histogram ? buckets : [], sampledRows[..(int)(rows * columns)], statistics.Count,
                rows, CheckedNames(name, featureNames, columns));
        }
#pragma warning disable CA1031 // See BeginStep.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Fault("add-batch", ex);
        }
    }

    /// <summary>
    /// How many whole examples of a batch of this shape fit the raw limit (0 when none is wanted or one example is
    /// larger than the limit). Adapters that copy rows from a device use it with <see cref="BatchSampleRow"/>.
    /// </summary>
    public static int BatchSampleRows(ReadOnlySpan<long> shape, int rawLimit)
    {
        long rows = shape.Length == 0 ? 1 : Math.Max(shape[0], 0);
        long columns = Columns(shape);
        return rawLimit <= 0 || columns == 0 ? 0 : (int)Math.Min(rows, rawLimit / columns);
    }

    /// <summary>The batch row that sampled row <paramref name="index"/> of <paramref name="kept"/> is (<see cref="BatchSample.Row"/>).</summary>
    public static long BatchSampleRow(long index, long kept, long batch) => BatchSample.Row(index, kept, batch);

    private static long Columns(ReadOnlySpan<long> shape) => BatchSample.Columns(shape);

    private void AddBatchTensor(Collection thin, string name, CollectionSet collections, DType dtype, ReadOnlySpan<long> shape, in TensorStatistics statistics,
        ReadOnlySpan<ulong> buckets, ReadOnlySpan<float> values, int rawLimit, IReadOnlyList<string>? featureNames)
    {
        long columns = Columns(shape);
        long batch = shape.Length == 0 ? 1 : Math.Max(shape[0], 0);
        IReadOnlyList<string>? names = CheckedNames(name, featureNames, columns);
        int kept = BatchSampleRows(shape, rawLimit);
        if (kept == 0 || values.Length < batch * columns)
        {
            AddTensor(thin, name, collections, dtype, shape, statistics, buckets, [], values.Length, 0, names);
            return;
        }

        if (kept == batch)
        {
            AddTensor(thin, name, collections, dtype, shape, statistics, buckets, values[..(int)(batch * columns)], values.Length, kept, names);
            return;
        }

        int width = (int)columns;
        float[] sample = ArrayPool<float>.Shared.Rent(kept * width);
        try
        {
            for (int i = 0; i < kept; i++)
            {
                long row = BatchSampleRow(i, kept, batch);
                values.Slice((int)(row * width), width).CopyTo(sample.AsSpan(i * width, width));
            }

            AddTensor(thin, name, collections, dtype, shape, statistics, buckets, sample.AsSpan(0, kept * width), values.Length, kept, names);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(sample);
        }
    }

    private IReadOnlyList<string>? CheckedNames(string name, IReadOnlyList<string>? featureNames, long columns)
    {
        if (featureNames is null || featureNames.Count == columns)
        {
            return featureNames;
        }

        Fault("add-batch", new ArgumentException($"{name}: {featureNames.Count} feature names for {columns} columns; the names are left out", nameof(featureNames)));
        return null;
    }

    /// <summary>Adds a scalar (a loss, a learning rate) as a one-element float64 tensor, if <see cref="Wants"/>.</summary>
    public void AddScalar(string name, CollectionSet collections, double value)
    {
        try
        {
            using CostScope cost = MeasureCost();
            // A scalar costs next to nothing to trace: the budget never leaves one out.
            CaptureSpec spec = CaptureOf(name, collections, thin: false);
            if (!spec.Traced)
            {
                return;
            }

            bool nan = double.IsNaN(value), infinite = double.IsInfinity(value), finite = !nan && !infinite;
            double magnitude = Math.Abs(value);
            var statistics = new TensorStatistics
            {
                Count = 1,
                NanCount = nan ? 1 : 0,
                InfCount = infinite ? 1 : 0,
                ZeroCount = value == 0 ? 1 : 0,
                Min = finite ? value : double.NaN,
                Max = finite ? value : double.NaN,
                Mean = finite ? value : double.NaN,
                Variance = finite ? 0 : double.NaN,
                AbsMean = finite ? magnitude : double.NaN,
                L1 = finite ? magnitude : 0,
                L2 = finite ? magnitude : 0,
            };
            Array.Clear(_buckets);
            if (!nan)
            {
                _buckets[Log2Histogram.BucketOf(value)] = 1;
            }

            float single = (float)value;
            AddTensor(Collection.Unspecified, name, collections, DType.Float64, [], statistics, spec.Histogram ? _buckets : [],
                RawPart(spec, new ReadOnlySpan<float>(in single)), 1);
        }
#pragma warning disable CA1031 // See BeginStep.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Fault("add-scalar", ex);
        }
    }

    /// <summary>Adds statistics computed elsewhere (e.g. reductions on a GPU), if <see cref="Wants"/>. Never throws.</summary>
    /// <param name="name">Tensor name, unique within the step.</param>
    /// <param name="collections">Its collections.</param>
    /// <param name="dtype">Its element type.</param>
    /// <param name="shape">Its shape.</param>
    /// <param name="statistics">The statistics.</param>
    /// <param name="buckets"><see cref="Log2Histogram"/> counts (length <see cref="TensorSummarizer.BucketCount"/>) or empty.</param>
    /// <param name="raw">The first elements of the tensor, when <see cref="RawLimitOf"/> asks for them; else empty.</param>
    public void AddSummary(string name, CollectionSet collections, DType dtype, ReadOnlySpan<long> shape, in TensorStatistics statistics,
        ReadOnlySpan<ulong> buckets, ReadOnlySpan<float> raw = default)
    {
        try
        {
            using CostScope cost = MeasureCost();
            CaptureSpec spec = CaptureOf(name, collections);
            if (spec.Traced)
            {
                AddTensor(spec.ThinCollection, name, collections, dtype, shape, statistics, spec.Histogram ? buckets : [], RawPart(spec, raw), statistics.Count);
            }
        }
#pragma warning disable CA1031 // See BeginStep.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Fault("add-summary", ex);
        }
    }

    /// <summary>How many raw elements the current step wants of the tensor (0: none). For adapters that must copy
    /// raw values from a device. Never throws.</summary>
    public int RawLimitOf(string name, CollectionSet collections) => CaptureOf(name, collections).RawLimit;

    private static ReadOnlySpan<float> RawPart(CaptureSpec spec, ReadOnlySpan<float> values) =>
        spec.RawLimit == 0 ? [] : values[..Math.Min(spec.RawLimit, values.Length)];

    /// <summary>
    /// Ends the step: stamps the event time and sequence number and queues the record for the sender. Never
    /// blocks longer than <see cref="TracerOptions.MaxEnqueueWait"/>; never throws.
    /// </summary>
    public void EndStep()
    {
        PooledStepRecord? record = _current;
        _current = null;
        if (record is null)
        {
            return;
        }

        try
        {
            using CostScope cost = MeasureCost();
            if (_thinActive)
            {
                NoteThinned(record);
            }

            record.Record.OverheadRatio = _governor.Ratio;
            Queue(record);
        }
#pragma warning disable CA1031 // See BeginStep.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Fault("end-step", ex);
        }
    }

    // The record says which collections the budget thinned in this step, with their strides and what they left out.
    private void NoteThinned(PooledStepRecord record)
    {
        for (int i = 0; i < _skipped.Length; i++)
        {
            if (_governor.StrideOf((Collection)i) is > 1 and int stride)
            {
                record.AddThinned((Collection)i, stride, _skipped[i]);
            }
        }
    }

    /// <summary>Starts keeping artifact events for the control plane (<see cref="TakeArtifactsForControl"/>).</summary>
    internal void AttachControl() => _controlAttached = true;

    /// <summary>The artifact events recorded since the last call, for the control plane to store.</summary>
    internal List<ArtifactRecord> TakeArtifactsForControl()
    {
        var taken = new List<ArtifactRecord>();
        while (_artifactsForControl.TryDequeue(out ArtifactRecord? artifact))
        {
            taken.Add(artifact);
        }

        return taken;
    }

    /// <summary>Artifact events held for the next record at most; past it, new ones are dropped and counted as faults.</summary>
    public const int MaxPendingArtifacts = 1024;

    /// <summary>
    /// Records that the run read (<see cref="ArtifactDirection.Consumed"/>) or wrote (<see cref="ArtifactDirection.Produced"/>)
    /// an artifact, a checkpoint or an exported model: the event goes on the next record the sender sends
    /// (<c>StepRecord.artifacts</c>), and the archive keeps it in <c>{run}/rank-{rank}/artifacts.jsonl</c>; with a
    /// control plane its loop also stores it in Redis (<c>monitor:{run}:artifacts</c>, served by <c>/api/runs/{run}</c>). Record it
    /// before <see cref="Complete"/> (the end-of-run record carries the last ones). Any thread; never throws: an
    /// invalid call or more than <see cref="MaxPendingArtifacts"/> waiting events are counted as faults.
    /// </summary>
    /// <param name="path">Where the artifact is: a path or URI.</param>
    /// <param name="hash">Its content hash (e.g. <c>sha256:...</c>), or null when unknown.</param>
    /// <param name="step">The step it was read or written at.</param>
    /// <param name="direction">Whether the run consumed or produced it.</param>
    /// <param name="type">Its kind. Default <c>checkpoint</c>.</param>
    public void RecordArtifact(string path, string? hash, long step, ArtifactDirection direction, string type = "checkpoint")
    {
        try
        {
            ArgumentException.ThrowIfNullOrEmpty(path);
            if (direction == ArtifactDirection.Unspecified)
            {
                throw new ArgumentException("an artifact is consumed or produced", nameof(direction));
            }

            if (Interlocked.Increment(ref _artifactsPending) > MaxPendingArtifacts)
            {
                Interlocked.Decrement(ref _artifactsPending);
                throw new InvalidOperationException($"more than {MaxPendingArtifacts} artifact events wait for a record; '{path}' is not recorded");
            }

            var artifact = new ArtifactEvent
            {
                Path = path,
                Hash = hash ?? "",
                Step = step,
                Direction = direction,
                Type = type ?? "",
                TimeUnixNanos = (_options.TimeProvider.GetUtcNow() - DateTimeOffset.UnixEpoch).Ticks * 100,
            };
            _artifacts.Enqueue(artifact);
            if (_controlAttached)
            {
                _artifactsForControl.Enqueue(ArtifactRecord.From(_options.Rank, artifact));
                while (_artifactsForControl.Count > MaxPendingArtifacts && _artifactsForControl.TryDequeue(out _))
                {
                }
            }
        }
#pragma warning disable CA1031 // See BeginStep: the training loop never sees the tracer's faults.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Fault("artifact", ex);
        }
    }

    /// <summary>
    /// Ends the rank's run: queues the end-of-run record (<see cref="StepRecord.RunEnd"/> with
    /// <paramref name="reason"/>, no tensors, the last step begun) behind every record already queued, so the monitor
    /// resolves the rank's alerts as "run ended", forgets its state and removes its metric series (a finished run is
    /// never taken for a stalled one). Only the first call counts; steps begun after it are not traced.
    /// <see cref="DisposeAsync"/> calls it when it was not called, with <see cref="RunEndReason.Stopped"/> when the
    /// control plane received a stop command for this rank, else <see cref="RunEndReason.Done"/>.
    /// </summary>
    /// <remarks>
    /// Call it from the training thread (or once it has stopped stepping), like <see cref="EndStep"/>; a step begun and
    /// not ended is discarded. The record goes through the queue like a step's: when the queue stays full past
    /// <see cref="TracerOptions.MaxEnqueueWait"/> it is dropped and counted, and the monitor then forgets the rank only
    /// after its rules' own timeouts. Never throws.
    /// </remarks>
    /// <param name="reason">Why the run ended. Default <see cref="RunEndReason.Done"/>; <see cref="RunEndReason.Unspecified"/>
    /// is sent as <see cref="RunEndReason.Done"/>.</param>
    public void Complete(RunEndReason reason = RunEndReason.Done)
    {
        if (Interlocked.Exchange(ref _completed, 1) != 0)
        {
            return;
        }

        try
        {
            // Left to the collector rather than returned to the pool: DisposeAsync may call this from another thread,
            // and a training thread still (wrongly) stepping must not find its record refilled as the end of the run.
            _current = null;
            var record = new PooledStepRecord();
            record.Begin(_options.RunId, _options.Rank, _options.WorldSize, Math.Max(0, Volatile.Read(ref _lastStep)), Mode.Unspecified,
                _selection.Version, atBegin: false);
            record.Record.RunEnd = new RunEnd { Reason = reason == RunEndReason.Unspecified ? RunEndReason.Done : reason };
            Queue(record);
        }
#pragma warning disable CA1031 // See BeginStep.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Fault("complete", ex);
        }
    }

    /// <summary>Whether <see cref="Complete"/> (or <see cref="DisposeAsync"/>) has sent the end of the run.</summary>
    public bool IsCompleted => Volatile.Read(ref _completed) != 0;

    /// <summary>The control plane received a stop command for this rank: the end of the run is then "stopped".</summary>
    internal void NoteStopRequested() => _stopRequested = true;

    // Stamps the event time and sequence number and queues the record for the sender.
    private void Queue(PooledStepRecord pooled)
    {
        StepRecord record = pooled.Record;
        record.EventTimeUnixNanos = (_options.TimeProvider.GetUtcNow() - DateTimeOffset.UnixEpoch).Ticks * 100;
        record.Sequence = (ulong)Interlocked.Increment(ref _sequence);
        record.DroppedBefore = (ulong)(Interlocked.Read(ref _droppedQueueFull) + Interlocked.Read(ref _deliveryFailed));
        Interlocked.Increment(ref _recordsCreated);
        Interlocked.Increment(ref _unfinished);
        if (!TryEnqueue(new QueuedRecord(pooled, CurrentParent())))
        {
            Interlocked.Decrement(ref _unfinished);
            Interlocked.Increment(ref _droppedQueueFull);
            _pool.Return(pooled);
        }
    }

    /// <summary>Waits until every queued record is delivered or failed, or until <paramref name="timeout"/>.</summary>
    /// <returns>True when nothing is left in flight.</returns>
    public async Task<bool> FlushAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        // Real time on purpose: this waits for I/O, and an injected fake clock would never let it finish.
        long start = Stopwatch.GetTimestamp();
        while (Interlocked.Read(ref _unfinished) > 0)
        {
            TimeSpan left = timeout - Stopwatch.GetElapsedTime(start);
            if (left <= TimeSpan.Zero)
            {
                return false;
            }

            if (_queue.Reader.Count == 0)
            {
                // Lets librdkafka send and report (it returns early once nothing is in flight); off the caller's thread.
                TimeSpan slice = left < TimeSpan.FromMilliseconds(100) ? left : TimeSpan.FromMilliseconds(100);
                await Task.Run(() => _producer.Flush(slice), cancellationToken).ConfigureAwait(false);
            }

            await Task.Delay(TimeSpan.FromMilliseconds(1), cancellationToken).ConfigureAwait(false);
        }

        return true;
    }

    /// <summary>
    /// Ends the run unless <see cref="Complete"/> did (reason <see cref="RunEndReason.Stopped"/> after a stop command of
    /// the control plane, else <see cref="RunEndReason.Done"/>), stops accepting records, sends what is queued (up to
    /// 10 seconds), and releases the transport if owned. Call it once training has stopped stepping.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        Complete(_stopRequested ? RunEndReason.Stopped : RunEndReason.Done);
        _queue.Writer.TryComplete();
        try
        {
            await _sender.WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
            await FlushAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        }
        catch (TimeoutException ex)
        {
            Fault("shutdown", ex);
        }
        finally
        {
            TracerMetrics.Unregister(this);
            if (_ownsProducer)
            {
                _producer.Dispose();
            }
        }
    }

    private void AddTensor(Collection thin, string name, CollectionSet collections, DType dtype, ReadOnlySpan<long> shape, in TensorStatistics statistics,
        ReadOnlySpan<ulong> buckets, ReadOnlySpan<float> raw, long elements, int sampleRows = 0, IReadOnlyList<string>? featureNames = null)
    {
        _namesThisStep.Add(name);
        _governor.Traced(thin, elements);
        _current!.AddTensor(name, collections, dtype, shape, statistics, buckets, raw, elements, sampleRows, featureNames);
    }

    private bool TryEnqueue(QueuedRecord record)
    {
        if (_queue.Writer.TryWrite(record))
        {
            return true;
        }

        if (_options.MaxEnqueueWait <= TimeSpan.Zero)
        {
            return false;
        }

        long deadline = Stopwatch.GetTimestamp() + (long)(_options.MaxEnqueueWait.TotalSeconds * Stopwatch.Frequency);
        var spinner = default(SpinWait);
        while (Stopwatch.GetTimestamp() < deadline)
        {
            spinner.SpinOnce(sleep1Threshold: -1);
            if (_queue.Writer.TryWrite(record))
            {
                return true;
            }
        }

        return false;
    }

    private async Task SendLoopAsync()
    {
        ChannelReader<QueuedRecord> reader = _queue.Reader;
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            while (reader.TryRead(out QueuedRecord queued))
            {
                try
                {
                    Send(queued);
                }
#pragma warning disable CA1031 // A record that cannot be sent is counted as failed; the sender must keep going.
                catch (Exception ex)
#pragma warning restore CA1031
                {
                    Interlocked.Decrement(ref _unfinished);
                    Interlocked.Increment(ref _deliveryFailed);
                    Fault("send", ex);
                }
            }
        }
    }

    private void Send(in QueuedRecord queued)
    {
        long step;
        byte[] value;
        try
        {
            StepRecord record = queued.Record.Record;
            step = record.Step;
            if (!_metadataSent)
            {
                // Once per rank, on the sender's thread, and before the size check so the budget counts it.
                record.RunMetadata = _metadata.ToJson();
                _metadataSent = true;
            }

            while (_artifacts.TryDequeue(out ArtifactEvent? artifact))
            {
                Interlocked.Decrement(ref _artifactsPending);
                record.Artifacts.Add(artifact);
            }

            int size = record.CalculateSize();
            if (size > _options.MaxRecordBytes - TrimmedCountReserve)
            {
                TrimRaw(record, size);
            }

            record.RawPartsTrimmed = (ulong)Interlocked.Read(ref _rawPartsTrimmed);
            value = record.ToByteArray();
        }
        finally
        {
            // Serialized (or failed to): nothing reads the record any more, so the training thread may refill it.
            _pool.Return(queued.Record);
        }

        SendSpan? span = null;
        if (Source.HasListeners())
        {
            try
            {
                span = SendSpan.Start(_sendSpanName, queued.Parent, _options.Topic, _key, step, _options.RunId, _options.Rank, value.Length, _onDelivery);
            }
#pragma warning disable CA1031 // A listener's fault (a sampler, a processor) costs the span, never the record.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                Fault("trace-span", ex);
            }
        }

        if (span is null)
        {
            _producer.Produce(_options.Topic, _key, value, null, _onDelivery);
            return;
        }

        try
        {
            _producer.Produce(_options.Topic, _key, value, TraceContextHeaders.Create(span.Activity.Context), span.OnDelivery);
        }
        catch (Exception ex)
        {
            // Ends the span; the send loop counts the failure.
            span.Failed(ex);
            throw;
        }
    }

    /// <summary>
    /// Leaves raw parts out of <paramref name="record"/>, the largest first, until it fits the byte budget (or none is
    /// left): a record too large for the transport would lose its summaries with its raw values.
    /// </summary>
    private void TrimRaw(StepRecord record, int size)
    {
        var parts = new List<TensorRecord>();
        foreach (TensorRecord tensor in record.Tensors)
        {
            if (tensor.Raw is { Float32Le.IsEmpty: false })
            {
                parts.Add(tensor);
            }
        }

        parts.Sort((a, b) => b.Raw.Float32Le.Length.CompareTo(a.Raw.Float32Le.Length));
        int budget = _options.MaxRecordBytes - TrimmedCountReserve;
        long trimmed = 0, bytes = 0;
        foreach (TensorRecord tensor in parts)
        {
            if (size <= budget)
            {
                break;
            }

            // A tensor is a length-delimited field of the record: its size and its length prefix both change.
            int before = tensor.CalculateSize();
            bytes += tensor.Raw.Float32Le.Length;
            trimmed++;
            tensor.Raw = new RawValues { TotalElements = tensor.Raw.TotalElements, Truncated = true, Trimmed = true };
            int after = tensor.CalculateSize();
            size -= CodedOutputStream.ComputeLengthSize(before) + before - CodedOutputStream.ComputeLengthSize(after) - after;
        }

        Interlocked.Add(ref _rawPartsTrimmed, trimmed);
        Interlocked.Add(ref _rawBytesTrimmed, bytes);
        LogRateLimited("byte-budget", null,
            $"step {record.Step}: {trimmed} raw part(s) ({bytes} bytes) left out to keep the record within {nameof(TracerOptions.MaxRecordBytes)} ({_options.MaxRecordBytes} bytes); its summaries were sent");
    }

    private void OnDelivery(DeliveryReport report)
    {
        Interlocked.Decrement(ref _unfinished);
        if (report.Delivered)
        {
            Interlocked.Increment(ref _delivered);
            return;
        }

        Interlocked.Increment(ref _deliveryFailed);
        Volatile.Write(ref _lastFault, report.Error);
        LogRateLimited("delivery", null, report.Error ?? "delivery failed");
    }

    /// <summary>Counts and logs a fault caught by a framework adapter.</summary>
    internal void ReportFault(string kind, Exception exception) => Fault(kind, exception);

    private void Fault(string kind, Exception exception)
    {
        Interlocked.Increment(ref _faults);
        Volatile.Write(ref _lastFault, $"{kind}: {exception.GetType().Name}: {exception.Message}");
        LogRateLimited(kind, exception, exception.Message);
    }

    private void LogRateLimited(string kind, Exception? exception, string message)
    {
        ILogger? logger = _options.Logger;
        if (logger is null)
        {
            return;
        }

        long now = _options.TimeProvider.GetTimestamp();
        lock (_lastFaultLog)
        {
            if (_lastFaultLog.TryGetValue(kind, out long last) && _options.TimeProvider.GetElapsedTime(last, now) < FaultLogInterval)
            {
                return;
            }

            _lastFaultLog[kind] = now;
        }

#pragma warning disable CA1848, CA2254 // Rare path; the message is data.
        logger.LogWarning(exception, "Monitor tracer {Run}/{Rank}: {Kind} fault: {Message} (further ones this minute are only counted)", RunId, Rank, kind, message);
#pragma warning restore CA1848, CA2254
    }
}

/// <summary>A record in the sender's queue, with the span context that was current when its step ended.</summary>
internal readonly record struct QueuedRecord(PooledStepRecord Record, ActivityContext Parent);
