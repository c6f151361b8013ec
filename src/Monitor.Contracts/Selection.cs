using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using Monitor.Contracts.V1;

namespace Monitor.Contracts;

/// <summary>
/// What a worker traces: which tensors (collections filtered by regular expressions, plus explicit names) and
/// when (the schedule). Immutable; a worker swaps the whole object when a new version arrives.
/// </summary>
/// <remarks>
/// Semantics follow DeepInsight's TF-Tracer and smdebug: a tensor is traced when one of its collections is listed
/// in <see cref="Collections"/> and its name matches that collection's filter, or when its name is listed in
/// <see cref="Tensors"/>. A tensor in several collections is traced (and sent) once.
/// </remarks>
public sealed record TraceSelection
{
    /// <summary>Version of this selection; 0 for a selection given at start-up. Records carry it.</summary>
    [JsonPropertyName("version")]
    public long Version { get; init; }

    /// <summary>Collections to trace by name (see <see cref="CollectionNames"/>), each with an optional name filter.</summary>
    [JsonPropertyName("collections")]
    public IReadOnlyDictionary<string, CollectionFilter> Collections { get; init; } = new Dictionary<string, CollectionFilter>();

    /// <summary>Tensor names traced whatever their collections.</summary>
    [JsonPropertyName("tensors")]
    public IReadOnlyList<string> Tensors { get; init; } = [];

    /// <summary>When to trace; default every step.</summary>
    [JsonPropertyName("schedule")]
    public TraceSchedule Schedule { get; init; } = new();

    /// <summary>
    /// The default selection: every built-in collection the adapter captures, every step, no filters. Narrow it for
    /// large models; each traced element costs one read of its memory per traced step.
    /// </summary>
    public static TraceSelection AllEveryStep { get; } = new()
    {
        Collections = new Dictionary<string, CollectionFilter>
        {
            [CollectionNames.Weights] = new(),
            [CollectionNames.Biases] = new(),
            [CollectionNames.Gradients] = new(),
            [CollectionNames.Activations] = new(),
            [CollectionNames.Losses] = new(),
            [CollectionNames.Optimizer] = new(),
        },
    };

    /// <summary>Checks every field; returns the problems, each naming its field (empty when valid).</summary>
    public IReadOnlyList<string> Validate()
    {
        var problems = new List<string>();
        if (Version < 0)
        {
            problems.Add($"version: {Version} is negative");
        }

        foreach ((string name, CollectionFilter filter) in Collections)
        {
            if (!CollectionNames.TryParse(name, out _))
            {
                problems.Add($"collections.{name}: unknown collection; known are {string.Join(", ", CollectionNames.All)}");
            }

            CheckPatterns(problems, $"collections.{name}.include", filter.Include);
            CheckPatterns(problems, $"collections.{name}.exclude", filter.Exclude);
        }

        for (int i = 0; i < Tensors.Count; i++)
        {
            if (string.IsNullOrWhiteSpace(Tensors[i]))
            {
                problems.Add($"tensors[{i}]: empty tensor name");
            }
        }

        Schedule.Validate(problems);
        return problems;
    }

    /// <summary>Throws <see cref="ArgumentException"/> listing every problem when <see cref="Validate"/> finds any.</summary>
    public TraceSelection EnsureValid()
    {
        IReadOnlyList<string> problems = Validate();
        return problems.Count == 0 ? this : throw new ArgumentException("invalid selection: " + string.Join("; ", problems));
    }

    /// <summary>Compiles a user pattern the way every worker does: non-backtracking, so no pattern can hang a worker.</summary>
    /// <exception cref="ArgumentException">The pattern is not a valid .NET regular expression or uses a construct
    /// the non-backtracking engine does not support (backreferences, lookarounds, atomic groups).</exception>
    public static Regex CompilePattern(string pattern)
    {
        try
        {
            return new Regex(pattern, RegexOptions.NonBacktracking | RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
        }
        catch (NotSupportedException ex)
        {
            throw new ArgumentException(ex.Message, nameof(pattern), ex);
        }
    }

    private static void CheckPatterns(List<string> problems, string field, IReadOnlyList<string> patterns)
    {
        for (int i = 0; i < patterns.Count; i++)
        {
            try
            {
                CompilePattern(patterns[i]);
            }
            catch (ArgumentException ex)
            {
                problems.Add($"{field}[{i}]: invalid regular expression '{patterns[i]}': {ex.Message}");
            }
        }
    }
}

/// <summary>Name filter of one collection. Empty <see cref="Include"/> means every tensor of the collection.</summary>
public sealed record CollectionFilter
{
    /// <summary>A tensor is kept when it matches any of these (searched anywhere in the name; anchor with ^ and $).</summary>
    [JsonPropertyName("include")]
    public IReadOnlyList<string> Include { get; init; } = [];

    /// <summary>A kept tensor is dropped again when it matches any of these.</summary>
    [JsonPropertyName("exclude")]
    public IReadOnlyList<string> Exclude { get; init; } = [];
}

/// <summary>
/// When to trace. Exactly one rule applies, in TF-Tracer's priority: <see cref="EverySteps"/>, then
/// <see cref="EverySeconds"/>, then <see cref="StepRange"/>; with none set, every step is traced.
/// </summary>
public sealed record TraceSchedule
{
    /// <summary>Trace steps divisible by this (1 = every step).</summary>
    [JsonPropertyName("everySteps")]
    public int? EverySteps { get; init; }

    /// <summary>Trace a step when at least this many seconds passed since the last traced one.</summary>
    [JsonPropertyName("everySeconds")]
    public double? EverySeconds { get; init; }

    /// <summary>Trace steps from <c>Start</c> to <c>End</c>, both included.</summary>
    [JsonPropertyName("stepRange")]
    public StepRange? StepRange { get; init; }

    internal void Validate(List<string> problems)
    {
        if (EverySteps is <= 0)
        {
            problems.Add($"schedule.everySteps: {EverySteps} must be at least 1");
        }

        if (EverySeconds is { } seconds && !(seconds > 0 && double.IsFinite(seconds)))
        {
            problems.Add($"schedule.everySeconds: {seconds} must be a positive number");
        }

        if (StepRange is { } range)
        {
            if (range.Start < 0)
            {
                problems.Add($"schedule.stepRange: start {range.Start} is negative");
            }

            if (range.End < range.Start)
            {
                problems.Add($"schedule.stepRange: [{range.Start}, {range.End}] is empty (end before start)");
            }
        }
    }
}

/// <summary>An inclusive range of steps.</summary>
/// <param name="Start">First step traced.</param>
/// <param name="End">Last step traced.</param>
public sealed record StepRange(
    [property: JsonPropertyName("start")] long Start,
    [property: JsonPropertyName("end")] long End);

/// <summary>Collection names as used in selections and on the command line.</summary>
public static class CollectionNames
{
    /// <summary>Parameters that are not biases.</summary>
    public const string Weights = "weights";

    /// <summary>Parameters whose last name segment is <c>bias</c>.</summary>
    public const string Biases = "biases";

    /// <summary>Gradients of parameters, named <c>{parameter}.grad</c>.</summary>
    public const string Gradients = "gradients";

    /// <summary>Module outputs, named <c>{module}.output</c>.</summary>
    public const string Activations = "activations";

    /// <summary>Losses.</summary>
    public const string Losses = "losses";

    /// <summary>Optimizer state such as the learning rate of each parameter group.</summary>
    public const string Optimizer = "optimizer";

    /// <summary>Model inputs.</summary>
    public const string Inputs = "inputs";

    /// <summary>Model predictions.</summary>
    public const string Predictions = "predictions";

    /// <summary>Labels.</summary>
    public const string Labels = "labels";

    /// <summary>Tensors the user registers by hand.</summary>
    public const string Custom = "custom";

    private static readonly (string Name, Collection Value)[] Map =
    [
        (Weights, Collection.Weights), (Biases, Collection.Biases), (Gradients, Collection.Gradients),
        (Activations, Collection.Activations), (Losses, Collection.Losses), (Optimizer, Collection.Optimizer),
        (Inputs, Collection.Inputs), (Predictions, Collection.Predictions), (Labels, Collection.Labels),
        (Custom, Collection.Custom),
    ];

    /// <summary>Every known name.</summary>
    public static IReadOnlyList<string> All { get; } = Array.ConvertAll(Map, m => m.Name);

    /// <summary>Maps a name (case-insensitive) to its wire value.</summary>
    public static bool TryParse(string name, out Collection collection)
    {
        foreach ((string known, Collection value) in Map)
        {
            if (string.Equals(known, name, StringComparison.OrdinalIgnoreCase))
            {
                collection = value;
                return true;
            }
        }

        collection = Collection.Unspecified;
        return false;
    }

    /// <summary>The name of a wire value.</summary>
    public static string NameOf(Collection collection)
    {
        foreach ((string name, Collection value) in Map)
        {
            if (value == collection)
            {
                return name;
            }
        }

        return collection.ToString().ToLowerInvariant();
    }
}
