using Monitor.Contracts.V1;

namespace Monitor.Analysis;

/// <summary>
/// A training rule: looks at each step record and reports, per series (a tensor of a rank of a run, or the rank as a
/// whole), whether its condition holds. The analogue of smdebug's <c>Rule.invoke_at_step</c>, turned into a streaming
/// evaluation: the engine turns the reports into alerts with Prometheus' lifecycle (the <c>for</c> duration,
/// severity, labels, annotations and actions come from the rule's <see cref="RuleBinding"/>).
/// </summary>
/// <remarks>
/// <para>A rule instance belongs to one <see cref="AnalysisEngine"/> and keeps its own state (windows) per series; the
/// engine calls it from one thread at a time, in record order per rank. A rule reports only when it has a verdict
/// (e.g. once its window is full); a series it does not report on keeps its alert state. It reports every verdict
/// it has, passing ones too (through <see cref="RuleContext.ReportPassing"/>, which costs nothing while no alert is
/// tracked): whether an alert still needs resolving, after <c>keepFiringFor</c> or a reload, is the engine's to know,
/// not the rule's. An exception from a rule is
/// counted by the engine and skips that rule for that record; it is never fatal.</para>
/// <para>Custom rules implement this interface in their own assembly; the rule configuration loads them by type
/// name and sets their public properties from the configured parameters.</para>
/// </remarks>
public interface ITrainingRule
{
    /// <summary>Default alert name (<c>alertname</c> label); a binding may rename it.</summary>
    string Name { get; }

    /// <summary>
    /// What the rule needs traced to work: collections, and whether it needs raw values (not only summaries). Used to
    /// tell users which selection a rule wants; default: nothing declared.
    /// </summary>
    IReadOnlyList<TensorRequirement> Requirements => [];

    /// <summary>Evaluates one record, reporting through <paramref name="context"/>.</summary>
    /// <remarks>The record and every message in it are valid only during the call, and must not be modified: the
    /// service refills one record for each message it reads (<see cref="Contracts.StepRecordReader"/>). A rule that
    /// keeps something for later copies it (values, arrays, <c>Clone()</c>); strings and <c>ByteString</c>s are
    /// immutable and may be kept.</remarks>
    void Evaluate(StepRecord record, RuleContext context);

    /// <summary>
    /// Forgets whatever the rule keeps for <paramref name="rank"/> of <paramref name="run"/>: the engine calls it when
    /// the rank's run ended (its end-of-run record) and when the rank's training steps start over (a job resumed from
    /// a checkpoint: a new series). Called between records, on the engine's thread. Default: nothing (a rule without
    /// per-rank state).
    /// </summary>
    void ForgetRank(string run, uint rank)
    {
    }
}

/// <summary>
/// A rule whose parameters depend on each other (a detector and its parameters, a reference kind and its file): the
/// rule configuration asks it, once every parameter is set, and reports the problems with the rule's other problems.
/// </summary>
public interface IValidatedRule
{
    /// <summary>The problems of the combination of parameters, each a sentence naming the parameter; empty when valid.</summary>
    IReadOnlyList<string> Validate();
}

/// <summary>A rule that also reacts to the passing of time without records (e.g. a stalled job).</summary>
public interface ITimedTrainingRule : ITrainingRule
{
    /// <summary>
    /// Called by <see cref="AnalysisEngine.Tick(bool)"/> with the current time of the injected clock; report as from
    /// <see cref="ITrainingRule.Evaluate"/> (the record-less reports carry the last step seen).
    /// </summary>
    void Tick(DateTimeOffset now, RuleContext context);
}

/// <summary>What a rule needs traced.</summary>
/// <param name="Collection">Collection name (see <c>CollectionNames</c>), e.g. <c>gradients</c>.</param>
/// <param name="Raw">Whether raw values are needed, not only the summary statistics.</param>
/// <param name="Why">One line for users: what the rule does with it.</param>
public sealed record TensorRequirement(string Collection, bool Raw, string Why);

/// <summary>What a rule reports through; one per engine, reused for every record.</summary>
public sealed class RuleContext
{
    private readonly AnalysisEngine _engine;

    internal RuleContext(AnalysisEngine engine) => _engine = engine;

    internal RuleBinding Binding { get; set; } = null!;

    internal string Run { get; set; } = "";

    internal uint Rank { get; set; }

    internal long Step { get; set; }

    internal int RuleIndex { get; set; }

    /// <summary>Reports the rule's verdict for one series of the current record (or tick).</summary>
    /// <param name="tensor">The tensor the verdict is about, or null for the rank as a whole.</param>
    /// <param name="conditionHolds">Whether the problem is present.</param>
    /// <param name="value">The observed value.</param>
    /// <param name="threshold">What it was compared with.</param>
    /// <param name="description">The observation in words, with numbers (the alert's description).</param>
    public void Report(string? tensor, bool conditionHolds, double value, double threshold, string description) =>
        _engine.OnReport(Binding, Run, Rank, Step, tensor, null, conditionHolds, value, threshold, description);

    /// <summary>Reports a verdict about another run/rank than the current record's (for rules that compare runs or
    /// ranks, and for <see cref="ITimedTrainingRule.Tick"/>).</summary>
    public void ReportFor(string run, uint rank, long step, string? tensor, bool conditionHolds, double value, double threshold, string description) =>
        _engine.OnReport(Binding, run, rank, step, tensor, null, conditionHolds, value, threshold, description);

    /// <summary>
    /// Whether this rule has a pending or firing alert for the tensor (and feature) of the current record's run and rank:
    /// a rule can then skip formatting the description of a passing verdict that no alert will show.
    /// </summary>
    /// <remarks>Costs one comparison while the rule has no alert at all (the normal case).</remarks>
    public bool IsActive(string? tensor, string? feature = null) => _engine.IsActive(RuleIndex, Binding, Run, Rank, tensor, feature);

    /// <summary>Whether this rule has a pending or firing alert for the tensor of <paramref name="run"/> and
    /// <paramref name="rank"/> (for <see cref="ReportFor"/> and <see cref="ITimedTrainingRule.Tick"/>).</summary>
    public bool IsActiveFor(string run, uint rank, string? tensor) => _engine.IsActive(RuleIndex, Binding, run, rank, tensor, null);

    /// <summary>Whether the engine tracks any alert of the rule being evaluated (else a passing verdict needs no report).</summary>
    internal bool RuleHasAlerts => _engine.RuleHasAlerts(RuleIndex);

    /// <summary>
    /// Reports a passing verdict (the condition does not hold) for one series of the current record. The engine
    /// needs it only while it tracks an alert for the series (pending, firing, or kept firing by the binding's
    /// <c>keepFiringFor</c>); otherwise the call costs one comparison and reports nothing.
    /// </summary>
    /// <remarks>
    /// Call it on every evaluation whose condition does not hold, not once after the condition cleared: an alert
    /// with <c>keepFiringFor</c>/<c>keepFiringForEvaluations</c> resolves only after that many passing reports, and
    /// after <see cref="AnalysisEngine.ReplaceRules"/> a new rule instance has never seen the problem its
    /// predecessor reported. Whether an alert is tracked is the engine's state, not the rule's, so rules keep no copy.
    /// </remarks>
    /// <param name="tensor">The tensor the verdict is about, or null for the rank as a whole.</param>
    /// <param name="value">The observed value.</param>
    /// <param name="threshold">What it was compared with.</param>
    /// <param name="description">The observation in words (a constant string: it is not shown unless an alert resolves).</param>
    public void ReportPassing(string? tensor, double value, double threshold, string description)
    {
        if (_engine.RuleHasAlerts(RuleIndex))
        {
            _engine.OnReport(Binding, Run, Rank, Step, tensor, null, false, value, threshold, description);
        }
    }

    /// <summary>
    /// <see cref="ReportPassing"/> about another run/rank than the current record's (for
    /// <see cref="ITimedTrainingRule.Tick"/> and rules that compare runs).
    /// </summary>
    public void ReportPassingFor(string run, uint rank, long step, string? tensor, double value, double threshold, string description)
    {
        if (_engine.RuleHasAlerts(RuleIndex))
        {
            _engine.OnReport(Binding, run, rank, step, tensor, null, false, value, threshold, description);
        }
    }

    /// <summary>
    /// Reports a drift verdict for one feature of a tensor of the current record: an alert series of its own (label
    /// <c>feature</c>), and an observation the host exports (<see cref="AnalysisEngine.DriftObservations"/>: the
    /// <c>monitor_drift_*</c> gauges).
    /// </summary>
    /// <param name="tensor">The tensor the feature belongs to.</param>
    /// <param name="feature">The feature (a column name, or a derived stream such as <c>error</c>).</param>
    /// <param name="test">The test or detector, as the CLI names it (<c>ks</c>, <c>adwin</c>, ...).</param>
    /// <param name="drift">Whether drift was found.</param>
    /// <param name="statistic">The test statistic (or the detector's estimate).</param>
    /// <param name="pValue">The p-value, or NaN for distances and detectors.</param>
    /// <param name="threshold">What decided the verdict.</param>
    /// <param name="description">The observation in words, with numbers (the alert's description).</param>
    public void ReportDrift(string tensor, string feature, string test, bool drift, double statistic, double pValue, double threshold, string description)
    {
        _engine.OnDriftObservation(new DriftObservation(Run, Rank, Step, tensor, feature, test, statistic, pValue, drift));
        _engine.OnReport(Binding, Run, Rank, Step, tensor, feature, drift, double.IsNaN(pValue) ? statistic : pValue, threshold, description);
    }
}

/// <summary>One evaluation of a drift test or detector, for the host to export (gauges, counters).</summary>
/// <param name="Run">Run id.</param>
/// <param name="Rank">Rank.</param>
/// <param name="Step">Step of the record that completed the evaluation.</param>
/// <param name="Tensor">The tensor.</param>
/// <param name="Feature">The feature.</param>
/// <param name="Test">The test or detector name.</param>
/// <param name="Statistic">The statistic.</param>
/// <param name="PValue">The p-value, or NaN.</param>
/// <param name="Drift">Whether drift was found (for detectors: signalled by this record).</param>
public readonly record struct DriftObservation(string Run, uint Rank, long Step, string Tensor, string Feature, string Test, double Statistic, double PValue, bool Drift);
