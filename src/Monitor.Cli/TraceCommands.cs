using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Monitor.Contracts;
using Monitor.ControlPlane;
using StackExchange.Redis;

namespace Monitor.Cli;

/// <summary><c>monitor trace ...</c>: read and change what a running job traces, through the control plane.</summary>
internal static class TraceCommands
{
    /// <summary>Environment variable that sets the default of <c>--redis</c>.</summary>
    public const string RedisVariable = "MONITOR_REDIS";

    private const int ExitInvalid = 2;
    private const int ExitUnavailable = 3;

    public static Command Create()
    {
        return new Command("trace", "Show and change what a running job traces (the selection), per run and per rank, through Redis. Changes apply at the next step, without a restart.")
        {
            Tensors(), Get(), Set(), Clear(), History(), Workers(), Schema(),
        };
    }

    private const string DefaultRedis = "localhost:6379";

    // No DefaultValueFactory: --help would print the variable, which may hold a password.
    internal static Option<string?> RedisOption() => new("--redis")
    {
        Description = $"Redis (or Garnet) of the control plane, StackExchange.Redis syntax (host:port[,user=...,password=...,ssl=true]). Default: ${RedisVariable}, else {DefaultRedis}.",
    };

    private static Option<string> RunOption() => new("--run") { Description = "Run id.", Required = true };

    private static Option<bool> JsonOption() => new("--json") { Description = "Print JSON instead of text." };

    private static Command Tensors()
    {
        Option<string?> redis = RedisOption();
        Option<string> run = RunOption();
        Option<bool> json = JsonOption();
        var rank = new Option<int?>("--rank") { Description = "Only this rank (default: every rank with a heartbeat)." };
        var command = new Command("tensors", "List the tensors the run's ranks can trace (their catalogs), with shape, dtype and collections.") { redis, run, rank, json };
        command.SetAction((parse, ct) => WithStoreAsync(parse, redis, async (store, output) =>
        {
            string runId = parse.GetValue(run)!;
            IEnumerable<int> ranks = parse.GetValue(rank) is { } one ? [one] : (await store.WorkersAsync(runId)).Select(w => w.Rank);
            var catalogs = new SortedDictionary<int, IReadOnlyList<CatalogEntry>>();
            foreach (int r in ranks)
            {
                catalogs[r] = await store.CatalogAsync(runId, r);
            }

            if (parse.GetValue(json))
            {
                await output.WriteLineAsync(JsonSerializer.Serialize(catalogs.ToDictionary(c => c.Key.ToString(CultureInfo.InvariantCulture), c => c.Value), SelectionJson.Options));
                return 0;
            }

            if (catalogs.Count == 0 || catalogs.Values.All(c => c.Count == 0))
            {
                await output.WriteLineAsync($"No catalog published for run '{runId}' (is a worker of that run running with the control plane?).");
                return 1;
            }

            foreach ((int r, IReadOnlyList<CatalogEntry> entries) in catalogs)
            {
                await output.WriteLineAsync($"rank {r}: {entries.Count} tensors");
                int width = Math.Max(6, entries.Max(e => e.Name.Length));
                foreach (CatalogEntry entry in entries)
                {
                    await output.WriteLineAsync($"  {entry.Name.PadRight(width)}  {string.Join(",", entry.Collections),-12}  {entry.DType,-8}  [{string.Join(", ", entry.Shape)}]");
                }
            }

            return 0;
        }, ct));
        return command;
    }

    private static Command Get()
    {
        Option<string?> redis = RedisOption();
        Option<string> run = RunOption();
        Option<bool> json = JsonOption();
        var rank = new Option<int?>("--rank") { Description = "The selection this rank applies (its own, else the run's)." };
        var command = new Command("get", "Print the stored selection of a run, or the one a rank applies.") { redis, run, rank, json };
        command.SetAction((parse, ct) => WithStoreAsync(parse, redis, async (store, output) =>
        {
            string runId = parse.GetValue(run)!;
            EffectiveSelection? effective = await store.GetAsync(runId, parse.GetValue(rank));
            if (effective is null)
            {
                await output.WriteLineAsync(parse.GetValue(json) ? "null" : $"No selection stored for run '{runId}'{(parse.GetValue(rank) is { } r ? $" rank {r}" : "")}: workers trace what they were started with.");
                return parse.GetValue(json) ? 0 : 1;
            }

            if (!parse.GetValue(json))
            {
                await output.WriteLineAsync(effective.Rank is { } own ? $"# rank {own}'s own selection, version {effective.Selection.Version}" : $"# the run's selection, version {effective.Selection.Version}");
            }

            await output.WriteLineAsync(SelectionJson.Serialize(effective.Selection, indented: !parse.GetValue(json)));
            return 0;
        }, ct));
        return command;
    }

    private static Command Set()
    {
        Option<string?> redis = RedisOption();
        Option<string> run = RunOption();
        Option<bool> json = JsonOption();
        var ranks = new Option<int[]>("--rank") { Description = "Give these ranks their own selection (repeatable); the other ranks keep theirs. Default: the whole run.", AllowMultipleArgumentsPerToken = true };
        var file = new Option<FileInfo?>("--file") { Description = "A selection JSON document (see `monitor trace schema`). Exclusive with the options that build one." };
        var include = new Option<string[]>("--include") { Description = "COLLECTION:REGEX — trace the collection's tensors whose names match (repeatable).", AllowMultipleArgumentsPerToken = false };
        var exclude = new Option<string[]>("--exclude") { Description = "COLLECTION:REGEX — but not those matching (repeatable)." };
        var collection = new Option<string[]>("--collection") { Description = "COLLECTION — trace every tensor of it (repeatable)." };
        var tensor = new Option<string[]>("--tensor") { Description = "NAME — trace this tensor whatever its collections (repeatable)." };
        var raw = new Option<string[]>("--raw") { Description = "COLLECTION — also capture raw values of its traced tensors (repeatable)." };
        var noHistogram = new Option<string[]>("--no-histogram") { Description = "COLLECTION — leave the histogram out for it (repeatable)." };
        var everySteps = new Option<int?>("--every-steps") { Description = "Trace every N steps." };
        var everySeconds = new Option<double?>("--every-seconds") { Description = "Trace a step every S seconds." };
        var stepRange = new Option<string?>("--step-range") { Description = "A:B — trace steps A to B, both included." };
        var chiefOnly = new Option<bool>("--chief-only") { Description = "Only rank 0 traces." };
        var modes = new Option<string[]>("--mode") { Description = "Trace only in these modes: train, eval, predict (repeatable)." };
        var limitSize = new Option<int?>("--limit-size") { Description = $"Raw elements per tensor per step (default {TraceSelection.DefaultLimitSize}, at most {TraceSelection.MaxLimitSize})." };
        var budget = new Option<string?>("--budget") { Description = $"Overhead budget: a fraction of the step time in (0, 1] (e.g. 0.02), or \"{TraceBudget.NoneWord}\" to thin nothing. Default: the worker's (2%)." };
        var pin = new Option<string[]>("--pin") { Description = "REGEX — tensors the overhead budget never thins, e.g. those a rule needs every step (repeatable)." };
        var who = new Option<string>("--who") { Description = "Recorded in the audit trail.", DefaultValueFactory = _ => Environment.UserName };
        var command = new Command("set", "Store a new selection for a run or some of its ranks; workers apply it at their next step. The selection is validated first: nothing is stored when it is invalid.")
        {
            redis, run, ranks, file, include, exclude, collection, tensor, raw, noHistogram, everySteps, everySeconds, stepRange, chiefOnly, modes, limitSize, budget, pin, who, json,
        };
        command.SetAction(async (parse, ct) =>
        {
            TextWriter error = parse.InvocationConfiguration.Error;
            TraceSelection selection;
            try
            {
                selection = parse.GetValue(file) is { } path
                    ? FromFile(path, parse, [include, exclude, collection, tensor, raw, noHistogram, modes, pin], [everySteps, everySeconds, limitSize, budget], stepRange, chiefOnly)
                    : Build(parse.GetValue(include) ?? [], parse.GetValue(exclude) ?? [], parse.GetValue(collection) ?? [], parse.GetValue(tensor) ?? [],
                        parse.GetValue(raw) ?? [], parse.GetValue(noHistogram) ?? [], parse.GetValue(everySteps), parse.GetValue(everySeconds),
                        parse.GetValue(stepRange), parse.GetValue(chiefOnly), parse.GetValue(modes) ?? [], parse.GetValue(limitSize),
                        ParseBudget(parse.GetValue(budget)), parse.GetValue(pin) ?? []);
                selection.EnsureValid();
            }
            catch (SelectionValidationException ex)
            {
                await error.WriteLineAsync($"monitor trace set: {ex.Message}; nothing was stored");
                return ExitInvalid;
            }

            return await WithStoreAsync(parse, redis, async (store, output) =>
            {
                int[] targets = parse.GetValue(ranks) ?? [];
                TraceSelection stored = await store.SetAsync(parse.GetValue(run)!, selection, new SelectionChange(parse.GetValue(who)!, "cli"), targets, ct);
                await output.WriteLineAsync(parse.GetValue(json)
                    ? SelectionJson.Serialize(stored)
                    : $"Stored selection version {stored.Version} for run '{parse.GetValue(run)}'{(targets.Length == 0 ? "" : $", rank{(targets.Length > 1 ? "s" : "")} {string.Join(", ", stored.Ranks)}")}; workers apply it at their next step.");
                return 0;
            }, ct);
        });
        return command;
    }

    private static Command Clear()
    {
        Option<string?> redis = RedisOption();
        Option<string> run = RunOption();
        var rank = new Option<int>("--rank") { Description = "The rank whose own selection is removed; it falls back to the run's.", Required = true };
        var who = new Option<string>("--who") { Description = "Recorded in the audit trail.", DefaultValueFactory = _ => Environment.UserName };
        var command = new Command("clear", "Remove a rank's own selection; it goes back to the run's selection at its next step.") { redis, run, rank, who };
        command.SetAction((parse, ct) => WithStoreAsync(parse, redis, async (store, output) =>
        {
            bool removed = await store.ClearRankAsync(parse.GetValue(run)!, parse.GetValue(rank), new SelectionChange(parse.GetValue(who)!, "cli"), ct);
            await output.WriteLineAsync(removed ? $"Rank {parse.GetValue(rank)} follows the run's selection again." : $"Rank {parse.GetValue(rank)} had no selection of its own.");
            return removed ? 0 : 1;
        }, ct));
        return command;
    }

    private static Command History()
    {
        Option<string?> redis = RedisOption();
        Option<string> run = RunOption();
        Option<bool> json = JsonOption();
        var count = new Option<int>("--count") { Description = "Entries to show, newest first.", DefaultValueFactory = _ => 20 };
        var command = new Command("history", "Show who changed the run's selections, when, through what, and the versions.") { redis, run, count, json };
        command.SetAction((parse, ct) => WithStoreAsync(parse, redis, async (store, output) =>
        {
            IReadOnlyList<AuditEntry> entries = await store.HistoryAsync(parse.GetValue(run)!, parse.GetValue(count));
            if (parse.GetValue(json))
            {
                await output.WriteLineAsync(JsonSerializer.Serialize(entries, SelectionJson.Options));
                return 0;
            }

            foreach (AuditEntry entry in entries)
            {
                string scope = entry.Rank is { } r ? $"rank {r}" : "run";
                string versions = $"{entry.OldVersion?.ToString(CultureInfo.InvariantCulture) ?? "-"} -> {entry.NewVersion?.ToString(CultureInfo.InvariantCulture) ?? "-"}";
                await output.WriteLineAsync($"{entry.At:yyyy-MM-dd HH:mm:ss}Z  {entry.Action,-5}  {scope,-8}  {versions,-10}  {entry.Who} via {entry.Source}");
            }

            if (entries.Count == 0)
            {
                await output.WriteLineAsync("No changes recorded.");
            }

            return 0;
        }, ct));
        return command;
    }

    private static Command Workers()
    {
        Option<string?> redis = RedisOption();
        Option<string> run = RunOption();
        Option<bool> json = JsonOption();
        var command = new Command("workers", "Show the run's ranks with their last heartbeat, selection version and any refused selection.") { redis, run, json };
        command.SetAction((parse, ct) => WithStoreAsync(parse, redis, async (store, output) =>
        {
            IReadOnlyList<WorkerStatus> workers = await store.WorkersAsync(parse.GetValue(run)!);
            if (parse.GetValue(json))
            {
                await output.WriteLineAsync(JsonSerializer.Serialize(workers, SelectionJson.Options));
                return 0;
            }

            foreach (WorkerStatus w in workers)
            {
                string rejected = w.RejectedVersion is { } v ? $"  refused v{v}: {w.RejectionReason}" : "";
                string overhead = string.Create(CultureInfo.InvariantCulture, $"  overhead {w.OverheadRatio:P1}{(w.OverheadBudget is { } budget ? $" of {budget:P1}" : " (no budget)")}");
                string thinned = w.Thinned is { Count: > 0 } list ? "  thinned " + string.Join(" ", list.Select(t => $"{t.Collection}/{t.Stride}")) : "";
                await output.WriteLineAsync($"rank {w.Rank,-4} selection v{w.SelectionVersion,-4} steps {w.Steps,-8} heartbeat {w.At:HH:mm:ss}Z  {w.Host}/{w.ProcessId}{overhead}{thinned}{rejected}{(w.Stopped ? "  stopped" : "")}");
            }

            if (workers.Count == 0)
            {
                await output.WriteLineAsync("No worker heartbeats.");
            }

            return 0;
        }, ct));
        return command;
    }

    private static Command Schema()
    {
        var command = new Command("schema", "Print the JSON Schema of a selection document.");
        command.SetAction(parse =>
        {
            parse.InvocationConfiguration.Output.WriteLine(SelectionJson.Schema().ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            return 0;
        });
        return command;
    }

    /// <summary>Builds a selection from the command-line options.</summary>
    internal static TraceSelection Build(string[] include, string[] exclude, string[] collections, string[] tensors, string[] raw, string[] noHistogram,
        int? everySteps, double? everySeconds, string? stepRange, bool chiefOnly, string[] modes, int? limitSize, TraceBudget? budget = null, string[]? pin = null)
    {
        var filters = new SortedDictionary<string, (List<string> Include, List<string> Exclude, bool Raw, bool Histogram)>(StringComparer.Ordinal);
        (List<string> Include, List<string> Exclude, bool Raw, bool Histogram) Filter(string name)
        {
            string key = name.Trim().ToLowerInvariant();
            if (!filters.TryGetValue(key, out var filter))
            {
                filter = ([], [], false, true);
                filters[key] = filter;
            }

            return filter;
        }

        foreach (string value in include)
        {
            (string name, string pattern) = Split(value, "--include");
            Filter(name).Include.Add(pattern);
        }

        foreach (string value in exclude)
        {
            (string name, string pattern) = Split(value, "--exclude");
            Filter(name).Exclude.Add(pattern);
        }

        foreach (string name in collections)
        {
            Filter(name);
        }

        foreach (string name in raw)
        {
            string key = name.Trim().ToLowerInvariant();
            filters[key] = Filter(key) with { Raw = true };
        }

        foreach (string name in noHistogram)
        {
            string key = name.Trim().ToLowerInvariant();
            filters[key] = Filter(key) with { Histogram = false };
        }

        if (filters.Count == 0 && tensors.Length == 0)
        {
            throw new SelectionValidationException("nothing selected: give --include, --collection, --tensor or --file");
        }

        return new TraceSelection
        {
            Collections = filters.ToDictionary(f => f.Key, f => new CollectionFilter { Include = f.Value.Include, Exclude = f.Value.Exclude, Raw = f.Value.Raw, Histogram = f.Value.Histogram }),
            Tensors = tensors,
            Schedule = new TraceSchedule { EverySteps = everySteps, EverySeconds = everySeconds, StepRange = ParseRange(stepRange) },
            ChiefOnly = chiefOnly,
            Modes = modes,
            LimitSize = limitSize ?? TraceSelection.DefaultLimitSize,
            Budget = budget,
            Pin = pin ?? [],
        };
    }

    /// <summary>The <c>--budget</c> value: a fraction or <c>none</c> (validated with the selection).</summary>
    private static TraceBudget? ParseBudget(string? value) => value switch
    {
        null => null,
        TraceBudget.NoneWord => TraceBudget.None,
        _ when double.TryParse(value, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double fraction) => new TraceBudget(fraction),
        _ => throw new SelectionValidationException($"--budget: '{value}' is neither a fraction of the step time (e.g. 0.02) nor \"{TraceBudget.NoneWord}\""),
    };

    private static TraceSelection FromFile(FileInfo path, ParseResult parse, Option<string[]>[] listOptions, Option[] valueOptions, Option<string?> stepRange, Option<bool> chiefOnly)
    {
        if (listOptions.Any(o => parse.GetValue(o) is { Length: > 0 }) || valueOptions.Any(o => parse.GetResult(o) is not null)
            || parse.GetValue(stepRange) is not null || parse.GetValue(chiefOnly))
        {
            throw new SelectionValidationException("--file: give either a file or the options that build a selection, not both");
        }

        if (!path.Exists)
        {
            throw new SelectionValidationException($"--file: {path.FullName} does not exist");
        }

        return SelectionJson.Parse(File.ReadAllText(path.FullName));
    }

    private static (string Collection, string Pattern) Split(string value, string option)
    {
        int colon = value.IndexOf(':', StringComparison.Ordinal);
        if (colon <= 0)
        {
            throw new SelectionValidationException($"{option} '{value}': expected COLLECTION:REGEX, e.g. gradients:^fc2\\.");
        }

        return (value[..colon], value[(colon + 1)..]);
    }

    private static StepRange? ParseRange(string? text)
    {
        if (text is null)
        {
            return null;
        }

        string[] parts = text.Split(':');
        if (parts.Length != 2
            || !long.TryParse(parts[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out long start)
            || !long.TryParse(parts[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out long end))
        {
            throw new SelectionValidationException($"schedule.stepRange: '{text}' is not A:B with whole numbers (--step-range)");
        }

        return new StepRange(start, end);
    }

    /// <summary>Connects to the control plane of <paramref name="redis"/> and runs <paramref name="action"/>; errors are printed as <c>monitor {group} {command}: ...</c>.</summary>
    internal static async Task<int> WithStoreAsync(ParseResult parse, Option<string?> redis, Func<SelectionStore, TextWriter, Task<int>> action, CancellationToken cancellationToken, string group = "trace")
    {
        TextWriter error = parse.InvocationConfiguration.Error;
        string connection = parse.GetValue(redis) is { Length: > 0 } given ? given
            : Environment.GetEnvironmentVariable(RedisVariable) is { Length: > 0 } fromEnvironment ? fromEnvironment : DefaultRedis;
        string shown = connection;
        string name = parse.CommandResult.Command.Name;
        try
        {
            ConfigurationOptions configuration = RedisConnection.Parse(connection);
            // Messages name the server, never the password.
            shown = configuration.ToString(includePassword: false);
            configuration.AbortOnConnectFail = true;
            configuration.ConnectTimeout = 5_000;
            configuration.ClientName = "monitor-cli";
            await using ConnectionMultiplexer multiplexer = await ConnectionMultiplexer.ConnectAsync(configuration).WaitAsync(cancellationToken);
            return await action(new SelectionStore(multiplexer), parse.InvocationConfiguration.Output);
        }
        catch (SelectionValidationException ex)
        {
            await error.WriteLineAsync($"monitor {group} {name}: {ex.Message}");
            return ExitInvalid;
        }
        catch (ArgumentException ex)
        {
            await error.WriteLineAsync($"monitor {group} {name}: {ex.Message}");
            return ExitInvalid;
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            await error.WriteLineAsync($"monitor {group} {name}: cannot reach Redis at '{shown}': {ex.Message}");
            return ExitUnavailable;
        }
    }
}
