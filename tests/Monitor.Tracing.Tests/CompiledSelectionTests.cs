using Microsoft.Extensions.Time.Testing;
using Monitor.Contracts;
using Monitor.Contracts.V1;

namespace Monitor.Tracing.Tests;

public sealed class CompiledSelectionTests
{
    private static readonly CollectionSet Weights = CollectionSet.Of(Collection.Weights);
    private static readonly CollectionSet Gradients = CollectionSet.Of(Collection.Gradients);

    [Theory]
    [InlineData("fc1.weight")]
    [InlineData("encoder.layers.11.attention.weight")]
    [InlineData("x")]
    public void Selects_ReturnsTrueForEveryTensorOfTheCollection_WhenItHasNoInclude(string name)
    {
        TraceSelection selection = Filtered(CollectionNames.Weights, new CollectionFilter());

        Assert.True(Selects(selection, name, Weights));
    }

    [Fact]
    public void Selects_ReturnsFalse_WhenNoneOfTheTensorsCollectionsIsListed()
    {
        TraceSelection selection = Filtered(CollectionNames.Weights, new CollectionFilter());

        Assert.False(Selects(selection, "fc1.weight.grad", Gradients));
        Assert.False(Selects(selection, "fc1.weight", CollectionSet.None));
    }

    [Theory]
    [InlineData("fc", "model.fc1.weight", true)]
    [InlineData("weight", "fc1.weight.grad", true)]
    [InlineData("^fc", "model.fc1.weight", false)]
    [InlineData("^model\\.fc", "model.fc1.weight", true)]
    [InlineData("weight$", "fc1.weight.grad", false)]
    [InlineData("weight$", "fc1.weight", true)]
    [InlineData("^fc1\\.weight$", "fc1.weight", true)]
    [InlineData("^fc1\\.weight$", "fc1xweight", false)]
    [InlineData("FC1", "fc1.weight", false)]
    public void Selects_SearchesIncludePatternsAnywhere_UnlessAnchored(string include, string name, bool expected)
    {
        TraceSelection selection = Filtered(CollectionNames.Weights, new CollectionFilter { Include = [include] });

        Assert.Equal(expected, Selects(selection, name, Weights));
    }

    [Theory]
    [InlineData("fc1.weight", true)]
    [InlineData("fc2.weight", true)]
    [InlineData("conv.weight", false)]
    public void Selects_ReturnsTrue_WhenAnyIncludePatternMatches(string name, bool expected)
    {
        TraceSelection selection = Filtered(CollectionNames.Weights, new CollectionFilter { Include = ["^fc1\\.", "^fc2\\."] });

        Assert.Equal(expected, Selects(selection, name, Weights));
    }

    [Theory]
    [InlineData("fc1.weight", true)]
    [InlineData("fc1.norm.weight", false)]
    [InlineData("fc2.weight", false)]
    public void Selects_ReturnsFalse_WhenAnExcludePatternMatchesAnIncludedTensor(string name, bool expected)
    {
        TraceSelection selection = Filtered(CollectionNames.Weights, new CollectionFilter { Include = ["^fc1\\."], Exclude = ["norm"] });

        Assert.Equal(expected, Selects(selection, name, Weights));
    }

    [Theory]
    [InlineData("encoder.weight", true)]
    [InlineData("encoder.norm.weight", false)]
    [InlineData("decoder.embedding", false)]
    public void Selects_AppliesExcludeToTheWholeCollection_WhenItHasNoInclude(string name, bool expected)
    {
        TraceSelection selection = Filtered(CollectionNames.Weights, new CollectionFilter { Exclude = ["norm", "embedding$"] });

        Assert.Equal(expected, Selects(selection, name, Weights));
    }

    [Fact]
    public void Selects_ReturnsTrue_ForAnExplicitTensorNameWhateverItsCollections()
    {
        var selection = new TraceSelection
        {
            Collections = new Dictionary<string, CollectionFilter>
            {
                [CollectionNames.Weights] = new() { Exclude = ["fc1"] },
            },
            Tensors = ["fc1.weight", "loss"],
        };

        Assert.True(Selects(selection, "fc1.weight", Weights));
        Assert.True(Selects(selection, "loss", CollectionSet.Of(Collection.Losses)));
        Assert.True(Selects(selection, "loss", CollectionSet.None));
        Assert.False(Selects(selection, "fc1.bias", Weights));
    }

    [Fact]
    public void Selects_MatchesExplicitTensorNamesExactly()
    {
        var selection = new TraceSelection { Tensors = ["loss"] };

        Assert.False(Selects(selection, "loss2", CollectionSet.None));
        Assert.False(Selects(selection, "Loss", CollectionSet.None));
        Assert.False(Selects(selection, "val.loss", CollectionSet.None));
    }

    [Fact]
    public void Selects_ReturnsTrue_WhenATensorInTwoCollectionsIsSelectedByEitherOne()
    {
        var selection = new TraceSelection
        {
            Collections = new Dictionary<string, CollectionFilter>
            {
                [CollectionNames.Weights] = new() { Exclude = ["fc1"] },
                [CollectionNames.Gradients] = new() { Include = ["fc1"] },
            },
        };
        CollectionSet both = CollectionSet.Of(Collection.Weights, Collection.Gradients);

        Assert.True(Selects(selection, "fc1.shared", both));
        Assert.True(Selects(selection, "fc2.shared", both));
        Assert.False(Selects(selection, "fc1.shared", Weights));
        Assert.True(Selects(selection, "fc1.shared", Gradients));
        Assert.False(Selects(selection, "fc2.shared", Gradients));
    }

    [Theory]
    [InlineData("Weights")]
    [InlineData("WEIGHTS")]
    public void Selects_AcceptsCollectionNamesInAnyCase(string collectionName)
    {
        TraceSelection selection = Filtered(collectionName, new CollectionFilter());

        Assert.True(Selects(selection, "fc1.weight", Weights));
    }

    [Fact]
    public void Selects_ReturnsTheSameDecision_WhenAskedAgain()
    {
        var compiled = new CompiledSelection(Filtered(CollectionNames.Weights, new CollectionFilter { Include = ["^fc"] }));

        for (int i = 0; i < 3; i++)
        {
            Assert.True(compiled.Selects("fc1.weight", Weights));
            Assert.False(compiled.Selects("conv.weight", Weights));
        }
    }

    [Theory]
    [InlineData(0L, true)]
    [InlineData(1L, false)]
    [InlineData(2L, false)]
    [InlineData(3L, true)]
    [InlineData(150L, true)]
    [InlineData(151L, false)]
    [InlineData(300L, true)]
    [InlineData(301L, false)]
    public void IsScheduled_FollowsEverySteps_WhenEveryStepsEverySecondsAndStepRangeAreAllSet(long step, bool expected)
    {
        var time = new FakeTimeProvider();
        var compiled = new CompiledSelection(new TraceSelection
        {
            Schedule = new TraceSchedule { EverySteps = 3, EverySeconds = 1000, StepRange = new StepRange(100, 200) },
        });

        // Traced once already at this instant: an every-seconds rule would now refuse, and step 0 is outside the range.
        Assert.True(compiled.IsScheduled(0, Mode.Train, rank: 0, time));
        Assert.Equal(expected, compiled.IsScheduled(step, Mode.Train, rank: 0, time));
    }

    [Fact]
    public void IsScheduled_FollowsEverySeconds_WhenEverySecondsAndStepRangeAreSet()
    {
        var time = new FakeTimeProvider();
        var compiled = new CompiledSelection(new TraceSelection
        {
            Schedule = new TraceSchedule { EverySeconds = 10, StepRange = new StepRange(5, 6) },
        });

        Assert.True(compiled.IsScheduled(0, Mode.Train, rank: 0, time));
        Assert.False(compiled.IsScheduled(5, Mode.Train, rank: 0, time));
        time.Advance(TimeSpan.FromSeconds(10));
        Assert.True(compiled.IsScheduled(100, Mode.Train, rank: 0, time));
    }

    [Fact]
    public void IsScheduled_TracesTheFirstStepAndThenOnlyOncePerInterval_WhenEverySecondsIsSet()
    {
        var time = new FakeTimeProvider();
        var compiled = new CompiledSelection(new TraceSelection { Schedule = new TraceSchedule { EverySeconds = 2.5 } });

        Assert.True(compiled.IsScheduled(17, Mode.Train, rank: 0, time));
        Assert.False(compiled.IsScheduled(18, Mode.Train, rank: 0, time));
        time.Advance(TimeSpan.FromSeconds(2.4));
        Assert.False(compiled.IsScheduled(19, Mode.Train, rank: 0, time));
        time.Advance(TimeSpan.FromSeconds(0.1));
        Assert.True(compiled.IsScheduled(20, Mode.Train, rank: 0, time));
        Assert.False(compiled.IsScheduled(21, Mode.Train, rank: 0, time));

        // The interval counts from the last traced step, not from a fixed grid.
        time.Advance(TimeSpan.FromSeconds(7));
        Assert.True(compiled.IsScheduled(22, Mode.Train, rank: 0, time));
        time.Advance(TimeSpan.FromSeconds(2.4));
        Assert.False(compiled.IsScheduled(23, Mode.Train, rank: 0, time));
        time.Advance(TimeSpan.FromSeconds(0.1));
        Assert.True(compiled.IsScheduled(24, Mode.Train, rank: 0, time));
    }

    [Theory]
    [InlineData(0L, false)]
    [InlineData(9L, false)]
    [InlineData(10L, true)]
    [InlineData(15L, true)]
    [InlineData(20L, true)]
    [InlineData(21L, false)]
    public void IsScheduled_IncludesBothBounds_WhenStepRangeIsSet(long step, bool expected)
    {
        var compiled = new CompiledSelection(new TraceSelection { Schedule = new TraceSchedule { StepRange = new StepRange(10, 20) } });

        Assert.Equal(expected, compiled.IsScheduled(step, Mode.Train, rank: 0, new FakeTimeProvider()));
    }

    [Fact]
    public void IsScheduled_TracesASingleStep_WhenStepRangeStartsAndEndsOnIt()
    {
        var compiled = new CompiledSelection(new TraceSelection { Schedule = new TraceSchedule { StepRange = new StepRange(7, 7) } });
        var time = new FakeTimeProvider();

        Assert.Equal([7L], Enumerable.Range(0, 20).Select(i => (long)i).Where(step => compiled.IsScheduled(step, Mode.Train, rank: 0, time)));
    }

    [Fact]
    public void IsScheduled_TracesEveryStep_WhenTheScheduleIsEmpty()
    {
        var compiled = new CompiledSelection(new TraceSelection());
        var time = new FakeTimeProvider();

        Assert.All(Enumerable.Range(0, 10), step => Assert.True(compiled.IsScheduled(step, Mode.Train, rank: 0, time)));
    }

    [Fact]
    public void Version_IsTheSelectionsVersion()
    {
        var selection = new TraceSelection { Version = 42 };

        var compiled = new CompiledSelection(selection);

        Assert.Equal(42, compiled.Version);
        Assert.Same(selection, compiled.Source);
    }

    public static TheoryData<string, string> InvalidSelections => new()
    {
        { "unknown-collection", "collections.nonsense" },
        { "bad-include-pattern", "collections.weights.include[1]" },
        { "bad-exclude-pattern", "collections.weights.exclude[0]" },
        { "every-steps-zero", "schedule.everySteps" },
        { "every-steps-negative", "schedule.everySteps" },
        { "every-seconds-zero", "schedule.everySeconds" },
        { "every-seconds-nan", "schedule.everySeconds" },
        { "every-seconds-infinite", "schedule.everySeconds" },
        { "step-range-reversed", "schedule.stepRange" },
        { "step-range-negative", "schedule.stepRange" },
        { "empty-tensor-name", "tensors[1]" },
        { "negative-version", "version" },
    };

    [Theory]
    [MemberData(nameof(InvalidSelections))]
    public void Constructor_ThrowsArgumentExceptionNamingTheField_WhenTheSelectionIsInvalid(string invalid, string field)
    {
        TraceSelection selection = Invalid(invalid);

        ArgumentException exception = Assert.Throws<SelectionValidationException>(() => new CompiledSelection(selection));

        Assert.Contains(field, exception.Message, StringComparison.Ordinal);
    }

    internal static TraceSelection Invalid(string invalid) => invalid switch
    {
        "unknown-collection" => Filtered("nonsense", new CollectionFilter()),
        "bad-include-pattern" => Filtered(CollectionNames.Weights, new CollectionFilter { Include = ["ok", "("] }),
        "bad-exclude-pattern" => Filtered(CollectionNames.Weights, new CollectionFilter { Exclude = ["[a-"] }),
        "every-steps-zero" => new TraceSelection { Schedule = new TraceSchedule { EverySteps = 0 } },
        "every-steps-negative" => new TraceSelection { Schedule = new TraceSchedule { EverySteps = -2 } },
        "every-seconds-zero" => new TraceSelection { Schedule = new TraceSchedule { EverySeconds = 0 } },
        "every-seconds-nan" => new TraceSelection { Schedule = new TraceSchedule { EverySeconds = double.NaN } },
        "every-seconds-infinite" => new TraceSelection { Schedule = new TraceSchedule { EverySeconds = double.PositiveInfinity } },
        "step-range-reversed" => new TraceSelection { Schedule = new TraceSchedule { StepRange = new StepRange(10, 9) } },
        "step-range-negative" => new TraceSelection { Schedule = new TraceSchedule { StepRange = new StepRange(-1, 9) } },
        "empty-tensor-name" => new TraceSelection { Tensors = ["loss", " "] },
        "negative-version" => new TraceSelection { Version = -1 },
        _ => throw new ArgumentOutOfRangeException(nameof(invalid), invalid, "unknown case"),
    };

    internal static TraceSelection Filtered(string collection, CollectionFilter filter) => new()
    {
        Collections = new Dictionary<string, CollectionFilter> { [collection] = filter },
    };

    // A fresh compiled selection per question: decisions are cached per name.
    private static bool Selects(TraceSelection selection, string name, CollectionSet collections) =>
        new CompiledSelection(selection).Selects(name, collections);
}
