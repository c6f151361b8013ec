using Google.Protobuf;
using Monitor.Contracts;
using Monitor.Contracts.V1;

namespace Monitor.Service;

/// <summary>Formats of a recorded stream of step records.</summary>
public enum StepRecordFileFormat
{
    /// <summary>
    /// One step record per line in protobuf's canonical JSON mapping (proto3 JSON: camelCase field names, 64-bit
    /// integers as strings, enums by name, bytes in base64), e.g.
    /// <c>{"schemaVersion":1,"runId":"demo","worldSize":1,"step":"7","mode":"MODE_TRAIN","tensors":[...]}</c>.
    /// </summary>
    JsonLines,

    /// <summary>Length-delimited binary protobuf: each record preceded by its size as a varint (<c>WriteDelimitedTo</c>).</summary>
    Protobuf,
}

/// <summary>Reads and writes recorded step records (<c>monitor demo --record</c>, <c>monitor replay</c>).</summary>
public static class StepRecordFile
{
    private static readonly JsonFormatter Formatter = new(JsonFormatter.Settings.Default.WithFormatDefaultValues(false));
    private static readonly JsonParser Parser = new(JsonParser.Settings.Default.WithIgnoreUnknownFields(true));

    /// <summary>The format a path implies: <c>.pb</c>/<c>.bin</c> binary, anything else JSON lines.</summary>
    public static StepRecordFileFormat FormatOf(string path) =>
        path.EndsWith(".pb", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".bin", StringComparison.OrdinalIgnoreCase)
            ? StepRecordFileFormat.Protobuf
            : StepRecordFileFormat.JsonLines;

    /// <summary>Opens a writer (the file is created or truncated). Not thread-safe: one writer thread.</summary>
    public static StepRecordWriter CreateWriter(string path, StepRecordFileFormat? format = null) =>
        new(File.Create(path), format ?? FormatOf(path));

    /// <summary>
    /// Reads every record of a file, in order. A line or entry that does not parse or validate stops the read with
    /// an <see cref="InvalidDataException"/> naming its position and reason.
    /// </summary>
    public static IEnumerable<StepRecord> Read(string path, StepRecordFileFormat? format = null)
    {
        using FileStream stream = File.OpenRead(path);
        if ((format ?? FormatOf(path)) == StepRecordFileFormat.JsonLines)
        {
            using var reader = new StreamReader(stream);
            int lineNumber = 0;
            while (reader.ReadLine() is { } line)
            {
                lineNumber++;
                if (string.IsNullOrWhiteSpace(line))
                {
                    continue;
                }

                StepRecord record;
                try
                {
                    record = Parser.Parse<StepRecord>(line);
                }
                catch (InvalidProtocolBufferException ex)
                {
                    throw new InvalidDataException($"{path}:{lineNumber}: not a step record: {ex.Message}", ex);
                }
                catch (InvalidJsonException ex)
                {
                    throw new InvalidDataException($"{path}:{lineNumber}: not JSON: {ex.Message}", ex);
                }

                yield return Validated(record, $"{path}:{lineNumber}");
            }

            yield break;
        }

        long index = 0;
        while (stream.Position < stream.Length)
        {
            StepRecord record;
            try
            {
                record = StepRecord.Parser.ParseDelimitedFrom(stream);
            }
            catch (InvalidProtocolBufferException ex)
            {
                throw new InvalidDataException($"{path}: record {index}: {ex.Message}", ex);
            }

            yield return Validated(record, $"{path}: record {index}");
            index++;
        }
    }

    private static StepRecord Validated(StepRecord record, string where) =>
        StepRecordDecoder.Validate(record, out _) is { } problem ? throw new InvalidDataException($"{where}: {problem}") : record;

    internal static void Write(Stream stream, StepRecordFileFormat format, StepRecord record)
    {
        if (format == StepRecordFileFormat.Protobuf)
        {
            record.WriteDelimitedTo(stream);
            return;
        }

        byte[] line = System.Text.Encoding.UTF8.GetBytes(Formatter.Format(record) + "\n");
        stream.Write(line);
    }
}

/// <summary>Appends step records to a file (see <see cref="StepRecordFile"/>). Not thread-safe.</summary>
public sealed class StepRecordWriter : IDisposable
{
    private readonly Stream _stream;
    private readonly StepRecordFileFormat _format;

    internal StepRecordWriter(Stream stream, StepRecordFileFormat format)
    {
        _stream = new BufferedStream(stream, 1 << 16);
        _format = format;
    }

    /// <summary>Records written.</summary>
    public long Count { get; private set; }

    /// <summary>Appends a record.</summary>
    public void Write(StepRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        StepRecordFile.Write(_stream, _format, record);
        Count++;
    }

    /// <summary>Flushes and closes the file.</summary>
    public void Dispose() => _stream.Dispose();
}
