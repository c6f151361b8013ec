using System.Collections.Concurrent;
using Confluent.Kafka;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using Monitor.Transport.Kafka;

namespace Monitor.Tracing.Tests;

/// <summary>
/// librdkafka's lines go to the logger, but a broker that cannot be reached (retried every second or so, each time
/// logged) does not flood it: one line of a kind per minute, and the next says how many were held back.
/// </summary>
public sealed class KafkaClientLogTests
{
    private static LogMessage ConnectFailed(int afterMs) =>
        new("monitor-service#consumer-1", SyslogLevel.Error, "FAIL", $"127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused (after {afterMs}ms in state CONNECT)");

    [Fact]
    public void RepeatedLines_AreWrittenOncePerMinute_WithTheCountHeldBack()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 3, 12, 0, 0, TimeSpan.Zero));
        var logger = new ListLogger();
        Action<object?, LogMessage> handler = KafkaClientLog.Handler<object?>(logger, time);

        for (int i = 0; i < 40; i++)
        {
            handler(null, ConnectFailed(i % 3));
            time.Advance(TimeSpan.FromSeconds(1));
        }

        // Another kind of line is not held back by the first.
        handler(null, new LogMessage("monitor-service#consumer-1", SyslogLevel.Warning, "CONFWARN", "Configuration property x is deprecated"));
        time.Advance(TimeSpan.FromSeconds(20));
        handler(null, ConnectFailed(7));

        Assert.Equal(3, logger.Lines.Count());
        Assert.Contains("Connection refused (after 0ms in state CONNECT)", logger.Lines.First(), StringComparison.Ordinal);
        Assert.DoesNotContain("not logged", logger.Lines.First(), StringComparison.Ordinal);
        Assert.Contains("CONFWARN", logger.Lines.ElementAt(1), StringComparison.Ordinal);
        Assert.Contains("(39 more like it in the last minute were not logged)", logger.Lines.Last(), StringComparison.Ordinal);
        Assert.All(logger.Levels.Where((_, i) => i != 1), l => Assert.Equal(LogLevel.Error, l));
    }

    [Fact]
    public void RepeatedClientErrors_AreWrittenOncePerMinute()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 3, 12, 0, 0, TimeSpan.Zero));
        var logger = new ListLogger();
        Action<object?, Error> handler = KafkaClientLog.ErrorHandler<object?>(logger, "consumer", time);

        for (int i = 0; i < 10; i++)
        {
            handler(null, new Error(ErrorCode.Local_AllBrokersDown, "1/1 brokers are down"));
            time.Advance(TimeSpan.FromSeconds(10));
        }

        Assert.Equal(["Kafka consumer: Local_AllBrokersDown: 1/1 brokers are down", "Kafka consumer: Local_AllBrokersDown: 1/1 brokers are down (5 more like it in the last minute were not logged)"], logger.Lines);
    }

    [Fact]
    public void WithoutALogger_LinesAreDiscarded_NotWrittenToStderr()
    {
        Action<object?, LogMessage> handler = KafkaClientLog.Handler<object?>(null);
        handler(null, ConnectFailed(0));
        Action<object?, Error> errors = KafkaClientLog.ErrorHandler<object?>(null, "producer");
        errors(null, new Error(ErrorCode.Local_AllBrokersDown, "down"));
    }

    private sealed class ListLogger : ILogger
    {
        private readonly ConcurrentQueue<(LogLevel Level, string Line)> _lines = new();

        public IEnumerable<string> Lines => _lines.Select(l => l.Line);

        public IEnumerable<LogLevel> Levels => _lines.Select(l => l.Level);

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            _lines.Enqueue((logLevel, formatter(state, exception)));
    }
}
