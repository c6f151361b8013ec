using System.Numerics;
using System.Text.RegularExpressions;
using Monitor.Contracts;
using Monitor.Contracts.V1;

namespace Monitor.Tracing;

/// <summary>What to capture of one tensor; <see cref="None"/> when it is not traced. Summary statistics are always
/// captured for a traced tensor.</summary>
/// <param name="Traced">The tensor is traced.</param>
/// <param name="Histogram">Include the log2 histogram.</param>
/// <param name="RawLimit">Raw elements to include (0: none).</param>
/// <param name="ThinCollection">The collection the overhead budget may thin the tensor with; <see cref="Collection.Unspecified"/>
/// when it is never thinned (losses, learning rates, named or pinned tensors).</param>
/// <param name="ThinIndex">The tensor's place in that collection's rotation.</param>
internal readonly record struct CaptureSpec(bool Traced, bool Histogram, int RawLimit, Collection ThinCollection = Collection.Unspecified, int ThinIndex = 0)
{
    public static CaptureSpec None => default;
}

/// <summary>
/// A validated <see cref="TraceSelection"/> with its regular expressions compiled and its per-tensor decisions
/// cached, so that asking "trace this tensor?" on the training path is one dictionary lookup after the first step.
/// </summary>
/// <remarks>Used by one training thread at a time (the cache is not synchronised).</remarks>
internal sealed class CompiledSelection
{
    private readonly (Collection Collection, Regex[] Include, Regex[] Exclude, bool Histogram, bool Raw)[] _collections;
    private readonly HashSet<string> _explicitNames;
    private readonly bool _rawForExplicitNames;
    private readonly Regex[] _pins;
    // Next rotation index per collection: tensors take their places in the order the selection first meets them.
    private readonly int[] _nextThinIndex = new int[32];
    private readonly HashSet<Mode> _modes;
    private readonly Dictionary<string, CaptureSpec> _decisions = new(StringComparer.Ordinal);
    private long _lastTracedTimestamp = long.MinValue;

    /// <summary>Compiles <paramref name="selection"/>.</summary>
    /// <param name="selection">The selection; validated here.</param>
    /// <param name="rawForExplicitNames">Capture raw values of the explicitly named tensors too (the at-begin capture).</param>
    /// <exception cref="SelectionValidationException">The selection is invalid.</exception>
    public CompiledSelection(TraceSelection selection, bool rawForExplicitNames = false)
    {
        ArgumentNullException.ThrowIfNull(selection);
        selection.EnsureValid();
        Source = selection;
        _rawForExplicitNames = rawForExplicitNames;
        _collections = selection.Collections
            .Select(pair =>
            {
                Collection collection = CollectionNames.TryParse(pair.Key, out Collection parsed)
                    ? parsed
                    : throw new SelectionValidationException($"collections.{pair.Key}: unknown collection");
                return (collection,
                    pair.Value.Include.Select(TraceSelection.CompilePattern).ToArray(),
                    pair.Value.Exclude.Select(TraceSelection.CompilePattern).ToArray(),
                    pair.Value.Histogram,
                    pair.Value.Raw);
            })
            .ToArray();
        _explicitNames = new HashSet<string>(selection.Tensors, StringComparer.Ordinal);
        _pins = [.. selection.Pin.Select(TraceSelection.CompilePattern)];
        _modes = selection.Modes.Select(m => ModeNames.TryParse(m, out Mode mode) ? mode : Mode.Unspecified).ToHashSet();
        AtBegin = selection.AtBegin is { } atBegin ? new CompiledSelection(atBegin.AsSelection(), rawForExplicitNames: true) : null;
    }

    public TraceSelection Source { get; }

    public long Version => Source.Version;

    /// <summary>
    /// The overhead budget of steps under this selection: its own <c>budget</c>, else <paramref name="defaultBudget"/>;
    /// none when the selection sets <c>schedule.everySteps</c> (an explicit rate wins over the budget).
    /// </summary>
    public double? BudgetOr(double? defaultBudget) =>
        Source.Schedule.EverySteps is not null ? null : Source.Budget is { } own ? own.Fraction : defaultBudget;

    /// <summary>The one-shot capture of this selection, if it has one.</summary>
    public CompiledSelection? AtBegin { get; }

    /// <summary>
    /// Whether the step is traced: the rank may trace (<c>chiefOnly</c>), the mode is selected, and the schedule
    /// (TF-Tracer priority: every N steps, every N seconds, step range) picks the step.
    /// </summary>
    public bool IsScheduled(long step, Mode mode, int rank, TimeProvider time)
    {
        if ((Source.ChiefOnly && rank != 0) || (_modes.Count > 0 && !_modes.Contains(mode)))
        {
            return false;
        }

        TraceSchedule schedule = Source.Schedule;
        if (schedule.EverySteps is { } everySteps)
        {
            return step % everySteps == 0;
        }

        if (schedule.EverySeconds is { } everySeconds)
        {
            long now = time.GetTimestamp();
            if (_lastTracedTimestamp != long.MinValue && time.GetElapsedTime(_lastTracedTimestamp, now).TotalSeconds < everySeconds)
            {
                return false;
            }

            _lastTracedTimestamp = now;
            return true;
        }

        if (schedule.StepRange is { } range)
        {
            return step >= range.Start && step <= range.End;
        }

        return true;
    }

    /// <summary>Whether the tensor is selected. A given name must always come with the same collections.</summary>
    public bool Selects(string name, CollectionSet collections) => Capture(name, collections).Traced;

    /// <summary>What to capture of the tensor (cached per name).</summary>
    public CaptureSpec Capture(string name, CollectionSet collections)
    {
        if (!_decisions.TryGetValue(name, out CaptureSpec spec))
        {
            spec = Decide(name, collections);
            _decisions[name] = spec;
        }

        return spec;
    }

    private CaptureSpec Decide(string name, CollectionSet collections)
    {
        bool traced = false, histogram = false, raw = false, named = false;
        if (_explicitNames.Contains(name))
        {
            traced = histogram = named = true;
            raw = _rawForExplicitNames;
        }

        foreach ((Collection collection, Regex[] include, Regex[] exclude, bool wantsHistogram, bool wantsRaw) in _collections)
        {
            if (!collections.Contains(collection))
            {
                continue;
            }

            bool included = include.Length == 0 || include.Any(r => r.IsMatch(name));
            if (included && !exclude.Any(r => r.IsMatch(name)))
            {
                traced = true;
                histogram |= wantsHistogram;
                raw |= wantsRaw;
            }
        }

        if (!traced)
        {
            return CaptureSpec.None;
        }

        Collection thin = named || IsNeverThinned(collections) || _pins.Any(r => r.IsMatch(name))
            ? Collection.Unspecified
            : (Collection)BitOperations.TrailingZeroCount(collections.Bits);
        int index = thin == Collection.Unspecified ? 0 : _nextThinIndex[(int)thin]++;
        return new CaptureSpec(true, histogram, raw ? Source.LimitSize : 0, thin, index);
    }

    // Losses and learning rates are what a run is judged by and cost next to nothing: the budget never thins them.
    private static bool IsNeverThinned(CollectionSet collections) =>
        collections.IsEmpty || collections.Contains(Collection.Losses) || collections.Contains(Collection.Optimizer);
}
