using Monitor.Analysis;
using Monitor.Analysis.Drift;
using Monitor.Service.Rules;

namespace Monitor.Service.Tests;

/// <summary>Drift monitors in rule files: their parameters, stored references, detector parameters and problems.</summary>
public sealed class DriftRuleConfigurationTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "monitor-drift-rules-" + Guid.NewGuid().ToString("N"));

    public DriftRuleConfigurationTests() => Directory.CreateDirectory(_directory);

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private IReadOnlyList<RuleBinding> Parse(string yaml) => RuleConfiguration.Parse(yaml, json: false, _directory, RuleCatalog.BuiltIn);

    private IReadOnlyList<string> ProblemsOf(string yaml) =>
        Assert.Throws<RuleConfigurationException>(() => RuleConfiguration.Parse(yaml, json: false, _directory, RuleCatalog.BuiltIn)).Problems;

    [Fact]
    public void Parse_BindsEveryDataDriftParameter()
    {
        RuleBinding binding = Assert.Single(Parse("""
            rules:
              - rule: DataDrift
                name: InputDrift
                selector: { collections: [inputs] }
                forEvaluations: 2
                parameters:
                  features: [x0, x1]
                  categorical: [x1]
                  test: ks
                  threshold: 0.01
                  reference: sliding
                  referenceSteps: 20
                  windowSteps: 10
                  everySteps: 5
                  rowsPerStep: 16
                  warmupSteps: 100
                  correction: fdr
                  multivariate: mmd
                  multivariateThreshold: 0.01
            """));

        var rule = Assert.IsType<DataDriftRule>(binding.Rule);
        Assert.Equal(("InputDrift", 2), (binding.AlertName, binding.ForEvaluations));
        Assert.Equal(["x0", "x1"], rule.Features);
        Assert.Equal(["x1"], rule.Categorical);
        Assert.Equal(("ks", 0.01, DriftReferenceKind.Sliding), (rule.Test, rule.Threshold, rule.Reference));
        Assert.Equal((20, 10, 5, 16, 100), (rule.ReferenceSteps, rule.WindowSteps, rule.EverySteps, rule.RowsPerStep, rule.WarmupSteps));
        Assert.Equal((DriftCorrection.Fdr, MultivariateDrift.Mmd, 0.01), (rule.Correction, rule.Multivariate, rule.MultivariateThreshold));
    }

    [Fact]
    public void Parse_LoadsTheReferenceFile_RelativeToTheRuleFile()
    {
        File.WriteAllText(Path.Combine(_directory, "ref.csv"), "x0,x1\n1,2\n3,\n5,6\n");

        RuleBinding binding = Assert.Single(Parse("rules:\n  - rule: DataDrift\n    parameters: { referenceFile: ref.csv, features: [x0] }\n"));

        DriftReferenceTable table = Assert.IsType<DataDriftRule>(binding.Rule).StoredReference!;
        Assert.Equal("ref.csv", table.Source);
        Assert.Equal(["x0", "x1"], table.Names);
        Assert.Equal([1.0, 3, 5], table.Column("x0").ToArray());
        Assert.True(double.IsNaN(table.Column("x1")[1]));
    }

    [Fact]
    public void Parse_NamesTheFileLineAndColumn_WhenTheReferenceFileIsBad()
    {
        File.WriteAllText(Path.Combine(_directory, "bad.csv"), "x0,x1\n1,2\n3,oops\n");

        string problem = Assert.Single(ProblemsOf("rules:\n  - rule: DataDrift\n    parameters: { referenceFile: bad.csv }\n"));

        Assert.StartsWith("rules[0] (DataDrift).parameters.referenceFile: ", problem, StringComparison.Ordinal);
        Assert.Contains("bad.csv:3: column 'x1': 'oops' is not a number", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_ReportsDriftProblems_EachNamingItsField()
    {
        File.WriteAllText(Path.Combine(_directory, "ref.csv"), "x0\n1\n2\n");

        IReadOnlyList<string> problems = ProblemsOf("""
            rules:
              - rule: DataDrift
                parameters: { test: kolmogorov }
              - rule: DataDrift
                name: B
                parameters: { reference: stored }
              - rule: DataDrift
                name: C
                parameters: { referenceFile: ref.csv, features: [x9] }
              - rule: DataDrift
                name: D
                parameters: { referenceFile: missing.csv }
              - rule: DataDrift
                name: E
                parameters: { windowSteps: 0, reference: everywhere }
              - rule: ConceptDrift
                parameters: { detector: cusum }
              - rule: ConceptDrift
                name: G
                parameters: { detector: adwin, detectorParameters: { delta: 2, warm_start: 3 } }
              - rule: DataDrift
                name: H
                labels: { feature: x0 }
            """);

        string[] expected =
        [
            "rules[0] (DataDrift).parameters.test: unknown drift test 'kolmogorov'",
            "rules[1] (DataDrift).parameters.reference: 'stored' needs a referenceFile",
            "rules[2] (DataDrift).parameters.features: 'x9' is not a column of the reference ref.csv",
            "rules[3] (DataDrift).parameters.referenceFile: ",
            "rules[4] (DataDrift).parameters.windowSteps: WindowSteps must be at least 1",
            "rules[4] (DataDrift).parameters.reference: expected ",
            "rules[5] (ConceptDrift).parameters.detector: unknown drift detector 'cusum'",
            "rules[6] (ConceptDrift).parameters.detectorParameters: ",
            "rules[7] (DataDrift).labels.feature: set by the engine",
        ];
        foreach (string problem in expected)
        {
            Assert.Contains(problems, p => p.StartsWith(problem, StringComparison.Ordinal));
        }

        Assert.Equal(expected.Length, problems.Count);
    }

    [Fact]
    public void Parse_KeepsDetectorParametersAsRiverSpellsThem_NumbersBooleansAndWords()
    {
        RuleBinding binding = Assert.Single(Parse("""
            rules:
              - rule: ConceptDrift
                keepFiringForEvaluations: 50
                selector: { collections: [losses] }
                parameters:
                  detector: page-hinkley
                  input: values
                  detectorParameters: { threshold: 20, delta: 0.01, mode: up, min_instances: 10 }
            """));

        var rule = Assert.IsType<ConceptDriftRule>(binding.Rule);
        Assert.Equal(("page-hinkley", ConceptDriftInput.Values, 50), (rule.Detector, rule.Input, binding.KeepFiringForEvaluations));
        Assert.Equal(new Dictionary<string, string> { ["threshold"] = "20", ["delta"] = "0.01", ["mode"] = "up", ["min_instances"] = "10" }, rule.DetectorParameters);
    }

    [Fact]
    public void DefaultRules_WatchInputsPredictionsAndErrors()
    {
        IReadOnlyList<RuleBinding> rules = RuleCatalog.DefaultRules();

        var input = Assert.IsType<DataDriftRule>(rules.Single(r => r.AlertName == "InputDrift").Rule);
        Assert.Equal((DriftTestCatalog.Auto, 1, 200, 200, DriftCorrection.Bonferroni), (input.Test, input.RowsPerStep, input.ReferenceSteps, input.WindowSteps, input.Correction));
        var predictions = Assert.IsType<DataDriftRule>(rules.Single(r => r.AlertName == "PredictionDrift").Rule);
        Assert.Equal((DriftReferenceKind.Sliding, 200, 8, 100), (predictions.Reference, predictions.WarmupSteps, predictions.RowsPerStep, predictions.WindowSteps));
        Assert.Equal("ddm", Assert.IsType<ConceptDriftRule>(rules.Single(r => r.AlertName == "ConceptDrift").Rule).Detector);
    }
}
