using System.Globalization;
using Monitor.Analysis.State;
using Monitor.Contracts;
using Monitor.Contracts.V1;

namespace Monitor.Analysis.Rules;

/// <summary>
/// Overfit (smdebug <c>Overfit</c>): compares the validation loss (the loss tensor in <see cref="Mode.Eval"/> records)
/// with the training loss (the same tensor in <see cref="Mode.Train"/> records) and fires when the validation loss
/// exceeds the training loss by more than <see cref="RatioThreshold"/> of it for <see cref="Patience"/> validation
/// passes in a row.
/// </summary>
/// <remarks>
/// <para>Formula, per loss tensor of each rank: a validation pass is a run of consecutive evaluation values of the
/// tensor; it is evaluated when it ends, at the next training value of the tensor, and reported at that record:
/// <c>ratio = (mean(pass) - mean(training)) / |mean(training)|</c>, the training mean over the last
/// <see cref="WindowSteps"/> traced training values before the pass (fewer until that many arrived). A ratio above
/// <see cref="RatioThreshold"/> counts one exceeding pass, any other ratio resets the count; the condition holds while
/// the count is at least <see cref="Patience"/>. Values before <see cref="StartStep"/> are ignored; nothing is reported
/// for a pass without training values before it, or while the training mean is 0.</para>
/// <para>Parameters and defaults follow the SageMaker developer guide, "List of Debugger Built-in Rules", Overfit
/// (<c>tensor_regex</c> → <see cref="Selector"/>, <c>start_step</c>, <c>patience</c>, <c>ratio_threshold</c>).</para>
/// <para>Differences from smdebug: the guide speaks of mean losses without saying over what. Here the validation mean
/// is one whole pass (a sliding window over validation values would mix passes an epoch apart, and a decreasing loss
/// then makes the older pass look like overfitting), and the training mean is over the steps just before it;
/// <see cref="WindowSteps"/> is ours. <see cref="Patience"/> counts passes. Training and validation values are paired
/// by tensor name; records without a mode count as training, prediction records are ignored.</para>
/// </remarks>
public sealed class OverfitRule : ITrainingRule, IStatefulRule
{
    private const string NotOverfitting = "validation loss within the allowed ratio of the training loss";

    private static readonly TensorRequirement[] Needs =
        [new(CollectionNames.Losses, Raw: false, "training loss (TRAIN records) and validation loss (EVAL records)")];

    private readonly SeriesTable<State> _series = new();

    /// <summary>First step compared; earlier records are ignored. Default 0 (smdebug's <c>start_step</c>).</summary>
    public long StartStep
    {
        get;
        init => field = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(StartStep), value, "StartStep must not be negative");
    }

    /// <summary>Exceeding validation passes in a row before the condition holds. Default 1 (smdebug's <c>patience</c>).</summary>
    public int Patience
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(Patience), value, "Patience must be at least 1");
    } = 1;

    /// <summary>
    /// Largest allowed <c>(validation - training) / |training|</c>. Default 0.1 (smdebug's <c>ratio_threshold</c>).
    /// </summary>
    public double RatioThreshold
    {
        get;
        init => field = value >= 0 && double.IsFinite(value) ? value : throw new ArgumentOutOfRangeException(nameof(RatioThreshold), value, "RatioThreshold must be finite and not negative");
    } = 0.1;

    /// <summary>Traced training values averaged before each validation pass. Default 10 (ours; smdebug does not say).</summary>
    public int WindowSteps
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(WindowSteps), value, "WindowSteps must be at least 1");
    } = 10;

    /// <summary>Which tensors are losses (smdebug's <c>tensor_regex</c>). Default: the <c>losses</c> collection.</summary>
    public TensorSelector Selector { get; init; } = TensorSelector.Of(Collection.Losses);

    /// <inheritdoc />
    public string Name { get; init; } = "Overfit";

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
            w.WriteDouble(state.PassSum);
            w.WriteVarInt(state.PassCount);
            w.WriteVarInt(state.Exceeding);
        });

    /// <inheritdoc />
    /// <remarks>A training window written with another <see cref="WindowSteps"/> keeps its most recent values that fit.</remarks>
    public Action ReadState(string run, uint rank, int version, ref StateReader reader)
    {
        int window = WindowSteps;
        return _series.ReadState(run, rank, ref reader, (ref StateReader r) => new State(StepWindow.ReadState(ref r, window))
        {
            PassSum = r.ReadDouble("validation sum"),
            PassCount = r.ReadInt32("validation values"),
            Exceeding = r.ReadInt32("passes exceeding"),
        });
    }

    /// <inheritdoc />
    public void Evaluate(StepRecord record, RuleContext context)
    {
        ArgumentNullException.ThrowIfNull(record);
        ArgumentNullException.ThrowIfNull(context);
        Mode mode = RuleSupport.EffectiveMode(record);
        if (record.Step < StartStep || mode is not (Mode.Train or Mode.Eval))
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
                state = new State(WindowSteps);
                _series[key] = state;
            }

            if (mode == Mode.Eval)
            {
                state.PassSum += summary.Mean;
                state.PassCount++;
                continue;
            }

            if (state.PassCount > 0)
            {
                EvaluatePass(context, tensor.Name, state);
            }

            state.Training.Add(summary.Mean);
        }
    }

    private void EvaluatePass(RuleContext context, string tensor, State state)
    {
        double validation = state.PassSum / state.PassCount;
        int values = state.PassCount;
        state.PassSum = 0;
        state.PassCount = 0;
        double training = state.Training.Mean;
        if (state.Training.Count == 0 || training == 0)
        {
            return;
        }

        double ratio = (validation - training) / Math.Abs(training);
        state.Exceeding = ratio > RatioThreshold ? state.Exceeding + 1 : 0;
        if (state.Exceeding >= Patience)
        {
            context.Report(tensor, true, ratio, RatioThreshold, string.Create(CultureInfo.InvariantCulture,
                $"validation {tensor} {validation:G4} (mean of {values} values) is {100 * ratio:F1}% above training {training:G4} (allowed {100 * RatioThreshold:F1}%), {state.Exceeding} passes in a row"));
        }
        else
        {
            context.Report(tensor, false, ratio, RatioThreshold, NotOverfitting);
        }
    }

    private sealed class State(StepWindow training)
    {
        public State(int window)
            : this(new StepWindow(window))
        {
        }

        public readonly StepWindow Training = training;
        public double PassSum;
        public int PassCount;
        public int Exceeding;
    }
}
