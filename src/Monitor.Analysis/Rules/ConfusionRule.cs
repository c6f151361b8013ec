using System.Globalization;
using Monitor.Analysis.State;
using Monitor.Contracts;
using Monitor.Contracts.V1;

namespace Monitor.Analysis.Rules;

/// <summary>
/// Confusion (smdebug <c>Confusion</c>): builds the confusion matrix of the raw labels and predictions over a window of
/// samples and fires when a predicted class is too often wrong: its diagonal share is below <see cref="MinDiag"/>, or
/// one true class makes up more than <see cref="MaxOffDiag"/> of its predictions.
/// </summary>
/// <remarks>
/// <para>Formula, per predictions tensor of each rank, on tumbling windows that close at the first record that brings
/// the window to at least <see cref="Samples"/> (label, prediction) pairs: <c>confusion[label][prediction] += 1</c>
/// per pair; for every predicted class <c>i</c> with <c>s_i = sum_j confusion[j][i] &gt; 0</c>, the condition holds when
/// <c>confusion[i][i] / s_i &lt; MinDiag</c> or <c>confusion[j][i] / s_i &gt; MaxOffDiag</c> for some <c>j != i</c>. The
/// reported value is the smallest diagonal share when that check fails, else the largest off-diagonal share.</para>
/// <para>Parameters and defaults follow the SageMaker developer guide, "List of Debugger Built-in Rules", Confusion
/// (<c>category_no</c>, <c>labels</c>/<c>labels_collection</c> → <see cref="LabelsSelector"/>,
/// <c>predictions</c>/<c>predictions_collection</c> → <see cref="PredictionsSelector"/>, <c>min_diag</c>,
/// <c>max_off_diag</c>).</para>
/// <para>Differences from smdebug: the guide divides the diagonal by <c>sum_j confusion[j][j]</c>, which for ten
/// balanced, perfectly predicted classes gives 0.1 and would always fire (smdebug's own tests expect a perfect
/// prediction not to fire); both checks here divide by the column sum, as the guide's off-diagonal formula does.
/// smdebug builds the matrix from one step's batch; here from <see cref="Samples"/> pairs (our parameter) so that a
/// class with a handful of samples in one batch does not decide. <see cref="Argmax"/> (ours) takes scores as
/// predictions. Categories are capped at 1,024 (the matrix is per rank).</para>
/// </remarks>
public sealed class ConfusionRule : ITrainingRule, IStatefulRule
{
    /// <summary>Largest number of categories the matrix grows to (8 MiB of counters per rank); larger ids are ignored.</summary>
    public const int MaxCategories = 1024;

    private const string Confident = "every predicted class within the diagonal and off-diagonal limits";

    private static readonly TensorRequirement[] Needs =
    [
        new(CollectionNames.Labels, Raw: true, "true class ids, the rows of the confusion matrix"),
        new(CollectionNames.Predictions, Raw: true, "predicted class ids (or scores), the columns of the confusion matrix"),
    ];

    private readonly SeriesTable<Matrix> _series = new();

    /// <summary>
    /// Number of categories, at least 2; ids at or above it are ignored. Default null: the largest id seen in labels
    /// and predictions, plus one (smdebug's <c>category_no</c>).
    /// </summary>
    public int? CategoryNo
    {
        get;
        init => field = value is null or (>= 2 and <= MaxCategories) ? value : throw new ArgumentOutOfRangeException(nameof(CategoryNo), value, $"CategoryNo must be in [2, {MaxCategories}]");
    }

    /// <summary>Smallest allowed diagonal share of a predicted class, in [0, 1]. Default 0.9 (smdebug's <c>min_diag</c>).</summary>
    public double MinDiag
    {
        get;
        init => field = value is >= 0 and <= 1 ? value : throw new ArgumentOutOfRangeException(nameof(MinDiag), value, "MinDiag must be in [0, 1]");
    } = 0.9;

    /// <summary>Largest allowed off-diagonal share of a predicted class, in [0, 1]. Default 0.1 (smdebug's <c>max_off_diag</c>).</summary>
    public double MaxOffDiag
    {
        get;
        init => field = value is >= 0 and <= 1 ? value : throw new ArgumentOutOfRangeException(nameof(MaxOffDiag), value, "MaxOffDiag must be in [0, 1]");
    } = 0.1;

    /// <summary>Pairs per window before the matrix is evaluated. Default 500 (ours; smdebug evaluates each step's batch).</summary>
    public int Samples
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(Samples), value, "Samples must be at least 1");
    } = 500;

    /// <summary>Whether predictions are scores per class, reduced with an argmax over the last dimension. Default false (ours).</summary>
    public bool Argmax { get; init; }

    /// <summary>The labels tensor. Default: the <c>labels</c> collection (smdebug's <c>labels_collection</c>).</summary>
    public TensorSelector LabelsSelector { get; init; } = TensorSelector.Of(Collection.Labels);

    /// <summary>The predictions tensor. Default: the <c>predictions</c> collection (smdebug's <c>predictions_collection</c>).</summary>
    public TensorSelector PredictionsSelector { get; init; } = TensorSelector.Of(Collection.Predictions);

    /// <inheritdoc />
    public string Name { get; init; } = "Confusion";

    /// <inheritdoc />
    public IReadOnlyList<TensorRequirement> Requirements => Needs;

    /// <inheritdoc />
    public void ForgetRank(string run, uint rank) => _series.Forget(run, rank);

    /// <inheritdoc />
    public int StateVersion => 1;

    /// <inheritdoc />
    public void WriteState(string run, uint rank, ref StateWriter writer) =>
        _series.WriteState(run, rank, ref writer, static (ref StateWriter w, Matrix matrix) => matrix.WriteState(ref w));

    /// <inheritdoc />
    public Action ReadState(string run, uint rank, int version, ref StateReader reader) =>
        _series.ReadState(run, rank, ref reader, Matrix.ReadState);

    /// <inheritdoc />
    public void Evaluate(StepRecord record, RuleContext context)
    {
        ArgumentNullException.ThrowIfNull(record);
        ArgumentNullException.ThrowIfNull(context);
        if (RuleSupport.FirstRaw(record, LabelsSelector) is not { } labelsTensor
            || RuleSupport.FirstRaw(record, PredictionsSelector) is not { } predictionsTensor)
        {
            return;
        }

        ReadOnlySpan<float> labels = TensorValues.Raw(labelsTensor);
        ReadOnlySpan<float> predictions = TensorValues.Raw(predictionsTensor);
        int rowLength = RuleSupport.PredictionRowLength(predictionsTensor, Argmax, labels.Length, predictions.Length);
        int pairs = rowLength == 0 ? 0 : Math.Min(labels.Length, predictions.Length / rowLength);
        if (pairs == 0)
        {
            return;
        }

        var key = new SeriesKey(record.RunId, record.Rank, predictionsTensor.Name);
        if (!_series.TryGetValue(key, out Matrix? matrix))
        {
            matrix = new Matrix(CategoryNo ?? 2);
            _series[key] = matrix;
        }

        int limit = CategoryNo ?? MaxCategories;
        for (int i = 0; i < pairs; i++)
        {
            int label = RuleSupport.ClassOf(labels[i]);
            int predicted = RuleSupport.PredictedClass(predictions, rowLength, i);
            if (label >= 0 && predicted >= 0 && label < limit && predicted < limit)
            {
                matrix.Add(label, predicted);
            }
        }

        if (matrix.Pairs >= Samples)
        {
            Report(context, predictionsTensor.Name, matrix);
            matrix.Restart();
        }
    }

    private void Report(RuleContext context, string tensor, Matrix matrix)
    {
        int n = matrix.Size;
        double minDiag = double.PositiveInfinity;
        int minDiagClass = -1;
        double maxOff = 0;
        int maxOffRow = -1;
        int maxOffColumn = -1;
        for (int i = 0; i < n; i++)
        {
            long column = 0;
            for (int j = 0; j < n; j++)
            {
                column += matrix[j, i];
            }

            if (column == 0)
            {
                continue;
            }

            double diag = (double)matrix[i, i] / column;
            if (diag < minDiag)
            {
                minDiag = diag;
                minDiagClass = i;
            }

            for (int j = 0; j < n; j++)
            {
                double off = (double)matrix[j, i] / column;
                if (j != i && off > maxOff)
                {
                    maxOff = off;
                    maxOffRow = j;
                    maxOffColumn = i;
                }
            }
        }

        if (minDiagClass < 0)
        {
            return;
        }

        if (minDiag < MinDiag)
        {
            context.Report(tensor, true, minDiag, MinDiag, string.Create(CultureInfo.InvariantCulture,
                $"over the last {matrix.Pairs} samples only {100 * minDiag:F1}% of the predictions of class {minDiagClass} were right (at least {100 * MinDiag:F1}% required)"));
        }
        else if (maxOff > MaxOffDiag)
        {
            context.Report(tensor, true, maxOff, MaxOffDiag, string.Create(CultureInfo.InvariantCulture,
                $"over the last {matrix.Pairs} samples {100 * maxOff:F1}% of the predictions of class {maxOffColumn} were of class {maxOffRow} (at most {100 * MaxOffDiag:F1}% allowed)"));
        }
        else
        {
            context.Report(tensor, false, minDiag, MinDiag, Confident);
        }
    }

    private sealed class Matrix(int size)
    {
        private long[] _counts = new long[size * size];

        public int Size { get; private set; } = size;

        public long Pairs { get; private set; }

        public long this[int label, int predicted] => _counts[(label * Size) + predicted];

        public void Add(int label, int predicted)
        {
            int needed = Math.Max(label, predicted) + 1;
            if (needed > Size)
            {
                Grow(needed);
            }

            _counts[(label * Size) + predicted]++;
            Pairs++;
        }

        public void Restart()
        {
            Array.Clear(_counts);
            Pairs = 0;
        }

        public static Matrix ReadState(ref StateReader reader)
        {
            int size = reader.ReadInt32("matrix size", MaxCategories);
            long pairs = reader.ReadVarInt("pairs", 0, long.MaxValue);
            long[] counts = reader.ReadVarInts("matrix counts");
            return size >= 1 && counts.Length == size * size
                ? new Matrix(size) { _counts = counts, Pairs = pairs }
                : throw reader.Invalid("matrix counts", "not a square matrix of the given size");
        }

        public void WriteState(ref StateWriter writer)
        {
            writer.WriteVarInt(Size);
            writer.WriteVarInt(Pairs);
            writer.WriteVarInts(_counts);
        }

        private void Grow(int needed)
        {
            int size = Math.Min(MaxCategories, Math.Max(needed, Size * 2));
            long[] counts = new long[size * size];
            for (int row = 0; row < Size; row++)
            {
                Array.Copy(_counts, row * Size, counts, row * size, Size);
            }

            _counts = counts;
            Size = size;
        }
    }
}
