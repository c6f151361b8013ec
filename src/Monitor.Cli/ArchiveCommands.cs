using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Text.RegularExpressions;
using Confluent.Kafka;
using Microsoft.Extensions.Logging;
using Monitor.Archive;
using Monitor.Contracts;
using Monitor.Contracts.Transport;
using Monitor.Hosting;
using Monitor.Service;
using Monitor.Transport.Kafka;
using Prometheus;

namespace Monitor.Cli;

/// <summary>
/// The archive's options as <c>monitor archive</c> and <c>monitor serve --archive</c> take them (serve's with an
/// <c>archive-</c> prefix), turned into <see cref="ArchiveOptions"/>.
/// </summary>
internal sealed class ArchiveOptionSet
{
    /// <summary>Default consumer group of the archive.</summary>
    public const string DefaultGroup = "monitor-archive";

    public ArchiveOptionSet(string prefix)
    {
        var defaults = new ArchiveOptions { Directory = "." };
        Group = new Option<string>($"--{prefix}group") { Description = "Consumer group of the archive (its own, apart from the service's).", DefaultValueFactory = _ => DefaultGroup };
        MaxFileMegabytes = new Option<int>($"--{prefix}max-file-mb") { Description = "Roll a file once it holds this many MiB.", DefaultValueFactory = _ => (int)(defaults.MaxFileBytes >> 20) };
        MaxFileAge = new Option<TimeSpan>($"--{prefix}max-file-age") { Description = "Roll a file at the latest this long after it was opened (its records become readable and their offsets committed), e.g. 30s, 5m.", DefaultValueFactory = _ => defaults.MaxFileAge, CustomParser = OptionValues.Duration };
        Retention = new Option<TimeSpan?>($"--{prefix}retention") { Description = "Delete archive files opened longer ago than this, e.g. 7d, 12h. Default: keep everything.", CustomParser = r => OptionValues.Duration(r) };
        OptionValues.AddCheck(MaxFileMegabytes, value => value < 1 ? $"--{prefix}max-file-mb must be at least 1" : null);
    }

    public Option<string> Group { get; }

    public Option<int> MaxFileMegabytes { get; }

    public Option<TimeSpan> MaxFileAge { get; }

    public Option<TimeSpan?> Retention { get; }

    public IEnumerable<Option> All => [Group, MaxFileMegabytes, MaxFileAge, Retention];

    public ArchiveOptions Resolve(ParseResult parse, string directory) => new()
    {
        Directory = Path.GetFullPath(directory),
        MaxFileBytes = (long)parse.GetValue(MaxFileMegabytes) << 20,
        MaxFileAge = parse.GetValue(MaxFileAge),
        Retention = parse.GetValue(Retention),
    };
}

/// <summary><c>monitor archive</c>, <c>monitor export</c> and <c>monitor query</c>.</summary>
internal static partial class ArchiveCommands
{
    public static Command Archive()
    {
        var kafka = new Option<string?>("--kafka") { Description = "Kafka bootstrap servers, host:port[,...]. Required unless bootstrap.servers comes with the client properties." };
        var kafkaClient = new KafkaClientProperties(readEnvironment: true);
        var directory = new Option<DirectoryInfo>("--dir") { Description = "Archive directory (created when missing).", Required = true };
        var topic = new Option<string>("--topic") { Description = "Topic of step records.", DefaultValueFactory = _ => MonitorTopics.Steps };
        var offsetReset = new Option<AutoOffsetReset>("--offset-reset") { Description = "Where a group without committed offsets starts: earliest (no record skipped), latest or error.", DefaultValueFactory = _ => AutoOffsetReset.Earliest };
        var set = new ArchiveOptionSet("");
        var listenSet = new ListenOptionSet("/metrics, /healthz and /readyz");
        var command = new Command("archive", "Consume step records from Kafka in a consumer group of its own and write every one to Parquet files under --dir, partitioned by run and rank (see `monitor export` and `monitor query`); serve its /metrics, /healthz and /readyz at --listen.")
        {
            kafka, kafkaClient.Property, kafkaClient.ConfigFile, directory, topic, offsetReset,
        };
        foreach (Option option in set.All.Concat(listenSet.All))
        {
            command.Options.Add(option);
        }

        command.SetAction(async (parse, cancellationToken) =>
        {
            TextWriter error = parse.InvocationConfiguration.Error;
            // ASP.NET Core's per-request information lines would drown the archive's own.
            using ILoggerFactory logging = LoggerFactory.Create(b => b.AddSimpleConsole(o => o.SingleLine = true).AddFilter("Microsoft.AspNetCore", LogLevel.Warning));
            ILogger log = logging.CreateLogger("monitor");
            KafkaClientSettings kafkaSettings;
            ArchiveOptions options;
            string listenUrl = parse.GetValue(listenSet.Listen)!;
            string? tlsCertificate = parse.GetValue(listenSet.TlsCertificate)?.FullName;
            string? tlsKey = parse.GetValue(listenSet.TlsKey)?.FullName;
            try
            {
                kafkaSettings = kafkaClient.Resolve(parse, parse.GetValue(kafka));
                options = set.Resolve(parse, parse.GetValue(directory)!.FullName);
                options.Validate();
                OperationsEndpoints.ValidateListen(listenUrl, tlsCertificate, tlsKey);
            }
            catch (Exception ex) when (ex is ArgumentException or KafkaClientPropertiesException)
            {
                await error.WriteLineAsync("monitor archive: " + ex.Message);
                return 2;
            }

            KafkaRecordConsumer consumer;
            try
            {
                consumer = new KafkaRecordConsumer(
                    new KafkaConsumerOptions
                    {
                        BootstrapServers = kafkaSettings.BootstrapServers,
                        Topic = parse.GetValue(topic)!,
                        GroupId = parse.GetValue(set.Group)!,
                        AutoOffsetReset = parse.GetValue(offsetReset),
                        Properties = kafkaSettings.Properties,
                    },
                    logging.CreateLogger<KafkaRecordConsumer>());
            }
            catch (Exception ex) when (KafkaClientProperties.Describe(ex, out string message))
            {
                await error.WriteLineAsync("monitor archive: " + message);
                return 2;
            }

            using (consumer)
            {
                StepArchiver archiver;
                try
                {
                    archiver = new StepArchiver(consumer, options, logging.CreateLogger<StepArchiver>());
                }
                catch (IOException ex)
                {
                    await error.WriteLineAsync($"monitor archive: {options.Directory}: {ex.Message}");
                    return 2;
                }

                await using (archiver)
                {
                    OperationsEndpoints endpoints;
                    try
                    {
                        endpoints = await StartEndpointsAsync(archiver, consumer, listenUrl, tlsCertificate, tlsKey, logging, cancellationToken);
                    }
                    catch (ArgumentException ex)
                    {
                        await error.WriteLineAsync("monitor archive: " + ex.Message);
                        return 2;
                    }
                    catch (IOException ex)
                    {
                        await error.WriteLineAsync($"monitor archive: cannot listen on {listenUrl}: {ex.Message}");
                        return 2;
                    }

                    // Disposed after the archiver has stopped: probes and scrapes answer until the last file is closed.
                    await using OperationsEndpoints served = endpoints;
                    archiver.Start();
#pragma warning disable CA1848, CA2254, CA1873
                    log.LogInformation($"monitor archive: consuming {parse.GetValue(topic)} from {kafkaSettings.BootstrapServers}{KafkaClientProperties.Summary(kafkaSettings)} as group {parse.GetValue(set.Group)} into {options.Directory}; metrics at {new Uri(endpoints.BaseAddress, "metrics")}");
#pragma warning restore CA1848, CA2254, CA1873
                    try
                    {
                        while (archiver.Failure is null)
                        {
                            await Task.Delay(TimeSpan.FromMilliseconds(250), cancellationToken);
                        }
                    }
                    catch (OperationCanceledException)
                    {
                        // Ctrl+C / SIGTERM: close the open files, then commit their offsets.
                    }

                    await archiver.StopAsync();
                    StepArchiverStatistics statistics = archiver.Statistics;
                    await error.WriteLineAsync(Summary(statistics, options.Directory));
                    if (archiver.Failure is { } failure)
                    {
                        await error.WriteLineAsync("monitor archive: " + failure);
                        return 1;
                    }
                }
            }

            return 0;
        });
        return command;
    }

    public static Command Export()
    {
        var from = new Option<string>("--from") { Description = "Archive directory or one archive Parquet file.", Required = true };
        var run = new Option<string?>("--run") { Description = "Only this run." };
        var rank = new Option<int?>("--rank") { Description = "Only this rank." };
        var tensor = new Option<string?>("--tensor") { Description = "Only tensors whose name matches this regular expression (a search: '^fc1\\.' or 'grad$')." };
        var steps = new Option<(long? First, long? End)>("--steps") { Description = "Steps A:B, from A up to but not including B (either may be left out: 250:, :100).", CustomParser = StepRange };
        var format = new Option<string>("--format") { Description = "Output format: parquet, csv or jsonl.", DefaultValueFactory = _ => "parquet" };
        format.AcceptOnlyFromAmong("parquet", "csv", "jsonl");
        var output = new Option<FileInfo>("--out") { Description = "File to write (replaced when the export completes).", Required = true };
        var command = new Command("export", "Export archived rows (one per run, rank, step, mode and tensor) as one flat table, for notebooks: Parquet, CSV or JSON lines with the archive's documented columns.")
        {
            from, run, rank, tensor, steps, format, output,
        };
        OptionValues.AddCheck(run, value => value is not null && RunId.Check(value) is { } problem ? "--run: " + problem : null);
        OptionValues.AddCheck(rank, value => value < 0 ? "--rank must not be negative" : null);
        OptionValues.AddCheck(tensor, value =>
        {
            if (value is null)
            {
                return null;
            }

            try
            {
                _ = new Regex(value, RegexOptions.CultureInvariant);
                return null;
            }
            catch (ArgumentException ex)
            {
                return $"--tensor '{value}' is not a regular expression: {ex.Message}";
            }
        });
        command.SetAction(async (parse, cancellationToken) =>
        {
            TextWriter error = parse.InvocationConfiguration.Error;
            (long? first, long? end) = parse.GetValue(steps);
            var options = new ArchiveExportOptions
            {
                From = parse.GetValue(from)!,
                Out = parse.GetValue(output)!.FullName,
                Format = parse.GetValue(format) switch { "csv" => ExportFormat.Csv, "jsonl" => ExportFormat.JsonLines, _ => ExportFormat.Parquet },
                Run = parse.GetValue(run),
                Rank = parse.GetValue(rank),
                Tensor = parse.GetValue(tensor) is { } pattern ? new Regex(pattern, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1)) : null,
                FirstStep = first,
                EndStep = end,
            };
            var progress = new SynchronousProgress(p => error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"monitor export: {p.FilesDone}/{p.Files} files, {p.RowsRead} rows read, {p.RowsWritten} written")));
            try
            {
                long rows = await ArchiveExport.RunAsync(options, progress, cancellationToken);
                await error.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"monitor export: {rows} rows written to {options.Out}"));
                return 0;
            }
            catch (ArchiveReadException ex)
            {
                await error.WriteLineAsync("monitor export: " + ex.Message);
                return 1;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                await error.WriteLineAsync($"monitor export: {options.Out}: {ex.Message}");
                return 1;
            }
        });
        return command;
    }

    public static Command Query()
    {
        var from = new Option<string>("--from") { Description = "Archive directory or one archive Parquet file.", Required = true };
        var sql = new Argument<string>("sql") { Description = $"SQL (DuckDB's dialect) over the table '{ArchiveQuery.TableName}', e.g. \"SELECT step, tensor, abs_mean FROM steps WHERE collections LIKE '%gradients%' AND abs_mean < 1e-7\"." };
        var command = new Command("query", $"Run SQL over an archive with an embedded DuckDB: the archive is the table '{ArchiveQuery.TableName}'. Prints tab-separated rows with a header line.")
        {
            from, sql,
        };
        command.SetAction((parse, cancellationToken) =>
        {
            try
            {
                ArchiveQuery.Run(parse.GetValue(from)!, parse.GetValue(sql)!, parse.InvocationConfiguration.Output, cancellationToken);
                return Task.FromResult(0);
            }
            catch (ArchiveReadException ex)
            {
                parse.InvocationConfiguration.Error.WriteLine("monitor query: " + ex.Message);
                return Task.FromResult(1);
            }
        });
        return command;
    }

    /// <summary>
    /// Serves an archiver's <c>/metrics</c> (<see cref="ArchiveMetrics"/>), <c>/healthz</c> (503 once the archiver has
    /// failed) and <c>/readyz</c> (ready once the consumer is: its group assigned it partitions and the brokers answer).
    /// </summary>
    /// <exception cref="ArgumentException">The address or the TLS files are unusable.</exception>
    /// <exception cref="IOException">The address is in use.</exception>
    internal static Task<OperationsEndpoints> StartEndpointsAsync(StepArchiver archiver, IRecordConsumer consumer, string listenUrl, string? tlsCertificate, string? tlsKey,
        ILoggerFactory? logging, CancellationToken cancellationToken)
    {
        CollectorRegistry registry = Metrics.NewCustomRegistry();
        _ = new ArchiveMetrics(registry, archiver);
        return OperationsEndpoints.StartAsync(
            new OperationsEndpointsOptions
            {
                ListenUrl = listenUrl,
                TlsCertificateFile = tlsCertificate,
                TlsKeyFile = tlsKey,
                Registry = registry,
                Failure = () => archiver.Failure is { } failure ? "archiver failed: " + failure : null,
                Readiness = (out string detail) => Ready(archiver, consumer, out detail),
                LoggerFactory = logging,
            },
            cancellationToken);
    }

    private static bool Ready(StepArchiver archiver, IRecordConsumer consumer, out string detail)
    {
        if (archiver.Failure is { } failure)
        {
            detail = "archiver failed: " + failure;
            return false;
        }

        if (consumer is IConsumerReadiness readiness)
        {
            return readiness.IsReady(out detail);
        }

        detail = "archiver running";
        return true;
    }

    /// <summary>One line about what an archiver wrote.</summary>
    public static string Summary(StepArchiverStatistics statistics, string directory) => string.Create(CultureInfo.InvariantCulture,
        $"Archive: {statistics.Writer.Records} records, {statistics.Writer.Rows} rows in {statistics.Writer.FilesClosed} files ({statistics.Writer.BytesClosed / 1048576.0:F1} MiB) under {directory}; {statistics.Undecodable} undecodable left out");

    private static (long? First, long? End) StepRange(ArgumentResult result)
    {
        string text = result.Tokens.Count == 1 ? result.Tokens[0].Value : "";
        if (StepRangePattern().Match(text) is { Success: true } match)
        {
            long? first = match.Groups["first"].Success ? long.Parse(match.Groups["first"].Value, CultureInfo.InvariantCulture) : null;
            long? end = match.Groups["end"].Success ? long.Parse(match.Groups["end"].Value, CultureInfo.InvariantCulture) : null;
            if (first is null || end is null || first < end)
            {
                return (first, end);
            }
        }

        result.AddError($"--steps '{text}' is not a step range A:B with A < B (e.g. 250:500, 250:, :100)");
        return default;
    }

    [GeneratedRegex(@"^(?<first>[0-9]{1,18})?:(?<end>[0-9]{1,18})?$", RegexOptions.CultureInvariant)]
    private static partial Regex StepRangePattern();

    /// <summary>Reports on the exporting thread (Progress&lt;T&gt; would post to the thread pool, out of order).</summary>
    private sealed class SynchronousProgress(Action<ExportProgress> report) : IProgress<ExportProgress>
    {
        public void Report(ExportProgress value) => report(value);
    }
}
