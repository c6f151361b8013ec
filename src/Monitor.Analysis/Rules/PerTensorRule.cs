using Monitor.Analysis.State;
using Monitor.Contracts.V1;

namespace Monitor.Analysis.Rules;

/// <summary>
/// The base of the built-in rules that judge each selected tensor of a record on its own (one alert per tensor):
/// it walks the record's tensors, applies <see cref="Selector"/>, and reports a passing verdict through
/// <see cref="RuleContext.ReportPassing"/> on every evaluation, so that an alert held by <c>keepFiringFor</c> or
/// carried over a rule reload resolves once the condition has cleared.
/// </summary>
/// <remarks>
/// Not thread-safe, like every rule: one engine calls it from one thread. Per record it allocates nothing unless a
/// condition holds (then the description). Derived rules exist only in this assembly. Its state snapshot
/// (<see cref="IStatefulRule"/>) is empty unless a derived rule keeps per-series state (then written with
/// <see cref="SeriesTable{T}"/>).
/// </remarks>
public abstract class PerTensorRule : ITrainingRule, IStatefulRule
{
    private protected PerTensorRule()
    {
    }

    /// <inheritdoc />
    public abstract string Name { get; init; }

    /// <summary>Tensors looked at (each rule states its default).</summary>
    public abstract TensorSelector Selector { get; init; }

    /// <inheritdoc />
    public abstract IReadOnlyList<TensorRequirement> Requirements { get; }

    /// <summary>Whether only training steps (and steps without a mode) are judged: weights do not change in eval or
    /// predict steps. Default false.</summary>
    private protected virtual bool TrainingStepsOnly => false;

    /// <summary>The description of a passing verdict (a constant: it is shown only when an alert resolves).</summary>
    private protected abstract string Healthy { get; }

    /// <inheritdoc />
    public virtual void ForgetRank(string run, uint rank)
    {
    }

    /// <inheritdoc />
    public virtual int StateVersion => 1;

    /// <inheritdoc />
    public virtual void WriteState(string run, uint rank, ref StateWriter writer)
    {
    }

    /// <inheritdoc />
    public virtual Action ReadState(string run, uint rank, int version, ref StateReader reader) => StateRestore.None;

    /// <inheritdoc />
    /// <exception cref="ArgumentNullException"><paramref name="record"/> or <paramref name="context"/> is null.</exception>
    public void Evaluate(StepRecord record, RuleContext context)
    {
        ArgumentNullException.ThrowIfNull(record);
        ArgumentNullException.ThrowIfNull(context);
        if (TrainingStepsOnly && !RuleSupport.IsTraining(record))
        {
            return;
        }

        // Indexed: a RepeatedField's enumerator is boxed.
        var tensors = record.Tensors;
        for (int i = 0; i < tensors.Count; i++)
        {
            TensorRecord tensor = tensors[i];
            if (Selector.Matches(tensor))
            {
                EvaluateTensor(record, tensor, context);
            }
        }
    }

    /// <summary>Judges one selected tensor; reports through <see cref="Problem"/> and <see cref="Passing"/>, or not at
    /// all when there is no verdict (too little data, window not full).</summary>
    private protected abstract void EvaluateTensor(StepRecord record, TensorRecord tensor, RuleContext context);

    /// <summary>Reports that the condition holds for <paramref name="tensor"/>.</summary>
    private protected static void Problem(RuleContext context, TensorRecord tensor, double value, double threshold, string description) =>
        context.Report(tensor.Name, true, value, threshold, description);

    /// <summary>Reports that the condition does not hold for <paramref name="tensor"/> (nothing unless an alert is tracked).</summary>
    private protected void Passing(RuleContext context, TensorRecord tensor, double value, double threshold)
    {
        // Checked here, before the arguments: this runs for every healthy tensor, and Healthy is a virtual call.
        if (context.RuleHasAlerts)
        {
            context.ReportPassing(tensor.Name, value, threshold, Healthy);
        }
    }
}
