using Microsoft.Extensions.Time.Testing;
using Monitor.Contracts;

namespace Monitor.Tracing.Tests;

public sealed class SelectionPatternTests
{
    public static TheoryData<string> UnsupportedPatterns => ["(a)\\1", "(?=fc)fc1", "(?<!x)fc1", "(?>fc)1"];

    [Theory]
    [MemberData(nameof(UnsupportedPatterns))]
    public void CompiledSelectionConstructor_ThrowsArgumentExceptionNamingTheField_WhenAPatternIsUnsupported(string pattern)
    {
        TraceSelection selection = Selection(pattern);

        ArgumentException exception = Assert.Throws<SelectionValidationException>(() => new CompiledSelection(selection));

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

        Assert.ThrowsAny<ArgumentException>(options.Validate);
    }

    private static TraceSelection Selection(string pattern) =>
        CompiledSelectionTests.Filtered(CollectionNames.Weights, new CollectionFilter { Include = [pattern] });
}
