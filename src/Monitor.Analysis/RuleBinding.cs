namespace Monitor.Analysis;

/// <summary>
/// A rule as configured: the rule with its parameters, plus what the engine does with its verdicts (Prometheus'
/// alerting-rule fields: <c>for</c>, labels, annotations; and Monitor's actions).
/// </summary>
public sealed record RuleBinding
{
    /// <summary>The rule.</summary>
    public required ITrainingRule Rule { get; init; }

    /// <summary>Alert name (<c>alertname</c>); default the rule's <see cref="ITrainingRule.Name"/>.</summary>
    public string? Name { get; init; }

    /// <summary>Consecutive failing evaluations before the alert fires, on top of <see cref="ForDuration"/>. Default 0.</summary>
    public int ForEvaluations { get; init; }

    /// <summary>
    /// How long (event time of the records) the condition must hold before the alert fires: Prometheus' <c>for</c>.
    /// Default zero: fire at the first failing evaluation (after <see cref="ForEvaluations"/>).
    /// </summary>
    public TimeSpan ForDuration { get; init; }

    /// <summary>
    /// Consecutive passing evaluations a firing alert keeps firing for before it resolves, on top of
    /// <see cref="KeepFiringFor"/>. Default 0: resolve at the first passing evaluation. Damps an alert whose condition
    /// flickers (a tensor that changes only now and then).
    /// </summary>
    public int KeepFiringForEvaluations { get; init; }

    /// <summary>
    /// How long (event time, from the first passing evaluation) a firing alert keeps firing after its condition stopped:
    /// Prometheus' <c>keep_firing_for</c>. If the condition holds again meanwhile, the alert simply stays firing.
    /// Default zero.
    /// </summary>
    public TimeSpan KeepFiringFor { get; init; }

    /// <summary>Severity label. Default <c>warning</c>.</summary>
    public string Severity { get; init; } = "warning";

    /// <summary>Extra labels on every alert of the rule.</summary>
    public IReadOnlyDictionary<string, string> Labels { get; init; } = new Dictionary<string, string>();

    /// <summary>
    /// Annotation templates, rendered per alert: <c>{{value}}</c>, <c>{{threshold}}</c>, <c>{{step}}</c>,
    /// <c>{{description}}</c> and <c>{{labels.NAME}}</c> are replaced. Default: <c>summary</c> and
    /// <c>description</c> from the rule's own description.
    /// </summary>
    public IReadOnlyDictionary<string, string> Annotations { get; init; } = new Dictionary<string, string>();

    /// <summary>What to do when the alert fires, e.g. <c>stop</c> (stop the run). Default none.</summary>
    public IReadOnlyList<string> Actions { get; init; } = [];

    /// <summary>The alert name in force.</summary>
    public string AlertName => Name ?? Rule.Name;
}
