using BenchmarkDotNet.Attributes;
using Google.Protobuf;
using Monitor.Contracts;
using Monitor.Contracts.V1;

namespace Monitor.Benchmarks;

/// <summary>Encoding and decoding (with validation: Google.Protobuf's parser, and the service's reusable reader) of one
/// step record with 100 tensor summaries.</summary>
[MemoryDiagnoser]
[Config(typeof(Program.StandardConfig))]
public class RecordCodecBenchmarks
{
    private StepRecord _record = null!;
    private byte[] _payload = null!;
    private readonly StepRecordReader _reader = new();

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(5);
        _record = new StepRecord
        {
            SchemaVersion = 1, RunId = "bench-run", Rank = 3, WorldSize = 8, Step = 123_456, Mode = Mode.Train,
            EventTimeUnixNanos = 1_700_000_000_000_000_000, Sequence = 123_457, SelectionVersion = 4,
        };
        for (int i = 0; i < 100; i++)
        {
            // As the tracer sends it: the span of non-empty buckets of a weight-like tensor (both signs, 2^-17 to 2^-3).
            var histogram = new Histogram { Layout = HistogramLayout.Log2Magnitude, FirstBucket = 33 };
            for (int b = 33; b <= 62; b++)
            {
                histogram.Counts.Add(b is > 46 and < 49 ? 0 : (ulong)random.Next(1, 100_000));
            }

            var tensor = new TensorRecord
            {
                Name = $"encoder.layers.{i / 4}.attention.{(i % 4 == 0 ? "query" : "value")}.weight{(i % 2 == 0 ? ".grad" : "")}",
                Dtype = DType.Float32,
                Summary = new TensorSummary
                {
                    Count = 1_048_576, Min = -random.NextDouble(), Max = random.NextDouble(), Mean = random.NextDouble() * 1e-3,
                    Variance = random.NextDouble() * 1e-2, L1 = random.NextDouble() * 1e4, L2 = random.NextDouble() * 1e2,
                    AbsMean = random.NextDouble() * 1e-2, ZeroCount = 12, Histogram = histogram,
                },
            };
            tensor.Collections.Add(i % 2 == 0 ? Collection.Gradients : Collection.Weights);
            tensor.Shape.Add(1024);
            tensor.Shape.Add(1024);
            _record.Tensors.Add(tensor);
        }

        _payload = _record.ToByteArray();
    }

    [Benchmark]
    public int Encode() => _record.ToByteArray().Length;

    [Benchmark(Baseline = true)]
    public int DecodeAndValidate() => StepRecordDecoder.TryDecode(_payload, out StepRecord? record, out _) ? record.Tensors.Count : -1;

    /// <summary>The service's reader: the same record refilled in place, strings interned (warm after the first call).</summary>
    [Benchmark]
    public int ReadAndValidate() => _reader.TryRead(_payload, out StepRecord? record, out _) ? record.Tensors.Count : -1;
}
