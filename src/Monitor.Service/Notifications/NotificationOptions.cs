using System.Text.RegularExpressions;
using Monitor.Contracts;

namespace Monitor.Service.Notifications;

/// <summary>Where and how <see cref="AlertDispatcher"/> sends alert transitions. Immutable once built.</summary>
/// <remarks>With no Alertmanager, no webhook and no producer, the dispatcher accepts transitions and does nothing.</remarks>
public sealed partial class NotificationOptions
{
    /// <summary>
    /// Alertmanager base URLs (e.g. <c>http://alertmanager:9093</c>, or with a path prefix when it runs behind one);
    /// alerts are posted to <c>{base}/api/v2/alerts</c> of every one of them, as Prometheus does. Default none.
    /// </summary>
    public IReadOnlyList<Uri> AlertmanagerUrls { get; init; } = [];

    /// <summary>Generic webhooks that receive every firing and resolved transition. Default none.</summary>
    public IReadOnlyList<WebhookTarget> Webhooks { get; init; } = [];

    /// <summary>Topic of the alert transition messages (when a producer is given). Default <see cref="MonitorTopics.Alerts"/>.</summary>
    public string AlertsTopic { get; init; } = MonitorTopics.Alerts;

    /// <summary>
    /// How often every firing alert is sent to Alertmanager again, and the unit of its <c>endsAt</c> (now + 4 × this).
    /// Default 1 min, Prometheus' <c>--rules.alert.resend-delay</c>. Alertmanager deduplicates: a resend is not a new
    /// notification, it only tells Alertmanager the alert still fires.
    /// </summary>
    public TimeSpan ResendInterval { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// Transitions that may wait for the background senders; <see cref="AlertDispatcher.Publish"/> drops (and
    /// counts) transitions beyond it. Also the backlog each target may build up while it is failing (the oldest
    /// entries are dropped first). Default 10,000, Prometheus' notification queue capacity.
    /// </summary>
    public int QueueCapacity { get; init; } = 10_000;

    /// <summary>Most alerts in one HTTP request. Default 64, Prometheus' batch size for Alertmanager.</summary>
    public int MaxBatchSize { get; init; } = 64;

    /// <summary>Retries of failed HTTP requests. Default <see cref="NotificationRetryPolicy"/>'s defaults.</summary>
    public NotificationRetryPolicy Retry { get; init; } = new();

    /// <summary>Timeout of one HTTP request (connect, send, response). Default 10 s, Prometheus' Alertmanager timeout.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long <see cref="AlertDispatcher.DisposeAsync"/> may take to deliver what is still queued (one more attempt
    /// per request, no backoff) before it abandons the rest. Default 5 s.
    /// </summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Base URL of this service, for the <c>generatorURL</c> of each alert: <c>{base}/api/alerts/{fingerprint}</c>.
    /// Default none: the field is left out.
    /// </summary>
    public Uri? GeneratorUrlBase { get; init; }

    /// <summary>
    /// Labels added to every alert that does not have them already (Prometheus' <c>external_labels</c>), e.g.
    /// <c>cluster</c> or <c>monitor</c>. They do not change the alert's fingerprint. Default none.
    /// </summary>
    public IReadOnlyDictionary<string, string> ExternalLabels { get; init; } = new Dictionary<string, string>();

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid option.</summary>
    public void Validate()
    {
        if (AlertmanagerUrls is null || Webhooks is null || ExternalLabels is null || Retry is null)
        {
            throw new ArgumentException("notification lists, labels and the retry policy must not be null");
        }

        foreach (Uri url in AlertmanagerUrls)
        {
            RequireHttpUrl(url, "Alertmanager URL");
        }

        foreach (WebhookTarget webhook in Webhooks)
        {
            if (webhook is null)
            {
                throw new ArgumentException("a webhook entry is null");
            }

            webhook.Validate();
        }

        if (string.IsNullOrWhiteSpace(AlertsTopic))
        {
            throw new ArgumentException("the alerts topic must not be empty");
        }

        if (ResendInterval <= TimeSpan.Zero)
        {
            throw new ArgumentException($"resend interval is {ResendInterval}; it must be positive");
        }

        if (QueueCapacity < 1)
        {
            throw new ArgumentException($"queue capacity is {QueueCapacity}; it must be at least 1");
        }

        if (MaxBatchSize < 1)
        {
            throw new ArgumentException($"max batch size is {MaxBatchSize}; it must be at least 1");
        }

        if (RequestTimeout <= TimeSpan.Zero || ShutdownTimeout < TimeSpan.Zero)
        {
            throw new ArgumentException("the request timeout must be positive and the shutdown timeout not negative");
        }

        if (GeneratorUrlBase is not null)
        {
            RequireHttpUrl(GeneratorUrlBase, "generator URL base");
        }

        foreach ((string name, string value) in ExternalLabels)
        {
            if (!IsValidLabelName(name) || value is null)
            {
                throw new ArgumentException($"external label '{name}' is not a valid Prometheus label (name [a-zA-Z_][a-zA-Z0-9_]*, value not null)");
            }
        }

        Retry.Validate();
    }

    /// <summary>Prometheus' (and Alertmanager 0.25's) label name syntax.</summary>
    internal static bool IsValidLabelName(string? name) => name is not null && LabelName().IsMatch(name);

    internal static void RequireHttpUrl(Uri? url, string what)
    {
        if (url is null || !url.IsAbsoluteUri || (url.Scheme != Uri.UriSchemeHttp && url.Scheme != Uri.UriSchemeHttps))
        {
            throw new ArgumentException($"{what} '{url}' is not an absolute http:// or https:// URL");
        }
    }

    [GeneratedRegex("^[a-zA-Z_][a-zA-Z0-9_]*$", RegexOptions.CultureInvariant)]
    private static partial Regex LabelName();
}

/// <summary>A generic webhook: <see cref="AlertDispatcher"/> posts its JSON payload (see the README) to <see cref="Url"/>.</summary>
public sealed class WebhookTarget
{
    /// <summary>The URL posted to. Required; http or https.</summary>
    public required Uri Url { get; init; }

    /// <summary>Sent as <c>Authorization: Bearer {token}</c>. Default none.</summary>
    public string? BearerToken { get; init; }

    /// <summary>Extra request headers (e.g. an API key). Default none. <c>Authorization</c> is refused here when
    /// <see cref="BearerToken"/> is set.</summary>
    public IReadOnlyDictionary<string, string> Headers { get; init; } = new Dictionary<string, string>();

    /// <summary>Throws <see cref="ArgumentException"/> naming the problem.</summary>
    public void Validate()
    {
        NotificationOptions.RequireHttpUrl(Url, "webhook URL");
        if (Headers is null)
        {
            throw new ArgumentException($"webhook {Url}: headers must not be null");
        }

        if (BearerToken is { } token && (token.Length == 0 || token.Any(char.IsControl)))
        {
            throw new ArgumentException($"webhook {Url}: the bearer token is empty or contains control characters");
        }

        foreach ((string name, string value) in Headers)
        {
            if (string.IsNullOrWhiteSpace(name) || name.Any(c => c <= ' ' || c == ':' || c > '~') || value is null || value.Any(char.IsControl))
            {
                throw new ArgumentException($"webhook {Url}: header '{name}' is not a valid HTTP header");
            }

            if (BearerToken is not null && name.Equals("Authorization", StringComparison.OrdinalIgnoreCase))
            {
                throw new ArgumentException($"webhook {Url}: both a bearer token and an Authorization header are set");
            }

            if (name.Equals("Content-Type", StringComparison.OrdinalIgnoreCase) || name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
            {
                throw new ArgumentException($"webhook {Url}: header '{name}' is set by the dispatcher");
            }
        }
    }

    /// <inheritdoc />
    public override string ToString() => Url.ToString();
}

/// <summary>
/// Retries of a failed HTTP request: network errors, timeouts, 5xx and 429 are retried after an exponential backoff
/// with jitter (each wait is drawn between half and all of <c>min(MaxBackoff, InitialBackoff × 2^(retry-1))</c>, or
/// the server's <c>Retry-After</c> when it sends one, capped at <see cref="MaxBackoff"/>); other 4xx answers are not
/// retried. Each target retries on its own.
/// </summary>
public sealed class NotificationRetryPolicy
{
    /// <summary>Attempts per request, the first included. Default 5; 1 disables retries.</summary>
    public int MaxAttempts { get; init; } = 5;

    /// <summary>Backoff before the first retry (before jitter). Default 500 ms.</summary>
    public TimeSpan InitialBackoff { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Longest backoff. Default 30 s (below the default resend interval, so retries of one batch do not
    /// outlast the next resend by much).</summary>
    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Throws <see cref="ArgumentException"/> naming the problem.</summary>
    public void Validate()
    {
        if (MaxAttempts < 1)
        {
            throw new ArgumentException($"retry attempts is {MaxAttempts}; it must be at least 1");
        }

        if (InitialBackoff <= TimeSpan.Zero || MaxBackoff < InitialBackoff)
        {
            throw new ArgumentException($"retry backoff {InitialBackoff}..{MaxBackoff}: the initial backoff must be positive and not above the maximum");
        }
    }

    /// <summary>The wait before retry number <paramref name="retry"/> (1-based), for a uniform draw <paramref name="random"/> in [0, 1).</summary>
    internal TimeSpan Backoff(int retry, double random)
    {
        double ceiling = Math.Min(MaxBackoff.Ticks, InitialBackoff.Ticks * Math.Pow(2, Math.Min(retry - 1, 62)));
        return TimeSpan.FromTicks((long)(ceiling * (0.5 + (0.5 * random))));
    }
}
