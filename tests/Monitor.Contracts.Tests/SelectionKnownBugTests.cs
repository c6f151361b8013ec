namespace Monitor.Contracts.Tests;

/// <summary>
/// Tests of <see cref="TraceSelection"/> that fail against the current src/ because of a known bug: they are
/// <c>Explicit</c> so the default run stays green. Run them with <c>-- --filter-class
/// Monitor.Contracts.Tests.SelectionKnownBugTests --explicit only</c>; remove <c>Explicit</c> once the bug is fixed.
/// </summary>
/// <remarks>
/// Bug: <c>TraceSelection.CompilePattern</c> (src/Monitor.Contracts/Selection.cs) throws
/// <see cref="NotSupportedException"/>, not <see cref="ArgumentException"/> as documented, for constructs the
/// non-backtracking engine rejects (backreferences, lookarounds, atomic groups); <c>CheckPatterns</c> catches only
/// <see cref="ArgumentException"/>, so <c>Validate</c> throws instead of naming the field.
/// </remarks>
public sealed class SelectionKnownBugTests
{
    [Theory(Explicit = true)]
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

    [Fact(Explicit = true)]
    public void CompilePattern_ThrowsArgumentException_WhenPatternHasABackreference()
    {
        Assert.ThrowsAny<ArgumentException>(() => TraceSelection.CompilePattern(@"(a)\1"));
    }
}
