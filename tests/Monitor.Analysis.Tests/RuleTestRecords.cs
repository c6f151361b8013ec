using System.Runtime.InteropServices;
using Google.Protobuf;
using Monitor.Contracts.V1;

namespace Monitor.Analysis.Tests;

/// <summary>Record and tensor builders for the loss and data rule tests, on top of <see cref="AnalysisTestDriver"/>.</summary>
internal static class RuleTestRecords
{
    /// <summary>A record of <see cref="AnalysisTestDriver.DefaultRun"/> rank 0 in <paramref name="mode"/>.</summary>
    public static StepRecord InMode(Mode mode, long step, params TensorRecord[] tensors)
    {
        StepRecord record = AnalysisTestDriver.Record(step, tensors);
        record.Mode = mode;
        return record;
    }

    /// <summary>A tensor with raw float32 values, the given shape and dtype, and a summary with the element count.</summary>
    public static TensorRecord Raw(string name, float[] values, long[] shape, DType dtype, params Collection[] collections)
    {
        var tensor = new TensorRecord
        {
            Name = name,
            Dtype = dtype,
            Summary = new TensorSummary { Count = (ulong)values.Length },
            Raw = new RawValues
            {
                Float32Le = ByteString.CopyFrom(MemoryMarshal.AsBytes(values.AsSpan())),
                TotalElements = (ulong)values.Length,
            },
        };
        tensor.Shape.Add(shape);
        tensor.Collections.Add(collections);
        return tensor;
    }

    /// <summary>A 1-D labels tensor (collection labels) of class ids.</summary>
    public static TensorRecord Labels(params int[] ids) =>
        Raw("labels", [.. ids.Select(i => (float)i)], [ids.Length], DType.Int64, Collection.Labels);

    /// <summary>A 1-D predictions tensor (collection predictions) of class ids.</summary>
    public static TensorRecord Predictions(params int[] ids) =>
        Raw("predictions", [.. ids.Select(i => (float)i)], [ids.Length], DType.Int64, Collection.Predictions);

    /// <summary>A predictions tensor of scores, shape [samples, classes], with the highest score at each given class.</summary>
    public static TensorRecord Scores(int classes, params int[] argmax)
    {
        float[] values = new float[argmax.Length * classes];
        for (int i = 0; i < argmax.Length; i++)
        {
            for (int c = 0; c < classes; c++)
            {
                values[(i * classes) + c] = c == argmax[i] ? 0.9f : 0.1f / classes;
            }
        }

        return Raw("logits", values, [argmax.Length, classes], DType.Float32, Collection.Predictions);
    }

    /// <summary>A tensor with a full summary (every statistic given), for run comparisons.</summary>
    public static TensorRecord Summarized(string name, double mean, double variance = 1, double min = -1, double max = 1, double l2 = 10, ulong count = 100, ulong nanCount = 0)
    {
        var tensor = new TensorRecord
        {
            Name = name,
            Dtype = DType.Float32,
            Summary = new TensorSummary { Count = count, Mean = mean, Variance = variance, Min = min, Max = max, L2 = l2, NanCount = nanCount },
        };
        tensor.Shape.Add((long)count);
        tensor.Collections.Add(Collection.Weights);
        return tensor;
    }
}
