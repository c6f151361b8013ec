using StackExchange.Redis;

namespace Monitor.ControlPlane;

/// <summary>
/// How every Monitor component reads a Redis connection string (workers, <c>monitor trace</c>, the service): a
/// StackExchange.Redis configuration string, plus <see cref="CaVariable"/> for a server certificate from a private CA,
/// which the string alone cannot express.
/// </summary>
public static class RedisConnection
{
    /// <summary>
    /// Environment variable naming a PEM file with the CA that signed the Redis server's TLS certificate (with
    /// <c>ssl=true</c> in the connection string). Unset: the system's trust store decides, as StackExchange.Redis does.
    /// </summary>
    public const string CaVariable = "MONITOR_REDIS_CA";

    /// <summary>Parses <paramref name="connection"/> and applies <see cref="CaVariable"/>.</summary>
    /// <exception cref="ArgumentException">The string does not parse, or the CA file named by <see cref="CaVariable"/> does not exist.</exception>
    public static ConfigurationOptions Parse(string connection)
    {
        ConfigurationOptions configuration = ConfigurationOptions.Parse(connection);
        if (Environment.GetEnvironmentVariable(CaVariable) is { Length: > 0 } ca)
        {
            if (!File.Exists(ca))
            {
                throw new ArgumentException($"{CaVariable} names '{ca}', which does not exist");
            }

            configuration.TrustIssuer(ca);
        }

        return configuration;
    }
}
