using Microsoft.Extensions.Logging;
using Monitor.Analysis;
using Monitor.Contracts;
using Monitor.ControlPlane;
using StackExchange.Redis;

namespace Monitor.Service;

/// <summary>
/// Runs a firing alert's actions (<c>actions: [stop]</c>): a stop command for the alert's run through the control
/// plane, issued off the analysis thread and counted in <c>monitor_actions_total</c> by result.
/// </summary>
/// <remarks>
/// <see cref="Run"/> is called on the pipeline thread and never blocks or throws: without a control plane the action
/// is counted as <c>no_control_plane</c> and logged; a Redis failure as <c>failed</c>.
/// </remarks>
internal sealed class AlertActions(ServiceMetrics metrics, TimeProvider timeProvider, ILogger logger)
{
    /// <summary>The control plane, once connected (none: actions cannot run).</summary>
    public SelectionStore? Store { get; set; }

    /// <summary>Runs the actions of <paramref name="transition"/> if it is the one that started it firing.</summary>
    public void Run(AlertTransition transition)
    {
        if (transition.State != AlertState.Firing || transition.PreviousState == AlertState.Firing)
        {
            return;
        }

        foreach (string action in transition.Actions)
        {
            if (action != "stop")
            {
                continue;
            }

            string run = transition.Identity[AlertLabels.Run];
            if (Store is not { } store)
            {
                metrics.Action(action, "no_control_plane");
                LogError(null, $"Alert {transition.RuleName} asks to stop run '{run}', but the service has no control plane (--redis)");
                continue;
            }

            var command = new RunCommand
            {
                Command = "stop",
                Reason = $"{transition.RuleName} fired at step {transition.Step}: {transition.Description}",
                IssuedBy = $"alert {transition.RuleName} ({transition.Identity.Fingerprint})",
                IssuedAt = timeProvider.GetUtcNow(),
            };
            // Off the analysis thread: Redis latency must not hold up evaluation.
            _ = Task.Run(async () =>
            {
                try
                {
                    await store.IssueCommandAsync(run, command).ConfigureAwait(false);
                    metrics.Action(action, "issued");
                }
                catch (Exception ex) when (ex is RedisException or TimeoutException)
                {
                    metrics.Action(action, "failed");
                    LogError(ex, $"Could not issue the stop command for run '{run}'");
                }
            });
        }
    }

    private void LogError(Exception? exception, string message)
    {
#pragma warning disable CA1848, CA2254 // Rare path; the message is data.
        logger.LogError(exception, message);
#pragma warning restore CA1848, CA2254
    }
}
