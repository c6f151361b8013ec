namespace Monitor.IntegrationTests;

/// <summary>
/// dashboards/prometheus/monitor.rules.yaml passes <c>promtool check rules</c> and its unit tests
/// (monitor.rules.test.yaml) pass <c>promtool test rules</c>, with Debian's promtool (the prometheus package).
/// </summary>
public sealed class PrometheusRulesTests
{
    private static string RulesDirectory => Path.Combine(GrafanaDashboard.Directory, "prometheus");

    [Fact]
    public async Task PromtoolCheckRules_Succeeds()
    {
        (int exitCode, string output) = await PrometheusProcess.PromtoolAsync(["check", "rules", "monitor.rules.yaml"], RulesDirectory, TestContext.Current.CancellationToken);

        Assert.True(exitCode == 0, "promtool check rules failed:\n" + output);
        Assert.Contains("SUCCESS", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PromtoolTestRules_Succeeds()
    {
        (int exitCode, string output) = await PrometheusProcess.PromtoolAsync(["test", "rules", "monitor.rules.test.yaml"], RulesDirectory, TestContext.Current.CancellationToken);

        Assert.True(exitCode == 0, "promtool test rules failed:\n" + output);
        Assert.Contains("SUCCESS", output, StringComparison.Ordinal);
    }
}
