using System.Collections.Frozen;

namespace Monitor.Analysis.Rules;

/// <summary>The built-in rules by name, each with its defaults (smdebug's built-in rules and Monitor's own).</summary>
public static partial class BuiltInRules
{
    /// <summary>
    /// Rules about tensors (weights, gradients, activations), by rule name: a factory that makes the rule with its
    /// default parameters (a new instance per call: a rule keeps state and belongs to one engine). See
    /// <c>src/Monitor.Analysis/Rules/README.md</c> for formulas and defaults.
    /// </summary>
    public static IReadOnlyDictionary<string, Func<ITrainingRule>> TensorRules { get; } = new Dictionary<string, Func<ITrainingRule>>(StringComparer.Ordinal)
    {
        ["VanishingGradient"] = () => new VanishingGradientRule(),
        ["ExplodingTensor"] = () => new ExplodingTensorRule(),
        ["NonFiniteTensor"] = () => new NonFiniteTensorRule(),
        ["PoorWeightInitialization"] = () => new PoorWeightInitializationRule(),
        ["SaturatedActivation"] = () => new SaturatedActivationRule(),
        ["DeadRelu"] = () => new DeadReluRule(),
        ["TensorVariance"] = () => new TensorVarianceRule(),
        ["UnchangedTensor"] = () => new UnchangedTensorRule(),
        ["AllZero"] = () => new AllZeroRule(),
        ["WeightUpdateRatio"] = () => new WeightUpdateRatioRule(),
    }.ToFrozenDictionary(StringComparer.Ordinal);

    /// <summary>
    /// Drift monitors, by rule name: <c>DataDrift</c> (two-window tests per feature of a batch tensor) and
    /// <c>ConceptDrift</c> (a streaming detector on the model's per-example error or loss). See
    /// <c>src/Monitor.Analysis/Drift/README.md</c>.
    /// </summary>
    public static IReadOnlyDictionary<string, Func<ITrainingRule>> DriftRules { get; } = new Dictionary<string, Func<ITrainingRule>>(StringComparer.Ordinal)
    {
        ["DataDrift"] = () => new Drift.DataDriftRule(),
        ["ConceptDrift"] = () => new Drift.ConceptDriftRule(),
    }.ToFrozenDictionary(StringComparer.Ordinal);
}
