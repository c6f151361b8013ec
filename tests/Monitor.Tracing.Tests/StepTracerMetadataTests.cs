using Microsoft.Extensions.Time.Testing;
using Monitor.Contracts;
using Monitor.Contracts.V1;

namespace Monitor.Tracing.Tests;

public sealed class StepTracerMetadataTests : IDisposable
{
    private static readonly DateTimeOffset Start = new(2026, 3, 4, 5, 6, 7, TimeSpan.Zero);
    private readonly string _directory = Directory.CreateTempSubdirectory("monitor-metadata-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task FirstRecord_CarriesTheRunMetadata_AndLaterRecordsDoNot()
    {
        // A repository whose branch is only in packed-refs, and a working directory two levels below it.
        const string commit = "0123456789abcdef0123456789abcdef01234567";
        Directory.CreateDirectory(Path.Combine(_directory, ".git"));
        File.WriteAllText(Path.Combine(_directory, ".git", "HEAD"), "ref: refs/heads/main\n");
        File.WriteAllText(Path.Combine(_directory, ".git", "packed-refs"), $"# pack-refs with: peeled fully-peeled sorted\n{commit} refs/heads/main\n");
        string work = Directory.CreateDirectory(Path.Combine(_directory, "src", "job")).FullName;
        var producer = new TestRecordProducer();
        var options = new TracerOptions
        {
            RunId = "lr-2",
            Rank = 1,
            WorldSize = 2,
            TimeProvider = new FakeTimeProvider(Start),
            Hyperparameters = new Dictionary<string, string> { ["learning_rate"] = RunMetadata.FormatValue(0.1), ["batch_size"] = "32" },
            Datasets = [new DatasetReference("train", "s3://bucket/train/", "sha256:ab12")],
            Devices = ["cuda:0"],
            ParentRun = "lr-1",
            CodeDirectory = work,
        };
        await using var tracer = new StepTracer(options, producer);
        for (int step = 0; step < 3; step++)
        {
            tracer.BeginStep(step);
            tracer.AddScalar("loss", CollectionSet.Of(Collection.Losses), 1.0 / (step + 1));
            tracer.EndStep();
        }

        await Poll.UntilAsync(() => tracer.Statistics.Delivered == 3, "three records delivered");
        StepRecord[] records = [.. producer.Messages.Select(m => StepRecord.Parser.ParseFrom(m.Value))];
        Assert.All(records.Skip(1), r => Assert.Equal("", r.RunMetadata));
        RunMetadata metadata = RunMetadata.TryParse(records[0].RunMetadata)!;
        Assert.Equal(("lr-2", 1, 2, Start, "lr-1"), (metadata.Run, metadata.Rank, metadata.WorldSize, metadata.StartedAt, metadata.ParentRun));
        Assert.Equal(["batch_size", "learning_rate"], metadata.Hyperparameters.Keys);
        Assert.Equal("0.1", metadata.Hyperparameters["learning_rate"]);
        Assert.Equal([new DatasetReference("train", "s3://bucket/train/", "sha256:ab12")], metadata.Datasets);
        Assert.Equal(["cuda:0"], metadata.Devices);
        Assert.Equal(new CodeVersion(commit, "main", _directory), metadata.Code);
        Assert.Contains(".NET", metadata.Versions.Keys);
        Assert.Contains("Monitor", metadata.Versions.Keys);
        Assert.Equal(Environment.MachineName, metadata.Host);
    }

    [Fact]
    public async Task RecordArtifact_GoesOnTheNextRecordSent_AndAnInvalidOneIsAFaultNotAnException()
    {
        var producer = new TestRecordProducer();
        var time = new FakeTimeProvider(Start);
        await using var tracer = new StepTracer(new TracerOptions { RunId = "art", TimeProvider = time, CodeDirectory = null }, producer);
        tracer.RecordArtifact("s3://models/init.pt", "sha256:00", 0, ArtifactDirection.Consumed, "model");
        tracer.BeginStep(0);
        tracer.EndStep();
        await Poll.UntilAsync(() => tracer.Statistics.Delivered == 1, "the first record delivered");
        tracer.RecordArtifact("/ckpt/step-1.pt", null, 1, ArtifactDirection.Produced);
        tracer.RecordArtifact("", null, 1, ArtifactDirection.Produced);
        tracer.RecordArtifact("/ckpt/x.pt", null, 1, ArtifactDirection.Unspecified);
        tracer.BeginStep(1);
        tracer.EndStep();
        tracer.BeginStep(2);
        tracer.EndStep();
        await Poll.UntilAsync(() => tracer.Statistics.Delivered == 3, "three records delivered");

        StepRecord[] records = [.. producer.Messages.Select(m => StepRecord.Parser.ParseFrom(m.Value))];
        ArtifactEvent consumed = Assert.Single(records[0].Artifacts);
        Assert.Equal(("s3://models/init.pt", "sha256:00", 0L, ArtifactDirection.Consumed, "model"), (consumed.Path, consumed.Hash, consumed.Step, consumed.Direction, consumed.Type));
        Assert.Equal((Start - DateTimeOffset.UnixEpoch).Ticks * 100, consumed.TimeUnixNanos);
        ArtifactEvent produced = Assert.Single(records[1].Artifacts);
        Assert.Equal(("/ckpt/step-1.pt", "", ArtifactDirection.Produced, "checkpoint"), (produced.Path, produced.Hash, produced.Direction, produced.Type));
        Assert.Empty(records[2].Artifacts);
        Assert.Equal(2, tracer.Statistics.Faults);
        // CodeDirectory null: no code version is looked for.
        Assert.Null(RunMetadata.TryParse(records[0].RunMetadata)!.Code);
    }

    [Fact]
    public void CodeVersion_IsNull_OutsideARepository_AndADetachedHeadHasNoBranch()
    {
        Assert.Null(CodeVersion.Find(_directory));
        const string commit = "fedcba9876543210fedcba9876543210fedcba98";
        Directory.CreateDirectory(Path.Combine(_directory, ".git"));
        File.WriteAllText(Path.Combine(_directory, ".git", "HEAD"), commit + "\n");
        Assert.Equal(new CodeVersion(commit, null, _directory), CodeVersion.Find(_directory));
    }

    [Fact]
    public void Validate_RefusesAnInvalidParentRunAndADataSetWithoutAName()
    {
        Assert.Contains("ParentRun", Assert.Throws<ArgumentException>(() => new TracerOptions { RunId = "r", ParentRun = "a/b" }.Validate()).Message, StringComparison.Ordinal);
        Assert.Contains("Datasets", Assert.Throws<ArgumentException>(() => new TracerOptions { RunId = "r", Datasets = [new DatasetReference("", "x")] }.Validate()).Message, StringComparison.Ordinal);
        Assert.Contains("Datasets", Assert.Throws<ArgumentException>(() => new TracerOptions { RunId = "r", Datasets = [null!] }.Validate()).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Compare_NamesChangedAddedAndRemovedEntries_InSectionOrder()
    {
        var before = new RunMetadata
        {
            Run = "a",
            Hyperparameters = new Dictionary<string, string> { ["learning_rate"] = "0.05", ["momentum"] = "0.9" },
            Datasets = [new DatasetReference("train", "s3://d/train", "sha256:1")],
            Code = new CodeVersion("1111111111111111111111111111111111111111", "main", "/r"),
            Versions = new Dictionary<string, string> { ["TorchSharp"] = "0.106.0.0" },
        };
        var after = before with
        {
            Run = "b",
            StartedAt = Start,
            Hyperparameters = new Dictionary<string, string> { ["learning_rate"] = "0.5", ["warmup"] = "100" },
            Datasets = [new DatasetReference("train", "s3://d/train", "sha256:2")],
            Code = before.Code! with { Commit = "2222222222222222222222222222222222222222" },
            Versions = new Dictionary<string, string> { ["TorchSharp"] = "0.107.0.0" },
        };
        Assert.Equal(
            [
                new RunMetadataChange("hyperparameter", "learning_rate", "changed", "0.05", "0.5"),
                new RunMetadataChange("hyperparameter", "momentum", "removed", "0.9", null),
                new RunMetadataChange("hyperparameter", "warmup", "added", null, "100"),
                new RunMetadataChange("dataset", "train", "changed", "s3://d/train (sha256:1)", "s3://d/train (sha256:2)"),
                new RunMetadataChange("code", "commit", "changed", "1111111111111111111111111111111111111111", "2222222222222222222222222222222222222222"),
                new RunMetadataChange("version", "TorchSharp", "changed", "0.106.0.0", "0.107.0.0"),
            ],
            RunMetadataDiff.Compare(before, after));
        Assert.Empty(RunMetadataDiff.Compare(before, before with { Run = "c", Rank = 3 }));
    }
}
