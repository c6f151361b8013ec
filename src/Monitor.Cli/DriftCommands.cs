using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Monitor.Analysis.Drift;
using Monitor.Service.Drift;

namespace Monitor.Cli;

/// <summary>
/// <c>monitor drift test</c> and <c>monitor drift detect</c>: the drift tests and detectors offline, on CSV files and
/// on a stream of numbers, for checking data files and for comparing with the reference libraries.
/// </summary>
internal static class DriftCommands
{
    public static Command Create(TextReader input) => new("drift", "Drift tests on data files and streaming drift detectors, offline.")
    {
        Test(),
        Detect(input),
    };

    private static Command Test()
    {
        var test = new Option<string>("--test") { Description = $"The test: {DriftTestCatalog.Auto} (Evidently's choice per column) or one of {string.Join(", ", DriftTestCatalog.Names)}.", DefaultValueFactory = _ => DriftTestCatalog.Auto };
        var reference = new Option<FileInfo>("--reference") { Description = "CSV file with a header row: the reference data.", Required = true };
        var current = new Option<FileInfo>("--current") { Description = "CSV file with a header row: the current data.", Required = true };
        var columns = new Option<string[]>("--column") { Description = "A column to test (repeatable). Default: every column of the reference." };
        var categorical = new Option<string[]>("--categorical") { Description = "A column whose values are category codes (repeatable)." };
        var threshold = new Option<double?>("--threshold") { Description = "Drift threshold: a p-value for hypothesis tests, a distance for the others. Default: each test's own (Evidently's)." };
        var correction = new Option<string>("--correction") { Description = "Multiple-testing correction of the dataset verdict over the columns' p-values (alibi-detect).", DefaultValueFactory = _ => "bonferroni" };
        correction.AcceptOnlyFromAmong("none", "bonferroni", "fdr");
        var command = new Command("test", "Compare columns of two CSV files with a two-sample drift test; print one JSON object per column and, for several columns, the dataset verdict (exit code 2 for bad input).")
        {
            test, reference, current, columns, categorical, threshold, correction,
        };
        command.SetAction(parse =>
        {
            TextWriter output = parse.InvocationConfiguration.Output;
            TextWriter error = parse.InvocationConfiguration.Error;
            try
            {
                string name = parse.GetValue(test)!;
                if (name != DriftTestCatalog.Auto && !DriftTestCatalog.TryGet(name, out _))
                {
                    throw new ArgumentException($"--test: unknown test '{name}'; use {DriftTestCatalog.Auto} or one of: {string.Join(", ", DriftTestCatalog.Names)}");
                }

                if (parse.GetValue(threshold) is { } t && !(t > 0 && double.IsFinite(t)))
                {
                    throw new ArgumentException($"--threshold: {t} must be a positive number");
                }

                (IReadOnlyList<string> referenceNames, IReadOnlyDictionary<string, double[]> referenceColumns) = CsvColumns.Read(parse.GetValue(reference)!.FullName);
                (_, IReadOnlyDictionary<string, double[]> currentColumns) = CsvColumns.Read(parse.GetValue(current)!.FullName);
                string[] chosen = parse.GetValue(columns) is { Length: > 0 } named ? named : [.. referenceNames];
                HashSet<string> categories = [.. parse.GetValue(categorical) ?? []];
                var results = new List<ColumnResult>();
                var workspace = new DriftWorkspace();
                foreach (string column in chosen)
                {
                    double[] r = Finite(referenceColumns, column, parse.GetValue(reference)!);
                    double[] c = Finite(currentColumns, column, parse.GetValue(current)!);
                    FeatureKind kind = categories.Contains(column) ? FeatureKind.Categorical : FeatureKind.Numerical;
                    IUnivariateDriftTest chosenTest = parse.GetValue(test) == DriftTestCatalog.Auto
                        ? DriftTestCatalog.ChooseDefault(r, c, kind)
                        : DriftTestCatalog.Get(parse.GetValue(test)!);
                    TwoSampleResult result = chosenTest.Test(r, c, kind, workspace);
                    double limit = parse.GetValue(threshold) ?? chosenTest.DefaultThreshold;
                    results.Add(new ColumnResult(column, chosenTest, result, limit, DriftVerdict.IsDrift(chosenTest.VerdictRule, result, limit)));
                }

                foreach (ColumnResult result in results)
                {
                    output.WriteLine(new JsonObject
                    {
                        ["column"] = result.Column,
                        ["test"] = result.Test.Name,
                        ["statistic"] = Number(result.Result.Statistic),
                        ["p_value"] = result.Result.HasPValue ? Number(result.Result.PValue) : null,
                        ["threshold"] = result.Threshold,
                        ["drift"] = result.Drift,
                    }.ToJsonString());
                }

                if (results.Count > 1)
                {
                    output.WriteLine(DatasetVerdict(results, parse.GetValue(correction)!, parse.GetValue(threshold)).ToJsonString());
                }

                return 0;
            }
            catch (Exception ex) when (ex is CsvFormatException or ArgumentException)
            {
                error.WriteLine("monitor drift test: " + ex.Message);
                return 2;
            }
        });
        return command;
    }

    private static JsonObject DatasetVerdict(List<ColumnResult> results, string correction, double? threshold)
    {
        int drifted = results.Count(r => r.Drift);
        var verdict = new JsonObject
        {
            ["columns"] = results.Count,
            ["drifted_columns"] = drifted,
            ["share"] = EvidentlyDefaults.DriftedShare(drifted, results.Count),
            ["drift_share"] = EvidentlyDefaults.DriftShare,
            ["dataset_drift"] = EvidentlyDefaults.IsDatasetDrift(drifted, results.Count),
            ["correction"] = correction,
        };
        double[] pValues = [.. results.Where(r => r.Result.HasPValue).Select(r => r.Result.PValue)];
        // alibi-detect's batch verdict over the columns' p-values (distances have none to correct).
        if (pValues.Length == 0 || correction == "none")
        {
            verdict["corrected_threshold"] = null;
            verdict["corrected_drift"] = null;
            return verdict;
        }

        double level = threshold ?? MultipleTestCorrection.DefaultLevel;
        CorrectionResult corrected = correction == "bonferroni"
            ? MultipleTestCorrection.Bonferroni(pValues, level)
            : MultipleTestCorrection.BenjaminiHochberg(pValues, new DriftWorkspace(), level);
        verdict["corrected_threshold"] = double.IsNaN(corrected.Threshold) ? null : corrected.Threshold;
        verdict["corrected_drift"] = corrected.IsDrift;
        return verdict;
    }

    // JSON has no infinities: a non-finite statistic is written as the string "Infinity", "-Infinity" or "NaN".
    private static JsonValue Number(double value) => double.IsFinite(value) ? JsonValue.Create(value) : JsonValue.Create(value.ToString(CultureInfo.InvariantCulture));

    private static double[] Finite(IReadOnlyDictionary<string, double[]> columns, string column, FileInfo file)
    {
        if (!columns.TryGetValue(column, out double[]? values))
        {
            throw new ArgumentException($"{file.FullName}:1: there is no column '{column}' (its columns: {string.Join(", ", columns.Keys)})");
        }

        double[] finite = [.. values.Where(double.IsFinite)];
        return finite.Length > 0 ? finite : throw new ArgumentException($"{file.FullName}: column '{column}' has no finite values");
    }

    private static Command Detect(TextReader input)
    {
        var detector = new Option<string>("--detector") { Description = "The detector: adwin, page-hinkley, kswin, ddm, eddm, hddm-a, hddm-w (river's).", Required = true };
        var parameters = new Option<string[]>("--param") { Description = "A detector parameter as river spells it, key=value (repeatable), e.g. --param delta=0.002 --param mode=up." };
        var command = new Command("detect", "Run a streaming drift detector over numbers read from stdin (one per line) and print the 0-based indices where it signalled drift and warnings, as JSON (exit code 2 for bad input).")
        {
            detector, parameters,
        };
        command.SetAction(parse =>
        {
            TextWriter output = parse.InvocationConfiguration.Output;
            TextWriter error = parse.InvocationConfiguration.Error;
            try
            {
                var settings = new Dictionary<string, string>(StringComparer.Ordinal);
                foreach (string pair in parse.GetValue(parameters) ?? [])
                {
                    int equals = pair.IndexOf('=', StringComparison.Ordinal);
                    if (equals <= 0)
                    {
                        throw new ArgumentException($"--param '{pair}': expected key=value, e.g. delta=0.002");
                    }

                    settings[pair[..equals].Trim()] = pair[(equals + 1)..].Trim();
                }

                string name = parse.GetValue(detector)!;
                IDriftDetector instance = DriftDetectors.Create(name, settings);
                var detections = new JsonArray();
                var warnings = new JsonArray();
                long index = 0;
                int line = 0;
                while (input.ReadLine() is { } text)
                {
                    line++;
                    string cell = text.Trim();
                    if (cell.Length == 0)
                    {
                        continue;
                    }

                    if (!double.TryParse(cell, NumberStyles.Float, CultureInfo.InvariantCulture, out double value))
                    {
                        throw new ArgumentException($"stdin:{line}: '{(cell.Length > 40 ? cell[..40] + "..." : cell)}' is not a number");
                    }

                    instance.Update(value);
                    if (instance.DriftDetected)
                    {
                        detections.Add(index);
                    }

                    if (instance.WarningDetected)
                    {
                        warnings.Add(index);
                    }

                    index++;
                }

                if (index == 0)
                {
                    throw new ArgumentException("stdin: no numbers were read (one number per line expected)");
                }

                output.WriteLine(new JsonObject { ["detector"] = name, ["detections"] = detections, ["warnings"] = warnings }.ToJsonString());
                return 0;
            }
            catch (ArgumentException ex)
            {
                error.WriteLine("monitor drift detect: " + ex.Message);
                return 2;
            }
        });
        return command;
    }

    private sealed record ColumnResult(string Column, IUnivariateDriftTest Test, TwoSampleResult Result, double Threshold, bool Drift);
}
