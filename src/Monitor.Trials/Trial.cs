using System.Globalization;
using System.Text.RegularExpressions;
using Monitor.Archive;
using Monitor.Contracts;
using Monitor.Contracts.V1;

namespace Monitor.Trials;

/// <summary>
/// One run's traced tensors, as smdebug's trial (<c>smdebug.trials.create_trial</c>; see its analysis docs,
/// github.com/awslabs/sagemaker-debugger docs/analysis.md) with .NET naming: <see cref="TensorNames"/>,
/// <see cref="Tensor"/>, <see cref="Steps"/>, <see cref="Modes"/>, <see cref="Workers"/>,
/// <see cref="Collections"/>, <see cref="WaitForStepsAsync"/>, and the records themselves in the order the service
/// analyses them (<see cref="Records"/>), for <c>monitor rules run</c>.
/// </summary>
/// <remarks>
/// <para>Sources: an archive directory (<see cref="Open"/>, <see cref="OpenAll"/>: the Parquet files of
/// <c>monitor archive</c> or <c>monitor demo --archive</c>), or the steps topic (<see cref="Live"/> follows a running
/// job; <see cref="ReadKafkaAsync"/> reads what the topic holds and stops). A trial holds its run's records in memory.</para>
/// <para>Differences from smdebug: a worker is a rank (an <see cref="int"/>); steps are the worker's global step, and a
/// mode filters them (a record carries both, so there is no separate mode step); a <c>null</c> mode is smdebug's
/// <c>GLOBAL</c> (any mode). Where a step was traced in several modes or by several ranks, pass the mode or rank: the
/// trial refuses to pick one. Records of the one-shot at-begin capture are indexed only where no regular record of the
/// same tensor, step, mode and rank exists. A record archived twice (same rank, sequence, step and mode) is kept once.</para>
/// <para>Thread-safe: a live trial's index grows on its consumer's thread; every member may be called from any thread
/// and sees a consistent index.</para>
/// </remarks>
public sealed class Trial : IDisposable
{
    private readonly Lock _gate = new();
    private readonly Dictionary<uint, List<StepRecord>> _records = [];
    private readonly HashSet<(uint Rank, ulong Sequence, long Step, Mode Mode, bool AtBegin)> _seen = [];
    private readonly Dictionary<string, TensorIndex> _tensors = new(StringComparer.Ordinal);
    private readonly SortedSet<(long Step, Mode Mode)> _steps = [];
    private readonly KafkaTrialSource? _live;
    private TaskCompletionSource _changed = NewSignal();
    private long _recordCount;

    private Trial(string run, string source, KafkaTrialOptions? live = null)
    {
        Run = run;
        Source = source;
        if (live is not null)
        {
            _live = new KafkaTrialSource(live, Add, Changed);
        }
    }

    /// <summary>The run id.</summary>
    public string Run { get; }

    /// <summary>Where the records come from (the archive directory, or <c>kafka:{bootstrap}/{topic}</c>), for messages.</summary>
    public string Source { get; }

    /// <summary>Records held (duplicates left out).</summary>
    public long RecordCount
    {
        get
        {
            lock (_gate)
            {
                return _recordCount;
            }
        }
    }

    /// <summary>The ranks that traced records, ascending (smdebug's <c>trial.workers()</c>).</summary>
    public IReadOnlyList<int> Workers
    {
        get
        {
            lock (_gate)
            {
                return [.. _records.Keys.Order().Select(r => (int)r)];
            }
        }
    }

    /// <summary>The modes of the records, ascending (smdebug's <c>trial.modes()</c>).</summary>
    public IReadOnlyList<Mode> Modes
    {
        get
        {
            lock (_gate)
            {
                return [.. _steps.Select(s => s.Mode).Distinct().Order()];
            }
        }
    }

    /// <summary>
    /// Reads the run <paramref name="run"/> (or the archive's only run) from the archive at <paramref name="directory"/>.
    /// </summary>
    /// <param name="directory">Archive directory (or one archive Parquet file).</param>
    /// <param name="run">The run; null: the archive must hold exactly one.</param>
    /// <param name="cancellationToken">Stops the read.</param>
    /// <exception cref="ArchiveReadException">No archive files, or a file cannot be read (the message names it).</exception>
    /// <exception cref="TrialException">No record of <paramref name="run"/>, or several runs and none chosen (the
    /// message lists them).</exception>
    public static Trial Open(string directory, string? run = null, CancellationToken cancellationToken = default)
    {
        IReadOnlyList<Trial> trials = OpenAll(directory, run, cancellationToken);
        if (trials.Count > 1)
        {
            throw new TrialException($"{directory}: the archive holds {trials.Count} runs ({string.Join(", ", trials.Select(t => t.Run))}): choose one");
        }

        return trials.Count == 1 ? trials[0] : throw new TrialException($"{directory}: no records{(run is null ? "" : " of run " + run)}");
    }

    /// <summary>One trial per run of the archive at <paramref name="directory"/> (or of <paramref name="run"/> only), by run id.</summary>
    /// <exception cref="ArchiveReadException">No archive files, or a file cannot be read (the message names it).</exception>
    public static IReadOnlyList<Trial> OpenAll(string directory, string? run = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        var trials = new Dictionary<string, Trial>(StringComparer.Ordinal);
        string source = Path.GetFullPath(directory);
        foreach (StepRecord record in ArchiveRecords.Read(directory, run, cancellationToken: cancellationToken))
        {
            if (!trials.TryGetValue(record.RunId, out Trial? trial))
            {
                trial = new Trial(record.RunId, source);
                trials.Add(record.RunId, trial);
            }

            trial.Add(record);
        }

        return [.. trials.Values.OrderBy(t => t.Run, StringComparer.Ordinal)];
    }

    /// <summary>
    /// A trial that follows run <see cref="KafkaTrialOptions.Run"/> on the steps topic: a consumer of its own assigns every
    /// partition from the beginning (no consumer group offsets are read or committed) and adds each record of the run as it
    /// arrives, until the trial is disposed.
    /// </summary>
    /// <remarks>
    /// <see cref="WaitUntilCaughtUpAsync"/> completes once the records the topic held at the start are read;
    /// <see cref="WaitForStepsAsync"/> waits for steps still to come. A consumer error that librdkafka reports as fatal
    /// ends the following and faults those waits (<see cref="Failure"/>); other errors (a broker away) are retried by
    /// librdkafka. Undecodable messages are skipped and counted (<see cref="Undecodable"/>).
    /// </remarks>
    /// <exception cref="ArgumentException">No bootstrap servers, topic or run.</exception>
    /// <exception cref="TrialException">The topic's partitions could not be listed (the message names the topic).</exception>
    public static Trial Live(KafkaTrialOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        ArgumentException.ThrowIfNullOrEmpty(options.Run, nameof(options.Run));
        var trial = new Trial(options.Run, $"kafka:{options.BootstrapServers}/{options.Topic}", options);
        try
        {
            trial._live!.Start();
        }
        catch
        {
            trial.Dispose();
            throw;
        }

        return trial;
    }

    /// <summary>
    /// Reads the steps topic from the beginning up to the end offsets it has when the read starts, and returns one
    /// finished trial per run (or of <see cref="KafkaTrialOptions.Run"/> only), by run id.
    /// </summary>
    /// <exception cref="ArgumentException">No bootstrap servers or topic.</exception>
    /// <exception cref="TrialException">The topic's partitions could not be listed, or the consumer failed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public static async Task<IReadOnlyList<Trial>> ReadKafkaAsync(KafkaTrialOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var trials = new Dictionary<string, Trial>(StringComparer.Ordinal);
        string source = $"kafka:{options.BootstrapServers}/{options.Topic}";
        var caughtUp = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using (var reader = new KafkaTrialSource(
            options,
            record =>
            {
                lock (trials)
                {
                    if (!trials.TryGetValue(record.RunId, out Trial? trial))
                    {
                        trial = new Trial(record.RunId, source);
                        trials.Add(record.RunId, trial);
                    }

                    trial.Add(record);
                }
            },
            () => { }))
        {
            reader.Start();
            await reader.CaughtUp.WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        lock (trials)
        {
            return [.. trials.Values.OrderBy(t => t.Run, StringComparer.Ordinal)];
        }
    }

    /// <summary>Why a live trial stopped following (a fatal consumer error); null while it follows, and for other trials.</summary>
    public string? Failure => _live?.Failure;

    /// <summary>Messages of a live trial that were not valid step records (skipped).</summary>
    public long Undecodable => _live?.Undecodable ?? 0;

    /// <summary>
    /// Completes once a live trial has read the records its topic held when it started; at once for other trials.
    /// </summary>
    /// <exception cref="TrialException">The consumer failed first.</exception>
    public Task WaitUntilCaughtUpAsync(CancellationToken cancellationToken = default) =>
        _live is null ? Task.CompletedTask : _live.CaughtUp.WaitAsync(cancellationToken);

    /// <summary>
    /// Waits until every step of <paramref name="steps"/> has a record (of <paramref name="mode"/>; null: any) from every
    /// worker seen so far (smdebug's <c>wait_for_steps</c>). Returns at once when they are there.
    /// </summary>
    /// <exception cref="TrialException">A trial that does not follow a topic lacks a step (it can never come; the
    /// message lists the nearest ones), or a live trial's consumer failed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled first.</exception>
    public async Task WaitForStepsAsync(IEnumerable<long> steps, Mode? mode = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(steps);
        long[] wanted = [.. steps];
        while (true)
        {
            Task changed;
            lock (_gate)
            {
                long? missing = wanted.Cast<long?>().FirstOrDefault(s => !HasStepLocked(s!.Value, mode));
                if (missing is null)
                {
                    return;
                }

                if (_live is null)
                {
                    throw new TrialException($"{Source}: run {Run} has no step {missing.Value.ToString(CultureInfo.InvariantCulture)}{ModeText(mode)} ({NearestText(_steps.Where(s => mode is null || s.Mode == mode).Select(s => s.Step), missing.Value)})");
                }

                changed = _changed.Task;
            }

            if (_live.Failure is { } failure)
            {
                throw new TrialException($"{Source}: stopped following run {Run}: {failure}");
            }

            await changed.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The steps with records (of <paramref name="mode"/>; null: any), ascending, each once (smdebug's <c>trial.steps(mode)</c>).</summary>
    public IReadOnlyList<long> Steps(Mode? mode = null)
    {
        lock (_gate)
        {
            return [.. _steps.Where(s => mode is null || s.Mode == mode).Select(s => s.Step).Distinct()];
        }
    }

    /// <summary>The collections of the traced tensors (built-in ones by their selection name, e.g. <c>gradients</c>, and custom ones), ascending.</summary>
    public IReadOnlyList<string> Collections()
    {
        lock (_gate)
        {
            return [.. _tensors.Values.SelectMany(t => t.Collections).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)];
        }
    }

    /// <summary>Whether a tensor of that name was traced (smdebug's <c>has_tensor</c>).</summary>
    public bool HasTensor(string name)
    {
        lock (_gate)
        {
            return _tensors.ContainsKey(name);
        }
    }

    /// <summary>
    /// Names of the traced tensors, ascending (smdebug's <c>trial.tensor_names(step, mode, regex, collection)</c>): every
    /// condition given must hold (their intersection).
    /// </summary>
    /// <param name="collection">Only tensors of this collection (e.g. <c>gradients</c>, or a custom one), case-insensitive; null: any.</param>
    /// <param name="regex">Only names this .NET regular expression finds a match in (a search, as <c>monitor export --tensor</c>;
    /// anchor it with <c>^</c>/<c>$</c>); null: any.</param>
    /// <param name="step">Only tensors traced at this step; null: any.</param>
    /// <param name="mode">With <paramref name="step"/>: the step's mode; alone: tensors traced in this mode; null: any.</param>
    /// <exception cref="ArgumentException"><paramref name="regex"/> is not a valid regular expression.</exception>
    public IReadOnlyList<string> TensorNames(string? collection = null, string? regex = null, long? step = null, Mode? mode = null)
    {
        Regex? pattern = regex is null ? null : new Regex(regex, RegexOptions.NonBacktracking | RegexOptions.CultureInvariant);
        lock (_gate)
        {
            return [.. _tensors.Values
                .Where(t => collection is null || t.Collections.Contains(collection))
                .Where(t => pattern is null || pattern.IsMatch(t.Name))
                .Where(t => step is null && mode is null || t.Entries.Keys.Any(k => (step is null || k.Step == step) && (mode is null || k.Mode == mode)))
                .Select(t => t.Name)
                .Order(StringComparer.Ordinal)];
        }
    }

    /// <summary>The tensor of that name (smdebug's <c>trial.tensor(name)</c>).</summary>
    /// <exception cref="TensorUnavailableException">No tensor of that name was traced; the message lists the closest names.</exception>
    public TrialTensor Tensor(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        lock (_gate)
        {
            if (_tensors.ContainsKey(name))
            {
                return new TrialTensor(this, name);
            }

            IEnumerable<string> closest = _tensors.Keys.OrderBy(k => Distance(k, name)).ThenBy(k => k, StringComparer.Ordinal).Take(5);
            throw new TensorUnavailableException($"{Source}: run {Run} has no tensor {name}{(_tensors.Count == 0 ? "" : "; closest: " + string.Join(", ", closest))}");
        }
    }

    /// <summary>
    /// The records in the order the service analyses them: each rank's in its producer's order (sequence, then step),
    /// ranks merged by event time (then rank). A snapshot: a live trial's later records are not in it.
    /// </summary>
    public IReadOnlyList<StepRecord> Records() => InEventTimeOrder([this]);

    /// <summary>As <see cref="Records"/>, for the records of several trials (runs) together, merged by event time.</summary>
    public static IReadOnlyList<StepRecord> InEventTimeOrder(IEnumerable<Trial> trials)
    {
        ArgumentNullException.ThrowIfNull(trials);
        var streams = new List<StepRecord[]>();
        foreach (Trial trial in trials)
        {
            lock (trial._gate)
            {
                foreach (List<StepRecord> rank in trial._records.OrderBy(r => r.Key).Select(r => r.Value))
                {
                    streams.Add([.. rank.OrderBy(r => r.Sequence).ThenBy(r => r.Step)]);
                }
            }
        }

        // A k-way merge: a rank's own order is kept even where its clock went backwards.
        var merged = new List<StepRecord>(streams.Sum(s => s.Length));
        var queue = new PriorityQueue<int, (long Time, int Stream)>();
        var next = new int[streams.Count];
        for (int i = 0; i < streams.Count; i++)
        {
            if (streams[i].Length > 0)
            {
                queue.Enqueue(i, (streams[i][0].EventTimeUnixNanos, i));
            }
        }

        while (queue.TryDequeue(out int stream, out _))
        {
            merged.Add(streams[stream][next[stream]++]);
            if (next[stream] < streams[stream].Length)
            {
                queue.Enqueue(stream, (streams[stream][next[stream]].EventTimeUnixNanos, stream));
            }
        }

        return merged;
    }

    /// <summary>Stops following the topic (a live trial); what was read stays readable. Idempotent.</summary>
    public void Dispose() => _live?.Dispose();

    /// <summary>The traced tensor at one (step, mode, rank), resolving an unspecified mode or rank when only one fits.</summary>
    internal TensorRecord Find(string name, long step, Mode? mode, int? rank)
    {
        lock (_gate)
        {
            TensorIndex index = _tensors[name];
            List<((long Step, Mode Mode) Key, uint Rank)> candidates = [.. index.Entries
                .Where(e => e.Key.Step == step && (mode is null || e.Key.Mode == mode))
                .SelectMany(e => e.Value.Keys.Where(r => rank is null || r == rank).Select(r => (e.Key, r)))];
            string where = $"{name} at step {step.ToString(CultureInfo.InvariantCulture)}{ModeText(mode)}{(rank is null ? "" : " rank " + rank.Value.ToString(CultureInfo.InvariantCulture))}";
            if (candidates.Count == 0)
            {
                IEnumerable<long> steps = index.Entries.Where(e => (mode is null || e.Key.Mode == mode) && (rank is null || e.Value.ContainsKey((uint)rank))).Select(e => e.Key.Step);
                throw new TensorUnavailableForStepException($"{Source}: run {Run}: {where} was not traced ({NearestText(steps, step)})");
            }

            if (candidates.Select(c => c.Key.Mode).Distinct().Count() > 1)
            {
                throw new TensorUnavailableForStepException($"{Source}: run {Run}: {where} was traced in modes {string.Join(", ", candidates.Select(c => ArchiveModeName(c.Key.Mode)).Distinct())}: pass the mode");
            }

            if (candidates.Count > 1)
            {
                throw new TensorUnavailableForStepException($"{Source}: run {Run}: {where} was traced by ranks {string.Join(", ", candidates.Select(c => c.Rank).Order())}: pass the rank");
            }

            return index.Entries[candidates[0].Key][candidates[0].Rank].Tensor;
        }
    }

    internal IReadOnlyList<long> TensorSteps(string name, Mode? mode, bool showIncompleteSteps)
    {
        lock (_gate)
        {
            TensorIndex index = _tensors[name];
            int workers = index.Entries.Values.SelectMany(r => r.Keys).Distinct().Count();
            return [.. index.Entries
                .Where(e => mode is null || e.Key.Mode == mode)
                .GroupBy(e => e.Key.Step)
                .Where(g => showIncompleteSteps || g.SelectMany(e => e.Value.Keys).Distinct().Count() == workers)
                .Select(g => g.Key)
                .Order()];
        }
    }

    internal IReadOnlyList<int> TensorWorkers(string name, long? step, Mode? mode)
    {
        lock (_gate)
        {
            return [.. _tensors[name].Entries
                .Where(e => (step is null || e.Key.Step == step) && (mode is null || e.Key.Mode == mode))
                .SelectMany(e => e.Value.Keys).Distinct().Order().Select(r => (int)r)];
        }
    }

    internal string Describe(string name, long step, Mode? mode, int? rank) =>
        $"{Source}: run {Run}: {name} at step {step.ToString(CultureInfo.InvariantCulture)}{ModeText(mode)}{(rank is null ? "" : " rank " + rank.Value.ToString(CultureInfo.InvariantCulture))}";

    private void Add(StepRecord record)
    {
        if (record.Tensors.Count == 0 && record.RunEnd is null)
        {
            return;
        }

        lock (_gate)
        {
            if (record.Sequence > 0 && !_seen.Add((record.Rank, record.Sequence, record.Step, record.Mode, record.AtBegin)))
            {
                return;
            }

            if (!_records.TryGetValue(record.Rank, out List<StepRecord>? rank))
            {
                rank = [];
                _records.Add(record.Rank, rank);
            }

            rank.Add(record);
            _recordCount++;
            if (record.Tensors.Count > 0)
            {
                _steps.Add((record.Step, record.Mode));
            }

            foreach (TensorRecord tensor in record.Tensors)
            {
                if (!_tensors.TryGetValue(tensor.Name, out TensorIndex? index))
                {
                    index = new TensorIndex(tensor.Name);
                    _tensors.Add(tensor.Name, index);
                }

                index.Collections.UnionWith(tensor.Collections.Select(CollectionNames.NameOf).Concat(tensor.CustomCollections));
                if (!index.Entries.TryGetValue((record.Step, record.Mode), out SortedDictionary<uint, (TensorRecord Tensor, bool AtBegin)>? ranks))
                {
                    ranks = [];
                    index.Entries.Add((record.Step, record.Mode), ranks);
                }

                if (!ranks.TryGetValue(record.Rank, out (TensorRecord Tensor, bool AtBegin) held) || (held.AtBegin && !record.AtBegin))
                {
                    ranks[record.Rank] = (tensor, record.AtBegin);
                }
            }
        }
    }

    private void Changed()
    {
        TaskCompletionSource previous;
        lock (_gate)
        {
            previous = _changed;
            _changed = NewSignal();
        }

        previous.TrySetResult();
    }

    private bool HasStepLocked(long step, Mode? mode)
    {
        List<uint> workers = [.. _records.Where(r => r.Value.Any(x => x.Tensors.Count > 0)).Select(r => r.Key)];
        return workers.Count > 0 && workers.All(w => _records[w].Any(r => r.Step == step && r.Tensors.Count > 0 && (mode is null || r.Mode == mode)));
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private static string ModeText(Mode? mode) => mode is { } m ? " (" + ArchiveModeName(m) + ")" : "";

    private static string ArchiveModeName(Mode mode) => mode switch
    {
        Mode.Train => "train",
        Mode.Eval => "eval",
        Mode.Predict => "predict",
        _ => "unspecified",
    };

    /// <summary>"nearest traced steps 249, 251" (at most two on each side), or "no step traced".</summary>
    internal static string NearestText(IEnumerable<long> steps, long step)
    {
        long[] sorted = [.. steps.Distinct().Order()];
        if (sorted.Length == 0)
        {
            return "no step traced";
        }

        int at = Array.BinarySearch(sorted, step);
        int index = at >= 0 ? at : ~at;
        IEnumerable<long> near = sorted[Math.Max(0, index - 2)..Math.Min(sorted.Length, index + 2)];
        return "nearest traced steps " + string.Join(", ", near.Select(s => s.ToString(CultureInfo.InvariantCulture)));
    }

    private static int Distance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++)
        {
            previous[j] = j;
        }

        for (int i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            }

            (previous, current) = (current, previous);
        }

        return previous[b.Length];
    }

    private sealed class TensorIndex(string name)
    {
        public string Name { get; } = name;

        public HashSet<string> Collections { get; } = new(StringComparer.OrdinalIgnoreCase);

        public SortedDictionary<(long Step, Mode Mode), SortedDictionary<uint, (TensorRecord Tensor, bool AtBegin)>> Entries { get; } = [];
    }
}
