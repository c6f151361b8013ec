using System.Collections.Concurrent;
using System.Globalization;
using Monitor.Analysis;
using Monitor.Service.Notifications;

namespace Monitor.Service;

/// <summary>
/// The alerts this replica holds, pending or firing, by fingerprint, and the three ways one comes and goes: a
/// transition the engine raised, an alert restored from saved state (active again, nothing sent), and an alert handed
/// over to the replica that now owns its key (gone here, nothing sent). Keeps <c>monitor_alerts</c> and the
/// Alertmanager resend set in step with it.
/// </summary>
/// <remarks>Changes on the pipeline thread; <see cref="Active"/> may be read from any thread (a snapshot).</remarks>
internal sealed class AlertBook(ServiceMetrics metrics, AlertDispatcher notifications)
{
    private readonly ConcurrentDictionary<string, AlertTransition> _active = new(StringComparer.Ordinal);

    /// <summary>The alerts pending or firing now (a live view, safe to enumerate from any thread).</summary>
    public ICollection<AlertTransition> Active => _active.Values;

    /// <summary>The (run, rank) key of an alert, from its labels; null for an alert without a rank.</summary>
    public static (string Run, uint Rank)? KeyOf(AlertTransition transition) =>
        uint.TryParse(transition.Identity[AlertLabels.Rank], NumberStyles.None, CultureInfo.InvariantCulture, out uint rank)
            ? (transition.Identity[AlertLabels.Run], rank)
            : null;

    /// <summary>A transition the engine raised (its notification is the caller's business).</summary>
    public void Changed(AlertTransition transition)
    {
        metrics.Alert(transition);
        if (transition.State == AlertState.Inactive)
        {
            _active.TryRemove(transition.Identity.Fingerprint, out _);
        }
        else
        {
            _active[transition.Identity.Fingerprint] = transition;
        }
    }

    /// <summary>An alert restored from saved state: active again, re-sent to Alertmanager from now on, not notified.</summary>
    public void Restored(AlertTransition alert)
    {
        _active[alert.Identity.Fingerprint] = alert;
        metrics.AlertRestored(alert);
        notifications.Restored(alert);
    }

    /// <summary>An alert whose key another replica now owns: gone from here without a resolution.</summary>
    public void HandedOver(AlertTransition alert)
    {
        _active.TryRemove(alert.Identity.Fingerprint, out _);
        metrics.AlertHandedOver(alert);
        notifications.HandedOver(alert);
    }
}
