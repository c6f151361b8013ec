using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Monitor.IntegrationTests;

/// <summary>Polling with a deadline instead of sleeping.</summary>
internal static class Eventually
{
    /// <summary>Polls <paramref name="condition"/> every 20 ms until it holds; fails after <paramref name="seconds"/>.</summary>
    /// <param name="condition">What must become true.</param>
    /// <param name="what">The condition in words, for the failure message.</param>
    /// <param name="seconds">The deadline.</param>
    /// <param name="explain">What the failure message adds when the deadline passes (the servers' output, say).</param>
    public static async Task TrueAsync(Func<bool> condition, string what, double seconds = 60, Func<string>? explain = null)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed.TotalSeconds >= seconds)
            {
                Assert.Fail($"timed out after {seconds} s waiting until {what}" + (explain is null ? "" : "\n" + explain()));
            }

            await Task.Delay(20, TestContext.Current.CancellationToken);
        }
    }
}

internal static class Ports
{
    /// <summary>A TCP port free at the time of the call on 127.0.0.1.</summary>
    public static int Free()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

internal static class Prometheus
{
    /// <summary>Values of every sample whose line starts with <paramref name="prefix"/>.</summary>
    public static IReadOnlyList<double> Samples(string exposition, string prefix) =>
        exposition.Split('\n')
            .Where(l => l.StartsWith(prefix, StringComparison.Ordinal))
            .Select(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture))
            .ToList();
}
