using System.Buffers;
using System.Globalization;
using Monitor.Analysis.Rules;
using Monitor.Analysis.State;
using Monitor.Contracts;
using Monitor.Contracts.V1;

namespace Monitor.Analysis.Drift;

/// <summary>What a concept-drift monitor feeds its detector (its input stream).</summary>
public enum ConceptDriftInput
{
    /// <summary>
    /// The model's per-example error: 1 where the predicted class differs from the label, else 0, from the raw
    /// predictions and labels of the same record (a binary stream, what DDM, EDDM and HDDM expect).
    /// </summary>
    Error,

    /// <summary>The raw values of the selected tensor, e.g. per-example losses (a real-valued stream).</summary>
    Values,

    /// <summary>The mean of the selected tensor per step, e.g. the batch loss (one value per record).</summary>
    Mean,
}

/// <summary>
/// Concept drift: a streaming detector (river's ADWIN, Page-Hinkley, KSWIN, DDM, EDDM, HDDM) fed with the model's
/// per-example error or loss, per run and rank. When the relation between inputs and labels changes, the model's
/// errors rise although its inputs look the same; the detector signals the change point. Reported as one alert series
/// (label <c>feature</c>: <c>error</c>, <c>values</c> or <c>mean</c>) whose condition holds for the record in which the
/// detector signalled; give the alert a <c>keepFiringForEvaluations</c> to keep it up for a while after.
/// </summary>
/// <remarks>
/// <para>Detectors follow river's semantics: each restarts from scratch on the update after a detection, so a lasting
/// change is signalled once (and again only if the new regime changes too).</para>
/// <para><b>Cost.</b> At most <see cref="ValuesPerStep"/> values of a record are fed (evenly spaced over the batch), a
/// few nanoseconds each. State per series: the detector's.</para>
/// </remarks>
public sealed class ConceptDriftRule : ITrainingRule, IValidatedRule, IStatefulRule
{
    private static readonly TensorRequirement[] ErrorNeeds =
    [
        new(CollectionNames.Predictions, Raw: true, "predicted classes, compared with the labels per example"),
        new(CollectionNames.Labels, Raw: true, "labels of the same examples"),
    ];

    private readonly SeriesTable<IDriftDetector> _detectors = new();
    // A detector's state is written here first, so that its length can precede it (see WriteState).
    private readonly ArrayBufferWriter<byte> _detectorState = new();
    private StateWrite<IDriftDetector>? _writeDetector;
    private double[] _scratch = [];
    private string? _quietDescription;
    private string? _warningDescription;

    /// <inheritdoc />
    public string Name { get; init; } = "ConceptDrift";

    /// <summary>The detector, as the CLI names it (<c>adwin</c>, <c>page-hinkley</c>, <c>kswin</c>, <c>ddm</c>, <c>eddm</c>,
    /// <c>hddm-a</c>, <c>hddm-w</c>). Default <c>ddm</c>, Gama's detector for a binary error stream.</summary>
    /// <exception cref="ArgumentException">Unknown detector.</exception>
    public string Detector
    {
        get;
        init
        {
            _ = DriftDetectors.Create(value, new Dictionary<string, string>());
            field = value;
        }
    } = "ddm";

    /// <summary>
    /// The detector's parameters, spelled as river spells them (<c>delta</c>, <c>warm_start</c>, ...). Default: river's
    /// defaults. Checked against the detector by <see cref="Validate"/> (the rule configuration calls it), and when the
    /// first detector is made.
    /// </summary>
    public IReadOnlyDictionary<string, string> DetectorParameters { get; init; } = new Dictionary<string, string>();

    /// <summary>What the detector is fed. Default <see cref="ConceptDriftInput.Error"/>.</summary>
    public ConceptDriftInput Input { get; init; } = ConceptDriftInput.Error;

    /// <summary>The tensor fed for <see cref="ConceptDriftInput.Values"/> and <see cref="ConceptDriftInput.Mean"/>. Default: the <c>losses</c> collection.</summary>
    public TensorSelector Selector { get; init; } = TensorSelector.Of(Collection.Losses);

    /// <summary>The predictions, for <see cref="ConceptDriftInput.Error"/>. Default: the <c>predictions</c> collection.</summary>
    public TensorSelector PredictionsSelector { get; init; } = TensorSelector.Of(Collection.Predictions);

    /// <summary>The labels, for <see cref="ConceptDriftInput.Error"/>. Default: the <c>labels</c> collection.</summary>
    public TensorSelector LabelsSelector { get; init; } = TensorSelector.Of(Collection.Labels);

    /// <summary>Whether predictions are scores per class (reduced with an argmax over the last dimension). Default false: class ids.</summary>
    public bool Argmax { get; init; }

    /// <summary>Values fed per record at most (evenly spaced over the batch). Default 64.</summary>
    public int ValuesPerStep
    {
        get;
        init => field = value is >= 1 and <= 1_000_000 ? value : throw new ArgumentOutOfRangeException(nameof(ValuesPerStep), value, "ValuesPerStep must be between 1 and 1000000");
    } = 64;

    /// <summary>The mode whose records are watched. Default <see cref="Mode.Train"/>.</summary>
    public Mode Mode { get; init; } = Mode.Train;

    /// <inheritdoc />
    public IReadOnlyList<TensorRequirement> Requirements => Input == ConceptDriftInput.Error
        ? ErrorNeeds
        : [new(CollectionNames.Losses, Raw: Input == ConceptDriftInput.Values, "the values fed to the detector (e.g. per-example losses)")];

    /// <inheritdoc />
    public IReadOnlyList<string> Validate()
    {
        try
        {
            _ = DriftDetectors.Create(Detector, DetectorParameters);
            return [];
        }
        catch (ArgumentException ex)
        {
            return [$"detectorParameters: {ex.Message}"];
        }
    }

    /// <inheritdoc />
    public void ForgetRank(string run, uint rank) => _detectors.Forget(run, rank);

    /// <inheritdoc />
    public int StateVersion => 1;

    /// <inheritdoc />
    /// <remarks>Per tensor: the detector's name and its state (<see cref="IDriftDetector.WriteState"/>), length-prefixed
    /// so that a snapshot of another detector can be skipped.</remarks>
    public void WriteState(string run, uint rank, ref StateWriter writer) =>
        _detectors.WriteState(run, rank, ref writer, _writeDetector ??= WriteDetector);

    /// <inheritdoc />
    /// <remarks>A detector of another name than <see cref="Detector"/>, or one whose state the configured parameters
    /// cannot take over (<see cref="IDriftDetector.ReadState"/>), starts over.</remarks>
    public Action ReadState(string run, uint rank, int version, ref StateReader reader) =>
        _detectors.ReadState(run, rank, ref reader, ReadDetector);

    private void WriteDetector(ref StateWriter writer, IDriftDetector detector)
    {
        _detectorState.ResetWrittenCount();
        var state = new StateWriter(_detectorState);
        detector.WriteState(ref state);
        writer.WriteString(detector.Name);
        writer.WriteVarUInt((ulong)_detectorState.WrittenCount);
        writer.WriteBytes(_detectorState.WrittenSpan);
    }

    private IDriftDetector ReadDetector(ref StateReader reader)
    {
        string name = reader.ReadString("detector");
        StateReader state = reader.ReadSection("detector state", $"{reader.What}, detector '{name}'");
        IDriftDetector detector = DriftDetectors.Create(Detector, DetectorParameters);
        // A detector that cannot take the state over is left as new, and the rest of its bytes is not looked at.
        if (name == Detector && detector.ReadState(ref state))
        {
            state.EnsureEnd();
        }

        return detector;
    }

    /// <inheritdoc />
    public void Evaluate(StepRecord record, RuleContext context)
    {
        ArgumentNullException.ThrowIfNull(record);
        ArgumentNullException.ThrowIfNull(context);
        if (!RuleSupport.InMode(record, Mode))
        {
            return;
        }

        switch (Input)
        {
            case ConceptDriftInput.Error:
                FeedErrors(record, context);
                break;
            case ConceptDriftInput.Values:
                if (RuleSupport.FirstRaw(record, Selector) is { } valued)
                {
                    ReadOnlySpan<float> values = TensorValues.Raw(valued);
                    int fed = Math.Min(values.Length, ValuesPerStep);
                    Span<double> sample = Scratch(fed);
                    for (int i = 0; i < fed; i++)
                    {
                        sample[i] = values[(int)BatchSample.Row(i, fed, values.Length)];
                    }

                    Feed(record, valued.Name, context, sample);
                }

                break;
            default:
                for (int index = 0; index < record.Tensors.Count; index++)
                {
                    TensorRecord tensor = record.Tensors[index];
                    if (tensor.Summary is { } summary && double.IsFinite(summary.Mean) && Selector.Matches(tensor))
                    {
                        Span<double> sample = Scratch(1);
                        sample[0] = summary.Mean;
                        Feed(record, tensor.Name, context, sample);
                        break;
                    }
                }

                break;
        }
    }

    private Span<double> Scratch(int length)
    {
        if (_scratch.Length < length)
        {
            _scratch = new double[Math.Max(length, _scratch.Length * 2)];
        }

        return _scratch.AsSpan(0, length);
    }

    private void FeedErrors(StepRecord record, RuleContext context)
    {
        if (RuleSupport.FirstRaw(record, PredictionsSelector) is not { } predictionsTensor || RuleSupport.FirstRaw(record, LabelsSelector) is not { } labelsTensor)
        {
            return;
        }

        ReadOnlySpan<float> labels = TensorValues.Raw(labelsTensor);
        ReadOnlySpan<float> predictions = TensorValues.Raw(predictionsTensor);
        int rowLength = RuleSupport.PredictionRowLength(predictionsTensor, Argmax, labels.Length, predictions.Length);
        int pairs = rowLength == 0 ? 0 : Math.Min(labels.Length, predictions.Length / rowLength);
        int fed = Math.Min(pairs, ValuesPerStep);
        Span<double> sample = Scratch(fed);
        for (int i = 0; i < fed; i++)
        {
            int row = (int)BatchSample.Row(i, fed, pairs);
            int label = RuleSupport.ClassOf(labels[row]);
            int predicted = RuleSupport.PredictedClass(predictions, rowLength, row);
            sample[i] = label < 0 || predicted < 0 ? double.NaN : predicted == label ? 0 : 1;
        }

        Feed(record, predictionsTensor.Name, context, sample);
    }

    private void Feed(StepRecord record, string tensorName, RuleContext context, ReadOnlySpan<double> sample)
    {
        if (sample.IsEmpty)
        {
            return;
        }

        var key = new SeriesKey(record.RunId, record.Rank, tensorName);
        if (!_detectors.TryGetValue(key, out IDriftDetector? detector))
        {
            detector = DriftDetectors.Create(Detector, DetectorParameters);
            _detectors[key] = detector;
        }

        bool drift = false, warning = false;
        double sum = 0;
        int counted = 0;
        foreach (double value in sample)
        {
            if (!double.IsFinite(value))
            {
                continue;
            }

            detector.Update(value);
            drift |= detector.DriftDetected;
            warning |= detector.WarningDetected;
            sum += value;
            counted++;
        }

        if (counted == 0)
        {
            return;
        }

        double mean = sum / counted;
        string description = drift
            ? string.Create(CultureInfo.InvariantCulture, $"{Detector} signalled concept drift in the {Describe()} of {tensorName} at step {record.Step} (mean of this step {mean:G4})")
            : warning ? _warningDescription ??= $"{Detector} is in its warning zone for the {Describe()}" : _quietDescription ??= $"{Detector} signals no change in the {Describe()}";
        context.ReportDrift(tensorName, FeatureName, Detector, drift, mean, double.NaN, double.NaN, description);
    }

    private string FeatureName => Input switch
    {
        ConceptDriftInput.Error => "error",
        ConceptDriftInput.Values => "values",
        _ => "mean",
    };

    private string Describe() => Input switch
    {
        ConceptDriftInput.Error => "per-example error",
        ConceptDriftInput.Values => "per-example values",
        _ => "per-step mean",
    };
}
