using Confluent.Kafka;
using Microsoft.Extensions.Logging;

namespace Monitor.Tracing;

/// <summary>
/// Routes librdkafka's own log lines (connection failures, broker state changes, configuration warnings) to an
/// <see cref="ILogger"/>. Without a log handler Confluent.Kafka writes them raw to stderr, beside and unlike the
/// application's log; every Kafka client this repository builds sets <see cref="Handler"/> instead.
/// </summary>
public static class KafkaClientLog
{
    /// <summary>The <see cref="LogLevel"/> of a syslog level: emergency, alert and critical are
    /// <see cref="LogLevel.Critical"/>; notice and info are <see cref="LogLevel.Information"/>.</summary>
    public static LogLevel LevelOf(SyslogLevel level) => level switch
    {
        SyslogLevel.Emergency or SyslogLevel.Alert or SyslogLevel.Critical => LogLevel.Critical,
        SyslogLevel.Error => LogLevel.Error,
        SyslogLevel.Warning => LogLevel.Warning,
        SyslogLevel.Notice or SyslogLevel.Info => LogLevel.Information,
        _ => LogLevel.Debug,
    };

    /// <summary>
    /// A log handler for a Confluent.Kafka builder (<c>SetLogHandler</c>) that writes each line to
    /// <paramref name="logger"/>, or discards it when <paramref name="logger"/> is null (never to stderr).
    /// </summary>
    /// <remarks>librdkafka calls it on its own threads; it never throws (a failing logger loses the line).</remarks>
    public static Action<T, LogMessage> Handler<T>(ILogger? logger) => (_, message) => Write(logger, message);

    /// <summary>
    /// An error handler for a Confluent.Kafka builder (<c>SetErrorHandler</c>) that writes client errors (all brokers
    /// down, authentication failed: state changes, so rare) to <paramref name="logger"/> as warnings, fatal ones as
    /// errors; discarded when <paramref name="logger"/> is null.
    /// </summary>
    public static Action<T, Error> ErrorHandler<T>(ILogger? logger, string client) => (_, error) =>
    {
        if (logger is null)
        {
            return;
        }

        try
        {
#pragma warning disable CA1848, CA1873 // Rare by construction.
            logger.Log(error.IsFatal ? LogLevel.Error : LogLevel.Warning, "Kafka {Client}: {Code}: {Reason}", client, error.Code, error.Reason);
#pragma warning restore CA1848, CA1873
        }
#pragma warning disable CA1031 // An exception must not reach librdkafka's thread.
        catch (Exception)
#pragma warning restore CA1031
        {
            // Nowhere left to report to.
        }
    };

    private static void Write(ILogger? logger, LogMessage message)
    {
        LogLevel level = LevelOf(message.Level);
        if (logger is null || !logger.IsEnabled(level))
        {
            return;
        }

        try
        {
#pragma warning disable CA1848 // One template for every librdkafka line; the level is data.
            logger.Log(level, "librdkafka {Client} {Facility}: {Message}", message.Name, message.Facility, message.Message);
#pragma warning restore CA1848
        }
#pragma warning disable CA1031 // An exception must not reach librdkafka's thread.
        catch (Exception)
#pragma warning restore CA1031
        {
            // Nowhere left to report to.
        }
    }
}
