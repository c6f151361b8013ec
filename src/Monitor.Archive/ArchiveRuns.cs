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
}
