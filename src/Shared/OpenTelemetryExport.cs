using OpenTelemetry;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Monitor.Hosting;

/// <summary>
/// OTLP trace export for Monitor's executables (<c>monitor serve</c>, <c>monitor demo</c>, the sample job), compiled
/// into each of them (libraries only emit spans through <see cref="System.Diagnostics.ActivitySource"/>). Off unless
/// an OTLP endpoint is configured by the standard variables; everything else is left to the OpenTelemetry SDK, which
/// reads the <c>OTEL_*</c> variables itself (protocol, headers, timeout, sampler, batch sizes).
/// </summary>
/// <remarks>
/// <para>On when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> or <c>OTEL_EXPORTER_OTLP_TRACES_ENDPOINT</c> is set and neither
/// <c>OTEL_SDK_DISABLED=true</c> nor an <c>OTEL_TRACES_EXPORTER</c> without <c>otlp</c> (e.g. <c>none</c>) says
/// otherwise.</para>
/// <para>Resource: <c>service.name</c> is the host's default unless <c>OTEL_SERVICE_NAME</c> (or <c>service.name</c> in
/// <c>OTEL_RESOURCE_ATTRIBUTES</c>) names it; <c>OTEL_RESOURCE_ATTRIBUTES</c> adds the rest. Sampler:
/// <c>OTEL_TRACES_SAMPLER</c>/<c>OTEL_TRACES_SAMPLER_ARG</c>, default parent-based always-on. Spans are exported in
/// batches from a background thread; disposing the provider flushes them.</para>
/// </remarks>
internal static class OpenTelemetryExport
{
    /// <summary>Whether the variables ask for OTLP trace export (see the remarks).</summary>
    public static bool IsEnabled(Func<string, string?> variable)
    {
        ArgumentNullException.ThrowIfNull(variable);
        if (string.Equals(variable("OTEL_SDK_DISABLED")?.Trim(), "true", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        if (variable("OTEL_TRACES_EXPORTER") is { } exporters && !string.IsNullOrWhiteSpace(exporters)
            && !exporters.Split(',').Any(e => string.Equals(e.Trim(), "otlp", StringComparison.OrdinalIgnoreCase)))
        {
            return false;
        }

        return !string.IsNullOrWhiteSpace(variable("OTEL_EXPORTER_OTLP_ENDPOINT"))
            || !string.IsNullOrWhiteSpace(variable("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"));
    }

    /// <summary>Starts exporting the spans of <paramref name="sources"/> when the environment asks for it.</summary>
    /// <param name="defaultServiceName"><c>service.name</c> unless the environment names the service.</param>
    /// <param name="sources">Activity source names, e.g. <c>Monitor.Tracing</c>, <c>Monitor.Service</c>.</param>
    /// <returns>The provider (dispose it at exit to flush), or null when export is off.</returns>
    public static TracerProvider? StartTracing(string defaultServiceName, params string[] sources) =>
        StartTracing(defaultServiceName, sources, Environment.GetEnvironmentVariable);

    /// <summary>As <see cref="StartTracing(string, string[])"/>, deciding with <paramref name="variable"/> (tests); the
    /// SDK still reads its settings from the process environment.</summary>
    public static TracerProvider? StartTracing(string defaultServiceName, IReadOnlyList<string> sources, Func<string, string?> variable)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(defaultServiceName);
        ArgumentNullException.ThrowIfNull(sources);
        if (!IsEnabled(variable))
        {
            return null;
        }

        return Sdk.CreateTracerProviderBuilder()
            // Added last, the environment's attributes override the default service name (Resource.Merge: later wins).
            .SetResourceBuilder(ResourceBuilder.CreateEmpty().AddService(defaultServiceName).AddTelemetrySdk().AddEnvironmentVariableDetector())
            .AddSource([.. sources])
            .AddOtlpExporter()
            .Build();
    }
}
