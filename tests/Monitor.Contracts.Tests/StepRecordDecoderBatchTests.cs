using Google.Protobuf;
using Monitor.Contracts.V1;

namespace Monitor.Contracts.Tests;

/// <summary>The decoder's checks of batches of examples: feature names and sampled rows.</summary>
public sealed class StepRecordDecoderBatchTests
{
    private static StepRecord Record(TensorRecord tensor)
    {
        var record = new StepRecord { SchemaVersion = 1, RunId = "run", Rank = 0, WorldSize = 1, Step = 3 };
        record.Tensors.Add(tensor);
        return record;
    }

    private static TensorRecord Batch(long rows, long columns, uint sampleRows, int values, params string[] names)
    {
        var tensor = new TensorRecord { Name = "inputs", Dtype = DType.Float32 };
        tensor.Shape.Add(rows);
        tensor.Shape.Add(columns);
        tensor.FeatureNames.Add(names);
        tensor.Raw = new RawValues { Float32Le = ByteString.CopyFrom(new byte[values * sizeof(float)]), TotalElements = (ulong)(rows * columns), SampleRows = sampleRows, Truncated = values < rows * columns };
        return tensor;
    }

    [Fact]
    public void TryDecode_AcceptsABatchOfWholeSampledRowsWithOneNamePerColumn()
    {
        StepRecord record = Record(Batch(10, 3, 4, 12, "a", "b", "c"));

        Assert.True(StepRecordDecoder.TryDecode(record.ToByteArray(), out StepRecord? decoded, out DecodeError error), error.ToString());
        Assert.Equal(["a", "b", "c"], decoded.Tensors[0].FeatureNames);
        Assert.Equal(4u, decoded.Tensors[0].Raw.SampleRows);
    }

    [Fact]
    public void TryDecode_ReturnsInvalidNamingFeatureNames_WhenThereAreNotOnePerColumn()
    {
        StepRecord record = Record(Batch(10, 3, 4, 12, "a", "b"));

        Assert.False(StepRecordDecoder.TryDecode(record.ToByteArray(), out _, out DecodeError error));

        Assert.Equal(DecodeErrorKind.Invalid, error.Kind);
        Assert.Equal("tensors[0] ('inputs').feature_names: 2 names for 3 columns (shape [10, 3])", error.Reason);
    }

    [Fact]
    public void TryDecode_ReturnsInvalidNamingRaw_WhenTheValuesAreNotWholeSampledRows()
    {
        StepRecord record = Record(Batch(10, 3, 4, 11));

        Assert.False(StepRecordDecoder.TryDecode(record.ToByteArray(), out _, out DecodeError error));

        Assert.Equal("tensors[0] ('inputs').raw: 11 values are not sample_rows 4 whole rows of 3 columns", error.Reason);
    }

    [Fact]
    public void TryDecode_ReturnsInvalidNamingRaw_WhenMoreRowsAreSampledThanTheBatchHas()
    {
        StepRecord record = Record(Batch(2, 3, 4, 6));

        Assert.False(StepRecordDecoder.TryDecode(record.ToByteArray(), out _, out DecodeError error));

        Assert.Equal("tensors[0] ('inputs').raw: sample_rows 4 exceeds the batch's 2 rows", error.Reason);
    }
}
