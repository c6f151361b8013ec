using Monitor.Hosting;
using OpenTelemetry;
using OpenTelemetry.Trace;

namespace Monitor.IntegrationTests;

/// <summary>When the executables switch OTLP export on: only when an OTLP endpoint is set, never by default.</summary>
public sealed class OpenTelemetryExportTests
{
    [Theory]
    [InlineData(new string[0], false)]
    [InlineData(new[] { "OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317" }, true)]
    [InlineData(new[] { "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/v1/traces" }, true)]
    [InlineData(new[] { "OTEL_EXPORTER_OTLP_ENDPOINT", "  " }, false)]
    [InlineData(new[] { "OTEL_SERVICE_NAME", "svc", "OTEL_TRACES_SAMPLER", "always_on" }, false)]
    [InlineData(new[] { "OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317", "OTEL_SDK_DISABLED", "TRUE" }, false)]
    [InlineData(new[] { "OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317", "OTEL_SDK_DISABLED", "false" }, true)]
    [InlineData(new[] { "OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317", "OTEL_TRACES_EXPORTER", "none" }, false)]
    [InlineData(new[] { "OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317", "OTEL_TRACES_EXPORTER", "console, otlp" }, true)]
    [InlineData(new[] { "OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317", "OTEL_TRACES_EXPORTER", "" }, true)]
    public void IsEnabled_OnlyWithAnOtlpEndpoint_AndNotWhenSwitchedOff(string[] variables, bool enabled)
    {
        Dictionary<string, string> environment = Environment(variables);

        Assert.Equal(enabled, OpenTelemetryExport.IsEnabled(name => environment.GetValueOrDefault(name)));
    }

    [Fact]
    public void StartTracing_ReturnsNoProvider_WhenNoEndpointIsSet()
    {
        Assert.Null(OpenTelemetryExport.StartTracing("monitor-test", ["Monitor.IntegrationTests.Unused"], _ => null));
    }

    [Fact]
    public void StartTracing_BuildsAProviderNamedAfterTheHost_WhenAnEndpointIsSet()
    {
        Dictionary<string, string> environment = Environment(["OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1"]);

        // A source nobody uses: no span is exported, so nothing connects to the endpoint.
        using TracerProvider? provider = OpenTelemetryExport.StartTracing("monitor-test", ["Monitor.IntegrationTests.Unused"], name => environment.GetValueOrDefault(name));

        Assert.NotNull(provider);
        if (System.Environment.GetEnvironmentVariable("OTEL_SERVICE_NAME") is null
            && System.Environment.GetEnvironmentVariable("OTEL_RESOURCE_ATTRIBUTES")?.Contains("service.name", StringComparison.Ordinal) != true)
        {
            Assert.Contains(new KeyValuePair<string, object>("service.name", "monitor-test"), provider.GetResource().Attributes);
        }
    }

    private static Dictionary<string, string> Environment(string[] pairs)
    {
        var environment = new Dictionary<string, string>(StringComparer.Ordinal);
        for (int i = 0; i + 1 < pairs.Length; i += 2)
        {
            environment[pairs[i]] = pairs[i + 1];
        }

        return environment;
    }
}
