#if MONITOR_TRACING_BUG_TESTS
// Known bug, tests left out of the build until it is fixed (then delete this #if and its #endif).
// TraceSelection.CompilePattern (src/Monitor.Contracts/Selection.cs, line 93) documents an ArgumentException for
// constructs the non-backtracking engine does not support, but Regex throws NotSupportedException for them
// (backreferences, lookarounds, atomic groups), and TraceSelection.CheckPatterns (line 104) catches only
// ArgumentException. So TraceSelection.Validate throws instead of reporting the problem, the CompiledSelection
// constructor throws NotSupportedException, StepTracer.UpdateSelection (src/Monitor.Tracing/StepTracer.cs, line 118,
// catches only ArgumentException) throws instead of returning the reason, and TracerOptions.Validate / the
// StepTracer constructor throw NotSupportedException instead of ArgumentException.
// Run them now with: dotnet test tests/Monitor.Tracing.Tests -p:DefineConstants=MONITOR_TRACING_BUG_TESTS
using Microsoft.Extensions.Time.Testing;
using Monitor.Contracts;

namespace Monitor.Tracing.Tests;

public sealed class SelectionPatternBugTests
{
    public static TheoryData<string> UnsupportedPatterns => ["(a)\\1", "(?=fc)fc1", "(?<!x)fc1", "(?>fc)1"];

    [Theory]
    [MemberData(nameof(UnsupportedPatterns))]
    public void CompiledSelectionConstructor_ThrowsArgumentExceptionNamingTheField_WhenAPatternIsUnsupported(string pattern)
    {
        TraceSelection selection = Selection(pattern);

        ArgumentException exception = Assert.Throws<ArgumentException>(() => new CompiledSelection(selection));

        Assert.Contains("collections.weights.include[0]", exception.Message, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(UnsupportedPatterns))]
    public async Task StepTracerUpdateSelection_ReturnsAReasonAndKeepsTheOldSelection_WhenAPatternIsUnsupported(string pattern)
    {
        await using var tracer = new StepTracer(new TracerOptions { RunId = "run", TimeProvider = new FakeTimeProvider() }, new TestRecordProducer());
        TraceSelection old = tracer.Selection;

        string? reason = tracer.UpdateSelection(Selection(pattern));

        Assert.NotNull(reason);
        Assert.Contains("collections.weights.include[0]", reason, StringComparison.Ordinal);
        Assert.Same(old, tracer.Selection);
    }

    [Theory]
    [MemberData(nameof(UnsupportedPatterns))]
    public void TracerOptionsValidate_ThrowsArgumentException_WhenAPatternIsUnsupported(string pattern)
    {
        var options = new TracerOptions { RunId = "run", Selection = Selection(pattern) };

        Assert.Throws<ArgumentException>(options.Validate);
    }

    private static TraceSelection Selection(string pattern) =>
        CompiledSelectionTests.Filtered(CollectionNames.Weights, new CollectionFilter { Include = [pattern] });
}
#endif
