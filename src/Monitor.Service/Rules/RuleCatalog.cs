using Monitor.Analysis;
using Monitor.Analysis.Rules;

namespace Monitor.Service.Rules;

/// <summary>The rules a rule file can name without an assembly: every built-in rule, by name, with its defaults.</summary>
public static class RuleCatalog
{
    /// <summary>Name (case-insensitive) → factory of the rule with its default parameters (a new instance per call).</summary>
    public static IReadOnlyDictionary<string, Func<ITrainingRule>> BuiltIn { get; } = Build();

    private static Dictionary<string, Func<ITrainingRule>> Build()
    {
        var catalog = new Dictionary<string, Func<ITrainingRule>>(StringComparer.OrdinalIgnoreCase)
        {
            ["LossNotDecreasing"] = () => new LossNotDecreasingRule(),
            ["Threshold"] = () => new ThresholdRule(),
        };
        foreach ((string name, Func<ITrainingRule> factory) in BuiltInRules.TensorRules.Concat(BuiltInRules.DataRules))
        {
            catalog[name] = factory;
        }

        return catalog;
    }
}
