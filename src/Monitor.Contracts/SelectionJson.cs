using System.ComponentModel;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Schema;
using System.Text.Json.Serialization;

namespace Monitor.Contracts;

/// <summary>
/// The JSON form of <see cref="TraceSelection"/> (and of the control-plane documents): camelCase, unknown members of a
/// selection refused so a misspelt field is an error instead of a silently ignored setting (status documents skip
/// them, see <see cref="StatusOptions"/>), and its published JSON Schema.
/// </summary>
public static class SelectionJson
{
    /// <summary>
    /// Serializer options for selections, and for writing every control-plane document: unknown members are refused.
    /// Thread-safe (read-only once built).
    /// </summary>
    public static JsonSerializerOptions Options { get; } = CreateOptions(indented: false, JsonUnmappedMemberHandling.Disallow);

    /// <summary>
    /// Serializer options for reading status documents (heartbeats, commands, audit entries, catalogs): as
    /// <see cref="Options"/>, but members this version does not know are skipped, so a newer worker's heartbeat or a
    /// newer service's stop command still reads. Selections stay strict: a misspelt setting must not be ignored.
    /// </summary>
    public static JsonSerializerOptions StatusOptions { get; } = CreateOptions(indented: false, JsonUnmappedMemberHandling.Skip);

    private static readonly JsonSerializerOptions IndentedOptions = CreateOptions(indented: true, JsonUnmappedMemberHandling.Disallow);

    /// <summary>Serializes a selection.</summary>
    public static string Serialize(TraceSelection selection, bool indented = false) =>
        JsonSerializer.Serialize(selection, indented ? IndentedOptions : Options);

    /// <summary>Parses and validates a selection.</summary>
    /// <exception cref="SelectionValidationException">Not JSON, not a selection (the message names the JSON path), or
    /// invalid (every problem named).</exception>
    public static TraceSelection Parse(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        TraceSelection? selection;
        try
        {
            selection = JsonSerializer.Deserialize<TraceSelection>(json, Options);
        }
        catch (JsonException ex)
        {
            string path = string.IsNullOrEmpty(ex.Path) || ex.Path == "$" ? "" : ex.Path.TrimStart('$', '.') + ": ";
            throw new SelectionValidationException($"{path}{FirstSentence(ex.Message)}", ex);
        }

        return (selection ?? throw new SelectionValidationException("the selection is JSON null")).EnsureValid();
    }

    /// <summary>The JSON Schema (draft 2020-12) of a selection document, with a description on every property.</summary>
    public static JsonNode Schema()
    {
        var exporterOptions = new JsonSchemaExporterOptions
        {
            TreatNullObliviousAsNonNullable = true,
            TransformSchemaNode = static (context, node) =>
            {
                if (context.TypeInfo.Type == typeof(TraceBudget))
                {
                    // Its converter reads a number or a word, which the exporter cannot see: spelled out here.
                    node = new JsonObject
                    {
                        ["oneOf"] = new JsonArray(
                            new JsonObject { ["type"] = "number", ["exclusiveMinimum"] = 0, ["maximum"] = 1 },
                            new JsonObject { ["const"] = TraceBudget.NoneWord }),
                    };
                }

                ICustomAttributeProvider? provider = context.PropertyInfo?.AttributeProvider;
                if (provider?.GetCustomAttributes(typeof(DescriptionAttribute), inherit: false).FirstOrDefault() is DescriptionAttribute description
                    && node is JsonObject property)
                {
                    property.Insert(0, "description", description.Description);
                }

                return node;
            },
        };
        JsonNode schema = Options.GetJsonSchemaAsNode(typeof(TraceSelection), exporterOptions);
        if (schema is JsonObject root)
        {
            root.Insert(0, "$schema", "https://json-schema.org/draft/2020-12/schema");
            root.Insert(1, "$id", "https://monitor.dev/schemas/trace-selection.v1.json");
            root.Insert(2, "title", "Monitor trace selection");
            root.Insert(3, "description", "What a training worker traces and when; stored per run (and per rank) in the control plane and applied at the next step.");
        }

        return schema;
    }

    private static JsonSerializerOptions CreateOptions(bool indented, JsonUnmappedMemberHandling unmapped)
    {
        var options = new JsonSerializerOptions(JsonSerializerDefaults.Web)
        {
            WriteIndented = indented,
            UnmappedMemberHandling = unmapped,
            DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
            AllowTrailingCommas = true,
            NumberHandling = JsonNumberHandling.Strict,
            // Names are matched exactly (camelCase): "EverySteps" is as much a typo as "everystep".
            PropertyNameCaseInsensitive = false,
            ReadCommentHandling = JsonCommentHandling.Skip,
        };
        options.MakeReadOnly(populateMissingResolver: true);
        return options;
    }

    private static string FirstSentence(string message)
    {
        int end = message.IndexOf(". Path:", StringComparison.Ordinal);
        return end > 0 ? message[..end] : message;
    }
}
