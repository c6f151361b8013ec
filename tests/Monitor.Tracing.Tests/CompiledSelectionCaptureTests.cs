using Microsoft.Extensions.Time.Testing;
using Monitor.Contracts;
using Monitor.Contracts.V1;
using static Monitor.Tracing.Tests.TracerTestSupport;

namespace Monitor.Tracing.Tests;

/// <summary>CompiledSelection's ranks (chiefOnly), modes, per-tensor capture spec and at-begin part.</summary>
public sealed class CompiledSelectionCaptureTests
{
    private readonly FakeTimeProvider _time = new();

    [Fact]
    public void IsScheduled_TracesOnlyRankZero_WhenChiefOnly()
    {
        var compiled = new CompiledSelection(new TraceSelection { ChiefOnly = true });

        Assert.True(compiled.IsScheduled(0, Mode.Train, rank: 0, _time));
        Assert.False(compiled.IsScheduled(0, Mode.Train, rank: 1, _time));
        Assert.False(compiled.IsScheduled(1, Mode.Train, rank: 7, _time));
    }

    [Fact]
    public void IsScheduled_TracesEveryRank_WhenNotChiefOnly()
    {
        var compiled = new CompiledSelection(new TraceSelection());

        Assert.All([0, 1, 7], rank => Assert.True(compiled.IsScheduled(3, Mode.Train, rank, _time)));
    }

    [Fact]
    public void IsScheduled_KeepsTheScheduleForTheChief_WhenChiefOnly()
    {
        var compiled = new CompiledSelection(new TraceSelection { ChiefOnly = true, Schedule = new TraceSchedule { EverySteps = 2 } });

        Assert.True(compiled.IsScheduled(4, Mode.Train, rank: 0, _time));
        Assert.False(compiled.IsScheduled(5, Mode.Train, rank: 0, _time));
        Assert.False(compiled.IsScheduled(4, Mode.Train, rank: 1, _time));
    }

    [Theory]
    [InlineData(Mode.Train, false)]
    [InlineData(Mode.Eval, true)]
    [InlineData(Mode.Predict, false)]
    [InlineData(Mode.Unspecified, false)]
    public void IsScheduled_TracesOnlyListedModes_WhenModesAreGiven(Mode mode, bool expected)
    {
        var compiled = new CompiledSelection(new TraceSelection { Modes = ["eval"] });

        Assert.Equal(expected, compiled.IsScheduled(1, mode, rank: 0, _time));
    }

    [Theory]
    [InlineData(Mode.Train)]
    [InlineData(Mode.Eval)]
    [InlineData(Mode.Predict)]
    [InlineData(Mode.Unspecified)]
    public void IsScheduled_TracesEveryMode_WhenModesIsEmpty(Mode mode)
    {
        var compiled = new CompiledSelection(new TraceSelection());

        Assert.True(compiled.IsScheduled(1, mode, rank: 0, _time));
    }

    [Fact]
    public void IsScheduled_MatchesModeNames_InAnyCase()
    {
        var compiled = new CompiledSelection(new TraceSelection { Modes = ["EVAL", "Predict"] });

        Assert.True(compiled.IsScheduled(1, Mode.Eval, rank: 0, _time));
        Assert.True(compiled.IsScheduled(1, Mode.Predict, rank: 0, _time));
        Assert.False(compiled.IsScheduled(1, Mode.Train, rank: 0, _time));
    }

    [Fact]
    public void IsScheduled_DoesNotSpendTheEverySecondsInterval_OnAnUnselectedMode()
    {
        var compiled = new CompiledSelection(new TraceSelection { Modes = ["train"], Schedule = new TraceSchedule { EverySeconds = 10 } });

        Assert.False(compiled.IsScheduled(0, Mode.Eval, rank: 0, _time));
        Assert.True(compiled.IsScheduled(1, Mode.Train, rank: 0, _time));
    }

    [Fact]
    public void Capture_HasHistogramAndNoRaw_ByDefault()
    {
        var compiled = new CompiledSelection(Of((CollectionNames.Weights, new CollectionFilter())));

        Assert.Equal(new CaptureSpec(true, true, 0), What(compiled.Capture("fc1.weight", Weights)));
    }

    [Fact]
    public void Capture_HasNoHistogram_WhenTheCollectionTurnsItOff()
    {
        var compiled = new CompiledSelection(Of((CollectionNames.Weights, new CollectionFilter { Histogram = false })));

        CaptureSpec spec = compiled.Capture("fc1.weight", Weights);

        Assert.True(spec.Traced);
        Assert.False(spec.Histogram);
        Assert.Equal(0, spec.RawLimit);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(1000)]
    [InlineData(TraceSelection.DefaultLimitSize)]
    [InlineData(TraceSelection.MaxLimitSize)]
    public void Capture_HasRawLimitEqualToLimitSize_WhenTheCollectionAsksForRaw(int limitSize)
    {
        var compiled = new CompiledSelection(Of((CollectionNames.Weights, new CollectionFilter { Raw = true })) with { LimitSize = limitSize });

        Assert.Equal(new CaptureSpec(true, true, limitSize), What(compiled.Capture("fc1.weight", Weights)));
    }

    [Fact]
    public void Capture_IsNone_WhenTheTensorIsNotSelected()
    {
        var compiled = new CompiledSelection(Of((CollectionNames.Weights, new CollectionFilter { Raw = true, Include = ["^fc1"] })));

        Assert.Equal(CaptureSpec.None, compiled.Capture("fc2.weight", Weights));
        Assert.Equal(CaptureSpec.None, compiled.Capture("fc1.weight.grad", Gradients));
    }

    [Theory]
    [InlineData(false, false, true, false, true, 0)]
    [InlineData(false, true, true, false, true, 50)]
    [InlineData(false, true, false, false, false, 50)]
    [InlineData(true, false, false, true, true, 50)]
    [InlineData(false, false, false, false, false, 0)]
    public void Capture_TakesTheOrOfTheFlags_WhenTheTensorMatchesTwoListedCollections(
        bool weightsHistogram, bool weightsRaw, bool gradientsHistogram, bool gradientsRaw, bool expectedHistogram, int expectedRaw)
    {
        TraceSelection selection = Of(
            (CollectionNames.Weights, new CollectionFilter { Histogram = weightsHistogram, Raw = weightsRaw }),
            (CollectionNames.Gradients, new CollectionFilter { Histogram = gradientsHistogram, Raw = gradientsRaw }));
        var compiled = new CompiledSelection(selection with { LimitSize = 50 });

        CaptureSpec spec = compiled.Capture("w", CollectionSet.Of(Collection.Weights, Collection.Gradients));

        Assert.Equal(new CaptureSpec(true, expectedHistogram, expectedRaw), What(spec));
    }

    [Fact]
    public void Capture_TakesOnlyTheMatchingCollectionsFlags_WhenAnotherListedCollectionFiltersTheTensorOut()
    {
        var compiled = new CompiledSelection(Of(
            (CollectionNames.Weights, new CollectionFilter { Raw = true, Include = ["^other"] }),
            (CollectionNames.Gradients, new CollectionFilter { Histogram = false })));

        CaptureSpec spec = compiled.Capture("w", CollectionSet.Of(Collection.Weights, Collection.Gradients));

        Assert.Equal(new CaptureSpec(true, false, 0), What(spec));
    }

    [Fact]
    public void Capture_HasHistogramAndNoRaw_ForAnExplicitTensorName()
    {
        var compiled = new CompiledSelection(new TraceSelection { Tensors = ["loss"], LimitSize = 9 });

        Assert.Equal(new CaptureSpec(true, true, 0), What(compiled.Capture("loss", CollectionSet.None)));
        Assert.Equal(new CaptureSpec(true, true, 0), What(compiled.Capture("loss", Losses)));
    }

    [Fact]
    public void Capture_HasRawForAnExplicitTensorName_WhenCompiledWithRawForExplicitNames()
    {
        var compiled = new CompiledSelection(new TraceSelection { Tensors = ["embedding.weight"], LimitSize = 9 }, rawForExplicitNames: true);

        Assert.Equal(new CaptureSpec(true, true, 9), What(compiled.Capture("embedding.weight", Weights)));
        Assert.Equal(CaptureSpec.None, compiled.Capture("other", Weights));
    }

    [Fact]
    public void Capture_KeepsTheHistogramOfAnExplicitName_WhenItsCollectionTurnsTheHistogramOff()
    {
        var compiled = new CompiledSelection(Of((CollectionNames.Losses, new CollectionFilter { Histogram = false, Raw = true })) with
        {
            Tensors = ["loss"],
            LimitSize = 3,
        });

        Assert.Equal(new CaptureSpec(true, true, 3), What(compiled.Capture("loss", Losses)));
        Assert.Equal(new CaptureSpec(true, false, 3), What(compiled.Capture("val_loss", Losses)));
    }

    [Fact]
    public void AtBegin_IsNull_WhenTheSelectionHasNone()
    {
        Assert.Null(new CompiledSelection(TraceSelection.AllEveryStep).AtBegin);
    }

    [Fact]
    public void AtBegin_IsCompiled_WhenTheSelectionHasOne()
    {
        var selection = new TraceSelection
        {
            Collections = Collections((CollectionNames.Losses, new CollectionFilter())),
            LimitSize = 1000,
            AtBegin = new AtBeginCapture
            {
                Collections = Collections((CollectionNames.Weights, new CollectionFilter { Include = ["^fc1"] })),
                Tensors = ["embedding.weight"],
                LimitSize = 4,
            },
        };

        var compiled = new CompiledSelection(selection);

        CompiledSelection? atBegin = compiled.AtBegin;
        Assert.NotNull(atBegin);
        Assert.Null(atBegin.AtBegin);
        // Raw values of every at-begin tensor, capped by the at-begin limit, with the filter's histogram setting.
        Assert.Equal(new CaptureSpec(true, true, 4), What(atBegin.Capture("fc1.weight", Weights)));
        Assert.Equal(new CaptureSpec(true, true, 4), What(atBegin.Capture("embedding.weight", CollectionSet.None)));
        Assert.Equal(CaptureSpec.None, atBegin.Capture("fc2.weight", Weights));
        Assert.Equal(CaptureSpec.None, atBegin.Capture("loss", Losses));
        // The step selection is not changed by its at-begin part.
        Assert.Equal(CaptureSpec.None, compiled.Capture("fc1.weight", Weights));
        Assert.Equal(new CaptureSpec(true, true, 0), What(compiled.Capture("loss", Losses)));
    }

    [Fact]
    public void AtBegin_KeepsTheFiltersHistogramSetting()
    {
        var selection = new TraceSelection
        {
            AtBegin = new AtBeginCapture { Collections = Collections((CollectionNames.Biases, new CollectionFilter { Histogram = false })), LimitSize = 2 },
        };

        CompiledSelection? atBegin = new CompiledSelection(selection).AtBegin;

        Assert.NotNull(atBegin);
        Assert.Equal(new CaptureSpec(true, false, 2), What(atBegin.Capture("fc1.bias", Biases)));
    }

    private static TraceSelection Of(params (string Name, CollectionFilter Filter)[] collections) =>
        new() { Collections = Collections(collections) };

    // What is captured, leaving out the tensor's place in the overhead budget's rotation (StepTracerBudgetTests).
    private static CaptureSpec What(CaptureSpec spec) => spec with { ThinCollection = default, ThinIndex = 0 };
}
