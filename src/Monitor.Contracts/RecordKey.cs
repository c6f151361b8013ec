using System.Diagnostics.CodeAnalysis;

namespace Monitor.Contracts;

/// <summary>
/// The Kafka key of a step record, <c>"{run}/{rank}"</c>: all steps of one rank land in one partition, in order.
/// </summary>
public static class RecordKey
{
    /// <summary>Formats the key of a run's rank. The run id must satisfy <see cref="RunId.Validate"/>.</summary>
    public static string Format(string runId, int rank)
    {
        RunId.Validate(runId);
        ArgumentOutOfRangeException.ThrowIfNegative(rank);
        return string.Concat(runId, "/", rank.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>Parses a key written by <see cref="Format"/>; false for anything else.</summary>
    public static bool TryParse(string? key, [NotNullWhen(true)] out string? runId, out int rank)
    {
        runId = null;
        rank = -1;
        if (key is null)
        {
            return false;
        }

        int slash = key.LastIndexOf('/');
        if (slash <= 0 || !int.TryParse(key.AsSpan(slash + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out rank))
        {
            rank = -1;
            return false;
        }

        string candidate = key[..slash];
        if (RunId.Check(candidate) is not null)
        {
            rank = -1;
            return false;
        }

        runId = candidate;
        return true;
    }
}

/// <summary>Rules for run ids: they become Kafka keys, Redis hash tags and Prometheus label values.</summary>
public static class RunId
{
    /// <summary>Longest accepted run id, in characters.</summary>
    public const int MaxLength = 128;

    /// <summary>Throws <see cref="ArgumentException"/> naming the problem if <paramref name="runId"/> is not usable.</summary>
    public static void Validate(string runId)
    {
        string? problem = Check(runId);
        if (problem is not null)
        {
            throw new ArgumentException(problem, nameof(runId));
        }
    }

    /// <summary>Returns why <paramref name="runId"/> is not usable, or null when it is.</summary>
    /// <remarks>Allowed: 1 to 128 of <c>A-Z a-z 0-9 . _ -</c>. That excludes '/', the key separator, and '{' '}',
    /// which would break the Redis Cluster hash tag.</remarks>
    public static string? Check(string? runId)
    {
        if (string.IsNullOrEmpty(runId))
        {
            return "run id is empty";
        }

        if (runId.Length > MaxLength)
        {
            return $"run id is {runId.Length} characters long; at most {MaxLength} are allowed";
        }

        foreach (char c in runId)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
            {
                return $"run id '{runId}' contains '{c}'; only letters, digits, '.', '_' and '-' are allowed";
            }
        }

        return null;
    }
}
