using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace Monitor.Analysis.State;

/// <summary>
/// Writes engine state in Monitor's binary state format: little-endian fixed-width numbers, LEB128 varints (zigzag for
/// signed ones), UTF-8 strings prefixed with their byte length. No reflection, no field names: what a value means is
/// fixed by the section's state version (see <c>src/Monitor.Analysis/State/README.md</c>).
/// </summary>
/// <remarks>
/// A <c>ref struct</c> over an <see cref="IBufferWriter{T}"/>: it allocates nothing itself, so writing into a reused
/// <see cref="ArrayBufferWriter{T}"/> allocates nothing once that buffer has grown. Not thread-safe. The same values
/// always give the same bytes (doubles are written as their IEEE 754 bits, NaN payloads included).
/// </remarks>
public ref struct StateWriter
{
    private readonly IBufferWriter<byte> _output;

    /// <summary>Creates a writer appending to <paramref name="output"/>.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="output"/> is null.</exception>
    public StateWriter(IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        _output = output;
    }

    /// <summary>Bytes written by this writer so far.</summary>
    public long Written { get; private set; }

    /// <summary>Writes one byte.</summary>
    public void WriteByte(byte value)
    {
        _output.GetSpan(1)[0] = value;
        Advance(1);
    }

    /// <summary>Writes a boolean as one byte, 0 or 1.</summary>
    public void WriteBool(bool value) => WriteByte(value ? (byte)1 : (byte)0);

    /// <summary>Writes an unsigned varint (1 to 10 bytes).</summary>
    public void WriteVarUInt(ulong value)
    {
        Span<byte> span = _output.GetSpan(10);
        int n = 0;
        while (value >= 0x80)
        {
            span[n++] = (byte)(value | 0x80);
            value >>= 7;
        }

        span[n++] = (byte)value;
        Advance(n);
    }

    /// <summary>Writes a signed varint (zigzag: small magnitudes of either sign are short).</summary>
    public void WriteVarInt(long value) => WriteVarUInt((ulong)((value << 1) ^ (value >> 63)));

    /// <summary>Writes a double as its 8 IEEE 754 bytes, little-endian.</summary>
    public void WriteDouble(double value)
    {
        BinaryPrimitives.WriteDoubleLittleEndian(_output.GetSpan(8), value);
        Advance(8);
    }

    /// <summary>Writes a float as its 4 IEEE 754 bytes, little-endian.</summary>
    public void WriteSingle(float value)
    {
        BinaryPrimitives.WriteSingleLittleEndian(_output.GetSpan(4), value);
        Advance(4);
    }

    /// <summary>Writes a point in time as its UTC ticks (a signed varint); the offset is not kept (state times are UTC).</summary>
    public void WriteTime(DateTimeOffset value) => WriteVarInt(value.UtcTicks);

    /// <summary>Writes a string: its UTF-8 byte length as a varint, then the bytes.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="value"/> is null (use <see cref="WriteOptionalString"/>).</exception>
    public void WriteString(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        int length = Encoding.UTF8.GetByteCount(value);
        WriteVarUInt((ulong)length);
        Encoding.UTF8.GetBytes(value, _output.GetSpan(length));
        Advance(length);
    }

    /// <summary>Writes a string that may be null: a presence byte, then the string.</summary>
    public void WriteOptionalString(string? value)
    {
        WriteBool(value is not null);
        if (value is not null)
        {
            WriteString(value);
        }
    }

    /// <summary>Writes raw bytes as they are (no length prefix).</summary>
    public void WriteBytes(scoped ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(_output.GetSpan(bytes.Length));
        Advance(bytes.Length);
    }

    /// <summary>Writes floats: their count as a varint, then each as 4 little-endian bytes.</summary>
    public void WriteSingles(scoped ReadOnlySpan<float> values)
    {
        WriteVarUInt((ulong)values.Length);
        foreach (float value in values)
        {
            WriteSingle(value);
        }
    }

    /// <summary>Writes doubles: their count as a varint, then each as 8 little-endian bytes.</summary>
    public void WriteDoubles(scoped ReadOnlySpan<double> values)
    {
        WriteVarUInt((ulong)values.Length);
        foreach (double value in values)
        {
            WriteDouble(value);
        }
    }

    /// <summary>Writes signed integers: their count, then each as a signed varint.</summary>
    public void WriteVarInts(scoped ReadOnlySpan<long> values)
    {
        WriteVarUInt((ulong)values.Length);
        foreach (long value in values)
        {
            WriteVarInt(value);
        }
    }

    private void Advance(int count)
    {
        _output.Advance(count);
        Written += count;
    }
}
