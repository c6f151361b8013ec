using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Monitor.Analysis;
using Monitor.Contracts.V1;
using Monitor.Service;
using Monitor.Service.Notifications;
using Monitor.Service.Rules;

namespace Monitor.Cli;

/// <summary><c>monitor replay</c> and <c>monitor rules ...</c>: the analysis engine offline.</summary>
internal static partial class ReplayCommands
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public static Command Replay()
    {
        var rules = new Option<FileInfo?>("--rules") { Description = "Rule file (YAML or .json). Default: the default rule set (`monitor rules default`)." };
        var input = new Option<FileInfo>("--input") { Description = "Recorded step records: JSON lines (one protobuf-JSON record per line) or, for .pb/.bin, length-delimited protobuf (`monitor demo --record FILE` writes either).", Required = true };
        var format = new Option<string?>("--format") { Description = "jsonl or protobuf; default from the file extension." };
        format.AcceptOnlyFromAmong("jsonl", "protobuf");
        var command = new Command("replay", "Evaluate rules over recorded step records with the same engine as the service, and print every alert transition (pending, firing, resolved, inactive) as a JSON line, in the alerts topic's format.")
        {
            rules, input, format,
        };
        command.SetAction(parse =>
        {
            TextWriter output = parse.InvocationConfiguration.Output;
            TextWriter error = parse.InvocationConfiguration.Error;
            if (LoadRules(parse.GetValue(rules), error, "monitor replay") is not { } bindings)
            {
                return 2;
            }

            FileInfo path = parse.GetValue(input)!;
            if (!path.Exists)
            {
                error.WriteLine($"monitor replay: {path.FullName} does not exist");
                return 2;
            }

            StepRecordFileFormat? chosen = parse.GetValue(format) switch
            {
                "jsonl" => StepRecordFileFormat.JsonLines,
                "protobuf" => StepRecordFileFormat.Protobuf,
                _ => null,
            };
            var replay = new RecordReplay(bindings, transition => output.WriteLine(AlertJson.Serialize(transition)));
            try
            {
                replay.Run(StepRecordFile.Read(path.FullName, chosen));
            }
            catch (InvalidDataException ex)
            {
                error.WriteLine($"monitor replay: {ex.Message} (after {replay.Records} records)");
                return 1;
            }

            error.WriteLine($"monitor replay: {replay.Summary}");
            return 0;
        });
        return command;
    }

    public static Command Rules()
    {
        var list = new Command("list", "List the built-in rules with their parameters, defaults and what they need traced.");
        list.SetAction(parse =>
        {
            TextWriter output = parse.InvocationConfiguration.Output;
            foreach ((string name, Func<ITrainingRule> factory) in RuleCatalog.BuiltIn.OrderBy(r => r.Key, StringComparer.Ordinal))
            {
                ITrainingRule rule = factory();
                output.WriteLine(name);
                // A stored reference is loaded from its referenceFile: not a parameter of its own.
                foreach (var property in rule.GetType().GetProperties()
                    .Where(p => p.CanWrite && p.Name is not "Name" and not "Window" && p.PropertyType != typeof(Monitor.Analysis.Drift.DriftReferenceTable))
                    .OrderBy(p => p.Name != "Selector"))
                {
                    output.WriteLine($"  {JsonNamingPolicy.CamelCase.ConvertName(property.Name)} = {Format(property.GetValue(rule))}");
                }

                foreach (TensorRequirement requirement in rule.Requirements)
                {
                    output.WriteLine($"  needs {requirement.Collection}{(requirement.Raw ? " (raw values)" : "")}: {requirement.Why}");
                }
            }

            return 0;
        });
        var file = new Argument<FileInfo>("file") { Description = "The rule file to check." };
        var check = new Command("check", "Validate a rule file: every problem is listed, naming its rule and field.") { file };
        check.SetAction(parse =>
        {
            try
            {
                IReadOnlyList<RuleBinding> bindings = RuleConfiguration.Load(parse.GetValue(file)!.FullName, RuleCatalog.BuiltIn);
                parse.InvocationConfiguration.Output.WriteLine($"{bindings.Count} rules OK: {string.Join(", ", bindings.Select(b => b.AlertName))}");
                return 0;
            }
            catch (RuleConfigurationException ex)
            {
                foreach (string problem in ex.Problems)
                {
                    parse.InvocationConfiguration.Error.WriteLine(problem);
                }

                return 2;
            }
        });
        var defaults = new Command("default", "Print the default rule set (YAML): a starting point for your own rule file.");
        defaults.SetAction(parse =>
        {
            parse.InvocationConfiguration.Output.Write(RuleCatalog.DefaultRuleFile);
            return 0;
        });
        return new Command("rules", "Inspect the rule library, print the default rule set, check rule files and run rules over a trial.") { list, defaults, check, RunOverTrial() };
    }

    private static string Format(object? value) => value switch
    {
        null => "null",
        IFormattable formattable => formattable.ToString(null, System.Globalization.CultureInfo.InvariantCulture),
        // As a rule file's selector is written.
        TensorSelector selector => "{ collections: [" + string.Join(", ", selector.Collections.Select(c => c.ToString().ToLowerInvariant())) + "]"
            + (selector.Include.Count > 0 ? ", include: [" + string.Join(", ", selector.Include) + "]" : "")
            + (selector.Exclude.Count > 0 ? ", exclude: [" + string.Join(", ", selector.Exclude) + "]" : "") + " }",
        IReadOnlyDictionary<string, string> map => "{" + string.Join(", ", map.Select(p => $"{p.Key}: {p.Value}")) + "}",
        System.Collections.IEnumerable items and not string => "[" + string.Join(", ", items.Cast<object>()) + "]",
        _ => value.ToString() ?? "",
    };

    /// <summary>The rule file's bindings, or the default rule set; null (the problem written) when the file is refused.</summary>
    private static IReadOnlyList<RuleBinding>? LoadRules(FileInfo? file, TextWriter error, string command)
    {
        try
        {
            return file is null ? RuleCatalog.DefaultRules() : RuleConfiguration.Load(file.FullName, RuleCatalog.BuiltIn);
        }
        catch (RuleConfigurationException ex)
        {
            error.WriteLine($"{command}: {ex.Message}");
            return null;
        }
    }

    /// <summary>
    /// A transition as <c>monitor demo</c> prints it: <c>ALERT FIRING|RESOLVED rule run= rank= tensor= [feature=] step=
    /// value=: description</c>; null for the other transitions (pending, a pending one dropped).
    /// </summary>
    public static string? AlertLine(AlertTransition transition)
    {
        if (transition.State != AlertState.Firing && !transition.IsResolution)
        {
            return null;
        }

        string what = transition.IsResolution ? "RESOLVED" : "FIRING  ";
        AlertIdentity id = transition.Identity;
        return string.Create(CultureInfo.InvariantCulture,
            $"ALERT {what} {transition.RuleName} run={id[AlertLabels.Run]} rank={id[AlertLabels.Rank]} tensor={id[AlertLabels.Tensor]}{(id[AlertLabels.Feature] is { Length: > 0 } feature ? " feature=" + feature : "")} step={transition.Step} value={transition.Value:G3}: {transition.Description}");
    }

    /// <summary>
    /// The engine over recorded records, as <c>monitor replay</c> and <c>monitor rules run</c> run it: one
    /// <see cref="AnalysisEngine"/> whose time follows the records' event times, so timed rules (StalledTraining) see the
    /// gaps between them; every transition goes to the sink in order.
    /// </summary>
    private sealed class RecordReplay(IReadOnlyList<RuleBinding> bindings, Action<AlertTransition> sink)
    {
        private readonly ReplayClock _clock = new();
        private AnalysisEngine? _engine;

        public long Records { get; private set; }

        public long Transitions { get; private set; }

        public string Summary =>
            $"{Records} records, {Transitions} alert transitions, {_engine?.RuleFaults ?? 0} rule faults, {_engine?.LateRecords ?? 0} late and {_engine?.DuplicateRecords ?? 0} duplicate records skipped";

        public void Run(IEnumerable<StepRecord> records)
        {
            _engine ??= new AnalysisEngine(bindings, _clock);
            foreach (StepRecord record in records)
            {
                Records++;
                if (record.EventTimeUnixNanos > 0)
                {
                    _clock.Now = DateTimeOffset.UnixEpoch.AddTicks(record.EventTimeUnixNanos / 100);
                    Emit(_engine.Tick());
                }

                Emit(_engine.Process(record));
            }
        }

        private void Emit(IReadOnlyList<AlertTransition> transitions)
        {
            foreach (AlertTransition transition in transitions)
            {
                Transitions++;
                sink(transition);
            }
        }
    }

    private sealed class ReplayClock : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = DateTimeOffset.UnixEpoch;

        public override DateTimeOffset GetUtcNow() => Now;
    }
}
