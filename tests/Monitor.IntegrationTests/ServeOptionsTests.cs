using System.CommandLine;
using Monitor.Cli;

namespace Monitor.IntegrationTests;

/// <summary><c>monitor serve</c>'s options parsed from the real command line: refusals and the defaults <c>--help</c> shows.</summary>
public sealed class ServeOptionsTests
{
    private static (int ExitCode, string Output, string Error) Invoke(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int exitCode = MonitorCommand.Invoke(args, new InvocationConfiguration { Output = output, Error = error });
        return (exitCode, output.ToString(), error.ToString());
    }

    [Theory]
    [InlineData("--webhook-token and --webhook-header need a --webhook", "--webhook-token", "t")]
    [InlineData("'X-Key' is not an HTTP header 'Name: value'", "--webhook", "http://127.0.0.1:1/hook", "--webhook-header", "X-Key")]
    [InlineData("both a bearer token and an Authorization header", "--webhook", "http://127.0.0.1:1/hook", "--webhook-token", "t", "--webhook-header", "Authorization: Basic x")]
    [InlineData("external label 'bad-name' is not a valid Prometheus label", "--external-label", "bad-name=x")]
    [InlineData("'cluster' is given twice", "--external-label", "cluster=a", "--external-label", "cluster=b")]
    [InlineData("'0s' is not a positive duration", "--resend-interval", "0s")]
    [InlineData("'soon' is not a positive duration", "--late-grace", "soon")]
    [InlineData("bogus", "--offset-reset", "bogus")]
    [InlineData("is https but no TLS certificate is given (--tls-cert)", "--listen", "https://127.0.0.1:0")]
    [InlineData("--api-token and --api-token-file are both given", "--api-token", "a", "--api-token-file", "/etc/hostname")]
    public void Serve_RefusesInvalidOptions_NamingThem(string expected, params string[] args)
    {
        (int exitCode, _, string error) = Invoke(["serve", "--kafka", "127.0.0.1:1", .. args]);

        Assert.NotEqual(0, exitCode);
        Assert.Contains(expected, error, StringComparison.Ordinal);
    }

    [Fact]
    public void ServeHelp_ShowsTheOptionsTypesDefaults()
    {
        (int exitCode, string output, _) = Invoke("serve", "--help");

        Assert.Equal(0, exitCode);
        var defaults = new Monitor.Service.MonitorServiceOptions();
        Assert.Contains($"[default: {defaults.ListenUrl}]", output, StringComparison.Ordinal);
        Assert.Contains($"[default: {defaults.StepsTopic}]", output, StringComparison.Ordinal);
        Assert.Contains($"[default: {defaults.Notifications.ResendInterval}]", output, StringComparison.Ordinal);
        Assert.Contains($"[default: {defaults.Engine.LateGrace}]", output, StringComparison.Ordinal);
        Assert.Contains("[default: Earliest]", output, StringComparison.Ordinal);
        foreach (string option in (string[])["--kafka-property", "--kafka-config", "--webhook-token", "--webhook-header", "--external-label", "--api-read-token", "--api-token-file", "--tls-cert"])
        {
            Assert.Contains(option, output, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task SampleJobHelp_ShowsTheOptionsTypesDefaults_AndTheControlPlane()
    {
        var output = new StringWriter();
        int exitCode = await Monitor.Samples.Training.SampleJobCommand.InvokeAsync(["--help"], new InvocationConfiguration { Output = output }, TestContext.Current.CancellationToken);

        Assert.Equal(0, exitCode);
        Assert.Contains("--redis", output.ToString(), StringComparison.Ordinal);
        Assert.Contains("--kafka-property", output.ToString(), StringComparison.Ordinal);
        Assert.Contains($"[default: {new Monitor.Samples.Training.TrainingJobOptions().Steps}]", output.ToString(), StringComparison.Ordinal);
    }
}
