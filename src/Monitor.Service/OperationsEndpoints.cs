using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Prometheus;

namespace Monitor.Service;

/// <summary>Whether a process is ready for traffic now, and a line saying why or why not.</summary>
/// <param name="detail">The reason, for people (the body of <c>/readyz</c>).</param>
/// <returns>True when ready.</returns>
public delegate bool ReadinessProbe(out string detail);

/// <summary>Options of <see cref="OperationsEndpoints"/>.</summary>
public sealed class OperationsEndpointsOptions
{
    /// <summary>Address to listen on: <c>http://HOST:PORT</c>, or <c>https://HOST:PORT</c> with <see cref="TlsCertificateFile"/>;
    /// port 0 picks a free one (see <see cref="OperationsEndpoints.BaseAddress"/>). Required.</summary>
    public required string ListenUrl { get; init; }

    /// <summary>Server certificate of an <c>https://</c> <see cref="ListenUrl"/>: PEM (with <see cref="TlsKeyFile"/>, or
    /// the key in the same file) or <c>.pfx</c>/<c>.p12</c> without a password. Default none.</summary>
    public string? TlsCertificateFile { get; init; }

    /// <summary>PEM private key of <see cref="TlsCertificateFile"/>. Default none.</summary>
    public string? TlsKeyFile { get; init; }

    /// <summary>What <c>/metrics</c> exposes. Required.</summary>
    public required CollectorRegistry Registry { get; init; }

    /// <summary>Why the process is broken (<c>/healthz</c> answers 503 with it), or null while it is healthy (200
    /// <c>ok</c>). Called on Kestrel threads: thread-safe and quick. Required.</summary>
    public required Func<string?> Failure { get; init; }

    /// <summary>What <c>/readyz</c> answers (200 <c>ready: ...</c> or 503 <c>not ready: ...</c>). Called on Kestrel
    /// threads: thread-safe and quick, no network call. Required.</summary>
    public required ReadinessProbe Readiness { get; init; }

    /// <summary>Maps further endpoints (the service's <c>/api</c>) before the server starts; default none.</summary>
    public Action<IEndpointRouteBuilder>? MapEndpoints { get; init; }

    /// <summary>Logging of ASP.NET Core; default none.</summary>
    public ILoggerFactory? LoggerFactory { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first unusable setting of the address and TLS files.</summary>
    public void Validate() => OperationsEndpoints.ValidateListen(ListenUrl, TlsCertificateFile, TlsKeyFile);
}

/// <summary>
/// The HTTP endpoints a long-running monitor process serves to its operator: <c>/metrics</c> (prometheus-net),
/// <c>/healthz</c> (liveness) and <c>/readyz</c> (readiness), plus whatever <see cref="OperationsEndpointsOptions.MapEndpoints"/>
/// adds, on Kestrel. Used by the service (<c>monitor serve</c>) and the archive (<c>monitor archive</c>), so both
/// answer probes and scrapes the same way.
/// </summary>
/// <remarks>Start with <see cref="StartAsync"/>; <see cref="DisposeAsync"/> stops the server and releases the
/// certificate (idempotent). Requests are served on Kestrel's threads.</remarks>
public sealed class OperationsEndpoints : IAsyncDisposable
{
    private readonly WebApplication _web;
    private readonly X509Certificate2? _certificate;
    private int _disposed;

    private OperationsEndpoints(WebApplication web, X509Certificate2? certificate)
    {
        _web = web;
        _certificate = certificate;
    }

    /// <summary>Where the endpoints listen (the real port when configured with port 0; <c>localhost</c> for a wildcard host).</summary>
    public Uri BaseAddress { get; private set; } = null!;

    /// <summary>Checks a listen address and its TLS files as <c>--listen</c>, <c>--tls-cert</c> and <c>--tls-key</c> take them.</summary>
    /// <exception cref="ArgumentException">Not an absolute http(s) URL; https without a certificate or http with one; a
    /// key without a certificate; a TLS file that does not exist.</exception>
    public static void ValidateListen(string listenUrl, string? tlsCertificateFile, string? tlsKeyFile)
    {
        if (!Uri.TryCreate(listenUrl, UriKind.Absolute, out Uri? listen) || (listen.Scheme != Uri.UriSchemeHttp && listen.Scheme != Uri.UriSchemeHttps))
        {
            throw new ArgumentException($"listen URL '{listenUrl}' is not an absolute http:// or https:// URL");
        }

        if (listen.Scheme == Uri.UriSchemeHttps && tlsCertificateFile is null)
        {
            throw new ArgumentException($"listen URL '{listenUrl}' is https but no TLS certificate is given (--tls-cert)");
        }

        if (listen.Scheme == Uri.UriSchemeHttp && (tlsCertificateFile ?? tlsKeyFile) is not null)
        {
            throw new ArgumentException($"a TLS certificate is given but the listen URL '{listenUrl}' is http://; use https://");
        }

        if (tlsKeyFile is not null && tlsCertificateFile is null)
        {
            throw new ArgumentException("a TLS key is given without a certificate (--tls-cert)");
        }

        foreach (string? file in (string?[])[tlsCertificateFile, tlsKeyFile])
        {
            if (file is not null && !File.Exists(file))
            {
                throw new ArgumentException($"TLS file '{file}' does not exist");
            }
        }
    }

    /// <summary>Validates the options, loads the certificate, maps the endpoints and starts listening.</summary>
    /// <exception cref="ArgumentException">An option is unusable, or the TLS certificate cannot be loaded.</exception>
    /// <exception cref="IOException">The address is in use or cannot be bound.</exception>
    public static async Task<OperationsEndpoints> StartAsync(OperationsEndpointsOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(options.LoggerFactory ?? NullLoggerFactory.Instance);
        builder.WebHost.UseUrls(options.ListenUrl);
        X509Certificate2? certificate = null;
        if (options.TlsCertificateFile is { } certificateFile)
        {
            X509Certificate2 loaded = certificate = ServerCertificate.Load(certificateFile, options.TlsKeyFile);
            // The slim builder leaves HTTPS out unless asked for.
            builder.WebHost.UseKestrelHttpsConfiguration();
            builder.WebHost.ConfigureKestrel(kestrel => kestrel.ConfigureHttpsDefaults(https => https.ServerCertificate = loaded));
        }

        WebApplication web = builder.Build();
        var endpoints = new OperationsEndpoints(web, certificate);
        try
        {
            web.MapMetrics("/metrics", options.Registry);
            Func<string?> failure = options.Failure;
            ReadinessProbe readiness = options.Readiness;
            web.MapGet("/healthz", () => failure() is { } fault
                ? Results.Text(fault, statusCode: StatusCodes.Status503ServiceUnavailable)
                : Results.Text("ok"));
            web.MapGet("/readyz", () => readiness(out string detail)
                ? Results.Text("ready: " + detail)
                : Results.Text("not ready: " + detail, statusCode: StatusCodes.Status503ServiceUnavailable));
            options.MapEndpoints?.Invoke(web);
            await web.StartAsync(cancellationToken).ConfigureAwait(false);
            string address = web.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            endpoints.BaseAddress = new Uri(address.Replace("[::]", "localhost", StringComparison.Ordinal).Replace("0.0.0.0", "localhost", StringComparison.Ordinal));
            return endpoints;
        }
        catch
        {
            await endpoints.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Stops the server (in-flight requests end) and releases the certificate. Idempotent.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _web.StopAsync().ConfigureAwait(false);
        await _web.DisposeAsync().ConfigureAwait(false);
        _certificate?.Dispose();
    }
}
