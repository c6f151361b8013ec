using System.CommandLine;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;

namespace Monitor.Hosting;

/// <summary>
/// How Monitor's executables run a command line (compiled into each): a command line that does not parse (an unknown
/// option, a value of the wrong type, a failed check) prints its errors and where to find help on stderr, and exits
/// with <see cref="InvalidInput"/>, as the README documents. System.CommandLine's own answer is the whole help text
/// and exit code 1, which scripts cannot tell from a failed run.
/// </summary>
internal static class CommandLineEntry
{
    /// <summary>The exit code for invalid input: 2.</summary>
    public const int InvalidInput = 2;

    /// <summary>Parses <paramref name="args"/> with <paramref name="command"/> and runs it (see the class remarks).</summary>
    /// <param name="program">The executable's name, for the pointer to help (the root command is named after the process).</param>
    /// <param name="command">The root command.</param>
    /// <param name="args">The arguments.</param>
    /// <param name="configuration">Output and error writers; default the console's.</param>
    /// <param name="cancellationToken">Cancels the command (System.CommandLine also cancels it on SIGINT and SIGTERM).</param>
    public static Task<int> InvokeAsync(string program, Command command, IReadOnlyList<string> args, InvocationConfiguration? configuration, CancellationToken cancellationToken)
    {
        ParseResult parse = command.Parse(args);
        return parse.Action is ParseErrorAction ? Task.FromResult(Refuse(program, parse, configuration)) : parse.InvokeAsync(configuration, cancellationToken);
    }

    /// <summary>As <see cref="InvokeAsync"/>, synchronously.</summary>
    public static int Invoke(string program, Command command, IReadOnlyList<string> args, InvocationConfiguration? configuration)
    {
        ParseResult parse = command.Parse(args);
        return parse.Action is ParseErrorAction ? Refuse(program, parse, configuration) : parse.Invoke(configuration);
    }

    private static int Refuse(string program, ParseResult parse, InvocationConfiguration? configuration)
    {
        TextWriter error = configuration?.Error ?? Console.Error;
        foreach (ParseError problem in parse.Errors)
        {
            error.WriteLine(problem.Message);
        }

        var path = new List<string>();
        for (SymbolResult? result = parse.CommandResult; result is CommandResult command; result = command.Parent)
        {
            path.Insert(0, command.Parent is null ? program : command.Command.Name);
        }

        error.WriteLine($"See '{string.Join(' ', path)} --help'.");
        return InvalidInput;
    }
}
