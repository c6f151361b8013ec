using System.Globalization;
using Monitor.Analysis.State;
using Monitor.Contracts;
using Monitor.Contracts.V1;

namespace Monitor.Analysis.Rules;

/// <summary>
/// Class imbalance (smdebug <c>ClassImbalance</c>): counts the samples per class in the raw labels, and fires when the
/// largest class outnumbers the smallest by more than <see cref="ThresholdImbalance"/>; with raw predictions too, also
/// when the fraction of mispredicted samples of some class exceeds <see cref="ThresholdMisprediction"/>.
/// </summary>
/// <remarks>
/// <para>Formula, per labels tensor of each rank, on tumbling windows that close at the first record that brings the
/// window to at least <see cref="Samples"/> labels: <c>imbalance = max_c n_c / min_c n_c</c> over every class seen so
/// far in the run (a class seen before but absent from the window has <c>n_c = 0</c>, an infinite imbalance), reported
/// on the labels tensor; <c>misprediction = max_c wrong_c / n_c</c> over the classes with labelled and predicted
/// samples in the window, reported on the predictions tensor. Labels are class ids; predictions are class ids, or
/// scores per class reduced with an argmax when <see cref="Argmax"/> is set. Labels and predictions are paired by
/// position in the same record.</para>
/// <para>Parameters and defaults follow the SageMaker developer guide, "List of Debugger Built-in Rules",
/// ClassImbalance (<c>threshold_imbalance</c>, <c>threshold_misprediction</c>, <c>samples</c>, <c>argmax</c>,
/// <c>labels_regex</c> → <see cref="LabelsSelector"/>, <c>predictions_regex</c> → <see cref="PredictionsSelector"/>).</para>
/// <para>Differences from smdebug: the counts restart with every window, so the alert follows the data (a shard
/// that is balanced again resolves it) instead of accumulating over the whole run. Needs raw values of both tensors;
/// reports nothing for records without them. Class ids must be below 65,536.</para>
/// </remarks>
public sealed class ClassImbalanceRule : ITrainingRule, IStatefulRule
{
    private const string Balanced = "classes balanced within the threshold";
    private const string PredictedWell = "every class predicted within the misprediction threshold";

    private static readonly TensorRequirement[] Needs =
    [
        new(CollectionNames.Labels, Raw: true, "class ids of the samples, counted per class"),
        new(CollectionNames.Predictions, Raw: true, "predicted class (or scores) of the same samples, for the misprediction rate"),
    ];

    private readonly SeriesTable<Counts> _series = new();

    /// <summary>Largest allowed ratio of the largest to the smallest class count. Default 10 (smdebug's <c>threshold_imbalance</c>).</summary>
    public double ThresholdImbalance
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(ThresholdImbalance), value, "ThresholdImbalance must be at least 1");
    } = 10;

    /// <summary>Largest allowed fraction of mispredicted samples of any class, in [0, 1]. Default 0.7 (smdebug's <c>threshold_misprediction</c>).</summary>
    public double ThresholdMisprediction
    {
        get;
        init => field = value is >= 0 and <= 1 ? value : throw new ArgumentOutOfRangeException(nameof(ThresholdMisprediction), value, "ThresholdMisprediction must be in [0, 1]");
    } = 0.7;

    /// <summary>Labels per window before the rule evaluates. Default 500 (smdebug's <c>samples</c>).</summary>
    public int Samples
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(Samples), value, "Samples must be at least 1");
    } = 500;

    /// <summary>Whether predictions are scores per class (reduced with an argmax over the last dimension). Default false (smdebug's <c>argmax</c>).</summary>
    public bool Argmax { get; init; }

    /// <summary>The labels tensor (smdebug's <c>labels_regex</c>, default <c>.*labels</c>). Default: the <c>labels</c> collection.</summary>
    public TensorSelector LabelsSelector { get; init; } = TensorSelector.Of(Collection.Labels);

    /// <summary>The predictions tensor (smdebug's <c>predictions_regex</c>, default <c>.*predictions</c>). Default: the <c>predictions</c> collection.</summary>
    public TensorSelector PredictionsSelector { get; init; } = TensorSelector.Of(Collection.Predictions);

    /// <inheritdoc />
    public string Name { get; init; } = "ClassImbalance";

    /// <inheritdoc />
    public IReadOnlyList<TensorRequirement> Requirements => Needs;

    /// <inheritdoc />
    public void ForgetRank(string run, uint rank) => _series.Forget(run, rank);

    /// <inheritdoc />
    public int StateVersion => 1;

    /// <inheritdoc />
    public void WriteState(string run, uint rank, ref StateWriter writer) =>
        _series.WriteState(run, rank, ref writer, static (ref StateWriter w, Counts counts) => counts.WriteState(ref w));

    /// <inheritdoc />
    public Action ReadState(string run, uint rank, int version, ref StateReader reader) =>
        _series.ReadState(run, rank, ref reader, Counts.ReadState);

    /// <inheritdoc />
    public void Evaluate(StepRecord record, RuleContext context)
    {
        ArgumentNullException.ThrowIfNull(record);
        ArgumentNullException.ThrowIfNull(context);
        if (RuleSupport.FirstRaw(record, LabelsSelector) is not { } labelsTensor)
        {
            return;
        }

        var key = new SeriesKey(record.RunId, record.Rank, labelsTensor.Name);
        if (!_series.TryGetValue(key, out Counts? counts))
        {
            counts = new Counts();
            _series[key] = counts;
        }

        ReadOnlySpan<float> labels = TensorValues.Raw(labelsTensor);
        foreach (float value in labels)
        {
            int label = RuleSupport.ClassOf(value);
            if (label >= 0)
            {
                counts.Count(label);
            }
        }

        if (RuleSupport.FirstRaw(record, PredictionsSelector) is { } predictionsTensor)
        {
            ReadOnlySpan<float> predictions = TensorValues.Raw(predictionsTensor);
            int rowLength = RuleSupport.PredictionRowLength(predictionsTensor, Argmax, labels.Length, predictions.Length);
            int pairs = rowLength == 0 ? 0 : Math.Min(labels.Length, predictions.Length / rowLength);
            for (int i = 0; i < pairs; i++)
            {
                int label = RuleSupport.ClassOf(labels[i]);
                int predicted = RuleSupport.PredictedClass(predictions, rowLength, i);
                if (label >= 0 && predicted >= 0)
                {
                    counts.Pair(label, predicted == label);
                }
            }

            if (pairs > 0)
            {
                counts.PredictionsName = predictionsTensor.Name;
            }
        }

        if (counts.Window >= Samples)
        {
            ReportImbalance(context, labelsTensor.Name, counts);
            ReportMispredictions(context, counts);
            counts.Restart();
        }
    }

    private void ReportImbalance(RuleContext context, string tensor, Counts counts)
    {
        int smallest = -1;
        int largest = -1;
        for (int c = 0; c < counts.Labels.Length; c++)
        {
            if (!counts.Seen[c])
            {
                continue;
            }

            if (smallest < 0 || counts.Labels[c] < counts.Labels[smallest])
            {
                smallest = c;
            }

            if (largest < 0 || counts.Labels[c] > counts.Labels[largest])
            {
                largest = c;
            }
        }

        long min = counts.Labels[smallest];
        long max = counts.Labels[largest];
        double ratio = min == 0 ? double.PositiveInfinity : (double)max / min;
        if (ratio > ThresholdImbalance)
        {
            context.Report(tensor, true, ratio, ThresholdImbalance, string.Create(CultureInfo.InvariantCulture,
                $"in the last {counts.Window} labels of {tensor}, class {largest} has {max} samples and class {smallest} {min} (ratio {ratio:G3}, allowed {ThresholdImbalance:G3})"));
        }
        else
        {
            context.Report(tensor, false, ratio, ThresholdImbalance, Balanced);
        }
    }

    private void ReportMispredictions(RuleContext context, Counts counts)
    {
        if (counts.PredictionsName is not { } tensor)
        {
            return;
        }

        int worst = -1;
        double worstFraction = -1;
        for (int c = 0; c < counts.Paired.Length; c++)
        {
            if (counts.Paired[c] == 0)
            {
                continue;
            }

            double fraction = (double)counts.Wrong[c] / counts.Paired[c];
            if (fraction > worstFraction)
            {
                worst = c;
                worstFraction = fraction;
            }
        }

        if (worst < 0)
        {
            return;
        }

        if (worstFraction > ThresholdMisprediction)
        {
            context.Report(tensor, true, worstFraction, ThresholdMisprediction, string.Create(CultureInfo.InvariantCulture,
                $"{counts.Wrong[worst]} of {counts.Paired[worst]} samples of class {worst} mispredicted ({100 * worstFraction:F1}%, allowed {100 * ThresholdMisprediction:F1}%)"));
        }
        else
        {
            context.Report(tensor, false, worstFraction, ThresholdMisprediction, PredictedWell);
        }
    }

    private sealed class Counts
    {
        public long[] Labels = [];
        public bool[] Seen = [];
        public long[] Paired = [];
        public long[] Wrong = [];
        public long Window;
        public string? PredictionsName;

        public void Count(int label)
        {
            if (label >= Labels.Length)
            {
                RuleSupport.EnsureIndex(ref Labels, label);
                RuleSupport.EnsureIndex(ref Seen, label);
            }

            Labels[label]++;
            Seen[label] = true;
            Window++;
        }

        public void Pair(int label, bool correct)
        {
            if (label >= Paired.Length)
            {
                RuleSupport.EnsureIndex(ref Paired, label);
                RuleSupport.EnsureIndex(ref Wrong, label);
            }

            Paired[label]++;
            if (!correct)
            {
                Wrong[label]++;
            }
        }

        public void Restart()
        {
            Array.Clear(Labels);
            Array.Clear(Paired);
            Array.Clear(Wrong);
            Window = 0;
            PredictionsName = null;
        }

        public static Counts ReadState(ref StateReader reader)
        {
            var counts = new Counts { Labels = reader.ReadVarInts("label counts") };
            counts.Seen = new bool[reader.ReadCount("classes seen", 1)];
            for (int i = 0; i < counts.Seen.Length; i++)
            {
                counts.Seen[i] = reader.ReadBool("class seen");
            }

            (counts.Paired, counts.Wrong) = (reader.ReadVarInts("paired counts"), reader.ReadVarInts("wrong counts"));
            counts.Window = reader.ReadVarInt("window", 0, long.MaxValue);
            counts.PredictionsName = reader.ReadOptionalString("predictions tensor");
            if (counts.Seen.Length != counts.Labels.Length || counts.Wrong.Length != counts.Paired.Length)
            {
                throw reader.Invalid("class counts", "the per-class arrays differ in length");
            }

            return counts;
        }

        public void WriteState(ref StateWriter writer)
        {
            writer.WriteVarInts(Labels);
            writer.WriteVarUInt((ulong)Seen.Length);
            foreach (bool seen in Seen)
            {
                writer.WriteBool(seen);
            }

            writer.WriteVarInts(Paired);
            writer.WriteVarInts(Wrong);
            writer.WriteVarInt(Window);
            writer.WriteOptionalString(PredictionsName);
        }
    }
}
