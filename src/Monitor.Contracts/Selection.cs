using System.ComponentModel;
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
    /// <summary>Default of <see cref="LimitSize"/>: TF-Tracer's <c>limit_size</c>.</summary>
    public const int DefaultLimitSize = 100_000;

    /// <summary>
    /// Largest <see cref="LimitSize"/> accepted: 250,000 float32 values make 1 MB, Kafka's default message limit.
    /// Records are not split into chunks, so a larger raw capture could not be delivered.
    /// </summary>
    public const int MaxLimitSize = 250_000;

    /// <summary>Version of this selection; 0 for a selection given at start-up. Records carry it. Set by the store.</summary>
    [JsonPropertyName("version")]
    [Description("Version of this selection. Assigned by the control plane when stored; 0 for a selection given at start-up. Every step record carries the version it was traced under.")]
    public long Version { get; init; }

    /// <summary>Collections to trace by name (see <see cref="CollectionNames"/>), each with an optional name filter.</summary>
    [JsonPropertyName("collections")]
    [Description("Collections to trace, by name (weights, biases, gradients, activations, losses, optimizer, inputs, predictions, labels, custom), each with include/exclude regular expressions and whether to capture the histogram and raw values (summary statistics are always captured).")]
    public IReadOnlyDictionary<string, CollectionFilter> Collections { get; init; } = new Dictionary<string, CollectionFilter>();

    /// <summary>Tensor names traced whatever their collections (summary and histogram).</summary>
    [JsonPropertyName("tensors")]
    [Description("Tensor names traced whatever their collections (summary and histogram), e.g. \"fc1.weight.grad\".")]
    public IReadOnlyList<string> Tensors { get; init; } = [];

    /// <summary>When to trace; default every step.</summary>
    [JsonPropertyName("schedule")]
    [Description("When to trace. Exactly one rule applies, in this priority: everySteps, everySeconds, stepRange. None set: every step.")]
    public TraceSchedule Schedule { get; init; } = new();

    /// <summary>Raw elements captured per tensor per step where a collection asks for <c>raw</c>. Default 100,000.</summary>
    [JsonPropertyName("limitSize")]
    [Description("Most raw elements captured per tensor per step (collections with raw: true); the first elements in row-major order. 1 to 250000; default 100000.")]
    public int LimitSize { get; init; } = DefaultLimitSize;

    /// <summary>Only rank 0 traces (TF-Tracer's <c>chief_only</c>). Default false.</summary>
    [JsonPropertyName("chiefOnly")]
    [Description("When true only rank 0 (the chief) traces; other ranks send nothing. Default false.")]
    public bool ChiefOnly { get; init; }

    /// <summary>Modes traced: <c>train</c>, <c>eval</c>, <c>predict</c>; empty means all.</summary>
    [JsonPropertyName("modes")]
    [Description("Modes in which steps are traced: train, eval, predict. Empty: all modes.")]
    public IReadOnlyList<string> Modes { get; init; } = [];

    /// <summary>
    /// The ranks a stored selection is meant for (informational: the control plane stores a rank-targeted selection
    /// under each rank's own key, and the other ranks keep theirs). Empty: every rank without its own selection.
    /// </summary>
    [JsonPropertyName("ranks")]
    [Description("Ranks this selection targets. The control plane stores a targeted selection per rank; ranks not listed keep their selection. Empty: all ranks.")]
    public IReadOnlyList<int> Ranks { get; init; } = [];

    /// <summary>
    /// The overhead budget of this selection: a fraction of the step time, or <see cref="TraceBudget.None"/>. Null (the
    /// default): the worker's own <c>TracerOptions.OverheadBudget</c> (2%).
    /// </summary>
    [JsonPropertyName("budget")]
    [Description("Overhead budget: the fraction of the step time the tracer may spend on the training thread, in (0, 1] (e.g. 0.02), or \"none\" to trace everything selected whatever it costs (while debugging). Over budget, the tracer thins the heaviest collections: it traces each of their tensors every k-th traced step, in rotation. Losses, the optimizer's learning rates, tensors named in tensors or matched by pin are never thinned, nor anything while schedule.everySteps is set. Absent: the worker's default (2%).")]
    public TraceBudget? Budget { get; init; }

    /// <summary>Tensors the overhead budget never thins (regular expressions, as in <see cref="CollectionFilter.Include"/>).</summary>
    [JsonPropertyName("pin")]
    [Description("Regular expressions (as in include) naming tensors the overhead budget never thins: those a rule needs at every step. Losses, learning rates and the names in tensors are never thinned anyway.")]
    public IReadOnlyList<string> Pin { get; init; } = [];

    /// <summary>A one-shot capture when the selection takes effect (before training, for a start-up selection).</summary>
    [JsonPropertyName("atBegin")]
    [Description("One-shot capture, with raw values, taken once when this selection takes effect (before the first step for a start-up selection): for constants and values that never change.")]
    public AtBeginCapture? AtBegin { get; init; }

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

        if (Collections is null)
        {
            problems.Add("collections: must be an object (use {} for none)");
        }
        else
        {
            foreach ((string name, CollectionFilter filter) in Collections)
            {
                CheckCollection(problems, $"collections.{name}", name, filter);
            }
        }

        CheckNames(problems, "tensors", Tensors);
        CheckPatterns(problems, "pin", Pin);
        if (Budget is { Fraction: { } budget } && TraceBudget.Check(budget) is { } budgetProblem)
        {
            problems.Add($"budget: {budgetProblem}");
        }

        CheckNotNull(problems, "modes", Modes);
        CheckNotNull(problems, "ranks", Ranks);
        if (LimitSize is < 1 or > MaxLimitSize)
        {
            problems.Add($"limitSize: {LimitSize} is outside 1..{MaxLimitSize} (raw values must fit one 1 MB record)");
        }

        for (int i = 0; i < (Modes?.Count ?? 0); i++)
        {
            if (!ModeNames.TryParse(Modes![i], out _))
            {
                problems.Add($"modes[{i}]: unknown mode '{Modes[i]}'; known are {string.Join(", ", ModeNames.All)}");
            }
        }

        for (int i = 0; i < (Ranks?.Count ?? 0); i++)
        {
            if (Ranks![i] < 0)
            {
                problems.Add($"ranks[{i}]: {Ranks[i]} is negative");
            }
        }

        if (Schedule is null)
        {
            problems.Add("schedule: must be an object (use {} for every step)");
        }
        else
        {
            Schedule.Validate(problems);
        }

        AtBegin?.Validate(problems);
        return problems;
    }

    /// <summary>Throws <see cref="SelectionValidationException"/> listing every problem when <see cref="Validate"/> finds any.</summary>
    public TraceSelection EnsureValid()
    {
        IReadOnlyList<string> problems = Validate();
        return problems.Count == 0 ? this : throw new SelectionValidationException(problems);
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

    internal static void CheckCollection(List<string> problems, string field, string name, CollectionFilter? filter)
    {
        if (!CollectionNames.TryParse(name, out _))
        {
            problems.Add($"{field}: unknown collection '{name}'; known are {string.Join(", ", CollectionNames.All)}");
        }

        if (filter is null)
        {
            problems.Add($"{field}: must be an object (use {{}} for every tensor of the collection)");
            return;
        }

        CheckPatterns(problems, $"{field}.include", filter.Include);
        CheckPatterns(problems, $"{field}.exclude", filter.Exclude);
    }

    internal static void CheckNames(List<string> problems, string field, IReadOnlyList<string>? names)
    {
        CheckNotNull(problems, field, names);
        for (int i = 0; i < (names?.Count ?? 0); i++)
        {
            if (string.IsNullOrWhiteSpace(names![i]))
            {
                problems.Add($"{field}[{i}]: empty tensor name");
            }
        }
    }

    /// <summary>JSON <c>null</c> where a list belongs is a problem, so that no worker ever meets a null list.</summary>
    internal static void CheckNotNull<T>(List<string> problems, string field, IReadOnlyList<T>? list)
    {
        if (list is null)
        {
            problems.Add($"{field}: must be a list (use [] for none), not null");
        }
    }

    private static void CheckPatterns(List<string> problems, string field, IReadOnlyList<string>? patterns)
    {
        CheckNotNull(problems, field, patterns);
        for (int i = 0; i < (patterns?.Count ?? 0); i++)
        {
            if (patterns![i] is null)
            {
                problems.Add($"{field}[{i}]: null pattern");
                continue;
            }

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

/// <summary>A selection that failed validation; <see cref="Problems"/> name each offending field.</summary>
public sealed class SelectionValidationException : ArgumentException
{
    /// <summary>Creates the exception from the problems found.</summary>
    public SelectionValidationException(IReadOnlyList<string> problems)
        : base("invalid selection: " + string.Join("; ", problems)) => Problems = problems;

    /// <summary>Creates an exception with one problem.</summary>
    public SelectionValidationException(string problem)
        : this([problem])
    {
    }

    /// <summary>Creates an exception with a message (for serializers).</summary>
    public SelectionValidationException()
        : this("invalid selection")
    {
    }

    /// <summary>Creates an exception with a message and inner exception.</summary>
    public SelectionValidationException(string message, Exception innerException)
        : base(message, innerException) => Problems = [message];

    /// <summary>Each problem, naming its field (e.g. <c>schedule.stepRange: [5, 2] is empty</c>).</summary>
    public IReadOnlyList<string> Problems { get; }
}

/// <summary>The one-shot capture of a selection (TF-Tracer's <c>at_begin</c>): raw values of the chosen tensors.</summary>
public sealed record AtBeginCapture
{
    /// <summary>Collections, with name filters, captured once.</summary>
    [JsonPropertyName("collections")]
    [Description("Collections captured once (summary, histogram and raw values), with include/exclude filters.")]
    public IReadOnlyDictionary<string, CollectionFilter> Collections { get; init; } = new Dictionary<string, CollectionFilter>();

    /// <summary>Tensor names captured once.</summary>
    [JsonPropertyName("tensors")]
    [Description("Tensor names captured once.")]
    public IReadOnlyList<string> Tensors { get; init; } = [];

    /// <summary>Raw elements per tensor; default and cap as <see cref="TraceSelection.LimitSize"/>.</summary>
    [JsonPropertyName("limitSize")]
    [Description("Most raw elements captured per tensor. 1 to 250000; default 100000.")]
    public int LimitSize { get; init; } = TraceSelection.DefaultLimitSize;

    internal void Validate(List<string> problems)
    {
        if (Collections is null)
        {
            problems.Add("atBegin.collections: must be an object (use {} for none), not null");
        }

        foreach ((string name, CollectionFilter filter) in Collections ?? new Dictionary<string, CollectionFilter>())
        {
            TraceSelection.CheckCollection(problems, $"atBegin.collections.{name}", name, filter);
        }

        TraceSelection.CheckNames(problems, "atBegin.tensors", Tensors);
        if (LimitSize is < 1 or > TraceSelection.MaxLimitSize)
        {
            problems.Add($"atBegin.limitSize: {LimitSize} is outside 1..{TraceSelection.MaxLimitSize} (raw values must fit one 1 MB record)");
        }

        if ((Collections?.Count ?? 0) == 0 && (Tensors?.Count ?? 0) == 0)
        {
            problems.Add("atBegin: names no collection and no tensor");
        }
    }

    /// <summary>The one-shot capture as a selection of its own (raw on for every collection listed), for matching.</summary>
    public TraceSelection AsSelection() => new()
    {
        Collections = Collections.ToDictionary(c => c.Key, c => c.Value with { Raw = true }),
        Tensors = Tensors,
        LimitSize = LimitSize,
    };
}

/// <summary>
/// Name filter of one collection and what to capture of its tensors besides the summary statistics, which are always
/// captured (count, min, max, mean, variance, L1, L2, abs-mean, zero/NaN/Inf counts: one fused pass computes them
/// all): the histogram and raw values. Empty <see cref="Include"/> means every tensor of the collection.
/// </summary>
public sealed record CollectionFilter
{
    /// <summary>A tensor is kept when it matches any of these (searched anywhere in the name; anchor with ^ and $).</summary>
    [JsonPropertyName("include")]
    [Description("Regular expressions (.NET syntax, non-backtracking: no backreferences or lookarounds); a tensor is kept when its name matches any. Searched anywhere in the name: anchor with ^ and $. Empty: every tensor of the collection.")]
    public IReadOnlyList<string> Include { get; init; } = [];

    /// <summary>A kept tensor is dropped again when it matches any of these.</summary>
    [JsonPropertyName("exclude")]
    [Description("Regular expressions; a kept tensor is dropped again when its name matches any.")]
    public IReadOnlyList<string> Exclude { get; init; } = [];

    /// <summary>Capture the log2 histogram. Default true.</summary>
    [JsonPropertyName("histogram")]
    [Description("Capture the 96-bucket signed log2 histogram. Default true.")]
    public bool Histogram { get; init; } = true;

    /// <summary>Capture raw values, up to the selection's <c>limitSize</c> elements per tensor. Default false.</summary>
    [JsonPropertyName("raw")]
    [Description("Capture raw values, up to limitSize elements per tensor and step. Default false.")]
    public bool Raw { get; init; }
}

/// <summary>
/// When to trace. Exactly one rule applies, in TF-Tracer's priority: <see cref="EverySteps"/>, then
/// <see cref="EverySeconds"/>, then <see cref="StepRange"/>; with none set, every step is traced.
/// </summary>
public sealed record TraceSchedule
{
    /// <summary>Trace steps divisible by this (1 = every step).</summary>
    [JsonPropertyName("everySteps")]
    [Description("Trace steps divisible by this number (1: every step). At least 1.")]
    public int? EverySteps { get; init; }

    /// <summary>Trace a step when at least this many seconds passed since the last traced one.</summary>
    [JsonPropertyName("everySeconds")]
    [Description("Trace a step when at least this many seconds passed since the last traced one. Positive.")]
    public double? EverySeconds { get; init; }

    /// <summary>Trace steps from <c>Start</c> to <c>End</c>, both included.</summary>
    [JsonPropertyName("stepRange")]
    [Description("Trace the steps from start to end, both included.")]
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
    [property: JsonPropertyName("start"), Description("First step traced; not negative.")] long Start,
    [property: JsonPropertyName("end"), Description("Last step traced; not before start.")] long End);

/// <summary>Mode names as used in selections.</summary>
public static class ModeNames
{
    private static readonly (string Name, Mode Value)[] Map = [("train", Mode.Train), ("eval", Mode.Eval), ("predict", Mode.Predict)];

    /// <summary>Every known name.</summary>
    public static IReadOnlyList<string> All { get; } = Array.ConvertAll(Map, m => m.Name);

    /// <summary>Maps a name (case-insensitive) to its wire value.</summary>
    public static bool TryParse(string? name, out Mode mode)
    {
        foreach ((string known, Mode value) in Map)
        {
            if (string.Equals(known, name, StringComparison.OrdinalIgnoreCase))
            {
                mode = value;
                return true;
            }
        }

        mode = Mode.Unspecified;
        return false;
    }
}

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
