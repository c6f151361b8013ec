using Monitor.Analysis.Rules;
using Monitor.Contracts.V1;
using static Monitor.Analysis.Tests.AnalysisTestDriver;
using static Monitor.Analysis.Tests.RuleTestData;

namespace Monitor.Analysis.Tests;

public sealed class DeadReluRuleTests
{
    private const string Relu = "relu1.output";

    /// <summary>A [samples, units] activation, row-major, element (sample, unit) from <paramref name="value"/>.</summary>
    private static TensorRecord Layer(string name, int samples, int units, Func<int, int, float> value, bool raw = true)
    {
        var values = new float[samples * units];
        for (int s = 0; s < samples; s++)
        {
            for (int u = 0; u < units; u++)
            {
                values[(s * units) + u] = value(s, u);
            }
        }

        return Values(name, values, [samples, units], raw, Collection.Activations);
    }

    // 32 samples x 10 units; the first `dead` units output 0, the others fire on every other sample.
    private static TensorRecord Dying(int dead, bool raw = true, string name = Relu) =>
        Layer(name, 32, 10, (s, u) => u < dead || (s + u) % 2 == 0 ? 0f : 1.5f, raw);

    [Fact]
    public void Evaluate_FiresWhenMoreThanHalfTheUnitsAreDead_WithRawValues()
    {
        var driver = new AnalysisTestDriver(new DeadReluRule());

        // 4 of 10 units dead (40%) until step 5, 6 (60% > 50%) until step 15, then 4 again.
        driver.PipeSteps(0, 20, step => Record(step, Dying(step is >= 5 and < 15 ? 6 : 4)));

        Assert.Equal([(AlertState.Firing, 5L), (AlertState.Inactive, 15L)], driver.Transitions.Select(t => (t.State, t.Step)));
        AlertTransition firing = driver.Transitions[0];
        Assert.Equal((60.0, 50.0), (firing.Value, firing.Threshold));
        Assert.Equal(Relu, firing.Identity[AlertLabels.Tensor]);
        Assert.Contains("60% of relu1.output's 10 units are dead", firing.Description, StringComparison.Ordinal);
        Assert.Contains("of 32 samples", firing.Description, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1, true)] // active in 1 of 200 samples = 0.5% < 1%: dead
    [InlineData(2, false)] // 2 of 200 = 1%, not below 1%: alive
    public void Evaluate_CountsAUnitDead_WhenActiveInFewerThanThresholdInactivityPercentOfSamples(int activeSamples, bool fires)
    {
        var driver = new AnalysisTestDriver(new DeadReluRule());

        // Units 0..2 of 4 are active in `activeSamples` samples only, unit 3 always: 75% dead or none.
        driver.Pipe(Record(0, Layer(Relu, 200, 4, (s, u) => u == 3 || s < activeSamples ? 1f : 0f)));

        Assert.Equal(fires, driver.Transitions.Count == 1);
    }

    [Fact]
    public void Evaluate_NeverFires_OnAHealthyReluLayer()
    {
        var random = new Random(17);
        var driver = new AnalysisTestDriver(new DeadReluRule());

        driver.PipeSteps(0, 200, step =>
        {
            float[] pre = Normal(random, 64 * 16);
            return Record(step, Layer(Relu, 64, 16, (s, u) => Math.Max(pre[(s * 16) + u], 0f)), Layer("relu2.output", 64, 16, (s, u) => Math.Max(pre[(s * 16) + u], 0f), raw: false));
        });

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Evaluate_TreatsNegativeInputsAsInactive_WhenTheSelectorPicksPreActivations()
    {
        var driver = new AnalysisTestDriver(new DeadReluRule { Selector = new TensorSelector([Collection.Activations], [@"^fc2\.output$"]) });

        // The layer feeding the ReLU: units 0..5 always negative, the rest positive in half the samples.
        driver.Pipe(Record(0, Layer("fc2.output", 32, 10, (s, u) => u < 6 || s % 2 == 0 ? -0.5f - u : 0.7f)));

        Assert.Equal(60, Assert.Single(driver.Transitions).Value);
    }

    [Fact]
    public void Evaluate_UsesTheCompleteSamples_WhenRawValuesAreTruncated()
    {
        var driver = new AnalysisTestDriver(new DeadReluRule());

        // 95 of 320 values: 9 complete samples of 10 units.
        driver.Pipe(Record(0, Truncated(Dying(6), 95)));

        AlertTransition firing = Assert.Single(driver.Transitions);
        Assert.Contains("of 9 samples", firing.Description, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(996, true)] // 99.6% zeros > 99.5%: proves more than half the units dead
    [InlineData(995, false)] // 99.5% is not above the bound
    public void Evaluate_FiresFromTheSummary_OnlyWhenItProvesTheLayerDead(int zeros, bool fires)
    {
        var driver = new AnalysisTestDriver(new DeadReluRule());

        driver.Pipe(Record(0, Layer(Relu, 100, 10, (s, u) => (s * 10) + u < zeros ? 0f : 2f, raw: false)));

        Assert.Equal(fires, driver.Transitions.Count == 1);
        if (fires)
        {
            AlertTransition firing = driver.Transitions[0];
            Assert.Equal(99.6, firing.Value, 1e-9);
            Assert.Equal(99.5, firing.Threshold, 1e-9);
            Assert.Contains("summary only", firing.Description, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Evaluate_MissesAPartlyDeadLayer_WhenOnlySummariesAreTraced()
    {
        var withRaw = new AnalysisTestDriver(new DeadReluRule());
        var summaryOnly = new AnalysisTestDriver(new DeadReluRule());

        // 60% of the units dead, the rest active half the time: 80% zeros, which units are dead the summary cannot say.
        withRaw.Pipe(Record(0, Dying(6)));
        summaryOnly.Pipe(Record(0, Dying(6, raw: false)));

        Assert.Single(withRaw.Transitions);
        Assert.Empty(summaryOnly.Transitions);
    }

    [Theory]
    [InlineData("act2.output", false)] // module name does not say ReLU: needs a selector
    [InlineData("fc1.leaky_relu.output", false)]
    [InlineData("block.PReLU.output", false)]
    [InlineData("block.ReLU.output", true)]
    public void Evaluate_SelectsReluNamedActivations_ByDefault(string name, bool selected)
    {
        var driver = new AnalysisTestDriver(new DeadReluRule());

        driver.Pipe(Record(0, Dying(10, name: name)));

        Assert.Equal(selected, driver.Transitions.Count == 1);
    }

    [Fact]
    public void Requirements_AskForRawActivations()
    {
        TensorRequirement requirement = Assert.Single(new DeadReluRule().Requirements);

        Assert.Equal(("activations", true), (requirement.Collection, requirement.Raw));
    }

    [Theory]
    [InlineData(-1.0, 50.0)]
    [InlineData(101.0, 50.0)]
    [InlineData(1.0, 100.0)]
    [InlineData(1.0, -0.1)]
    [InlineData(double.NaN, 50.0)]
    public void Init_Throws_WhenAThresholdIsOutOfRange(double inactivity, double layer)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new DeadReluRule { ThresholdInactivity = inactivity, ThresholdLayer = layer });
    }
}
