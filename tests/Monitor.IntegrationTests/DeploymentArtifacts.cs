using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Monitor.IntegrationTests;

/// <summary>Paths of the deployment artifacts: compose.yaml, the Dockerfiles, dashboards/ and charts/monitor.</summary>
internal static class Repository
{
    private static readonly Lazy<string> RootPath = new(() =>
    {
        for (DirectoryInfo? directory = new(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Monitor.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException($"no Monitor.sln above {AppContext.BaseDirectory}");
    });

    /// <summary>The repository root (the directory holding Monitor.sln).</summary>
    public static string Root => RootPath.Value;

    /// <summary>charts/monitor.</summary>
    public static string Chart => Path.Combine(Root, "charts", "monitor");

    /// <summary>The absolute path of <paramref name="relative"/>, a path relative to the root.</summary>
    public static string PathOf(string relative) => Path.GetFullPath(Path.Combine(Root, relative));

    /// <summary><paramref name="path"/> relative to the root, with '/' separators, for messages.</summary>
    public static string Relative(string path) => Path.GetRelativePath(Root, path).Replace('\\', '/');
}

/// <summary>
/// YAML as JSON nodes, the way Kubernetes, Helm and Compose read it: merge keys (<c>&lt;&lt;: *anchor</c>) applied,
/// plain scalars typed (null, booleans, integers, floats), quoted ones always strings.
/// </summary>
internal static partial class YamlJson
{
    /// <summary>Every document of <paramref name="text"/>; empty documents (a lone <c>---</c>) are skipped.</summary>
    /// <exception cref="YamlException">The text is not YAML.</exception>
    public static IReadOnlyList<JsonNode> Documents(string text)
    {
        var stream = new YamlStream();
        stream.Load(new MergingParser(new Parser(new StringReader(text))));
        return [.. stream.Documents.Select(d => ToJson(d.RootNode)).OfType<JsonNode>()];
    }

    /// <summary>The single document of a file.</summary>
    public static JsonNode Load(string path)
    {
        IReadOnlyList<JsonNode> documents = Documents(File.ReadAllText(path));
        Assert.True(documents.Count == 1, $"{Repository.Relative(path)}: expected one YAML document, found {documents.Count}");
        return documents[0];
    }

    /// <summary>Strings of a JSON array (empty for null).</summary>
    public static IReadOnlyList<string> Strings(JsonNode? node) =>
        node is JsonArray array ? [.. array.Select(n => n!.ToString())] : [];

    private static JsonNode? ToJson(YamlNode node) => node switch
    {
        YamlMappingNode mapping => new JsonObject(mapping.Children.Select(c => KeyValuePair.Create(((YamlScalarNode)c.Key).Value ?? "", ToJson(c.Value)))),
        YamlSequenceNode sequence => new JsonArray([.. sequence.Children.Select(ToJson)]),
        YamlScalarNode scalar => Scalar(scalar),
        _ => throw new YamlException(node.Start, node.End, "unsupported YAML node"),
    };

    private static JsonValue? Scalar(YamlScalarNode scalar)
    {
        string value = scalar.Value ?? "";
        if (scalar.Style != ScalarStyle.Plain)
        {
            return JsonValue.Create(value);
        }

        return value switch
        {
            "" or "~" or "null" => null,
            "true" => JsonValue.Create(true),
            "false" => JsonValue.Create(false),
            _ when long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out long integer) => JsonValue.Create(integer),
            _ when double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double number) && double.IsFinite(number) => JsonValue.Create(number),
            _ => JsonValue.Create(value),
        };
    }

    /// <summary>
    /// Leaf keys of the block mappings of <paramref name="text"/> (dotted paths; a key whose value is a mapping of keys is
    /// no leaf) that neither carry a helm-docs comment (<c># -- ...</c> among the comment lines right above the key) nor
    /// sit below a key that does. Read line by line, as
    /// helm-docs does (YamlDotNet's parser, with comments on, rejects some valid files); list items and block scalars
    /// belong to their key.
    /// </summary>
    public static IReadOnlyList<string> UndocumentedKeys(string text)
    {
        var undocumented = new List<string>();
        var open = new Stack<(int Indent, string Path, bool Documented)>();
        bool commentSeen = false;
        int? blockScalarIndent = null;
        foreach (string line in text.Split('\n'))
        {
            string trimmed = line.TrimStart();
            int indent = line.Length - trimmed.Length;
            if (blockScalarIndent is { } scalarIndent)
            {
                if (trimmed.Length == 0 || indent > scalarIndent)
                {
                    continue;
                }

                blockScalarIndent = null;
            }

            if (trimmed.Length == 0)
            {
                continue;
            }

            if (trimmed.StartsWith('#'))
            {
                commentSeen |= trimmed.TrimStart('#').TrimStart().StartsWith("--", StringComparison.Ordinal);
                continue;
            }

            Match key = KeyLine().Match(trimmed);
            if (trimmed.StartsWith('-') || !key.Success)
            {
                // A list item or a continuation: part of the key above.
                commentSeen = false;
                continue;
            }

            while (open.Count > 0 && open.Peek().Indent >= indent)
            {
                open.Pop();
            }

            if (open.Count > 0)
            {
                // The key above has keys below it: a group, documented through its leaves.
                undocumented.Remove(open.Peek().Path);
            }

            (string parentPath, bool parentDocumented) = open.Count > 0 ? (open.Peek().Path + ".", open.Peek().Documented) : ("", false);
            string path = parentPath + key.Groups["key"].Value;
            bool documented = parentDocumented || commentSeen;
            if (!documented)
            {
                undocumented.Add(path);
            }

            open.Push((indent, path, documented));
            commentSeen = false;
            if (key.Groups["value"].Value.TrimEnd() is ['|' or '>', ..])
            {
                blockScalarIndent = indent;
            }
        }

        return undocumented;
    }

    [GeneratedRegex(@"^(?<key>[A-Za-z_][A-Za-z0-9_.-]*|""[^""]+""):(?:\s+(?<value>.*))?$")]
    private static partial Regex KeyLine();
}

/// <summary>A command-line tool run to completion (docker-compose, helm, promtool, amtool), its output captured.</summary>
internal static class Tool
{
    /// <summary>The tool's path, or a failure that says how to install it (the tests never skip).</summary>
    public static string Find(string name, string install) =>
        ChildServer.FindExecutable([name], ChildServer.SearchDirectories())
        ?? throw new InvalidOperationException($"{name} not found: {install} (tests/install-test-servers.sh installs it)");

    /// <summary>Runs <paramref name="binary"/>; returns its exit code, stdout and stderr. Fails the test after 2 minutes.</summary>
    public static Task<(int ExitCode, string Output, string Error)> RunAsync(string binary, string workingDirectory, params string[] arguments) =>
        RunAsync(binary, workingDirectory, new Dictionary<string, string>(), arguments);

    /// <summary>As <see cref="RunAsync(string, string, string[])"/>, with <paramref name="environment"/> added to the child's environment.</summary>
    public static async Task<(int ExitCode, string Output, string Error)> RunAsync(string binary, string workingDirectory, IReadOnlyDictionary<string, string> environment, params string[] arguments)
    {
        var start = new ProcessStartInfo(binary)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            WorkingDirectory = workingDirectory,
        };
        foreach ((string name, string value) in environment)
        {
            start.Environment[name] = value;
        }
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using Process process = Process.Start(start)!;
        process.StandardInput.Close();
        CancellationToken cancellation = TestContext.Current.CancellationToken;
        Task<string> output = process.StandardOutput.ReadToEndAsync(cancellation);
        Task<string> error = process.StandardError.ReadToEndAsync(cancellation);
        try
        {
            await process.WaitForExitAsync(cancellation).WaitAsync(TimeSpan.FromMinutes(2), cancellation);
        }
        catch (TimeoutException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        return (process.ExitCode, await output, await error);
    }

    /// <summary>"binary args" for messages.</summary>
    public static string Shown(string binary, IEnumerable<string> arguments) =>
        new StringBuilder(Path.GetFileName(binary)).AppendJoin("", arguments.Select(a => " " + (a.Contains(' ', StringComparison.Ordinal) ? "'" + a + "'" : a))).ToString();
}
