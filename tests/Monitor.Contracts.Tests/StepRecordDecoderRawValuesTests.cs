using Google.Protobuf;
using Monitor.Contracts.V1;

namespace Monitor.Contracts.Tests;

/// <summary>The decoder's checks of raw values and of the at-begin flag.</summary>
public sealed class StepRecordDecoderRawValuesTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(5)]
    [InlineData(7)]
    public void TryDecode_ReturnsInvalidNamingRaw_WhenFloat32LeIsNotAMultipleOfFourBytes(int bytes)
    {
        StepRecord record = RecordWithRaw(new RawValues { Float32Le = ByteString.CopyFrom(new byte[bytes]), TotalElements = 100 });

        Assert.False(StepRecordDecoder.TryDecode(record.ToByteArray(), out StepRecord? decoded, out DecodeError error));

        Assert.Null(decoded);
        Assert.Equal(DecodeErrorKind.Invalid, error.Kind);
        Assert.Equal($"tensors[1] ('fc2.weight').raw: float32_le has {bytes} bytes, not a multiple of 4", error.Reason);
    }

    [Fact]
    public void TryDecode_ReturnsInvalidNamingRaw_WhenThereAreMoreValuesThanElements()
    {
        StepRecord record = RecordWithRaw(new RawValues { Float32Le = Float32Le(1f, 2f, 3f), TotalElements = 2 });

        Assert.False(StepRecordDecoder.TryDecode(record.ToByteArray(), out _, out DecodeError error));

        Assert.Equal(DecodeErrorKind.Invalid, error.Kind);
        Assert.Equal("tensors[1] ('fc2.weight').raw: 3 values for a tensor of 2 elements", error.Reason);
    }

    [Fact]
    public void TryDecode_ReturnsInvalid_WhenRawValuesAreGivenForATensorOfZeroElements()
    {
        StepRecord record = RecordWithRaw(new RawValues { Float32Le = Float32Le(1f) });

        Assert.False(StepRecordDecoder.TryDecode(record.ToByteArray(), out _, out DecodeError error));

        Assert.Equal(DecodeErrorKind.Invalid, error.Kind);
        Assert.Contains(".raw:", error.Reason, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0, 0UL, false)]
    [InlineData(3, 3UL, false)]
    [InlineData(3, 1000UL, true)]
    public void TryDecode_AcceptsRawValues_WhenTheyFitTheTensor(int values, ulong totalElements, bool truncated)
    {
        float[] floats = [.. Enumerable.Range(0, values).Select(i => i * 0.5f - 1f)];
        StepRecord record = RecordWithRaw(new RawValues { Float32Le = Float32Le(floats), TotalElements = totalElements, Truncated = truncated });

        Assert.True(StepRecordDecoder.TryDecode(record.ToByteArray(), out StepRecord? decoded, out DecodeError error), error.ToString());

        Assert.Equal(record, decoded);
        RawValues raw = decoded.Tensors[1].Raw;
        Assert.Equal(floats, ReadFloat32Le(raw.Float32Le));
        Assert.Equal(totalElements, raw.TotalElements);
        Assert.Equal(truncated, raw.Truncated);
    }

    [Fact]
    public void Validate_ReturnsTheSameProblemAsTryDecode_ForAProducerCheckingBeforeSending()
    {
        StepRecord record = RecordWithRaw(new RawValues { Float32Le = ByteString.CopyFrom(new byte[6]), TotalElements = 10 });

        string? problem = StepRecordDecoder.Validate(record, out DecodeErrorKind kind);

        Assert.Equal(DecodeErrorKind.Invalid, kind);
        Assert.Equal("tensors[1] ('fc2.weight').raw: float32_le has 6 bytes, not a multiple of 4", problem);
    }

    [Fact]
    public void TryDecode_KeepsAtBegin_WhenTheRecordIsAnAtBeginCapture()
    {
        StepRecord record = ValidRecords.Full();
        record.AtBegin = true;
        record.Mode = Mode.Unspecified;
        record.Tensors[0].Raw = new RawValues { Float32Le = Float32Le(0.5f, -0.25f, 8f), TotalElements = 12, Truncated = true };

        Assert.True(StepRecordDecoder.TryDecode(record.ToByteArray(), out StepRecord? decoded, out DecodeError error), error.ToString());

        Assert.True(decoded.AtBegin);
        Assert.Equal(record, decoded);
        Assert.Equal([0.5f, -0.25f, 8f], ReadFloat32Le(decoded.Tensors[0].Raw.Float32Le));
    }

    [Fact]
    public void TryDecode_ReadsAtBeginAsFalse_WhenTheFieldIsAbsent()
    {
        Assert.True(StepRecordDecoder.TryDecode(ValidRecords.FullBytes(), out StepRecord? decoded, out DecodeError error), error.ToString());

        Assert.False(decoded.AtBegin);
    }

    /// <summary>A valid record whose second tensor carries <paramref name="raw"/>.</summary>
    private static StepRecord RecordWithRaw(RawValues raw)
    {
        StepRecord record = ValidRecords.Full();
        var tensor = new TensorRecord { Name = "fc2.weight", Dtype = DType.Float32, Raw = raw };
        tensor.Collections.Add(Collection.Weights);
        record.Tensors.Insert(1, tensor);
        return record;
    }

    private static ByteString Float32Le(params float[] values)
    {
        byte[] bytes = new byte[values.Length * sizeof(float)];
        for (int i = 0; i < values.Length; i++)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * sizeof(float)), values[i]);
        }

        return ByteString.CopyFrom(bytes);
    }

    private static float[] ReadFloat32Le(ByteString bytes)
    {
        ReadOnlySpan<byte> span = bytes.Span;
        float[] values = new float[span.Length / sizeof(float)];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = System.Buffers.Binary.BinaryPrimitives.ReadSingleLittleEndian(span[(i * sizeof(float))..]);
        }

        return values;
    }
}
