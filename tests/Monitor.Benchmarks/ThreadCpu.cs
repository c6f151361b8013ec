using System.Globalization;

namespace Monitor.Benchmarks;

/// <summary>
/// CPU time of this process's threads by name (librdkafka's <c>rdk:broker…</c> and <c>rdk:main</c>, .NET's
/// <c>.NET BGC</c>, thread-pool workers, the service's pipeline …), read from <c>/proc/self/task/*/stat</c>, so a
/// benchmark can say where its CPU time went.
/// </summary>
internal static class ThreadCpu
{
    private static readonly double TicksPerSecond = 100.0; // USER_HZ on Linux.

    /// <summary>Seconds of CPU (user + system) per thread name since the process started; threads that ended are missing.</summary>
    public static Dictionary<string, double> Snapshot()
    {
        var byName = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (string task in Directory.EnumerateDirectories("/proc/self/task"))
        {
            string stat;
            try
            {
                stat = File.ReadAllText(Path.Combine(task, "stat"));
            }
            catch (IOException)
            {
                continue; // The thread ended meanwhile.
            }

            // pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'.
            int open = stat.IndexOf('(', StringComparison.Ordinal);
            int close = stat.LastIndexOf(')');
            string comm = stat[(open + 1)..close];
            string[] fields = stat[(close + 2)..].Split(' ');
            double seconds = (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / TicksPerSecond;
            byName[comm] = byName.GetValueOrDefault(comm) + seconds;
        }

        return byName;
    }

    /// <summary>The CPU seconds per thread name between two snapshots, largest first, as <c>kind 1.2 s (45%)</c>.</summary>
    public static string Describe(Dictionary<string, double> before, Dictionary<string, double> after)
    {
        var spent = after.Select(p => (Name: p.Key, Seconds: p.Value - before.GetValueOrDefault(p.Key))).Where(p => p.Seconds > 0).OrderByDescending(p => p.Seconds).ToList();
        double total = spent.Sum(p => p.Seconds);
        return string.Join(", ", spent.Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.Name} {p.Seconds:F2} s ({p.Seconds / total:P0})")));
    }
}
