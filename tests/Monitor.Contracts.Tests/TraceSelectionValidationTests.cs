using System.Text.Json;

namespace Monitor.Contracts.Tests;

/// <summary>Validation of the selection fields added with the control plane: limitSize, modes, ranks, atBegin, nulls.</summary>
public sealed class TraceSelectionValidationTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(int.MinValue)]
    [InlineData(TraceSelection.MaxLimitSize + 1)]
    [InlineData(int.MaxValue)]
    public void Validate_NamesLimitSize_WhenItIsOutsideOneToTheMaximum(int limitSize)
    {
        var selection = new TraceSelection { LimitSize = limitSize };

        string problem = Assert.Single(selection.Validate());
        Assert.StartsWith($"limitSize: {limitSize} is outside 1..250000", problem, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(TraceSelection.DefaultLimitSize)]
    [InlineData(TraceSelection.MaxLimitSize)]
    public void Validate_AcceptsLimitSize_WhenItIsWithinBounds(int limitSize)
    {
        Assert.Empty(new TraceSelection { LimitSize = limitSize }.Validate());
    }

    [Fact]
    public void LimitSize_DefaultsToTfTracersLimit()
    {
        Assert.Equal(100_000, new TraceSelection().LimitSize);
        Assert.Equal(100_000, new AtBeginCapture().LimitSize);
        Assert.Equal(250_000, TraceSelection.MaxLimitSize);
    }

    [Fact]
    public void Validate_NamesTheModeIndex_WhenAModeIsUnknown()
    {
        var selection = new TraceSelection { Modes = ["train", "training", "eval"] };

        string problem = Assert.Single(selection.Validate());
        Assert.StartsWith("modes[1]: unknown mode 'training'", problem, StringComparison.Ordinal);
        Assert.Contains("train, eval, predict", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_AcceptsModes_InAnyCase()
    {
        Assert.Empty(new TraceSelection { Modes = ["train", "EVAL", "Predict"] }.Validate());
    }

    [Fact]
    public void Validate_NamesTheRankIndex_WhenARankIsNegative()
    {
        var selection = new TraceSelection { Ranks = [0, 3, -1] };

        Assert.Equal(["ranks[2]: -1 is negative"], selection.Validate());
    }

    [Fact]
    public void Validate_AcceptsRanks_WhenNoneIsNegative()
    {
        Assert.Empty(new TraceSelection { Ranks = [0, 1, 1023] }.Validate());
    }

    [Fact]
    public void Validate_NamesAtBegin_WhenItHasNoCollectionAndNoTensor()
    {
        var selection = new TraceSelection { AtBegin = new AtBeginCapture() };

        Assert.Equal(["atBegin: names no collection and no tensor"], selection.Validate());
    }

    [Fact]
    public void Validate_AcceptsAtBegin_WhenItNamesOnlyTensorsOrOnlyCollections()
    {
        Assert.Empty(new TraceSelection { AtBegin = new AtBeginCapture { Tensors = ["embedding.weight"] } }.Validate());
        Assert.Empty(new TraceSelection { AtBegin = AtBeginOf(CollectionNames.Weights, new CollectionFilter()) }.Validate());
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-5)]
    [InlineData(TraceSelection.MaxLimitSize + 1)]
    public void Validate_NamesAtBeginLimitSize_WhenItIsOutsideOneToTheMaximum(int limitSize)
    {
        var selection = new TraceSelection { AtBegin = new AtBeginCapture { Tensors = ["x"], LimitSize = limitSize } };

        string problem = Assert.Single(selection.Validate());
        Assert.StartsWith($"atBegin.limitSize: {limitSize} is outside 1..250000", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_NamesTheAtBeginCollection_WhenItIsUnknown()
    {
        var selection = new TraceSelection { AtBegin = AtBeginOf("weight", new CollectionFilter()) };

        string problem = Assert.Single(selection.Validate());
        Assert.StartsWith("atBegin.collections.weight: unknown collection 'weight'", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_NamesTheAtBeginPattern_WhenItIsNotARegularExpression()
    {
        var selection = new TraceSelection
        {
            AtBegin = AtBeginOf(CollectionNames.Weights, new CollectionFilter { Include = ["^fc"], Exclude = ["ok", "(a)\\1"] }),
        };

        string problem = Assert.Single(selection.Validate());
        Assert.StartsWith("atBegin.collections.weights.exclude[1]: invalid regular expression '(a)\\1'", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_NamesTheAtBeginTensorIndex_WhenATensorNameIsEmpty()
    {
        var selection = new TraceSelection { AtBegin = new AtBeginCapture { Tensors = ["x", " "] } };

        Assert.Equal(["atBegin.tensors[1]: empty tensor name"], selection.Validate());
    }

    [Fact]
    public void Validate_NamesTheAtBeginCollection_WhenItsFilterIsNull()
    {
        var selection = new TraceSelection { AtBegin = AtBeginOf(CollectionNames.Weights, null!) };

        string problem = Assert.Single(selection.Validate());
        Assert.StartsWith("atBegin.collections.weights: must be an object", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_ReportsNullCollections_InsteadOfThrowing()
    {
        TraceSelection selection = Deserialize("""{ "collections": null }""");

        Assert.Null(selection.Collections);
        Assert.Equal(["collections: must be an object (use {} for none)"], selection.Validate());
    }

    [Fact]
    public void Validate_ReportsNullSchedule_InsteadOfThrowing()
    {
        TraceSelection selection = Deserialize("""{ "schedule": null }""");

        Assert.Null(selection.Schedule);
        Assert.Equal(["schedule: must be an object (use {} for every step)"], selection.Validate());
    }

    [Fact]
    public void Validate_ReportsANullCollectionFilter_InsteadOfThrowing()
    {
        TraceSelection selection = Deserialize("""{ "collections": { "weights": null } }""");

        string problem = Assert.Single(selection.Validate());
        Assert.StartsWith("collections.weights: must be an object", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_ListsEveryNewFieldsProblem_WhenSeveralAreInvalid()
    {
        var selection = new TraceSelection
        {
            LimitSize = 0,
            Modes = ["bogus"],
            Ranks = [-2],
            AtBegin = new AtBeginCapture
            {
                Collections = new Dictionary<string, CollectionFilter> { ["nope"] = new() { Include = ["["] } },
                LimitSize = TraceSelection.MaxLimitSize + 1,
            },
        };

        IReadOnlyList<string> problems = selection.Validate();

        string[] fields = ["limitSize:", "modes[0]:", "ranks[0]:", "atBegin.collections.nope:", "atBegin.collections.nope.include[0]:", "atBegin.limitSize:"];
        Assert.Equal(fields.Length, problems.Count);
        foreach (string field in fields)
        {
            Assert.Contains(problems, p => p.StartsWith(field, StringComparison.Ordinal));
        }
    }

    [Fact]
    public void EnsureValid_ThrowsSelectionValidationExceptionNamingEachField_WhenNewFieldsAreInvalid()
    {
        var selection = new TraceSelection
        {
            LimitSize = TraceSelection.MaxLimitSize + 1,
            Modes = ["Train", "fit"],
            Ranks = [-1],
            AtBegin = AtBeginOf("nonsense", new CollectionFilter()),
        };

        var exception = Assert.Throws<SelectionValidationException>(() => selection.EnsureValid());

        Assert.Equal(4, exception.Problems.Count);
        Assert.StartsWith("limitSize:", exception.Problems[0], StringComparison.Ordinal);
        Assert.StartsWith("modes[1]:", exception.Problems[1], StringComparison.Ordinal);
        Assert.StartsWith("ranks[0]:", exception.Problems[2], StringComparison.Ordinal);
        Assert.StartsWith("atBegin.collections.nonsense:", exception.Problems[3], StringComparison.Ordinal);
        Assert.All(exception.Problems, p => Assert.Contains(p, exception.Message, StringComparison.Ordinal));
        Assert.IsAssignableFrom<ArgumentException>(exception);
    }

    [Fact]
    public void EnsureValid_ThrowsNamingCollections_WhenCollectionsIsNull()
    {
        TraceSelection selection = Deserialize("""{ "collections": null, "schedule": null }""");

        var exception = Assert.Throws<SelectionValidationException>(() => selection.EnsureValid());

        Assert.Equal(2, exception.Problems.Count);
        Assert.StartsWith("collections:", exception.Problems[0], StringComparison.Ordinal);
        Assert.StartsWith("schedule:", exception.Problems[1], StringComparison.Ordinal);
    }

    [Fact]
    public void AsSelection_TurnsRawOnForEveryCollection_AndKeepsTensorsAndLimit()
    {
        var atBegin = new AtBeginCapture
        {
            Collections = new Dictionary<string, CollectionFilter>
            {
                [CollectionNames.Weights] = new() { Include = ["^fc1"], Histogram = false },
                [CollectionNames.Biases] = new() { Raw = true },
            },
            Tensors = ["embedding.weight"],
            LimitSize = 12,
        };

        TraceSelection selection = atBegin.AsSelection();

        Assert.All(selection.Collections.Values, filter => Assert.True(filter.Raw));
        Assert.Equal(["^fc1"], selection.Collections[CollectionNames.Weights].Include);
        Assert.False(selection.Collections[CollectionNames.Weights].Histogram);
        Assert.Equal(["embedding.weight"], selection.Tensors);
        Assert.Equal(12, selection.LimitSize);
        Assert.Null(selection.AtBegin);
        Assert.Empty(selection.Validate());
    }

    private static AtBeginCapture AtBeginOf(string collection, CollectionFilter filter) =>
        new() { Collections = new Dictionary<string, CollectionFilter> { [collection] = filter } };

    private static TraceSelection Deserialize(string json) =>
        JsonSerializer.Deserialize<TraceSelection>(json, SelectionJson.Options) ?? throw new InvalidOperationException("JSON null");
}
