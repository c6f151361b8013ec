using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Numerics;
using Monitor.Analysis.State;
using Monitor.Contracts.V1;

namespace Monitor.Analysis;

/// <summary>The engine's state as data: per (run, rank) snapshots (see <c>src/Monitor.Analysis/State/README.md</c>).</summary>
public sealed partial class AnalysisEngine
{
    /// <summary>The layout of the snapshot's header and engine part that <see cref="WriteSnapshot(string, uint, IBufferWriter{byte})"/>
    /// writes and <see cref="RestoreSnapshot"/> reads (rules version their own sections).</summary>
    public const int SnapshotSchemaVersion = 1;

    // Streams kept per rank: the modes a record can have, in the order they are written.
    private static readonly Mode[] Modes = [Mode.Unspecified, Mode.Train, Mode.Eval, Mode.Predict];

    // Reused between snapshots, so writing one allocates nothing once they have grown to the largest key's size.
    private readonly ArrayBufferWriter<byte> _snapshotBuffer = new();
    private readonly ArrayBufferWriter<byte> _sectionBuffer = new();
    private readonly ArrayBufferWriter<byte> _stateBuffer = new();
    private readonly List<((string AlertName, SeriesKey Series, string Feature) Key, AlertTracker Tracker)> _snapshotAlerts = [];
    private string[] _unsnapshotted;

    private static ReadOnlySpan<byte> SnapshotMagic => "MNST"u8;

    /// <summary>
    /// The alert names of the configured rules whose state is not snapshotted (rules that do not implement
    /// <see cref="IStatefulRule"/>: custom rules; every built-in rule implements it): a snapshot records their section as
    /// missing (state version 0), and after <see cref="RestoreSnapshot"/> they start empty for the key. Empty when
    /// every rule's state is carried.
    /// </summary>
    public IReadOnlyList<string> UnsnapshottedRules => _unsnapshotted;

    /// <summary>Rule sections of restored snapshots that were skipped because no configured rule has their name.</summary>
    public long SnapshotSectionsSkipped { get; private set; }

    /// <summary>Alerts of restored snapshots that were dropped because no configured rule has their alert name (as
    /// <see cref="ReplaceRules"/> resolves them, but without a transition: the host should treat them as resolved).</summary>
    public long SnapshotAlertsDropped { get; private set; }

    /// <summary>
    /// The (run, rank) keys the engine holds state for: a stream position, an alert, or an ended run remembered. A new
    /// collection per call (it is meant for a commit, not for every record); same thread as <see cref="Process(StepRecord)"/>.
    /// </summary>
    public IReadOnlyCollection<(string Run, uint Rank)> Keys
    {
        get
        {
            var keys = new HashSet<(string Run, uint Rank)>();
            foreach ((string run, uint rank, Mode _) in _streams.Keys)
            {
                keys.Add((run, rank));
            }

            foreach ((string _, SeriesKey series, string _) in _alerts.Keys)
            {
                keys.Add((series.Run, series.Rank));
            }

            keys.UnionWith(_ended.Keys);
            return keys;
        }
    }

    /// <summary>Whether the engine holds state for the key (one of <see cref="Keys"/>); same thread as <see cref="Process(StepRecord)"/>.</summary>
    public bool Holds(string run, uint rank)
    {
        if (_ended.ContainsKey((run, rank)))
        {
            return true;
        }

        foreach (Mode mode in Modes)
        {
            if (_streams.ContainsKey((run, rank, mode)))
            {
                return true;
            }
        }

        foreach ((string _, SeriesKey series, string _) in _alerts.Keys)
        {
            if (series.Rank == rank && series.Run == run)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Writes everything the engine keeps for <paramref name="rank"/> of <paramref name="run"/> to
    /// <paramref name="output"/>: its stream positions, its ended-run bookkeeping, its pending and firing alerts (state,
    /// since, counters, labels and fingerprint, the latest values a resend shows) and one section per configured rule
    /// with the rule's state (<see cref="IStatefulRule"/>; a rule without is recorded as missing). A key the engine
    /// knows nothing of gives a valid snapshot of an empty key, whose restore forgets the key.
    /// </summary>
    /// <remarks>
    /// <para>Deterministic: the same state gives the same bytes. Format: magic <c>MNST</c>, schema version
    /// (<see cref="SnapshotSchemaVersion"/>), run and rank, the engine part, the rule sections (alert name, rule type,
    /// state version, length-prefixed bytes), and a CRC-32C of all of it.</para>
    /// <para>Same thread as <see cref="Process(StepRecord)"/> (not thread-safe). Allocates nothing once the engine's
    /// reused buffers have grown, apart from what a rule's own writing needs. An exception from a rule's
    /// <see cref="IStatefulRule.WriteState"/> (a bug) propagates and nothing is written to <paramref name="output"/>.</para>
    /// </remarks>
    /// <exception cref="ArgumentNullException"><paramref name="run"/> or <paramref name="output"/> is null.</exception>
    public void WriteSnapshot(string run, uint rank, IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(run);
        ArgumentNullException.ThrowIfNull(output);
        _snapshotBuffer.ResetWrittenCount();
        var writer = new StateWriter(_snapshotBuffer);
        writer.WriteBytes(SnapshotMagic);
        writer.WriteVarUInt(SnapshotSchemaVersion);
        writer.WriteString(run);
        writer.WriteVarUInt(rank);
        WriteEngineState(run, rank, ref writer);
        // The sections go to a buffer of their own first: their count comes before them, and only rules that keep
        // something for the key (or cannot say) get one, as a rule without a section starts empty anyway.
        _sectionBuffer.ResetWrittenCount();
        var sections = new StateWriter(_sectionBuffer);
        int count = 0;
        foreach (RuleBinding binding in _rules)
        {
            int version = 0;
            _stateBuffer.ResetWrittenCount();
            if (binding.Rule is IStatefulRule stateful)
            {
                version = stateful.StateVersion;
                if (version < 1)
                {
                    throw new InvalidOperationException($"rule '{binding.AlertName}' declares state version {version}; state versions start at 1");
                }

                var state = new StateWriter(_stateBuffer);
                stateful.WriteState(run, rank, ref state);
                if (_stateBuffer.WrittenCount == 0)
                {
                    continue;
                }
            }

            count++;
            sections.WriteString(binding.AlertName);
            sections.WriteString(TypeName(binding.Rule));
            sections.WriteVarUInt((ulong)version);
            sections.WriteVarUInt((ulong)_stateBuffer.WrittenCount);
            sections.WriteBytes(_stateBuffer.WrittenSpan);
        }

        writer.WriteVarUInt((ulong)count);
        writer.WriteBytes(_sectionBuffer.WrittenSpan);

        Span<byte> checksum = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(checksum, Crc32C(_snapshotBuffer.WrittenSpan));
        writer.WriteBytes(checksum);
        output.Write(_snapshotBuffer.WrittenSpan);
    }

    private readonly ArrayBufferWriter<byte> _snapshotOutput = new();

    /// <summary>The snapshot of one key as a new array (see <see cref="WriteSnapshot(string, uint, IBufferWriter{byte})"/>).</summary>
    /// <exception cref="ArgumentNullException"><paramref name="run"/> is null.</exception>
    public byte[] WriteSnapshot(string run, uint rank)
    {
        // Reused: the array returned is the only allocation once the buffer has grown.
        _snapshotOutput.ResetWrittenCount();
        WriteSnapshot(run, rank, _snapshotOutput);
        return _snapshotOutput.WrittenSpan.ToArray();
    }

    /// <summary>
    /// Restores one key from a snapshot of <see cref="WriteSnapshot(string, uint, IBufferWriter{byte})"/>, replacing
    /// everything the engine and its rules hold for that (run, rank). Restored alerts keep their state, since, counters
    /// and fingerprint: a firing alert does not fire again and resolves as it would have; nothing is emitted.
    /// </summary>
    /// <remarks>
    /// <para>All or nothing per key: the whole snapshot is read and checked before anything changes, so a snapshot that
    /// fails leaves the engine's state of that key (and every other) as it was. Rule sections are matched to the
    /// configured rules by alert name: a configured rule without a section (or with one recorded as missing) starts
    /// empty for the key; a section whose name no configured rule has is skipped and counted in
    /// <see cref="SnapshotSectionsSkipped"/>; an alert of such a rule is dropped and counted in
    /// <see cref="SnapshotAlertsDropped"/>. Rule parameters come from the configuration, not the snapshot.</para>
    /// <para>Same thread as <see cref="Process(StepRecord)"/>, between records (not thread-safe).</para>
    /// </remarks>
    /// <returns>The key restored.</returns>
    /// <exception cref="InvalidDataException">The bytes are not a snapshot, are corrupt or truncated (checksum), have
    /// another schema version, or hold a section that does not match the configured rule of its name (another rule
    /// type, a newer state version, or state the rule cannot read); the message says what and at which byte.</exception>
    public (string Run, uint Rank) RestoreSnapshot(ReadOnlySpan<byte> snapshot)
    {
        var reader = new StateReader(snapshot, "header");
        if (snapshot.Length < SnapshotMagic.Length + 1 || !snapshot[..SnapshotMagic.Length].SequenceEqual(SnapshotMagic))
        {
            throw reader.Invalid("magic", "not a Monitor state snapshot (it must begin with 'MNST')");
        }

        reader.ReadBytes(SnapshotMagic.Length, "magic");
        ulong schema = reader.ReadVarUInt("schema version");
        if (schema != SnapshotSchemaVersion)
        {
            throw reader.Invalid("schema version", string.Create(CultureInfo.InvariantCulture,
                $"version {schema} is not supported (this engine reads version {SnapshotSchemaVersion})"), SnapshotMagic.Length);
        }

        if (snapshot.Length < reader.Offset + 4
            || Crc32C(snapshot[..^4]) != BinaryPrimitives.ReadUInt32LittleEndian(snapshot[^4..]))
        {
            throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                $"state snapshot: the checksum of its {snapshot.Length} bytes does not match: corrupt or truncated"));
        }

        reader = new StateReader(snapshot[..^4], "engine state");
        reader.ReadBytes(SnapshotMagic.Length, "magic");
        reader.ReadVarUInt("schema version");
        string run = reader.ReadString("run");
        uint rank = (uint)reader.ReadVarUInt("rank", uint.MaxValue);
        EngineKeyState engine = ReadEngineState(run, rank, ref reader);

        var restores = new List<Action>(_rules.Length);
        var sections = new HashSet<string>(StringComparer.Ordinal);
        int skipped = 0;
        for (int count = reader.ReadCount("rule sections", 4); count > 0; count--)
        {
            string name = reader.ReadString("rule name");
            string type = reader.ReadString("rule type");
            long version = (long)reader.ReadVarUInt("state version", int.MaxValue);
            StateReader section = reader.ReadSection("rule section", string.Create(CultureInfo.InvariantCulture, $"rule '{name}' ({type}, state version {version})"));
            if (!sections.Add(name))
            {
                throw reader.Invalid("rule name", $"a second section for rule '{name}'");
            }

            if (Array.Find(_rules, b => b.AlertName == name) is not { } binding)
            {
                skipped++;
                continue;
            }

            if (TypeName(binding.Rule) != type)
            {
                throw section.Invalid("rule type", $"written by {type}, but the configured rule '{name}' is {TypeName(binding.Rule)}");
            }

            if (version == 0)
            {
                // The rule's state was not snapshotted: it starts empty.
                section.EnsureEnd();
                continue;
            }

            if (binding.Rule is not IStatefulRule stateful || version > stateful.StateVersion)
            {
                throw section.Invalid("state version", string.Create(CultureInfo.InvariantCulture,
                    $"version {version} is newer than the configured rule reads ({(binding.Rule as IStatefulRule)?.StateVersion ?? 0})"));
            }

            try
            {
                restores.Add(stateful.ReadState(run, rank, (int)version, ref section));
            }
            catch (Exception ex) when (ex is not InvalidDataException)
            {
                throw new InvalidDataException($"state snapshot: {section.What} at byte {section.Offset}: the rule could not read its state: {ex.Message}", ex);
            }

            section.EnsureEnd();
        }

        reader.EnsureEnd();
        Install(run, rank, engine, restores);
        SnapshotSectionsSkipped += skipped;
        return (run, rank);
    }

    /// <summary>
    /// Drops everything the engine and its rules hold for <paramref name="rank"/> of <paramref name="run"/> without a
    /// transition: the key now belongs to another replica (its partition was revoked), which restores it from the
    /// changelog and carries its alerts on. Nothing resolves here, and a tick no longer sees the key.
    /// </summary>
    /// <remarks>Same thread as <see cref="Process(StepRecord)"/>, between records (not thread-safe).</remarks>
    /// <returns>The key's alerts that were pending or firing, as they were (the host stops exporting and re-sending
    /// them); empty when the key had none.</returns>
    public IReadOnlyList<AlertTransition> Release(string run, uint rank)
    {
        ArgumentNullException.ThrowIfNull(run);
        var active = new List<AlertTransition>();
        foreach ((var key, AlertTracker tracker) in _alerts)
        {
            if (key.Series.Rank == rank && key.Series.Run == run && tracker.State != AlertState.Inactive && tracker.Current is { } current)
            {
                active.Add(current);
            }
        }

        Install(run, rank, new EngineKeyState(), []);
        return active;
    }

    private static string TypeName(ITrainingRule rule) => rule.GetType().FullName ?? rule.GetType().Name;

    private static string[] Unsnapshotted(RuleBinding[] rules) =>
        [.. rules.Where(b => b.Rule is not IStatefulRule).Select(b => b.AlertName)];

    // CRC-32C (Castagnoli), hardware-accelerated where the CPU has it: catches flipped and cut bytes.
    private static uint Crc32C(ReadOnlySpan<byte> data)
    {
        uint crc = uint.MaxValue;
        while (data.Length >= 8)
        {
            crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data));
            data = data[8..];
        }

        foreach (byte b in data)
        {
            crc = BitOperations.Crc32C(crc, b);
        }

        return ~crc;
    }

    private void WriteEngineState(string run, uint rank, ref StateWriter writer)
    {
        int streams = 0;
        foreach (Mode mode in Modes)
        {
            streams += _streams.ContainsKey((run, rank, mode)) ? 1 : 0;
        }

        writer.WriteVarUInt((ulong)streams);
        foreach (Mode mode in Modes)
        {
            if (_streams.TryGetValue((run, rank, mode), out StreamPosition? position))
            {
                writer.WriteVarInt((long)mode);
                writer.WriteVarInt(position.Step);
                writer.WriteVarUInt(position.Sequence);
                writer.WriteTime(position.EventTime);
            }
        }

        bool ended = _ended.TryGetValue((run, rank), out EndedRank end);
        writer.WriteBool(ended);
        if (ended)
        {
            writer.WriteVarUInt(end.Sequence);
            writer.WriteTime(end.At);
        }

        if (_alerts.Count == 0)
        {
            writer.WriteVarUInt(0);
            return;
        }

        // Only pending and firing alerts are tracked: a handful, so a sorted copy is cheap.
        List<((string AlertName, SeriesKey Series, string Feature) Key, AlertTracker Tracker)> alerts = _snapshotAlerts;
        alerts.Clear();
        foreach ((var key, AlertTracker tracker) in _alerts)
        {
            if (key.Series.Rank == rank && key.Series.Run == run)
            {
                alerts.Add((key, tracker));
            }
        }

        alerts.Sort(static (a, b) =>
        {
            int byName = string.CompareOrdinal(a.Key.AlertName, b.Key.AlertName);
            int byTensor = byName != 0 ? byName : string.CompareOrdinal(a.Key.Series.Tensor, b.Key.Series.Tensor);
            return byTensor != 0 ? byTensor : string.CompareOrdinal(a.Key.Feature, b.Key.Feature);
        });
        writer.WriteVarUInt((ulong)alerts.Count);
        foreach (((string name, SeriesKey series, string feature), AlertTracker tracker) in alerts)
        {
            writer.WriteString(name);
            writer.WriteString(series.Tensor);
            writer.WriteString(feature);
            tracker.WriteState(ref writer);
        }

        alerts.Clear();
    }

    private EngineKeyState ReadEngineState(string run, uint rank, ref StateReader reader)
    {
        var state = new EngineKeyState();
        Mode previous = (Mode)(-1);
        for (int count = reader.ReadCount("streams", 4); count > 0; count--)
        {
            var mode = (Mode)reader.ReadVarInt("stream mode", (long)Mode.Unspecified, (long)Mode.Predict);
            if (mode <= previous)
            {
                throw reader.Invalid("stream mode", "out of order or repeated");
            }

            previous = mode;
            state.Streams.Add((mode, new StreamPosition
            {
                Step = reader.ReadVarInt("stream step"),
                Sequence = reader.ReadVarUInt("stream sequence"),
                EventTime = reader.ReadTime("stream event time"),
            }));
        }

        if (reader.ReadBool("ended"))
        {
            state.Ended = new EndedRank(reader.ReadVarUInt("end sequence"), reader.ReadTime("ended at"));
        }

        for (int count = reader.ReadCount("alerts", 8); count > 0; count--)
        {
            string name = reader.ReadString("alert name");
            var key = (name, new SeriesKey(run, rank, reader.ReadString("alert tensor")), reader.ReadString("alert feature"));
            RuleBinding? binding = Array.Find(_rules, b => b.AlertName == name);
            AlertTracker? tracker = AlertTracker.ReadState(ref reader, key, binding);
            if (state.Alerts.Exists(a => a.Key == key))
            {
                throw reader.Invalid("alert", $"alert {name} of tensor '{key.Item2.Tensor}' appears twice");
            }

            if (tracker is null)
            {
                state.Dropped++;
            }

            state.Alerts.Add((key, tracker));
        }

        return state;
    }

    // Replaces the key's state with what was read; every check has passed, so nothing here throws.
    private void Install(string run, uint rank, EngineKeyState state, List<Action> restores)
    {
        foreach (var key in _alerts.Keys)
        {
            if (key.Series.Rank == rank && key.Series.Run == run)
            {
                _alerts.Remove(key);
            }
        }

        foreach (Mode mode in Modes)
        {
            _streams.Remove((run, rank, mode));
        }

        // Still queued for eviction when it was remembered: queued again only when it was not.
        bool remembered = _ended.Remove((run, rank));
        ForgetRank(run, rank);
        foreach ((Mode mode, StreamPosition position) in state.Streams)
        {
            _streams[(run, rank, mode)] = position;
            if (position.EventTime > _newestEventTime)
            {
                _newestEventTime = position.EventTime;
            }
        }

        if (state.Ended is { } ended)
        {
            _ended[(run, rank)] = ended;
            if (!remembered)
            {
                _endedOrder.Enqueue((run, rank));
            }

            if (_endedOrder.Count > EndedRanksKept)
            {
                _ended.Remove(_endedOrder.Dequeue());
            }
        }

        foreach ((var key, AlertTracker? tracker) in state.Alerts)
        {
            if (tracker is not null)
            {
                _alerts[key] = tracker;
            }
        }

        foreach (Action restore in restores)
        {
            restore();
        }

        RecountAlerts();
        SnapshotAlertsDropped += state.Dropped;
    }

    private sealed class EngineKeyState
    {
        public List<(Mode Mode, StreamPosition Position)> Streams { get; } = [];

        public EndedRank? Ended { get; set; }

        public List<((string AlertName, SeriesKey Series, string Feature) Key, AlertTracker? Tracker)> Alerts { get; } = [];

        public int Dropped { get; set; }
    }

    private sealed partial class AlertTracker
    {
        // The label names in order, sorted once: an alert is snapshotted at every commit while it is active.
        private string[]? _labelNames;

        public void WriteState(ref StateWriter writer)
        {
            string[] names = _labelNames ??= [.. identity.Labels.Keys.Order(StringComparer.Ordinal)];
            writer.WriteVarUInt((ulong)names.Length);
            foreach (string name in names)
            {
                writer.WriteString(name);
                writer.WriteString(identity.Labels[name]);
            }

            writer.WriteString(identity.Fingerprint);
            writer.WriteVarInt((long)State);
            writer.WriteTime(_activeSince);
            writer.WriteVarInt(_consecutive);
            writer.WriteVarInt(_passing);
            writer.WriteTime(_keepFiringSince);
            writer.WriteVarInt((long)_latest.Previous);
            writer.WriteVarInt(_latest.Step);
            writer.WriteDouble(_latest.Value);
            writer.WriteDouble(_latest.Threshold);
            writer.WriteString(_latest.Description);
            writer.WriteTime(_latest.At);
            writer.WriteOptionalString(_latest.Trace.TraceId);
            writer.WriteOptionalString(_latest.Trace.SpanId);
        }

        /// <summary>Reads an alert; null (the bytes consumed all the same) when no configured rule has its name.</summary>
        public static AlertTracker? ReadState(ref StateReader reader, (string AlertName, SeriesKey Series, string Feature) key, RuleBinding? binding)
        {
            var labels = new Dictionary<string, string>(StringComparer.Ordinal);
            for (int count = reader.ReadCount("alert labels", 2); count > 0; count--)
            {
                string name = reader.ReadString("label name");
                if (!labels.TryAdd(name, reader.ReadString("label value")))
                {
                    throw reader.Invalid("label name", $"label '{name}' appears twice");
                }
            }

            var identity = new AlertIdentity(labels);
            string fingerprint = reader.ReadString("fingerprint");
            if (fingerprint != identity.Fingerprint || identity[AlertLabels.AlertName] != key.AlertName || identity[AlertLabels.Run] != key.Series.Run
                || identity[AlertLabels.Rank] != key.Series.Rank.ToString(CultureInfo.InvariantCulture))
            {
                throw reader.Invalid("fingerprint", $"the labels {identity} do not make fingerprint {fingerprint} of alert {key.AlertName} of this key");
            }

            var state = (AlertState)reader.ReadVarInt("alert state", (long)AlertState.Pending, (long)AlertState.Firing);
            DateTimeOffset activeSince = reader.ReadTime("active since");
            int consecutive = reader.ReadInt32("consecutive failing evaluations");
            int passing = reader.ReadInt32("passing evaluations");
            DateTimeOffset keepFiringSince = reader.ReadTime("keep firing since");
            var previous = (AlertState)reader.ReadVarInt("previous state", (long)AlertState.Inactive, (long)AlertState.Firing);
            long step = reader.ReadVarInt("step");
            double value = reader.ReadDouble("value");
            double threshold = reader.ReadDouble("threshold");
            string description = reader.ReadString("description");
            DateTimeOffset at = reader.ReadTime("evaluated at");
            var trace = new TraceContext(reader.ReadOptionalString("trace id"), reader.ReadOptionalString("span id"));
            return binding is null ? null : new AlertTracker(identity, binding)
            {
                State = state,
                _activeSince = activeSince,
                _consecutive = consecutive,
                _passing = passing,
                _keepFiringSince = keepFiringSince,
                _latest = (state, previous, step, value, threshold, description, at, trace),
            };
        }
    }
}
