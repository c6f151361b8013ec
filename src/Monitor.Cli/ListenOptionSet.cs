using System.CommandLine;
using Monitor.Service;

namespace Monitor.Cli;

/// <summary>
/// <c>--listen</c>, <c>--tls-cert</c> and <c>--tls-key</c>: where a long-running command serves its
/// <see cref="OperationsEndpoints"/>. <c>monitor serve</c> and <c>monitor archive</c> take the same three options,
/// with the same default and meaning.
/// </summary>
internal sealed class ListenOptionSet
{
    /// <summary>The default address, the service's (<see cref="MonitorServiceOptions.ListenUrl"/>): http://127.0.0.1:9464.</summary>
    public static readonly string DefaultUrl = new MonitorServiceOptions().ListenUrl;

    /// <param name="endpoints">The endpoints served, for the help text (e.g. "/metrics, /healthz and /readyz").</param>
    public ListenOptionSet(string endpoints)
    {
        Listen = new Option<string>("--listen") { Description = $"Address of {endpoints}: http://HOST:PORT, or https://HOST:PORT with --tls-cert. Use 0.0.0.0 to accept connections from other hosts.", DefaultValueFactory = _ => DefaultUrl };
        TlsCertificate = new Option<FileInfo>("--tls-cert") { Description = "Server certificate for an https:// --listen: PEM (with --tls-key, or the key in the same file) or .pfx/.p12 without a password." };
        TlsKey = new Option<FileInfo>("--tls-key") { Description = "PEM private key of --tls-cert." };
        TlsCertificate.AcceptExistingOnly();
        TlsKey.AcceptExistingOnly();
    }

    public Option<string> Listen { get; }

    public Option<FileInfo> TlsCertificate { get; }

    public Option<FileInfo> TlsKey { get; }

    public IEnumerable<Option> All => [Listen, TlsCertificate, TlsKey];
}
