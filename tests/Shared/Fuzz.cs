using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Monitor.Testing;

/// <summary>
/// Seeded, bounded fuzzing shared by the fuzz tests: how many inputs a run feeds (<c>MONITOR_FUZZ_INPUTS</c>, else the
/// test's CI share), the seed (<c>MONITOR_FUZZ_SEED</c>, else the test's own, so CI is deterministic), text mutations,
/// and the outcome tally each test prints. A dedicated run: <c>MONITOR_FUZZ_INPUTS=1000000 dotnet test --project
/// tests/Monitor.Contracts.Tests -- --filter-class "*Fuzz*"</c>.
/// </summary>
internal static class Fuzz
{
    /// <summary>Inputs to feed: <c>MONITOR_FUZZ_INPUTS</c> when set, else <paramref name="ciShare"/>.</summary>
    public static int Inputs(int ciShare) =>
        int.TryParse(Environment.GetEnvironmentVariable("MONITOR_FUZZ_INPUTS"), NumberStyles.None, CultureInfo.InvariantCulture, out int inputs) && inputs > 0 ? inputs : ciShare;

    /// <summary>The generator: seeded from <c>MONITOR_FUZZ_SEED</c> when set, else from <paramref name="seed"/>.</summary>
    public static Random NewRandom(int seed) =>
        new(int.TryParse(Environment.GetEnvironmentVariable("MONITOR_FUZZ_SEED"), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int given) ? given : seed);

    /// <summary>
    /// One to three edits of <paramref name="valid"/>: a character replaced, deleted or inserted, a cut, a chunk
    /// repeated, or one of <paramref name="tokens"/> (the format's own syntax, so mutations reach past the first
    /// parse error) inserted.
    /// </summary>
    public static string MutateText(string valid, Random random, IReadOnlyList<string> tokens)
    {
        var text = new StringBuilder(valid);
        int edits = random.Next(1, 4);
        for (int e = 0; e < edits; e++)
        {
            int at = text.Length == 0 ? 0 : random.Next(text.Length);
            switch (random.Next(7))
            {
                case 0 when text.Length > 0:
                    text[at] = RandomChar(random);
                    break;
                case 1 when text.Length > 0:
                    text.Remove(at, Math.Min(random.Next(1, 6), text.Length - at));
                    break;
                case 2:
                    text.Insert(at, RandomChar(random));
                    break;
                case 3 when text.Length > 0:
                    text.Length = at;
                    break;
                case 4 when text.Length > 0:
                    text.Append(text.ToString(at, Math.Min(random.Next(1, 40), text.Length - at)));
                    break;
                default:
                    text.Insert(at, tokens[random.Next(tokens.Count)]);
                    break;
            }
        }

        return text.ToString();
    }

    /// <summary>Random text of up to <paramref name="maxLength"/> characters, mostly printable ASCII.</summary>
    public static string RandomText(Random random, int maxLength)
    {
        var text = new StringBuilder();
        int length = random.Next(maxLength + 1);
        for (int i = 0; i < length; i++)
        {
            text.Append(RandomChar(random));
        }

        return text.ToString();
    }

    /// <summary>Runs <paramref name="feed"/> <paramref name="inputs"/> times, each naming its outcome, and prints the
    /// tally and the slowest input; fails on an input slower than <paramref name="slowest"/> (a hang).</summary>
    public static Dictionary<string, int> Run(string target, int inputs, Func<int, string> feed, TimeSpan slowest)
    {
        var outcomes = new Dictionary<string, int>(StringComparer.Ordinal);
        TimeSpan worst = TimeSpan.Zero;
        long start = Stopwatch.GetTimestamp();
        for (int i = 0; i < inputs; i++)
        {
            long before = Stopwatch.GetTimestamp();
            string outcome = feed(i);
            TimeSpan took = Stopwatch.GetElapsedTime(before);
            worst = took > worst ? took : worst;
            if (took > slowest)
            {
                throw new InvalidOperationException($"{target}: input #{i} took {took.TotalMilliseconds:F0} ms (over {slowest.TotalMilliseconds:F0} ms)");
            }

            outcomes[outcome] = outcomes.GetValueOrDefault(outcome) + 1;
        }

        TestContext.Current.TestOutputHelper?.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"fuzz {target}: {inputs} inputs in {Stopwatch.GetElapsedTime(start).TotalSeconds:F1} s, slowest {worst.TotalMilliseconds:F1} ms; {string.Join(", ", outcomes.OrderBy(o => o.Key, StringComparer.Ordinal).Select(o => $"{o.Key} {o.Value}"))}"));
        return outcomes;
    }

    private static char RandomChar(Random random) => random.Next(10) switch
    {
        0 => (char)random.Next(0, 32),
        1 => (char)random.Next(0x80, 0x3000),
        _ => (char)random.Next(32, 127),
    };
}
