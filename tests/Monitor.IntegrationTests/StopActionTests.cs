using Monitor.Analysis;
using Monitor.Analysis.Rules;
using Monitor.Cli;
using Monitor.Contracts;
using Monitor.Contracts.Transport;
using Monitor.Contracts.V1;
using Monitor.Samples.Training;
using Monitor.Service;
using Monitor.Tracing;
using Monitor.Tracing.Control;

namespace Monitor.IntegrationTests;

/// <summary>The <c>stop</c> action: a firing alert makes the service write a stop command; the worker sees it.</summary>
public sealed class StopActionTests
{
    [Theory, RedisBackends]
    public async Task FiringAlertWithStopAction_ReachesTheWorker_WithTheReason(string backend)
    {
        await using IRedisEndpoint redis = await RedisEndpoints.StartAsync(backend, TestContext.Current.CancellationToken);
        var keys = new RunKeys();
        var bus = new InProcessBus();
        var rules = new[] { new RuleBinding { Rule = new VanishingGradientRule { WindowSteps = 2 }, Actions = ["stop"] } };
        await using var service = new MonitorService(
            new MonitorServiceOptions { ListenUrl = "http://127.0.0.1:0", Redis = redis.ConnectionString },
            bus.CreateConsumer(MonitorTopics.Steps), bus.CreateProducer(), rules: rules);
        var alerts = new List<AlertTransition>();
        service.AlertChanged += a =>
        {
            lock (alerts)
            {
                alerts.Add(a);
            }
        };
        await service.StartAsync(TestContext.Current.CancellationToken);
        await using var tracer = new StepTracer(new TracerOptions { RunId = keys.Run }, bus.CreateProducer());
        await using var control = TracerControlPlane.Start(tracer, new ControlPlaneOptions { Redis = redis.ConnectionString });
        RunCommand? received = null;
        control.StopRequested += command => received = command;
        await Eventually.TrueAsync(() => control.IsConnected, "the worker is connected");

        CollectionSet gradients = CollectionSet.Of(Collection.Gradients);
        long step = 0;
        for (; step < 1000 && !control.ShouldStop; step++)
        {
            tracer.BeginStep(step);
            float magnitude = step < 10 ? 1e-2f : 1e-12f;
            tracer.AddValues("fc1.weight.grad", gradients, DType.Float32, [2], [magnitude, -magnitude]);
            tracer.EndStep();
            await Task.Delay(10, TestContext.Current.CancellationToken);
        }

        Assert.True(control.ShouldStop, "the stop command arrived");
        Assert.InRange(step, 11, 999);
        // ShouldStop turns true just before the event is raised, on the control plane's thread.
        await Eventually.TrueAsync(() => Volatile.Read(ref received) is not null, "StopRequested was raised");
        Assert.Contains("VanishingGradient fired at step 11", control.StopCommand!.Reason, StringComparison.Ordinal);
        Assert.Contains("alert VanishingGradient", control.StopCommand.IssuedBy, StringComparison.Ordinal);
        using var http = new HttpClient();
        string metrics = await http.GetStringAsync(new Uri(service.BaseAddress!, "metrics"), TestContext.Current.CancellationToken);
        Assert.Equal([1.0], Prometheus.Samples(metrics, "monitor_actions_total{action=\"stop\",result=\"issued\"}"));

        // The job ends by disposing its tracer: the end-of-run record says the monitor stopped it, and the alert that
        // stopped it resolves as the run's end.
        await tracer.DisposeAsync();
        await Eventually.TrueAsync(() => service.ActiveAlerts.Count == 0, "the alert resolved by the run's end");
        lock (alerts)
        {
            AlertTransition resolved = alerts[^1];
            Assert.True(resolved.IsResolution);
            Assert.StartsWith("run ended (stopped by the monitor) at step ", resolved.Description, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Demo_StopsEarly_WhenARuleWithTheStopActionFires()
    {
        string rules = Path.Combine(Path.GetTempPath(), $"stop-rules-{Guid.NewGuid():N}.yaml");
        await File.WriteAllTextAsync(rules, """
            rules:
              - rule: VanishingGradient
                parameters: { windowSteps: 3 }
                actions: [stop]
            """, TestContext.Current.CancellationToken);
        try
        {
            var output = new StringWriter();
            var runner = new DemoRunner(new DemoOptions
            {
                Steps = 5000, Fault = Fault.VanishingGradients, FaultAt = 30, MetricsPort = 0, RunId = "stop-demo", RulesFile = rules,
                ControlPollInterval = TimeSpan.FromMilliseconds(200),
            }, output);

            DemoResult result = await runner.RunAsync(TestContext.Current.CancellationToken);

            Assert.Equal(0, result.ExitCode);
            Assert.InRange(result.Steps, 33, 4999);
            Assert.Contains("Stopped:  training ended at step", output.ToString(), StringComparison.Ordinal);
            Assert.Contains("VanishingGradient fired at step 32", output.ToString(), StringComparison.Ordinal);
            // The demo ended the run as stopped: its alert resolved as the run's end.
            Assert.Contains("ALERT RESOLVED VanishingGradient run=stop-demo", output.ToString(), StringComparison.Ordinal);
            Assert.Contains("run ended (stopped by the monitor) at step", output.ToString(), StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(rules);
        }
    }
}
