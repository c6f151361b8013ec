using System.Text.Json.Nodes;

namespace Monitor.Analysis.Tests.Drift;

/// <summary>The streams of river's drift examples and test suite, built once by Reference/river_streams.py.</summary>
public sealed class RiverStreamsFixture : IAsyncLifetime
{
    private Dictionary<string, double[]> _streams = [];

    /// <summary>The stream called <paramref name="name"/> (see river_streams.py).</summary>
    public double[] this[string name] => _streams[name];

    public async ValueTask InitializeAsync()
    {
        JsonNode result = await PythonReference.RunAsync("river_streams.py", new JsonObject());
        _streams = result.AsObject().ToDictionary(p => p.Key, p => p.Value!.AsArray().Select(v => v!.GetValue<double>()).ToArray());
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
