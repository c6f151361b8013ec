using Google.Protobuf;
using Monitor.Archive;
using Monitor.Contracts;
using Monitor.Contracts.V1;

namespace Monitor.Trials.Tests;

/// <summary>Archives of synthetic records written by the real <see cref="ArchiveWriter"/>, one directory per test.</summary>
internal sealed class TrialArchive : IAsyncDisposable
{
    public static readonly DateTimeOffset Start = new(2026, 3, 4, 5, 6, 7, TimeSpan.Zero);

    public string Directory { get; } = System.IO.Directory.CreateTempSubdirectory("monitor-trial-").FullName;

    public async Task WriteAsync(IEnumerable<StepRecord> records)
    {
        await using var writer = new ArchiveWriter(new ArchiveOptions { Directory = Directory });
        foreach (StepRecord record in records)
        {
            await writer.AppendAsync(record, cancellationToken: TestContext.Current.CancellationToken);
        }
    }

    public ValueTask DisposeAsync()
    {
        System.IO.Directory.Delete(Directory, recursive: true);
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// <paramref name="steps"/> steps of a rank: a gradient (summary and log2 histogram; its mean |x| vanishes from step
    /// <paramref name="vanishAt"/>), a weight with raw values and an explicit histogram, and every 10 steps an eval
    /// record of the weight.
    /// </summary>
    public static IEnumerable<StepRecord> Records(string run, uint rank, int steps, long vanishAt = long.MaxValue, uint worldSize = 1)
    {
        ulong sequence = 0;
        for (long step = 0; step < steps; step++)
        {
            double absMean = step >= vanishAt ? 1e-10 : 1e-2;
            var record = NewRecord(run, rank, worldSize, step, Mode.Train, ++sequence);
            var gradient = new TensorRecord
            {
                Name = "fc1.weight.grad",
                Dtype = DType.Float32,
                Summary = new TensorSummary
                {
                    Count = 1026, NanCount = 1, InfCount = 1, Min = -0.5, Max = 0.25, Mean = 0.001, Variance = 4e-4,
                    L1 = 1024 * absMean, L2 = 0.5, AbsMean = absMean, ZeroCount = 0,
                    // Marked as sampled (the tracer samples only tensors of 2^20 elements or more) so that the
                    // archive's histogram_sampled_count column is round-tripped.
                    Histogram = new Histogram { Layout = HistogramLayout.Log2Magnitude, FirstBucket = 40, SampledCount = 1024 },
                },
            };
            gradient.Shape.Add([64, 16]);
            gradient.Collections.Add(Collection.Gradients);
            gradient.Summary.Histogram.Counts.Add([10, 500, 514]);
            record.Tensors.Add(gradient);
            record.Tensors.Add(Weight(step));
            yield return record;
            if (step % 10 == 0)
            {
                StepRecord eval = NewRecord(run, rank, worldSize, step, Mode.Eval, ++sequence);
                eval.Tensors.Add(Weight(step));
                yield return eval;
            }
        }
    }

    /// <summary>fc1.weight: raw values [-2, 1, 0.5, step], an explicit histogram with infinite outer edges, custom collection "tracked".</summary>
    private static TensorRecord Weight(long step)
    {
        float[] values = [-2f, 1f, 0.5f, step];
        var weight = new TensorRecord
        {
            Name = "fc1.weight",
            Dtype = DType.Float32,
            Summary = new TensorSummary
            {
                Count = 4, Min = values.Min(), Max = values.Max(), Mean = values.Average(v => (double)v),
                Variance = values.Select(v => (double)v).Select(v => v * v).Average() - Math.Pow(values.Average(v => (double)v), 2),
                L1 = values.Sum(v => Math.Abs((double)v)), L2 = Math.Sqrt(values.Sum(v => (double)v * v)), AbsMean = values.Average(v => Math.Abs((double)v)),
                ZeroCount = step == 0 ? 1u : 0u,
                Histogram = new Histogram { Layout = HistogramLayout.Explicit },
            },
            Raw = new RawValues { Float32Le = ByteString.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan())), TotalElements = 4 },
        };
        weight.Shape.Add([2, 2]);
        weight.Collections.Add(Collection.Weights);
        weight.CustomCollections.Add("tracked");
        weight.Summary.Histogram.Edges.Add([double.NegativeInfinity, 0, double.PositiveInfinity]);
        weight.Summary.Histogram.Counts.Add([1, 3]);
        return weight;
    }

    private static StepRecord NewRecord(string run, uint rank, uint worldSize, long step, Mode mode, ulong sequence) => new()
    {
        SchemaVersion = StepRecordDecoder.CurrentSchemaVersion,
        RunId = run,
        Rank = rank,
        WorldSize = worldSize,
        Step = step,
        Mode = mode,
        EventTimeUnixNanos = (Start.AddSeconds(step).AddMilliseconds(mode == Mode.Eval ? 500 : 0) - DateTimeOffset.UnixEpoch).Ticks * 100,
        Sequence = sequence,
        SelectionVersion = 3,
    };
}
