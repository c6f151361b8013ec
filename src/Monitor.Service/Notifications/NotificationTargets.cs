using System.Net;
using System.Net.Http.Headers;
using System.Threading.Channels;
using Monitor.Contracts.Transport;

namespace Monitor.Service.Notifications;

/// <summary>What every sender of one dispatcher shares.</summary>
/// <param name="Http">The dispatcher's client.</param>
/// <param name="Options">Validated options.</param>
/// <param name="Time">Clock for backoff waits and <c>endsAt</c>.</param>
/// <param name="Log">Rate-limited log.</param>
/// <param name="Draining">Cancelled when the dispatcher is disposed: backoff waits end, a failure is final.</param>
/// <param name="Abort">Cancelled when the shutdown timeout has passed: requests in flight are abandoned.</param>
internal sealed record SenderContext(
    HttpClient Http, NotificationOptions Options, TimeProvider Time, RateLimitedLog Log, CancellationToken Draining, CancellationToken Abort);

/// <summary>
/// One HTTP target (an Alertmanager or a webhook) with its own backlog and its own background sender, so a slow or
/// failing target delays nobody else. Written by the dispatcher's router only.
/// </summary>
internal sealed class HttpTarget
{
    private const int MaxLoggedBodyChars = 512;

    private readonly SenderContext _context;
    private readonly TargetCounters _counters;
    private readonly Channel<PreparedAlert> _backlog;
    private readonly string? _bearerToken;
    private readonly IReadOnlyDictionary<string, string> _headers;

    public HttpTarget(TargetKind kind, Uri endpoint, WebhookTarget? webhook, string name, SenderContext context, TargetCounters counters)
    {
        Kind = kind;
        Endpoint = endpoint;
        Name = name;
        _context = context;
        _counters = counters;
        _bearerToken = webhook?.BearerToken;
        _headers = webhook?.Headers ?? new Dictionary<string, string>();
        _backlog = Channel.CreateBounded<PreparedAlert>(
            new BoundedChannelOptions(context.Options.QueueCapacity)
            {
                FullMode = BoundedChannelFullMode.DropOldest,
                SingleReader = true,
                SingleWriter = true,
            },
            dropped =>
            {
                counters.Dropped();
                if (kind == TargetKind.Webhook)
                {
                    dropped.Ticket?.Settle();
                }
            });
    }

    public TargetKind Kind { get; }

    /// <summary>Where requests go.</summary>
    public Uri Endpoint { get; }

    /// <summary>For logs: never the full URL, which may carry a secret (webhook URLs often do).</summary>
    public string Name { get; }

    /// <summary>Adds an alert to the backlog (the oldest is dropped and counted when it is full).</summary>
    public bool Enqueue(PreparedAlert alert) => _backlog.Writer.TryWrite(alert);

    /// <summary>No more alerts: the sender ends once the backlog is sent.</summary>
    public void Complete() => _backlog.Writer.TryComplete();

    /// <summary>Sends the backlog in batches until <see cref="Complete"/> and an empty backlog, or the abort.</summary>
    public async Task RunAsync()
    {
        var batch = new List<PreparedAlert>(_context.Options.MaxBatchSize);
        try
        {
            while (await _backlog.Reader.WaitToReadAsync(_context.Abort))
            {
                batch.Clear();
                while (batch.Count < _context.Options.MaxBatchSize && _backlog.Reader.TryRead(out PreparedAlert? alert))
                {
                    batch.Add(alert);
                }

                if (Kind == TargetKind.Alertmanager)
                {
                    // Alertmanager only needs each alert's latest state: a resend queued behind a resolution (or the
                    // other way round) is sent once, as the later of the two.
                    Deduplicate(batch);
                }

                await SendAsync(batch);
                if (Kind == TargetKind.Webhook)
                {
                    foreach (PreparedAlert sent in batch)
                    {
                        sent.Ticket?.Settle();
                    }
                }
            }
        }
        catch (OperationCanceledException) when (_context.Abort.IsCancellationRequested)
        {
            int abandoned = batch.Count;
            while (_backlog.Reader.TryRead(out _))
            {
                abandoned++;
            }

            _counters.Failed(abandoned);
            _context.Log.Warning(Name, null, $"Notifications to {Name}: shutdown timeout reached, {abandoned} alerts abandoned");
        }
#pragma warning disable CA1031 // A sender must end cleanly; the fault is counted and logged.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            _counters.Failed(batch.Count);
            _context.Log.Error(Name, ex, $"Notifications to {Name}: sender stopped by an unexpected error");
        }
    }

    private async Task SendAsync(List<PreparedAlert> batch)
    {
        NotificationRetryPolicy retry = _context.Options.Retry;
        for (int attempt = 1; ; attempt++)
        {
            string failure;
            TimeSpan? retryAfter = null;
            using (HttpRequestMessage request = CreateRequest(batch))
            {
                _counters.Requested();
                try
                {
                    using HttpResponseMessage response = await _context.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, _context.Abort);
                    if (response.IsSuccessStatusCode)
                    {
                        _counters.Sent(batch.Count);
                        return;
                    }

                    failure = $"HTTP {(int)response.StatusCode} {response.ReasonPhrase}: {await ReadSomeAsync(response)}";
                    if (!IsRetryable(response.StatusCode))
                    {
                        _counters.Failed(batch.Count);
                        _context.Log.Error(Name, null, $"Notifications to {Name}: {batch.Count} alerts refused, not retried ({failure})");
                        return;
                    }

                    retryAfter = RetryAfter(response);
                }
                catch (HttpRequestException ex)
                {
                    failure = ex.Message;
                }
                catch (OperationCanceledException ex) when (!_context.Abort.IsCancellationRequested)
                {
                    // HttpClient.Timeout, not our shutdown.
                    failure = $"no answer within {_context.Options.RequestTimeout.TotalSeconds:0.###} s ({ex.GetType().Name})";
                }
            }

            if (attempt >= retry.MaxAttempts || _context.Draining.IsCancellationRequested)
            {
                _counters.Failed(batch.Count);
                _context.Log.Error(Name, null, $"Notifications to {Name}: {batch.Count} alerts dropped after {attempt} attempts ({failure})");
                return;
            }

            _counters.Retried();
            TimeSpan wait = retryAfter is { } after
                ? TimeSpan.FromTicks(Math.Clamp(after.Ticks, 0, retry.MaxBackoff.Ticks))
#pragma warning disable CA5394 // Jitter spreads retries of many services; it needs no cryptographic randomness.
                : retry.Backoff(attempt, Random.Shared.NextDouble());
#pragma warning restore CA5394
            _context.Log.Warning(Name, null, $"Notifications to {Name}: attempt {attempt} failed ({failure}); retrying in {wait.TotalMilliseconds:0} ms");
            try
            {
                await Task.Delay(wait, _context.Time, _context.Draining);
            }
            catch (OperationCanceledException) when (_context.Draining.IsCancellationRequested)
            {
                // Shutting down: one last attempt now, no more waiting.
            }
        }
    }

    private HttpRequestMessage CreateRequest(List<PreparedAlert> batch)
    {
        byte[] body = Kind == TargetKind.Alertmanager
            ? AlertPayloads.Alertmanager(batch, _context.Time.GetUtcNow(), _context.Options.ResendInterval)
            : AlertPayloads.Webhook(batch, _context.Options.GeneratorUrlBase);
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        var request = new HttpRequestMessage(HttpMethod.Post, Endpoint) { Content = content };
        if (_bearerToken is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _bearerToken);
        }

        foreach ((string name, string value) in _headers)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        return request;
    }

    private static bool IsRetryable(HttpStatusCode status) => status == HttpStatusCode.TooManyRequests || (int)status >= 500;

    private TimeSpan? RetryAfter(HttpResponseMessage response) => response.Headers.RetryAfter switch
    {
        { Delta: { } delta } => delta,
        { Date: { } date } => date - _context.Time.GetUtcNow(),
        _ => null,
    };

    private async Task<string> ReadSomeAsync(HttpResponseMessage response)
    {
        // Only the headers were awaited under HttpClient.Timeout: the body of an error answer gets its own deadline.
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_context.Abort);
        deadline.CancelAfter(_context.Options.RequestTimeout);
        try
        {
            string body = await response.Content.ReadAsStringAsync(deadline.Token);
            body = body.ReplaceLineEndings(" ").Trim();
            return body.Length <= MaxLoggedBodyChars ? body : body[..MaxLoggedBodyChars] + "…";
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or OperationCanceledException)
        {
            return "(no body)";
        }
    }

    private static void Deduplicate(List<PreparedAlert> batch)
    {
        if (batch.Count < 2)
        {
            return;
        }

        var last = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < batch.Count; i++)
        {
            last[batch[i].Fingerprint] = i;
        }

        if (last.Count == batch.Count)
        {
            return;
        }

        int kept = 0;
        for (int i = 0; i < batch.Count; i++)
        {
            if (last[batch[i].Fingerprint] == i)
            {
                batch[kept++] = batch[i];
            }
        }

        batch.RemoveRange(kept, batch.Count - kept);
    }
}

/// <summary>
/// The alerts topic: one message per transition, produced from its own background task so a misbehaving producer
/// cannot hold up the HTTP targets. The producer retries on its own (librdkafka's <c>message.timeout.ms</c>); a
/// failed delivery is counted and logged.
/// </summary>
internal sealed class KafkaTarget
{
    private readonly IRecordProducer _producer;
    private readonly string _topic;
    private readonly SenderContext _context;
    private readonly TargetCounters _counters;
    private readonly Channel<(string Key, byte[] Value)> _backlog;

    public KafkaTarget(IRecordProducer producer, SenderContext context, TargetCounters counters)
    {
        _producer = producer;
        _topic = context.Options.AlertsTopic;
        _context = context;
        _counters = counters;
        _backlog = Channel.CreateBounded<(string Key, byte[] Value)>(
            new BoundedChannelOptions(context.Options.QueueCapacity)
            {
                FullMode = BoundedChannelFullMode.DropOldest,
                SingleReader = true,
                SingleWriter = true,
            },
            _ => counters.Dropped());
    }

    public void Enqueue(string key, byte[] value) => _backlog.Writer.TryWrite((key, value));

    public void Complete() => _backlog.Writer.TryComplete();

    public async Task RunAsync()
    {
        try
        {
            while (await _backlog.Reader.WaitToReadAsync(_context.Abort))
            {
                while (_backlog.Reader.TryRead(out (string Key, byte[] Value) message))
                {
                    Produce(message.Key, message.Value);
                }
            }
        }
        catch (OperationCanceledException) when (_context.Abort.IsCancellationRequested)
        {
            int abandoned = 0;
            while (_backlog.Reader.TryRead(out _))
            {
                abandoned++;
            }

            _counters.Failed(abandoned);
        }
    }

    private void Produce(string key, byte[] value)
    {
        _counters.Requested();
        try
        {
            _producer.Produce(_topic, key, value, null, OnDelivery);
        }
#pragma warning disable CA1031 // Producers report through the callback; one that throws is counted, not fatal.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            _counters.Failed(1);
            _context.Log.Error("kafka", ex, $"Alert message for topic {_topic} was not produced: {ex.Message}");
        }
    }

    private void OnDelivery(DeliveryReport report)
    {
        if (report.Delivered)
        {
            _counters.Sent(1);
        }
        else
        {
            _counters.Failed(1);
            _context.Log.Error("kafka", null, $"Alert message for topic {_topic} was not delivered: {report.Error}");
        }
    }
}
