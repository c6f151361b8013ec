using Monitor.Service.Notifications;

namespace Monitor.Service.Tests;

public sealed class NotificationOptionsTests
{
    public static TheoryData<string, NotificationOptions> InvalidOptions => new()
    {
        { "Alertmanager URL", new NotificationOptions { AlertmanagerUrls = [new Uri("ftp://am:9093")] } },
        { "Alertmanager URL", new NotificationOptions { AlertmanagerUrls = [new Uri("/relative", UriKind.Relative)] } },
        { "webhook URL", new NotificationOptions { Webhooks = [new WebhookTarget { Url = new Uri("file:///tmp/x") }] } },
        { "bearer token", new NotificationOptions { Webhooks = [new WebhookTarget { Url = new Uri("http://h"), BearerToken = "" }] } },
        { "both a bearer token and an Authorization header", new NotificationOptions
        {
            Webhooks = [new WebhookTarget { Url = new Uri("http://h"), BearerToken = "t", Headers = new Dictionary<string, string> { ["authorization"] = "x" } }],
        } },
        { "not a valid HTTP header", new NotificationOptions
        {
            Webhooks = [new WebhookTarget { Url = new Uri("http://h"), Headers = new Dictionary<string, string> { ["X-Bad"] = "a\nb" } }],
        } },
        { "set by the dispatcher", new NotificationOptions
        {
            Webhooks = [new WebhookTarget { Url = new Uri("http://h"), Headers = new Dictionary<string, string> { ["Content-Type"] = "text/plain" } }],
        } },
        { "alerts topic", new NotificationOptions { AlertsTopic = " " } },
        { "resend interval", new NotificationOptions { ResendInterval = TimeSpan.Zero } },
        { "queue capacity", new NotificationOptions { QueueCapacity = 0 } },
        { "max batch size", new NotificationOptions { MaxBatchSize = 0 } },
        { "request timeout", new NotificationOptions { RequestTimeout = TimeSpan.Zero } },
        { "generator URL base", new NotificationOptions { GeneratorUrlBase = new Uri("mailto:a@b") } },
        { "external label 'bad-name'", new NotificationOptions { ExternalLabels = new Dictionary<string, string> { ["bad-name"] = "x" } } },
        { "retry attempts", new NotificationOptions { Retry = new NotificationRetryPolicy { MaxAttempts = 0 } } },
        { "retry backoff", new NotificationOptions { Retry = new NotificationRetryPolicy { InitialBackoff = TimeSpan.FromSeconds(2), MaxBackoff = TimeSpan.FromSeconds(1) } } },
    };

    [Fact]
    public void Validate_Passes_WhenDefaultsOrAFullConfiguration()
    {
        new NotificationOptions().Validate();
        new NotificationOptions
        {
            AlertmanagerUrls = [new Uri("http://am-0:9093"), new Uri("https://am.example/prefix/")],
            Webhooks = [new WebhookTarget { Url = new Uri("https://hooks.example/x"), BearerToken = "t", Headers = new Dictionary<string, string> { ["X-Api-Key"] = "k" } }],
            GeneratorUrlBase = new Uri("http://monitor:9464"),
            ExternalLabels = new Dictionary<string, string> { ["cluster"] = "c1" },
        }.Validate();
    }

    [Theory]
    [MemberData(nameof(InvalidOptions))]
    public void Validate_ThrowsNamingTheOption_WhenAnOptionIsInvalid(string expected, NotificationOptions options)
    {
        ArgumentException error = Assert.Throws<ArgumentException>(options.Validate);

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Constructor_Throws_WhenOptionsAreInvalid() =>
        Assert.Throws<ArgumentException>(() => new AlertDispatcher(new NotificationOptions { QueueCapacity = -1 }));

    [Theory]
    [InlineData(1, 0.0, 250)]
    [InlineData(1, 0.999999, 500)]
    [InlineData(3, 0.0, 1000)]
    [InlineData(3, 0.999999, 2000)]
    [InlineData(20, 0.0, 15_000)]
    [InlineData(20, 0.999999, 30_000)]
    [InlineData(1000, 0.5, 22_500)]
    public void Backoff_IsBetweenHalfAndAllOfTheCappedExponential(int retry, double random, double expectedMilliseconds)
    {
        var policy = new NotificationRetryPolicy { InitialBackoff = TimeSpan.FromMilliseconds(500), MaxBackoff = TimeSpan.FromSeconds(30) };

        Assert.Equal(expectedMilliseconds, policy.Backoff(retry, random).TotalMilliseconds, 0.1);
    }
}
