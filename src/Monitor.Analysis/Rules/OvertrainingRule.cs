using System.Globalization;
using Monitor.Analysis.State;
using Monitor.Contracts;
using Monitor.Contracts.V1;

namespace Monitor.Analysis.Rules;

/// <summary>
/// Overtraining (smdebug <c>Overtraining</c>): fires when the training loss has not reached a new optimum for
/// <see cref="PatienceTrain"/> traced training steps, or the validation loss for <see cref="PatienceValidation"/>
/// traced evaluation steps: training goes on without improving the model, the case early stopping is for.
/// </summary>
/// <remarks>
/// <para>Formula, per loss tensor of each rank and per mode (training: <see cref="Mode.Train"/> records, validation:
/// <see cref="Mode.Eval"/> records): a value <c>v</c> is a new optimum when <c>v &lt; best - Delta</c> (the first value
/// always is); <c>best</c> is then <c>v</c> and the mode's count of values since the optimum restarts at 0, otherwise it
/// grows by one. The condition holds while <c>sinceTrain &gt;= PatienceTrain</c> or
/// <c>sinceValidation &gt;= PatienceValidation</c>; the rule reports at every traced value of the tensor.</para>
/// <para>Parameters and defaults follow the SageMaker developer guide, "List of Debugger Built-in Rules", Overtraining
/// (<c>patience_train</c>, <c>patience_validation</c>, <c>delta</c>).</para>
/// <para>Differences from smdebug: the guide does not say how the two patiences combine; either one running out fires
/// here (the description says which). <see cref="Delta"/> is absolute, in loss units, as in the guide: scale it to the
/// loss. Steps are counted in traced values of the mode, not in global steps. Records without a mode count as
/// training.</para>
/// </remarks>
public sealed class OvertrainingRule : ITrainingRule, IStatefulRule
{
    private const string Improving = "training and validation loss still reach new optima";

    private static readonly TensorRequirement[] Needs =
        [new(CollectionNames.Losses, Raw: false, "training loss (TRAIN records) and validation loss (EVAL records)")];

    private readonly SeriesTable<State> _series = new();

    /// <summary>Traced training steps without a new optimum before the condition holds. Default 5 (smdebug's <c>patience_train</c>).</summary>
    public int PatienceTrain
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(PatienceTrain), value, "PatienceTrain must be at least 1");
    } = 5;

    /// <summary>Traced evaluation steps without a new optimum before the condition holds. Default 10 (smdebug's <c>patience_validation</c>).</summary>
    public int PatienceValidation
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(PatienceValidation), value, "PatienceValidation must be at least 1");
    } = 10;

    /// <summary>How much lower than the best value a loss must be to count as a new optimum. Default 0.1 (smdebug's <c>delta</c>).</summary>
    public double Delta
    {
        get;
        init => field = value >= 0 && double.IsFinite(value) ? value : throw new ArgumentOutOfRangeException(nameof(Delta), value, "Delta must be finite and not negative");
    } = 0.1;

    /// <summary>Which tensors are losses. Default: the <c>losses</c> collection.</summary>
    public TensorSelector Selector { get; init; } = TensorSelector.Of(Collection.Losses);

    /// <inheritdoc />
    public string Name { get; init; } = "Overtraining";

    /// <inheritdoc />
    public IReadOnlyList<TensorRequirement> Requirements => Needs;

    /// <inheritdoc />
    public void ForgetRank(string run, uint rank) => _series.Forget(run, rank);

    /// <inheritdoc />
    public int StateVersion => 1;

    /// <inheritdoc />
    public void WriteState(string run, uint rank, ref StateWriter writer) =>
        _series.WriteState(run, rank, ref writer, static (ref StateWriter w, State state) =>
        {
            state.Training.WriteState(ref w);
            state.Validation.WriteState(ref w);
        });

    /// <inheritdoc />
    public Action ReadState(string run, uint rank, int version, ref StateReader reader) =>
        _series.ReadState(run, rank, ref reader, static (ref StateReader r) => new State
        {
            Training = Optimum.ReadState(ref r),
            Validation = Optimum.ReadState(ref r),
        });

    /// <inheritdoc />
    public void Evaluate(StepRecord record, RuleContext context)
    {
        ArgumentNullException.ThrowIfNull(record);
        ArgumentNullException.ThrowIfNull(context);
        Mode mode = RuleSupport.EffectiveMode(record);
        if (mode is not (Mode.Train or Mode.Eval))
        {
            return;
        }

        // Indexed: foreach over a RepeatedField allocates an enumerator per record.
        for (int index = 0; index < record.Tensors.Count; index++)
        {
            TensorRecord tensor = record.Tensors[index];
            if (tensor.Summary is not { } summary || !double.IsFinite(summary.Mean) || !Selector.Matches(tensor))
            {
                continue;
            }

            var key = new SeriesKey(record.RunId, record.Rank, tensor.Name);
            if (!_series.TryGetValue(key, out State? state))
            {
                state = new State();
                _series[key] = state;
            }

            if (mode == Mode.Train)
            {
                state.Training.Add(summary.Mean, Delta);
            }
            else
            {
                state.Validation.Add(summary.Mean, Delta);
            }

            bool trainStalled = state.Training.Since >= PatienceTrain;
            bool validationStalled = state.Validation.Since >= PatienceValidation;
            if (validationStalled)
            {
                context.Report(tensor.Name, true, state.Validation.Since, PatienceValidation, string.Create(CultureInfo.InvariantCulture,
                    $"validation {tensor.Name} has not improved on {state.Validation.Best:G4} by more than {Delta} for {state.Validation.Since} traced evaluation steps"));
            }
            else if (trainStalled)
            {
                context.Report(tensor.Name, true, state.Training.Since, PatienceTrain, string.Create(CultureInfo.InvariantCulture,
                    $"training {tensor.Name} has not improved on {state.Training.Best:G4} by more than {Delta} for {state.Training.Since} traced training steps"));
            }
            else
            {
                context.Report(tensor.Name, false, state.Training.Since, PatienceTrain, Improving);
            }
        }
    }

    private sealed class State
    {
        public Optimum Training { get; init; } = new();

        public Optimum Validation { get; init; } = new();
    }

    private sealed class Optimum
    {
        public bool Seen;
        public double Best;
        public int Since;

        public static Optimum ReadState(ref StateReader reader) => new()
        {
            Seen = reader.ReadBool("optimum seen"),
            Best = reader.ReadDouble("optimum"),
            Since = reader.ReadInt32("steps since optimum"),
        };

        public void WriteState(ref StateWriter writer)
        {
            writer.WriteBool(Seen);
            writer.WriteDouble(Best);
            writer.WriteVarInt(Since);
        }

        public void Add(double value, double delta)
        {
            if (!Seen || value < Best - delta)
            {
                Seen = true;
                Best = value;
                Since = 0;
            }
            else
            {
                Since++;
            }
        }
    }
}
