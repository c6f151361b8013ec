using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Monitor.Archive;
using Monitor.Contracts;

namespace Monitor.Cli;

/// <summary><c>monitor runs list|show|diff</c>: the runs' lineage (run metadata), from an archive or the control plane.</summary>
internal static class RunsCommands
{
    private const int ExitNotFound = 1;
    private const int ExitInvalid = 2;

    public static Command Create() =>
        new("runs", "Show what runs were started with (hyperparameters, data sets, code and library versions, host, devices, parent run) what changed between two runs, and the artifacts they consumed and produced, from an archive (--archive) or the control plane (--redis).")
        {
            List(), Show(), Diff(), Artifacts(),
        };

    private sealed class Source
    {
        public Option<DirectoryInfo?> Archive { get; } = new("--archive") { Description = "Read the metadata an archive keeps (the directory of `monitor archive --dir` or `demo --archive`) instead of Redis." };

        public Option<string?> Redis { get; } = TraceCommands.RedisOption();

        public Option<bool> Json { get; } = new("--json") { Description = "Print JSON instead of text." };

        public Option<int> Rank { get; } = new("--rank") { Description = "Whose metadata: this rank's.", DefaultValueFactory = _ => 0 };

        public IEnumerable<Option> All => [Archive, Redis, Json];

        /// <summary>Runs <paramref name="action"/> over the metadata of <paramref name="runs"/> (null: every run), by run and rank.</summary>
        public Task<int> WithMetadataAsync(ParseResult parse, IReadOnlyList<string>? runs, Func<IReadOnlyList<RunMetadata>, TextWriter, Task<int>> action, CancellationToken cancellationToken)
        {
            if (parse.GetValue(Archive) is { } archive)
            {
                if (!archive.Exists)
                {
                    parse.InvocationConfiguration.Error.WriteLine($"monitor runs {parse.CommandResult.Command.Name}: no archive at {archive.FullName}");
                    return Task.FromResult(ExitInvalid);
                }

                IReadOnlyList<RunMetadata> all = ArchiveRuns.Read(archive.FullName);
                return action([.. all.Where(m => runs is null || runs.Contains(m.Run))], parse.InvocationConfiguration.Output);
            }

            return TraceCommands.WithStoreAsync(parse, Redis, async (store, output) =>
            {
                var metadata = new List<RunMetadata>();
                foreach (string run in runs ?? await store.RunsAsync())
                {
                    metadata.AddRange(await store.MetadataAsync(run));
                }

                return await action(metadata, output);
            }, cancellationToken, "runs");
        }
    }

    private static Command List()
    {
        var source = new Source();
        var command = new Command("list", "List the runs with metadata: start, ranks, host, code commit, parent run and hyperparameters.");
        foreach (Option option in source.All)
        {
            command.Options.Add(option);
        }

        command.SetAction((parse, ct) => source.WithMetadataAsync(parse, null, async (metadata, output) =>
        {
            // One line per run, from its lowest rank (hyperparameters are the run's; every rank records them).
            RunMetadata[] runs = [.. metadata.GroupBy(m => m.Run).Select(g => g.First())];
            if (parse.GetValue(source.Json))
            {
                await output.WriteLineAsync(JsonSerializer.Serialize(runs, SelectionJson.Options));
                return 0;
            }

            if (runs.Length == 0)
            {
                await output.WriteLineAsync("No run metadata found.");
                return 0;
            }

            int width = Math.Max(3, runs.Max(r => r.Run.Length));
            await output.WriteLineAsync($"{"RUN".PadRight(width)}  {"STARTED",-20}  RANKS  {"HOST",-16}  {"COMMIT",-12}  {"PARENT",-12}  HYPERPARAMETERS");
            foreach (RunMetadata run in runs)
            {
                string hyperparameters = string.Join(" ", run.Hyperparameters.Select(h => $"{h.Key}={h.Value}"));
                await output.WriteLineAsync($"{run.Run.PadRight(width)}  {Time(run.StartedAt),-20}  {run.WorldSize,5}  {run.Host,-16}  {Short(run.Code?.Commit),-12}  {run.ParentRun ?? "-",-12}  {hyperparameters}");
            }

            return 0;
        }, ct));
        return command;
    }

    private static Command Show()
    {
        var source = new Source();
        var run = new Argument<string>("run") { Description = "Run id." };
        var command = new Command("show", "Print a run's metadata (one rank's, rank 0 by default).") { run, source.Rank };
        foreach (Option option in source.All)
        {
            command.Options.Add(option);
        }

        command.SetAction((parse, ct) => source.WithMetadataAsync(parse, [parse.GetValue(run)!], async (metadata, output) =>
        {
            if (await FindAsync(parse, metadata, parse.GetValue(run)!, parse.GetValue(source.Rank)) is not { } found)
            {
                return ExitNotFound;
            }

            if (parse.GetValue(source.Json))
            {
                await output.WriteLineAsync(found.ToJson());
                return 0;
            }

            await output.WriteLineAsync($"run {found.Run}, rank {found.Rank} of {found.WorldSize}, started {Time(found.StartedAt)} on {found.Host}");
            await output.WriteLineAsync($"parent run:  {found.ParentRun ?? "-"}");
            await output.WriteLineAsync($"code:        {(found.Code is { } code ? $"{code.Commit}{(code.Branch is { } branch ? $" ({branch})" : "")} in {code.Repository}" : "- (not in a git repository)")}");
            await output.WriteLineAsync($"devices:     {(found.Devices.Count == 0 ? "-" : string.Join(", ", found.Devices))}");
            await Section(output, "hyperparameters", found.Hyperparameters.Select(h => (h.Key, h.Value)));
            await Section(output, "data sets", found.Datasets.Select(d => (d.Name, d.Hash is { } hash ? $"{d.Uri} ({hash})" : d.Uri)));
            await Section(output, "versions", found.Versions.Select(v => (v.Key, v.Value)));
            return 0;
        }, ct));
        return command;
    }

    private static Command Diff()
    {
        var source = new Source();
        var before = new Argument<string>("run1") { Description = "The first run (e.g. the good one)." };
        var after = new Argument<string>("run2") { Description = "The second run (e.g. the bad one)." };
        var command = new Command("diff", "Print what changed from RUN1 to RUN2: hyperparameters, data sets, code version, library versions, host, devices, parent run (one rank's metadata, rank 0 by default). Exit code 0 whether or not they differ, 1 when a run has no metadata.")
        {
            before, after, source.Rank,
        };
        foreach (Option option in source.All)
        {
            command.Options.Add(option);
        }

        command.SetAction((parse, ct) => source.WithMetadataAsync(parse, [parse.GetValue(before)!, parse.GetValue(after)!], async (metadata, output) =>
        {
            int rank = parse.GetValue(source.Rank);
            if (await FindAsync(parse, metadata, parse.GetValue(before)!, rank) is not { } first
                || await FindAsync(parse, metadata, parse.GetValue(after)!, rank) is not { } second)
            {
                return ExitNotFound;
            }

            IReadOnlyList<RunMetadataChange> changes = RunMetadataDiff.Compare(first, second);
            if (parse.GetValue(source.Json))
            {
                await output.WriteLineAsync(JsonSerializer.Serialize(new { run1 = first.Run, run2 = second.Run, rank, changes }, SelectionJson.Options));
                return 0;
            }

            await output.WriteLineAsync($"{first.Run} -> {second.Run} (rank {rank}): {(changes.Count == 0 ? "no differences" : changes.Count == 1 ? "1 difference" : $"{changes.Count} differences")}");
            foreach (RunMetadataChange change in changes)
            {
                string values = change.Change switch
                {
                    "added" => change.After!,
                    "removed" => change.Before!,
                    _ => $"{change.Before} -> {change.After}",
                };
                await output.WriteLineAsync($"  {change.Change,-8} {change.Section,-15} {change.Name}: {values}");
            }

            return 0;
        }, ct));
        return command;
    }

    private static Command Artifacts()
    {
        var source = new Source();
        var run = new Argument<string>("run") { Description = "Run id." };
        var command = new Command("artifacts", "List the artifacts (checkpoints, exported models) the run's ranks consumed and produced, by step. Exit code 1 when there are none.") { run };
        foreach (Option option in source.All)
        {
            command.Options.Add(option);
        }

        command.SetAction(async (parse, ct) =>
        {
            string runId = parse.GetValue(run)!;
            Func<IReadOnlyList<ArtifactRecord>, TextWriter, Task<int>> print = async (artifacts, output) =>
            {
                if (parse.GetValue(source.Json))
                {
                    await output.WriteLineAsync(JsonSerializer.Serialize(artifacts, SelectionJson.Options));
                    return 0;
                }

                if (artifacts.Count == 0)
                {
                    await output.WriteLineAsync($"No artifacts recorded for run '{runId}'.");
                    return ExitNotFound;
                }

                await output.WriteLineAsync($"{"STEP",8}  RANK  {"EVENT",-8}  {"TYPE",-10}  {"HASH",-20}  PATH");
                foreach (ArtifactRecord artifact in artifacts)
                {
                    await output.WriteLineAsync($"{artifact.Step,8}  {artifact.Rank,4}  {artifact.Event,-8}  {artifact.Type,-10}  {artifact.Hash ?? "-",-20}  {artifact.Path}");
                }

                return 0;
            };
            if (parse.GetValue(source.Archive) is not { } archive)
            {
                return await TraceCommands.WithStoreAsync(parse, source.Redis, async (store, output) => await print(await store.ArtifactsAsync(runId), output), ct, "runs");
            }

            if (!archive.Exists)
            {
                await parse.InvocationConfiguration.Error.WriteLineAsync($"monitor runs artifacts: no archive at {archive.FullName}");
                return ExitInvalid;
            }

            return await print(ArchiveRuns.ReadArtifacts(archive.FullName, runId), parse.InvocationConfiguration.Output);
        });
        return command;
    }

    private static async Task<RunMetadata?> FindAsync(ParseResult parse, IReadOnlyList<RunMetadata> metadata, string run, int rank)
    {
        if (metadata.FirstOrDefault(m => m.Run == run && m.Rank == rank) is { } found)
        {
            return found;
        }

        await parse.InvocationConfiguration.Error.WriteLineAsync($"monitor runs {parse.CommandResult.Command.Name}: no metadata of run '{run}' rank {rank}");
        return null;
    }

    private static async Task Section(TextWriter output, string title, IEnumerable<(string Name, string Value)> entries)
    {
        (string Name, string Value)[] all = [.. entries];
        await output.WriteLineAsync($"{title}:{(all.Length == 0 ? " -" : "")}");
        int width = all.Length == 0 ? 0 : all.Max(e => e.Name.Length);
        foreach ((string name, string value) in all)
        {
            await output.WriteLineAsync($"  {name.PadRight(width)}  {value}");
        }
    }

    private static string Time(DateTimeOffset at) => at.ToUniversalTime().ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);

    private static string Short(string? commit) => commit is null ? "-" : commit[..Math.Min(12, commit.Length)];
}
