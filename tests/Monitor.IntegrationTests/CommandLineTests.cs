using System.CommandLine;
using Monitor.Cli;

namespace Monitor.IntegrationTests;

public sealed class CommandLineTests
{
    private static (int ExitCode, string Output, string Error) Invoke(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int exitCode = MonitorCommand.Create().Parse(args).Invoke(new InvocationConfiguration { Output = output, Error = error });
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
    [InlineData("--kafka", "serve")]
    [InlineData("ftp://x is not an absolute http(s) URL", "serve", "--kafka", "k:9092", "--alertmanager", "ftp://x")]
    [InlineData("nope is not an absolute http(s) URL", "serve", "--kafka", "k:9092", "--external-url", "nope")]
    public void InvalidArguments_FailWithAMessageNamingTheOption(string expected, params string[] args)
    {
        (int exitCode, _, string error) = Invoke(args);

        Assert.NotEqual(0, exitCode);
        Assert.Contains(expected, error, StringComparison.Ordinal);
    }
}
