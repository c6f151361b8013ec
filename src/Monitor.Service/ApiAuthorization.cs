using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace Monitor.Service;

/// <summary>
/// Bearer tokens of the <c>/api</c> endpoints: writes need the write token; reads need the read token or the write
/// token when a read token is configured, and are open otherwise. With no write token every write is refused.
/// </summary>
/// <remarks>
/// Both the configured and the presented token are hashed with SHA-256 before a fixed-time comparison, so neither the
/// content nor the length of a token leaks through timing. Thread-safe (immutable).
/// </remarks>
internal sealed class ApiAuthorization
{
    private const string Scheme = "Bearer ";
    private readonly byte[]? _write;
    private readonly byte[]? _read;

    public ApiAuthorization(string? writeToken, string? readToken)
    {
        _write = string.IsNullOrEmpty(writeToken) ? null : Hash(writeToken);
        _read = string.IsNullOrEmpty(readToken) ? null : Hash(readToken);
    }

    /// <summary>Null when the request may read; else the 401 answer.</summary>
    public IResult? RequireRead(HttpContext context)
    {
        if (_read is null)
        {
            return null;
        }

        byte[]? presented = Presented(context);
        // Both comparisons always run: which token matched must not show in the time taken either.
        bool read = Matches(_read, presented);
        bool write = Matches(_write, presented);
        return read | write ? null : Refuse(context, "a valid bearer token (the read or the write token) is required to read /api");
    }

    /// <summary>Null when the request may change something; else the 401 answer.</summary>
    public IResult? RequireWrite(HttpContext context)
    {
        if (_write is null)
        {
            return Refuse(context, "writes are disabled: the service has no API token configured (--api-token, --api-token-file or MONITOR_API_TOKEN)");
        }

        return Matches(_write, Presented(context)) ? null : Refuse(context, "a valid bearer token is required to change selections");
    }

    private static byte[]? Presented(HttpContext context)
    {
        string header = context.Request.Headers.Authorization.ToString();
        return header.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase) ? Hash(header[Scheme.Length..].Trim()) : null;
    }

    private static bool Matches(byte[]? expected, byte[]? presented) =>
        expected is not null && presented is not null && CryptographicOperations.FixedTimeEquals(expected, presented);

    private static byte[] Hash(string token) => SHA256.HashData(Encoding.UTF8.GetBytes(token));

    private static IResult Refuse(HttpContext context, string error)
    {
        context.Response.Headers.WWWAuthenticate = "Bearer";
        return Results.Json(new { error }, statusCode: StatusCodes.Status401Unauthorized);
    }
}
