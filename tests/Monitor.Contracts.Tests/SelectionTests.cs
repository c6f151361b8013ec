using System.Text.Json;
using System.Text.RegularExpressions;

namespace Monitor.Contracts.Tests;

public sealed class SelectionTests
{
    [Fact]
    public void Validate_ReturnsNoProblems_WhenSelectionIsTheDefault()
    {
        Assert.Empty(TraceSelection.AllEveryStep.Validate());
        Assert.Empty(new TraceSelection().Validate());
    }

    [Fact]
    public void Validate_ReturnsNoProblems_WhenEveryFieldIsSetAndValid()
    {
        Assert.Empty(FullSelection().Validate());
    }

    [Fact]
    public void Validate_AcceptsCollectionNames_InAnyCase()
    {
        var selection = new TraceSelection { Collections = new Dictionary<string, CollectionFilter> { ["Gradients"] = new(), ["LOSSES"] = new() } };

        Assert.Empty(selection.Validate());
    }

    [Fact]
    public void Validate_NamesTheCollection_WhenCollectionIsUnknown()
    {
        var selection = new TraceSelection { Collections = new Dictionary<string, CollectionFilter> { ["gradient"] = new() } };

        string problem = Assert.Single(selection.Validate());
        Assert.StartsWith("collections.gradient: unknown collection", problem, StringComparison.Ordinal);
        Assert.Contains("gradients", problem, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("(")]
    [InlineData("[a-")]
    [InlineData("a{2,1}")]
    [InlineData("*x")]
    public void Validate_NamesThePattern_WhenIncludeIsNotARegularExpression(string pattern)
    {
        var selection = WithFilter(new CollectionFilter { Include = ["^fc", pattern] });

        string problem = Assert.Single(selection.Validate());
        Assert.StartsWith($"collections.weights.include[1]: invalid regular expression '{pattern}'", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_NamesThePattern_WhenExcludeIsNotARegularExpression()
    {
        var selection = WithFilter(new CollectionFilter { Exclude = ["("] });

        string problem = Assert.Single(selection.Validate());
        Assert.StartsWith("collections.weights.exclude[0]: invalid regular expression '('", problem, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-3)]
    public void Validate_NamesEverySteps_WhenItIsNotPositive(int everySteps)
    {
        var selection = new TraceSelection { Schedule = new TraceSchedule { EverySteps = everySteps } };

        Assert.Equal([$"schedule.everySteps: {everySteps} must be at least 1"], selection.Validate());
    }

    [Theory]
    [InlineData(-1.0)]
    [InlineData(0.0)]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    [InlineData(double.NegativeInfinity)]
    public void Validate_NamesEverySeconds_WhenItIsNotAPositiveNumber(double everySeconds)
    {
        var selection = new TraceSelection { Schedule = new TraceSchedule { EverySeconds = everySeconds } };

        string problem = Assert.Single(selection.Validate());
        Assert.StartsWith("schedule.everySeconds:", problem, StringComparison.Ordinal);
        Assert.EndsWith("must be a positive number", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_NamesStepRange_WhenEndIsBeforeStart()
    {
        var selection = new TraceSelection { Schedule = new TraceSchedule { StepRange = new StepRange(5, 4) } };

        Assert.Equal(["schedule.stepRange: [5, 4] is empty (end before start)"], selection.Validate());
    }

    [Fact]
    public void Validate_NamesStepRange_WhenStartIsNegative()
    {
        var selection = new TraceSelection { Schedule = new TraceSchedule { StepRange = new StepRange(-1, 10) } };

        Assert.Equal(["schedule.stepRange: start -1 is negative"], selection.Validate());
    }

    [Fact]
    public void Validate_AcceptsStepRange_WhenItHoldsOneStep()
    {
        var selection = new TraceSelection { Schedule = new TraceSchedule { StepRange = new StepRange(0, 0) } };

        Assert.Empty(selection.Validate());
    }

    [Theory]
    [InlineData("")]
    [InlineData("  ")]
    public void Validate_NamesTheTensorIndex_WhenTensorNameIsEmpty(string name)
    {
        var selection = new TraceSelection { Tensors = ["loss", name] };

        Assert.Equal(["tensors[1]: empty tensor name"], selection.Validate());
    }

    [Fact]
    public void Validate_NamesVersion_WhenItIsNegative()
    {
        var selection = new TraceSelection { Version = -1 };

        Assert.Equal(["version: -1 is negative"], selection.Validate());
    }

    [Fact]
    public void Validate_ListsEveryProblem_WhenSeveralFieldsAreInvalid()
    {
        var selection = new TraceSelection
        {
            Version = -2,
            Collections = new Dictionary<string, CollectionFilter> { ["nope"] = new() { Include = ["("] } },
            Tensors = [""],
            Schedule = new TraceSchedule { EverySteps = 0, EverySeconds = -1, StepRange = new StepRange(-5, -6) },
        };

        IReadOnlyList<string> problems = selection.Validate();

        string[] fields = ["version:", "collections.nope:", "collections.nope.include[0]:", "tensors[0]:", "schedule.everySteps:", "schedule.everySeconds:", "schedule.stepRange: start", "schedule.stepRange: ["];
        Assert.Equal(fields.Length, problems.Count);
        foreach (string field in fields)
        {
            Assert.Contains(problems, p => p.StartsWith(field, StringComparison.Ordinal));
        }
    }

    [Fact]
    public void EnsureValid_ReturnsTheSameSelection_WhenValid()
    {
        TraceSelection selection = FullSelection();

        Assert.Same(selection, selection.EnsureValid());
    }

    [Fact]
    public void EnsureValid_ThrowsListingEveryProblem_WhenInvalid()
    {
        var selection = new TraceSelection { Version = -1, Tensors = [""] };

        var ex = Assert.Throws<SelectionValidationException>(() => selection.EnsureValid());
        Assert.Contains("version: -1 is negative", ex.Message, StringComparison.Ordinal);
        Assert.Contains("tensors[0]: empty tensor name", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CompilePattern_ReturnsFalseWithoutBacktracking_WhenPatternIsCatastrophicForBacktrackingEngines()
    {
        Regex regex = TraceSelection.CompilePattern("(a+)+$");
        string input = new string('a', 100_000) + "!";

        Assert.True(regex.Options.HasFlag(RegexOptions.NonBacktracking));
        Assert.DoesNotMatch(regex, input);
        Assert.Matches(regex, "aaa");
    }

    [Fact]
    public void CompilePattern_MatchesAnywhereInTheName_WhenPatternIsNotAnchored()
    {
        Regex regex = TraceSelection.CompilePattern(@"\.grad$");

        Assert.Matches(regex, "fc1.weight.grad");
        Assert.DoesNotMatch(regex, "fc1.weight");
        Assert.Matches(TraceSelection.CompilePattern("fc1"), "model.fc1.bias");
    }

    [Fact]
    public void CompilePattern_ThrowsArgumentException_WhenPatternIsInvalid()
    {
        Assert.ThrowsAny<ArgumentException>(() => TraceSelection.CompilePattern("("));
    }

    [Fact]
    public void Serialize_UsesTheDocumentedPropertyNames()
    {
        string json = JsonSerializer.Serialize(FullSelection());

        using JsonDocument document = JsonDocument.Parse(json);
        JsonElement root = document.RootElement;
        Assert.Equal(7, root.GetProperty("version").GetInt64());
        Assert.Equal("loss", root.GetProperty("tensors")[0].GetString());
        JsonElement gradients = root.GetProperty("collections").GetProperty("gradients");
        Assert.Equal(@"\.grad$", gradients.GetProperty("include")[0].GetString());
        Assert.Equal("^embed", gradients.GetProperty("exclude")[0].GetString());
        JsonElement schedule = root.GetProperty("schedule");
        Assert.Equal(10, schedule.GetProperty("everySteps").GetInt32());
        Assert.Equal(2.5, schedule.GetProperty("everySeconds").GetDouble());
        Assert.Equal(100, schedule.GetProperty("stepRange").GetProperty("start").GetInt64());
        Assert.Equal(200, schedule.GetProperty("stepRange").GetProperty("end").GetInt64());
    }

    [Fact]
    public void Deserialize_RoundTripsEveryField_WhenWrittenBySerialize()
    {
        TraceSelection original = FullSelection();

        TraceSelection? back = JsonSerializer.Deserialize<TraceSelection>(JsonSerializer.Serialize(original));

        Assert.NotNull(back);
        AssertSameContent(original, back);
    }

    [Fact]
    public void Deserialize_ReadsHandWrittenJson_WithTheDocumentedNames()
    {
        const string json = """
            {
              "version": 7,
              "collections": {
                "gradients": { "include": ["\\.grad$"], "exclude": ["^embed"] },
                "losses": {}
              },
              "tensors": ["loss"],
              "schedule": { "everySteps": 10, "everySeconds": 2.5, "stepRange": { "start": 100, "end": 200 } }
            }
            """;

        TraceSelection? selection = JsonSerializer.Deserialize<TraceSelection>(json);

        Assert.NotNull(selection);
        AssertSameContent(FullSelection(), selection);
        Assert.Empty(selection.Validate());
    }

    [Fact]
    public void Deserialize_UsesDefaults_WhenFieldsAreMissing()
    {
        TraceSelection? selection = JsonSerializer.Deserialize<TraceSelection>("{}");

        Assert.NotNull(selection);
        Assert.Equal(0, selection.Version);
        Assert.Empty(selection.Collections);
        Assert.Empty(selection.Tensors);
        Assert.Null(selection.Schedule.EverySteps);
        Assert.Null(selection.Schedule.EverySeconds);
        Assert.Null(selection.Schedule.StepRange);
    }

    private static TraceSelection WithFilter(CollectionFilter filter) =>
        new() { Collections = new Dictionary<string, CollectionFilter> { [CollectionNames.Weights] = filter } };

    private static TraceSelection FullSelection() => new()
    {
        Version = 7,
        Collections = new Dictionary<string, CollectionFilter>
        {
            [CollectionNames.Gradients] = new() { Include = [@"\.grad$"], Exclude = ["^embed"] },
            [CollectionNames.Losses] = new(),
        },
        Tensors = ["loss"],
        Schedule = new TraceSchedule { EverySteps = 10, EverySeconds = 2.5, StepRange = new StepRange(100, 200) },
    };

    private static void AssertSameContent(TraceSelection expected, TraceSelection actual)
    {
        Assert.Equal(expected.Version, actual.Version);
        Assert.Equal(expected.Tensors, actual.Tensors);
        Assert.Equal(expected.Schedule, actual.Schedule);
        Assert.Equal(expected.Collections.Keys.Order(StringComparer.Ordinal), actual.Collections.Keys.Order(StringComparer.Ordinal));
        foreach ((string name, CollectionFilter filter) in expected.Collections)
        {
            Assert.Equal(filter.Include, actual.Collections[name].Include);
            Assert.Equal(filter.Exclude, actual.Collections[name].Exclude);
        }
    }
}
