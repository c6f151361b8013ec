using Monitor.Contracts.V1;

namespace Monitor.Analysis.Rules;

/// <summary>Helpers of the loss and data rules (classification: class ids, arg-max, label and prediction tensors).</summary>
internal static partial class RuleSupport
{
    /// <summary>
    /// Largest class id (exclusive) the classification rules keep counts for. Bounds the memory one rank can make a
    /// rule hold (three arrays of this many counters at most); ids at or above it are ignored.
    /// </summary>
    public const int MaxClasses = 1 << 16;

    /// <summary>
    /// The mode a record counts as: a record whose producer left the mode unspecified counts as training, the mode
    /// almost every traced step is in.
    /// </summary>
    public static Mode EffectiveMode(StepRecord record) => record.Mode == Mode.Unspecified ? Mode.Train : record.Mode;

    /// <summary>
    /// Whether a record is looked at by a rule restricted to <paramref name="wanted"/>;
    /// <see cref="Mode.Unspecified"/> (smdebug's <c>GLOBAL</c>) means every record.
    /// </summary>
    public static bool InMode(StepRecord record, Mode wanted) => wanted == Mode.Unspecified || EffectiveMode(record) == wanted;

    /// <summary>The class id a float32 value stands for (rounded), or -1 when it is not a usable id.</summary>
    public static int ClassOf(float value)
    {
        if (!float.IsFinite(value) || value < -0.5f || value >= MaxClasses - 0.5f)
        {
            return -1;
        }

        return (int)MathF.Round(value);
    }

    /// <summary>Index of the largest finite value of <paramref name="row"/> (the first on ties), or -1 when none is finite.</summary>
    public static int ArgMax(ReadOnlySpan<float> row)
    {
        int best = -1;
        float max = float.NegativeInfinity;
        for (int i = 0; i < row.Length; i++)
        {
            float v = row[i];
            if (float.IsFinite(v) && (best < 0 || v > max))
            {
                best = i;
                max = v;
            }
        }

        return best;
    }

    /// <summary>
    /// Values per sample of a predictions tensor: 1 for class ids; with <paramref name="argmax"/>, the last dimension
    /// of its shape (scores per class), or the number of values per label when the shape says nothing. 0 when the
    /// layout cannot be told.
    /// </summary>
    public static int PredictionRowLength(TensorRecord predictions, bool argmax, int labelCount, int valueCount)
    {
        if (!argmax)
        {
            return 1;
        }

        if (predictions.Shape.Count >= 2 && predictions.Shape[^1] is > 0 and <= int.MaxValue)
        {
            return (int)predictions.Shape[^1];
        }

        return labelCount > 0 && valueCount % labelCount == 0 ? valueCount / labelCount : 0;
    }

    /// <summary>The predicted class of sample <paramref name="index"/> (see <see cref="PredictionRowLength"/>), or -1.</summary>
    public static int PredictedClass(ReadOnlySpan<float> predictions, int rowLength, int index) => rowLength == 1
        ? ClassOf(predictions[index])
        : ArgMax(predictions.Slice(index * rowLength, rowLength));

    /// <summary>Finds the first tensor a selector matches that carries raw values.</summary>
    public static TensorRecord? FirstRaw(StepRecord record, TensorSelector selector)
    {
        // Indexed: foreach over a RepeatedField allocates an enumerator per record.
        for (int index = 0; index < record.Tensors.Count; index++)
        {
            TensorRecord tensor = record.Tensors[index];
            // The selector's collection bit test first: it reads the tensor's own fields, HasRaw another object.
            if (selector.Matches(tensor) && TensorValues.HasRaw(tensor))
            {
                return tensor;
            }
        }

        return null;
    }

    /// <summary>Grows <paramref name="array"/> so that <paramref name="index"/> is valid (doubling, at most <see cref="MaxClasses"/>).</summary>
    public static void EnsureIndex<T>(ref T[] array, int index)
    {
        if (index < array.Length)
        {
            return;
        }

        int size = Math.Min(MaxClasses, Math.Max(index + 1, Math.Max(16, array.Length * 2)));
        Array.Resize(ref array, size);
    }
}
