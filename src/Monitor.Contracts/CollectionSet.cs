using Monitor.Contracts.V1;

namespace Monitor.Contracts;

/// <summary>A set of built-in <see cref="Collection"/> values as a bit mask: cheap to copy, compare and test.</summary>
public readonly record struct CollectionSet(uint Bits)
{
    /// <summary>The empty set.</summary>
    public static CollectionSet None => default;

    /// <summary>A set of one collection.</summary>
    public static CollectionSet Of(Collection collection) => new(1u << (int)collection);

    /// <summary>A set of several collections.</summary>
    public static CollectionSet Of(params ReadOnlySpan<Collection> collections)
    {
        uint bits = 0;
        foreach (Collection c in collections)
        {
            bits |= 1u << (int)c;
        }

        return new CollectionSet(bits);
    }

    /// <summary>This set with <paramref name="collection"/> added.</summary>
    public CollectionSet With(Collection collection) => new(Bits | (1u << (int)collection));

    /// <summary>True when <paramref name="collection"/> is in the set.</summary>
    public bool Contains(Collection collection) => (Bits & (1u << (int)collection)) != 0;

    /// <summary>True when the set is empty.</summary>
    public bool IsEmpty => Bits == 0;

    /// <summary>The members, ascending.</summary>
    public IEnumerable<Collection> Members()
    {
        for (int i = 0; i < 32; i++)
        {
            if ((Bits & (1u << i)) != 0)
            {
                yield return (Collection)i;
            }
        }
    }

    /// <inheritdoc />
    public override string ToString() => string.Join(",", Members().Select(CollectionNames.NameOf));
}
