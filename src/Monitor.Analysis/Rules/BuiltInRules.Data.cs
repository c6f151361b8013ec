using System.Collections.Frozen;

namespace Monitor.Analysis.Rules;

/// <summary>The built-in rules by name (smdebug's built-in rule names), each a factory of the rule with its defaults.</summary>
public static partial class BuiltInRules
{
    /// <summary>
    /// The loss and data rules: loss progress, overfitting, stalls, labels and predictions, inputs, and run
    /// comparison. See <c>Rules/README-loss-and-data-rules.md</c>.
    /// </summary>
    public static IReadOnlyDictionary<string, Func<ITrainingRule>> DataRules { get; } = new Dictionary<string, Func<ITrainingRule>>(StringComparer.Ordinal)
    {
        ["LossNotDecreasing"] = () => new LossNotDecreasingRule(),
        ["Overfit"] = () => new OverfitRule(),
        ["Overtraining"] = () => new OvertrainingRule(),
        ["StalledTraining"] = () => new StalledTrainingRule(),
        ["ClassImbalance"] = () => new ClassImbalanceRule(),
        ["Confusion"] = () => new ConfusionRule(),
        ["SimilarAcrossRuns"] = () => new SimilarAcrossRunsRule(),
        ["CheckInputImages"] = () => new CheckInputImagesRule(),
        ["NLPSequenceRatio"] = () => new NLPSequenceRatioRule(),
    }.ToFrozenDictionary(StringComparer.Ordinal);
}
