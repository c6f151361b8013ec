using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Monitor.Service.Notifications;

/// <summary>
/// Logs at most one message per key (e.g. one per target) per interval, and says how many were suppressed in
/// between, so a target that fails for an hour writes dozens of lines, not millions. Never throws.
/// </summary>
internal sealed class RateLimitedLog(ILogger logger, TimeProvider time, TimeSpan interval)
{
    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);

    public void Warning(string key, Exception? exception, string message) => Write(LogLevel.Warning, key, exception, message);

    public void Error(string key, Exception? exception, string message) => Write(LogLevel.Error, key, exception, message);

    private void Write(LogLevel level, string key, Exception? exception, string message)
    {
        try
        {
            if (!logger.IsEnabled(level))
            {
                return;
            }

            Entry entry = _entries.GetOrAdd(key, _ => new Entry());
            long suppressed;
            lock (entry)
            {
                long now = time.GetTimestamp();
                if (entry.LastLogged != 0 && time.GetElapsedTime(entry.LastLogged, now) < interval)
                {
                    entry.Suppressed++;
                    return;
                }

                entry.LastLogged = now;
                suppressed = entry.Suppressed;
                entry.Suppressed = 0;
            }

            string text = suppressed == 0 ? message : $"{message} ({suppressed} similar messages suppressed)";
#pragma warning disable CA2254 // The message is data, logged rarely by construction.
            logger.Log(level, exception, text);
#pragma warning restore CA2254
        }
#pragma warning disable CA1031 // Logging must never break the dispatcher.
        catch (Exception)
#pragma warning restore CA1031
        {
            // A failing logger has nowhere to report to; the counters still tell the story.
        }
    }

    private sealed class Entry
    {
        public long LastLogged;
        public long Suppressed;
    }
}
