using System.Text.RegularExpressions;
using Monitor.Contracts;
using Monitor.Contracts.V1;

namespace Monitor.Tracing;

/// <summary>
/// A validated <see cref="TraceSelection"/> with its regular expressions compiled and its per-tensor decisions
/// cached, so that asking "trace this tensor?" on the training path is one dictionary lookup after the first step.
/// </summary>
/// <remarks>Used by one training thread at a time (the cache is not synchronised).</remarks>
internal sealed class CompiledSelection
{
    private readonly (Collection Collection, Regex[] Include, Regex[] Exclude)[] _collections;
    private readonly HashSet<string> _explicitNames;
    private readonly Dictionary<string, bool> _decisions = new(StringComparer.Ordinal);
    private long _lastTracedTimestamp = long.MinValue;

    public CompiledSelection(TraceSelection selection)
    {
        ArgumentNullException.ThrowIfNull(selection);
        selection.EnsureValid();
        Source = selection;
        _collections = selection.Collections
            .Select(pair =>
            {
                Collection collection = CollectionNames.TryParse(pair.Key, out Collection parsed)
                    ? parsed
                    : throw new ArgumentException($"unknown collection '{pair.Key}'");
                return (collection,
                    pair.Value.Include.Select(TraceSelection.CompilePattern).ToArray(),
                    pair.Value.Exclude.Select(TraceSelection.CompilePattern).ToArray());
            })
            .ToArray();
        _explicitNames = new HashSet<string>(selection.Tensors, StringComparer.Ordinal);
    }

    public TraceSelection Source { get; }

    public long Version => Source.Version;

    /// <summary>Whether the step is traced under the schedule (TF-Tracer priority: steps, seconds, range).</summary>
    public bool IsScheduled(long step, TimeProvider time)
    {
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
    public bool Selects(string name, CollectionSet collections)
    {
        if (!_decisions.TryGetValue(name, out bool selected))
        {
            selected = Decide(name, collections);
            _decisions[name] = selected;
        }

        return selected;
    }

    private bool Decide(string name, CollectionSet collections)
    {
        if (_explicitNames.Contains(name))
        {
            return true;
        }

        foreach ((Collection collection, Regex[] include, Regex[] exclude) in _collections)
        {
            if (!collections.Contains(collection))
            {
                continue;
            }

            bool included = include.Length == 0 || include.Any(r => r.IsMatch(name));
            if (included && !exclude.Any(r => r.IsMatch(name)))
            {
                return true;
            }
        }

        return false;
    }
}
