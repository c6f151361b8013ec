using Monitor.Contracts;

namespace Monitor.Tracing.Tests;

/// <summary>A JSON null where a list belongs is a validation problem naming the field; no worker ever meets it.</summary>
public sealed class SelectionNullListsTests
{
    [Theory]
    [InlineData("""{ "tensors": null }""")]
    [InlineData("""{ "modes": null }""")]
    [InlineData("""{ "collections": { "weights": { "include": null } } }""")]
    [InlineData("""{ "collections": { "weights": { "exclude": null } } }""")]
    [InlineData("""{ "atBegin": { "tensors": ["x"], "collections": null } }""")]
    [InlineData("""{ "atBegin": { "collections": { "weights": {} }, "tensors": null } }""")]
    public void CompiledSelection_CompilesEverySelectionThatParses_WhenAListIsJsonNull(string json)
    {
        TraceSelection parsed;
        try
        {
            parsed = SelectionJson.Parse(json);
        }
        catch (SelectionValidationException)
        {
            // Refusing the null at validation is a correct fix as well.
            return;
        }

        Exception? exception = Record.Exception(() => new CompiledSelection(parsed));

        Assert.Null(exception);
    }

    [Fact]
    public async Task UpdateSelection_AppliesOrNamesTheField_WhenAtBeginCollectionsIsNull()
    {
        await using var tracer = new StepTracer(TracerTestSupport.Options(TraceSelection.AllEveryStep), new TestRecordProducer());
        var selection = new TraceSelection { Version = 2, AtBegin = new AtBeginCapture { Collections = null!, Tensors = ["x"] } };

        string? reason = tracer.UpdateSelection(selection);

        Assert.True(reason is null || reason.Contains("atBegin.collections", StringComparison.Ordinal), reason);
    }
}
