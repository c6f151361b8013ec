using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Text.RegularExpressions;

namespace Monitor.Cli;

/// <summary>Parsers of option values System.CommandLine has no conversion for, shared by the commands.</summary>
internal static partial class OptionValues
{
    /// <summary>
    /// Adds a check of an option's value: <paramref name="check"/> returns the error, or null when the value is fine. A
    /// value that does not even parse is not checked (the parser reports it; reading it would throw).
    /// </summary>
    public static void AddCheck<T>(Option<T> option, Func<T?, string?> check) =>
        option.Validators.Add(result =>
        {
            T? value;
            try
            {
                value = result.GetValueOrDefault<T>();
            }
            catch (InvalidOperationException)
            {
                return;
            }

            if (check(value) is { } error)
            {
                result.AddError(error);
            }
        });

    /// <summary>Absolute http(s) URLs. System.CommandLine 3.0 has no conversion to Uri: without this, any URL fails when the command runs.</summary>
    public static Uri[] AbsoluteUrls(ArgumentResult result)
    {
        var urls = new List<Uri>(result.Tokens.Count);
        foreach (Token token in result.Tokens)
        {
            if (Uri.TryCreate(token.Value, UriKind.Absolute, out Uri? url) && (url.Scheme == Uri.UriSchemeHttp || url.Scheme == Uri.UriSchemeHttps))
            {
                urls.Add(url);
            }
            else
            {
                result.AddError($"{token.Value} is not an absolute http(s) URL");
            }
        }

        return [.. urls];
    }

    /// <summary>
    /// A positive duration: a number with a unit (<c>500ms</c>, <c>30s</c>, <c>5m</c>, <c>1h</c>, <c>7d</c>, Prometheus' style)
    /// or <c>[d.]hh:mm:ss[.fff]</c> (what <c>--help</c> prints as the default).
    /// </summary>
    public static TimeSpan Duration(ArgumentResult result)
    {
        string text = result.Tokens.Count == 1 ? result.Tokens[0].Value : "";
        if (DurationPattern().Match(text) is { Success: true } match
            && double.TryParse(match.Groups["value"].Value, NumberStyles.Float, CultureInfo.InvariantCulture, out double value))
        {
            TimeSpan duration = match.Groups["unit"].Value switch
            {
                "ms" => TimeSpan.FromMilliseconds(value),
                "s" => TimeSpan.FromSeconds(value),
                "m" => TimeSpan.FromMinutes(value),
                "d" => TimeSpan.FromDays(value),
                _ => TimeSpan.FromHours(value),
            };
            if (duration > TimeSpan.Zero)
            {
                return duration;
            }
        }
        else if (TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out TimeSpan span) && span > TimeSpan.Zero)
        {
            return span;
        }

        result.AddError($"{result.Argument.Name} '{text}' is not a positive duration (e.g. 30s, 500ms, 5m, 7d, 00:01:00)");
        return default;
    }

    /// <summary><c>key=value</c> pairs (repeatable option); a key given twice is refused.</summary>
    public static Dictionary<string, string> KeyValues(ArgumentResult result)
    {
        var pairs = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (Token token in result.Tokens)
        {
            int equals = token.Value.IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0)
            {
                result.AddError($"'{token.Value}' is not key=value");
            }
            else if (!pairs.TryAdd(token.Value[..equals].Trim(), token.Value[(equals + 1)..]))
            {
                result.AddError($"'{token.Value[..equals].Trim()}' is given twice");
            }
        }

        return pairs;
    }

    /// <summary>HTTP headers written <c>Name: value</c> (repeatable option).</summary>
    public static Dictionary<string, string> Headers(ArgumentResult result)
    {
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (Token token in result.Tokens)
        {
            int colon = token.Value.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0)
            {
                result.AddError($"'{token.Value}' is not an HTTP header 'Name: value'");
            }
            else if (!headers.TryAdd(token.Value[..colon].Trim(), token.Value[(colon + 1)..].Trim()))
            {
                result.AddError($"header '{token.Value[..colon].Trim()}' is given twice");
            }
        }

        return headers;
    }

    /// <summary>
    /// A secret given directly (<paramref name="value"/>), in a file (<paramref name="file"/>: its content without the
    /// trailing line break), or else by the environment variable <paramref name="variable"/>. Both options given:
    /// refused. The variable is read here rather than as the option's default so that <c>--help</c> never prints it.
    /// </summary>
    /// <exception cref="ArgumentException">Both options are given, or the file cannot be read.</exception>
    public static string? Secret(ParseResult parse, Option<string?> value, Option<FileInfo>? file, string variable)
    {
        string? direct = parse.GetValue(value);
        if (file is null || parse.GetValue(file) is not FileInfo path)
        {
            return direct is { Length: > 0 } ? direct : Environment.GetEnvironmentVariable(variable) is { Length: > 0 } fromEnvironment ? fromEnvironment : null;
        }

        if (direct is not null)
        {
            throw new ArgumentException($"{value.Name} and {file.Name} are both given; give one");
        }

        try
        {
            return File.ReadAllText(path.FullName).TrimEnd('\r', '\n');
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"{file.Name} {path.FullName}: {ex.Message}", ex);
        }
    }

    [GeneratedRegex(@"^(?<value>[0-9]+(\.[0-9]+)?)(?<unit>ms|s|m|h|d)$", RegexOptions.CultureInvariant)]
    private static partial Regex DurationPattern();
}
