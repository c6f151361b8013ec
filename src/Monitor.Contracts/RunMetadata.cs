using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Monitor.Contracts;

/// <summary>
/// What a rank of a run was started with (its lineage): hyperparameters, data sets, code version, library versions,
/// host and devices, parent run. The tracer writes it once at start to the control plane
/// (<see cref="ControlPlaneKeys.Metadata"/>) and on the rank's first step record (<c>StepRecord.run_metadata</c>), from
/// which the archive keeps it (<c>{archive}/{run}/rank-{rank}/run.json</c>). Serialized with
/// <see cref="SelectionJson.Options"/>, read with <see cref="SelectionJson.StatusOptions"/>.
/// </summary>
public sealed record RunMetadata
{
    /// <summary>Run id.</summary>
    [JsonPropertyName("run")]
    public string Run { get; init; } = "";

    /// <summary>Rank.</summary>
    [JsonPropertyName("rank")]
    public int Rank { get; init; }

    /// <summary>Ranks in the run.</summary>
    [JsonPropertyName("worldSize")]
    public int WorldSize { get; init; } = 1;

    /// <summary>When the tracer was created (its clock).</summary>
    [JsonPropertyName("startedAt")]
    public DateTimeOffset StartedAt { get; init; }

    /// <summary>Hyperparameters as the job gave them, name → value in invariant-culture text; sorted by name.</summary>
    [JsonPropertyName("hyperparameters")]
    public IReadOnlyDictionary<string, string> Hyperparameters { get; init; } = new SortedDictionary<string, string>(StringComparer.Ordinal);

    /// <summary>The data sets the run reads.</summary>
    [JsonPropertyName("datasets")]
    public IReadOnlyList<DatasetReference> Datasets { get; init; } = [];

    /// <summary>The code's version, or null when the working directory is not inside a git repository.</summary>
    [JsonPropertyName("code")]
    public CodeVersion? Code { get; init; }

    /// <summary>Versions of the runtime and libraries, component → version (<c>.NET</c>, <c>Monitor</c>, <c>TorchSharp</c>, ...).</summary>
    [JsonPropertyName("versions")]
    public IReadOnlyDictionary<string, string> Versions { get; init; } = new SortedDictionary<string, string>(StringComparer.Ordinal);

    /// <summary>Host name of the worker.</summary>
    [JsonPropertyName("host")]
    public string Host { get; init; } = "";

    /// <summary>Devices the rank trains on (e.g. <c>cpu</c>, <c>cuda:0</c>); empty when the job did not say.</summary>
    [JsonPropertyName("devices")]
    public IReadOnlyList<string> Devices { get; init; } = [];

    /// <summary>The run this one continues or was derived from (a resumed or fine-tuned run), or null.</summary>
    [JsonPropertyName("parentRun")]
    public string? ParentRun { get; init; }

    /// <summary>Serializes with <see cref="SelectionJson.Options"/>.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, SelectionJson.Options);

    /// <summary>Parses a document written by this or a newer version (unknown members skipped); null when it is not one.</summary>
    public static RunMetadata? TryParse(string? json)
    {
        if (string.IsNullOrEmpty(json))
        {
            return null;
        }

        try
        {
            return JsonSerializer.Deserialize<RunMetadata>(json, SelectionJson.StatusOptions);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>A hyperparameter value as recorded: invariant culture, round-trippable for numbers.</summary>
    public static string FormatValue(object? value) => value switch
    {
        null => "",
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        float f => f.ToString("R", CultureInfo.InvariantCulture),
        bool b => b ? "true" : "false",
        IFormattable formattable => formattable.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };
}

/// <summary>A data set a run reads.</summary>
/// <param name="Name">Its name (e.g. <c>train</c>).</param>
/// <param name="Uri">Where it is (e.g. <c>s3://bucket/train/</c>, a path).</param>
/// <param name="Hash">A content hash (e.g. <c>sha256:...</c>), or null when unknown; two runs with the same URI and different hashes read different data.</param>
public sealed record DatasetReference(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("uri")] string Uri,
    [property: JsonPropertyName("hash")] string? Hash = null);

/// <summary>The code version of a run: the git commit checked out where the worker started.</summary>
/// <param name="Commit">The commit id (40 hex digits), as HEAD names it.</param>
/// <param name="Branch">The branch HEAD is on, or null for a detached HEAD.</param>
/// <param name="Repository">The repository's working-tree directory.</param>
/// <remarks>Uncommitted changes are not detected: that needs the index compared with the tree (what <c>git status</c>
/// does), which is not done without running git.</remarks>
public sealed record CodeVersion(
    [property: JsonPropertyName("commit")] string Commit,
    [property: JsonPropertyName("branch")] string? Branch,
    [property: JsonPropertyName("repository")] string Repository)
{
    /// <summary>
    /// The commit checked out in the git repository containing <paramref name="directory"/>, read from
    /// <c>.git/HEAD</c>, the loose ref or <c>packed-refs</c> (git itself is not run; a <c>.git</c> file of a worktree or
    /// submodule is followed). Null when there is no repository or it cannot be read. Never throws.
    /// </summary>
    public static CodeVersion? Find(string directory)
    {
        try
        {
            for (DirectoryInfo? current = new(directory); current is not null; current = current.Parent)
            {
                string dotGit = Path.Combine(current.FullName, ".git");
                if (Directory.Exists(dotGit))
                {
                    return Read(dotGit, dotGit, current.FullName);
                }

                if (File.Exists(dotGit))
                {
                    // A worktree's or submodule's .git file: "gitdir: PATH"; shared refs live in its commondir.
                    string line = File.ReadAllText(dotGit).Trim();
                    if (!line.StartsWith("gitdir:", StringComparison.Ordinal))
                    {
                        return null;
                    }

                    string gitDir = Path.GetFullPath(line["gitdir:".Length..].Trim(), current.FullName);
                    string commonFile = Path.Combine(gitDir, "commondir");
                    string common = File.Exists(commonFile) ? Path.GetFullPath(File.ReadAllText(commonFile).Trim(), gitDir) : gitDir;
                    return Read(gitDir, common, current.FullName);
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            // Lineage is best effort: an unreadable repository leaves the code version out.
        }

        return null;
    }

    private static CodeVersion? Read(string gitDir, string commonDir, string workTree)
    {
        string head = File.ReadAllText(Path.Combine(gitDir, "HEAD")).Trim();
        if (!head.StartsWith("ref:", StringComparison.Ordinal))
        {
            return IsCommit(head) ? new CodeVersion(head, null, workTree) : null;
        }

        string reference = head["ref:".Length..].Trim();
        string? branch = reference.StartsWith("refs/heads/", StringComparison.Ordinal) ? reference["refs/heads/".Length..] : reference;
        foreach (string dir in new[] { gitDir, commonDir })
        {
            string loose = Path.Combine(dir, reference.Replace('/', Path.DirectorySeparatorChar));
            if (File.Exists(loose) && File.ReadAllText(loose).Trim() is { } commit && IsCommit(commit))
            {
                return new CodeVersion(commit, branch, workTree);
            }
        }

        string packed = Path.Combine(commonDir, "packed-refs");
        if (File.Exists(packed))
        {
            foreach (string line in File.ReadLines(packed))
            {
                // "<commit> <ref>"; '#' starts the header, '^' a peeled tag.
                int space = line.IndexOf(' ', StringComparison.Ordinal);
                if (space == 40 && line.AsSpan(space + 1).SequenceEqual(reference) && IsCommit(line[..40]))
                {
                    return new CodeVersion(line[..40], branch, workTree);
                }
            }
        }

        return null;
    }

    private static bool IsCommit(string text) => text.Length is 40 or 64 && text.All(char.IsAsciiHexDigitLower);
}

/// <summary>
/// An artifact event as the archive keeps it (one JSON line of <c>{run}/rank-{rank}/artifacts.jsonl</c>), from
/// <c>StepRecord.artifacts</c>: ML Metadata's artifact (path, hash, type) with its event (consumed or produced, at a step).
/// </summary>
/// <param name="Rank">The rank that recorded it.</param>
/// <param name="Path">Where the artifact is: a path or URI.</param>
/// <param name="Hash">Its content hash, or null when unknown.</param>
/// <param name="Step">The step it was read or written at.</param>
/// <param name="Event"><c>consumed</c> or <c>produced</c>.</param>
/// <param name="Type">Its kind, e.g. <c>checkpoint</c>.</param>
/// <param name="At">When it was recorded (the worker's clock).</param>
public sealed record ArtifactRecord(
    [property: JsonPropertyName("rank")] int Rank,
    [property: JsonPropertyName("path")] string Path,
    [property: JsonPropertyName("hash")] string? Hash,
    [property: JsonPropertyName("step")] long Step,
    [property: JsonPropertyName("event")] string Event,
    [property: JsonPropertyName("type")] string Type,
    [property: JsonPropertyName("at")] DateTimeOffset At)
{
    /// <summary>The archive's form of an artifact event of rank <paramref name="rank"/>'s record.</summary>
    public static ArtifactRecord From(int rank, V1.ArtifactEvent artifact)
    {
        ArgumentNullException.ThrowIfNull(artifact);
        return new ArtifactRecord(
            rank,
            artifact.Path,
            artifact.Hash.Length == 0 ? null : artifact.Hash,
            artifact.Step,
            artifact.Direction == V1.ArtifactDirection.Consumed ? "consumed" : "produced",
            artifact.Type,
            DateTimeOffset.UnixEpoch.AddTicks(artifact.TimeUnixNanos / 100));
    }
}
