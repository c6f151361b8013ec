using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Monitor.Analysis;
using Monitor.Service.Notifications;


namespace Monitor.Service;

/// <summary>
/// <c>GET /api/alerts</c> (pending and firing alerts, filterable by <c>run</c> and <c>state</c>) and
/// <c>GET /api/alerts/{fingerprint}</c> (one alert; the <c>generatorURL</c> notifications link to). Read-only; open
/// unless the <c>/api</c> group requires a read token (see <see cref="ApiAuthorization"/>).
/// </summary>
internal static class AlertsApi
{
    /// <summary>Maps the endpoints under <paramref name="api"/> (the <c>/api</c> group).</summary>
    public static void Map(RouteGroupBuilder api, Func<IEnumerable<AlertTransition>> active)
    {
        api.MapGet("/alerts", (string? run, string? state) => Results.Text(
            "[" + string.Join(",", active()
                .Where(a => run is null || a.Identity[AlertLabels.Run] == run)
                .Where(a => state is null || string.Equals(a.State.ToString(), state, StringComparison.OrdinalIgnoreCase))
                .OrderBy(a => a.ActiveSince)
                .Select(AlertJson.Serialize)) + "]",
            "application/json"));
        api.MapGet("/alerts/{fingerprint}", (string fingerprint) =>
            active().FirstOrDefault(a => a.Identity.Fingerprint == fingerprint) is { } alert
                ? Results.Text(AlertJson.Serialize(alert), "application/json")
                : Results.NotFound(new { error = $"no pending or firing alert with fingerprint {fingerprint}" }));
    }
}
