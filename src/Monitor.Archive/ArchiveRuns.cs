using Monitor.Contracts;

namespace Monitor.Archive;

/// <summary>The run metadata an archive keeps (<c>{run}/rank-{rank}/run.json</c>, written by <see cref="ArchiveWriter"/>).</summary>
public static class ArchiveRuns
{
    /// <summary>
    /// Every rank's run metadata under <paramref name="directory"/>, by run and rank; files that are not metadata
    /// documents are left out. Empty when the directory does not exist.
    /// </summary>
    /// <exception cref="IOException">A file cannot be read.</exception>
    public static IReadOnlyList<RunMetadata> Read(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        if (!Directory.Exists(directory))
        {
            return [];
        }

        return [.. Directory.EnumerateFiles(directory, ArchiveWriter.MetadataFileName, SearchOption.AllDirectories)
            .Select(path => RunMetadata.TryParse(File.ReadAllText(path)))
            .OfType<RunMetadata>()
            .OrderBy(m => m.Run, StringComparer.Ordinal).ThenBy(m => m.Rank)];
    }

    /// <summary>
    /// The artifact events of <paramref name="run"/>'s ranks under <paramref name="directory"/>, by step, rank and path;
    /// repeats (a record archived twice) and lines that are not artifact events are left out.
    /// </summary>
    /// <exception cref="IOException">A file cannot be read.</exception>
    public static IReadOnlyList<ArtifactRecord> ReadArtifacts(string directory, string run)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        string runDirectory = Path.Combine(directory, ArchiveWriter.DirectoryOf(run));
        if (!Directory.Exists(runDirectory))
        {
            return [];
        }

        return [.. Directory.EnumerateFiles(runDirectory, ArchiveWriter.ArtifactsFileName, SearchOption.AllDirectories)
            .SelectMany(File.ReadLines)
            .Select(Parse)
            .OfType<ArtifactRecord>()
            .Distinct()
            .OrderBy(a => a.Step).ThenBy(a => a.Rank).ThenBy(a => a.Path, StringComparer.Ordinal)];
    }

    private static ArtifactRecord? Parse(string line)
    {
        try
        {
            return line.Length == 0 ? null : System.Text.Json.JsonSerializer.Deserialize<ArtifactRecord>(line, SelectionJson.StatusOptions);
        }
        catch (System.Text.Json.JsonException)
        {
            return null;
        }
    }
}
