using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using Google.Protobuf;
using Monitor.Contracts;
using Monitor.Contracts.V1;
using Monitor.Transport.Kafka;

namespace Monitor.IntegrationTests;

/// <summary>
/// The real <c>monitor serve</c> over the mock cluster, its topic flooded with junk (random bytes, truncated records,
/// records that break the contract, empty payloads) with valid records in between: every junk record reaches the
/// dead-letter topic byte for byte with its reason, every valid one is analysed, and the process stays up.
/// </summary>
public sealed class JunkFloodTests
{
    private const int Junk = 5_000;
    private const int ValidEvery = 10;
    private static readonly string[] DecodeKinds = ["Malformed", "Invalid", "UnsupportedSchemaVersion"];

    private static CancellationToken Cancellation => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Serve_FloodedWithJunk_DeadLettersEveryJunkRecordWithItsReason_AndAnalysesEveryValidOne()
    {
        using var cluster = new MockKafkaCluster();
        string topic = "it-flood-" + Guid.NewGuid().ToString("N")[..8];
        await using ServeProcess serve = await ServeProcess.StartAsync(
            ["--kafka", cluster.BootstrapServers, "--topic", topic, "--dead-letter-topic", topic + ".dlq", "--group", "g-" + topic], Cancellation);
        await Eventually.TrueAsync(() => serve.GetAsync("readyz", Cancellation).GetAwaiter().GetResult().Status == HttpStatusCode.OK, "monitor serve is ready");

        var random = new Random(11);
        var junk = new ConcurrentDictionary<(int Partition, long Offset), byte[]>();
        int valid = 0, failures = 0;
        var clock = Stopwatch.StartNew();
        using (var producer = new KafkaRecordProducer(new KafkaProducerOptions { BootstrapServers = cluster.BootstrapServers, ClientId = "flood" }))
        {
            for (int i = 0; i < Junk; i++)
            {
                byte[] payload = JunkPayload(random, i);
                producer.Produce(topic, "junk/" + i.ToString(CultureInfo.InvariantCulture), payload, null, report =>
                {
                    if (report.Delivered)
                    {
                        junk[(report.Partition, report.Offset)] = payload;
                    }
                    else
                    {
                        Interlocked.Increment(ref failures);
                    }
                });
                if (i % ValidEvery == 0)
                {
                    producer.Produce(topic, RecordKey.Format("flood", 0), ValidRecord(valid++).ToByteArray(), null,
                        report => Interlocked.Add(ref failures, report.Delivered ? 0 : 1));
                }
            }

            Assert.Equal(0, producer.Flush(TimeSpan.FromSeconds(60)));
        }

        Assert.Equal(0, failures);
        Assert.Equal(Junk, junk.Count);
        int total = Junk + valid;
        string metrics = "";
        while (Sum(metrics, "monitor_records_dead_lettered_total{") + Sum(metrics, "monitor_dead_letter_failures_total{") < Junk
            || Sum(metrics, "monitor_records_decoded_total") < valid)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(120),
                $"after {clock.Elapsed.TotalSeconds:F0} s: consumed {Sum(metrics, "monitor_records_consumed_total{")}, dead-lettered {Sum(metrics, "monitor_records_dead_lettered_total{")}, "
                + $"decoded {Sum(metrics, "monitor_records_decoded_total")}, in flight {Sum(metrics, "monitor_dead_letters_in_flight")}, lag {Sum(metrics, "monitor_consumer_lag_records{")}\n{serve.Output()}");
            await Task.Delay(100, Cancellation);
            metrics = (await serve.GetAsync("metrics", Cancellation)).Body;
        }
        TimeSpan elapsed = clock.Elapsed;

        Assert.Equal(total, Sum(metrics, $"monitor_records_consumed_total{{topic=\"{topic}\"}}"));
        Assert.Equal(Junk, Sum(metrics, "monitor_records_dead_lettered_total{"));
        Assert.Equal(0, Sum(metrics, "monitor_dead_letter_failures_total{"));
        Assert.Equal(Junk, Sum(metrics, "monitor_records_failed_total{"));
        Assert.Equal(valid, Sum(metrics, "monitor_records_decoded_total"));
        Assert.Equal([valid - 1.0], Prometheus.Samples(metrics, "monitor_worker_step{run=\"flood\",rank=\"0\"}"));
        Assert.True(serve.IsRunning, "monitor serve exited:\n" + serve.Output());
        Assert.Equal(HttpStatusCode.OK, (await serve.GetAsync("healthz", Cancellation)).Status);
        Assert.Equal(HttpStatusCode.OK, (await serve.GetAsync("readyz", Cancellation)).Status);

        // Every junk record is on the dead-letter topic, byte for byte, with where it came from and why.
        var seen = new HashSet<(int, long)>();
        using (var reader = new KafkaRecordConsumer(new KafkaConsumerOptions { BootstrapServers = cluster.BootstrapServers, Topic = topic + ".dlq", GroupId = "reader-" + topic }))
        {
            var deadline = Stopwatch.StartNew();
            while (seen.Count < Junk)
            {
                Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(120), $"only {seen.Count} of {Junk} junk records read back from the dead-letter topic");
                if (reader.Consume(TimeSpan.FromSeconds(1), Cancellation) is not { } dead)
                {
                    continue;
                }

                var headers = dead.Headers.ToDictionary(h => h.Key, h => Encoding.UTF8.GetString(h.Value), StringComparer.Ordinal);
                Assert.Equal(topic, headers[DeadLetterHeaders.SourceTopic]);
                var origin = (int.Parse(headers[DeadLetterHeaders.SourcePartition], CultureInfo.InvariantCulture), long.Parse(headers[DeadLetterHeaders.SourceOffset], CultureInfo.InvariantCulture));
                Assert.True(junk.TryGetValue(origin, out byte[]? sent), $"dead letter from {origin} is not a junk record");
                Assert.Equal(sent, dead.Value);
                Assert.Contains(headers[DeadLetterHeaders.ErrorKind], DecodeKinds);
                Assert.False(string.IsNullOrWhiteSpace(headers[DeadLetterHeaders.Reason]));
                seen.Add(origin);
            }
        }

        TestContext.Current.TestOutputHelper?.WriteLine(
            $"{Junk} junk + {valid} valid records: all dead-lettered / analysed {elapsed.TotalSeconds:F1} s after the first was produced ({total / elapsed.TotalSeconds:F0} records/s)");
    }

    /// <summary>Junk of four sorts, cycling: random bytes, a valid record cut short, a record that breaks the contract,
    /// random bytes after a valid field; drawn again in the rare case it decodes (a cut at a field boundary can leave a
    /// valid record).</summary>
    private static byte[] JunkPayload(Random random, int i)
    {
        byte[] payload;
        do
        {
            payload = JunkCandidate(random, i);
        }
        while (StepRecordDecoder.TryDecode(payload, out _, out _));

        return payload;
    }

    private static byte[] JunkCandidate(Random random, int i)
    {
        switch (i % 4)
        {
            case 0:
                return RandomBytes(random, random.Next(1, 300));
            case 1:
                byte[] whole = ValidRecord(i).ToByteArray();
                return whole[..random.Next(1, whole.Length - 1)];
            case 2:
                StepRecord broken = ValidRecord(i);
                broken.Rank = broken.WorldSize + (uint)random.Next(0, 5);
                return broken.ToByteArray();
            default:
                return [0x08, 0x01, .. RandomBytes(random, random.Next(1, 100))];
        }
    }

    private static byte[] RandomBytes(Random random, int length)
    {
        byte[] bytes = new byte[length];
        random.NextBytes(bytes);
        return bytes;
    }

    private static StepRecord ValidRecord(int step)
    {
        var record = new StepRecord
        {
            SchemaVersion = 1,
            RunId = "flood",
            Rank = 0,
            WorldSize = 1,
            Step = step,
            Mode = Mode.Train,
            EventTimeUnixNanos = 1_700_000_000_000_000_000 + (step * 1_000_000_000L),
            Sequence = (ulong)step + 1,
        };
        var tensor = new TensorRecord
        {
            Name = "fc1.weight.grad",
            Dtype = DType.Float32,
            Summary = new TensorSummary { Count = 10, Min = -0.5, Max = 0.5, Mean = 0.01, AbsMean = 0.25, L2 = 0.75, L1 = 2.5 },
        };
        tensor.Collections.Add(Collection.Gradients);
        tensor.Shape.Add(10);
        record.Tensors.Add(tensor);
        return record;
    }

    private static double Sum(string metrics, string prefix) =>
        metrics.Split('\n')
            .Where(l => l.StartsWith(prefix, StringComparison.Ordinal) && (prefix.EndsWith('{') || prefix.EndsWith('}') || l[prefix.Length] == ' '))
            .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture));
}
