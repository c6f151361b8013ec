using Monitor.Contracts.V1;

namespace Monitor.Contracts.Tests;

public sealed class CollectionSetTests
{
    [Fact]
    public void None_IsEmpty_WithNoMembers()
    {
        CollectionSet none = CollectionSet.None;

        Assert.True(none.IsEmpty);
        Assert.Equal(0u, none.Bits);
        Assert.Empty(none.Members());
        Assert.Equal("", none.ToString());
        Assert.Equal(default, none);
    }

    [Fact]
    public void Of_ContainsExactlyThatCollection_ForEveryCollection()
    {
        Collection[] all = Enum.GetValues<Collection>();
        foreach (Collection collection in all)
        {
            CollectionSet set = CollectionSet.Of(collection);

            Assert.False(set.IsEmpty);
            Assert.Equal([collection], set.Members());
            foreach (Collection other in all)
            {
                Assert.Equal(other == collection, set.Contains(other));
            }
        }
    }

    [Fact]
    public void Of_ListsMembersAscending_WhateverTheOrderGiven()
    {
        CollectionSet set = CollectionSet.Of(Collection.Losses, Collection.Weights, Collection.Gradients, Collection.Weights);

        Assert.Equal([Collection.Weights, Collection.Gradients, Collection.Losses], set.Members());
        Assert.Equal("weights,gradients,losses", set.ToString());
    }

    [Fact]
    public void Of_ReturnsNone_WhenGivenNoCollections()
    {
        Assert.Equal(CollectionSet.None, CollectionSet.Of(ReadOnlySpan<Collection>.Empty));
    }

    [Fact]
    public void With_ReturnsANewSet_AndLeavesTheOriginalUnchanged()
    {
        CollectionSet weights = CollectionSet.Of(Collection.Weights);

        CollectionSet both = weights.With(Collection.Biases);

        Assert.Equal([Collection.Weights], weights.Members());
        Assert.Equal([Collection.Weights, Collection.Biases], both.Members());
        Assert.Equal(both, both.With(Collection.Biases));
    }

    [Fact]
    public void Equals_IsTrue_ForTheSameMembersBuiltDifferently()
    {
        CollectionSet a = CollectionSet.Of(Collection.Gradients, Collection.Custom);
        CollectionSet b = CollectionSet.None.With(Collection.Custom).With(Collection.Gradients);

        Assert.Equal(a, b);
        Assert.True(a == b);
        Assert.Equal(a.GetHashCode(), b.GetHashCode());
        Assert.NotEqual(a, CollectionSet.Of(Collection.Gradients));
    }

    [Fact]
    public void ToString_UsesSelectionNames_ForEveryBuiltInCollection()
    {
        CollectionSet set = CollectionSet.None;
        foreach (string name in CollectionNames.All)
        {
            Assert.True(CollectionNames.TryParse(name, out Collection collection));
            set = set.With(collection);
        }

        Assert.Equal(string.Join(",", CollectionNames.All), set.ToString());
    }

    [Fact]
    public void NameOf_RoundTripsThroughTryParse_ForEveryNamedCollection()
    {
        foreach (Collection collection in Enum.GetValues<Collection>().Where(c => c != Collection.Unspecified))
        {
            string name = CollectionNames.NameOf(collection);

            Assert.True(CollectionNames.TryParse(name, out Collection parsed), name);
            Assert.Equal(collection, parsed);
            Assert.True(CollectionNames.TryParse(name.ToUpperInvariant(), out parsed), name);
            Assert.Equal(collection, parsed);
        }
    }

    [Theory]
    [InlineData("")]
    [InlineData("gradient")]
    [InlineData("unspecified")]
    [InlineData(" weights")]
    public void TryParse_ReturnsFalse_WhenNameIsUnknown(string name)
    {
        Assert.False(CollectionNames.TryParse(name, out Collection collection));
        Assert.Equal(Collection.Unspecified, collection);
    }

    [Fact]
    public void NameOf_FallsBackToLowerCaseEnumName_WhenCollectionHasNoSelectionName()
    {
        Assert.Equal("unspecified", CollectionNames.NameOf(Collection.Unspecified));
    }
}
