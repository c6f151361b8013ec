using Monitor.Archive;
using Monitor.Contracts.V1;

namespace Monitor.Trials.Tests;

public sealed class TrialTests
{
    [Fact]
    public async Task ArchiveRecords_RebuildEveryArchivedRecord_FieldForField()
    {
        await using var archive = new TrialArchive();
        StepRecord[] written = [.. TrialArchive.Records("r", 0, 30), .. TrialArchive.Records("r", 1, 30, worldSize: 2)];
        await archive.WriteAsync(written);

        StepRecord[] read = [.. ArchiveRecords.Read(archive.Directory, cancellationToken: TestContext.Current.CancellationToken)];

        Assert.Equal(written.OrderBy(r => r.Rank).ThenBy(r => r.Sequence), read);
    }

    [Fact]
    public async Task Open_IndexesNamesStepsModesWorkersAndCollections()
    {
        await using var archive = new TrialArchive();
        await archive.WriteAsync([.. TrialArchive.Records("r", 0, 30, worldSize: 2), .. TrialArchive.Records("r", 1, 25, worldSize: 2)]);

        using Trial trial = Trial.Open(archive.Directory, cancellationToken: TestContext.Current.CancellationToken);

        Assert.Equal("r", trial.Run);
        Assert.Equal([0, 1], trial.Workers);
        Assert.Equal([Mode.Train, Mode.Eval], trial.Modes);
        Assert.Equal(Enumerable.Range(0, 30).Select(s => (long)s), trial.Steps());
        Assert.Equal([0L, 10, 20], trial.Steps(Mode.Eval));
        Assert.Equal(["fc1.weight", "fc1.weight.grad"], trial.TensorNames());
        Assert.Equal(["fc1.weight.grad"], trial.TensorNames(collection: "gradients"));
        Assert.Equal(["fc1.weight"], trial.TensorNames(collection: "tracked"));
        Assert.Equal(["fc1.weight"], trial.TensorNames(regex: "weight$"));
        Assert.Empty(trial.TensorNames(collection: "gradients", regex: "weight$"));
        Assert.Equal(["fc1.weight"], trial.TensorNames(step: 10, mode: Mode.Eval));
        Assert.Equal(["gradients", "tracked", "weights"], trial.Collections());
        Assert.True(trial.HasTensor("fc1.weight.grad"));

        // smdebug's steps(): by default only the steps every worker traced.
        TrialTensor gradient = trial.Tensor("fc1.weight.grad");
        Assert.Equal(Enumerable.Range(0, 25).Select(s => (long)s), gradient.Steps());
        Assert.Equal(Enumerable.Range(0, 30).Select(s => (long)s), gradient.Steps(showIncompleteSteps: true));
        Assert.Equal([0, 1], gradient.Workers(step: 3));
        Assert.Equal([0], gradient.Workers(step: 27));
        Assert.Equal(55 + 2 * 3, trial.RecordCount);
    }

    [Fact]
    public async Task Reduction_AnswersFromTheSummary_AndFromRawValuesWhereTheSummaryDoesNotDetermineIt()
    {
        await using var archive = new TrialArchive();
        await archive.WriteAsync(TrialArchive.Records("r", 0, 5));
        using Trial trial = Trial.Open(archive.Directory, cancellationToken: TestContext.Current.CancellationToken);
        TrialTensor gradient = trial.Tensor("fc1.weight.grad");

        Assert.Equal(1e-2, gradient.Reduction(3, "mean", abs: true));
        Assert.Equal(0.001, gradient.Reduction(3, "mean"));
        Assert.Equal(-0.5, gradient.Reduction(3, "min"));
        Assert.Equal(0.5, gradient.Reduction(3, "max", abs: true));
        Assert.Equal(0.02, gradient.Reduction(3, "std"), 1e-15);
        Assert.Equal(4e-4, gradient.Reduction(3, "VARIANCE"));
        Assert.Equal(0.001 * 1024, gradient.Reduction(3, "sum"), 1e-12);
        Assert.Equal(1024 * 1e-2, gradient.Reduction(3, "sum", abs: true));
        Assert.Equal(0.5, gradient.Reduction(3, "l2"));
        Assert.Equal(1024, gradient.Reduction(3, "count"));
        Assert.Equal((0.25 / 1024) - 1e-4, gradient.Reduction(3, "variance", abs: true), 1e-15);

        // Elements change sign and none is zero; no raw values: the summary cannot tell min |x|, nor the product.
        var minAbs = Assert.Throws<TensorUnavailableForStepException>(() => gradient.Reduction(3, "min", abs: true));
        Assert.Contains("fc1.weight.grad at step 3", minAbs.Message, StringComparison.Ordinal);
        Assert.Contains("does not determine abs min", minAbs.Message, StringComparison.Ordinal);
        Assert.Throws<TensorUnavailableForStepException>(() => gradient.Reduction(3, "prod"));

        // The weight's raw values [-2, 1, 0.5, 3] are all traced: what the summary lacks comes from them.
        TrialTensor weight = trial.Tensor("fc1.weight");
        Assert.Equal(-3, weight.Reduction(3, "prod", mode: Mode.Train));
        Assert.Equal(0.5, weight.Reduction(3, "min", abs: true));
        Assert.Equal(0, weight.Reduction(0, "min", abs: true, mode: Mode.Train));
        Assert.Throws<ArgumentException>(() => weight.Reduction(3, "median"));
    }

    [Fact]
    public async Task ValueAndHistogram_ReturnWhatWasTraced_AndNameWhatIsMissing()
    {
        await using var archive = new TrialArchive();
        await archive.WriteAsync(TrialArchive.Records("r", 0, 15));
        using Trial trial = Trial.Open(archive.Directory, cancellationToken: TestContext.Current.CancellationToken);

        TrialValue value = trial.Tensor("fc1.weight").Value(12);
        Assert.Equal([-2f, 1f, 0.5f, 12f], value.Values);
        Assert.Equal([2L, 2], value.Shape);
        Assert.False(value.Truncated);

        var summaryOnly = Assert.Throws<TensorUnavailableForStepException>(() => trial.Tensor("fc1.weight.grad").Value(12));
        Assert.Contains("fc1.weight.grad at step 12: only a summary was traced, no raw values", summaryOnly.Message, StringComparison.Ordinal);

        // Step 10 has a train and an eval record of the weight: the mode must be given.
        var ambiguous = Assert.Throws<TensorUnavailableForStepException>(() => trial.Tensor("fc1.weight").Value(10));
        Assert.Contains("traced in modes train, eval: pass the mode", ambiguous.Message, StringComparison.Ordinal);
        Assert.Equal(10f, trial.Tensor("fc1.weight").Value(10, Mode.Eval).Values[3]);

        var missing = Assert.Throws<TensorUnavailableForStepException>(() => trial.Tensor("fc1.weight").Value(11, Mode.Eval));
        Assert.Contains("fc1.weight at step 11 (eval) was not traced (nearest traced steps 0, 10)", missing.Message, StringComparison.Ordinal);
        var unknown = Assert.Throws<TensorUnavailableException>(() => trial.Tensor("fc1.weight.gard"));
        Assert.Contains("no tensor fc1.weight.gard; closest: fc1.weight.grad, fc1.weight", unknown.Message, StringComparison.Ordinal);

        TrialHistogram log2 = trial.Tensor("fc1.weight.grad").Histogram(4);
        Assert.Equal([10L, 500, 514], log2.Counts);
        Assert.Equal(1024, log2.SampledCount);
        Assert.Equal(Monitor.Contracts.Log2Histogram.Edges[40..44].ToArray(), log2.Edges);
        TrialHistogram explicitEdges = trial.Tensor("fc1.weight").Histogram(4);
        Assert.Equal([double.NegativeInfinity, 0, double.PositiveInfinity], explicitEdges.Edges);
        Assert.Equal([1L, 3], explicitEdges.Counts);
        Assert.Equal(0, explicitEdges.SampledCount);
    }

    [Fact]
    public async Task Open_RefusesToPickARun_AndRecordsMergeRanksByEventTime()
    {
        await using var archive = new TrialArchive();
        await archive.WriteAsync([.. TrialArchive.Records("a", 0, 3), .. TrialArchive.Records("b", 0, 3), .. TrialArchive.Records("b", 1, 3, worldSize: 2)]);

        var refused = Assert.Throws<TrialException>(() => Trial.Open(archive.Directory, cancellationToken: TestContext.Current.CancellationToken));
        Assert.Contains("the archive holds 2 runs (a, b): choose one", refused.Message, StringComparison.Ordinal);
        var noRun = Assert.Throws<ArchiveReadException>(() => Trial.Open(archive.Directory, "c", TestContext.Current.CancellationToken));
        Assert.EndsWith("no archive files (*.parquet) of run c", noRun.Message, StringComparison.Ordinal);

        IReadOnlyList<Trial> trials = Trial.OpenAll(archive.Directory, cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(["a", "b"], trials.Select(t => t.Run));
        IReadOnlyList<StepRecord> records = Trial.InEventTimeOrder(trials);
        Assert.Equal(3 * (3 + 1), records.Count);
        Assert.True(records.Zip(records.Skip(1)).All(p => p.First.EventTimeUnixNanos <= p.Second.EventTimeUnixNanos));
        Assert.Equal([("a", 0u), ("b", 0u), ("b", 1u)], records.Take(3).Select(r => (r.RunId, r.Rank)));
    }

    [Fact]
    public async Task WaitForStepsAsync_ReturnsForTracedSteps_AndNamesTheNearestForOthers()
    {
        await using var archive = new TrialArchive();
        await archive.WriteAsync(TrialArchive.Records("r", 0, 5));
        using Trial trial = Trial.Open(archive.Directory, cancellationToken: TestContext.Current.CancellationToken);

        await trial.WaitForStepsAsync([0, 4], cancellationToken: TestContext.Current.CancellationToken);
        var missing = await Assert.ThrowsAsync<TrialException>(() => trial.WaitForStepsAsync([7], cancellationToken: TestContext.Current.CancellationToken));
        Assert.Contains("run r has no step 7 (nearest traced steps 3, 4)", missing.Message, StringComparison.Ordinal);
    }
}
