using System.Text;
using System.Text.Json;
using Parquet;

namespace Monitor.Archive;

/// <summary>Records of one source partition that an archive file holds: its lowest and highest offset.</summary>
/// <param name="Topic">Source topic (<c>monitor.steps</c>).</param>
/// <param name="Partition">Partition.</param>
/// <param name="First">Offset of the file's first record from that partition.</param>
/// <param name="Last">Offset of its last one.</param>
internal readonly record struct ArchiveSourceRange(string Topic, int Partition, long First, long Last);

/// <summary>
/// The source ranges an archive file names in its footer, as Parquet key-value metadata <see cref="MetadataKey"/>:
/// a JSON array of <c>{"topic", "partition", "first", "last"}</c>. Written when the file is closed; read by the next
/// writer of the same rank, which leaves out the records a closed file already holds.
/// </summary>
internal static class ArchiveSourceRanges
{
    /// <summary>Key of the footer's metadata entry.</summary>
    public const string MetadataKey = "monitor.archive.sources";

    /// <summary>The footer metadata for <paramref name="ranges"/>.</summary>
    public static Dictionary<string, string> Metadata(IEnumerable<ArchiveSourceRange> ranges)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartArray();
            foreach (ArchiveSourceRange range in ranges)
            {
                json.WriteStartObject();
                json.WriteString("topic", range.Topic);
                json.WriteNumber("partition", range.Partition);
                json.WriteNumber("first", range.First);
                json.WriteNumber("last", range.Last);
                json.WriteEndObject();
            }

            json.WriteEndArray();
        }

        return new Dictionary<string, string>(StringComparer.Ordinal) { [MetadataKey] = Encoding.UTF8.GetString(buffer.ToArray()) };
    }

    /// <summary>
    /// The ranges in the footer of the archive file at <paramref name="path"/>; none for a file written before footers
    /// held them, and none for a file whose footer or entry cannot be read (its records may then be archived once more,
    /// never lost).
    /// </summary>
    /// <exception cref="FileNotFoundException">The file is gone (retention deleted it).</exception>
    public static async Task<IReadOnlyList<ArchiveSourceRange>> ReadAsync(string path, CancellationToken cancellationToken)
    {
        string? entry;
        try
        {
            await using FileStream stream = File.OpenRead(path);
            await using ParquetReader reader = await ParquetReader.CreateAsync(stream, cancellationToken: cancellationToken).ConfigureAwait(false);
            if (!reader.CustomMetadata.TryGetValue(MetadataKey, out entry))
            {
                return [];
            }
        }
        catch (Exception ex) when (ex is ParquetException or UnauthorizedAccessException || (ex is IOException && ex is not FileNotFoundException))
        {
            return [];
        }

        return Parse(entry);
    }

    /// <summary>Ranges of a metadata entry; none when it is not the documented JSON.</summary>
    internal static IReadOnlyList<ArchiveSourceRange> Parse(string entry)
    {
        try
        {
            using var document = JsonDocument.Parse(entry);
            var ranges = new List<ArchiveSourceRange>();
            foreach (JsonElement element in document.RootElement.EnumerateArray())
            {
                ranges.Add(new ArchiveSourceRange(
                    element.GetProperty("topic").GetString() ?? throw new FormatException("topic is null"),
                    element.GetProperty("partition").GetInt32(),
                    element.GetProperty("first").GetInt64(),
                    element.GetProperty("last").GetInt64()));
            }

            return ranges;
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or KeyNotFoundException or FormatException)
        {
            return [];
        }
    }
}
