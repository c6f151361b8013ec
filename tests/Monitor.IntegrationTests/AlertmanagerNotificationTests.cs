using System.Diagnostics;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Monitor.Analysis;
using Monitor.Service.Notifications;

namespace Monitor.IntegrationTests;

/// <summary>
/// The dispatcher against a real Alertmanager (Debian's prometheus-alertmanager 0.25): it posts to API v2, Alertmanager
/// groups and notifies its webhook receiver — a Kestrel server of the test — first that the alert fires, then, after
/// the dispatcher sends the resolution, that it is resolved. Everything on 127.0.0.1 and free ports.
/// </summary>
public sealed class AlertmanagerNotificationTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    private static CancellationToken Cancellation => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Alertmanager_NotifiesFiringThenResolved_WhenTheDispatcherSendsBoth()
    {
        await using WebhookReceiver receiver = await WebhookReceiver.StartAsync();
        await using AlertmanagerProcess alertmanager = await AlertmanagerProcess.StartNewAsync(Configuration(receiver.Url), Cancellation);
        if (AlertmanagerProcess.FindAmtool() is { } amtool)
        {
            (int exitCode, string output) = await alertmanager.CheckConfigAsync(amtool, Cancellation);
            Assert.True(exitCode == 0, $"amtool check-config failed ({exitCode}):\n{output}");
        }

        await using var dispatcher = new AlertDispatcher(new NotificationOptions
        {
            AlertmanagerUrls = [alertmanager.BaseAddress],
            ExternalLabels = new Dictionary<string, string> { ["monitor"] = "integration" },
            GeneratorUrlBase = new Uri("http://127.0.0.1:9464"),
            Retry = new NotificationRetryPolicy { MaxAttempts = 5, InitialBackoff = TimeSpan.FromMilliseconds(50), MaxBackoff = TimeSpan.FromSeconds(1) },
        });
        string run = "run-" + Guid.NewGuid().ToString("N")[..8];
        DateTimeOffset now = TimeProvider.System.GetUtcNow();
        AlertTransition firing = new(
            new AlertIdentity(new Dictionary<string, string>
            {
                [AlertLabels.AlertName] = "VanishingGradient",
                [AlertLabels.Run] = run,
                [AlertLabels.Rank] = "3",
                [AlertLabels.Tensor] = "fc1.weight.grad",
                [AlertLabels.Severity] = "critical",
            }),
            AlertState.Firing, AlertState.Pending, 1200, 1e-9, 1e-7, "abs mean 1e-09 < 1e-07", now - TimeSpan.FromSeconds(30), now - TimeSpan.FromSeconds(1))
        {
            Annotations = new Dictionary<string, string> { ["summary"] = $"VanishingGradient on run {run} rank 3", ["description"] = "abs mean 1e-09 < 1e-07" },
        };

        dispatcher.Publish(firing);
        JsonElement fired = await receiver.WaitForAsync(run, "firing", Deadline);

        JsonElement alert = Assert.Single(fired.GetProperty("alerts").EnumerateArray().ToList());
        Assert.Equal("firing", alert.GetProperty("status").GetString());
        Assert.Equal(
            new Dictionary<string, string>
            {
                ["alertname"] = "VanishingGradient", ["run"] = run, ["rank"] = "3", ["tensor"] = "fc1.weight.grad",
                ["severity"] = "critical", ["monitor"] = "integration",
            },
            Map(alert.GetProperty("labels")));
        Assert.Equal(firing.Annotations, Map(alert.GetProperty("annotations")));
        Assert.Equal($"http://127.0.0.1:9464/api/alerts/{firing.Identity.Fingerprint}", alert.GetProperty("generatorURL").GetString());

        dispatcher.Publish(firing with { State = AlertState.Inactive, PreviousState = AlertState.Firing, Step = 1210, At = TimeProvider.System.GetUtcNow() });
        JsonElement resolved = await receiver.WaitForAsync(run, "resolved", Deadline);

        JsonElement resolution = Assert.Single(resolved.GetProperty("alerts").EnumerateArray().ToList());
        Assert.Equal("resolved", resolution.GetProperty("status").GetString());
        Assert.Equal(alert.GetProperty("fingerprint").GetString(), resolution.GetProperty("fingerprint").GetString());
        Assert.Equal(Map(alert.GetProperty("labels")), Map(resolution.GetProperty("labels")));
        NotificationStatistics statistics = dispatcher.Statistics;
        Assert.Equal(0, statistics.Alertmanager.Failed);
        Assert.Equal(0, statistics.Dropped);
        Assert.Equal(0, statistics.FiringAlerts);
    }

    [Fact]
    public async Task Alertmanager_DownAndBack_ReceivesTheFiringAlert_AfterItReturns()
    {
        await using WebhookReceiver receiver = await WebhookReceiver.StartAsync();
        await using AlertmanagerProcess alertmanager = await AlertmanagerProcess.StartNewAsync(Configuration(receiver.Url), Cancellation);
        await alertmanager.StopAsync();
        await using var dispatcher = new AlertDispatcher(new NotificationOptions
        {
            AlertmanagerUrls = [alertmanager.BaseAddress],
            ResendInterval = TimeSpan.FromSeconds(1),
            Retry = new NotificationRetryPolicy { MaxAttempts = 2, InitialBackoff = TimeSpan.FromMilliseconds(50), MaxBackoff = TimeSpan.FromMilliseconds(200) },
        });
        string run = "run-" + Guid.NewGuid().ToString("N")[..8];
        DateTimeOffset now = TimeProvider.System.GetUtcNow();
        var identity = new AlertIdentity(new Dictionary<string, string>
        {
            [AlertLabels.AlertName] = "ExplodingTensor", [AlertLabels.Run] = run, [AlertLabels.Rank] = "0", [AlertLabels.Severity] = "critical",
        });

        dispatcher.Publish(new AlertTransition(identity, AlertState.Firing, AlertState.Pending, 40, 1e9, 1e6, "max 1e9 > 1e6", now, now));
        await Eventually.TrueAsync(() => dispatcher.Statistics.Alertmanager.Failed > 0, "the send to the stopped Alertmanager failed");
        await alertmanager.RestartAsync(Cancellation);

        // The resend of firing alerts (every ResendInterval) carries it to the Alertmanager that came back.
        JsonElement fired = await receiver.WaitForAsync(run, "firing", Deadline);
        Assert.Equal("ExplodingTensor", Assert.Single(fired.GetProperty("alerts").EnumerateArray().ToList()).GetProperty("labels").GetProperty("alertname").GetString());
        Assert.Equal(1, dispatcher.Statistics.FiringAlerts);
    }

    [Fact]
    public async Task AlertmanagerProcess_LeavesNoProcessOrDirectory_WhenDisposed()
    {
        AlertmanagerProcess alertmanager = await AlertmanagerProcess.StartNewAsync(Configuration(new Uri("http://127.0.0.1:1/unused")), Cancellation);
        int processId = alertmanager.ProcessId!.Value;
        string directory = alertmanager.TempDirectory;
        using var http = new HttpClient();
        using (HttpResponseMessage ready = await http.GetAsync(new Uri(alertmanager.BaseAddress, "-/ready"), Cancellation))
        {
            Assert.True(ready.IsSuccessStatusCode);
        }

        await alertmanager.DisposeAsync();

        Assert.False(Directory.Exists(directory));
        Assert.False(IsRunning(processId), $"Alertmanager (pid {processId}) still runs after dispose");
    }

    [Fact]
    public void AlertmanagerProcess_NamesTheInstallCommand_WhenTheBinaryIsMissing()
    {
        InvalidOperationException error = Assert.Throws<InvalidOperationException>(() => AlertmanagerProcess.FindBinary(["no-such-alertmanager-binary"]));

        Assert.Contains("apt-get install -y prometheus-alertmanager", error.Message, StringComparison.Ordinal);
    }

    private static string Configuration(Uri webhook) => $"""
        route:
          receiver: test
          group_by: ['alertname', 'run']
          group_wait: 1s
          group_interval: 1s
          repeat_interval: 1h
        receivers:
          - name: test
            webhook_configs:
              - url: '{webhook}'
                send_resolved: true
        """;

    private static bool IsRunning(int processId)
    {
        try
        {
            using var process = Process.GetProcessById(processId);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    private static Dictionary<string, string> Map(JsonElement element) =>
        element.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!);

    /// <summary>Alertmanager's webhook receiver: Kestrel on 127.0.0.1 and a free port, keeping every notification.</summary>
    private sealed class WebhookReceiver : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private readonly List<JsonElement> _notifications = [];

        private WebhookReceiver(WebApplication app) => _app = app;

        public Uri Url { get; private set; } = null!;

        public static async Task<WebhookReceiver> StartAsync()
        {
            WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            WebApplication app = builder.Build();
            var receiver = new WebhookReceiver(app);
            app.MapPost("/alertmanager", async (HttpContext context) =>
            {
                using JsonDocument document = await JsonDocument.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted);
                lock (receiver._notifications)
                {
                    receiver._notifications.Add(document.RootElement.Clone());
                }

                return Results.Ok();
            });
            await app.StartAsync(Cancellation);
            string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            receiver.Url = new Uri(address + "/alertmanager");
            return receiver;
        }

        /// <summary>The first notification with this status whose common labels name <paramref name="run"/>.</summary>
        public async Task<JsonElement> WaitForAsync(string run, string status, TimeSpan deadline)
        {
            JsonElement? found = null;
            await Eventually.TrueAsync(() => (found = Find(run, status)) is not null, $"Alertmanager notified that run {run} is {status}", deadline.TotalSeconds);
            return found!.Value;
        }

        public async ValueTask DisposeAsync()
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }

        private JsonElement? Find(string run, string status)
        {
            lock (_notifications)
            {
                foreach (JsonElement notification in _notifications)
                {
                    if (notification.GetProperty("status").GetString() == status
                        && notification.GetProperty("commonLabels").TryGetProperty("run", out JsonElement value) && value.GetString() == run)
                    {
                        return notification;
                    }
                }

                return null;
            }
        }
    }
}
