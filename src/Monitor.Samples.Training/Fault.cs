namespace Monitor.Samples.Training;

/// <summary>Faults the sample job can inject from a given step on, each a real training pathology.</summary>
public enum Fault
{
    /// <summary>Healthy training.</summary>
    None,

    /// <summary>
    /// The loss is scaled by 1e-10 before <c>backward()</c> (a wrong normaliser, or an underflowing mixed-precision
    /// loss scale): autograd computes every gradient ten orders of magnitude too small and learning stops.
    /// </summary>
    VanishingGradients,

    /// <summary>The learning rate jumps 500-fold (a bad schedule or a unit mistake): updates overshoot and the
    /// weights, activations and gradients grow until they overflow to Inf and NaN.</summary>
    ExplodingGradients,

    /// <summary>fc2's bias is pushed to -100 (a bad update or learning-rate spike): every pre-activation of the ReLU
    /// after it is negative, the ReLU outputs only zeros and, its gradient being zero too, never recovers.</summary>
    DeadRelu,

    /// <summary>fc1's weights and bias are scaled 10,000-fold (a unit mistake in a checkpoint restore): the tanh after
    /// it works in its flat tails, its outputs sit at ±1 and gradients through it vanish.</summary>
    SaturatedActivation,

    /// <summary>The model is re-initialised badly (weights drawn with standard deviation 1e-3 instead of Kaiming's):
    /// activations shrink layer by layer and gradients with them.</summary>
    PoorInit,

    /// <summary>The learning rate drops to 0 (a scheduler bug) and the data loader stalls on one batch: the loss
    /// stays exactly where it was.</summary>
    LossPlateau,

    /// <summary>The job trains on one fixed batch of 32 examples with random labels from then on (a data loader stuck
    /// on a tiny, mislabelled shard): the training loss falls as the model memorises it while the validation loss on
    /// fresh data rises.</summary>
    Overfit,

    /// <summary>A NaN appears in the input batch (a corrupt record): the loss, the gradients and, after the update,
    /// the weights become NaN.</summary>
    Nan,

    /// <summary>From then on 95% of the labels are class 0 (a skewed data source): the classes are badly imbalanced.</summary>
    ClassImbalance,

    /// <summary>fc2's weights stop being updated (frozen by mistake, <c>requires_grad</c> off): they stay unchanged step after step.</summary>
    UnchangedWeights,

    /// <summary>Input (covariate) drift: features x0 to x3 move by 1.5 standard deviations, x1 also doubles its spread
    /// (an upstream source changed units or population); x4 to x15 stay as they were. The concept (the teacher) is
    /// unchanged, and the classes stay about balanced.</summary>
    InputDrift,

    /// <summary>Concept drift: the teacher network that labels the data is replaced by another one, so the same inputs
    /// get other labels (the world changed, the inputs did not): the model's per-example error jumps.</summary>
    ConceptDrift,
}

/// <summary>Spelling of <see cref="Fault"/> values on the command line.</summary>
public static class FaultNames
{
    private static readonly (string Name, Fault Fault)[] Map =
    [
        ("none", Fault.None),
        ("vanishing-gradients", Fault.VanishingGradients),
        ("exploding-gradients", Fault.ExplodingGradients),
        ("dead-relu", Fault.DeadRelu),
        ("saturated-activation", Fault.SaturatedActivation),
        ("poor-init", Fault.PoorInit),
        ("loss-plateau", Fault.LossPlateau),
        ("overfit", Fault.Overfit),
        ("nan", Fault.Nan),
        ("class-imbalance", Fault.ClassImbalance),
        ("unchanged-weights", Fault.UnchangedWeights),
        ("input-drift", Fault.InputDrift),
        ("concept-drift", Fault.ConceptDrift),
    ];

    /// <summary>Every accepted spelling.</summary>
    public static IReadOnlyList<string> All { get; } = Array.ConvertAll(Map, m => m.Name);

    /// <summary>Parses a spelling (exact, lower case).</summary>
    public static bool TryParse(string? text, out Fault fault)
    {
        foreach ((string name, Fault value) in Map)
        {
            if (name == text)
            {
                fault = value;
                return true;
            }
        }

        fault = Fault.None;
        return false;
    }

    /// <summary>Parses a spelling; throws <see cref="ArgumentException"/> listing the accepted ones otherwise.</summary>
    public static Fault Parse(string? text) => TryParse(text, out Fault fault)
        ? fault
        : throw new ArgumentException($"unknown fault '{text}'; use one of: {string.Join(", ", All)}");

    /// <summary>The spelling of a fault.</summary>
    public static string NameOf(Fault fault) => Array.Find(Map, m => m.Fault == fault).Name ?? fault.ToString();
}
