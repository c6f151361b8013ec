using System.Collections.Concurrent;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Monitor.Contracts;
using Monitor.Contracts.V1;
using Monitor.Tracing;
using Monitor.Transport.Kafka;

namespace Monitor.IntegrationTests;

/// <summary>
/// The real <c>monitor serve</c> command line notifying a webhook: the bearer token, extra headers and external labels
/// given as options arrive with the alert.
/// </summary>
public sealed class ServeWebhookTests
{
    private static CancellationToken Cancellation => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Serve_WithWebhookTokenHeaderAndExternalLabel_PostsTheFiringAlertWithThem()
    {
        var received = new ConcurrentQueue<(string? Authorization, string? ApiKey, string Body)>();
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        await using WebApplication receiver = builder.Build();
        receiver.MapPost("/hook", async (HttpContext context) =>
        {
            using var reader = new StreamReader(context.Request.Body);
            received.Enqueue((context.Request.Headers.Authorization, context.Request.Headers["X-Api-Key"], await reader.ReadToEndAsync(context.RequestAborted)));
            return Results.Ok();
        });
        await receiver.StartAsync(Cancellation);
        string hook = receiver.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First() + "/hook";

        using var cluster = new MockKafkaCluster();
        string topic = "it-hook-" + Guid.NewGuid().ToString("N")[..8];
        string rules = Path.Combine(Path.GetTempPath(), $"hook-rules-{Guid.NewGuid():N}.yaml");
        await File.WriteAllTextAsync(rules, "rules:\n  - rule: VanishingGradient\n    parameters: { windowSteps: 2 }\n", Cancellation);
        try
        {
            await using ServeProcess serve = await ServeProcess.StartAsync(
                ["--kafka", cluster.BootstrapServers, "--topic", topic, "--group", "g-" + topic, "--rules", rules,
                    "--webhook", hook, "--webhook-token", "hook-token", "--webhook-header", "X-Api-Key: abc", "--external-label", "cluster=it"], Cancellation);
            await Eventually.TrueAsync(() => serve.GetAsync("readyz", Cancellation).GetAwaiter().GetResult().Status == HttpStatusCode.OK, "monitor serve is ready");

            await using (var tracer = new StepTracer(
                new TracerOptions { RunId = "it-hook", Topic = topic },
                new KafkaRecordProducer(new KafkaProducerOptions { BootstrapServers = cluster.BootstrapServers }),
                ownsProducer: true))
            {
                CollectionSet gradients = CollectionSet.Of(Collection.Gradients);
                for (int step = 0; step < 10; step++)
                {
                    tracer.BeginStep(step);
                    tracer.AddValues("fc1.weight.grad", gradients, DType.Float32, [2], [1e-12f, -1e-12f]);
                    tracer.EndStep();
                }

                Assert.True(await tracer.FlushAsync(TimeSpan.FromSeconds(30), Cancellation));
            }

            await Eventually.TrueAsync(() => received.Any(r => r.Body.Contains("VanishingGradient", StringComparison.Ordinal)), "the webhook got the alert", 60);
            (string? authorization, string? apiKey, string body) = received.First(r => r.Body.Contains("VanishingGradient", StringComparison.Ordinal));
            Assert.Equal("Bearer hook-token", authorization);
            Assert.Equal("abc", apiKey);
            Assert.Contains("\"cluster\":\"it\"", body, StringComparison.Ordinal);
            Assert.Contains("\"run\":\"it-hook\"", body, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(rules);
        }
    }
}
