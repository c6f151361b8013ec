using System.Globalization;
using Google.Protobuf;
using Microsoft.Extensions.Time.Testing;
using Monitor.Analysis.Rules;
using Monitor.Contracts;
using Monitor.Contracts.V1;

namespace Monitor.Analysis.Tests;

/// <summary>
/// The service reads every record into one reused object graph (<see cref="StepRecordReader"/>): an engine fed that
/// way must behave exactly as one fed a fresh record each time, which it does only if no rule keeps a message or a
/// repeated field of a record past <see cref="AnalysisEngine.Process(StepRecord, TraceContext)"/>.
/// </summary>
public sealed class ReusedRecordTests
{
    [Fact]
    public void Process_GivesTheSameTransitionsAndState_WhenRecordsAreReadIntoOneReusedGraph()
    {
        FakeTimeProvider timeFresh = new(AnalysisTestDriver.StartTime), timeReused = new(AnalysisTestDriver.StartTime);
        var fresh = new AnalysisEngine(EveryBuiltInRule(), timeFresh);
        var reused = new AnalysisEngine(EveryBuiltInRule(), timeReused);
        var reader = new StepRecordReader();
        var random = new Random(42);
        var freshLog = new List<string>();
        var reusedLog = new List<string>();
        for (long step = 1; step <= 160; step++)
        {
            foreach ((string run, uint rank) in new[] { ("run-a", 0u), ("run-a", 1u), ("run-b", 0u) })
            {
                byte[] payload = Record(run, rank, step, random).ToByteArray();
                Assert.True(StepRecordDecoder.TryDecode(payload, out StepRecord? decoded, out DecodeError error), error.ToString());
                Assert.True(reader.TryRead(payload, out StepRecord? read, out error), error.ToString());
                freshLog.AddRange(fresh.Process(decoded).Select(Describe));
                reusedLog.AddRange(reused.Process(read).Select(Describe));
                Assert.Equal(freshLog.Count, reusedLog.Count);
            }
        }

        Assert.NotEmpty(freshLog);
        Assert.Equal(freshLog, reusedLog);
        Assert.Equal(fresh.Keys.Order().ToArray(), reused.Keys.Order().ToArray());
        foreach ((string run, uint rank) in fresh.Keys)
        {
            Assert.Equal(fresh.WriteSnapshot(run, rank), reused.WriteSnapshot(run, rank));
        }
    }

    private static RuleBinding[] EveryBuiltInRule() =>
    [
        .. BuiltInRules.TensorRules.Values.Concat(BuiltInRules.DataRules.Values).Concat(BuiltInRules.DriftRules.Values)
            .Select(make => new RuleBinding { Rule = make() }),
    ];

    private static string Describe(AlertTransition t) => string.Create(CultureInfo.InvariantCulture,
        $"{t.Identity.Fingerprint} {t.PreviousState}->{t.State} step {t.Step} value {t.Value:R} {t.Description}");

    /// <summary>A step of a small model whose tensors go through phases (healthy, unchanged, vanishing, NaN, exploding,
    /// drifting inputs), so that most rules keep state and several fire.</summary>
    private static StepRecord Record(string run, uint rank, long step, Random random)
    {
        var record = new StepRecord
        {
            SchemaVersion = 1, RunId = run, Rank = rank, WorldSize = 2, Step = step,
            Mode = step % 10 == 0 ? Mode.Eval : Mode.Train,
            EventTimeUnixNanos = AnalysisTestDriver.TimeOfStep(step).ToUnixTimeMilliseconds() * 1_000_000,
            Sequence = (ulong)step,
        };
        bool unchanged = step is > 40 and < 60;
        float scale = step > 120 ? 1e6f : 1f;
        float[] weights = new float[16];
        for (int i = 0; i < weights.Length; i++)
        {
            weights[i] = unchanged ? i * 0.01f : (float)(random.NextDouble() - 0.5) * scale;
        }

        record.Tensors.Add(Tensor("fc1.weight", Collection.Weights, weights, [4, 4], nan: 0));
        float[] gradients = new float[8];
        for (int i = 0; i < gradients.Length; i++)
        {
            gradients[i] = (float)(random.NextDouble() - 0.5) * (step is > 60 and < 90 ? 1e-9f : 1e-2f);
        }

        TensorRecord gradient = Tensor("fc1.weight.grad", Collection.Gradients, gradients, [8], nan: step is > 95 and < 100 ? 2u : 0u);
        gradient.Raw = null;
        record.Tensors.Add(gradient);
        float[] activations = new float[12];
        for (int i = 0; i < activations.Length; i++)
        {
            activations[i] = i % 3 == 0 || step > 100 ? 0 : (float)random.NextDouble();
        }

        record.Tensors.Add(Tensor("relu1.output", Collection.Activations, activations, [3, 4], nan: 0));
        double loss = step < 70 ? 2.0 / step : 0.5 + (random.NextDouble() * 0.01);
        record.Tensors.Add(Tensor("loss", Collection.Losses, [(float)loss], [], nan: 0));
        float[] inputs = new float[8 * 3];
        for (int i = 0; i < inputs.Length; i++)
        {
            inputs[i] = (float)(random.NextDouble() + (step > 80 ? 3 : 0));
        }

        TensorRecord batch = Tensor("inputs", Collection.Inputs, inputs, [8, 3], nan: 0);
        batch.Raw.SampleRows = 8;
        batch.FeatureNames.Add(["x0", "x1", "x2"]);
        record.Tensors.Add(batch);
        float[] labels = new float[8];
        float[] predictions = new float[8];
        for (int i = 0; i < labels.Length; i++)
        {
            labels[i] = random.Next(3);
            predictions[i] = step > 110 ? 0 : labels[i];
        }

        record.Tensors.Add(Tensor("labels", Collection.Labels, labels, [8], nan: 0));
        record.Tensors.Add(Tensor("predictions", Collection.Predictions, predictions, [8], nan: 0));
        if (step % 7 == 0)
        {
            record.Thinned.Add(new ThinnedCollection { Collection = Collection.Gradients, Stride = 2, SkippedTensors = 1 });
        }

        return record;
    }

    private static TensorRecord Tensor(string name, Collection collection, float[] values, long[] shape, uint nan)
    {
        ulong[] buckets = new ulong[Log2Histogram.BucketCount];
        double sum = 0, sumSquares = 0, l1 = 0;
        float min = float.PositiveInfinity, max = float.NegativeInfinity;
        ulong zeros = 0;
        foreach (float v in values)
        {
            buckets[Log2Histogram.BucketOf(v)]++;
            sum += v;
            sumSquares += (double)v * v;
            l1 += Math.Abs(v);
            min = Math.Min(min, v);
            max = Math.Max(max, v);
            zeros += v == 0 ? 1u : 0u;
        }

        double mean = sum / values.Length;
        int first = Array.FindIndex(buckets, c => c != 0);
        int last = Array.FindLastIndex(buckets, c => c != 0);
        var histogram = new Histogram { Layout = HistogramLayout.Log2Magnitude, FirstBucket = (uint)first };
        histogram.Counts.Add(buckets[first..(last + 1)]);
        var tensor = new TensorRecord
        {
            Name = name,
            Dtype = DType.Float32,
            Summary = new TensorSummary
            {
                Count = (ulong)values.Length + nan, Min = min, Max = max, Mean = mean,
                Variance = Math.Max(0, (sumSquares / values.Length) - (mean * mean)), L1 = l1, L2 = Math.Sqrt(sumSquares),
                AbsMean = l1 / values.Length, ZeroCount = zeros, NanCount = nan, Histogram = histogram,
            },
            Raw = new RawValues { TotalElements = (ulong)values.Length, Float32Le = ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan())) },
        };
        tensor.Collections.Add(collection);
        tensor.Shape.Add(shape);
        return tensor;
    }
}
