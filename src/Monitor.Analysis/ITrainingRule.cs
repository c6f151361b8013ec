using Monitor.Contracts.V1;

namespace Monitor.Analysis;

/// <summary>
/// A training rule: looks at each step record and reports, per series (a tensor of a rank of a run, or the rank as a
/// whole), whether its condition holds. The analogue of smdebug's <c>Rule.invoke_at_step</c>, turned into a streaming
/// evaluation: the engine turns the reports into alerts with Prometheus' lifecycle.
/// </summary>
/// <remarks>
/// A rule instance belongs to one <see cref="AnalysisEngine"/> and keeps its windows per series; the engine calls it
/// from one thread at a time. A rule reports only when it has a verdict (e.g. once its window is full); a series it
/// does not report on keeps its alert state. An exception from a rule is counted by the engine, never fatal.
/// </remarks>
public interface ITrainingRule
{
    /// <summary>Name, used as the <c>alertname</c> label.</summary>
    string Name { get; }

    /// <summary>Severity label value. Default for built-in rules: <c>warning</c>.</summary>
    string Severity { get; }

    /// <summary>How many consecutive reports the condition must hold before the alert fires (0: at once).</summary>
    int ForEvaluations { get; }

    /// <summary>Evaluates one record, reporting through <paramref name="context"/>.</summary>
    void Evaluate(StepRecord record, RuleContext context);
}

/// <summary>What a rule reports through; one per engine, reused for every record.</summary>
public sealed class RuleContext
{
    private readonly AnalysisEngine _engine;

    internal RuleContext(AnalysisEngine engine) => _engine = engine;

    internal ITrainingRule Rule { get; set; } = null!;

    internal StepRecord Record { get; set; } = null!;

    /// <summary>Reports the rule's verdict for one series of the current record.</summary>
    /// <param name="tensor">The tensor the verdict is about, or null for the rank as a whole.</param>
    /// <param name="conditionHolds">Whether the problem is present.</param>
    /// <param name="value">The observed value.</param>
    /// <param name="threshold">What it was compared with.</param>
    /// <param name="description">The observation in words, with numbers (used as the alert's description).</param>
    public void Report(string? tensor, bool conditionHolds, double value, double threshold, string description) =>
        _engine.OnReport(Rule, Record, tensor, conditionHolds, value, threshold, description);
}
