using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Monitor.Service;

/// <summary>The HTTPS certificate of the service's endpoints (see <see cref="MonitorServiceOptions.TlsCertificateFile"/>).</summary>
internal static class ServerCertificate
{
    /// <summary>Loads a PKCS#12 file (<c>.pfx</c>/<c>.p12</c>) or a PEM certificate with its key.</summary>
    /// <exception cref="ArgumentException">The files cannot be read as a certificate with a private key.</exception>
    public static X509Certificate2 Load(string certificateFile, string? keyFile)
    {
        X509Certificate2 certificate;
        try
        {
            string extension = Path.GetExtension(certificateFile);
            certificate = extension.Equals(".pfx", StringComparison.OrdinalIgnoreCase) || extension.Equals(".p12", StringComparison.OrdinalIgnoreCase)
                ? X509CertificateLoader.LoadPkcs12FromFile(certificateFile, password: null)
                : X509Certificate2.CreateFromPemFile(certificateFile, keyFile);
        }
        catch (Exception ex) when (ex is CryptographicException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            throw new ArgumentException($"TLS certificate '{certificateFile}'{(keyFile is null ? "" : $" with key '{keyFile}'")} cannot be loaded: {ex.Message}", ex);
        }

        if (!certificate.HasPrivateKey)
        {
            certificate.Dispose();
            throw new ArgumentException($"TLS certificate '{certificateFile}' has no private key (give --tls-key)");
        }

        return certificate;
    }
}
