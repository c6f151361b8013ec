using System.CommandLine;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Monitor.Cli;
using Monitor.Contracts;
using Monitor.ControlPlane;
using Monitor.Samples.Training;
using Monitor.Transport.Kafka;
using StackExchange.Redis;

namespace Monitor.IntegrationTests;

/// <summary>
/// The commands against secured servers, from their real command lines: a redis-server that requires a password
/// and has an ACL user, the service's API behind a read and a write token, and the service over HTTPS with a
/// certificate made here.
/// </summary>
public sealed class SecuredConnectionTests : IDisposable
{
    private const string AdminPassword = "default-Pa55";
    private const string AlicePassword = "alice-Pa55";

    // alice may use every key and channel; requirepass protects the default user.
    private static readonly string[] AclArguments = ["--requirepass", AdminPassword, "--user", "alice", "on", ">" + AlicePassword, "~*", "&*", "+@all"];

    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("monitor-secured-");

    public void Dispose() => _directory.Delete(recursive: true);

    private static async Task<(int ExitCode, string Output, string Error)> InvokeAsync(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int exitCode = await MonitorCommand.InvokeAsync(args, new InvocationConfiguration { Output = output, Error = error }, cancellationToken: TestContext.Current.CancellationToken);
        return (exitCode, output.ToString(), error.ToString());
    }

    [Fact]
    public async Task TraceSet_WorksWithAnAclUser_AndAWrongPasswordIsAClearError()
    {
        await using RedisServerProcess redis = await RedisServerProcess.StartNewAsync(AclArguments, TestContext.Current.CancellationToken);
        var keys = new RunKeys();
        string alice = $"{redis.ConnectionString},user=alice,password={AlicePassword}";

        (int setExit, string setOutput, string setError) = await InvokeAsync("trace", "set", "--redis", alice, "--run", keys.Run, "--collection", "losses");
        (int getExit, string getOutput, _) = await InvokeAsync("trace", "get", "--redis", alice, "--run", keys.Run, "--json");
        (int wrongExit, _, string wrongError) = await InvokeAsync("trace", "get", "--redis", $"{redis.ConnectionString},user=alice,password=not-{AlicePassword}", "--run", keys.Run);
        (int anonymousExit, _, string anonymousError) = await InvokeAsync("trace", "get", "--redis", redis.ConnectionString, "--run", keys.Run);

        Assert.True(setExit == 0, setError);
        Assert.Contains("Stored selection version 1", setOutput, StringComparison.Ordinal);
        Assert.Equal(0, getExit);
        Assert.True(SelectionJson.Parse(getOutput).Collections.ContainsKey("losses"));
        Assert.Equal((3, 3), (wrongExit, anonymousExit));
        foreach (string error in (string[])[wrongError, anonymousError])
        {
            Assert.Contains("monitor trace get: cannot reach Redis at '127.0.0.1:", error, StringComparison.Ordinal);
            Assert.Contains("authentication", error, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain(AlicePassword, error, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", error, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Serve_ApiOverAnAclUser_RequiresTheReadOrWriteToken_AndSaysWhenRedisRefusesThePassword()
    {
        await using RedisServerProcess redis = await RedisServerProcess.StartNewAsync(AclArguments, TestContext.Current.CancellationToken);
        using var kafka = new MockKafkaCluster();
        var keys = new RunKeys();
        string tokenFile = Path.Combine(_directory.FullName, "api-token");
        await File.WriteAllTextAsync(tokenFile, "write-token\n", TestContext.Current.CancellationToken);
        int port = Ports.Free();
        await using (var serve = ServeInProcess.Start(
            "--kafka", kafka.BootstrapServers, "--group", "g-" + keys.Run, "--listen", $"http://127.0.0.1:{port}",
            "--redis", $"{redis.ConnectionString},user=alice,password={AlicePassword}",
            "--api-token-file", tokenFile, "--api-read-token", "read-token",
            "--kafka-property", "client.rack=rack-1", "--offset-reset", "latest", "--external-label", "cluster=it", "--resend-interval", "30s"))
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/") };
            await serve.WaitUntilHealthyAsync(http);
            string uri = $"api/runs/{keys.Run}/selection";

            Assert.Equal(HttpStatusCode.Unauthorized, await StatusAsync(http, HttpMethod.Get, uri, token: null));
            Assert.Equal(HttpStatusCode.Unauthorized, await StatusAsync(http, HttpMethod.Get, "api/alerts", token: "wrong"));
            Assert.Equal(HttpStatusCode.OK, await StatusAsync(http, HttpMethod.Get, "api/alerts", token: "read-token"));
            Assert.Equal(HttpStatusCode.OK, await StatusAsync(http, HttpMethod.Get, "metrics", token: null));
            Assert.Equal(HttpStatusCode.NotFound, await StatusAsync(http, HttpMethod.Get, uri, token: "read-token"));
            Assert.Equal(HttpStatusCode.Unauthorized, await StatusAsync(http, HttpMethod.Put, uri, token: "read-token"));
            Assert.Equal(HttpStatusCode.OK, await StatusAsync(http, HttpMethod.Put, uri, token: "write-token"));
            Assert.Equal(HttpStatusCode.OK, await StatusAsync(http, HttpMethod.Get, uri, token: "write-token"));
        }

        port = Ports.Free();
        await using (var serve = ServeInProcess.Start(
            "--kafka", kafka.BootstrapServers, "--group", "g2-" + keys.Run, "--listen", $"http://127.0.0.1:{port}",
            "--redis", $"{redis.ConnectionString},user=alice,password=wrong-password"))
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/") };
            await serve.WaitUntilHealthyAsync(http);
            using HttpResponseMessage refused = await http.GetAsync("api/runs", TestContext.Current.CancellationToken);
            string body = await refused.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);

            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
            Assert.Contains("the control plane (Redis) is unreachable", body, StringComparison.Ordinal);
            Assert.DoesNotContain("wrong-password", body, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task TraceSetAndGet_OverRedisTls_TrustTheServersPrivateCa_GivenInMonitorRedisCa()
    {
        // A private CA and a server certificate it signed, as an operator's Redis has them.
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest("CN=Monitor test CA", caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: true, hasPathLengthConstraint: false, pathLengthConstraint: 0, critical: true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, critical: true));
        DateTimeOffset now = DateTimeOffset.UtcNow;
        using X509Certificate2 ca = caRequest.CreateSelfSigned(now.AddDays(-1), now.AddDays(2));
        using var serverKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var serverRequest = new CertificateRequest("CN=localhost", serverKey, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName("localhost");
        names.AddIpAddress(IPAddress.Loopback);
        serverRequest.CertificateExtensions.Add(names.Build());
        serverRequest.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], critical: false));
        using X509Certificate2 server = serverRequest.Create(ca, now.AddDays(-1), now.AddDays(1), [1, 2, 3, 4, 5, 6, 7, 8]);
        string caFile = Path.Combine(_directory.FullName, "redis-ca.pem");
        string certificateFile = Path.Combine(_directory.FullName, "redis.crt");
        string keyFile = Path.Combine(_directory.FullName, "redis.key");
        await File.WriteAllTextAsync(caFile, ca.ExportCertificatePem(), TestContext.Current.CancellationToken);
        await File.WriteAllTextAsync(certificateFile, server.ExportCertificatePem(), TestContext.Current.CancellationToken);
        await File.WriteAllTextAsync(keyFile, serverKey.ExportPkcs8PrivateKeyPem(), TestContext.Current.CancellationToken);
        int tlsPort = Ports.Free();
        await using RedisServerProcess redis = await RedisServerProcess.StartNewAsync(
            ["--tls-port", tlsPort.ToString(System.Globalization.CultureInfo.InvariantCulture), "--tls-cert-file", certificateFile, "--tls-key-file", keyFile,
                "--tls-ca-cert-file", caFile, "--tls-auth-clients", "no"], TestContext.Current.CancellationToken);
        var keys = new RunKeys();
        string overTls = $"127.0.0.1:{tlsPort},ssl=true,sslHost=localhost";
        string monitor = Path.Combine(AppContext.BaseDirectory, "monitor.dll");
        var trusting = new Dictionary<string, string> { [RedisConnection.CaVariable] = caFile };

        (int setExit, string setOutput, string setError) = await Tool.RunAsync("dotnet", _directory.FullName, trusting, monitor, "trace", "set", "--redis", overTls, "--run", keys.Run, "--collection", "losses");
        (int getExit, string getOutput, _) = await Tool.RunAsync("dotnet", _directory.FullName, trusting, monitor, "trace", "get", "--redis", overTls, "--run", keys.Run, "--json");
        (int untrustedExit, _, string untrustedError) = await Tool.RunAsync("dotnet", _directory.FullName, monitor, "trace", "get", "--redis", overTls, "--run", keys.Run);
        (int missingExit, _, string missingError) = await Tool.RunAsync("dotnet", _directory.FullName, new Dictionary<string, string> { [RedisConnection.CaVariable] = caFile + ".missing" },
            monitor, "trace", "get", "--redis", overTls, "--run", keys.Run);

        Assert.True(setExit == 0, setError);
        Assert.Contains("Stored selection version 1", setOutput, StringComparison.Ordinal);
        Assert.Equal(0, getExit);
        Assert.True(SelectionJson.Parse(getOutput).Collections.ContainsKey("losses"));
        Assert.True(untrustedExit == 3, untrustedError);
        Assert.Contains("cannot reach Redis", untrustedError, StringComparison.Ordinal);
        Assert.Equal(2, missingExit);
        Assert.Contains($"{RedisConnection.CaVariable} names '{caFile}.missing', which does not exist", missingError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_ListensOverHttps_WithAPemCertificateAndKey()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName("localhost");
        names.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        DateTimeOffset now = DateTimeOffset.UtcNow;
        using X509Certificate2 certificate = request.CreateSelfSigned(now.AddDays(-1), now.AddDays(1));
        string certificateFile = Path.Combine(_directory.FullName, "tls.crt");
        string keyFile = Path.Combine(_directory.FullName, "tls.key");
        await File.WriteAllTextAsync(certificateFile, certificate.ExportCertificatePem(), TestContext.Current.CancellationToken);
        await File.WriteAllTextAsync(keyFile, key.ExportPkcs8PrivateKeyPem(), TestContext.Current.CancellationToken);
        using var kafka = new MockKafkaCluster();
        int port = Ports.Free();

        await using var serve = ServeInProcess.Start(
            "--kafka", kafka.BootstrapServers, "--group", "tls-" + Guid.NewGuid().ToString("N"), "--listen", $"https://127.0.0.1:{port}",
            "--tls-cert", certificateFile, "--tls-key", keyFile);
        string? seen = null;
        using var handler = new HttpClientHandler
        {
            // Trust exactly the certificate made above.
            ServerCertificateCustomValidationCallback = (_, presented, _, _) => (seen = presented?.Thumbprint) == certificate.Thumbprint,
        };
        using var https = new HttpClient(handler) { BaseAddress = new Uri($"https://127.0.0.1:{port}/") };
        await serve.WaitUntilHealthyAsync(https);
        using var plain = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/") };

        Assert.Equal(certificate.Thumbprint, seen);
        Assert.Equal("ok", await https.GetStringAsync("healthz", TestContext.Current.CancellationToken));
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => plain.GetStringAsync("healthz", TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task SampleJob_AppliesASelectionChangedThroughRedis_AndStopsOnCommand_OverKafka()
    {
        await using RedisServerProcess redis = await RedisServerProcess.StartNewAsync(AclArguments, TestContext.Current.CancellationToken);
        using var kafka = new MockKafkaCluster();
        var keys = new RunKeys();
        string alice = $"{redis.ConnectionString},user=alice,password={AlicePassword}";
        var output = new StringWriter();
        Task<int> job = SampleJobCommand.Create()
            .Parse(["--kafka", kafka.BootstrapServers, "--redis", alice, "--run", keys.Run, "--steps", "100000", "--step-delay-ms", "20", "--control-poll-ms", "100"])
            .InvokeAsync(new InvocationConfiguration { Output = output, Error = output }, TestContext.Current.CancellationToken);
        await using ConnectionMultiplexer client = await ConnectionMultiplexer.ConnectAsync(alice);
        var store = new SelectionStore(client);

        await WaitAsync(async () => (await store.WorkersAsync(keys.Run)).Count == 1 && (await store.CatalogAsync(keys.Run, 0)).Count > 0, job, "the job's heartbeat and catalog are in Redis");
        TraceSelection stored = await store.SetAsync(keys.Run, SelectionJson.Parse("""{"collections":{"losses":{}},"schedule":{"everySteps":1}}"""), new SelectionChange("it", "test"), [], TestContext.Current.CancellationToken);
        await WaitAsync(async () => (await store.WorkersAsync(keys.Run)).Single().SelectionVersion == stored.Version, job, $"the job applies version {stored.Version}");
        await store.IssueCommandAsync(keys.Run, new RunCommand { Command = "stop", Reason = "test over", IssuedBy = "it", IssuedAt = DateTimeOffset.UtcNow });
        int exitCode = await job.WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);

        Assert.True(exitCode == 0, output.ToString());
        Assert.Contains("on the monitor's request (it): test over", output.ToString(), StringComparison.Ordinal);
    }

    private static async Task WaitAsync(Func<Task<bool>> condition, Task job, string what)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!await condition())
        {
            Assert.False(job.IsCompleted, $"the job ended before {what}");
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), $"timed out waiting until {what}");
            await Task.Delay(50, TestContext.Current.CancellationToken);
        }
    }

    private static async Task<HttpStatusCode> StatusAsync(HttpClient http, HttpMethod method, string uri, string? token)
    {
        using var request = new HttpRequestMessage(method, uri);
        if (method == HttpMethod.Put)
        {
            request.Content = new StringContent("""{"collections":{"losses":{}}}""", Encoding.UTF8, "application/json");
        }

        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        using HttpResponseMessage response = await http.SendAsync(request, TestContext.Current.CancellationToken);
        return response.StatusCode;
    }

    /// <summary><c>monitor serve</c> run from its command line in this process until disposed (as Ctrl+C would end it).</summary>
    private sealed class ServeInProcess : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly StringWriter _error = new();
        private readonly Task<int> _run;

        private ServeInProcess(string[] args) =>
            _run = MonitorCommand.InvokeAsync(["serve", .. args], new InvocationConfiguration { Output = _error, Error = _error }, cancellationToken: _stop.Token);

        public static ServeInProcess Start(params string[] args) => new(args);

        public async Task WaitUntilHealthyAsync(HttpClient http)
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (true)
            {
                Assert.False(_run.IsCompleted, "serve ended: " + _error + (_run.IsCompletedSuccessfully ? $" (exit code {_run.Result})" : ""));
                try
                {
                    using HttpResponseMessage response = await http.GetAsync("healthz", TestContext.Current.CancellationToken);
                    if (response.IsSuccessStatusCode)
                    {
                        return;
                    }
                }
                catch (HttpRequestException)
                {
                    // Not listening yet.
                }

                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), "serve did not answer /healthz: " + _error);
                await Task.Delay(50, TestContext.Current.CancellationToken);
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            int exitCode = await _run.WaitAsync(TimeSpan.FromSeconds(30));
            _stop.Dispose();
            Assert.True(exitCode == 0, "serve exit code " + exitCode + ": " + _error);
        }
    }
}
