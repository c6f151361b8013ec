namespace Monitor.Contracts.Tests;

/// <summary>Constructs the non-backtracking engine rejects (backreferences, lookarounds, atomic groups) are validation problems naming the field.</summary>
public sealed class SelectionUnsupportedPatternTests
{
    [Theory]
    [InlineData(@"(a)\1")]
    [InlineData("(?=a)b")]
    [InlineData("(?<!a)b")]
    [InlineData("(?>a)")]
    public void Validate_NamesThePattern_WhenNonBacktrackingEngineRejectsIt(string pattern)
    {
        var selection = new TraceSelection
        {
            Collections = new Dictionary<string, CollectionFilter> { [CollectionNames.Gradients] = new() { Include = [pattern] } },
        };

        string problem = Assert.Single(selection.Validate());
        Assert.StartsWith($"collections.gradients.include[0]: invalid regular expression '{pattern}'", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void CompilePattern_ThrowsArgumentException_WhenPatternHasABackreference()
    {
        Assert.ThrowsAny<ArgumentException>(() => TraceSelection.CompilePattern(@"(a)\1"));
    }
}
