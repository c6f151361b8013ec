using Confluent.Kafka;
using Microsoft.Extensions.Logging;

namespace Monitor.Transport.Kafka;

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
    /// <remarks>
    /// <para>A client retries a broker it cannot reach every second or so, and says so each time: lines of one kind
    /// (the same level, facility and text, numbers aside) are written once per <see cref="RepeatInterval"/>, and the
    /// next one written says how many were held back.</para>
    /// <para>librdkafka calls it on its own threads; it never throws (a failing logger loses the line).</para>
    /// </remarks>
    /// <param name="logger">Where the lines go; null discards them.</param>
    /// <param name="timeProvider">The clock of the repeat filter. Default <see cref="TimeProvider.System"/>.</param>
    public static Action<T, LogMessage> Handler<T>(ILogger? logger, TimeProvider? timeProvider = null)
    {
        var repeats = new RepeatFilter(timeProvider ?? TimeProvider.System);
        return (_, message) => Write(logger, message, repeats);
    }

    /// <summary>How often a line of one kind is written at most (see <see cref="Handler{T}"/>): one minute.</summary>
    public static TimeSpan RepeatInterval { get; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// An error handler for a Confluent.Kafka builder (<c>SetErrorHandler</c>) that writes client errors (all brokers
    /// down, authentication failed: state changes, so rare) to <paramref name="logger"/> as warnings, fatal ones as
    /// errors; discarded when <paramref name="logger"/> is null.
    /// </summary>
    /// <remarks>Errors of one kind are written once per <see cref="RepeatInterval"/>, as <see cref="Handler{T}"/> does.</remarks>
    /// <param name="logger">Where the errors go; null discards them.</param>
    /// <param name="client">Names the client in each line, e.g. <c>producer rank-0</c>.</param>
    /// <param name="timeProvider">The clock of the repeat filter. Default <see cref="TimeProvider.System"/>.</param>
    public static Action<T, Error> ErrorHandler<T>(ILogger? logger, string client, TimeProvider? timeProvider = null)
    {
        var repeats = new RepeatFilter(timeProvider ?? TimeProvider.System);
        return (_, error) =>
        {
            LogLevel level = error.IsFatal ? LogLevel.Error : LogLevel.Warning;
            if (logger is null || !logger.IsEnabled(level) || !repeats.ShouldWrite(level, error.Code.ToString(), error.Reason, out long held))
            {
                return;
            }

            try
            {
#pragma warning disable CA1848, CA1873 // Rare by construction (and held back when repeated).
                if (held == 0)
                {
                    logger.Log(level, "Kafka {Client}: {Code}: {Reason}", client, error.Code, error.Reason);
                }
                else
                {
                    logger.Log(level, "Kafka {Client}: {Code}: {Reason} ({Held} more like it in the last minute were not logged)", client, error.Code, error.Reason, held);
                }
#pragma warning restore CA1848, CA1873
            }
#pragma warning disable CA1031 // An exception must not reach librdkafka's thread.
            catch (Exception)
#pragma warning restore CA1031
            {
                // Nowhere left to report to.
            }
        };
    }

    private static void Write(ILogger? logger, LogMessage message, RepeatFilter repeats)
    {
        LogLevel level = LevelOf(message.Level);
        if (logger is null || !logger.IsEnabled(level) || !repeats.ShouldWrite(level, message.Facility, message.Message, out long held))
        {
            return;
        }

        try
        {
#pragma warning disable CA1848 // One template for every librdkafka line; the level is data.
            if (held == 0)
            {
                logger.Log(level, "librdkafka {Client} {Facility}: {Message}", message.Name, message.Facility, message.Message);
            }
            else
            {
                logger.Log(level, "librdkafka {Client} {Facility}: {Message} ({Held} more like it in the last minute were not logged)", message.Name, message.Facility, message.Message, held);
            }
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

/// <summary>
/// Lets the first line of a kind through, then at most one per <see cref="KafkaClientLog.RepeatInterval"/>, counting
/// those held back. A kind is the level, the facility (or error code) and the text with every run of digits taken as
/// one (so "after 0ms" and "after 3ms" are alike). Thread-safe.
/// </summary>
internal sealed class RepeatFilter(TimeProvider timeProvider)
{
    // A misbehaving client cannot grow this without bound: past this many kinds, it starts again.
    private const int MaxKinds = 1000;
    private readonly Dictionary<string, Seen> _seen = new(StringComparer.Ordinal);

    public bool ShouldWrite(LogLevel level, string facility, string text, out long held)
    {
        string kind = Kind(level, facility, text);
        DateTimeOffset now = timeProvider.GetUtcNow();
        lock (_seen)
        {
            if (_seen.TryGetValue(kind, out Seen? seen) && now - seen.WrittenAt < KafkaClientLog.RepeatInterval)
            {
                seen.Held++;
                held = 0;
                return false;
            }

            if (_seen.Count >= MaxKinds)
            {
                _seen.Clear();
            }

            held = seen?.Held ?? 0;
            _seen[kind] = new Seen { WrittenAt = now };
            return true;
        }
    }

    private static string Kind(LogLevel level, string facility, string text)
    {
        var kind = new System.Text.StringBuilder(facility.Length + text.Length + 4).Append((int)level).Append('|').Append(facility).Append('|');
        bool inDigits = false;
        foreach (char c in text)
        {
            bool digit = char.IsAsciiDigit(c);
            if (!digit || !inDigits)
            {
                kind.Append(digit ? '#' : c);
            }

            inDigits = digit;
        }

        return kind.ToString();
    }

    private sealed class Seen
    {
        public DateTimeOffset WrittenAt;
        public long Held;
    }
}
