using Monitor.Analysis;
using Monitor.Analysis.Rules;

namespace Monitor.Service.Rules;

/// <summary>The rules a rule file can name without an assembly: every built-in rule, by name, with its defaults.</summary>
public static class RuleCatalog
{
    /// <summary>The default rule set (YAML), used when no rule file is given.</summary>
    public static string DefaultRuleFile { get; } = ReadDefault();

    /// <summary>The default rule set, loaded afresh (rules keep state: every engine needs its own instances).</summary>
    public static IReadOnlyList<RuleBinding> DefaultRules() => RuleConfiguration.Parse(DefaultRuleFile, json: false, AppContext.BaseDirectory, BuiltIn);

    /// <summary>Name (case-insensitive) → factory of the rule with its default parameters (a new instance per call).</summary>
    public static IReadOnlyDictionary<string, Func<ITrainingRule>> BuiltIn { get; } = Build();

    private static string ReadDefault()
    {
        using Stream stream = typeof(RuleCatalog).Assembly.GetManifestResourceStream("Monitor.Service.default-rules.yaml")
            ?? throw new InvalidOperationException("the default rule set is missing from the assembly");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    private static Dictionary<string, Func<ITrainingRule>> Build()
    {
        var catalog = new Dictionary<string, Func<ITrainingRule>>(StringComparer.OrdinalIgnoreCase)
        {
            ["LossNotDecreasing"] = () => new LossNotDecreasingRule(),
            ["Threshold"] = () => new ThresholdRule(),
        };
        foreach ((string name, Func<ITrainingRule> factory) in BuiltInRules.TensorRules.Concat(BuiltInRules.DataRules).Concat(BuiltInRules.DriftRules))
        {
            catalog[name] = factory;
        }

        return catalog;
    }
}
