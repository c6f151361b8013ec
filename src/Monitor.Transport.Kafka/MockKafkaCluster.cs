using Confluent.Kafka;
using Microsoft.Extensions.Logging;

namespace Monitor.Transport.Kafka;

/// <summary>
/// librdkafka's built-in mock cluster: real Kafka-protocol brokers on 127.0.0.1, hosted by a client of this process
/// for as long as this object lives. Any Kafka client, in this process or another, can bootstrap to
/// <see cref="BootstrapServers"/>. For demos and tests only: it keeps a bounded tail of each partition in memory and
/// auto-creates topics (4 partitions) on first use.
/// </summary>
public sealed class MockKafkaCluster : IDisposable
{
    private readonly IAdminClient _host;
    private int _disposed;

    /// <summary>Starts <paramref name="brokers"/> mock brokers.</summary>
    /// <param name="brokers">How many; default 1.</param>
    /// <param name="logger">Where the hosting client's librdkafka log lines go; default none: discarded (never stderr).</param>
    /// <exception cref="KafkaException">The brokers did not come up within 10 seconds.</exception>
    public MockKafkaCluster(int brokers = 1, ILogger? logger = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(brokers, 1);
        var config = new AdminClientConfig { ClientId = "monitor-mock-cluster-host" };
        config.Set("test.mock.num.brokers", brokers.ToString(System.Globalization.CultureInfo.InvariantCulture));
        _host = new AdminClientBuilder(config).SetLogHandler(KafkaClientLog.Handler<IAdminClient>(logger)).Build();
        Metadata metadata = _host.GetMetadata(TimeSpan.FromSeconds(10));
        BootstrapServers = string.Join(",", metadata.Brokers.Select(b => $"{b.Host}:{b.Port}"));
    }

    /// <summary>The mock brokers, <c>host:port,...</c>.</summary>
    public string BootstrapServers { get; }

    /// <summary>Stops the brokers (clients connected to them see a broker outage). Idempotent.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _host.Dispose();
        }
    }
}
