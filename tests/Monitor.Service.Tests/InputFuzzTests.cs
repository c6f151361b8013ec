using Monitor.Service.Drift;
using Monitor.Service.Rules;
using Monitor.Testing;

namespace Monitor.Service.Tests;

/// <summary>
/// Seeded fuzzing of the files users hand the service and the CLI: rule files (YAML and JSON) and the CSV files of
/// <c>monitor drift test</c>. Every input gets the result or the typed error, with a message; never another exception
/// or a hang. The CI share is small; <c>MONITOR_FUZZ_INPUTS</c> sets a dedicated run's size (see <see cref="Fuzz"/>).
/// </summary>
public sealed class InputFuzzTests
{
    private const string JsonRules = """
        { "rules": [
          { "rule": "VanishingGradient", "name": "Vg", "parameters": { "threshold": 1e-7, "windowSteps": 5 }, "for": "30s", "severity": "critical",
            "selector": { "collections": ["gradients"], "include": ["^fc1\\."] }, "labels": { "team": "ml" }, "actions": ["stop"] },
          { "rule": "DataDrift", "name": "Inputs", "parameters": { "test": "ks", "rowsPerStep": 4, "windowSteps": 50, "correction": "fdr" } },
          { "rule": "ConceptDrift", "keepFiringForEvaluations": 10, "parameters": { "detector": "adwin", "detectorParameters": { "delta": 0.002 } } }
        ] }
        """;

    private static readonly string[] YamlTokens = [":", "- ", "  ", "\n", "{", "}", "[", "]", "'", "\"", "&a ", "*a", "!!binary ", "? ", "|\n", ">-\n", "~", "1e999",
        "rule: ", "parameters: {", "assemblies: [x.dll]", "for: 5x", "threshold: -1", "windowSteps: 0", "test: nope", "\t", "#"];

    private static readonly string[] JsonTokens = ["{", "}", "[", "]", "\"", ":", ",", "null", "true", "1e999", "-0", "\"rule\":", "\"parameters\":{", "\"assemblies\":[\"x.dll\"]",
        "\"for\":\"5x\"", "\"threshold\":-1", new string('[', 1_000)];

    private static readonly string[] CsvTokens = [",", "\"", "\"\"", "\r\n", "\n", "nan", "inf", "-Infinity", "1e999", "0x1F", " ", "a,a", "1,2,3,4", "\u00a0"];

    [Fact]
    public void Fuzz_RuleFileParse_ReturnsRulesOrARuleConfigurationError_WhenYamlOrJsonIsMutated()
    {
        Random random = Fuzz.NewRandom(27_182);
        string baseDirectory = Directory.CreateTempSubdirectory("rules-fuzz-").FullName;
        try
        {
            Dictionary<string, int> outcomes = Fuzz.Run("rule files", Fuzz.Inputs(2_000), i =>
            {
                bool json = random.Next(2) == 0;
                string text = json ? Fuzz.MutateText(JsonRules, random, JsonTokens) : Fuzz.MutateText(RuleCatalog.DefaultRuleFile, random, YamlTokens);
                try
                {
                    IReadOnlyList<Monitor.Analysis.RuleBinding> rules = RuleConfiguration.Parse(text, json, baseDirectory, RuleCatalog.BuiltIn);
                    Assert.All(rules, r => Assert.NotNull(r.Rule));
                    return json ? "json parsed" : "yaml parsed";
                }
                catch (RuleConfigurationException ex)
                {
                    Assert.NotEmpty(ex.Problems);
                    Assert.All(ex.Problems, p => Assert.False(string.IsNullOrWhiteSpace(p), $"input #{i}: a problem without words"));
                    return json ? "json refused" : "yaml refused";
                }
            }, TimeSpan.FromSeconds(2));

            Assert.True(outcomes.GetValueOrDefault("yaml parsed") > 0 && outcomes.GetValueOrDefault("yaml refused") > 0, "YAML mutations reach both sides");
            Assert.True(outcomes.GetValueOrDefault("json parsed") > 0 && outcomes.GetValueOrDefault("json refused") > 0, "JSON mutations reach both sides");
        }
        finally
        {
            Directory.Delete(baseDirectory, recursive: true);
        }
    }

    [Fact]
    public void Fuzz_CsvParse_ReturnsColumnsOrACsvError_NamingTheFile_WhenTheFileIsMutated()
    {
        Random random = Fuzz.NewRandom(16_180);
        string valid = "x0,\"x 1\",label\r\n1.5,-2e-3,0\n2.5,3,1\n,4,nan\n0.25,\"5\",inf\n";
        Dictionary<string, int> outcomes = Fuzz.Run("drift CSV", Fuzz.Inputs(20_000), i =>
        {
            string text = random.Next(10) == 0 ? Fuzz.RandomText(random, 120) : Fuzz.MutateText(valid, random, CsvTokens);
            try
            {
                (IReadOnlyList<string> names, IReadOnlyDictionary<string, double[]> columns) = CsvColumns.Parse(text, "fuzz.csv");
                Assert.Equal(names.Count, columns.Count);
                return "parsed";
            }
            catch (CsvFormatException ex)
            {
                Assert.StartsWith("fuzz.csv", ex.Message, StringComparison.Ordinal);
                return "refused";
            }
        }, TimeSpan.FromSeconds(1));

        Assert.True(outcomes.GetValueOrDefault("parsed") > 0 && outcomes.GetValueOrDefault("refused") > 0, "the mutations reach both sides");
    }
}
