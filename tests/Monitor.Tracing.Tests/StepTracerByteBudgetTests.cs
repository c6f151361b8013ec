using Monitor.Contracts;
using Monitor.Contracts.V1;
using static Monitor.Tracing.Tests.TracerTestSupport;

namespace Monitor.Tracing.Tests;

/// <summary><see cref="TracerOptions.MaxRecordBytes"/>: raw parts give way, largest first; summaries always go through.</summary>
public sealed class StepTracerByteBudgetTests
{
    private static readonly TraceSelection RawWeights = new()
    {
        Collections = new Dictionary<string, CollectionFilter> { [CollectionNames.Weights] = new() { Raw = true } },
        LimitSize = 250_000,
    };

    private static float[] Values(int count, float scale) => [.. Enumerable.Range(0, count).Select(i => i * scale)];

    [Fact]
    public async Task EndStep_LeavesOutTheLargestRawPartsAndKeepsEverySummary_WhenTheRecordIsOverTheBudget()
    {
        var producer = new TestRecordProducer();
        await using var tracer = new StepTracer(Options(RawWeights, maxRecordBytes: 80_000), producer);

        tracer.BeginStep(0);
        // 160 KB, 80 KB and 12 KB of raw values: the first two must go for the record to fit 80,000 bytes.
        tracer.AddValues("big", Weights, DType.Float32, [40_000], Values(40_000, 0.5f));
        tracer.AddValues("middle", Weights, DType.Float32, [20_000], Values(20_000, 0.25f));
        tracer.AddValues("small", Weights, DType.Float32, [3_000], Values(3_000, 1f));
        tracer.EndStep();

        StepRecord record = Assert.Single(await DeliveredAsync(tracer, producer, 1));
        Assert.True(producer.Messages.Single().Value.Length <= 80_000);
        Dictionary<string, TensorRecord> byName = record.Tensors.ToDictionary(t => t.Name);
        foreach (string trimmed in new[] { "big", "middle" })
        {
            RawValues raw = byName[trimmed].Raw;
            Assert.True(raw.Trimmed, trimmed);
            Assert.True(raw.Truncated);
            Assert.True(raw.Float32Le.IsEmpty);
        }

        Assert.Equal(40_000ul, byName["big"].Raw.TotalElements);
        Assert.Equal(40_000ul, byName["big"].Summary.Count);
        Assert.Equal(19_999.5, byName["big"].Summary.Max);
        Assert.False(byName["small"].Raw.Trimmed);
        Assert.Equal(Values(3_000, 1f), ReadFloat32Le(byName["small"].Raw.Float32Le));
        Assert.Equal(2ul, record.RawPartsTrimmed);
        Assert.Equal((2L, 240_000L), (tracer.Statistics.RawPartsTrimmed, tracer.Statistics.RawBytesTrimmed));
    }

    [Fact]
    public async Task EndStep_CountsTrimmedPartsAcrossRecords_AndLeavesRecordsWithinTheBudgetAlone()
    {
        var producer = new TestRecordProducer();
        await using var tracer = new StepTracer(Options(RawWeights, maxRecordBytes: 50_000), producer);

        tracer.BeginStep(0);
        tracer.AddValues("w", Weights, DType.Float32, [1_000], Values(1_000, 1f));
        tracer.EndStep();
        tracer.BeginStep(1);
        tracer.AddValues("w", Weights, DType.Float32, [20_000], Values(20_000, 1f));
        tracer.EndStep();
        tracer.BeginStep(2);
        tracer.AddValues("w", Weights, DType.Float32, [20_000], Values(20_000, 1f));
        tracer.EndStep();

        StepRecord[] records = await DeliveredAsync(tracer, producer, 3);
        Assert.Equal([0ul, 1ul, 2ul], records.OrderBy(r => r.Step).Select(r => r.RawPartsTrimmed));
        Assert.False(records.Single(r => r.Step == 0).Tensors[0].Raw.Trimmed);
        Assert.All(records.Where(r => r.Step > 0), r => Assert.Equal(20_000ul, r.Tensors[0].Summary.Count));
    }

    [Fact]
    public void Validate_Throws_WhenTheBudgetIsBelow1000Bytes()
    {
        var error = Assert.Throws<ArgumentException>(() => Options(RawWeights, maxRecordBytes: 999).Validate());
        Assert.Contains("MaxRecordBytes is 999", error.Message, StringComparison.Ordinal);
    }
}
