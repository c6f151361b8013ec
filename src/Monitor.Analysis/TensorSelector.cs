using Google.Protobuf.Collections;
using System.Text.RegularExpressions;
using Monitor.Contracts;
using Monitor.Contracts.V1;

namespace Monitor.Analysis;

/// <summary>
/// Which tensors of a record a rule looks at: tensors in any of <see cref="Collections"/> (all tensors when empty)
/// whose names match an include pattern (any name when none) and no exclude pattern. Patterns are .NET regular
/// expressions run non-backtracking, searched anywhere in the name.
/// </summary>
/// <remarks>Pattern decisions are cached per tensor name. Not thread-safe, like the rules that own it.</remarks>
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
        // Called for every tensor of every record by every rule: a bit test on the collections first, and the name
        // (a string hash) only when there are patterns.
        if (!InCollections(tensor))
        {
            return false;
        }

        if (_include.Length == 0 && _exclude.Length == 0)
        {
            return true;
        }

        if (!_decisions.TryGetValue(tensor.Name, out bool matches))
        {
            matches = MatchesPatterns(tensor.Name);
            _decisions[tensor.Name] = matches;
        }

        return matches;
    }

    // Kept out of Matches: its pattern loops would otherwise cost a closure allocation on every call.
    private bool MatchesPatterns(string name) => (_include.Length == 0 || AnyMatch(_include, name)) && !AnyMatch(_exclude, name);

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

        // Indexed: foreach over a RepeatedField allocates an enumerator.
        RepeatedField<Collection> collections = tensor.Collections;
        for (int i = 0; i < collections.Count; i++)
        {
            if (_collections.Contains(collections[i]))
            {
                return true;
            }
        }

        return false;
    }
}
