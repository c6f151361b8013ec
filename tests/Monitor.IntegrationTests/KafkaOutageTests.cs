using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Confluent.Kafka;
using Monitor.Contracts;
using Monitor.Contracts.V1;
using Monitor.Tracing;
using Monitor.Transport.Kafka;

namespace Monitor.IntegrationTests;

/// <summary>
/// Kafka unreachable for 60 s under a training loop: the mock cluster runs in a child process (<c>monitor kafka-mock</c>)
/// that the test freezes with SIGSTOP, so its brokers answer nothing (as when the network to the cluster is cut) until
/// SIGCONT. The loop steps every 10 ms throughout; no step may wait on the tracer (its time per step in the outage is
/// that before it), and every record must arrive once the cluster is back, none lost. It runs alone, after the tests
/// that run in parallel: with them, the frozen mock's catching up (100 MB of records) was seen to take over two minutes on
/// two loaded cores.
/// </summary>
[Collection(nameof(KafkaOutageTests))]
public sealed partial class KafkaOutageTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Outage = TimeSpan.FromSeconds(60);
    private static readonly CollectionSet Weights = CollectionSet.Of(Collection.Weights);
    private static readonly CollectionSet Losses = CollectionSet.Of(Collection.Losses);

    [GeneratedRegex(@"^127\.0\.0\.1:[0-9]+$", RegexOptions.Multiline)]
    private static partial Regex BootstrapLine();

    [Fact]
    public async Task KafkaUnreachableFor60Seconds_NoStepWaitsOnTheTracer_AndEveryRecordIsDeliveredAfterwards()
    {
        var mock = new ChildServer("monitor kafka-mock");
        mock.Launch("dotnet", Repository.Root, [Path.Combine(AppContext.BaseDirectory, "monitor.dll"), "kafka-mock"]);
        try
        {
            await Eventually.TrueAsync(() => BootstrapLine().IsMatch(mock.Output()), "the mock cluster prints its bootstrap servers", explain: mock.Output);
            string bootstrap = BootstrapLine().Match(mock.Output()).Value;
            string topic = "it-outage-" + Guid.NewGuid().ToString("N")[..8];
            string run = "outage-" + Guid.NewGuid().ToString("N")[..8];
            var producer = new KafkaRecordProducer(new KafkaProducerOptions { BootstrapServers = bootstrap, ClientId = run });
            await using var tracer = new StepTracer(new TracerOptions { RunId = run, Topic = topic }, producer, ownsProducer: true);
            float[] weights = [.. Enumerable.Range(0, 4096).Select(i => MathF.Sin(i))];
            var tracerTimes = new List<double>();
            long step = 0;

            void TrainFor(TimeSpan duration)
            {
                var clock = Stopwatch.StartNew();
                while (clock.Elapsed < duration)
                {
                    long start = Stopwatch.GetTimestamp();
                    tracer.BeginStep(step);
                    tracer.AddValues("fc1.weight", Weights, DType.Float32, [64, 64], weights);
                    tracer.AddScalar("loss", Losses, 1.0 / (step + 1));
                    tracer.EndStep();
                    tracerTimes.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                    step++;
                    // The rest of a 10 ms step: the model's work.
                    Thread.Sleep(10);
                }
            }

            await Task.Run(() => TrainFor(TimeSpan.FromSeconds(10)), TestContext.Current.CancellationToken);
            await Eventually.TrueAsync(() => tracer.Statistics.Delivered == step, "the records before the outage are delivered");
            long beforeOutage = step;

            Signal("STOP", mock.ProcessId!.Value);
            try
            {
                await Task.Run(() => TrainFor(Outage), TestContext.Current.CancellationToken);
                // Nothing was delivered while the brokers could not answer (else the outage was not one).
                Assert.True(tracer.Statistics.Delivered < step, $"delivered {tracer.Statistics.Delivered} of {step} during the outage");
            }
            finally
            {
                Signal("CONT", mock.ProcessId!.Value);
            }

            long outageEnd = step;

            await Task.Run(() => TrainFor(TimeSpan.FromSeconds(2)), TestContext.Current.CancellationToken);
            long steps = step;
            await Eventually.TrueAsync(() => tracer.Statistics.Delivered == steps, $"every one of {steps} records is delivered after the outage", seconds: 240,
                explain: () => tracer.Statistics.ToString());
            Assert.Equal(0, tracer.Statistics.Lost);

            // Every step is on the topic.
            var sequences = new HashSet<ulong>();
            using (IConsumer<Ignore, byte[]> consumer = new ConsumerBuilder<Ignore, byte[]>(new ConsumerConfig
            {
                BootstrapServers = bootstrap,
                GroupId = run,
                AutoOffsetReset = AutoOffsetReset.Earliest,
            }).Build())
            {
                consumer.Subscribe(topic);
                var deadline = Stopwatch.StartNew();
                while (sequences.Count < steps && deadline.Elapsed < TimeSpan.FromSeconds(60))
                {
                    if (consumer.Consume(TimeSpan.FromMilliseconds(200)) is { } message
                        && StepRecordDecoder.TryDecode(message.Message.Value, out StepRecord? record, out _) && record.RunId == run)
                    {
                        sequences.Add(record.Sequence);
                    }
                }
            }

            Assert.Equal(steps, sequences.Count);
            (double Median, double P99, double Max) before = Percentiles(tracerTimes.Take((int)beforeOutage));
            (double Median, double P99, double Max) during = Percentiles(tracerTimes.Skip((int)beforeOutage).Take((int)(outageEnd - beforeOutage)));
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{steps} steps, {outageEnd - beforeOutage} of them in the {Outage.TotalSeconds:F0} s outage; tracer time per step before: median {before.Median:F3} ms, p99 {before.P99:F3} ms, max {before.Max:F3} ms; during: median {during.Median:F3} ms, p99 {during.P99:F3} ms, max {during.Max:F3} ms"));
            // The training thread never touches Kafka (the sender does), so the outage must not show in its times.
            // Waiting on it would show as whole seconds (a request timeout); a loaded machine preempts a thread for a few
            // milliseconds now and then, before the outage as during it, which is not the tracer waiting.
            Assert.True(during.P99 <= Math.Max(1.0, 2 * before.P99), $"p99 of the tracer's time per step is {during.P99:F3} ms in the outage, {before.P99:F3} ms before it");
            Assert.True(during.Max < 100, $"a step spent {during.Max:F1} ms in the tracer during the outage");
        }
        finally
        {
            await mock.StopAsync();
        }
    }

    private static (double Median, double P99, double Max) Percentiles(IEnumerable<double> values)
    {
        double[] sorted = [.. values.Order()];
        return (sorted[sorted.Length / 2], sorted[(int)(sorted.Length * 0.99)], sorted[^1]);
    }

    private static void Signal(string signal, int processId)
    {
        using var kill = Process.Start(new ProcessStartInfo("kill", ["-" + signal, processId.ToString(CultureInfo.InvariantCulture)]) { UseShellExecute = false })!;
        kill.WaitForExit();
        Assert.Equal(0, kill.ExitCode);
    }
}

/// <summary>Runs <see cref="KafkaOutageTests"/> alone (see there).</summary>
[CollectionDefinition(nameof(KafkaOutageTests), DisableParallelization = true)]
public sealed class KafkaOutageRunsAlone;
