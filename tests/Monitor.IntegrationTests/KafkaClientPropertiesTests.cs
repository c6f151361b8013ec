using System.CommandLine;
using Monitor.Cli;
using Monitor.Hosting;
using Monitor.Samples.Training;

namespace Monitor.IntegrationTests;

/// <summary>
/// <c>--kafka-property</c> and <c>--kafka-config</c> of <c>serve</c>, <c>demo --kafka</c> and the sample job: parsed
/// from the real command lines and handed to librdkafka, whose refusal of a bad value proves they reach the clients.
/// </summary>
public sealed class KafkaClientPropertiesTests : IDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("monitor-kafka-config-");

    public void Dispose() => _directory.Delete(recursive: true);

    private string Write(string name, string text)
    {
        string path = Path.Combine(_directory.FullName, name);
        File.WriteAllText(path, text);
        return path;
    }

    private static async Task<(int ExitCode, string Output, string Error)> InvokeAsync(RootCommand command, params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int exitCode = await command.Parse(args).InvokeAsync(new InvocationConfiguration { Output = output, Error = error }, TestContext.Current.CancellationToken);
        return (exitCode, output.ToString(), error.ToString());
    }

    [Theory]
    [InlineData("serve", "--kafka", "127.0.0.1:1", "--listen", "http://127.0.0.1:0")]
    [InlineData("demo", "--kafka", "mock", "--metrics-port", "0", "--steps", "1")]
    public async Task Command_PassesTheProperty_ToLibrdkafka_WhichRefusesABadValue(params string[] args)
    {
        (int exitCode, _, string error) = await InvokeAsync(MonitorCommand.Create(), [.. args, "--kafka-property", "security.protocol=bogus"]);

        Assert.Equal(2, exitCode);
        Assert.Contains("Kafka client configuration refused: Invalid value \"bogus\" for configuration property \"security.protocol\"", error, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SampleJob_PassesTheFileProperties_ToItsProducer()
    {
        string file = Write("client.properties", "# a secured cluster\nbootstrap.servers = 127.0.0.1:1\n\nsocket.timeout.ms: bogus\n");

        (int exitCode, _, string error) = await InvokeAsync(SampleJobCommand.Create(), "--kafka-config", file, "--steps", "1");

        Assert.Equal(2, exitCode);
        Assert.Contains("Invalid value for configuration property \"socket.timeout.ms\"", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_ReportsAnUnknownProperty_ByName()
    {
        (int exitCode, _, string error) = await InvokeAsync(MonitorCommand.Create(), "serve", "--kafka", "127.0.0.1:1", "--kafka-property", "no.such.property=1");

        Assert.Equal(2, exitCode);
        Assert.Contains("no.such.property", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("a=1\nnot a property\n", ":2: 'not a property' is not key=value")]
    [InlineData("a=1\n=2\n", ":2: '=2' is not key=value")]
    [InlineData("a=1\n# comment\na=2\n", ":3: 'a' is already set on line 1")]
    [InlineData("bootstrap.servers=elsewhere:9092\n", "disagree; give the bootstrap servers once")]
    public async Task Serve_RefusesABadConfigFile_NamingFileAndLine(string text, string expected)
    {
        string file = Write("bad.properties", text);

        (int exitCode, _, string error) = await InvokeAsync(MonitorCommand.Create(), "serve", "--kafka", "127.0.0.1:1", "--kafka-config", file);

        Assert.Equal(2, exitCode);
        Assert.Contains(expected, error, StringComparison.Ordinal);
        Assert.Contains("monitor serve:", error, StringComparison.Ordinal);
        if (expected.StartsWith(':'))
        {
            Assert.Contains(file + expected, error, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("--kafka-property 'nonsense' is not key=value", "serve", "--kafka", "k:9092", "--kafka-property", "nonsense")]
    [InlineData("--kafka is required (or bootstrap.servers", "serve")]
    [InlineData("need --kafka", "demo", "--kafka-property", "linger.ms=1")]
    [InlineData("File does not exist", "serve", "--kafka", "k:9092", "--kafka-config", "/nonexistent/client.properties")]
    public async Task InvalidKafkaOptions_FailWithAMessage(string expected, params string[] args)
    {
        (int exitCode, _, string error) = await InvokeAsync(MonitorCommand.Create(), args);

        Assert.NotEqual(0, exitCode);
        Assert.Contains(expected, error, StringComparison.Ordinal);
    }

    [Fact]
    public void Resolve_MergesFileEnvironmentAndCommandLine_LaterWins()
    {
        var properties = new KafkaClientProperties(readEnvironment: true);
        var command = new RootCommand { properties.Property, properties.ConfigFile };
        string file = Write("client.properties", "! Java's other comment\nsecurity.protocol=SSL\nsasl.mechanism=PLAIN\nssl.ca.location=/from/file\nbootstrap.servers=b1:9092,b2:9092\n");
        ParseResult parse = command.Parse(["--kafka-config", file, "--kafka-property", "sasl.mechanism=SCRAM-SHA-512", "--kafka-property", "sasl.jaas.config=a=b"]);
        Dictionary<string, string> environment = new()
        {
            ["MONITOR_KAFKA_SECURITY_PROTOCOL"] = "SASL_SSL",
            ["MONITOR_KAFKA_SASL_PASSWORD"] = "pw",
            [KafkaClientProperties.ConfigVariable] = "/not/a/property",
            ["MONITOR_REDIS"] = "not kafka",
        };

        KafkaClientSettings settings = properties.Resolve(parse, bootstrap: null, environment);

        Assert.Equal("b1:9092,b2:9092", settings.BootstrapServers);
        Assert.Equal(new Dictionary<string, string>
        {
            ["security.protocol"] = "SASL_SSL",
            ["sasl.mechanism"] = "SCRAM-SHA-512",
            ["sasl.password"] = "pw",
            ["ssl.ca.location"] = "/from/file",
            ["sasl.jaas.config"] = "a=b",
        }, settings.Properties.OrderBy(p => p.Key).ToDictionary());
    }

    [Fact]
    public void Resolve_AcceptsTheSameBootstrapTwice_AndIgnoresTheEnvironment_WhenToldTo()
    {
        var properties = new KafkaClientProperties(readEnvironment: false);
        var command = new RootCommand { properties.Property, properties.ConfigFile };
        ParseResult parse = command.Parse(["--kafka-property", "bootstrap.servers=k:9092"]);

        KafkaClientSettings settings = properties.Resolve(parse, "k:9092");

        Assert.Equal("k:9092", settings.BootstrapServers);
        Assert.Empty(settings.Properties);
    }
}
