using System.Globalization;
using System.Text;
using Monitor.Contracts.V1;

namespace Monitor.Analysis;

/// <summary>Options of <see cref="AnalysisEngine"/>.</summary>
public sealed class AnalysisEngineOptions
{
    /// <summary>
    /// How far (in event time) a rank's record may lag behind the newest record of that rank and still be evaluated.
    /// Older records are late: counted in <see cref="AnalysisEngine.LateRecords"/> and not evaluated. Default 30 s.
    /// </summary>
    public TimeSpan LateGrace { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long a rank may send nothing before the engine forgets it (<see cref="AnalysisEngine.Tick(bool)"/>, in event
    /// time while the host lags): its alerts resolve ("forgotten after ... without a record"), its positions and every
    /// rule's state for it go, and <see cref="AnalysisEngine.RanksForgotten"/> tells the host to remove its series.
    /// Default 24 h. <see cref="TimeSpan.Zero"/>: never (state then grows with every rank ever seen).
    /// </summary>
    public TimeSpan IdleTtl { get; init; } = TimeSpan.FromHours(24);
}

/// <summary>
/// The analysis engine: step records in, alert transitions out. Runs every rule over every record and keeps one
/// alert per (rule, run, rank, tensor) with Prometheus' lifecycle: inactive → pending → firing → inactive
/// (resolved). A firing alert is reported once when it starts firing and once when it resolves, not on every record.
/// </summary>
/// <remarks>
/// <para>Pure: no I/O; event times come from the records, and the injected <see cref="TimeProvider"/> serves records
/// without one and <see cref="Tick(bool)"/>. The same engine serves the live service, replays and tests.</para>
/// <para><b>Ordering policy.</b> Each rank's records arrive in order (one Kafka partition per key); train, eval and
/// predict steps are separate streams. A record whose step is not after the newest step of its rank and mode is
/// either a redelivery (its producer sequence number is not above the newest seen: dropped, counted as duplicate), a
/// restarted worker (its sequence starts again but its event time is newer: accepted as the new position), a job
/// resumed from a checkpoint (a lower training step with a newer event time: a new series, every rule forgets the rank
/// through <see cref="ITrainingRule.ForgetRank"/>, counted in <see cref="SeriesRestarts"/>), or out of order: within
/// <see cref="AnalysisEngineOptions.LateGrace"/> of the newest event time it is evaluated and counted, beyond it it is
/// late (dropped, counted).
/// One-shot <c>at_begin</c> captures are not steps and are not evaluated.</para>
/// <para><b>Runs that end.</b> A record with <see cref="StepRecord.RunEnd"/> (the tracer's last for the rank) resolves
/// every alert of that run and rank as "run ended", whatever <c>keepFiringFor</c>; the rank's stream positions and
/// every rule's state for it are forgotten (<see cref="LastRankEnded"/> tells the host), and its redelivered records are
/// duplicates. A later record of the rank with a restarted sequence and a newer event time is a new job.</para>
/// <para><b>State as data.</b> What the engine and its rules keep per (run, rank) snapshots to bytes
/// (<see cref="WriteSnapshot(string, uint, System.Buffers.IBufferWriter{byte})"/>, <see cref="Keys"/>) and restores
/// all or nothing per key (<see cref="RestoreSnapshot"/>); rules take part through <see cref="State.IStatefulRule"/>,
/// and those that do not are listed in <see cref="UnsnapshottedRules"/>.</para>
/// <para>Not thread-safe: one consumer thread feeds it. Rule exceptions are counted in <see cref="RuleFaults"/> and
/// skip that rule for that record only.</para>
/// </remarks>
public sealed partial class AnalysisEngine
{
    private RuleBinding[] _rules;
    private readonly TimeProvider _timeProvider;
    private readonly AnalysisEngineOptions _options;
    private readonly RuleContext _context;
    private readonly Dictionary<(string AlertName, SeriesKey Series, string Feature), AlertTracker> _alerts = [];
    private readonly Dictionary<(string Run, uint Rank, Mode Mode), StreamPosition> _streams = [];
    private readonly List<AlertTransition> _transitions = [];
    private readonly List<(string Run, uint Rank)> _forgotten = [];
    private readonly List<DriftObservation> _driftObservations = [];
    // Alerts tracked per rule (by index in _rules): a passing verdict of a rule with none is not looked up at all.
    private int[] _alertsPerRule;
    // Ranks whose end-of-run record was processed (bounded, oldest forgotten first): their redelivered records are
    // duplicates, not a new series.
    private readonly Dictionary<(string Run, uint Rank), EndedRank> _ended = [];
    private readonly Queue<(string Run, uint Rank)> _endedOrder = new();
    private DateTimeOffset _recordTime;
    private TraceContext _recordTrace;
    private DateTimeOffset _newestEventTime = DateTimeOffset.MinValue;

    /// <summary>Ended ranks remembered to recognise their redelivered records.</summary>
    private const int EndedRanksKept = 10_000;

    /// <summary>Creates an engine over rules with default bindings (fire at once, severity warning).</summary>
    /// <exception cref="ArgumentException">Two rules share a name.</exception>
    public AnalysisEngine(IEnumerable<ITrainingRule> rules, TimeProvider? timeProvider = null)
        : this((rules ?? throw new ArgumentNullException(nameof(rules))).Select(r => new RuleBinding { Rule = r }), timeProvider)
    {
    }

    /// <summary>Creates an engine over configured rules (alert names must be unique).</summary>
    /// <exception cref="ArgumentException">Two rules share an alert name.</exception>
    public AnalysisEngine(IEnumerable<RuleBinding> rules, TimeProvider? timeProvider = null, AnalysisEngineOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(rules);
        _rules = Unique(rules);
        _alertsPerRule = new int[_rules.Length];
        _unsnapshotted = Unsnapshotted(_rules);
        _timeProvider = timeProvider ?? TimeProvider.System;
        _options = options ?? new AnalysisEngineOptions();
        _context = new RuleContext(this);
    }

    /// <summary>The rules, in evaluation order.</summary>
    public IReadOnlyList<RuleBinding> Rules => _rules;

    /// <summary>Exceptions thrown by rules so far.</summary>
    public long RuleFaults { get; private set; }

    /// <summary>The most recent rule exception, for diagnostics.</summary>
    public string? LastRuleFault { get; private set; }

    /// <summary>Records evaluated.</summary>
    public long RecordsEvaluated { get; private set; }

    /// <summary>Records evaluated although older than their rank's newest (within the grace).</summary>
    public long OutOfOrderRecords { get; private set; }

    /// <summary>Records dropped because older than their rank's newest by more than the grace.</summary>
    public long LateRecords { get; private set; }

    /// <summary>Records dropped because they repeat a step and sequence number already evaluated.</summary>
    public long DuplicateRecords { get; private set; }

    /// <summary>End-of-run records processed (<see cref="StepRecord.RunEnd"/>): ranks whose run ended.</summary>
    public long RanksEnded { get; private set; }

    /// <summary>Times a rank's training steps started over (a job resumed from a checkpoint): a new series began.</summary>
    public long SeriesRestarts { get; private set; }

    /// <summary>
    /// The rank the last <see cref="Process(StepRecord, TraceContext)"/> call ended (its end-of-run record), for the host
    /// to remove the rank's series; null for every other record.
    /// </summary>
    public RankEnded? LastRankEnded { get; private set; }

    /// <summary>The ranks the last <see cref="Tick(bool)"/> forgot for idleness (<see cref="AnalysisEngineOptions.IdleTtl"/>); reused by the next call.</summary>
    public IReadOnlyList<(string Run, uint Rank)> RanksForgotten => _forgotten;

    /// <summary>Ranks forgotten for idleness so far.</summary>
    public long RanksEvicted { get; private set; }

    /// <summary>
    /// The drift evaluations the last <see cref="Process(StepRecord, TraceContext)"/> call made (drift rules report through
    /// <see cref="RuleContext.ReportDrift"/>), for the host's gauges. The list is reused by the next call.
    /// </summary>
    public IReadOnlyList<DriftObservation> DriftObservations => _driftObservations;

    /// <summary>Alerts that are pending or firing now.</summary>
    public IEnumerable<AlertTransition> ActiveAlerts => _alerts.Values.Where(a => a.State != AlertState.Inactive).Select(a => a.Current!);

    /// <summary>Evaluates every rule on <paramref name="record"/>.</summary>
    /// <returns>The alert transitions it caused (empty most of the time). The list is reused by the next call.</returns>
    public IReadOnlyList<AlertTransition> Process(StepRecord record) => Process(record, TraceContext.None);

    /// <summary>
    /// Evaluates every rule on <paramref name="record"/>; the transitions it causes carry <paramref name="traceContext"/>
    /// (<see cref="AlertTransition.TraceContext"/>), which the engine only copies. Neither the engine nor its built-in
    /// rules keep <paramref name="record"/> or any message or repeated field in it past the call (only strings and
    /// copied values), so the caller may refill it for the next one (<see cref="Contracts.StepRecordReader"/>).
    /// </summary>
    /// <returns>The alert transitions it caused (empty most of the time). The list is reused by the next call.</returns>
    public IReadOnlyList<AlertTransition> Process(StepRecord record, TraceContext traceContext)
    {
        ArgumentNullException.ThrowIfNull(record);
        _transitions.Clear();
        _driftObservations.Clear();
        LastRankEnded = null;
        _recordTrace = traceContext;
        if (record.AtBegin)
        {
            return _transitions;
        }

        _recordTime = record.EventTimeUnixNanos > 0
            ? DateTimeOffset.UnixEpoch.AddTicks(record.EventTimeUnixNanos / 100)
            : _timeProvider.GetUtcNow();
        if (record.RunEnd is { } end)
        {
            EndRank(record, end.Reason);
            return _transitions;
        }

        if (!Admit(record))
        {
            return _transitions;
        }

        if (_recordTime > _newestEventTime)
        {
            _newestEventTime = _recordTime;
        }

        RecordsEvaluated++;
        _context.Run = record.RunId;
        _context.Rank = record.Rank;
        _context.Step = record.Step;
        for (int index = 0; index < _rules.Length; index++)
        {
            RuleBinding binding = _rules[index];
            _context.Binding = binding;
            _context.RuleIndex = index;
            try
            {
                binding.Rule.Evaluate(record, _context);
            }
#pragma warning disable CA1031 // A faulty rule (custom rules included) must not stop the others or the service.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                Fault(binding, ex);
            }
        }

        return _transitions;
    }

    /// <summary>
    /// Lets time-driven rules (<see cref="ITimedTrainingRule"/>) evaluate at the injected clock's current time, e.g.
    /// to notice that a run stopped sending records. Call it periodically; the service does every few seconds.
    /// Same as <see cref="Tick(bool)"/> with <c>caughtUp</c> true.
    /// </summary>
    /// <returns>The alert transitions it caused. The list is reused by the next call.</returns>
    public IReadOnlyList<AlertTransition> Tick() => Tick(caughtUp: true);

    /// <summary>
    /// Lets time-driven rules (<see cref="ITimedTrainingRule"/>) evaluate. When the host has read everything its input
    /// holds (<paramref name="caughtUp"/>), at the injected clock's current time; while it lags behind (records waiting
    /// in the topic), at the newest event time evaluated so far (never later than the clock), so that ranks whose
    /// records are merely unread do not look silent. Lagging before any record was evaluated, nothing is evaluated.
    /// </summary>
    /// <param name="caughtUp">Whether the host has processed every record available to it (e.g. consumer lag 0).</param>
    /// <returns>The alert transitions it caused. The list is reused by the next call.</returns>
    public IReadOnlyList<AlertTransition> Tick(bool caughtUp)
    {
        _transitions.Clear();
        _driftObservations.Clear();
        _forgotten.Clear();
        LastRankEnded = null;
        DateTimeOffset now = _timeProvider.GetUtcNow();
        if (!caughtUp)
        {
            if (_newestEventTime == DateTimeOffset.MinValue)
            {
                return _transitions;
            }

            if (_newestEventTime < now)
            {
                now = _newestEventTime;
            }
        }

        _recordTime = now;
        _recordTrace = TraceContext.None;
        ForgetIdleRanks(now);
        for (int index = 0; index < _rules.Length; index++)
        {
            RuleBinding binding = _rules[index];
            if (binding.Rule is not ITimedTrainingRule timed)
            {
                continue;
            }

            _context.Binding = binding;
            _context.RuleIndex = index;
            try
            {
                timed.Tick(now, _context);
            }
#pragma warning disable CA1031 // See Process.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                Fault(binding, ex);
            }
        }

        return _transitions;
    }

    /// <summary>
    /// Replaces the rules between records (a reloaded configuration). Alerts of rules that keep their alert name keep
    /// their state and take the new binding's settings; alerts of rules that are gone resolve (the returned
    /// transitions). The new rule instances start with empty windows.
    /// </summary>
    /// <exception cref="ArgumentException">Two rules share an alert name; nothing was replaced.</exception>
    public IReadOnlyList<AlertTransition> ReplaceRules(IEnumerable<RuleBinding> rules)
    {
        RuleBinding[] replacement = Unique(rules);
        var byName = replacement.ToDictionary(r => r.AlertName, StringComparer.Ordinal);
        _transitions.Clear();
        _recordTime = _timeProvider.GetUtcNow();
        _recordTrace = TraceContext.None;
        foreach (((string name, SeriesKey series, string feature), AlertTracker tracker) in _alerts.ToList())
        {
            if (byName.TryGetValue(name, out RuleBinding? binding))
            {
                tracker.Binding = binding;
                continue;
            }

            if (tracker.Update(false, tracker.Current?.Step ?? 0, double.NaN, double.NaN, "the rule was removed from the configuration", _recordTime, _recordTrace) is { } resolved)
            {
                _transitions.Add(resolved);
            }

            _alerts.Remove((name, series, feature));
        }

        _rules = replacement;
        _unsnapshotted = Unsnapshotted(_rules);
        RecountAlerts();
        return _transitions;
    }

    /// <summary>Recounts the alerts per rule (after a reload or the end of a rank: rare).</summary>
    private void RecountAlerts()
    {
        _alertsPerRule = new int[_rules.Length];
        var indexOf = new Dictionary<string, int>(_rules.Length, StringComparer.Ordinal);
        for (int index = 0; index < _rules.Length; index++)
        {
            indexOf[_rules[index].AlertName] = index;
        }

        foreach ((string name, _, _) in _alerts.Keys)
        {
            _alertsPerRule[indexOf[name]]++;
        }
    }

    /// <summary>
    /// An end-of-run record: the rank's alerts resolve as "run ended" (whatever <c>keepFiringFor</c>), its stream
    /// positions and the rules' state for it are forgotten, and it is remembered so its redelivered records are
    /// recognised as duplicates.
    /// </summary>
    private void EndRank(StepRecord record, RunEndReason reason)
    {
        var rank = (record.RunId, record.Rank);
        if (_ended.TryGetValue(rank, out EndedRank seen) && record.Sequence <= seen.Sequence && _recordTime <= seen.At)
        {
            DuplicateRecords++;
            return;
        }

        string description = string.Create(CultureInfo.InvariantCulture, $"run ended ({Words(reason)}) at step {record.Step}");
        foreach ((var key, AlertTracker tracker) in _alerts)
        {
            if (key.Series.Run != record.RunId || key.Series.Rank != record.Rank)
            {
                continue;
            }

            if (tracker.End(record.Step, description, _recordTime, _recordTrace) is { } resolved)
            {
                _transitions.Add(resolved);
            }

            // Removing while enumerating is allowed for Dictionary since .NET Core 3.0.
            _alerts.Remove(key);
        }

        RecountAlerts();
        foreach (Mode mode in (ReadOnlySpan<Mode>)[Mode.Unspecified, Mode.Train, Mode.Eval, Mode.Predict])
        {
            _streams.Remove((record.RunId, record.Rank, mode));
        }

        ForgetRank(record.RunId, record.Rank);
        if (_ended.TryAdd(rank, new EndedRank(record.Sequence, _recordTime)))
        {
            _endedOrder.Enqueue(rank);
            if (_endedOrder.Count > EndedRanksKept)
            {
                _ended.Remove(_endedOrder.Dequeue());
            }
        }
        else
        {
            _ended[rank] = new EndedRank(record.Sequence, _recordTime);
        }

        RanksEnded++;
        LastRankEnded = new RankEnded(record.RunId, record.Rank, record.Step, reason);
    }

    /// <summary>Forgets the ranks whose newest record is older than <see cref="AnalysisEngineOptions.IdleTtl"/> at <paramref name="now"/>.</summary>
    private void ForgetIdleRanks(DateTimeOffset now)
    {
        TimeSpan ttl = _options.IdleTtl;
        if (ttl <= TimeSpan.Zero || _streams.Count == 0)
        {
            return;
        }

        var newest = new Dictionary<(string Run, uint Rank), DateTimeOffset>();
        foreach (((string run, uint rank, Mode _), StreamPosition position) in _streams)
        {
            if (!newest.TryGetValue((run, rank), out DateTimeOffset seen) || position.EventTime > seen)
            {
                newest[(run, rank)] = position.EventTime;
            }
        }

        foreach (((string run, uint rank), DateTimeOffset seen) in newest)
        {
            if (now - seen <= ttl)
            {
                continue;
            }

            string description = string.Create(CultureInfo.InvariantCulture, $"forgotten after {ttl.TotalHours:0.##} h without a record (idle TTL)");
            foreach ((var key, AlertTracker tracker) in _alerts)
            {
                if (key.Series.Run == run && key.Series.Rank == rank)
                {
                    if (tracker.End(tracker.Current?.Step ?? 0, description, now, TraceContext.None) is { } resolved)
                    {
                        _transitions.Add(resolved);
                    }

                    _alerts.Remove(key);
                }
            }

            foreach (Mode mode in (ReadOnlySpan<Mode>)[Mode.Unspecified, Mode.Train, Mode.Eval, Mode.Predict])
            {
                _streams.Remove((run, rank, mode));
            }

            ForgetRank(run, rank);
            _forgotten.Add((run, rank));
            RanksEvicted++;
        }

        if (_forgotten.Count > 0)
        {
            RecountAlerts();
        }
    }

    private static string Words(RunEndReason reason) => reason switch
    {
        RunEndReason.Done => "done",
        RunEndReason.Stopped => "stopped by the monitor",
        RunEndReason.Cancelled => "cancelled",
        _ => "no reason given",
    };

    private void ForgetRank(string run, uint rank)
    {
        foreach (RuleBinding binding in _rules)
        {
            try
            {
                binding.Rule.ForgetRank(run, rank);
            }
#pragma warning disable CA1031 // See Process.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                Fault(binding, ex);
            }
        }
    }

    private static RuleBinding[] Unique(IEnumerable<RuleBinding> rules)
    {
        ArgumentNullException.ThrowIfNull(rules);
        RuleBinding[] array = [.. rules];
        string? duplicate = array.GroupBy(r => r.AlertName, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1)?.Key;
        return duplicate is null
            ? array
            : throw new ArgumentException($"two rules are named '{duplicate}'; rule names must be unique", nameof(rules));
    }

    private void Fault(RuleBinding binding, Exception ex)
    {
        RuleFaults++;
        LastRuleFault = $"{binding.AlertName}: {ex.GetType().Name}: {ex.Message}";
    }

    private bool Admit(StepRecord record)
    {
        if (_ended.Count != 0 && _ended.TryGetValue((record.RunId, record.Rank), out EndedRank ended))
        {
            if (record.Sequence <= ended.Sequence && _recordTime <= ended.At)
            {
                // A redelivered record of a rank whose run has ended: it must not bring the rank back.
                DuplicateRecords++;
                return false;
            }

            // A new job under the same run id (its sequence starts again, its clock has moved on).
            _ended.Remove((record.RunId, record.Rank));
        }

        // Train and eval steps of a rank are separate streams: an eval step shares the train step's number.
        var key = (record.RunId, record.Rank, record.Mode);
        if (!_streams.TryGetValue(key, out StreamPosition? position))
        {
            _streams[key] = new StreamPosition { Step = record.Step, Sequence = record.Sequence, EventTime = _recordTime };
            return true;
        }

        if (record.Step > position.Step
            || (_recordTime > position.EventTime && (record.Sequence < position.Sequence || record.Step < position.Step)))
        {
            // Newer, or a restarted worker (its sequence starts again) or a job resumed from a checkpoint (its steps go
            // back), its clock having moved on: a fresh position. Steps that go back begin a new series: the rules
            // forget the rank, as its windows would mix the abandoned steps with the repeated ones.
            if (record.Step < position.Step && record.Mode is Mode.Train or Mode.Unspecified)
            {
                SeriesRestarts++;
                ForgetRank(record.RunId, record.Rank);
            }

            position.Step = record.Step;
            position.Sequence = record.Sequence;
            position.EventTime = _recordTime > position.EventTime ? _recordTime : position.EventTime;
            return true;
        }

        if (record.Sequence <= position.Sequence)
        {
            // Seen before: a redelivery (Kafka is at-least-once) of this or an earlier record of the same worker.
            DuplicateRecords++;
            return false;
        }

        if (position.EventTime - _recordTime > _options.LateGrace)
        {
            LateRecords++;
            return false;
        }

        OutOfOrderRecords++;
        position.Sequence = record.Sequence;
        return true;
    }

    internal void OnDriftObservation(in DriftObservation observation) => _driftObservations.Add(observation);

    /// <summary>Whether the rule being evaluated has any alert tracked (pending, firing or kept firing).</summary>
    internal bool RuleHasAlerts(int ruleIndex) => _alertsPerRule[ruleIndex] != 0;

    internal bool IsActive(int ruleIndex, RuleBinding binding, string run, uint rank, string? tensor, string? feature) =>
        _alertsPerRule[ruleIndex] != 0 && _alerts.ContainsKey((binding.AlertName, new SeriesKey(run, rank, tensor ?? ""), feature ?? ""));

    internal void OnReport(RuleBinding binding, string run, uint rank, long step, string? tensor, string? feature, bool holds, double value, double threshold, string description)
    {
        // No key hashing for a passing verdict while its rule tracks no alert: a healthy series' verdicts cost nothing
        // here, even while other rules' alerts fire.
        if (!holds && _alertsPerRule[_context.RuleIndex] == 0)
        {
            return;
        }

        var series = new SeriesKey(run, rank, tensor ?? "");
        var key = (binding.AlertName, series, feature ?? "");
        if (!_alerts.TryGetValue(key, out AlertTracker? tracker))
        {
            if (!holds)
            {
                return;
            }

            var labels = new Dictionary<string, string>(binding.Labels, StringComparer.Ordinal)
            {
                [AlertLabels.AlertName] = binding.AlertName,
                [AlertLabels.Run] = run,
                [AlertLabels.Rank] = rank.ToString(CultureInfo.InvariantCulture),
                [AlertLabels.Severity] = binding.Severity,
            };
            if (tensor is not null)
            {
                labels[AlertLabels.Tensor] = tensor;
            }

            if (feature is not null)
            {
                labels[AlertLabels.Feature] = feature;
            }

            tracker = new AlertTracker(new AlertIdentity(labels), binding);
            _alerts[key] = tracker;
            _alertsPerRule[_context.RuleIndex]++;
        }

        if (tracker.Update(holds, step, value, threshold, description, _recordTime, _recordTrace) is { } transition)
        {
            _transitions.Add(transition);
        }

        if (tracker.State == AlertState.Inactive)
        {
            // Only active alerts keep state; memory stays bounded by what is pending or firing.
            _alerts.Remove(key);
            _alertsPerRule[_context.RuleIndex]--;
        }
    }

    private readonly record struct EndedRank(ulong Sequence, DateTimeOffset At);

    private sealed class StreamPosition
    {
        public long Step;
        public ulong Sequence;
        public DateTimeOffset EventTime;
    }

    private sealed partial class AlertTracker(AlertIdentity identity, RuleBinding binding)
    {
        private int _consecutive;
        private int _passing;
        private DateTimeOffset _keepFiringSince;

        public RuleBinding Binding { get; set; } = binding;
        private DateTimeOffset _activeSince;

        public AlertState State { get; private set; }

        // The latest evaluation of an alert whose state did not change; its transition (annotations rendered) is built
        // only when asked for (resends, ActiveAlerts), not on every evaluation of a firing alert.
        private (AlertState State, AlertState Previous, long Step, double Value, double Threshold, string Description, DateTimeOffset At, TraceContext Trace) _latest;
        private AlertTransition? _current;

        /// <summary>The alert as of its latest evaluation; null before the first.</summary>
        public AlertTransition? Current => _current ??= _latest.Description is null ? null : Transition(_latest.State, _latest.Previous, _latest.Step,
            _latest.Value, _latest.Threshold, _latest.Description, _latest.At, _latest.Trace);

        public AlertTransition? Update(bool holds, long step, double value, double threshold, string description, DateTimeOffset at, TraceContext trace)
        {
            AlertState previous = State;
            if (holds)
            {
                if (State == AlertState.Inactive)
                {
                    _activeSince = at;
                    _consecutive = 0;
                }

                _consecutive++;
                _passing = 0;
                // Once firing, an alert stays firing while the condition holds (also after a reload raised its 'for').
                bool held = State == AlertState.Firing || (_consecutive > Binding.ForEvaluations && at - _activeSince >= Binding.ForDuration);
                State = held ? AlertState.Firing : AlertState.Pending;
            }
            else if (State == AlertState.Firing && KeepsFiring(at))
            {
                // Prometheus' keep_firing_for: no transition, and the alert keeps the values that made it fire.
                return null;
            }
            else
            {
                _consecutive = 0;
                _passing = 0;
                State = AlertState.Inactive;
            }

            if (State == previous)
            {
                if (State != AlertState.Inactive)
                {
                    _latest = (State, State, step, value, threshold, description, at, trace);
                    _current = null;
                }

                return null;
            }

            AlertTransition transition = Transition(State, previous, step, value, threshold, description, at, trace);
            if (State != AlertState.Inactive)
            {
                _latest = (State, previous, step, value, threshold, description, at, trace);
                _current = transition;
            }

            return transition;
        }

        private AlertTransition Transition(AlertState state, AlertState previous, long step, double value, double threshold, string description, DateTimeOffset at, TraceContext trace) =>
            new(identity, state, previous, step, value, threshold, description, _activeSince, at)
            {
                Annotations = Render(Binding, identity, step, value, threshold, description),
                Actions = Binding.Actions,
                TraceContext = trace,
            };

        /// <summary>Resolves the alert whatever its keep-firing settings (the rank's run ended).</summary>
        public AlertTransition? End(long step, string description, DateTimeOffset at, TraceContext trace)
        {
            AlertState previous = State;
            _consecutive = 0;
            _passing = 0;
            State = AlertState.Inactive;
            return previous == AlertState.Inactive
                ? null
                : new AlertTransition(identity, State, previous, step, double.NaN, double.NaN, description, _activeSince, at)
                {
                    Annotations = Render(Binding, identity, step, double.NaN, double.NaN, description),
                    Actions = Binding.Actions,
                    TraceContext = trace,
                };
        }

        private bool KeepsFiring(DateTimeOffset at)
        {
            if (_passing++ == 0)
            {
                _keepFiringSince = at;
            }

            return _passing <= Binding.KeepFiringForEvaluations || at - _keepFiringSince < Binding.KeepFiringFor;
        }
    }

    private static Dictionary<string, string> Render(RuleBinding binding, AlertIdentity identity, long step, double value, double threshold, string description)
    {
        var annotations = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["summary"] = $"{identity[AlertLabels.AlertName]} on run {identity[AlertLabels.Run]} rank {identity[AlertLabels.Rank]}"
                + (identity[AlertLabels.Tensor] is { Length: > 0 } t ? $" tensor {t}" : "")
                + (identity[AlertLabels.Feature] is { Length: > 0 } f ? $" feature {f}" : ""),
            ["description"] = description,
        };
        foreach ((string name, string template) in binding.Annotations)
        {
            var text = new StringBuilder(template)
                .Replace("{{value}}", value.ToString("G4", CultureInfo.InvariantCulture))
                .Replace("{{threshold}}", threshold.ToString("G4", CultureInfo.InvariantCulture))
                .Replace("{{step}}", step.ToString(CultureInfo.InvariantCulture))
                .Replace("{{description}}", description);
            foreach ((string label, string labelValue) in identity.Labels)
            {
                text.Replace("{{labels." + label + "}}", labelValue);
            }

            annotations[name] = text.ToString();
        }

        return annotations;
    }
}

/// <summary>A rank whose run ended (its end-of-run record was processed).</summary>
/// <param name="Run">Run id.</param>
/// <param name="Rank">Rank.</param>
/// <param name="Step">The last step the rank began.</param>
/// <param name="Reason">Why the run ended.</param>
public readonly record struct RankEnded(string Run, uint Rank, long Step, RunEndReason Reason);
