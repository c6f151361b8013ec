using System.Text.RegularExpressions;
using Monitor.Contracts;
using Monitor.Contracts.V1;

namespace Monitor.Analysis;

/// <summary>
/// Which tensors of a record a rule looks at: tensors in any of <see cref="Collections"/> (all tensors when empty)
/// whose names match an include pattern (any name when none) and no exclude pattern. Patterns are .NET regular
/// expressions run non-backtracking, searched anywhere in the name.
/// </summary>
/// <remarks>Decisions are cached per tensor name (a name always comes with the same collections). Not thread-safe,
/// like the rules that own it.</remarks>
public sealed class TensorSelector
{
    private readonly Regex[] _include;
    private readonly Regex[] _exclude;
    private readonly CollectionSet _collections;
    private readonly Dictionary<string, bool> _decisions = new(StringComparer.Ordinal);

    /// <summary>Creates a selector.</summary>
    /// <exception cref="ArgumentException">A pattern is invalid or unsupported by the non-backtracking engine.</exception>
    public TensorSelector(IEnumerable<Collection> collections, IEnumerable<string>? include = null, IEnumerable<string>? exclude = null)
    {
        ArgumentNullException.ThrowIfNull(collections);
        Collections = [.. collections];
        Include = [.. include ?? []];
        Exclude = [.. exclude ?? []];
        _collections = CollectionSet.Of([.. Collections]);
        _include = [.. Include.Select(TraceSelection.CompilePattern)];
        _exclude = [.. Exclude.Select(TraceSelection.CompilePattern)];
    }

    /// <summary>Collections looked at; empty means every tensor.</summary>
    public IReadOnlyList<Collection> Collections { get; }

    /// <summary>Include patterns; empty means every name.</summary>
    public IReadOnlyList<string> Include { get; }

    /// <summary>Exclude patterns.</summary>
    public IReadOnlyList<string> Exclude { get; }

    /// <summary>A selector of every tensor in the given collections.</summary>
    public static TensorSelector Of(params Collection[] collections) => new(collections);

    /// <summary>Whether the rule looks at <paramref name="tensor"/>.</summary>
    public bool Matches(TensorRecord tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (!_decisions.TryGetValue(tensor.Name, out bool matches))
        {
            matches = Decide(tensor);
            _decisions[tensor.Name] = matches;
        }

        return matches;
    }

    // Kept out of Matches: its pattern loops would otherwise cost a closure allocation on every call.
    private bool Decide(TensorRecord tensor) =>
        InCollections(tensor) && (_include.Length == 0 || AnyMatch(_include, tensor.Name)) && !AnyMatch(_exclude, tensor.Name);

    private static bool AnyMatch(Regex[] patterns, string name)
    {
        foreach (Regex pattern in patterns)
        {
            if (pattern.IsMatch(name))
            {
                return true;
            }
        }

        return false;
    }

    private bool InCollections(TensorRecord tensor)
    {
        if (_collections.IsEmpty)
        {
            return true;
        }

        foreach (Collection collection in tensor.Collections)
        {
            if (_collections.Contains(collection))
            {
                return true;
            }
        }

        return false;
    }
}
