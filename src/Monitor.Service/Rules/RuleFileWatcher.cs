using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Monitor.Analysis;

namespace Monitor.Service.Rules;

/// <summary>
/// Watches a rule file and loads it again when its content changes, so rules change without a restart. A file that
/// does not load is ignored (the rules in force stay) and its problems are logged and counted.
/// </summary>
/// <remarks>
/// Changes are noticed by a <see cref="FileSystemWatcher"/> and, because file-change events are unreliable on some
/// file systems (network and container mounts), by comparing the content's hash every <c>pollInterval</c>. The loaded
/// rules are handed over through <see cref="TryTake"/>, which the analysis thread calls between records.
/// Thread-safe.
/// </remarks>
public sealed class RuleFileWatcher : IDisposable
{
    private readonly string _path;
    private readonly IReadOnlyDictionary<string, Func<ITrainingRule>> _catalog;
    private readonly ILogger? _logger;
    private readonly FileSystemWatcher? _watcher;
    private readonly ITimer _poll;
    private readonly Lock _gate = new();
    private byte[] _hash;
    private IReadOnlyList<RuleBinding>? _pending;
    private long _reloads, _failures;
    private string? _lastError;

    /// <summary>Loads the file once (it must be valid) and starts watching it.</summary>
    /// <exception cref="RuleConfigurationException">The file is invalid at start.</exception>
    public RuleFileWatcher(string path, IReadOnlyDictionary<string, Func<ITrainingRule>> catalog, TimeProvider timeProvider, TimeSpan pollInterval, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(timeProvider);
        _path = Path.GetFullPath(path);
        _catalog = catalog;
        _logger = logger;
        Initial = RuleConfiguration.Load(_path, catalog);
        _hash = Hash();
        string? directory = Path.GetDirectoryName(_path);
        if (directory is not null && Directory.Exists(directory))
        {
            _watcher = new FileSystemWatcher(directory, Path.GetFileName(_path))
            {
                NotifyFilter = NotifyFilters.LastWrite | NotifyFilters.FileName | NotifyFilters.Size | NotifyFilters.CreationTime,
            };
            _watcher.Changed += (_, _) => Check();
            _watcher.Created += (_, _) => Check();
            _watcher.Renamed += (_, _) => Check();
            _watcher.EnableRaisingEvents = true;
        }

        _poll = timeProvider.CreateTimer(_ => Check(), null, pollInterval, pollInterval);
    }

    /// <summary>The rules loaded at start.</summary>
    public IReadOnlyList<RuleBinding> Initial { get; }

    /// <summary>Successful reloads so far.</summary>
    public long Reloads => Interlocked.Read(ref _reloads);

    /// <summary>Failed reloads so far (the previous rules stayed).</summary>
    public long Failures => Interlocked.Read(ref _failures);

    /// <summary>Why the last reload failed, if it did.</summary>
    public string? LastError => Volatile.Read(ref _lastError);

    /// <summary>Takes rules loaded since the last call, if any.</summary>
    public bool TryTake(out IReadOnlyList<RuleBinding> rules)
    {
        lock (_gate)
        {
            rules = _pending ?? [];
            bool any = _pending is not null;
            _pending = null;
            return any;
        }
    }

    /// <summary>Checks the file now (also called by the watcher and the poll).</summary>
    public void Check()
    {
        lock (_gate)
        {
            byte[] hash;
            try
            {
                hash = Hash();
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Mid-write or briefly absent (editors replace files): the next check sees the final content.
                return;
            }

            if (hash.AsSpan().SequenceEqual(_hash))
            {
                return;
            }

            _hash = hash;
            try
            {
                _pending = RuleConfiguration.Load(_path, _catalog);
                Interlocked.Increment(ref _reloads);
                Volatile.Write(ref _lastError, null);
                Log(LogLevel.Information, $"Reloaded {_pending.Count} rules from {_path}");
            }
            catch (Exception ex) when (ex is RuleConfigurationException or ArgumentException or InvalidOperationException or IOException)
            {
                // Never let a bad file escape onto the timer or watcher thread (it would end the process).
                Interlocked.Increment(ref _failures);
                Volatile.Write(ref _lastError, ex.Message);
                Log(LogLevel.Error, $"Rule file {_path} not reloaded, the rules in force stay: {ex.Message}");
            }
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _watcher?.Dispose();
        _poll.Dispose();
    }

    private byte[] Hash() => SHA256.HashData(File.ReadAllBytes(_path));

    private void Log(LogLevel level, string message)
    {
#pragma warning disable CA1848, CA2254, CA1873 // Rare path; the message is data.
        _logger?.Log(level, message);
#pragma warning restore CA1848, CA2254, CA1873
    }
}
