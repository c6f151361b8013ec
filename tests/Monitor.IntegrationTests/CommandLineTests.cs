using System.CommandLine;
using Monitor.Cli;

namespace Monitor.IntegrationTests;

public sealed class CommandLineTests
{
    private static (int ExitCode, string Output, string Error) Invoke(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int exitCode = MonitorCommand.Invoke(args, new InvocationConfiguration { Output = output, Error = error });
        return (exitCode, output.ToString(), error.ToString());
    }

    [Theory]
    [InlineData("--help")]
    [InlineData("demo", "--help")]
    [InlineData("serve", "--help")]
    public void Help_DescribesEveryCommandAndOption(params string[] args)
    {
        (int exitCode, string output, _) = Invoke(args);

        Assert.Equal(0, exitCode);
        Assert.Contains("Usage:", output, StringComparison.Ordinal);
        Assert.Contains("Options:", output, StringComparison.Ordinal);
    }

    [Fact]
    public void DemoHelp_ListsTheFaultsAndDefaults()
    {
        (_, string output, _) = Invoke("demo", "--help");

        Assert.Contains("vanishing-gradients", output, StringComparison.Ordinal);
        Assert.Contains("--metrics-port", output, StringComparison.Ordinal);
        Assert.Contains("[default: 300]", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--steps must be at least 1", "demo", "--steps", "0")]
    [InlineData("bogus", "demo", "--fault", "bogus")]
    [InlineData("--run: run id", "demo", "--run", "a/b")]
    [InlineData("ftp://x is not an absolute http(s) URL", "serve", "--kafka", "k:9092", "--alertmanager", "ftp://x")]
    [InlineData("nope is not an absolute http(s) URL", "serve", "--kafka", "k:9092", "--external-url", "nope")]
    // A value of the wrong type: it crashed the checks of the options with an unhandled InvalidOperationException.
    [InlineData("Cannot parse argument 'abc' for option '--steps'", "demo", "--steps", "abc")]
    [InlineData("Cannot parse argument 'x' for option '--max-file-mb'", "archive", "--kafka", "k:9092", "--dir", "/tmp/archive", "--max-file-mb", "x")]
    [InlineData("Unrecognized command or argument '--nope'", "demo", "--nope")]
    [InlineData("Option '--run' is required", "trace", "get")]
    public void InvalidArguments_FailWithExitCode2AndAMessageNamingTheOption(string expected, params string[] args)
    {
        (int exitCode, string output, string error) = Invoke(args);

        Assert.Equal(2, exitCode);
        Assert.Contains(expected, error, StringComparison.Ordinal);
        // The errors and where help is, not the whole help text.
        Assert.Contains($"See 'monitor {args[0]}", error, StringComparison.Ordinal);
        Assert.DoesNotContain("Options:", output + error, StringComparison.Ordinal);
    }

    [Fact]
    public void ServeWithoutKafka_FailsWithExitCode2_NamingTheOption()
    {
        (int exitCode, _, string error) = Invoke("serve");

        Assert.Equal(2, exitCode);
        Assert.Contains("--kafka", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SampleJob_InvalidOptions_FailWithExitCode2()
    {
        var error = new StringWriter();
        int exitCode = await Monitor.Samples.Training.SampleJobCommand.InvokeAsync(["--steps", "abc"], new InvocationConfiguration { Output = TextWriter.Null, Error = error }, TestContext.Current.CancellationToken);

        Assert.Equal(2, exitCode);
        Assert.Contains("Cannot parse argument 'abc' for option '--steps'", error.ToString(), StringComparison.Ordinal);
        Assert.Contains("See 'monitor-sample-training --help'.", error.ToString(), StringComparison.Ordinal);
    }
}
