using System.Collections;
using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace Monitor.Hosting;

/// <summary>A Kafka client configuration that cannot be used: the message names the file and line, or the option.</summary>
internal sealed class KafkaClientPropertiesException(string message) : Exception(message);

/// <summary>Bootstrap servers and the librdkafka properties every Kafka client of a command is given.</summary>
/// <param name="BootstrapServers">Where the clients connect.</param>
/// <param name="Properties">librdkafka properties other than <c>bootstrap.servers</c>, applied last to every producer,
/// consumer and admin client.</param>
internal sealed record KafkaClientSettings(string BootstrapServers, IReadOnlyDictionary<string, string> Properties);

/// <summary>
/// librdkafka client properties for Monitor's executables (<c>monitor serve</c>, <c>monitor demo --kafka</c>, the
/// sample job), compiled into each: <c>--kafka-config FILE</c> (Java-properties style), environment variables
/// <c>MONITOR_KAFKA_*</c>, and <c>--kafka-property key=value</c> (repeatable), merged in that order (later wins), so
/// that secured clusters (SASL, TLS, <c>security.protocol</c>) can be reached.
/// </summary>
/// <remarks>
/// <para>File syntax: one <c>key=value</c> per line (<c>key: value</c> also works); blank lines and lines starting with
/// <c>#</c> or <c>!</c> are ignored; spaces around key and value are trimmed; no line continuations or escapes. A
/// line without a separator, an empty key, a key with spaces or a key set twice is refused, naming file and line.</para>
/// <para>Environment: <c>MONITOR_KAFKA_SASL_USERNAME</c> sets <c>sasl.username</c> (the rest of the name, lower case,
/// <c>_</c> read as <c>.</c>; librdkafka's property names have no underscores), so secrets can come from a container's
/// environment rather than its command line. <see cref="ConfigVariable"/> names the file instead.</para>
/// <para>Bootstrap servers: <c>--kafka</c> and a <c>bootstrap.servers</c> property from any source must agree; either
/// alone is used. Nothing here checks property names or values: librdkafka does when a client is built, and its
/// message is reported as is (see <see cref="Describe"/>).</para>
/// </remarks>
internal sealed class KafkaClientProperties
{
    /// <summary>Environment variable naming the default <c>--kafka-config</c> file.</summary>
    public const string ConfigVariable = "MONITOR_KAFKA_CONFIG";

    /// <summary>Prefix of the environment variables read as properties.</summary>
    public const string VariablePrefix = "MONITOR_KAFKA_";

    private const string Bootstrap = "bootstrap.servers";

    /// <summary>Creates the two options; <paramref name="readEnvironment"/>: whether the <c>MONITOR_KAFKA_*</c>
    /// variables count (not for <c>monitor demo</c>, whose default is no Kafka at all).</summary>
    public KafkaClientProperties(bool readEnvironment)
    {
        ReadsEnvironment = readEnvironment;
        Property = new Option<string[]>("--kafka-property")
        {
            Description = "librdkafka property key=value for every Kafka client (repeatable; wins over --kafka-config), e.g. security.protocol=SASL_SSL."
                + (readEnvironment ? $" Also from {VariablePrefix}* variables ({VariablePrefix}SASL_USERNAME: sasl.username)." : ""),
            CustomParser = ParseArguments,
        };
        ConfigFile = new Option<FileInfo>("--kafka-config")
        {
            Description = "File of librdkafka properties, one key=value a line, # comments (Java-properties style)."
                + (readEnvironment ? $" Default: ${ConfigVariable}." : ""),
        };
        if (readEnvironment)
        {
            ConfigFile.DefaultValueFactory = _ => Environment.GetEnvironmentVariable(ConfigVariable) is { Length: > 0 } path ? new FileInfo(path) : null!;
        }

        ConfigFile.AcceptExistingOnly();
    }

    /// <summary><c>--kafka-property</c>.</summary>
    public Option<string[]> Property { get; }

    /// <summary><c>--kafka-config</c>.</summary>
    public Option<FileInfo> ConfigFile { get; }

    /// <summary>Whether <c>MONITOR_KAFKA_*</c> variables are read.</summary>
    public bool ReadsEnvironment { get; }

    /// <summary>Whether the command line gave any property or file.</summary>
    public bool IsGiven(ParseResult parse) =>
        (parse.GetValue(Property) is { Length: > 0 }) || parse.GetResult(ConfigFile) is { Implicit: false };

    /// <summary>The settings of the parsed command line and the process environment.</summary>
    /// <param name="parse">The parsed command.</param>
    /// <param name="bootstrap">The command's <c>--kafka</c>, or null when not given.</param>
    /// <exception cref="KafkaClientPropertiesException">A malformed file line, a bootstrap conflict, or no bootstrap at all.</exception>
    public KafkaClientSettings Resolve(ParseResult parse, string? bootstrap) =>
        Resolve(parse, bootstrap, ReadsEnvironment ? Variables() : []);

    /// <summary>As <see cref="Resolve(ParseResult, string?)"/>, with the environment given (tests).</summary>
    public KafkaClientSettings Resolve(ParseResult parse, string? bootstrap, IEnumerable<KeyValuePair<string, string>> environment)
    {
        ArgumentNullException.ThrowIfNull(parse);
        var merged = new Dictionary<string, (string Value, string Source)>(StringComparer.Ordinal);
        if (parse.GetValue(ConfigFile) is FileInfo file)
        {
            foreach ((string key, string value) in ReadFile(file.FullName))
            {
                merged[key] = (value, file.FullName);
            }
        }

        foreach ((string name, string value) in environment)
        {
            if (FromVariable(name) is { } key)
            {
                merged[key] = (value, "$" + name);
            }
        }

        foreach (string argument in parse.GetValue(Property) ?? [])
        {
            (string key, string value) = SplitArgument(argument) ?? throw new KafkaClientPropertiesException($"--kafka-property '{argument}' is not key=value");
            merged[key] = (value, "--kafka-property");
        }

        string? servers = bootstrap;
        if (merged.Remove(Bootstrap, out (string Value, string Source) fromProperties))
        {
            if (servers is not null && !string.Equals(servers, fromProperties.Value, StringComparison.Ordinal))
            {
                throw new KafkaClientPropertiesException(
                    $"--kafka {servers} and {Bootstrap}={fromProperties.Value} (from {fromProperties.Source}) disagree; give the bootstrap servers once");
            }

            servers = fromProperties.Value;
        }

        if (string.IsNullOrWhiteSpace(servers))
        {
            throw new KafkaClientPropertiesException($"--kafka is required (or {Bootstrap} in --kafka-config or --kafka-property)");
        }

        return new KafkaClientSettings(servers, merged.ToDictionary(p => p.Key, p => p.Value.Value, StringComparer.Ordinal));
    }

    /// <summary>Reads a Java-properties style file (see the remarks).</summary>
    /// <exception cref="KafkaClientPropertiesException">A malformed line (file and line named), or the file cannot be read.</exception>
    public static IReadOnlyList<KeyValuePair<string, string>> ReadFile(string path)
    {
        string[] lines;
        try
        {
            lines = File.ReadAllLines(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new KafkaClientPropertiesException($"Kafka config {path}: {ex.Message}");
        }

        var properties = new List<KeyValuePair<string, string>>();
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i].Trim();
            if (line.Length == 0 || line[0] is '#' or '!')
            {
                continue;
            }

            int number = i + 1;
            if (Split(line) is not { } property)
            {
                throw new KafkaClientPropertiesException($"Kafka config {path}:{number}: '{line}' is not key=value");
            }

            if (seen.TryGetValue(property.Key, out int first))
            {
                throw new KafkaClientPropertiesException($"Kafka config {path}:{number}: '{property.Key}' is already set on line {first}");
            }

            seen[property.Key] = number;
            properties.Add(property);
        }

        return properties;
    }

    /// <summary>What a librdkafka refusal says, for the user (the exception types Confluent.Kafka throws for bad properties).</summary>
    public static bool Describe(Exception exception, out string message)
    {
        ArgumentNullException.ThrowIfNull(exception);
        bool configuration = exception is ArgumentException or InvalidOperationException or Confluent.Kafka.KafkaException;
        message = "Kafka client configuration refused: " + exception.Message;
        return configuration;
    }

    /// <summary>The property a <c>MONITOR_KAFKA_*</c> variable sets, or null when it is not one.</summary>
    internal static string? FromVariable(string name)
    {
        if (!name.StartsWith(VariablePrefix, StringComparison.Ordinal) || name == ConfigVariable || name.Length == VariablePrefix.Length)
        {
            return null;
        }

        return name[VariablePrefix.Length..].ToLowerInvariant().Replace('_', '.');
    }

    private static IEnumerable<KeyValuePair<string, string>> Variables()
    {
        foreach (DictionaryEntry entry in Environment.GetEnvironmentVariables())
        {
            if (entry.Key is string name && entry.Value is string value)
            {
                yield return new(name, value);
            }
        }
    }

    private static string[] ParseArguments(ArgumentResult result)
    {
        var values = new List<string>(result.Tokens.Count);
        foreach (Token token in result.Tokens)
        {
            if (SplitArgument(token.Value) is null)
            {
                result.AddError($"--kafka-property '{token.Value}' is not key=value (e.g. security.protocol=SASL_SSL)");
            }

            values.Add(token.Value);
        }

        return [.. values];
    }

    // Only '=' on the command line: a value such as a URL may contain ':'.
    private static KeyValuePair<string, string>? SplitArgument(string text)
    {
        int equals = text.IndexOf('=', StringComparison.Ordinal);
        return equals < 0 ? null : Checked(text[..equals], text[(equals + 1)..]);
    }

    // Java's rule: the first '=' or ':' separates key and value.
    private static KeyValuePair<string, string>? Split(string line)
    {
        int separator = line.IndexOfAny(['=', ':']);
        return separator < 0 ? null : Checked(line[..separator], line[(separator + 1)..]);
    }

    private static KeyValuePair<string, string>? Checked(string key, string value)
    {
        key = key.Trim();
        return key.Length == 0 || key.Any(char.IsWhiteSpace) ? null : new(key, value.Trim());
    }

    /// <summary>For messages: the property count, never values (they may be secrets).</summary>
    public static string Summary(KafkaClientSettings settings) =>
        settings.Properties.Count == 0 ? "" : string.Create(CultureInfo.InvariantCulture, $" with {settings.Properties.Count} client properties ({string.Join(", ", settings.Properties.Keys.Order(StringComparer.Ordinal))})");
}
