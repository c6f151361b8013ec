using System.CommandLine;
using System.Data.Common;
using System.Diagnostics;
using DuckDB.NET.Data;
using Monitor.Cli;
using Monitor.Contracts;
using Monitor.Contracts.V1;

namespace Monitor.IntegrationTests;

/// <summary>Readers that are not ours (DuckDB, pandas), the CLI in-process, and synthetic step records.</summary>
internal static class ArchiveSupport
{
    public static readonly DateTimeOffset Start = new(2026, 1, 2, 3, 4, 5, TimeSpan.Zero);

    /// <summary>Runs SQL in a fresh in-memory DuckDB and returns every row.</summary>
    public static List<object?[]> Duck(string sql)
    {
        using var connection = new DuckDBConnection("DataSource=:memory:");
        connection.Open();
        using DbCommand command = connection.CreateCommand();
        command.CommandText = sql;
        using DbDataReader reader = command.ExecuteReader();
        var rows = new List<object?[]>();
        while (reader.Read())
        {
            var row = new object?[reader.FieldCount];
            for (int i = 0; i < row.Length; i++)
            {
                row[i] = reader.IsDBNull(i) ? null : reader.GetValue(i);
            }

            rows.Add(row);
        }

        return rows;
    }

    /// <summary>The archive files under <paramref name="directory"/> as DuckDB's <c>read_parquet</c> of a glob.</summary>
    public static string Files(string directory) => $"read_parquet('{directory}/**/*.parquet', union_by_name = true)";

    public static async Task<(int ExitCode, string Output, string Error)> InvokeAsync(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int exitCode = await MonitorCommand.InvokeAsync(args, new InvocationConfiguration { Output = output, Error = error }, cancellationToken: TestContext.Current.CancellationToken);
        return (exitCode, output.ToString(), error.ToString());
    }

    /// <summary>Runs a Python script under Debian's python3 with pandas (tests/install-test-servers.sh); returns stdout.</summary>
    public static async Task<string> PandasAsync(string script)
    {
        string python = Environment.GetEnvironmentVariable("MONITOR_PYTHON") is { Length: > 0 } p ? p : "/usr/bin/python3";
        var start = new ProcessStartInfo(python, ["-c", script]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {python}");
        Task<string> output = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        Task<string> errors = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(TimeSpan.FromMinutes(2));
        await process.WaitForExitAsync(timeout.Token);
        string stderr = await errors;
        Assert.True(process.ExitCode == 0, $"{python} exited with {process.ExitCode} (run tests/install-test-servers.sh for python3-pandas): {stderr}");
        return await output;
    }

    /// <summary>
    /// Step <paramref name="step"/> of a rank: a gradient with a log2 histogram, a weight, and a batch tensor with raw
    /// values and an explicit histogram whose outer edges are infinite.
    /// </summary>
    public static StepRecord Record(string run, uint rank, long step, double gradientAbsMean = 1e-2, DateTimeOffset? start = null)
    {
        var record = new StepRecord
        {
            SchemaVersion = StepRecordDecoder.CurrentSchemaVersion,
            RunId = run,
            Rank = rank,
            WorldSize = 4,
            Step = step,
            Mode = Mode.Train,
            EventTimeUnixNanos = ((start ?? Start).AddSeconds(step) - DateTimeOffset.UnixEpoch).Ticks * 100,
            Sequence = (ulong)step + 1,
        };
        var gradient = new TensorRecord
        {
            Name = "fc1.weight.grad",
            Dtype = DType.Float32,
            Summary = new TensorSummary
            {
                Count = 1024, Min = -0.1, Max = 0.1, Mean = 0.001, Variance = 1e-4, L1 = 1024 * gradientAbsMean, L2 = 0.3, AbsMean = gradientAbsMean,
                ZeroCount = 2, Histogram = new Histogram { Layout = HistogramLayout.Log2Magnitude, FirstBucket = 40 },
            },
        };
        gradient.Shape.Add([64, 16]);
        gradient.Collections.Add(Collection.Gradients);
        gradient.Summary.Histogram.Counts.Add([10, 500, 514]);
        var weight = new TensorRecord { Name = "fc1.weight", Dtype = DType.Float32, Summary = new TensorSummary { Count = 1024, AbsMean = 0.2, Mean = 0.01 } };
        weight.Shape.Add([64, 16]);
        weight.Collections.Add(Collection.Weights);
        var inputs = new TensorRecord
        {
            Name = "inputs",
            Dtype = DType.Float32,
            Summary = new TensorSummary { Count = 4, Min = -1, Max = 2, Mean = 0.5, NanCount = 0, Histogram = new Histogram { Layout = HistogramLayout.Explicit } },
            Raw = new RawValues { Float32Le = Google.Protobuf.ByteString.CopyFrom([.. BitConverter.GetBytes(-1f), .. BitConverter.GetBytes(0.5f), .. BitConverter.GetBytes(0.5f), .. BitConverter.GetBytes(2f)]), TotalElements = 4, SampleRows = 2 },
        };
        inputs.Shape.Add([2, 2]);
        inputs.Collections.Add(Collection.Inputs);
        inputs.CustomCollections.Add("tabular");
        inputs.FeatureNames.Add(["x0", "x1"]);
        inputs.Summary.Histogram.Edges.Add([double.NegativeInfinity, 0, double.PositiveInfinity]);
        inputs.Summary.Histogram.Counts.Add([1, 3]);
        record.Tensors.Add([gradient, weight, inputs]);
        return record;
    }
}
