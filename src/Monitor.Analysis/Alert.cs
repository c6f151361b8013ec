using System.Buffers;
using System.Globalization;
using System.Text;

namespace Monitor.Analysis;

/// <summary>Prometheus' alert states.</summary>
public enum AlertState
{
    /// <summary>The condition does not hold.</summary>
    Inactive,

    /// <summary>The condition holds, but not yet for the rule's <c>for</c> duration.</summary>
    Pending,

    /// <summary>The condition has held for the <c>for</c> duration.</summary>
    Firing,
}

/// <summary>Label names the engine sets on every alert (Prometheus conventions: <c>alertname</c>, <c>severity</c>).</summary>
public static class AlertLabels
{
    /// <summary>The rule's name.</summary>
    public const string AlertName = "alertname";

    /// <summary>Run id.</summary>
    public const string Run = "run";

    /// <summary>Rank.</summary>
    public const string Rank = "rank";

    /// <summary>Tensor name, when the alert is about one tensor.</summary>
    public const string Tensor = "tensor";

    /// <summary>Severity (warning, critical).</summary>
    public const string Severity = "severity";

    /// <summary>The feature (a column of a batch of inputs, or a derived stream) a drift alert is about.</summary>
    public const string Feature = "feature";
}

/// <summary>An alert's identity: its label set and the stable fingerprint derived from it.</summary>
public sealed class AlertIdentity : IEquatable<AlertIdentity>
{
    /// <summary>Creates the identity; the fingerprint is FNV-1a 64 over the labels sorted by name, as Prometheus does.</summary>
    public AlertIdentity(IReadOnlyDictionary<string, string> labels)
    {
        ArgumentNullException.ThrowIfNull(labels);
        // A private copy (the caller's dictionary may change); a plain dictionary, as a frozen one costs microseconds to
        // build for the handful of labels an alert has, and an identity is built whenever an alert starts.
        Labels = new Dictionary<string, string>(labels, StringComparer.Ordinal);
        Fingerprint = ComputeFingerprint(Labels);
    }

    /// <summary>The labels (a read-only copy of those given).</summary>
    public IReadOnlyDictionary<string, string> Labels { get; }

    /// <summary>16 hex digits, stable across processes and restarts for the same labels.</summary>
    public string Fingerprint { get; }

    /// <summary>Label value or empty.</summary>
    public string this[string name] => Labels.TryGetValue(name, out string? value) ? value : "";

    /// <inheritdoc />
    public bool Equals(AlertIdentity? other) => other is not null && other.Fingerprint == Fingerprint;

    /// <inheritdoc />
    public override bool Equals(object? obj) => Equals(obj as AlertIdentity);

    /// <inheritdoc />
    public override int GetHashCode() => Fingerprint.GetHashCode(StringComparison.Ordinal);

    /// <inheritdoc />
    public override string ToString() => "{" + string.Join(", ", Labels.OrderBy(l => l.Key, StringComparer.Ordinal).Select(l => $"{l.Key}=\"{l.Value}\"")) + "}";

    private static string ComputeFingerprint(IReadOnlyDictionary<string, string> labels)
    {
        const ulong offset = 14695981039346656037UL;
        const ulong prime = 1099511628211UL;
        string[] names = [.. labels.Keys];
        Array.Sort(names, StringComparer.Ordinal);
        ulong hash = offset;
        foreach (string name in names)
        {
            hash = (Hash(hash, name) ^ 0xFF) * prime;
            hash = (Hash(hash, labels[name]) ^ 0xFF) * prime;
        }

        return hash.ToString("x16", CultureInfo.InvariantCulture);

        static ulong Hash(ulong hash, string text)
        {
            int length = Encoding.UTF8.GetMaxByteCount(text.Length);
            byte[]? rented = length > 256 ? ArrayPool<byte>.Shared.Rent(length) : null;
            Span<byte> buffer = rented ?? stackalloc byte[256];
            foreach (byte b in buffer[..Encoding.UTF8.GetBytes(text, buffer)])
            {
                hash = (hash ^ b) * prime;
            }

            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }

            return hash;
        }
    }
}

/// <summary>A change of an alert's state, as emitted by <see cref="AnalysisEngine.Process(Contracts.V1.StepRecord, TraceContext)"/>.</summary>
/// <param name="Identity">Labels and fingerprint.</param>
/// <param name="State">The new state. A resolution is a transition to <see cref="AlertState.Inactive"/> from
/// <see cref="AlertState.Firing"/> (see <see cref="IsResolution"/>).</param>
/// <param name="PreviousState">The state before.</param>
/// <param name="Step">Step of the record that caused the change.</param>
/// <param name="Value">The observed value that the rule compared.</param>
/// <param name="Threshold">The value it was compared with.</param>
/// <param name="Description">What was observed, in words, with the numbers.</param>
/// <param name="ActiveSince">When the condition started to hold (event time).</param>
/// <param name="At">Event time of the record that caused the change.</param>
public sealed record AlertTransition(
    AlertIdentity Identity,
    AlertState State,
    AlertState PreviousState,
    long Step,
    double Value,
    double Threshold,
    string Description,
    DateTimeOffset ActiveSince,
    DateTimeOffset At)
{
    /// <summary>The rule's name.</summary>
    public string RuleName => Identity[AlertLabels.AlertName];

    /// <summary>True for firing → inactive.</summary>
    public bool IsResolution => PreviousState == AlertState.Firing && State == AlertState.Inactive;

    /// <summary>Annotations rendered from the rule's templates (always <c>summary</c> and <c>description</c>).</summary>
    public IReadOnlyDictionary<string, string> Annotations { get; init; } = new Dictionary<string, string>();

    /// <summary>Actions the rule's binding asks for when the alert fires (e.g. <c>stop</c>).</summary>
    public IReadOnlyList<string> Actions { get; init; } = [];

    /// <summary>
    /// Trace context of the record that caused the transition, as passed to <see cref="AnalysisEngine.Process(Contracts.V1.StepRecord, TraceContext)"/>;
    /// <see cref="TraceContext.None"/> when it carried none or the transition came from <see cref="AnalysisEngine.Tick(bool)"/>
    /// or <see cref="AnalysisEngine.ReplaceRules"/>. Not part of the alert's identity or fingerprint.
    /// </summary>
    public TraceContext TraceContext { get; init; }
}
