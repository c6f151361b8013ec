using System.Globalization;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Google.Protobuf;
using Monitor.Archive;
using Monitor.Contracts;
using Monitor.Contracts.V1;

namespace Monitor.Benchmarks;

/// <summary>
/// The archive's write path at the design load's shape: 100 ranks × 10 steps of step records with 1,000 tensor
/// summaries each (30-bucket histogram spans, as the tracer sends them) = 1,000 records = 1,000,000 rows per
/// invocation, i.e. one second of the design load (1,000 ranks × 1,000 tensors at 1 step/s). Each invocation writes
/// fresh files with one long-lived writer, as the archiver does (its buffers warm): decode, rows into per-(run, rank)
/// files, Parquet row groups of 8,192 rows, and the files closed (footer, fsync, rename). The GB/s column is protobuf input bytes per second; the bytes on disk per tensor-step are
/// printed after the run ("archive: ... bytes per tensor-step").
/// </summary>
[MemoryDiagnoser]
[Config(typeof(ArchiveConfig))]
[BytesPerInvocation(InputBytes)]
public class ArchiveBenchmarks
{
    /// <summary>Input per invocation: measured once in <see cref="Setup"/> and checked against this constant.</summary>
    public const long InputBytes = 216_034_391;

    private const int Ranks = 100;
    private const int Steps = 10;
    private const int Tensors = 1_000;

    private readonly List<byte[]> _payloads = [];
    private readonly List<StepRecord> _records = [];
    private string _root = "";
    private string _directory = "";
    private ArchiveWriter? _writer;
    private long _bytesOnDisk;
    private long _rowsOnDisk;

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(12);
        var names = new string[Tensors];
        for (int i = 0; i < Tensors; i++)
        {
            names[i] = $"encoder.layers.{i / 8}.{(i % 4 < 2 ? "attention.query" : "mlp.fc1")}.weight{(i % 2 == 0 ? ".grad" : "")}";
        }

        for (int step = 0; step < Steps; step++)
        {
            for (int rank = 0; rank < Ranks; rank++)
            {
                var record = new StepRecord
                {
                    SchemaVersion = 1, RunId = "bench-run", Rank = (uint)rank, WorldSize = 1000, Step = 100_000 + step, Mode = Mode.Train,
                    EventTimeUnixNanos = 1_700_000_000_000_000_000 + (step * 1_000_000_000L), Sequence = (ulong)step + 1,
                };
                for (int i = 0; i < Tensors; i++)
                {
                    var histogram = new Histogram { Layout = HistogramLayout.Log2Magnitude, FirstBucket = 33 };
                    for (int b = 33; b <= 62; b++)
                    {
                        histogram.Counts.Add(b is > 46 and < 49 ? 0 : (ulong)random.Next(1, 100_000));
                    }

                    var tensor = new TensorRecord
                    {
                        Name = names[i],
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
                    record.Tensors.Add(tensor);
                }

                _payloads.Add(record.ToByteArray());
            }
        }

        long input = _payloads.Sum(p => (long)p.Length);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"archive: {_payloads.Count} records, {input} protobuf bytes per invocation"));
        // The GB/s column is computed from the constant; a different input would make it wrong.
        if (Math.Abs(input - InputBytes) > InputBytes / 100)
        {
            throw new InvalidOperationException($"input is {input} bytes, not about {InputBytes}: update ArchiveBenchmarks.InputBytes");
        }

        _root = Directory.CreateTempSubdirectory("monitor-archive-bench-").FullName;
        _directory = Path.Combine(_root, "archive");
        _writer = new ArchiveWriter(new ArchiveOptions { Directory = _directory });
    }

    /// <summary>For <see cref="ArchiveDecoded"/> only: the decoded records stay alive (1,000,000 tensor records), which
    /// would otherwise burden the other method's garbage collections with a live set the archiver never has.</summary>
    [GlobalSetup(Target = nameof(ArchiveDecoded))]
    public void SetupDecoded()
    {
        Setup();
        foreach (byte[] payload in _payloads)
        {
            _records.Add(StepRecord.Parser.ParseFrom(payload));
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _writer?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        if (_rowsOnDisk > 0)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"archive: {_bytesOnDisk} bytes on disk for {_rowsOnDisk} tensor-steps = {(double)_bytesOnDisk / _rowsOnDisk:F1} bytes per tensor-step"));
        }

        Directory.Delete(_root, recursive: true);
    }

    /// <summary>The archiver's path: read each payload into one reused record (<see cref="StepRecordReader"/>, as
    /// <c>StepArchiver</c> does), append its rows, close every file.</summary>
    [Benchmark]
    public async Task<long> DecodeAndArchive()
    {
        ArchiveWriter writer = NextInvocation();
        var reader = new StepRecordReader();
        foreach (byte[] payload in _payloads)
        {
            if (!reader.TryRead(payload, out StepRecord? record, out DecodeError error))
            {
                throw new InvalidOperationException(error.ToString());
            }

            await writer.AppendAsync(record);
        }

        await writer.CloseAllAsync();
        return Measure();
    }

    /// <summary>The same without decoding (records already parsed): the Parquet side alone.</summary>
    [Benchmark]
    public async Task<long> ArchiveDecoded()
    {
        ArchiveWriter writer = NextInvocation();
        foreach (StepRecord record in _records)
        {
            await writer.AppendAsync(record);
        }

        await writer.CloseAllAsync();
        return Measure();
    }

    private ArchiveWriter NextInvocation()
    {
        // The previous invocation's files (all closed) are deleted first, so the disk holds one second's files at a time.
        foreach (string old in Directory.EnumerateDirectories(_directory))
        {
            Directory.Delete(old, recursive: true);
        }

        return _writer!;
    }

    private long Measure()
    {
        long bytes = Directory.EnumerateFiles(_directory, "*.parquet", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
        _bytesOnDisk = bytes;
        _rowsOnDisk = (long)Ranks * Steps * Tensors;
        return bytes;
    }

    /// <summary>One invocation per iteration (each is about a second of work), 2 warm-up and 6 measured iterations.</summary>
    public sealed class ArchiveConfig : ManualConfig
    {
        public ArchiveConfig() =>
            AddJob(Job.Default.WithToolchain(InProcessEmitToolchain.Instance).WithStrategy(BenchmarkDotNet.Engines.RunStrategy.Monitoring)
                .WithWarmupCount(2).WithIterationCount(6).WithInvocationCount(1).WithUnrollFactor(1));
    }
}
