using System.Text.Json.Nodes;
using Monitor.Analysis.Drift;
using static Monitor.Analysis.Tests.Drift.DetectorRuns;

namespace Monitor.Analysis.Tests.Drift;

/// <summary>
/// KSWIN against river: its docstring example and its test suite, which need Python's <c>random.sample</c> drawn
/// exactly (<see cref="PythonRandom"/> against CPython), and the factory's parameters.
/// </summary>
public sealed class KswinDetectorTests(RiverStreamsFixture streams) : IClassFixture<RiverStreamsFixture>
{
    [Fact]
    public void Kswin_DetectsAt1016_AsRiversDocstring() =>
        Assert.Equal([1016], Drifts(new KswinDetector { Alpha = 0.0001, Seed = 42 }, streams["doc_a"]));

    [Fact]
    public void Kswin_DetectsAt1042_AsRiversTestSuite() =>
        Assert.Equal([1042], Drifts(new KswinDetector { Alpha = 0.0001, WindowSize = 200, StatSize = 100, Seed = 42 }, streams["suite_1"]));

    [Fact]
    public async Task PythonRandom_SamplesTheSameIndicesAsCPython()
    {
        // The pool method (n small against k) and the rejection method (n large), seeds of one and two words, 0 and negative.
        (long Seed, int N, int K)[] cases = [(42, 70, 30), (1, 100, 100), (0, 1000, 3), (-7, 50_000, 30), (12345, 7, 7), (5_000_000_000, 200, 64)];
        var request = new JsonObject { ["cases"] = new JsonArray([.. cases.Select(c => (JsonNode)new JsonObject { ["seed"] = c.Seed, ["n"] = c.N, ["k"] = c.K, ["draws"] = 5 })]) };

        JsonNode expected = await PythonReference.RunAsync("python_random.py", request);

        for (int c = 0; c < cases.Length; c++)
        {
            var random = new PythonRandom(cases[c].Seed);
            for (int draw = 0; draw < 5; draw++)
            {
                int[] sample = new int[cases[c].K];
                random.Sample(cases[c].N, sample);
                Assert.Equal(expected[c]![draw]!.AsArray().Select(v => (int)v!), sample);
            }
        }
    }

    [Fact]
    public void Update_RestartsAfterADetection_AndExposesTheLastTest()
    {
        var kswin = new KswinDetector { Alpha = 0.0001, Seed = 42 };
        long? detectedAt = null;
        for (int i = 0; i < 400; i++)
        {
            kswin.Update(i < 200 ? i % 2 : 5 + (i % 3));
            if (kswin.DriftDetected)
            {
                detectedAt ??= i;
                Assert.True(kswin.PValue <= 0.0001 && kswin.Statistic > 0.1);
            }
        }

        Assert.NotNull(detectedAt);
        Assert.InRange(detectedAt.Value, 200, 230);
        // The window started again after the detection and has filled since.
        Assert.True(kswin.Count < 400 - detectedAt);
        Assert.False(kswin.WarningDetected);
    }

    [Fact]
    public void Create_BuildsKswinFromRiversParameters_AndRefusesAStatSizeNotBelowTheWindow()
    {
        var kswin = (KswinDetector)DriftDetectors.Create("kswin", new Dictionary<string, string> { ["alpha"] = "0.01", ["window_size"] = "50", ["stat_size"] = "10", ["seed"] = "3" });

        Assert.Equal((0.01, 50, 10, 3L), (kswin.Alpha, kswin.WindowSize, kswin.StatSize, kswin.Seed));
        ArgumentException error = Assert.Throws<ArgumentException>(() => DriftDetectors.Create("kswin", new Dictionary<string, string> { ["window_size"] = "10", ["stat_size"] = "30" }));
        Assert.Contains("stat_size", error.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentOutOfRangeException>(() => new KswinDetector { Alpha = 1.1 });
    }
}
