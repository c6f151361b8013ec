using System.Buffers;
using System.Globalization;
using Monitor.Analysis;
using Monitor.Analysis.State;

namespace Monitor.Service.State;

/// <summary>
/// The changelog's outbox entries: a committed firing or resolved transition whose webhooks have not all finished with
/// it yet. Written in the transaction that commits the transition, to the changelog partition of its (run, rank) key,
/// and tombstoned once the webhooks are done; a replica that restores a partition sends the entries it finds there
/// again, so a replica that dies between the commit and the webhook's answer loses no notification.
/// </summary>
/// <remarks>Value layout: the magic <c>MNOB</c>, a version byte, then the transition's fields (labels, states, step,
/// value, threshold, description, times, annotations, actions, trace context). Engine snapshots start with another
/// magic (<c>MNST</c>), so a restore tells the two apart by the value.</remarks>
internal static class NotificationOutbox
{
    private const byte Version = 1;

    private static ReadOnlySpan<byte> Magic => "MNOB"u8;

    /// <summary>The changelog key of a transition's entry: its rank's key, then fingerprint, status and time.</summary>
    public static string Key(string rankKey, AlertTransition transition) => string.Create(CultureInfo.InvariantCulture,
        $"{rankKey}#notify#{transition.Identity.Fingerprint}#{(transition.State == AlertState.Firing ? "firing" : "resolved")}#{transition.At.UtcTicks}");

    /// <summary>Whether a changelog value is an outbox entry (else it is a key's engine snapshot).</summary>
    public static bool IsEntry(ReadOnlySpan<byte> value) => value.StartsWith(Magic);

    public static byte[] Write(AlertTransition transition)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        var writer = new StateWriter(buffer);
        foreach (byte b in Magic)
        {
            writer.WriteByte(b);
        }

        writer.WriteByte(Version);
        WritePairs(ref writer, transition.Identity.Labels);
        writer.WriteByte((byte)transition.State);
        writer.WriteByte((byte)transition.PreviousState);
        writer.WriteVarInt(transition.Step);
        writer.WriteDouble(transition.Value);
        writer.WriteDouble(transition.Threshold);
        writer.WriteString(transition.Description);
        writer.WriteTime(transition.ActiveSince);
        writer.WriteTime(transition.At);
        WritePairs(ref writer, transition.Annotations);
        writer.WriteVarUInt((ulong)transition.Actions.Count);
        foreach (string action in transition.Actions)
        {
            writer.WriteString(action);
        }

        writer.WriteOptionalString(transition.TraceContext.TraceId);
        writer.WriteOptionalString(transition.TraceContext.SpanId);
        return buffer.WrittenSpan.ToArray();
    }

    /// <exception cref="InvalidDataException">Not a valid entry (truncated, another version, bad field).</exception>
    public static AlertTransition Read(ReadOnlySpan<byte> value, string what)
    {
        var reader = new StateReader(value, what);
        if (!reader.ReadBytes(Magic.Length, "magic").SequenceEqual(Magic) || reader.ReadByte("version") != Version)
        {
            throw new InvalidDataException($"{what}: not a notification outbox entry of version {Version}");
        }

        Dictionary<string, string> labels = ReadPairs(ref reader, "labels");
        var state = (AlertState)reader.ReadByte("state");
        var previous = (AlertState)reader.ReadByte("previous state");
        if (!Enum.IsDefined(state) || !Enum.IsDefined(previous))
        {
            throw new InvalidDataException($"{what}: unknown alert state");
        }

        long step = reader.ReadVarInt("step");
        double observed = reader.ReadDouble("value");
        double threshold = reader.ReadDouble("threshold");
        string description = reader.ReadString("description");
        DateTimeOffset activeSince = reader.ReadTime("active since");
        DateTimeOffset at = reader.ReadTime("at");
        Dictionary<string, string> annotations = ReadPairs(ref reader, "annotations");
        int actionCount = reader.ReadCount("actions", 1);
        var actions = new string[actionCount];
        for (int i = 0; i < actionCount; i++)
        {
            actions[i] = reader.ReadString("action");
        }

        var trace = new TraceContext(reader.ReadOptionalString("trace id"), reader.ReadOptionalString("span id"));
        reader.EnsureEnd();
        return new AlertTransition(new AlertIdentity(labels), state, previous, step, observed, threshold, description, activeSince, at)
        {
            Annotations = annotations,
            Actions = actions,
            TraceContext = trace,
        };
    }

    private static void WritePairs(ref StateWriter writer, IReadOnlyDictionary<string, string> pairs)
    {
        writer.WriteVarUInt((ulong)pairs.Count);
        foreach ((string name, string value) in pairs)
        {
            writer.WriteString(name);
            writer.WriteString(value);
        }
    }

    private static Dictionary<string, string> ReadPairs(ref StateReader reader, string field)
    {
        int count = reader.ReadCount(field, 2);
        var pairs = new Dictionary<string, string>(count, StringComparer.Ordinal);
        for (int i = 0; i < count; i++)
        {
            string name = reader.ReadString(field);
            if (!pairs.TryAdd(name, reader.ReadString(field)))
            {
                throw new InvalidDataException($"{reader.What}: {field}: '{name}' appears twice");
            }
        }

        return pairs;
    }
}
