using System.Globalization;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using Monitor.Analysis;
using Monitor.Analysis.Drift;
using Monitor.Analysis.Windows;
using Monitor.Contracts;
using Monitor.Contracts.V1;
using Monitor.Service.Drift;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Monitor.Service.Rules;

/// <summary>A rule file that cannot be used; <see cref="Problems"/> name each offending entry and field.</summary>
public sealed class RuleConfigurationException : Exception
{
    /// <summary>Creates the exception from the problems found.</summary>
    public RuleConfigurationException(IReadOnlyList<string> problems)
        : base("invalid rule configuration: " + string.Join("; ", problems)) => Problems = problems;

    /// <summary>Creates an exception with one problem.</summary>
    public RuleConfigurationException(string problem)
        : this([problem])
    {
    }

    /// <summary>Creates an exception (for serializers).</summary>
    public RuleConfigurationException()
        : this("invalid rule configuration")
    {
    }

    /// <summary>Creates an exception with a message and inner exception.</summary>
    public RuleConfigurationException(string message, Exception innerException)
        : base(message, innerException) => Problems = [message];

    /// <summary>Each problem, e.g. <c>rules[2] (DeadRelu).parameters.thresholdLayer: -1 must be between 0 and 100</c>.</summary>
    public IReadOnlyList<string> Problems { get; }
}

/// <summary>
/// Reads a rule file (YAML or JSON) into <see cref="RuleBinding"/>s: which rules run, on which tensors, with which
/// parameters, window, <c>for</c>, <c>keepFiringFor</c>, severity, labels, annotation templates and actions. Custom rules are types
/// implementing <see cref="ITrainingRule"/> in assemblies the file lists.
/// </summary>
/// <remarks>
/// Every problem is collected and reported together, each naming its entry and field; nothing of an invalid file is
/// used. The format is documented in the README ("Rule files"). Stateless and thread-safe.
/// </remarks>
public static partial class RuleConfiguration
{
    private static readonly HashSet<string> RootFields = ["rules", "assemblies"];
    private static readonly HashSet<string> RuleFields = ["rule", "name", "enabled", "selector", "parameters", "window", "for", "forEvaluations", "keepFiringFor", "keepFiringForEvaluations", "severity", "labels", "annotations", "actions"];
    private static readonly HashSet<string> ReservedLabels = [AlertLabels.AlertName, AlertLabels.Run, AlertLabels.Rank, AlertLabels.Tensor, AlertLabels.Severity, AlertLabels.Feature];
    private static readonly HashSet<string> ReservedParameters = ["name", "selector", "window", "requirements"];

    /// <summary>Actions a rule may ask for.</summary>
    public static IReadOnlyList<string> KnownActions { get; } = ["stop"];

    private static readonly JsonSerializerOptions ValueOptions = new(JsonSerializerDefaults.Web)
    {
        Converters = { new JsonStringEnumConverter() },
        NumberHandling = JsonNumberHandling.Strict,
    };

    /// <summary>Loads a rule file; the format follows the extension (<c>.json</c>: JSON, anything else: YAML).</summary>
    /// <param name="path">The file.</param>
    /// <param name="catalog">Built-in rules by name, each a factory of a rule with its defaults.</param>
    /// <exception cref="RuleConfigurationException">The file cannot be read or is invalid; every problem is listed.</exception>
    public static IReadOnlyList<RuleBinding> Load(string path, IReadOnlyDictionary<string, Func<ITrainingRule>> catalog)
    {
        ArgumentNullException.ThrowIfNull(path);
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new RuleConfigurationException($"{path}: {ex.Message}");
        }

        bool json = path.EndsWith(".json", StringComparison.OrdinalIgnoreCase);
        return Parse(text, json, Path.GetDirectoryName(Path.GetFullPath(path)) ?? ".", catalog);
    }

    /// <summary>Parses rule-file text.</summary>
    /// <exception cref="RuleConfigurationException">Invalid; every problem is listed.</exception>
    public static IReadOnlyList<RuleBinding> Parse(string text, bool json, string baseDirectory, IReadOnlyDictionary<string, Func<ITrainingRule>> catalog)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(catalog);
        JsonNode? root;
        try
        {
            root = json ? JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true }) : YamlToJson(text);
        }
        catch (Exception ex) when (ex is JsonException or YamlException)
        {
            throw new RuleConfigurationException($"not valid {(json ? "JSON" : "YAML")}: {ex.Message}");
        }
        catch (Exception ex) when (!json && ex is InvalidOperationException or ArgumentException)
        {
            // YamlDotNet throws these on some malformed input instead of a YamlException (its scanner on plain scalars,
            // its node loader on unexpected events; found by InputFuzzTests): still a file that is not YAML.
            throw new RuleConfigurationException($"not valid YAML: {ex.Message}");
        }

        var problems = new List<string>();
        if (root is not JsonObject document)
        {
            throw new RuleConfigurationException("the file must be a mapping with a 'rules' list");
        }

        try
        {
            return Bind(document, problems, baseDirectory, catalog);
        }
        catch (ArgumentException ex) when (ex is not ArgumentNullException)
        {
            // System.Text.Json refuses a repeated key in an object only when the object is read.
            throw new RuleConfigurationException([.. problems, $"the file repeats a key in a mapping: {ex.Message}"]);
        }
    }

    private static List<RuleBinding> Bind(JsonObject document, List<string> problems, string baseDirectory, IReadOnlyDictionary<string, Func<ITrainingRule>> catalog)
    {
        CheckFields(problems, "", document, RootFields);
        var types = new Dictionary<string, Type>(StringComparer.Ordinal);
        if (document["assemblies"] is JsonArray assemblies)
        {
            for (int i = 0; i < assemblies.Count; i++)
            {
                LoadAssembly(problems, $"assemblies[{i}]", assemblies[i], baseDirectory, types);
            }
        }

        var bindings = new List<RuleBinding>();
        if (document["rules"] is not JsonArray rules)
        {
            problems.Add("rules: missing, or not a list");
        }
        else
        {
            for (int i = 0; i < rules.Count; i++)
            {
                if (ReadRule(problems, i, rules[i], catalog, types, baseDirectory) is { } binding)
                {
                    bindings.Add(binding);
                }
            }
        }

        foreach (IGrouping<string, RuleBinding> duplicate in bindings.GroupBy(b => b.AlertName, StringComparer.Ordinal).Where(g => g.Count() > 1))
        {
            problems.Add($"rules: the alert name '{duplicate.Key}' is used {duplicate.Count()} times; give the others a 'name'");
        }

        return problems.Count == 0 ? bindings : throw new RuleConfigurationException(problems);
    }

    private static RuleBinding? ReadRule(List<string> problems, int index, JsonNode? node, IReadOnlyDictionary<string, Func<ITrainingRule>> catalog, Dictionary<string, Type> types, string baseDirectory)
    {
        string at = $"rules[{index}]";
        if (node is not JsonObject entry)
        {
            problems.Add($"{at}: must be a mapping");
            return null;
        }

        string? ruleName = entry["rule"] is JsonValue v && v.TryGetValue(out string? s) ? s : null;
        at = $"rules[{index}] ({ruleName ?? "?"})";
        CheckFields(problems, at, entry, RuleFields);
        if (entry["enabled"] is { } enabled)
        {
            if (enabled.GetValueKind() is not (JsonValueKind.True or JsonValueKind.False))
            {
                problems.Add($"{at}.enabled: expected true or false, got {enabled.ToJsonString()}");
            }
            else if (enabled.GetValueKind() == JsonValueKind.False)
            {
                return null;
            }
        }

        if (string.IsNullOrWhiteSpace(ruleName))
        {
            problems.Add($"{at}.rule: missing; give a built-in rule name or a custom rule's full type name");
            return null;
        }

        ITrainingRule? rule = CreateRule(problems, at, ruleName, catalog, types);
        if (rule is null)
        {
            return null;
        }

        int before = problems.Count;
        if (entry["selector"] is { } selector)
        {
            SetSpecial(problems, $"{at}.selector", rule, "Selector", ReadSelector(problems, $"{at}.selector", selector));
        }

        if (entry["window"] is { } window)
        {
            SetSpecial(problems, $"{at}.window", rule, "Window", ReadWindow(problems, $"{at}.window", window));
        }

        if (entry["parameters"] is JsonObject parameters)
        {
            foreach ((string name, JsonNode? value) in parameters)
            {
                SetParameter(problems, $"{at}.parameters.{name}", rule, name, value);
            }
        }
        else if (entry["parameters"] is not null)
        {
            problems.Add($"{at}.parameters: must be a mapping of parameter names to values");
        }

        if (problems.Count == before && rule is DataDriftRule { ReferenceFile: { } referenceFile })
        {
            SetSpecial(problems, $"{at}.parameters.referenceFile", rule, nameof(DataDriftRule.StoredReference), LoadReference(problems, $"{at}.parameters.referenceFile", baseDirectory, referenceFile));
        }

        if (problems.Count == before && rule is IValidatedRule validated)
        {
            problems.AddRange(validated.Validate().Select(p => $"{at}.parameters.{p}"));
        }

        string? alertName = ReadString(problems, $"{at}.name", entry["name"]);
        TimeSpan forDuration = entry["for"] is { } forNode ? ReadDuration(problems, $"{at}.for", forNode) ?? TimeSpan.Zero : TimeSpan.Zero;
        int forEvaluations = entry["forEvaluations"] is { } evaluations ? Convert<int?>(problems, $"{at}.forEvaluations", evaluations) ?? 0 : 0;
        if (forEvaluations < 0)
        {
            problems.Add($"{at}.forEvaluations: {forEvaluations} must not be negative");
        }

        TimeSpan keepFiringFor = entry["keepFiringFor"] is { } keepNode ? ReadDuration(problems, $"{at}.keepFiringFor", keepNode) ?? TimeSpan.Zero : TimeSpan.Zero;
        int keepFiringForEvaluations = entry["keepFiringForEvaluations"] is { } keepEvaluations
            ? Convert<int?>(problems, $"{at}.keepFiringForEvaluations", keepEvaluations) ?? 0 : 0;
        if (keepFiringForEvaluations < 0)
        {
            problems.Add($"{at}.keepFiringForEvaluations: {keepFiringForEvaluations} must not be negative");
        }

        string severity = ReadString(problems, $"{at}.severity", entry["severity"]) ?? "warning";
        Dictionary<string, string> labels = ReadMap(problems, $"{at}.labels", entry["labels"]);
        foreach (string label in labels.Keys)
        {
            if (!LabelName().IsMatch(label))
            {
                problems.Add($"{at}.labels.{label}: not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)");
            }
            else if (ReservedLabels.Contains(label))
            {
                problems.Add($"{at}.labels.{label}: set by the engine; choose another label name");
            }
        }

        Dictionary<string, string> annotations = ReadMap(problems, $"{at}.annotations", entry["annotations"]);
        string[] actions = entry["actions"] is { } actionNode ? Convert<string[]>(problems, $"{at}.actions", actionNode) ?? [] : [];
        foreach (string action in actions)
        {
            if (!KnownActions.Contains(action))
            {
                problems.Add($"{at}.actions: unknown action '{action}'; known: {string.Join(", ", KnownActions)}");
            }
        }

        return problems.Count > before ? null : new RuleBinding
        {
            Rule = rule,
            Name = alertName,
            ForDuration = forDuration,
            ForEvaluations = forEvaluations,
            KeepFiringFor = keepFiringFor,
            KeepFiringForEvaluations = keepFiringForEvaluations,
            Severity = severity,
            Labels = labels,
            Annotations = annotations,
            Actions = actions,
        };
    }

    private static ITrainingRule? CreateRule(List<string> problems, string at, string name, IReadOnlyDictionary<string, Func<ITrainingRule>> catalog, Dictionary<string, Type> types)
    {
        Func<ITrainingRule>? factory = catalog.FirstOrDefault(c => string.Equals(c.Key, name, StringComparison.OrdinalIgnoreCase)).Value;
        if (factory is not null)
        {
            return factory();
        }

        if (types.TryGetValue(name, out Type? type))
        {
            try
            {
                return (ITrainingRule)Activator.CreateInstance(type)!;
            }
            catch (Exception ex) when (ex is TargetInvocationException or MissingMethodException or MemberAccessException)
            {
                problems.Add($"{at}.rule: cannot create {type.FullName}: {(ex.InnerException ?? ex).Message}");
                return null;
            }
        }

        problems.Add($"{at}.rule: unknown rule '{name}'. Built-in: {string.Join(", ", catalog.Keys.Order(StringComparer.Ordinal))}."
            + " A custom rule is named by its full type name, with its assembly listed under 'assemblies'.");
        return null;
    }

    private static void LoadAssembly(List<string> problems, string at, JsonNode? node, string baseDirectory, Dictionary<string, Type> types)
    {
        if (node is not JsonValue value || !value.TryGetValue(out string? path) || string.IsNullOrWhiteSpace(path))
        {
            problems.Add($"{at}: must be a path to an assembly");
            return;
        }

        string full = Path.GetFullPath(Path.Combine(baseDirectory, path));
        try
        {
            Assembly assembly = Assembly.LoadFrom(full);
            foreach (Type type in assembly.GetExportedTypes().Where(t => t is { IsClass: true, IsAbstract: false } && typeof(ITrainingRule).IsAssignableFrom(t)))
            {
                types[type.FullName!] = type;
            }
        }
        catch (Exception ex) when (ex is IOException or BadImageFormatException or ReflectionTypeLoadException or FileLoadException)
        {
            problems.Add($"{at}: cannot load '{full}': {ex.Message}");
        }
    }

    private static DriftReferenceTable? LoadReference(List<string> problems, string at, string baseDirectory, string file)
    {
        string path = Path.GetFullPath(Path.Combine(baseDirectory, file));
        try
        {
            (_, IReadOnlyDictionary<string, double[]> columns) = CsvColumns.Read(path);
            return new DriftReferenceTable(file, columns);
        }
        catch (CsvFormatException ex)
        {
            problems.Add($"{at}: {ex.Message}");
            return null;
        }
    }

    private static TensorSelector? ReadSelector(List<string> problems, string at, JsonNode node)
    {
        if (node is not JsonObject selector)
        {
            problems.Add($"{at}: must be a mapping with collections, include, exclude");
            return null;
        }

        CheckFields(problems, at, selector, ["collections", "include", "exclude"]);
        var collections = new List<Collection>();
        foreach (string name in selector["collections"] is { } c ? Convert<string[]>(problems, $"{at}.collections", c) ?? [] : [])
        {
            if (CollectionNames.TryParse(name, out Collection collection))
            {
                collections.Add(collection);
            }
            else
            {
                problems.Add($"{at}.collections: unknown collection '{name}'; known: {string.Join(", ", CollectionNames.All)}");
            }
        }

        string[] include = selector["include"] is { } i ? Convert<string[]>(problems, $"{at}.include", i) ?? [] : [];
        string[] exclude = selector["exclude"] is { } e ? Convert<string[]>(problems, $"{at}.exclude", e) ?? [] : [];
        try
        {
            return new TensorSelector(collections, include, exclude);
        }
        catch (ArgumentException ex)
        {
            problems.Add($"{at}: invalid regular expression: {ex.Message}");
            return null;
        }
    }

    private static WindowSpec? ReadWindow(List<string> problems, string at, JsonNode node)
    {
        if (node is not JsonObject window)
        {
            problems.Add($"{at}: must be a mapping: steps (and advance in steps), or duration (and advance, grace)");
            return null;
        }

        CheckFields(problems, at, window, ["steps", "duration", "advance", "grace"]);
        long? steps = window["steps"] is { } s ? Convert<long?>(problems, $"{at}.steps", s) : null;
        TimeSpan? duration = window["duration"] is { } d ? ReadDuration(problems, $"{at}.duration", d) : null;
        var spec = new WindowSpec
        {
            Steps = steps,
            Duration = duration,
            AdvanceSteps = steps is not null && window["advance"] is { } sa ? Convert<long?>(problems, $"{at}.advance", sa) : null,
            Advance = duration is not null && window["advance"] is { } ta ? ReadDuration(problems, $"{at}.advance", ta) : null,
            Grace = window["grace"] is { } g ? ReadDuration(problems, $"{at}.grace", g) ?? TimeSpan.Zero : TimeSpan.Zero,
        };
        IReadOnlyList<string> invalid = spec.Validate();
        problems.AddRange(invalid.Select(p => $"{at}: {p}"));
        return invalid.Count == 0 ? spec : null;
    }

    private static void SetSpecial(List<string> problems, string at, ITrainingRule rule, string property, object? value)
    {
        if (value is null)
        {
            return;
        }

        PropertyInfo? target = rule.GetType().GetProperty(property, BindingFlags.Public | BindingFlags.Instance);
        if (target is null || !target.CanWrite || !target.PropertyType.IsInstanceOfType(value))
        {
            problems.Add($"{at}: rule {rule.Name} does not take a {property.ToLowerInvariant()}");
            return;
        }

        Assign(problems, at, rule, target, value);
    }

    private static void SetParameter(List<string> problems, string at, ITrainingRule rule, string name, JsonNode? value)
    {
        string key = Normalize(name);
        PropertyInfo[] settable = [.. rule.GetType().GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.CanWrite && p.GetSetMethod() is not null && !ReservedParameters.Contains(Normalize(p.Name)))];
        PropertyInfo? target = settable.FirstOrDefault(p => Normalize(p.Name) == key);
        if (target is null)
        {
            problems.Add($"{at}: rule {rule.Name} has no parameter '{name}'; its parameters: {string.Join(", ", settable.Select(p => JsonNamingPolicy.CamelCase.ConvertName(p.Name)))}");
            return;
        }

        object? converted = target.PropertyType == typeof(TimeSpan) || target.PropertyType == typeof(TimeSpan?)
            ? ReadDuration(problems, at, value)
            : ConvertTo(problems, at, value, target.PropertyType);
        if (converted is not null || (value is null && !target.PropertyType.IsValueType))
        {
            Assign(problems, at, rule, target, converted);
        }
    }

    private static void Assign(List<string> problems, string at, object rule, PropertyInfo target, object? value)
    {
        try
        {
            target.SetValue(rule, value);
        }
        catch (TargetInvocationException ex) when (ex.InnerException is ArgumentException argument)
        {
            problems.Add($"{at}: {FirstLine(argument.Message)}");
        }
    }

    private static T? Convert<T>(List<string> problems, string at, JsonNode node) => (T?)ConvertTo(problems, at, node, typeof(T));

    private static object? ConvertTo(List<string> problems, string at, JsonNode? node, Type type)
    {
        if (type == typeof(IReadOnlyDictionary<string, string>) && node is JsonObject map)
        {
            // Detector parameters: river's spelling, values are numbers, true/false or words, all kept as text.
            var parameters = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach ((string key, JsonNode? value) in map)
            {
                if (value is not JsonValue scalar || scalar.GetValueKind() is JsonValueKind.Null)
                {
                    problems.Add($"{at}.{key}: expected a number, true/false or a word, got {Shown(value)}");
                    continue;
                }

                parameters[key] = scalar.GetValueKind() switch
                {
                    JsonValueKind.String => scalar.GetValue<string>(),
                    JsonValueKind.True => "true",
                    JsonValueKind.False => "false",
                    _ => scalar.ToJsonString(),
                };
            }

            return parameters;
        }

        try
        {
            return node.Deserialize(type, ValueOptions);
        }
        catch (Exception ex) when (ex is JsonException or NotSupportedException or InvalidOperationException or ArgumentException or FormatException or OverflowException)
        {
            problems.Add($"{at}: expected {Describe(type)}, got {Shown(node)}");
            return null;
        }
    }

    private static string? ReadString(List<string> problems, string at, JsonNode? node)
    {
        if (node is null)
        {
            return null;
        }

        string? text = Convert<string>(problems, at, node);
        if (text is not null && string.IsNullOrWhiteSpace(text))
        {
            problems.Add($"{at}: must not be empty");
            return null;
        }

        return text;
    }

    private static Dictionary<string, string> ReadMap(List<string> problems, string at, JsonNode? node) =>
        node is null ? [] : Convert<Dictionary<string, string>>(problems, at, node) ?? [];

    /// <summary>Parses a Prometheus-style duration: <c>500ms</c>, <c>30s</c>, <c>5m</c>, <c>1h30m</c>, <c>2d</c>.</summary>
    public static bool TryParseDuration(string text, out TimeSpan duration)
    {
        duration = TimeSpan.Zero;
        Match match = Duration().Match(text ?? "");
        if (!match.Success || text!.Length == 0)
        {
            return false;
        }

        try
        {
            foreach (Capture part in match.Groups["part"].Captures)
            {
                Match piece = DurationPart().Match(part.Value);
                double amount = double.Parse(piece.Groups["amount"].Value, CultureInfo.InvariantCulture);
                duration += piece.Groups["unit"].Value switch
                {
                    "ms" => TimeSpan.FromMilliseconds(amount),
                    "s" => TimeSpan.FromSeconds(amount),
                    "m" => TimeSpan.FromMinutes(amount),
                    "h" => TimeSpan.FromHours(amount),
                    _ => TimeSpan.FromDays(amount),
                };
            }
        }
        catch (OverflowException)
        {
            duration = TimeSpan.Zero;
            return false;
        }

        return true;
    }

    private static TimeSpan? ReadDuration(List<string> problems, string at, JsonNode? node)
    {
        if (node is JsonValue value && value.TryGetValue(out string? text) && TryParseDuration(text, out TimeSpan duration))
        {
            return duration;
        }

        problems.Add($"{at}: expected a duration such as 30s, 5m, 1h30m, got {Shown(node)}");
        return null;
    }

    private static void CheckFields(List<string> problems, string at, JsonObject node, HashSet<string> known)
    {
        foreach ((string name, _) in node)
        {
            if (!known.Contains(name))
            {
                problems.Add($"{(at.Length == 0 ? "" : at + ".")}{name}: unknown field; known: {string.Join(", ", known)}");
            }
        }
    }

    private static JsonNode? YamlToJson(string text)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(text));
        return stream.Documents.Count == 0 ? null : ToJson(stream.Documents[0].RootNode);
    }

    private static JsonNode? ToJson(YamlNode node) => node switch
    {
        YamlMappingNode mapping => new JsonObject(mapping.Children.Select(c => KeyValuePair.Create(
            c.Key is YamlScalarNode key ? key.Value ?? "" : throw new YamlException(c.Key.Start, c.Key.End, "a mapping key must be plain text"),
            ToJson(c.Value)))),
        YamlSequenceNode sequence => new JsonArray([.. sequence.Children.Select(ToJson)]),
        YamlScalarNode scalar => Scalar(scalar),
        _ => throw new YamlException($"unsupported YAML node at {node.Start}"),
    };

    private static JsonValue? Scalar(YamlScalarNode scalar)
    {
        string value = scalar.Value ?? "";
        if (scalar.Style != ScalarStyle.Plain)
        {
            return JsonValue.Create(value);
        }

        if (value is "" or "~" or "null")
        {
            return null;
        }

        if (value is "true" or "false")
        {
            return JsonValue.Create(value == "true");
        }

        if (long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out long integer))
        {
            return JsonValue.Create(integer);
        }

        // A number too large for a double stays text, so binding reports it instead of JSON failing on infinity.
        return double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double number) && double.IsFinite(number)
            ? JsonValue.Create(number)
            : JsonValue.Create(value);
    }

    private static string Shown(JsonNode? node)
    {
        try
        {
            return node?.ToJsonString() ?? "null";
        }
        catch (ArgumentException)
        {
            // A number JSON cannot write (e.g. 1e400 read from YAML as infinity).
            return node!.ToString();
        }
    }

    private static string Normalize(string name) => name.Replace("_", "", StringComparison.Ordinal).Replace("-", "", StringComparison.Ordinal).ToLowerInvariant();

    private static string Describe(Type type)
    {
        Type inner = Nullable.GetUnderlyingType(type) ?? type;
        return inner == typeof(double) || inner == typeof(float) ? "a number"
            : inner == typeof(int) || inner == typeof(long) ? "a whole number"
            : inner == typeof(bool) ? "true or false"
            : inner == typeof(string) ? "a string"
            : inner.IsEnum ? "one of " + string.Join(", ", Enum.GetNames(inner))
            : inner.IsArray || inner.IsGenericType ? "a list or mapping"
            : inner.Name;
    }

    private static string FirstLine(string message)
    {
        int end = message.IndexOf(" (Parameter", StringComparison.Ordinal);
        return (end > 0 ? message[..end] : message).Split('\n')[0].Trim();
    }

    [GeneratedRegex("^[a-zA-Z_][a-zA-Z0-9_]*$")]
    private static partial Regex LabelName();

    [GeneratedRegex(@"^(?<part>\d+(\.\d+)?(ms|s|m|h|d))+$")]
    private static partial Regex Duration();

    [GeneratedRegex(@"^(?<amount>\d+(\.\d+)?)(?<unit>ms|s|m|h|d)$")]
    private static partial Regex DurationPart();
}
