using System.Globalization;
using Monitor.Contracts.V1;

namespace Monitor.Analysis;

/// <summary>
/// The analysis engine: step records in, alert transitions out. Runs every rule over every record and keeps one
/// alert per (rule, run, rank, tensor) with Prometheus' lifecycle: inactive → pending → firing → inactive
/// (resolved). A firing alert is reported once when it starts firing and once when it resolves, not on every record.
/// </summary>
/// <remarks>
/// <para>Pure: no I/O; event times come from the records, and the injected <see cref="TimeProvider"/> is used only
/// for records without one. The same engine serves the live service, replays and tests.</para>
/// <para>Not thread-safe: one consumer thread feeds it. Rule exceptions are counted in <see cref="RuleFaults"/> and
/// skip that rule for that record only.</para>
/// </remarks>
public sealed class AnalysisEngine
{
    private readonly ITrainingRule[] _rules;
    private readonly TimeProvider _timeProvider;
    private readonly RuleContext _context;
    private readonly Dictionary<(ITrainingRule Rule, SeriesKey Series), AlertTracker> _alerts = [];
    private readonly List<AlertTransition> _transitions = [];
    private DateTimeOffset _recordTime;

    /// <summary>Creates an engine over <paramref name="rules"/> (names must be unique).</summary>
    /// <exception cref="ArgumentException">Two rules share a name.</exception>
    public AnalysisEngine(IEnumerable<ITrainingRule> rules, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(rules);
        _rules = rules.ToArray();
        string? duplicate = _rules.GroupBy(r => r.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1)?.Key;
        if (duplicate is not null)
        {
            throw new ArgumentException($"two rules are named '{duplicate}'; rule names must be unique", nameof(rules));
        }

        _timeProvider = timeProvider ?? TimeProvider.System;
        _context = new RuleContext(this);
    }

    /// <summary>The rules, in evaluation order.</summary>
    public IReadOnlyList<ITrainingRule> Rules => _rules;

    /// <summary>Exceptions thrown by rules so far.</summary>
    public long RuleFaults { get; private set; }

    /// <summary>The most recent rule exception, for diagnostics.</summary>
    public string? LastRuleFault { get; private set; }

    /// <summary>Alerts that are pending or firing now.</summary>
    public IEnumerable<AlertTransition> ActiveAlerts => _alerts.Values.Where(a => a.State != AlertState.Inactive).Select(a => a.Current!);

    /// <summary>Evaluates every rule on <paramref name="record"/>.</summary>
    /// <returns>The alert transitions it caused (empty most of the time). The list is reused by the next call.</returns>
    public IReadOnlyList<AlertTransition> Process(StepRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        _transitions.Clear();
        _recordTime = record.EventTimeUnixNanos > 0
            ? DateTimeOffset.UnixEpoch.AddTicks(record.EventTimeUnixNanos / 100)
            : _timeProvider.GetUtcNow();
        _context.Record = record;
        foreach (ITrainingRule rule in _rules)
        {
            _context.Rule = rule;
            try
            {
                rule.Evaluate(record, _context);
            }
#pragma warning disable CA1031 // A faulty rule (custom rules included) must not stop the others or the service.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                RuleFaults++;
                LastRuleFault = $"{rule.Name}: {ex.GetType().Name}: {ex.Message}";
            }
        }

        return _transitions;
    }

    internal void OnReport(ITrainingRule rule, StepRecord record, string? tensor, bool holds, double value, double threshold, string description)
    {
        var series = new SeriesKey(record.RunId, record.Rank, tensor ?? "");
        if (!_alerts.TryGetValue((rule, series), out AlertTracker? tracker))
        {
            if (!holds)
            {
                return;
            }

            var labels = new Dictionary<string, string>(StringComparer.Ordinal)
            {
                [AlertLabels.AlertName] = rule.Name,
                [AlertLabels.Run] = record.RunId,
                [AlertLabels.Rank] = record.Rank.ToString(CultureInfo.InvariantCulture),
                [AlertLabels.Severity] = rule.Severity,
            };
            if (tensor is not null)
            {
                labels[AlertLabels.Tensor] = tensor;
            }

            tracker = new AlertTracker(new AlertIdentity(labels));
            _alerts[(rule, series)] = tracker;
        }

        if (tracker.Update(holds, rule.ForEvaluations, record.Step, value, threshold, description, _recordTime) is { } transition)
        {
            _transitions.Add(transition);
        }

        if (tracker.State == AlertState.Inactive)
        {
            // Only active alerts keep state; memory stays bounded by what is pending or firing.
            _alerts.Remove((rule, series));
        }
    }

    private sealed class AlertTracker(AlertIdentity identity)
    {
        private int _consecutive;
        private DateTimeOffset _activeSince;

        public AlertState State { get; private set; }

        public AlertTransition? Current { get; private set; }

        public AlertTransition? Update(bool holds, int forEvaluations, long step, double value, double threshold, string description, DateTimeOffset at)
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
                State = _consecutive > forEvaluations ? AlertState.Firing : AlertState.Pending;
            }
            else
            {
                _consecutive = 0;
                State = AlertState.Inactive;
            }

            var transition = new AlertTransition(identity, State, previous, step, value, threshold, description, _activeSince, at);
            if (State != AlertState.Inactive)
            {
                Current = transition;
            }

            return State == previous ? null : transition;
        }
    }
}
