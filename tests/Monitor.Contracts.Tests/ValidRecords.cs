using Google.Protobuf;
using Monitor.Contracts.V1;

namespace Monitor.Contracts.Tests;

/// <summary>Valid step records to start from; each test mutates its own copy.</summary>
internal static class ValidRecords
{
    /// <summary>A record that sets every field, with one LOG2_MAGNITUDE and one explicit histogram.</summary>
    public static StepRecord Full()
    {
        var log2 = new Histogram { Layout = HistogramLayout.Log2Magnitude };
        for (int i = 0; i < Log2Histogram.BucketCount; i++)
        {
            log2.Counts.Add((ulong)(i % 7));
        }

        var weight = new TensorRecord
        {
            Name = "fc1.weight",
            Dtype = DType.Float32,
            Summary = new TensorSummary
            {
                Count = 12,
                Min = -0.5,
                Max = 0.75,
                Mean = 0.01,
                Variance = 0.04,
                L1 = 2.5,
                L2 = 0.9,
                AbsMean = 0.2,
                ZeroCount = 1,
                NanCount = 1,
                InfCount = 1,
                Histogram = log2,
            },
            Raw = new RawValues { TotalElements = 12, Truncated = true },
        };
        weight.Collections.Add(Collection.Weights);
        weight.CustomCollections.Add("mine");
        weight.Shape.Add([3, 4]);
        // Two little-endian float32 values: 0.5 and -0.25.
        weight.Raw.Float32Le = ByteString.CopyFrom([0x00, 0x00, 0x00, 0x3F, 0x00, 0x00, 0x80, 0xBE]);

        var explicitHistogram = new Histogram { Layout = HistogramLayout.Explicit };
        explicitHistogram.Edges.Add([-1.0, 0.0, 1.0]);
        explicitHistogram.Counts.Add([2, 3]);
        var gradient = new TensorRecord
        {
            Name = "fc1.weight.grad",
            Dtype = DType.Float32,
            Summary = new TensorSummary { Count = 5, AbsMean = 1e-3, Histogram = explicitHistogram },
        };
        gradient.Collections.Add([Collection.Gradients, Collection.Custom]);

        var record = new StepRecord
        {
            SchemaVersion = StepRecordDecoder.CurrentSchemaVersion,
            RunId = "run-1",
            Rank = 1,
            WorldSize = 2,
            Step = 42,
            Mode = Mode.Train,
            EventTimeUnixNanos = 1_700_000_000_123_456_789,
            Sequence = 7,
            SelectionVersion = 3,
            DroppedBefore = 2,
        };
        record.Tensors.Add([weight, gradient]);
        return record;
    }

    /// <summary>The encoded bytes of <see cref="Full"/>.</summary>
    public static byte[] FullBytes() => Full().ToByteArray();
}
