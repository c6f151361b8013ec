using System.CommandLine;
using Monitor.Archive;
using Monitor.Contracts;
using Monitor.Contracts.V1;
using Monitor.Hosting;
using Monitor.Service.Notifications;
using Monitor.Trials;

namespace Monitor.Cli;

/// <summary><c>monitor rules run</c>: the rule engine over a trial (an archive directory, or the steps topic).</summary>
internal static partial class ReplayCommands
{
    private static Command RunOverTrial()
    {
        var trial = new Option<DirectoryInfo?>("--trial") { Description = "Archive directory (`monitor archive --dir`, `monitor demo --archive`) whose records to evaluate." };
        var kafka = new Option<string?>("--kafka") { Description = "Kafka bootstrap servers, host:port[,...]: evaluate the records the topic holds (read from the beginning up to its end offsets when the command starts, then exit)." };
        var kafkaClient = new KafkaClientProperties(readEnvironment: true);
        var topic = new Option<string>("--topic") { Description = "Topic of step records (with --kafka).", DefaultValueFactory = _ => MonitorTopics.Steps };
        var run = new Option<string?>("--run") { Description = "Only this run. Default: every run, merged by event time as the service sees them." };
        var rules = new Option<FileInfo?>("--rules") { Description = "Rule file (YAML or .json), as `monitor serve --rules` loads it. Default: the default rule set (`monitor rules default`)." };
        var format = new Option<string>("--format") { Description = "text: the firing and resolved transitions as `monitor demo` prints them (ALERT FIRING ...); json: every transition as a JSON line in the alerts topic's format, as `monitor replay` prints them.", DefaultValueFactory = _ => "text" };
        format.AcceptOnlyFromAmong("text", "json");
        var command = new Command("run", "Evaluate rules over a trial's records with the same engine and rule loading as `monitor serve` and `monitor replay` (each rank's records in producer order, ranks and runs merged by event time; time follows the records), and print the alert transitions. Exit codes: 0 done, 1 the records could not be read, 2 bad arguments or rule file.")
        {
            trial, kafka, kafkaClient.Property, kafkaClient.ConfigFile, topic, run, rules, format,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            TextWriter output = parse.InvocationConfiguration.Output;
            TextWriter error = parse.InvocationConfiguration.Error;
            const string name = "monitor rules run";
            DirectoryInfo? directory = parse.GetValue(trial);
            bool fromKafka = parse.GetValue(kafka) is not null || kafkaClient.IsGiven(parse);
            if ((directory is null) == !fromKafka)
            {
                await error.WriteLineAsync($"{name}: give either --trial DIR or --kafka BOOTSTRAP");
                return 2;
            }

            if (LoadRules(parse.GetValue(rules), error, name) is not { } bindings)
            {
                return 2;
            }

            IReadOnlyList<Trial> trials;
            try
            {
                if (directory is not null)
                {
                    trials = Trial.OpenAll(directory.FullName, parse.GetValue(run), cancellationToken);
                }
                else
                {
                    KafkaClientSettings settings = kafkaClient.Resolve(parse, parse.GetValue(kafka));
                    trials = await Trial.ReadKafkaAsync(
                        new KafkaTrialOptions { BootstrapServers = settings.BootstrapServers, Topic = parse.GetValue(topic)!, Run = parse.GetValue(run), Properties = settings.Properties },
                        cancellationToken);
                }
            }
            catch (KafkaClientPropertiesException ex)
            {
                await error.WriteLineAsync($"{name}: {ex.Message}");
                return 2;
            }
            catch (Exception ex) when (ex is ArchiveReadException or TrialException)
            {
                await error.WriteLineAsync($"{name}: {ex.Message}");
                return 1;
            }
            catch (Exception ex) when (KafkaClientProperties.Describe(ex, out string message))
            {
                await error.WriteLineAsync($"{name}: {message}");
                return 2;
            }

            bool json = parse.GetValue(format) == "json";
            var replay = new RecordReplay(bindings, transition =>
            {
                if (json)
                {
                    output.WriteLine(AlertJson.Serialize(transition));
                }
                else if (AlertLine(transition) is { } line)
                {
                    output.WriteLine(line);
                }
            });
            IReadOnlyList<StepRecord> records = Trial.InEventTimeOrder(trials);
            replay.Run(records);
            string source = directory?.FullName ?? $"kafka:{parse.GetValue(kafka)}/{parse.GetValue(topic)}";
            await error.WriteLineAsync($"{name}: {source}: {trials.Count} run{(trials.Count == 1 ? "" : "s")} ({string.Join(", ", trials.Select(t => t.Run))}), {replay.Summary}");
            return 0;
        });
        return command;
    }
}
