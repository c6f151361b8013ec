namespace Monitor.Analysis.Drift;

/// <summary>How a drift test's verdict is read from its result.</summary>
public enum DriftVerdictRule
{
    /// <summary>A hypothesis test: drift when the p-value is below the threshold (<c>p &lt; threshold</c>).</summary>
    PValueBelow,

    /// <summary>A hypothesis test read as Evidently reads KS: drift when <c>p &lt;= threshold</c>.</summary>
    PValueAtMost,

    /// <summary>A distance or divergence: drift when the statistic reaches the threshold (<c>statistic &gt;= threshold</c>).</summary>
    StatisticAtLeast,

    /// <summary>A distance read as Evidently reads its energy distance: drift when <c>statistic &gt; threshold</c>.</summary>
    StatisticAbove,
}

/// <summary>What a feature's values are, which decides the default test and the binning.</summary>
public enum FeatureKind
{
    /// <summary>Numbers on a scale (Evidently's <c>num</c>).</summary>
    Numerical,

    /// <summary>Category codes, compared as labels (Evidently's <c>cat</c>); the numbers are only names.</summary>
    Categorical,
}

/// <summary>The outcome of a two-sample test: its statistic and, for hypothesis tests, its p-value.</summary>
/// <param name="Statistic">The test statistic or distance.</param>
/// <param name="PValue">The p-value, or <see cref="double.NaN"/> for tests that have none (distances).</param>
public readonly record struct TwoSampleResult(double Statistic, double PValue)
{
    /// <summary>Whether the test produced a p-value.</summary>
    public bool HasPValue => !double.IsNaN(PValue);
}

/// <summary>
/// A univariate two-sample drift test (reference sample against current sample), named as the CLI and rule files
/// spell it (<c>ks</c>, <c>psi</c>, ...).
/// </summary>
/// <remarks>
/// Implementations are stateless and thread-safe: every call is independent, and scratch memory comes from the
/// <see cref="DriftWorkspace"/> passed in (one per thread), so a steady-state call allocates nothing. NaN and
/// infinite values must be removed by the caller (Evidently drops them before testing); the samples are not
/// modified. Empty samples throw <see cref="ArgumentException"/>.
/// </remarks>
public interface IUnivariateDriftTest
{
    /// <summary>The CLI name, e.g. <c>ks</c>.</summary>
    string Name { get; }

    /// <summary>How the verdict is read.</summary>
    DriftVerdictRule VerdictRule { get; }

    /// <summary>The threshold the reference library uses by default (e.g. 0.05 for a p-value, 0.1 for a distance).</summary>
    double DefaultThreshold { get; }

    /// <summary>Runs the test.</summary>
    /// <param name="reference">The reference sample (finite values).</param>
    /// <param name="current">The current sample (finite values).</param>
    /// <param name="kind">Whether the values are numbers or category codes (binned tests bin them differently).</param>
    /// <param name="workspace">Scratch memory, reused across calls on one thread.</param>
    TwoSampleResult Test(ReadOnlySpan<double> reference, ReadOnlySpan<double> current, FeatureKind kind, DriftWorkspace workspace);

    /// <summary>
    /// Runs the test against a frozen reference. The same result as the span overload on its values; a test that can
    /// reuse work on the reference across windows (<see cref="KolmogorovSmirnovTest"/>'s rank table) overrides it.
    /// </summary>
    /// <param name="reference">The reference, sorted.</param>
    /// <param name="current">The current sample (finite values).</param>
    /// <param name="kind">Whether the values are numbers or category codes.</param>
    /// <param name="workspace">Scratch memory, reused across calls on one thread.</param>
    TwoSampleResult Test(SortedReference reference, ReadOnlySpan<double> current, FeatureKind kind, DriftWorkspace workspace) =>
        Test((reference ?? throw new ArgumentNullException(nameof(reference))).Values, current, kind, workspace);
}

/// <summary>Verdict helpers shared by every test.</summary>
public static class DriftVerdict
{
    /// <summary>Whether <paramref name="result"/> is drift under <paramref name="rule"/> at <paramref name="threshold"/>.</summary>
    public static bool IsDrift(DriftVerdictRule rule, in TwoSampleResult result, double threshold) => rule switch
    {
        DriftVerdictRule.PValueBelow => result.PValue < threshold,
        DriftVerdictRule.PValueAtMost => result.PValue <= threshold,
        DriftVerdictRule.StatisticAbove => result.Statistic > threshold,
        _ => result.Statistic >= threshold,
    };
}

/// <summary>
/// Reusable scratch buffers for drift tests, so a test evaluated every step allocates nothing once the buffers have
/// grown to the sample sizes. Not thread-safe: one per thread (the engine owns one).
/// </summary>
public sealed class DriftWorkspace
{
    private double[][] _doubles = [];
    private int[][] _ints = [];

    /// <summary>
    /// A buffer of at least <paramref name="length"/> doubles, the <paramref name="slot"/>-th one (different slots are
    /// different arrays; the same slot returns the same array until it must grow). Contents are not cleared.
    /// </summary>
    public Span<double> Doubles(int slot, int length) => Grow(ref _doubles, slot, length).AsSpan(0, length);

    /// <summary>As <see cref="Doubles"/>, for integers.</summary>
    public Span<int> Ints(int slot, int length) => Grow(ref _ints, slot, length).AsSpan(0, length);

    private static T[] Grow<T>(ref T[][] buffers, int slot, int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(slot);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (slot >= buffers.Length)
        {
            Array.Resize(ref buffers, slot + 1);
        }

        T[]? buffer = buffers[slot];
        if (buffer is null || buffer.Length < length)
        {
            buffer = new T[Math.Max(length, (buffer?.Length ?? 0) * 2)];
            buffers[slot] = buffer;
        }

        return buffer;
    }
}

/// <summary>
/// A streaming drift detector (river's <c>drift</c> detectors): fed one value at a time, it says after each update
/// whether drift (and, for the binary detectors, a warning) was signalled.
/// </summary>
/// <remarks>
/// Semantics follow river: after an update that signalled drift, the next update first resets the detector to its
/// initial state and then processes its value. Not thread-safe; one instance per series. Implementations keep their
/// whole state in fields that are plain data and write and read it (<see cref="WriteState"/>, <see cref="ReadState"/>).
/// </remarks>
public interface IDriftDetector
{
    /// <summary>The CLI name, e.g. <c>adwin</c>.</summary>
    string Name { get; }

    /// <summary>Whether the last <see cref="Update"/> signalled drift.</summary>
    bool DriftDetected { get; }

    /// <summary>Whether the last <see cref="Update"/> signalled a warning (binary detectors only; else always false).</summary>
    bool WarningDetected { get; }

    /// <summary>Feeds one value. The binary detectors (DDM, EDDM, HDDM) expect, as river's do, 1 for an error and 0 for a
    /// correct prediction.</summary>
    void Update(double value);

    /// <summary>
    /// Writes the detector's whole state, not its parameters (the configuration supplies them again), for an engine
    /// snapshot (<see cref="State.IStatefulRule"/>): the same state gives the same bytes.
    /// </summary>
    void WriteState(ref State.StateWriter writer);

    /// <summary>
    /// Replaces the state of this detector, a new one made with the configured parameters, with what
    /// <see cref="WriteState"/> wrote. Returns false, leaving the detector as new, when the state was written under
    /// parameters this one cannot take over (ADWIN with fewer <c>max_buckets</c>, KSWIN with another
    /// <c>window_size</c>).
    /// </summary>
    /// <exception cref="InvalidDataException">Corrupt or truncated bytes (thrown by <paramref name="reader"/>).</exception>
    bool ReadState(ref State.StateReader reader);
}
