using System.Collections;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Monitor.Contracts.V1;

namespace Monitor.Contracts.Tests;

/// <summary>
/// Valid records that set every field of the schema, found by walking the message descriptors, so a field added to
/// step_record.proto is set here without anyone editing this file; and a field-by-field diff that names it.
/// </summary>
internal static class EveryFieldRecords
{
    /// <summary>
    /// Two records that between them give every field of every message reachable from <see cref="StepRecord"/> a
    /// value other than its default: the first has tensors (a LOG2_MAGNITUDE histogram and an explicit one) and no
    /// run_end, the second a run_end and no tensors, as the contract wants.
    /// </summary>
    public static StepRecord[] Both()
    {
        int seed = 3;
        var withTensors = new StepRecord();
        Fill(withTensors, ref seed);
        withTensors.RunEnd = null;
        MakeValid(withTensors);

        var ending = new StepRecord();
        Fill(ending, ref seed);
        ending.Tensors.Clear();
        ending.AtBegin = false;
        MakeValid(ending);
        return [withTensors, ending];
    }

    /// <summary>Every field of every message type reachable from <see cref="StepRecord"/>, as "Message.field".</summary>
    public static SortedSet<string> AllFields()
    {
        var fields = new SortedSet<string>(StringComparer.Ordinal);
        var seen = new HashSet<MessageDescriptor>();
        var pending = new Stack<MessageDescriptor>([StepRecord.Descriptor]);
        while (pending.TryPop(out MessageDescriptor? message))
        {
            if (!seen.Add(message))
            {
                continue;
            }

            foreach (FieldDescriptor field in message.Fields.InDeclarationOrder())
            {
                fields.Add($"{message.Name}.{field.Name}");
                if (field.FieldType == FieldType.Message)
                {
                    pending.Push(field.MessageType);
                }
            }
        }

        return fields;
    }

    /// <summary>The fields ("Message.field") that hold a value other than their default anywhere in <paramref name="message"/>.</summary>
    public static void SetFields(IMessage message, SortedSet<string> found)
    {
        foreach (FieldDescriptor field in message.Descriptor.Fields.InDeclarationOrder())
        {
            object? value = field.Accessor.GetValue(message);
            string name = $"{message.Descriptor.Name}.{field.Name}";
            if (field.IsRepeated)
            {
                var list = (IList)value!;
                if (list.Count > 0)
                {
                    found.Add(name);
                }

                if (field.FieldType == FieldType.Message)
                {
                    foreach (IMessage item in list)
                    {
                        SetFields(item, found);
                    }
                }
            }
            else if (field.FieldType == FieldType.Message)
            {
                if (value is IMessage sub)
                {
                    found.Add(name);
                    SetFields(sub, found);
                }
            }
            else if (!IsDefault(value))
            {
                found.Add(name);
            }
        }
    }

    /// <summary>The first field where <paramref name="actual"/> differs from <paramref name="expected"/>, as a path with
    /// both values, or null when they are equal field by field.</summary>
    public static string? FirstDifference(IMessage expected, IMessage actual, string path)
    {
        foreach (FieldDescriptor field in expected.Descriptor.Fields.InDeclarationOrder())
        {
            object? e = field.Accessor.GetValue(expected);
            object? a = field.Accessor.GetValue(actual);
            string at = $"{path}.{field.Name}";
            if (field.IsRepeated)
            {
                var el = (IList)e!;
                var al = (IList)a!;
                if (el.Count != al.Count)
                {
                    return $"{at}: {el.Count} items expected, {al.Count} read";
                }

                for (int i = 0; i < el.Count; i++)
                {
                    string? inner = field.FieldType == FieldType.Message
                        ? FirstDifference((IMessage)el[i]!, (IMessage)al[i]!, $"{at}[{i}]")
                        : Equals(el[i], al[i]) ? null : $"{at}[{i}]: {el[i]} expected, {al[i]} read";
                    if (inner is not null)
                    {
                        return inner;
                    }
                }
            }
            else if (field.FieldType == FieldType.Message)
            {
                if ((e is null) != (a is null))
                {
                    return $"{at}: {(e is null ? "absent" : "present")} expected, {(a is null ? "absent" : "present")} read";
                }

                if (e is not null && FirstDifference((IMessage)e, (IMessage)a!, at) is { } inner)
                {
                    return inner;
                }
            }
            else if (!Equals(e, a))
            {
                return $"{at}: {e} expected, {a} read";
            }
        }

        return null;
    }

    private static bool IsDefault(object? value) => value switch
    {
        null => true,
        string s => s.Length == 0,
        ByteString b => b.IsEmpty,
        bool b => !b,
        double d => d == 0,
        float f => f == 0,
        Enum e => Convert.ToInt64(e, System.Globalization.CultureInfo.InvariantCulture) == 0,
        _ => Convert.ToDecimal(value, System.Globalization.CultureInfo.InvariantCulture) == 0,
    };

    /// <summary>Gives every field a value other than its default (two items in repeated fields), recursively.</summary>
    private static void Fill(IMessage message, ref int seed)
    {
        foreach (FieldDescriptor field in message.Descriptor.Fields.InDeclarationOrder())
        {
            if (field.IsRepeated)
            {
                var list = (IList)field.Accessor.GetValue(message);
                for (int i = 0; i < 2; i++)
                {
                    list.Add(Value(field, ref seed));
                }
            }
            else
            {
                field.Accessor.SetValue(message, Value(field, ref seed));
            }
        }
    }

    private static object Value(FieldDescriptor field, ref int seed)
    {
        int n = ++seed;
        switch (field.FieldType)
        {
            case FieldType.Message:
                var sub = (IMessage)Activator.CreateInstance(field.MessageType.ClrType)!;
                Fill(sub, ref seed);
                return sub;
            case FieldType.Enum:
                // A value the enum names (1 exists in every enum of the schema), as a producer would send.
                return Enum.ToObject(field.EnumType.ClrType, 1 + (n % 2));
            case FieldType.String:
                return $"s{n}";
            case FieldType.Bytes:
                return ByteString.CopyFrom([(byte)n, 1, 2, 3]);
            case FieldType.Bool:
                return true;
            case FieldType.Double:
                return n + 0.25;
            case FieldType.Float:
                return n + 0.25f;
            case FieldType.Int64 or FieldType.SInt64 or FieldType.SFixed64:
                return (long)n;
            case FieldType.UInt64 or FieldType.Fixed64:
                return (ulong)n;
            case FieldType.Int32 or FieldType.SInt32 or FieldType.SFixed32:
                return n;
            case FieldType.UInt32 or FieldType.Fixed32:
                return (uint)n;
            default:
                throw new NotSupportedException($"{field.FullName}: field type {field.FieldType} is new to this test; give it a value here");
        }
    }

    /// <summary>Fixes up the fields the contract constrains (StepRecordDecoder.Validate), keeping each non-default
    /// somewhere, so TryRead gets past validation.</summary>
    private static void MakeValid(StepRecord record)
    {
        record.SchemaVersion = StepRecordDecoder.CurrentSchemaVersion;
        record.RunId = "run-every-field";
        record.WorldSize = 8;
        record.Rank = 5;
        for (int t = 0; t < record.Tensors.Count; t++)
        {
            TensorRecord tensor = record.Tensors[t];
            tensor.Shape.Clear();
            tensor.Shape.Add([4, 2, 3]);
            tensor.FeatureNames.Clear();
            for (int c = 0; c < 6; c++)
            {
                tensor.FeatureNames.Add($"x{c}");
            }

            tensor.Raw.SampleRows = 2;
            tensor.Raw.TotalElements = 24;
            tensor.Raw.Float32Le = ByteString.CopyFrom(new byte[2 * 6 * sizeof(float)]);
            TensorSummary summary = tensor.Summary;
            summary.Count = 100;
            summary.NanCount = 3;
            summary.InfCount = 4;
            Histogram histogram = summary.Histogram;
            if (t == 0)
            {
                histogram.Layout = HistogramLayout.Log2Magnitude;
                histogram.FirstBucket = 7;
                histogram.Edges.Clear();
            }
            else
            {
                histogram.Layout = HistogramLayout.Explicit;
                histogram.FirstBucket = 0;
                histogram.Edges.Clear();
                histogram.Edges.Add([-1.0, 0.5, 2.0]);
            }
        }
    }
}
