using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace Monitor.Analysis.State;

/// <summary>
/// Reads what <see cref="StateWriter"/> wrote. Every read checks the bytes left and the value's range, and a failure
/// throws <see cref="InvalidDataException"/> naming what was being read and at which byte of the snapshot, never
/// another exception and never an allocation larger than the input justifies (a count or length is checked against
/// the bytes left before anything is allocated).
/// </summary>
/// <remarks>A <c>ref struct</c> over the snapshot's bytes; not thread-safe.</remarks>
public ref struct StateReader
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly ReadOnlySpan<byte> _data;
    private readonly int _origin;
    private int _position;

    /// <summary>Creates a reader over <paramref name="data"/>; <paramref name="what"/> names it in error messages.</summary>
    public StateReader(ReadOnlySpan<byte> data, string what)
        : this(data, what, 0)
    {
    }

    private StateReader(ReadOnlySpan<byte> data, string what, int origin)
    {
        _data = data;
        _origin = origin;
        What = what;
    }

    /// <summary>What is being read (e.g. <c>rule 'VanishingGradient' (state version 1)</c>), for error messages.</summary>
    public string What { get; }

    /// <summary>Bytes not read yet.</summary>
    public readonly int Remaining => _data.Length - _position;

    /// <summary>Position in the whole snapshot (sections know their offset), for error messages.</summary>
    public readonly int Offset => _origin + _position;

    /// <summary>Reads one byte.</summary>
    public byte ReadByte(string field) => Take(1, field)[0];

    /// <summary>Reads a boolean written as 0 or 1.</summary>
    public bool ReadBool(string field)
    {
        byte value = ReadByte(field);
        return value switch
        {
            0 => false,
            1 => true,
            _ => throw Invalid(field, string.Create(CultureInfo.InvariantCulture, $"a boolean must be 0 or 1, not {value}"), Offset - 1),
        };
    }

    /// <summary>Reads an unsigned varint.</summary>
    public ulong ReadVarUInt(string field)
    {
        int start = Offset;
        ulong value = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            byte b = ReadByte(field);
            if (shift == 63 && b > 1)
            {
                break;
            }

            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                return value;
            }
        }

        throw Invalid(field, "the varint does not fit 64 bits", start);
    }

    /// <summary>Reads an unsigned varint that must be at most <paramref name="max"/>.</summary>
    public ulong ReadVarUInt(string field, ulong max)
    {
        int start = Offset;
        ulong value = ReadVarUInt(field);
        return value <= max
            ? value
            : throw Invalid(field, string.Create(CultureInfo.InvariantCulture, $"{value} is above {max}"), start);
    }

    /// <summary>Reads a signed (zigzag) varint.</summary>
    public long ReadVarInt(string field)
    {
        ulong raw = ReadVarUInt(field);
        return (long)(raw >> 1) ^ -(long)(raw & 1);
    }

    /// <summary>Reads a varint that must lie in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public long ReadVarInt(string field, long min, long max)
    {
        int start = Offset;
        long value = ReadVarInt(field);
        return value >= min && value <= max
            ? value
            : throw Invalid(field, string.Create(CultureInfo.InvariantCulture, $"{value} is outside [{min}, {max}]"), start);
    }

    /// <summary>Reads a non-negative int32 written as a signed varint, at most <paramref name="max"/>.</summary>
    public int ReadInt32(string field, int max = int.MaxValue) => (int)ReadVarInt(field, 0, max);

    /// <summary>Reads a double.</summary>
    public double ReadDouble(string field) => BinaryPrimitives.ReadDoubleLittleEndian(Take(8, field));

    /// <summary>Reads a float.</summary>
    public float ReadSingle(string field) => BinaryPrimitives.ReadSingleLittleEndian(Take(4, field));

    /// <summary>Reads a point in time (UTC ticks).</summary>
    public DateTimeOffset ReadTime(string field)
    {
        int start = Offset;
        long ticks = ReadVarInt(field);
        return ticks is >= 0 and <= 3155378975999999999 // DateTime.MaxValue.Ticks
            ? new DateTimeOffset(ticks, TimeSpan.Zero)
            : throw Invalid(field, string.Create(CultureInfo.InvariantCulture, $"{ticks} is not a valid time in ticks"), start);
    }

    /// <summary>Reads a string (strict UTF-8).</summary>
    public string ReadString(string field)
    {
        int length = ReadCount(field, 1);
        int start = Offset;
        try
        {
            return StrictUtf8.GetString(Take(length, field));
        }
        catch (DecoderFallbackException)
        {
            throw Invalid(field, "the string is not valid UTF-8", start);
        }
    }

    /// <summary>Reads a string written by <see cref="StateWriter.WriteOptionalString"/>.</summary>
    public string? ReadOptionalString(string field) => ReadBool(field) ? ReadString(field) : null;

    /// <summary>
    /// Reads a count of items that take at least <paramref name="minBytesEach"/> bytes each: a count the bytes left
    /// cannot hold is corrupt, so a corrupt count never makes the caller allocate more than the input's size.
    /// </summary>
    public int ReadCount(string field, int minBytesEach)
    {
        int start = Offset;
        ulong count = ReadVarUInt(field);
        ulong limit = (ulong)Remaining / (ulong)Math.Max(1, minBytesEach);
        return count <= limit
            ? (int)count
            : throw Invalid(field, string.Create(CultureInfo.InvariantCulture, $"a count of {count} does not fit the {Remaining} bytes left"), start);
    }

    /// <summary>Reads <paramref name="length"/> raw bytes.</summary>
    public ReadOnlySpan<byte> ReadBytes(int length, string field) => Take(length, field);

    /// <summary>Reads floats written by <see cref="StateWriter.WriteSingles"/>.</summary>
    public float[] ReadSingles(string field)
    {
        float[] values = new float[ReadCount(field, 4)];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = ReadSingle(field);
        }

        return values;
    }

    /// <summary>Reads doubles written by <see cref="StateWriter.WriteDoubles"/>.</summary>
    public double[] ReadDoubles(string field)
    {
        double[] values = new double[ReadCount(field, 8)];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = ReadDouble(field);
        }

        return values;
    }

    /// <summary>Reads signed integers written by <see cref="StateWriter.WriteVarInts"/>.</summary>
    public long[] ReadVarInts(string field)
    {
        long[] values = new long[ReadCount(field, 1)];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = ReadVarInt(field);
        }

        return values;
    }

    /// <summary>
    /// Reads a section: a varint length, then that many bytes, returned as a reader of their own (named
    /// <paramref name="what"/>, offsets still counted from the start of the snapshot).
    /// </summary>
    public StateReader ReadSection(string field, string what)
    {
        int length = ReadCount(field, 1);
        int origin = Offset;
        return new StateReader(Take(length, field), what, origin);
    }

    /// <summary>Throws unless every byte was read (a section longer than what its reader understood is corrupt).</summary>
    public readonly void EnsureEnd()
    {
        if (Remaining != 0)
        {
            throw Invalid("end", string.Create(CultureInfo.InvariantCulture, $"{Remaining} bytes left over"), Offset);
        }
    }

    /// <summary>An <see cref="InvalidDataException"/> about <paramref name="field"/> at the current position.</summary>
    public readonly InvalidDataException Invalid(string field, string problem) => Invalid(field, problem, Offset);

    /// <summary>An <see cref="InvalidDataException"/> about <paramref name="field"/> at byte <paramref name="offset"/> of the snapshot.</summary>
    public readonly InvalidDataException Invalid(string field, string problem, int offset) =>
        new(string.Create(CultureInfo.InvariantCulture, $"state snapshot: {What}, {field} at byte {offset}: {problem}"));

    private ReadOnlySpan<byte> Take(int count, string field)
    {
        if (count > Remaining)
        {
            throw Invalid(field, string.Create(CultureInfo.InvariantCulture, $"truncated ({count} bytes needed, {Remaining} left)"));
        }

        ReadOnlySpan<byte> span = _data.Slice(_position, count);
        _position += count;
        return span;
    }
}
