using System.Collections;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Monitor.Contracts;
using Monitor.Contracts.V1;
using static Monitor.Tracing.Tests.TracerTestSupport;

namespace Monitor.Tracing.Tests;

/// <summary>
/// The tracer's reused records (<see cref="StepRecordPool"/>): a reused record says on the wire exactly what a new one
/// would, and no record is refilled while the sender still reads it.
/// </summary>
public sealed class StepRecordPoolTests
{
    private static readonly CollectionSet WeightsAndCustom = CollectionSet.Of(Collection.Weights, Collection.Custom);

    private static readonly TensorStatistics Statistics = new()
    {
        Count = 6, Min = -1, Max = 2, Mean = 0.5, Variance = 0.75, L1 = 4, L2 = 3, AbsMean = 0.66, ZeroCount = 1, NanCount = 0, InfCount = 0,
    };

    [Fact]
    public void Begin_ResetsEveryFieldOfTheRecord_AfterAUseThatSetThemAll()
    {
        var pooled = new PooledStepRecord();
        pooled.AddTensor("t", WeightsAndCustom, DType.Float32, [2, 3], Statistics, Buckets(), [1f, 2f], 6, 1, ["a", "b", "c"]);
        FillEveryField(pooled.Record);

        pooled.Begin("run-pool", 3, 4, 17, Mode.Eval, 9, atBegin: true);

        var expected = new StepRecord
        {
            SchemaVersion = StepRecordDecoder.CurrentSchemaVersion,
            RunId = "run-pool",
            Rank = 3,
            WorldSize = 4,
            Step = 17,
            Mode = Mode.Eval,
            SelectionVersion = 9,
            AtBegin = true,
        };
        Assert.Equal(expected, pooled.Record);
        Assert.Equal(expected.ToByteArray(), pooled.Record.ToByteArray());
    }

    [Fact]
    public void AddTensor_WritesWhatANewTensorWould_AfterAUseThatSetEveryField()
    {
        var pooled = new PooledStepRecord();
        pooled.Begin("run-pool", 0, 1, 0, Mode.Train, 0, atBegin: false);
        pooled.AddTensor("first", WeightsAndCustom, DType.Float32, [2, 3], Statistics, Buckets(), [1f, 2f, 3f], 6, 1, ["a", "b", "c"]);
        FillEveryField(pooled.Record.Tensors[0]);

        // Plain: no histogram, no raw values, no feature names, another shape and collection.
        pooled.Begin("run-pool", 0, 1, 1, Mode.Train, 0, atBegin: false);
        pooled.AddTensor("second", Gradients, DType.Float64, [5], Statistics, [], [], 5, 0, null);
        TensorRecord plain = NewTensor("second", Gradients, DType.Float64, [5], Statistics);
        Assert.Equal(plain, pooled.Record.Tensors.Single());
        Assert.Equal(plain.ToByteArray(), pooled.Record.Tensors.Single().ToByteArray());

        // Everything again, with other values: an all-empty histogram and raw values of another length.
        FillEveryField(pooled.Record.Tensors[0]);
        pooled.Begin("run-pool", 0, 1, 2, Mode.Train, 0, atBegin: false);
        ulong[] empty = new ulong[TensorSummarizer.BucketCount];
        pooled.AddTensor("third", WeightsAndCustom, DType.Float32, [1, 2], Statistics, empty, [4f, 5f], 2, 1, ["x", "y"]);
        TensorRecord full = NewTensor("third", WeightsAndCustom, DType.Float32, [1, 2], Statistics);
        full.Summary.Histogram = new Histogram { Layout = HistogramLayout.Log2Magnitude };
        full.Raw = new RawValues { Float32Le = ByteString.CopyFrom(Float32Le([4f, 5f])), TotalElements = 2, SampleRows = 1 };
        full.FeatureNames.Add(new[] { "x", "y" });
        Assert.Equal(full, pooled.Record.Tensors.Single());
        Assert.Equal(full.ToByteArray(), pooled.Record.Tensors.Single().ToByteArray());
    }

    [Fact]
    public async Task EndStep_SendsWhatAFreshTracerSends_WhenTheRecordOfALargerStepIsReused()
    {
        var reusedProducer = new TestRecordProducer();
        var freshProducer = new TestRecordProducer();
        TraceSelection selection = RawAndHistograms(limitSize: 8);
        await using var reused = new StepTracer(Options(selection), reusedProducer);
        await using var fresh = new StepTracer(Options(selection), freshProducer);

        // A large step first, delivered (so its record is back in the pool before the next step rents one).
        reused.BeginStep(0);
        reused.AddValues("a.weight", Weights, DType.Float32, [4, 4], Ramp(16, 1f));
        reused.AddBatch("inputs", CollectionSet.Of(Collection.Inputs), DType.Float32, [4, 2], Ramp(8, 2f), ["u", "v"]);
        reused.AddValues("b.bias", Biases, DType.Float32, [4], Ramp(4, 3f));
        reused.AddScalar("loss", Losses, 0.5);
        reused.EndStep();
        await Poll.UntilAsync(() => reused.Statistics.Delivered == 1, "the first record delivered");

        // Then a smaller one, other tensors at the same positions.
        foreach (StepTracer tracer in new[] { reused, fresh })
        {
            tracer.BeginStep(1);
            tracer.AddValues("b.bias", Biases, DType.Float32, [3], Ramp(3, -1f));
            tracer.AddScalar("loss", Losses, double.NaN);
            tracer.EndStep();
        }

        StepRecord fromReused = (await DeliveredAsync(reused, reusedProducer, 2))[1];
        StepRecord fromFresh = (await DeliveredAsync(fresh, freshProducer, 1))[0];
        Assert.Equal(2ul, fromReused.Sequence);
        fromReused.Sequence = fromFresh.Sequence;
        // Only a tracer's first record carries the run metadata; the reused record must not keep the first step's.
        Assert.Equal("", fromReused.RunMetadata);
        Assert.NotEqual("", fromFresh.RunMetadata);
        fromFresh.RunMetadata = "";
        Assert.Equal(fromFresh, fromReused);
    }

    [Fact]
    public async Task EndStep_DeliversEveryRecordIntact_WhenManyStepsGoThroughASlowSender()
    {
        const int steps = 2_000, tensorCount = 12, elements = 64, limit = 16;
        var producer = new TestRecordProducer { ProduceDelay = TimeSpan.FromMicroseconds(20) };
        TracerOptions options = Options(RawAndHistograms(limit), queueCapacity: 4);
        await using var tracer = new StepTracer(new TracerOptions
        {
            RunId = options.RunId,
            Topic = options.Topic,
            Selection = options.Selection,
            QueueCapacity = options.QueueCapacity,
            TimeProvider = options.TimeProvider,
            // Waits a little for room, so that both sent and dropped records occur.
            MaxEnqueueWait = TimeSpan.FromMilliseconds(0.05),
        }, producer);
        string[] names = [.. Enumerable.Range(0, tensorCount).Select(i => i % 2 == 0 ? $"l{i}.weight" : $"l{i}.bias")];
        float[][] buffers = [.. Enumerable.Range(0, tensorCount).Select(_ => new float[elements])];

        // The caller's buffers are rewritten every step (the tracer copies what it keeps); the number and the order of
        // the tensors change from step to step, so each pooled tensor holds weights (raw values) and biases in turn.
        for (int step = 0; step < steps; step++)
        {
            tracer.BeginStep(step);
            foreach (int index in Traced(step, tensorCount))
            {
                float[] values = buffers[index];
                for (int i = 0; i < elements; i++)
                {
                    values[i] = Base(step, index) + i;
                }

                tracer.AddValues(names[index], index % 2 == 0 ? Weights : Biases, DType.Float32, [elements], values);
            }

            tracer.EndStep();
        }

        Assert.True(await tracer.FlushAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken));
        TracerStatistics statistics = tracer.Statistics;
        Assert.Equal(steps, statistics.Delivered + statistics.DroppedQueueFull);
        Assert.True(statistics.Delivered > 0);
        Assert.Equal(0, statistics.Faults);

        ulong lastSequence = 0;
        foreach (ProducedMessage message in producer.Messages)
        {
            StepRecord record = Decode(message.Value);
            Assert.True(record.Sequence > lastSequence);
            lastSequence = record.Sequence;
            int step = (int)record.Step;
            int[] traced = Traced(step, tensorCount);
            Assert.Equal(traced.Select(i => names[i]), record.Tensors.Select(t => t.Name));
            for (int k = 0; k < traced.Length; k++)
            {
                int index = traced[k];
                TensorRecord tensor = record.Tensors[k];
                float first = Base(step, index);
                Assert.Equal([(long)elements], tensor.Shape);
                Assert.Equal((ulong)elements, tensor.Summary.Count);
                Assert.Equal((first, first + elements - 1), (tensor.Summary.Min, tensor.Summary.Max));
                Assert.Equal((ulong)elements, (ulong)HistogramBuckets(tensor).Sum(c => (long)c));
                if (index % 2 == 0)
                {
                    Assert.Equal([Collection.Weights], tensor.Collections);
                    Assert.Equal(Enumerable.Range(0, limit).Select(i => first + i), ReadFloat32Le(tensor.Raw.Float32Le));
                    Assert.Equal((ulong)elements, tensor.Raw.TotalElements);
                }
                else
                {
                    Assert.Equal([Collection.Biases], tensor.Collections);
                    Assert.Null(tensor.Raw);
                }
            }
        }
    }

    // Steps trace 12, 11 or 10 tensors, every other step in reverse order.
    private static int[] Traced(int step, int tensorCount)
    {
        int[] indexes = [.. Enumerable.Range(0, tensorCount - (step % 3))];
        return step % 2 == 0 ? indexes : [.. indexes.Reverse()];
    }

    // Distinct per step and tensor, small enough for float32 to hold exactly.
    private static float Base(int step, int index) => (step * 100) + (index * 5) + 1;

    private static ulong[] HistogramBuckets(TensorRecord tensor) => [.. tensor.Summary.Histogram.Counts];

    private static TraceSelection RawAndHistograms(int limitSize) => new()
    {
        Collections = Collections(
            (CollectionNames.Weights, new CollectionFilter { Histogram = true, Raw = true }),
            (CollectionNames.Biases, new CollectionFilter { Histogram = true }),
            (CollectionNames.Inputs, new CollectionFilter { Histogram = true, Raw = true }),
            (CollectionNames.Losses, new CollectionFilter())),
        LimitSize = limitSize,
    };

    private static float[] Ramp(int count, float scale) => [.. Enumerable.Range(0, count).Select(i => i * scale)];

    private static ulong[] Buckets()
    {
        ulong[] buckets = new ulong[TensorSummarizer.BucketCount];
        buckets[40] = 2;
        buckets[50] = 3;
        return buckets;
    }

    /// <summary>A tensor record built from new messages, as the tracer built them before records were reused.</summary>
    private static TensorRecord NewTensor(string name, CollectionSet collections, DType dtype, long[] shape, TensorStatistics statistics)
    {
        var tensor = new TensorRecord
        {
            Name = name,
            Dtype = dtype,
            Summary = new TensorSummary
            {
                Count = (ulong)statistics.Count,
                Min = statistics.Min,
                Max = statistics.Max,
                Mean = statistics.Mean,
                Variance = statistics.Variance,
                L1 = statistics.L1,
                L2 = statistics.L2,
                AbsMean = statistics.AbsMean,
                ZeroCount = (ulong)statistics.ZeroCount,
                NanCount = (ulong)statistics.NanCount,
                InfCount = (ulong)statistics.InfCount,
            },
        };
        tensor.Collections.Add(collections.Members());
        tensor.Shape.Add(shape);
        return tensor;
    }

    /// <summary>
    /// Sets every field of <paramref name="message"/> and of the messages it holds (in place where they exist) to a
    /// value other than its default, and adds an element to every repeated field: whatever a later schema adds is
    /// covered without this test changing.
    /// </summary>
    private static void FillEveryField(IMessage message)
    {
        foreach (FieldDescriptor field in message.Descriptor.Fields.InFieldNumberOrder())
        {
            if (field.IsRepeated)
            {
                ((IList)field.Accessor.GetValue(message)).Add(field.FieldType == FieldType.Message ? NewFilled(field.MessageType) : NonDefault(field));
            }
            else if (field.FieldType == FieldType.Message)
            {
                if (field.Accessor.GetValue(message) is IMessage nested)
                {
                    FillEveryField(nested);
                }
                else
                {
                    field.Accessor.SetValue(message, NewFilled(field.MessageType));
                }
            }
            else
            {
                field.Accessor.SetValue(message, NonDefault(field));
            }
        }
    }

    private static IMessage NewFilled(MessageDescriptor descriptor)
    {
        var message = (IMessage)Activator.CreateInstance(descriptor.ClrType)!;
        FillEveryField(message);
        return message;
    }

    private static object NonDefault(FieldDescriptor field) => field.FieldType switch
    {
        FieldType.Bool => true,
        FieldType.String => "stale",
        FieldType.Bytes => ByteString.CopyFromUtf8("stale"),
        FieldType.Double => 7.5,
        FieldType.Float => 7.5f,
        FieldType.Int32 or FieldType.SInt32 or FieldType.SFixed32 => 7,
        FieldType.Int64 or FieldType.SInt64 or FieldType.SFixed64 => 7L,
        FieldType.UInt32 or FieldType.Fixed32 => 7u,
        FieldType.UInt64 or FieldType.Fixed64 => 7ul,
        FieldType.Enum => Enum.ToObject(field.EnumType.ClrType, 1),
        _ => throw new NotSupportedException($"{field.FullName}: {field.FieldType}"),
    };
}
