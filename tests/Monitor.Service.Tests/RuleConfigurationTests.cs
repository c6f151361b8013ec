using Monitor.Analysis;
using Monitor.Analysis.Rules;
using Monitor.Analysis.Windows;
using Monitor.Contracts.V1;
using Monitor.Service.Rules;

namespace Monitor.Service.Tests;

/// <summary>A custom rule loaded from this assembly through a rule file's <c>assemblies</c>.</summary>
public sealed class CustomTestRule : ITrainingRule
{
    public string Name { get; init; } = "CustomTest";

    public double Limit { get; init; } = 1;

    public int Depth { get; init; }

    public TimeSpan Patience { get; init; }

    public IReadOnlyList<string> Tags { get; init; } = [];

    public void Evaluate(StepRecord record, RuleContext context)
    {
    }
}

public sealed class RuleConfigurationTests : IDisposable
{
    private const string FullYaml = """
        # Every field a rule entry takes.
        rules:
          - rule: VanishingGradient
            name: VanishingGradientFast
            parameters:
              threshold: 1e-6
              window_steps: 3
            for: 1m30s
            forEvaluations: 2
            keepFiringFor: 2m
            keepFiringForEvaluations: 4
            severity: critical
            labels:
              team: ml
              env: test
            annotations:
              summary: "{{labels.tensor}} vanished at step {{step}}"
              runbook: https://example.test/vanishing
            actions: [stop]
          - rule: Threshold
            name: LargeGradients
            selector:
              collections: [gradients]
              include: ['^fc']
              exclude: ['bias$']
            parameters:
              statistic: L2
              aggregate: max
              comparison: AtOrAbove
              threshold: 100
            window: {duration: 30s, advance: 10s, grace: 5s}
          - rule: threshold
            name: ZeroWeights
            parameters: {Statistic: ZeroFraction, Threshold: 0.5}
            window: {steps: 4, advance: 2}
          - rule: LossNotDecreasing
            enabled: false
            parameters: {numSteps: 50}
          - rule: LossNotDecreasing
            enabled: true
            parameters: {num_steps: 20, diffPercent: 0.5}
        """;

    private const string FullJson = """
        {
          // Comments and trailing commas are accepted.
          "rules": [
            {
              "rule": "VanishingGradient",
              "name": "VanishingGradientFast",
              "parameters": { "threshold": 1e-6, "window_steps": 3 },
              "for": "1m30s",
              "forEvaluations": 2,
              "keepFiringFor": "2m",
              "keepFiringForEvaluations": 4,
              "severity": "critical",
              "labels": { "team": "ml", "env": "test" },
              "annotations": { "summary": "{{labels.tensor}} vanished at step {{step}}", "runbook": "https://example.test/vanishing" },
              "actions": ["stop"]
            },
            {
              "rule": "Threshold",
              "name": "LargeGradients",
              "selector": { "collections": ["gradients"], "include": ["^fc"], "exclude": ["bias$"] },
              "parameters": { "statistic": "L2", "aggregate": "max", "comparison": "AtOrAbove", "threshold": 100 },
              "window": { "duration": "30s", "advance": "10s", "grace": "5s" }
            },
            {
              "rule": "threshold",
              "name": "ZeroWeights",
              "parameters": { "Statistic": "ZeroFraction", "Threshold": 0.5 },
              "window": { "steps": 4, "advance": 2 }
            },
            { "rule": "LossNotDecreasing", "enabled": false, "parameters": { "numSteps": 50 } },
            { "rule": "LossNotDecreasing", "enabled": true, "parameters": { "num_steps": 20, "diffPercent": 0.5 } },
          ],
        }
        """;

    private readonly string _directory = Directory.CreateTempSubdirectory("monitor-rules-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static IReadOnlyList<RuleBinding> ParseYaml(string yaml) => RuleConfiguration.Parse(yaml, json: false, ".", RuleCatalog.BuiltIn);

    private static IReadOnlyList<string> ProblemsOf(string text, bool json = false) =>
        Assert.Throws<RuleConfigurationException>(() => RuleConfiguration.Parse(text, json, ".", RuleCatalog.BuiltIn)).Problems;

    private string WriteFile(string name, string text)
    {
        string path = Path.Combine(_directory, name);
        File.WriteAllText(path, text);
        return path;
    }

    private static void AssertFullConfiguration(IReadOnlyList<RuleBinding> bindings)
    {
        Assert.Equal(["VanishingGradientFast", "LargeGradients", "ZeroWeights", "LossNotDecreasing"], bindings.Select(b => b.AlertName));

        RuleBinding vanishing = bindings[0];
        VanishingGradientRule vanishingRule = Assert.IsType<VanishingGradientRule>(vanishing.Rule);
        Assert.Equal((1e-6, 3), (vanishingRule.Threshold, vanishingRule.WindowSteps));
        Assert.Equal("VanishingGradient", vanishingRule.Name);
        Assert.Equal("VanishingGradientFast", vanishing.Name);
        Assert.Equal(TimeSpan.FromSeconds(90), vanishing.ForDuration);
        Assert.Equal(2, vanishing.ForEvaluations);
        Assert.Equal((TimeSpan.FromMinutes(2), 4), (vanishing.KeepFiringFor, vanishing.KeepFiringForEvaluations));
        Assert.Equal("critical", vanishing.Severity);
        Assert.Equal(new Dictionary<string, string> { ["team"] = "ml", ["env"] = "test" }, vanishing.Labels);
        Assert.Equal(
            new Dictionary<string, string> { ["summary"] = "{{labels.tensor}} vanished at step {{step}}", ["runbook"] = "https://example.test/vanishing" },
            vanishing.Annotations);
        Assert.Equal(["stop"], vanishing.Actions);

        RuleBinding large = bindings[1];
        ThresholdRule largeRule = Assert.IsType<ThresholdRule>(large.Rule);
        Assert.Equal(TensorStatistic.L2, largeRule.Statistic);
        Assert.Equal(WindowAggregate.Max, largeRule.Aggregate);
        Assert.Equal(ThresholdComparison.AtOrAbove, largeRule.Comparison);
        Assert.Equal(100, largeRule.Threshold);
        Assert.Equal(new WindowSpec { Duration = TimeSpan.FromSeconds(30), Advance = TimeSpan.FromSeconds(10), Grace = TimeSpan.FromSeconds(5) }, largeRule.Window);
        Assert.Equal([Collection.Gradients], largeRule.Selector.Collections);
        Assert.Equal(["^fc"], largeRule.Selector.Include);
        Assert.Equal(["bias$"], largeRule.Selector.Exclude);

        // Defaults of everything the entry leaves out.
        Assert.Equal("warning", large.Severity);
        Assert.Equal(TimeSpan.Zero, large.ForDuration);
        Assert.Equal(0, large.ForEvaluations);
        Assert.Equal((TimeSpan.Zero, 0), (large.KeepFiringFor, large.KeepFiringForEvaluations));
        Assert.Empty(large.Labels);
        Assert.Empty(large.Annotations);
        Assert.Empty(large.Actions);

        ThresholdRule zeroRule = Assert.IsType<ThresholdRule>(bindings[2].Rule);
        Assert.Equal((TensorStatistic.ZeroFraction, 0.5), (zeroRule.Statistic, zeroRule.Threshold));
        Assert.Equal(new WindowSpec { Steps = 4, AdvanceSteps = 2 }, zeroRule.Window);
        Assert.Equal(TensorStatistic.ZeroFraction, zeroRule.Statistic);
        Assert.Empty(zeroRule.Selector.Collections);

        // The disabled entry is skipped (so its name is no duplicate); the enabled one takes snake and camel case.
        RuleBinding loss = bindings[3];
        LossNotDecreasingRule lossRule = Assert.IsType<LossNotDecreasingRule>(loss.Rule);
        Assert.Equal((20, 0.5), (lossRule.NumSteps, lossRule.DiffPercent));
        Assert.Null(loss.Name);
    }

    [Fact]
    public void Parse_LoadsEveryField_FromYaml()
    {
        AssertFullConfiguration(ParseYaml(FullYaml));
    }

    [Fact]
    public void Load_LoadsEveryField_FromAYamlFile()
    {
        AssertFullConfiguration(RuleConfiguration.Load(WriteFile("rules.yaml", FullYaml), RuleCatalog.BuiltIn));
    }

    [Fact]
    public void Load_ReadsJson_WhenTheExtensionIsJson()
    {
        AssertFullConfiguration(RuleConfiguration.Load(WriteFile("rules.JSON", FullJson), RuleCatalog.BuiltIn));
    }

    [Fact]
    public void Load_ReadsYaml_WhenTheExtensionIsNotJson()
    {
        AssertFullConfiguration(RuleConfiguration.Load(WriteFile("rules.txt", FullYaml), RuleCatalog.BuiltIn));
        RuleConfigurationException ex = Assert.Throws<RuleConfigurationException>(() => RuleConfiguration.Load(WriteFile("rules.json", FullYaml), RuleCatalog.BuiltIn));
        Assert.StartsWith("not valid JSON: ", Assert.Single(ex.Problems), StringComparison.Ordinal);
    }

    [Fact]
    public void Load_Throws_WhenTheFileDoesNotExist()
    {
        string path = Path.Combine(_directory, "missing.yaml");

        RuleConfigurationException ex = Assert.Throws<RuleConfigurationException>(() => RuleConfiguration.Load(path, RuleCatalog.BuiltIn));

        Assert.StartsWith(path + ": ", Assert.Single(ex.Problems), StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_CreatesFreshRuleInstances_OnEveryLoad()
    {
        IReadOnlyList<RuleBinding> first = ParseYaml(FullYaml);
        IReadOnlyList<RuleBinding> second = ParseYaml(FullYaml);

        Assert.All(first.Zip(second), pair => Assert.NotSame(pair.First.Rule, pair.Second.Rule));
    }

    [Fact]
    public void Parse_ReturnsNoRules_WhenTheListIsEmptyOrAllDisabled()
    {
        Assert.Empty(ParseYaml("rules: []"));
        Assert.Empty(ParseYaml("rules:\n  - rule: VanishingGradient\n    enabled: false\n"));
        Assert.Empty(RuleConfiguration.Parse("""{"rules": []}""", json: true, ".", RuleCatalog.BuiltIn));
    }

    [Fact]
    public void Parse_ReportsEveryProblemTogether_EachNamingRuleIndexNameAndField()
    {
        const string yaml = """
            extra: 1
            rules:
              - rule: Nope
              - rule: VanishingGradient
                name: A
                parameters: {bogus: 1}
              - rule: VanishingGradient
                name: B
                parameters: {threshold: abc}
              - rule: VanishingGradient
                name: C
                parameters: {threshold: -1}
              - rule: Threshold
                name: D
                window: {steps: 5, advance: 6}
              - rule: VanishingGradient
                name: E
                for: soon
              - rule: VanishingGradient
                name: F
                labels: {severity: high, bad-name: x}
              - rule: VanishingGradient
                name: G
                actions: [stop, page]
              - rule: VanishingGradient
                name: H
                treshold: 1
              - rule: Threshold
                name: I
                selector: {collections: [grads], include: ['(']}
              - rule: LossNotDecreasing
              - rule: LossNotDecreasing
            """;

        IReadOnlyList<string> problems = ProblemsOf(yaml);

        string[] expected =
        [
            "extra: unknown field; known: rules, assemblies",
            "rules[0] (Nope).rule: unknown rule 'Nope'. Built-in: AllZero, CheckInputImages, ClassImbalance, ConceptDrift, Confusion, DataDrift, DeadRelu,",
            "rules[1] (VanishingGradient).parameters.bogus: rule VanishingGradient has no parameter 'bogus'; its parameters: ",
            "rules[2] (VanishingGradient).parameters.threshold: expected a number, got \"abc\"",
            "rules[3] (VanishingGradient).parameters.threshold: Threshold must be positive",
            "rules[4] (Threshold).window: window.advance: 6 steps must be between 1 and the window's 5",
            "rules[5] (VanishingGradient).for: expected a duration such as 30s, 5m, 1h30m, got \"soon\"",
            "rules[6] (VanishingGradient).labels.severity: set by the engine; choose another label name",
            "rules[6] (VanishingGradient).labels.bad-name: not a valid label name",
            "rules[7] (VanishingGradient).actions: unknown action 'page'; known: stop",
            "rules[8] (VanishingGradient).treshold: unknown field; known: rule, name, enabled, selector, parameters, window, for, forEvaluations, keepFiringFor, keepFiringForEvaluations, severity, labels, annotations, actions",
            "rules[9] (Threshold).selector.collections: unknown collection 'grads'; known: weights, biases, gradients",
            "rules[9] (Threshold).selector: invalid regular expression: ",
            "rules: the alert name 'LossNotDecreasing' is used 2 times; give the others a 'name'",
        ];
        foreach (string problem in expected)
        {
            Assert.Contains(problems, p => p.StartsWith(problem, StringComparison.Ordinal));
        }

        Assert.Equal(expected.Length, problems.Count);
    }

    [Fact]
    public void Parse_ListsTheBuiltInRulesAndHowToNameACustomOne_WhenTheRuleIsUnknown()
    {
        string problem = Assert.Single(ProblemsOf("rules:\n  - rule: Nope\n"));

        Assert.StartsWith("rules[0] (Nope).rule: unknown rule 'Nope'. Built-in: AllZero, ", problem, StringComparison.Ordinal);
        Assert.Contains(", VanishingGradient, WeightUpdateRatio.", problem, StringComparison.Ordinal);
        Assert.EndsWith(" A custom rule is named by its full type name, with its assembly listed under 'assemblies'.", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_ListsTheRulesParameters_WhenAParameterIsUnknown()
    {
        string problem = Assert.Single(ProblemsOf("rules:\n  - rule: VanishingGradient\n    parameters: {windowSize: 3}\n"));

        Assert.StartsWith("rules[0] (VanishingGradient).parameters.windowSize: rule VanishingGradient has no parameter 'windowSize'; its parameters: ", problem, StringComparison.Ordinal);
        string[] listed = problem[(problem.LastIndexOf(": ", StringComparison.Ordinal) + 2)..].Split(", ");
        Assert.Equal(["threshold", "windowSteps"], listed.Order(StringComparer.Ordinal));
    }

    [Theory]
    [InlineData("name")]
    [InlineData("selector")]
    [InlineData("window")]
    public void Parse_DoesNotTakeReservedPropertiesAsParameters(string parameter)
    {
        string problem = Assert.Single(ProblemsOf($"rules:\n  - rule: Threshold\n    parameters: {{{parameter}: x}}\n"));

        Assert.StartsWith($"rules[0] (Threshold).parameters.{parameter}: rule Threshold has no parameter '{parameter}'", problem, StringComparison.Ordinal);
        Assert.DoesNotContain("name", problem[problem.IndexOf("its parameters", StringComparison.Ordinal)..], StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("threshold: abc", "rules[0] (VanishingGradient).parameters.threshold: expected a number, got \"abc\"")]
    [InlineData("threshold: '1e-6'", "rules[0] (VanishingGradient).parameters.threshold: expected a number, got \"1e-6\"")]
    [InlineData("threshold: [1]", "rules[0] (VanishingGradient).parameters.threshold: expected a number, got [1]")]
    [InlineData("windowSteps: 2.5", "rules[0] (VanishingGradient).parameters.windowSteps: expected a whole number, got 2.5")]
    [InlineData("windowSteps: true", "rules[0] (VanishingGradient).parameters.windowSteps: expected a whole number, got true")]
    public void Parse_NamesTheExpectedType_WhenAParameterHasTheWrongType(string parameter, string expected)
    {
        Assert.Equal([expected], ProblemsOf($"rules:\n  - rule: VanishingGradient\n    parameters: {{{parameter}}}\n"));
    }

    [Fact]
    public void Parse_ListsTheEnumValues_WhenAnEnumParameterIsUnknown()
    {
        string problem = Assert.Single(ProblemsOf("rules:\n  - rule: Threshold\n    parameters: {statistic: Median}\n"));

        Assert.Equal("rules[0] (Threshold).parameters.statistic: expected one of Mean, AbsMean, Min, Max, Variance, L1, L2, ZeroFraction, NonFiniteCount, got \"Median\"", problem);
    }

    [Theory]
    [InlineData("VanishingGradient", "threshold: 0", "rules[0] (VanishingGradient).parameters.threshold: Threshold must be positive")]
    [InlineData("VanishingGradient", "window_steps: 0", "rules[0] (VanishingGradient).parameters.window_steps: WindowSteps must be at least 1")]
    [InlineData("LossNotDecreasing", "numSteps: -2", "rules[0] (LossNotDecreasing).parameters.numSteps: NumSteps must be at least 1")]
    [InlineData("LossNotDecreasing", "diffPercent: -0.1", "rules[0] (LossNotDecreasing).parameters.diffPercent: DiffPercent must be in [0, 100)")]
    public void Parse_ReportsTheRulesOwnMessage_WhenAParameterIsOutOfRange(string rule, string parameter, string expected)
    {
        Assert.Equal([expected], ProblemsOf($"rules:\n  - rule: {rule}\n    parameters: {{{parameter}}}\n"));
    }

    [Theory]
    [InlineData("{steps: 5, duration: 10s}", "rules[0] (Threshold).window: window: give exactly one of steps and duration")]
    [InlineData("{advance: 2}", "rules[0] (Threshold).window: window: give exactly one of steps and duration")]
    [InlineData("{steps: 0}", "rules[0] (Threshold).window: window.steps: 0 must be at least 1")]
    [InlineData("{steps: 5, grace: 1s}", "rules[0] (Threshold).window: window: a step window takes an advance in steps and no grace")]
    [InlineData("{duration: 10s, advance: 20s}", "rules[0] (Threshold).window: window.advance: 00:00:20 must be positive and at most the window's 00:00:10")]
    [InlineData("{duration: 10}", "rules[0] (Threshold).window.duration: expected a duration such as 30s, 5m, 1h30m, got 10")]
    [InlineData("{steps: 5, size: 3}", "rules[0] (Threshold).window.size: unknown field; known: steps, duration, advance, grace")]
    [InlineData("5", "rules[0] (Threshold).window: must be a mapping: steps (and advance in steps), or duration (and advance, grace)")]
    public void Parse_ReportsTheWindowProblem_WhenTheWindowIsInvalid(string window, string expected)
    {
        Assert.Contains(expected, ProblemsOf($"rules:\n  - rule: Threshold\n    window: {window}\n"));
    }

    [Theory]
    [InlineData("for: 5", "rules[0] (VanishingGradient).for: expected a duration such as 30s, 5m, 1h30m, got 5")]
    [InlineData("for: 5x", "rules[0] (VanishingGradient).for: expected a duration such as 30s, 5m, 1h30m, got \"5x\"")]
    [InlineData("for: -1s", "rules[0] (VanishingGradient).for: expected a duration such as 30s, 5m, 1h30m, got \"-1s\"")]
    [InlineData("forEvaluations: -1", "rules[0] (VanishingGradient).forEvaluations: -1 must not be negative")]
    [InlineData("forEvaluations: many", "rules[0] (VanishingGradient).forEvaluations: expected a whole number, got \"many\"")]
    [InlineData("keepFiringFor: -5m", "rules[0] (VanishingGradient).keepFiringFor: expected a duration such as 30s, 5m, 1h30m, got \"-5m\"")]
    [InlineData("keepFiringForEvaluations: -2", "rules[0] (VanishingGradient).keepFiringForEvaluations: -2 must not be negative")]
    [InlineData("severity: ''", "rules[0] (VanishingGradient).severity: must not be empty")]
    [InlineData("name: [a]", "rules[0] (VanishingGradient).name: expected a string, got [\"a\"]")]
    [InlineData("parameters: [1]", "rules[0] (VanishingGradient).parameters: must be a mapping of parameter names to values")]
    [InlineData("window: {steps: 5}", "rules[0] (VanishingGradient).window: rule VanishingGradient does not take a window")]
    public void Parse_NamesTheField_WhenARuleEntryFieldIsInvalid(string field, string expected)
    {
        Assert.Equal([expected], ProblemsOf($"rules:\n  - rule: VanishingGradient\n    {field}\n"));
    }

    [Fact]
    public void Parse_NamesTheField_WhenTheRuleTakesNoSelector()
    {
        Assert.Equal(
            ["rules[0] (StalledTraining).selector: rule StalledTraining does not take a selector"],
            ProblemsOf("rules:\n  - rule: StalledTraining\n    selector: {collections: [gradients]}\n"));
    }

    [Theory]
    [InlineData("alertname")]
    [InlineData("run")]
    [InlineData("rank")]
    [InlineData("tensor")]
    [InlineData("severity")]
    public void Parse_RejectsLabelsTheEngineSets(string label)
    {
        Assert.Equal(
            [$"rules[0] (VanishingGradient).labels.{label}: set by the engine; choose another label name"],
            ProblemsOf($"rules:\n  - rule: VanishingGradient\n    labels: {{{label}: x}}\n"));
    }

    [Theory]
    [InlineData("bad-name")]
    [InlineData("1abc")]
    [InlineData("a.b")]
    [InlineData("'with space'")]
    public void Parse_RejectsInvalidLabelNames(string label)
    {
        string problem = Assert.Single(ProblemsOf($"rules:\n  - rule: VanishingGradient\n    labels: {{{label}: x}}\n"));

        Assert.Equal($"rules[0] (VanishingGradient).labels.{label.Trim('\'')}: not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)", problem);
    }

    [Fact]
    public void Parse_ListsTheKnownActions_WhenAnActionIsUnknown()
    {
        Assert.Equal(
            ["rules[0] (VanishingGradient).actions: unknown action 'page'; known: stop"],
            ProblemsOf("rules:\n  - rule: VanishingGradient\n    actions: [page]\n"));
        Assert.Equal(["stop"], RuleConfiguration.KnownActions);
    }

    [Fact]
    public void Parse_NamesTheRuleIndex_WhenTheRuleNameIsMissing()
    {
        Assert.Equal(
            ["rules[0] (?).rule: missing; give a built-in rule name or a custom rule's full type name", "rules[1]: must be a mapping"],
            ProblemsOf("rules:\n  - name: X\n  - just a string\n"));
    }

    [Theory]
    [InlineData("{collections: [grads]}", "rules[0] (Threshold).selector.collections: unknown collection 'grads'; known: weights, biases, gradients, activations, losses, optimizer, inputs, predictions, labels, custom")]
    [InlineData("{include: ['(']}", "rules[0] (Threshold).selector: invalid regular expression: ")]
    [InlineData("{exclude: ['[a-']}", "rules[0] (Threshold).selector: invalid regular expression: ")]
    [InlineData("{names: [x]}", "rules[0] (Threshold).selector.names: unknown field; known: collections, include, exclude")]
    [InlineData("[gradients]", "rules[0] (Threshold).selector: must be a mapping with collections, include, exclude")]
    public void Parse_ReportsTheSelectorProblem_WhenTheSelectorIsInvalid(string selector, string expected)
    {
        string problem = Assert.Single(ProblemsOf($"rules:\n  - rule: Threshold\n    selector: {selector}\n"));

        Assert.StartsWith(expected, problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_AcceptsCollectionNamesInAnyCase()
    {
        ThresholdRule rule = Assert.IsType<ThresholdRule>(Assert.Single(ParseYaml("rules:\n  - rule: Threshold\n    selector: {collections: [Gradients, LOSSES]}\n")).Rule);

        Assert.Equal([Collection.Gradients, Collection.Losses], rule.Selector.Collections);
    }

    [Fact]
    public void Parse_ReportsDuplicateAlertNames_AndAcceptsRenamedCopies()
    {
        Assert.Equal(
            ["rules: the alert name 'Big' is used 2 times; give the others a 'name'"],
            ProblemsOf("rules:\n  - rule: VanishingGradient\n    name: Big\n  - rule: Threshold\n    name: Big\n"));

        IReadOnlyList<RuleBinding> renamed = ParseYaml("rules:\n  - rule: Threshold\n  - rule: Threshold\n    name: Threshold2\n");
        Assert.Equal(["Threshold", "Threshold2"], renamed.Select(b => b.AlertName));
    }

    [Theory]
    [InlineData("rules: [", false, "not valid YAML: ")]
    [InlineData("rules:\n  - rule: X\n bad: indentation\n", false, "not valid YAML: ")]
    [InlineData("{\"rules\": [", true, "not valid JSON: ")]
    [InlineData("{\"rules\": [] } trailing", true, "not valid JSON: ")]
    [InlineData("", false, "the file must be a mapping with a 'rules' list")]
    [InlineData("- rule: VanishingGradient", false, "the file must be a mapping with a 'rules' list")]
    [InlineData("[]", true, "the file must be a mapping with a 'rules' list")]
    public void Parse_ReportsTheSyntaxProblem_WhenTheTextIsMalformed(string text, bool json, string expected)
    {
        Assert.StartsWith(expected, Assert.Single(ProblemsOf(text, json)), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("rules: []\nrules: []\n", "not valid YAML: ")]
    [InlineData("rules:\n  - rule: VanishingGradient\n    name: A\n    name: B\n", "not valid YAML: ")]
    public void Parse_ReportsDuplicateYamlKeys(string yaml, string expected)
    {
        Assert.StartsWith(expected, Assert.Single(ProblemsOf(yaml)), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{\"rules\": [], \"rules\": []}")]
    [InlineData("{\"rules\": [{\"rule\": \"VanishingGradient\", \"name\": \"A\", \"name\": \"B\"}]}")]
    public void Parse_ReportsAProblem_WhenJsonRepeatsAKey(string json)
    {
        Assert.NotEmpty(ProblemsOf(json, json: true));
    }

    [Fact]
    public void Parse_ReportsAProblem_WhenAYamlKeyIsNotAScalar()
    {
        Assert.NotEmpty(ProblemsOf("? [a, b]\n: c\nrules: []\n"));
    }

    [Fact]
    public void Parse_ReportsAProblem_WhenANumberOverflows()
    {
        Assert.Equal(
            ["rules[0] (VanishingGradient).parameters.threshold: expected a number, got \"1e400\""],
            ProblemsOf("rules:\n  - rule: VanishingGradient\n    parameters: {threshold: 1e400}\n"));
    }

    [Fact]
    public void TryParseDuration_ReturnsFalse_WhenTheDurationOverflows()
    {
        Assert.False(RuleConfiguration.TryParseDuration("99999999999d", out _));
        Assert.NotEmpty(ProblemsOf("rules:\n  - rule: VanishingGradient\n    for: 99999999999d\n"));
    }

    [Theory]
    [InlineData("assemblies: []", false)]
    [InlineData("rules:", false)]
    [InlineData("rules: VanishingGradient", false)]
    [InlineData("{}", true)]
    [InlineData("{\"rules\": {}}", true)]
    public void Parse_ReportsMissingRules_WhenThereIsNoRulesList(string text, bool json)
    {
        Assert.Equal(["rules: missing, or not a list"], ProblemsOf(text, json));
    }

    [Fact]
    public void Parse_IncludesEveryProblem_InTheExceptionMessage()
    {
        RuleConfigurationException ex = Assert.Throws<RuleConfigurationException>(() =>
            ParseYaml("rules:\n  - rule: Nope\n  - rule: VanishingGradient\n    for: soon\n"));

        Assert.Equal(2, ex.Problems.Count);
        Assert.Equal("invalid rule configuration: " + string.Join("; ", ex.Problems), ex.Message);
    }

    [Fact]
    public void Parse_LoadsACustomRule_FromAnAssemblyListedInTheFile()
    {
        string assembly = typeof(CustomTestRule).Assembly.Location;
        string yaml = $"""
            assemblies: ['{assembly}']
            rules:
              - rule: Monitor.Service.Tests.CustomTestRule
                name: Custom
                parameters:
                  limit: 2.5
                  depth: 3
                  patience: 2m
                  tags: [a, b]
                severity: critical
            """;

        RuleBinding binding = Assert.Single(ParseYaml(yaml));

        CustomTestRule rule = Assert.IsType<CustomTestRule>(binding.Rule);
        Assert.Equal((2.5, 3, TimeSpan.FromMinutes(2)), (rule.Limit, rule.Depth, rule.Patience));
        Assert.Equal(["a", "b"], rule.Tags);
        Assert.Equal(("Custom", "critical"), (binding.AlertName, binding.Severity));
    }

    [Fact]
    public void Parse_ResolvesAssemblyPaths_AgainstTheBaseDirectory()
    {
        string location = typeof(CustomTestRule).Assembly.Location;
        string yaml = $"assemblies: [{Path.GetFileName(location)}]\nrules:\n  - rule: Monitor.Service.Tests.CustomTestRule\n";

        RuleBinding binding = Assert.Single(RuleConfiguration.Parse(yaml, json: false, Path.GetDirectoryName(location)!, RuleCatalog.BuiltIn));

        Assert.IsType<CustomTestRule>(binding.Rule);
        Assert.Equal("CustomTest", binding.AlertName);
    }

    [Fact]
    public void Parse_ReportsCustomRuleProblems_LikeBuiltInOnes()
    {
        string yaml = $"""
            assemblies: ['{typeof(CustomTestRule).Assembly.Location}']
            rules:
              - rule: Monitor.Service.Tests.CustomTestRule
                parameters: {"{"}limit: high, color: red{"}"}
            """;

        IReadOnlyList<string> problems = ProblemsOf(yaml);

        Assert.Contains("rules[0] (Monitor.Service.Tests.CustomTestRule).parameters.limit: expected a number, got \"high\"", problems);
        Assert.Contains("rules[0] (Monitor.Service.Tests.CustomTestRule).parameters.color: rule CustomTest has no parameter 'color'; its parameters: limit, depth, patience, tags", problems);
    }

    [Fact]
    public void Parse_ReportsAnUnknownRule_WhenTheCustomRulesAssemblyIsNotListed()
    {
        string problem = Assert.Single(ProblemsOf("rules:\n  - rule: Monitor.Service.Tests.CustomTestRule\n"));

        Assert.StartsWith("rules[0] (Monitor.Service.Tests.CustomTestRule).rule: unknown rule", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_ReportsTheAssembly_WhenItCannotBeLoaded()
    {
        string missing = Path.Combine(_directory, "NoSuch.dll");

        IReadOnlyList<string> problems = ProblemsOf($"assemblies: ['{missing}']\nrules: []\n");

        Assert.StartsWith($"assemblies[0]: cannot load '{missing}': ", Assert.Single(problems), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("500ms", 500)]
    [InlineData("30s", 30_000)]
    [InlineData("5m", 300_000)]
    [InlineData("1h30m", 5_400_000)]
    [InlineData("1m30s", 90_000)]
    [InlineData("2d", 172_800_000)]
    [InlineData("1.5s", 1_500)]
    [InlineData("0s", 0)]
    [InlineData("1h1m1s1ms", 3_661_001)]
    public void TryParseDuration_ParsesPrometheusStyleDurations(string text, long milliseconds)
    {
        Assert.True(RuleConfiguration.TryParseDuration(text, out TimeSpan duration));
        Assert.Equal(TimeSpan.FromMilliseconds(milliseconds), duration);
    }

    [Theory]
    [InlineData("5")]
    [InlineData("5x")]
    [InlineData("-1s")]
    [InlineData("")]
    [InlineData("s")]
    [InlineData("1h 30m")]
    [InlineData("1.s")]
    [InlineData(" 5s")]
    public void TryParseDuration_ReturnsFalse_WhenTheTextIsNotADuration(string text)
    {
        Assert.False(RuleConfiguration.TryParseDuration(text, out TimeSpan duration));
        Assert.Equal(TimeSpan.Zero, duration);
    }

    [Fact]
    public void TryParseDuration_ReturnsFalse_WhenTheTextIsNull()
    {
        Assert.False(RuleConfiguration.TryParseDuration(null!, out _));
    }

    [Fact]
    public void BuiltIn_NamesEveryBuiltInRule_CaseInsensitively()
    {
        Assert.Equal(
            [.. BuiltInRules.TensorRules.Keys.Concat(BuiltInRules.DataRules.Keys).Concat(BuiltInRules.DriftRules.Keys).Append("Threshold").Distinct().Order(StringComparer.Ordinal)],
            RuleCatalog.BuiltIn.Keys.Order(StringComparer.Ordinal));
        Assert.IsType<VanishingGradientRule>(RuleCatalog.BuiltIn["vanishinggradient"]());
        Assert.All(RuleCatalog.BuiltIn, entry => Assert.Equal(entry.Key, entry.Value().Name));
    }
}
