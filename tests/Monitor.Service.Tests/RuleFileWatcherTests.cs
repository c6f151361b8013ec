using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using Monitor.Analysis;
using Monitor.Analysis.Rules;
using Monitor.Service.Rules;

namespace Monitor.Service.Tests;

public sealed class RuleFileWatcherTests : IDisposable
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    private readonly string _directory = Directory.CreateTempSubdirectory("monitor-watch-").FullName;
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly ListLogger _logger = new();
    private readonly string _file;

    public RuleFileWatcherTests() => _file = Path.Combine(_directory, "rules.yaml");

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static string Rules(double threshold, string name = "Vanishing") => $"""
        rules:
          - rule: VanishingGradient
            name: {name}
            parameters: {"{"}threshold: {threshold.ToString(CultureInfo.InvariantCulture)}{"}"}
        """;

    /// <summary>Replaces the file in one step (as editors and config-map updates do), so no check sees half a file.</summary>
    private void Write(string text)
    {
        string temporary = _file + ".tmp";
        File.WriteAllText(temporary, text);
        File.Move(temporary, _file, overwrite: true);
    }

    private RuleFileWatcher Start(string text)
    {
        Write(text);
        return new RuleFileWatcher(_file, RuleCatalog.BuiltIn, _time, PollInterval, _logger);
    }

    private static double ThresholdOf(IReadOnlyList<RuleBinding> rules) => Assert.IsType<VanishingGradientRule>(Assert.Single(rules).Rule).Threshold;

    /// <summary>Calls <paramref name="step"/> until <paramref name="condition"/> holds, failing after the deadline.</summary>
    private static async Task UntilAsync(Func<bool> condition, Action step, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < Deadline, $"timed out after {Deadline.TotalSeconds} s waiting until {what}");
            step();
            await Task.Delay(10, TestContext.Current.CancellationToken);
        }
    }

    [Fact]
    public void Constructor_LoadsTheInitialRules()
    {
        using RuleFileWatcher watcher = Start(Rules(1e-3));

        Assert.Equal(1e-3, ThresholdOf(watcher.Initial));
        Assert.Equal("Vanishing", watcher.Initial[0].AlertName);
        Assert.Equal((0L, 0L), (watcher.Reloads, watcher.Failures));
        Assert.Null(watcher.LastError);
        Assert.False(watcher.TryTake(out IReadOnlyList<RuleBinding> none));
        Assert.Empty(none);
    }

    [Fact]
    public void Constructor_Throws_WhenTheFileIsInvalidAtStart()
    {
        Write("rules:\n  - rule: Nope\n");

        RuleConfigurationException ex = Assert.Throws<RuleConfigurationException>(() => new RuleFileWatcher(_file, RuleCatalog.BuiltIn, _time, PollInterval));

        Assert.StartsWith("rules[0] (Nope).rule: unknown rule 'Nope'", Assert.Single(ex.Problems), StringComparison.Ordinal);
    }

    [Fact]
    public void Constructor_Throws_WhenTheFileIsMissing()
    {
        Assert.Throws<RuleConfigurationException>(() => new RuleFileWatcher(_file, RuleCatalog.BuiltIn, _time, PollInterval));
    }

    [Fact]
    public void Check_HandsOverTheNewRulesOnce_WhenTheFileChanges()
    {
        using RuleFileWatcher watcher = Start(Rules(1e-3));

        Write(Rules(1e-5, name: "Renamed"));
        watcher.Check();

        Assert.True(watcher.TryTake(out IReadOnlyList<RuleBinding> rules));
        Assert.Equal(1e-5, ThresholdOf(rules));
        Assert.Equal("Renamed", rules[0].AlertName);
        Assert.False(watcher.TryTake(out _));
        Assert.Equal((1L, 0L), (watcher.Reloads, watcher.Failures));
        Assert.Contains(_logger.Messages, m => m.Level == LogLevel.Information && m.Text.StartsWith("Reloaded 1 rules from ", StringComparison.Ordinal));
    }

    [Fact]
    public void Check_DoesNotReload_WhenTheContentIsUnchanged()
    {
        using RuleFileWatcher watcher = Start(Rules(1e-3));

        Write(Rules(1e-3));
        watcher.Check();

        Assert.False(watcher.TryTake(out _));
        Assert.Equal(0, watcher.Reloads);
    }

    [Fact]
    public void TryTake_ReturnsTheLatestRules_WhenTheFileChangedTwiceBetweenTakes()
    {
        using RuleFileWatcher watcher = Start(Rules(1e-3));

        Write(Rules(1e-4));
        watcher.Check();
        Write(Rules(1e-5));
        watcher.Check();

        Assert.True(watcher.TryTake(out IReadOnlyList<RuleBinding> rules));
        Assert.Equal(1e-5, ThresholdOf(rules));
        Assert.Equal(2, watcher.Reloads);
    }

    [Fact]
    public void Check_KeepsTheRulesInForceAndCountsTheFailure_WhenTheRewriteIsInvalid_ThenRecovers()
    {
        using RuleFileWatcher watcher = Start(Rules(1e-3));

        Write("rules:\n  - rule: VanishingGradient\n    parameters: {threshold: -1}\n");
        watcher.Check();

        Assert.False(watcher.TryTake(out _));
        Assert.Equal((0L, 1L), (watcher.Reloads, watcher.Failures));
        Assert.Equal("invalid rule configuration: rules[0] (VanishingGradient).parameters.threshold: Threshold must be positive", watcher.LastError);
        Assert.Contains(_logger.Messages, m => m.Level == LogLevel.Error && m.Text.Contains("not reloaded, the rules in force stay", StringComparison.Ordinal));

        // Checking the same invalid content again is no new failure.
        watcher.Check();
        Assert.Equal(1, watcher.Failures);

        Write(Rules(1e-6));
        watcher.Check();

        Assert.True(watcher.TryTake(out IReadOnlyList<RuleBinding> rules));
        Assert.Equal(1e-6, ThresholdOf(rules));
        Assert.Equal((1L, 1L), (watcher.Reloads, watcher.Failures));
        Assert.Null(watcher.LastError);
    }

    [Fact]
    public void Check_IgnoresAMissingFile_AndLoadsItWhenItIsBack()
    {
        using RuleFileWatcher watcher = Start(Rules(1e-3));

        File.Delete(_file);
        watcher.Check();

        Assert.Equal((0L, 0L), (watcher.Reloads, watcher.Failures));
        Assert.False(watcher.TryTake(out _));

        Write(Rules(1e-4));
        watcher.Check();
        Assert.True(watcher.TryTake(out IReadOnlyList<RuleBinding> rules));
        Assert.Equal(1e-4, ThresholdOf(rules));
    }

    [Fact]
    public async Task Poll_PicksUpAChange_WithoutACheckCall()
    {
        using RuleFileWatcher watcher = Start(Rules(1e-3));
        IReadOnlyList<RuleBinding> rules = [];

        Write(Rules(1e-5));

        await UntilAsync(() => watcher.TryTake(out rules), () => _time.Advance(PollInterval), "the poll reloads the file");
        Assert.Equal(1e-5, ThresholdOf(rules));
    }

    [Fact]
    public async Task Poll_CountsAFailure_WithoutACheckCall()
    {
        using RuleFileWatcher watcher = Start(Rules(1e-3));

        Write("rules: [");

        await UntilAsync(() => watcher.Failures == 1, () => _time.Advance(PollInterval), "the poll fails to reload the file");
        Assert.StartsWith("invalid rule configuration: not valid YAML: ", watcher.LastError, StringComparison.Ordinal);
        Assert.False(watcher.TryTake(out _));
    }

    [Fact]
    public async Task FileEvents_PickUpAChange_WithoutPollingOrACheckCall()
    {
        // The fake clock never moves, so only the FileSystemWatcher can notice the change.
        using RuleFileWatcher watcher = Start(Rules(1e-3));
        IReadOnlyList<RuleBinding> rules = [];

        Write(Rules(1e-5));

        await UntilAsync(() => watcher.TryTake(out rules), () => { }, "the file system watcher reloads the file");
        Assert.Equal(1e-5, ThresholdOf(rules));
    }

    [Fact]
    public void Dispose_StopsPolling()
    {
        RuleFileWatcher watcher = Start(Rules(1e-3));
        watcher.Dispose();

        Write(Rules(1e-5));
        _time.Advance(PollInterval * 3);

        Assert.False(watcher.TryTake(out _));
        Assert.Equal(0, watcher.Reloads);
    }

    [Fact]
    public void Check_CountsAFailure_WhenTheRewriteRepeatsAJsonKey()
    {
        string path = Path.Combine(_directory, "rules.json");
        File.WriteAllText(path, """{"rules": [{"rule": "VanishingGradient"}]}""");
        using var watcher = new RuleFileWatcher(path, RuleCatalog.BuiltIn, _time, PollInterval);

        File.WriteAllText(path, """{"rules": [], "rules": []}""");
        watcher.Check();

        // The file-change event may also have caught the half-written file: at least one failure, never a crash.
        Assert.True(watcher.Failures >= 1);
        Assert.False(watcher.TryTake(out _));
    }

    private sealed class ListLogger : ILogger
    {
        private readonly Lock _gate = new();
        private readonly List<(LogLevel Level, string Text)> _messages = [];

        public IReadOnlyList<(LogLevel Level, string Text)> Messages
        {
            get
            {
                lock (_gate)
                {
                    return [.. _messages];
                }
            }
        }

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (_gate)
            {
                _messages.Add((logLevel, formatter(state, exception)));
            }
        }
    }
}
