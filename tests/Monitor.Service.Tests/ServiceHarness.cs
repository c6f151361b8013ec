using System.Diagnostics;
using System.Globalization;
using Monitor.Analysis;
using Monitor.Contracts;
using Monitor.Contracts.Transport;
using Monitor.Contracts.V1;

namespace Monitor.Service.Tests;

/// <summary>A service on the in-process bus, listening on a free port, plus helpers to feed and scrape it.</summary>
internal sealed class ServiceHarness : IAsyncDisposable
{
    private readonly HttpClient _http = new();
    private readonly IRecordProducer _producer;

    private ServiceHarness(InProcessBus bus, MonitorService service)
    {
        Bus = bus;
        Service = service;
        _producer = bus.CreateProducer();
    }

    public InProcessBus Bus { get; }

    public MonitorService Service { get; }

    public List<AlertTransition> Alerts { get; } = [];

    public static async Task<ServiceHarness> StartAsync(MonitorServiceOptions? options = null, IRecordProducer? deadLetters = null, IEnumerable<RuleBinding>? rules = null)
    {
        var bus = new InProcessBus();
        options ??= new MonitorServiceOptions();
        var effective = new MonitorServiceOptions
        {
            ListenUrl = "http://127.0.0.1:0",
            MaxTensorSeries = options.MaxTensorSeries,
            SeriesEvictionIdle = options.SeriesEvictionIdle,
            HistogramTensors = options.HistogramTensors,
            MaxHistogramTensors = options.MaxHistogramTensors,
            StepsTopic = options.StepsTopic,
            DeadLetterTopic = options.DeadLetterTopic,
            RecordFile = options.RecordFile,
            MaxDeadLettersInFlight = options.MaxDeadLettersInFlight,
            LagInterval = options.LagInterval,
        };
        var service = new MonitorService(effective, bus.CreateConsumer(effective.StepsTopic), deadLetters ?? bus.CreateProducer(), rules: rules);
        var harness = new ServiceHarness(bus, service);
        service.AlertChanged += a =>
        {
            lock (harness.Alerts)
            {
                harness.Alerts.Add(a);
            }
        };
        await service.StartAsync(TestContext.Current.CancellationToken);
        return harness;
    }

    public static StepRecord Record(string run, uint rank, long step, params (string Name, Collection Collection, double AbsMean)[] tensors)
    {
        var record = new StepRecord
        {
            SchemaVersion = 1,
            RunId = run,
            Rank = rank,
            WorldSize = rank + 1,
            Step = step,
            Mode = Mode.Train,
            EventTimeUnixNanos = 1_700_000_000_000_000_000 + (step * 1_000_000_000),
            Sequence = (ulong)step + 1,
        };
        foreach ((string name, Collection collection, double absMean) in tensors)
        {
            var tensor = new TensorRecord
            {
                Name = name,
                Dtype = DType.Float32,
                Summary = new TensorSummary { Count = 10, Min = -absMean, Max = absMean, Mean = absMean, AbsMean = absMean, L2 = absMean * 3, L1 = absMean * 10 },
            };
            tensor.Collections.Add(collection);
            tensor.Shape.Add(10);
            record.Tensors.Add(tensor);
        }

        return record;
    }

    public void Send(StepRecord record, IReadOnlyList<KeyValuePair<string, byte[]>>? headers = null) =>
        SendRaw(RecordKey.Format(record.RunId, (int)record.Rank), Google.Protobuf.MessageExtensions.ToByteArray(record), headers);

    public void SendRaw(string key, byte[] payload, IReadOnlyList<KeyValuePair<string, byte[]>>? headers = null) =>
        _producer.Produce(MonitorTopics.Steps, key, payload, headers, report => Assert.True(report.Delivered, report.Error));

    public async Task<string> ScrapeAsync(string path = "metrics")
    {
        using HttpResponseMessage response = await _http.GetAsync(new Uri(Service.BaseAddress!, path), TestContext.Current.CancellationToken);
        return await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
    }

    public async Task<int> StatusAsync(string path)
    {
        using HttpResponseMessage response = await _http.GetAsync(new Uri(Service.BaseAddress!, path), TestContext.Current.CancellationToken);
        return (int)response.StatusCode;
    }

    /// <summary>Waits until the service has processed <paramref name="count"/> records (10 s deadline).</summary>
    public Task WaitForProcessedAsync(long count) =>
        Eventually.TrueAsync(() => Service.Statistics.Processed >= count, $"service processed {count} records");

    /// <summary>The value of one Prometheus sample line, e.g. <c>monitor_records_decoded_total</c>; null when absent.</summary>
    public static double? Sample(string exposition, string series)
    {
        foreach (string line in exposition.Split('\n'))
        {
            if (line.StartsWith(series + " ", StringComparison.Ordinal))
            {
                return double.Parse(line[(series.Length + 1)..], CultureInfo.InvariantCulture);
            }
        }

        return null;
    }

    public async ValueTask DisposeAsync()
    {
        await Service.DisposeAsync();
        _producer.Dispose();
        _http.Dispose();
    }
}

/// <summary>Polling with a deadline instead of sleeping.</summary>
internal static class Eventually
{
    public static async Task TrueAsync(Func<bool> condition, string what, double seconds = 10)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed.TotalSeconds < seconds, $"timed out after {seconds} s waiting until {what}");
            await Task.Delay(10, TestContext.Current.CancellationToken);
        }
    }
}
