using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Monitor.Analysis.Drift;
using Monitor.Cli;

namespace Monitor.IntegrationTests;

/// <summary><c>monitor drift test</c> and <c>monitor drift detect</c> through the real command line (parsing included).</summary>
public sealed class DriftCommandTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "monitor-drift-cli-" + Guid.NewGuid().ToString("N"));

    public DriftCommandTests() => Directory.CreateDirectory(_directory);

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static (int ExitCode, string Output, string Error) Invoke(string input, params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int exitCode = MonitorCommand.Invoke(args, new InvocationConfiguration { Output = output, Error = error }, new StringReader(input));
        return (exitCode, output.ToString(), error.ToString());
    }

    private string Csv(string name, string header, IEnumerable<double[]> rows)
    {
        string path = Path.Combine(_directory, name);
        File.WriteAllLines(path, [header, .. rows.Select(r => string.Join(",", r.Select(v => v.ToString("R", CultureInfo.InvariantCulture))))]);
        return path;
    }

    /// <summary>Reference and current files: a and b standard normal; c shifted by one standard deviation in the current; d in {0, 1, 2}.</summary>
    private (string Reference, string Current) Files(int rows = 300)
    {
        var random = new Random(11);
        double Normal() => Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
        string reference = Csv("ref.csv", "a,b,c,d", Enumerable.Range(0, rows).Select(_ => new[] { Normal(), Normal(), Normal(), random.Next(3) }).ToArray());
        string current = Csv("cur.csv", "a,b,c,d", Enumerable.Range(0, rows).Select(_ => new[] { Normal(), Normal(), Normal() + 1, random.Next(3) }).ToArray());
        return (reference, current);
    }

    [Fact]
    public void DriftTest_PrintsOneObjectPerColumn_AndTheDatasetVerdict()
    {
        (string reference, string current) = Files();

        (int exitCode, string output, string error) = Invoke("", "drift", "test", "--test", "auto", "--reference", reference, "--current", current);

        Assert.True(exitCode == 0, error);
        string[] lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(5, lines.Length);
        JsonElement[] columns = [.. lines.Take(4).Select(l => JsonDocument.Parse(l).RootElement)];
        Assert.Equal(["a", "b", "c", "d"], columns.Select(c => c.GetProperty("column").GetString()));
        // auto with 300 reference rows: KS for the numbers, chi-square for d's three values (Evidently's choice).
        Assert.Equal(["ks", "ks", "ks", "chisquare"], columns.Select(c => c.GetProperty("test").GetString()));
        Assert.Equal([false, false, true, false], columns.Select(c => c.GetProperty("drift").GetBoolean()));
        Assert.All(columns, c => Assert.Equal(0.05, c.GetProperty("threshold").GetDouble()));
        Assert.All(columns, c => Assert.Equal(JsonValueKind.Number, c.GetProperty("p_value").ValueKind));

        JsonElement dataset = JsonDocument.Parse(lines[4]).RootElement;
        Assert.Equal((4, 1, 0.25, 0.5, false), (dataset.GetProperty("columns").GetInt32(), dataset.GetProperty("drifted_columns").GetInt32(),
            dataset.GetProperty("share").GetDouble(), dataset.GetProperty("drift_share").GetDouble(), dataset.GetProperty("dataset_drift").GetBoolean()));
        Assert.Equal(("bonferroni", 0.05 / 4, true), (dataset.GetProperty("correction").GetString(), dataset.GetProperty("corrected_threshold").GetDouble(), dataset.GetProperty("corrected_drift").GetBoolean()));
    }

    [Fact]
    public void DriftTest_GivesTheLibrarysResult_ForANamedTestColumnsAndThreshold()
    {
        (string reference, string current) = Files();

        (int exitCode, string output, _) = Invoke("", "drift", "test", "--test", "psi", "--reference", reference, "--current", current, "--column", "c", "--threshold", "0.2");

        Assert.Equal(0, exitCode);
        JsonElement c = JsonDocument.Parse(Assert.Single(output.Split('\n', StringSplitOptions.RemoveEmptyEntries))).RootElement;
        double[] r = [.. File.ReadAllLines(reference).Skip(1).Select(l => double.Parse(l.Split(',')[2], CultureInfo.InvariantCulture))];
        double[] k = [.. File.ReadAllLines(current).Skip(1).Select(l => double.Parse(l.Split(',')[2], CultureInfo.InvariantCulture))];
        TwoSampleResult expected = PopulationStabilityIndexTest.Instance.Test(r, k, FeatureKind.Numerical, new DriftWorkspace());
        Assert.Equal(("c", "psi", expected.Statistic, 0.2), (c.GetProperty("column").GetString(), c.GetProperty("test").GetString(), c.GetProperty("statistic").GetDouble(), c.GetProperty("threshold").GetDouble()));
        Assert.Equal(JsonValueKind.Null, c.GetProperty("p_value").ValueKind);
        Assert.Equal(expected.Statistic >= 0.2, c.GetProperty("drift").GetBoolean());
    }

    [Fact]
    public void DriftTest_TreatsCategoricalColumnsAsLabels()
    {
        string reference = Csv("r.csv", "code", Enumerable.Range(0, 2000).Select(i => new double[] { i % 7 }));
        string current = Csv("c.csv", "code", Enumerable.Range(0, 2000).Select(i => new double[] { i % 9 }));

        (int exitCode, string output, _) = Invoke("", "drift", "test", "--reference", reference, "--current", current, "--categorical", "code");

        Assert.Equal(0, exitCode);
        // Over 1,000 reference rows, categorical: Jensen-Shannon.
        Assert.Equal("jensenshannon", JsonDocument.Parse(output).RootElement.GetProperty("test").GetString());
    }

    [Theory]
    [InlineData("missing-column", "there is no column 'zz'")]
    [InlineData("not-a-number", "cur.csv:3: column 'b': 'x' is not a number")]
    [InlineData("empty-file", "the file is empty")]
    [InlineData("unknown-test", "--test: unknown test 'kolmogorov'")]
    public void DriftTest_ExitsWith2AndSaysWhere_OnBadInput(string @case, string message)
    {
        (string reference, string current) = Files();
        string[] args = ["drift", "test", "--reference", reference, "--current", current];
        switch (@case)
        {
            case "missing-column":
                args = [.. args, "--column", "zz"];
                break;
            case "not-a-number":
                File.WriteAllText(current, "a,b\n1,2\n3,x\n");
                break;
            case "empty-file":
                File.WriteAllText(current, "");
                break;
            default:
                args = [.. args, "--test", "kolmogorov"];
                break;
        }

        (int exitCode, string output, string error) = Invoke("", args);

        Assert.Equal(2, exitCode);
        Assert.Contains(message, output + error, StringComparison.Ordinal);
    }

    [Fact]
    public void DriftDetect_PrintsTheIndicesWhereTheDetectorSignalled()
    {
        string stream = string.Join("\n", Enumerable.Range(0, 1000).Select(i => i < 500 ? "0" : "5"));

        (int exitCode, string output, string error) = Invoke(stream, "drift", "detect", "--detector", "page-hinkley", "--param", "threshold=20", "--param", "mode=up");

        Assert.True(exitCode == 0, error);
        JsonElement result = JsonDocument.Parse(output).RootElement;
        Assert.Equal("page-hinkley", result.GetProperty("detector").GetString());
        var expected = new PageHinkleyDetector { Threshold = 20, Mode = PageHinkleyMode.Up };
        int[] detections = [.. Enumerable.Range(0, 1000).Where(i => { expected.Update(i < 500 ? 0 : 5); return expected.DriftDetected; })];
        Assert.Equal(detections, result.GetProperty("detections").EnumerateArray().Select(e => e.GetInt32()));
        Assert.InRange(detections[0], 500, 510);
        Assert.Empty(result.GetProperty("warnings").EnumerateArray());
    }

    [Fact]
    public void DriftDetect_ReportsWarnings_OfTheBinaryDetectors()
    {
        var random = new Random(3);
        string stream = string.Join("\n", Enumerable.Range(0, 3000).Select(i => random.NextDouble() < (i < 1500 ? 0.1 : 0.5) ? "1" : "0"));

        (int exitCode, string output, _) = Invoke(stream, "drift", "detect", "--detector", "ddm");

        Assert.Equal(0, exitCode);
        JsonElement result = JsonDocument.Parse(output).RootElement;
        Assert.NotEmpty(result.GetProperty("warnings").EnumerateArray());
        Assert.Contains(result.GetProperty("detections").EnumerateArray(), e => e.GetInt32() >= 1500);
    }

    [Theory]
    [InlineData("1\n2\nx\n", new[] { "--detector", "adwin" }, "stdin:3: 'x' is not a number")]
    [InlineData("", new[] { "--detector", "adwin" }, "no numbers were read")]
    [InlineData("1\n", new[] { "--detector", "cusum" }, "unknown drift detector 'cusum'")]
    [InlineData("1\n", new[] { "--detector", "adwin", "--param", "warm_start=3" }, "adwin has no parameter 'warm_start'")]
    [InlineData("1\n", new[] { "--detector", "adwin", "--param", "delta" }, "expected key=value")]
    public void DriftDetect_ExitsWith2AndSaysWhy_OnBadInput(string input, string[] options, string message)
    {
        (int exitCode, _, string error) = Invoke(input, ["drift", "detect", .. options]);

        Assert.Equal(2, exitCode);
        Assert.Contains(message, error, StringComparison.Ordinal);
    }

    [Fact]
    public void DriftHelp_ListsTheTestsAndDetectors()
    {
        (int exitCode, string output, _) = Invoke("", "drift", "test", "--help");

        Assert.Equal(0, exitCode);
        Assert.Contains("wasserstein-norm", output, StringComparison.Ordinal);
        Assert.Contains("[default: auto]", output, StringComparison.Ordinal);
        Assert.Contains("kswin", Invoke("", "drift", "detect", "--help").Output, StringComparison.Ordinal);
    }
}
