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
    /// weights, activations and gradients grow until they overflow.</summary>
    ExplodingGradients,
}

/// <summary>Spelling of <see cref="Fault"/> values on the command line.</summary>
public static class FaultNames
{
    private static readonly (string Name, Fault Fault)[] Map =
    [
        ("none", Fault.None),
        ("vanishing-gradients", Fault.VanishingGradients),
        ("exploding-gradients", Fault.ExplodingGradients),
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
