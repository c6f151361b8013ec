using System.Collections.Concurrent;
using System.Globalization;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Monitor.Analysis;
using Monitor.Contracts.Transport;

namespace Monitor.Service.Notifications;

/// <summary>
/// Sends alert transitions to Alertmanager (API v2, as Prometheus does), to generic webhooks and to the alerts
/// Kafka topic, from background tasks. The payloads and policies are described in Notifications/README.md.
/// </summary>
/// <remarks>
/// <para><see cref="Publish"/> is called on the analysis thread: it never blocks and never throws. It puts the
/// transition in a bounded queue (a full queue drops it and counts it in <see cref="NotificationStatistics.Dropped"/>).
/// A router task takes transitions from the queue and hands them to one backlog per target; every target has its own
/// sender task, with its own retries, so a failing target holds up neither the others nor the analysis.</para>
/// <para>Alertmanager: firing alerts are kept in a set by fingerprint and sent again every
/// <see cref="NotificationOptions.ResendInterval"/> with <c>endsAt = now + 4 × ResendInterval</c>; a resolution is sent
/// once with <c>endsAt</c> = the resolution time and removes the alert from the set. Pending transitions are not sent.
/// The set is updated by <see cref="Publish"/> itself, so it is right even when the queue drops transitions, and a
/// resolution the queue dropped is sent at the next resend tick.</para>
/// <para>Webhooks get every firing and resolved transition once. The alerts topic gets every transition (pending ones
/// included), key = fingerprint.</para>
/// <para><see cref="DisposeAsync"/> stops accepting transitions, sends what is queued (one more attempt per request,
/// no backoff) for at most <see cref="NotificationOptions.ShutdownTimeout"/>, then stops. Firing alerts are not
/// resolved on shutdown: Alertmanager resolves them at their <c>endsAt</c> unless another instance resends them.
/// The producer is not owned: dispose it after the dispatcher.</para>
/// </remarks>
public sealed class AlertDispatcher : IAsyncDisposable
{
    // Rate limit of repeated log messages per target.
    private static readonly TimeSpan LogInterval = TimeSpan.FromSeconds(30);

    private readonly NotificationOptions _options;
    private readonly TimeProvider _time;
    private readonly RateLimitedLog _log;
    private readonly HttpClient _http;
    private readonly CancellationTokenSource _draining = new();
    private readonly CancellationTokenSource _abort = new();
    private readonly Channel<Routed?> _inbox;
    private readonly List<HttpTarget> _alertmanagers = [];
    private readonly List<HttpTarget> _webhooks = [];
    private readonly KafkaTarget? _kafka;
    private readonly TargetCounters _alertmanagerCounters = new(), _webhookCounters = new(), _kafkaCounters = new();
    private readonly ConcurrentDictionary<string, AlertTransition> _firing = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, AlertTransition> _lostResolutions = new(StringComparer.Ordinal);
    private readonly string? _generatorUrlBase;
    private ITimer? _resendTimer;
    private Task? _router;
    private Task[] _senders = [];
    private long _queued, _dropped, _depth;
    private int _tickRequested, _started, _disposed;

    /// <summary>Creates the dispatcher and starts its background tasks.</summary>
    /// <param name="options">Validated here.</param>
    /// <param name="producer">Transport of the alerts topic; null: no Kafka messages. Not owned (dispose it after
    /// the dispatcher). Its delivery callbacks only count.</param>
    /// <param name="timeProvider">Clock of the resend timer, backoff waits and <c>endsAt</c>; default
    /// <see cref="TimeProvider.System"/>. HTTP request timeouts use the system clock.</param>
    /// <param name="logger">Failures, at most one line per target per 30 s; default none.</param>
    /// <exception cref="ArgumentException">Invalid options.</exception>
    public AlertDispatcher(NotificationOptions options, IRecordProducer? producer = null, TimeProvider? timeProvider = null, ILogger? logger = null)
        : this(options, producer, timeProvider, logger, start: true)
    {
    }

    /// <summary>Creates the dispatcher; with <paramref name="start"/> false nothing consumes the queue until
    /// <see cref="Start"/> (tests fill the queue that way).</summary>
    internal AlertDispatcher(NotificationOptions options, IRecordProducer? producer, TimeProvider? timeProvider, ILogger? logger, bool start)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _time = timeProvider ?? TimeProvider.System;
        _log = new RateLimitedLog(logger ?? NullLogger.Instance, _time, LogInterval);
        _http = new HttpClient(new SocketsHttpHandler
        {
            // Re-resolve DNS now and then: Alertmanager replicas and webhook hosts move.
            PooledConnectionLifetime = TimeSpan.FromMinutes(2),
            ConnectTimeout = options.RequestTimeout,
        })
        {
            Timeout = options.RequestTimeout,
        };
        _http.DefaultRequestHeaders.UserAgent.ParseAdd("Monitor-AlertDispatcher/1.0");
        _inbox = Channel.CreateUnbounded<Routed?>(new UnboundedChannelOptions
        {
            SingleReader = true,
            // Never run the router inline on the analysis thread.
            AllowSynchronousContinuations = false,
        });
        _generatorUrlBase = options.GeneratorUrlBase?.AbsoluteUri.TrimEnd('/');

        var context = new SenderContext(_http, options, _time, _log, _draining.Token, _abort.Token);
        for (int i = 0; i < options.AlertmanagerUrls.Count; i++)
        {
            Uri url = options.AlertmanagerUrls[i];
            _alertmanagers.Add(new HttpTarget(TargetKind.Alertmanager, new Uri(url.AbsoluteUri.TrimEnd('/') + "/api/v2/alerts"), null,
                $"alertmanager #{i + 1} ({Origin(url)})", context, _alertmanagerCounters));
        }

        for (int i = 0; i < options.Webhooks.Count; i++)
        {
            WebhookTarget webhook = options.Webhooks[i];
            _webhooks.Add(new HttpTarget(TargetKind.Webhook, webhook.Url, webhook, $"webhook #{i + 1} ({Origin(webhook.Url)})", context, _webhookCounters));
        }

        if (producer is not null)
        {
            _kafka = new KafkaTarget(producer, context, _kafkaCounters);
        }

        if (start)
        {
            Start();
        }
    }

    /// <summary>Counters so far.</summary>
    public NotificationStatistics Statistics => new(
        Interlocked.Read(ref _queued), Interlocked.Read(ref _dropped), Math.Max(0, Interlocked.Read(ref _depth)), _firing.Count,
        _alertmanagerCounters.Snapshot(), _webhookCounters.Snapshot(), _kafkaCounters.Snapshot());

    private bool HasHttpTargets => _alertmanagers.Count > 0 || _webhooks.Count > 0;

    /// <summary>
    /// Hands one transition over for sending. Never blocks and never throws (safe on the analysis thread): when the
    /// queue is full, or after <see cref="DisposeAsync"/>, the transition is dropped and counted. Transitions no target
    /// wants (pending ones without a producer, or any without targets) are ignored and not counted.
    /// </summary>
    /// <param name="transition">The transition.</param>
    /// <param name="webhooksSettled">Called once every webhook is done with the transition (accepted, refused, dropped
    /// or given up after the retries; at once when no webhook wants it or it could not be queued), on a sender's thread
    /// or on the caller's; not for what is abandoned at the shutdown timeout. Default none. What a host with durable
    /// state needs to know which notifications it must send again after a crash (see <see cref="Redeliver"/>).</param>
    public void Publish(AlertTransition transition, Action? webhooksSettled = null)
    {
        bool queued = false;
        try
        {
            if (transition is null || Volatile.Read(ref _disposed) != 0)
            {
                Interlocked.Increment(ref _dropped);
                return;
            }

            bool firing = transition.State == AlertState.Firing;
            bool resolution = transition.IsResolution;
            if (_kafka is null && !(HasHttpTargets && (firing || resolution)))
            {
                return;
            }

            string fingerprint = transition.Identity.Fingerprint;
            if (firing)
            {
                if (_alertmanagers.Count > 0)
                {
                    _firing[fingerprint] = transition;
                }

                _lostResolutions.TryRemove(fingerprint, out _);
            }
            else if (resolution)
            {
                _firing.TryRemove(fingerprint, out _);
            }

            Action? settled = _webhooks.Count > 0 && (firing || resolution) ? webhooksSettled : null;
            if (Interlocked.Increment(ref _depth) > _options.QueueCapacity || !_inbox.Writer.TryWrite(new Routed(transition, settled, WebhooksOnly: false)))
            {
                Interlocked.Decrement(ref _depth);
                Interlocked.Increment(ref _dropped);
                if (resolution && HasHttpTargets)
                {
                    // Bounded by the firing alerts: sent at the next resend tick, so Alertmanager and webhooks still
                    // learn that the alert resolved.
                    _lostResolutions[fingerprint] = transition;
                }

                return;
            }

            Interlocked.Increment(ref _queued);
            queued = settled is not null;
        }
#pragma warning disable CA1031 // Publish runs on the analysis thread and must never throw.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Interlocked.Increment(ref _dropped);
            _log.Error("publish", ex, "An alert transition could not be queued for notification");
        }
        finally
        {
            if (!queued)
            {
                webhooksSettled?.Invoke();
            }
        }
    }

    /// <summary>
    /// Sends a firing or resolved transition to the webhooks only, again: one that a host committed but whose delivery
    /// it cannot know happened (restored from durable state after its previous owner died). Webhooks may so receive a
    /// notification twice, never lose one. <paramref name="webhooksSettled"/> as for
    /// <see cref="Publish"/>. Never blocks and never throws.
    /// </summary>
    public void Redeliver(AlertTransition transition, Action webhooksSettled)
    {
        ArgumentNullException.ThrowIfNull(webhooksSettled);
        if (transition is null || _webhooks.Count == 0 || Volatile.Read(ref _disposed) != 0
            || !(transition.State == AlertState.Firing || transition.IsResolution)
            || !_inbox.Writer.TryWrite(new Routed(transition, webhooksSettled, WebhooksOnly: true)))
        {
            webhooksSettled();
            return;
        }

        Interlocked.Increment(ref _depth);
        Interlocked.Increment(ref _queued);
    }

    /// <summary>
    /// Takes over an alert restored from saved state (<c>serve --state-dir</c>): a firing one joins the set re-sent to
    /// Alertmanager every resend interval, as if it had fired in this process, but nothing is sent now (it was sent
    /// before the restart). Never blocks and never throws; same thread as <see cref="Publish"/>.
    /// </summary>
    public void Restored(AlertTransition transition)
    {
        if (transition is { State: AlertState.Firing } && _alertmanagers.Count > 0 && Volatile.Read(ref _disposed) == 0)
        {
            _firing[transition.Identity.Fingerprint] = transition;
        }
    }

    /// <summary>
    /// Lets go of an alert whose key another replica now owns (its partition was revoked): it leaves the set re-sent to
    /// Alertmanager, and nothing is sent (the new owner re-sends and resolves it). Never blocks and never throws; same
    /// thread as <see cref="Publish"/>.
    /// </summary>
    public void HandedOver(AlertTransition transition)
    {
        if (transition is not null)
        {
            _firing.TryRemove(transition.Identity.Fingerprint, out _);
            _lostResolutions.TryRemove(transition.Identity.Fingerprint, out _);
        }
    }

    /// <summary>
    /// The message the alerts topic gets for <paramref name="transition"/> (key: its fingerprint), as this dispatcher
    /// would send it: for a host that writes the alerts topic itself, inside a Kafka transaction.
    /// </summary>
    /// <exception cref="ArgumentException">The transition cannot be encoded as JSON (lone surrogates).</exception>
    public (string Key, byte[] Value) KafkaMessage(AlertTransition transition)
    {
        ArgumentNullException.ThrowIfNull(transition);
        return (transition.Identity.Fingerprint, AlertPayloads.Kafka(transition, Labels(transition.Identity), GeneratorUrl(transition.Identity.Fingerprint)));
    }

    /// <summary>Stops accepting transitions, sends what is queued within the shutdown timeout, and releases the
    /// HTTP client. Idempotent.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        if (_resendTimer is not null)
        {
            await _resendTimer.DisposeAsync();
        }

        _inbox.Writer.TryComplete();
        await _draining.CancelAsync();
        if (_router is not null)
        {
            await _router;
            try
            {
                await Task.WhenAll(_senders).WaitAsync(_options.ShutdownTimeout, _time);
            }
            catch (TimeoutException)
            {
                await _abort.CancelAsync();
                await Task.WhenAll(_senders);
            }
        }

        _http.Dispose();
        _draining.Dispose();
        _abort.Dispose();
    }

    /// <summary>Starts the router, the senders and the resend timer (once).</summary>
    internal void Start()
    {
        if (Interlocked.Exchange(ref _started, 1) != 0)
        {
            return;
        }

        var senders = new List<Task>();
        foreach (HttpTarget target in _alertmanagers.Concat(_webhooks))
        {
            senders.Add(Task.Run(target.RunAsync));
        }

        if (_kafka is not null)
        {
            senders.Add(Task.Run(_kafka.RunAsync));
        }

        _senders = [.. senders];
        _router = Task.Run(RouteAsync);
        if (HasHttpTargets)
        {
            _resendTimer = _time.CreateTimer(_ => RequestTick(), null, _options.ResendInterval, _options.ResendInterval);
        }
    }

    private void RequestTick()
    {
        // At most one tick waits in the queue; it is not subject to the capacity (it carries no transition).
        if (Interlocked.Exchange(ref _tickRequested, 1) == 0)
        {
            _inbox.Writer.TryWrite(null);
        }
    }

    private async Task RouteAsync()
    {
        await foreach (Routed? routed in _inbox.Reader.ReadAllAsync())
        {
            try
            {
                if (routed is null)
                {
                    Volatile.Write(ref _tickRequested, 0);
                    Tick();
                }
                else
                {
                    Interlocked.Decrement(ref _depth);
                    Route(routed);
                }
            }
#pragma warning disable CA1031 // One bad transition must not stop the notifications of all others.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                _log.Error("router", ex, $"Alert transition {routed?.Transition.Identity} could not be routed");
                routed?.WebhooksSettled?.Invoke();
            }
        }

        foreach (HttpTarget target in _alertmanagers.Concat(_webhooks))
        {
            target.Complete();
        }

        _kafka?.Complete();
    }

    private void Route(Routed routed)
    {
        AlertTransition transition = routed.Transition;
        IReadOnlyList<KeyValuePair<string, string>> labels = Labels(transition.Identity);
        string? generatorUrl = GeneratorUrl(transition.Identity.Fingerprint);
        if (routed.WebhooksOnly)
        {
            PreparedAlert again = Prepare(transition, labels, generatorUrl, resolved: transition.State != AlertState.Firing) with { Ticket = Ticket(routed) };
            SendToWebhooks(again, IsEncodable(again));
            return;
        }

        if (_kafka is not null)
        {
            try
            {
                _kafka.Enqueue(transition.Identity.Fingerprint, AlertPayloads.Kafka(transition, labels, generatorUrl));
            }
            catch (Exception ex) when (ex is ArgumentException or InvalidOperationException)
            {
                // Text JSON cannot carry (lone surrogates): counted as a failed message.
                _kafkaCounters.Failed(1);
                _log.Error("kafka", ex, $"Alert transition {transition.Identity} cannot be encoded as JSON");
            }
        }

        bool firing = transition.State == AlertState.Firing;
        if (!firing && !transition.IsResolution)
        {
            return;
        }

        PreparedAlert alert = Prepare(transition, labels, generatorUrl, resolved: !firing) with { Ticket = Ticket(routed) };
        bool encodable = IsEncodable(alert);
        // A firing transition whose alert has resolved since (its resolution is queued or was sent at a tick) is not
        // sent to Alertmanager: it would revive the alert there until endsAt.
        if (!firing || _firing.ContainsKey(transition.Identity.Fingerprint))
        {
            SendToAlertmanagers(alert, encodable);
        }

        SendToWebhooks(alert, encodable);
    }

    private void Tick()
    {
        if (_alertmanagers.Count > 0)
        {
            foreach (AlertTransition transition in _firing.Values)
            {
                IReadOnlyList<KeyValuePair<string, string>> labels = Labels(transition.Identity);
                PreparedAlert alert = Prepare(transition, labels, GeneratorUrl(transition.Identity.Fingerprint), resolved: false);
                SendToAlertmanagers(alert, IsEncodable(alert));
            }
        }

        foreach (string fingerprint in _lostResolutions.Keys)
        {
            if (_lostResolutions.TryRemove(fingerprint, out AlertTransition? transition))
            {
                PreparedAlert alert = Prepare(transition, Labels(transition.Identity), GeneratorUrl(fingerprint), resolved: true);
                bool encodable = IsEncodable(alert);
                SendToAlertmanagers(alert, encodable);
                SendToWebhooks(alert, encodable);
            }
        }
    }

    private DeliveryTicket? Ticket(Routed routed) =>
        routed.WebhooksSettled is { } settled ? new DeliveryTicket(_webhooks.Count, settled) : null;

    private void SendToWebhooks(PreparedAlert alert, bool encodable)
    {
        foreach (HttpTarget webhook in _webhooks)
        {
            if (encodable && webhook.Enqueue(alert))
            {
                continue;
            }

            if (!encodable)
            {
                _webhookCounters.Failed(1);
            }

            alert.Ticket?.Settle();
        }
    }

    private void SendToAlertmanagers(PreparedAlert alert, bool encodable)
    {
        if (_alertmanagers.Count == 0)
        {
            return;
        }

        // Alertmanager refuses a whole request for one alert with an invalid label or annotation name: such an alert
        // is counted and logged here instead, so it does not take the others down with it.
        if (!encodable || !HasValidNames(alert))
        {
            _alertmanagerCounters.Failed(_alertmanagers.Count);
            _log.Error("alertmanager-labels", null,
                $"Alert {alert.Fingerprint} {{{string.Join(", ", alert.Labels.Select(l => l.Key))}}} is not sent to Alertmanager: a label or annotation name is not [a-zA-Z_][a-zA-Z0-9_]*, or a text is not valid Unicode");
            return;
        }

        foreach (HttpTarget target in _alertmanagers)
        {
            target.Enqueue(alert);
        }
    }

    private PreparedAlert Prepare(AlertTransition transition, IReadOnlyList<KeyValuePair<string, string>> labels, string? generatorUrl, bool resolved)
    {
        // Event times come from the workers' clocks. Alertmanager refuses endsAt before startsAt and would keep an
        // alert "resolved in the future" firing: clamp both to this clock.
        DateTimeOffset now = _time.GetUtcNow();
        DateTimeOffset startsAt = transition.ActiveSince < now ? transition.ActiveSince : now;
        DateTimeOffset? endsAt = null;
        if (resolved)
        {
            DateTimeOffset at = transition.At < now ? transition.At : now;
            endsAt = at < startsAt ? startsAt : at;
        }

        return new PreparedAlert(transition.Identity.Fingerprint, resolved, labels, AlertPayloads.Sorted(transition.Annotations),
            startsAt, endsAt, generatorUrl, transition.Step, transition.Value, transition.Threshold, transition.At, transition.TraceContext);
    }

    /// <summary>The alert's labels plus the external labels it lacks, without empty values (empty = absent, as in Prometheus), sorted.</summary>
    private IReadOnlyList<KeyValuePair<string, string>> Labels(AlertIdentity identity)
    {
        var labels = new Dictionary<string, string>(identity.Labels, StringComparer.Ordinal);
        foreach ((string name, string value) in _options.ExternalLabels)
        {
            labels.TryAdd(name, value);
        }

        return AlertPayloads.Sorted(labels.Where(l => l.Value.Length > 0));
    }

    private string? GeneratorUrl(string fingerprint) =>
        _generatorUrlBase is null ? null : string.Create(CultureInfo.InvariantCulture, $"{_generatorUrlBase}/api/alerts/{fingerprint}");

    private static bool HasValidNames(PreparedAlert alert) =>
        alert.Labels.All(l => NotificationOptions.IsValidLabelName(l.Key)) && alert.Annotations.All(a => NotificationOptions.IsValidLabelName(a.Key));

    /// <summary>False when a text has a lone UTF-16 surrogate, which JSON text cannot carry.</summary>
    private static bool IsEncodable(PreparedAlert alert) =>
        alert.Labels.Concat(alert.Annotations).All(p => IsWellFormed(p.Key) && IsWellFormed(p.Value));

    private static bool IsWellFormed(string text)
    {
        for (int i = 0; i < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                i++;
            }
            else if (char.IsSurrogate(text[i]))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>A transition in the inbox; null in the inbox is a resend tick.</summary>
    private sealed record Routed(AlertTransition Transition, Action? WebhooksSettled, bool WebhooksOnly);

    private static string Origin(Uri url) => url.GetComponents(UriComponents.SchemeAndServer, UriFormat.UriEscaped);
}
