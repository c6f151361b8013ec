using Monitor.Analysis;
using Monitor.Analysis.Rules;

namespace Monitor.Service.Rules;

/// <summary>The rules a rule file can name without an assembly: every built-in rule, by name, with its defaults.</summary>
public static class RuleCatalog
{
    /// <summary>Name → factory of the rule with its default parameters.</summary>
    public static IReadOnlyDictionary<string, Func<ITrainingRule>> BuiltIn { get; } = new Dictionary<string, Func<ITrainingRule>>(StringComparer.OrdinalIgnoreCase)
    {
        ["VanishingGradient"] = () => new VanishingGradientRule(),
        ["LossNotDecreasing"] = () => new LossNotDecreasingRule(),
        ["Threshold"] = () => new ThresholdRule(),
    };
}
