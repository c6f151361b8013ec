using Monitor.Analysis.Rules;
using Monitor.Contracts.V1;
using static Monitor.Analysis.Tests.AnalysisTestDriver;
using static Monitor.Analysis.Tests.RuleTestData;

namespace Monitor.Analysis.Tests;

public sealed class SaturatedActivationRuleTests
{
    private const string Tanh = "block.tanh.output";

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

    // 50 samples x 8 tanh outputs; the first `saturated` units sit at +1 or -1, the others spread over (-0.9, 0.9).
    private static TensorRecord Saturating(int saturated, bool raw = true, string name = Tanh) =>
        Layer(name, 50, 8, (s, u) => u < saturated ? (s % 2 == 0 ? 1f : -1f) : 0.9f * MathF.Sin(s + u), raw);

    [Fact]
    public void Evaluate_FiresWhenMoreThanHalfTheUnitsSaturate_WithRawValues()
    {
        var driver = new AnalysisTestDriver(new SaturatedActivationRule());

        // 4 of 8 saturated (50%, not above) until step 7, then 5 (62.5%) until step 12, then 3.
        driver.PipeSteps(0, 20, step => Record(step, Saturating(step is >= 7 and < 12 ? 5 : step < 7 ? 4 : 3)));

        Assert.Equal([(AlertState.Firing, 7L), (AlertState.Inactive, 12L)], driver.Transitions.Select(t => (t.State, t.Step)));
        AlertTransition firing = driver.Transitions[0];
        Assert.Equal((62.5, 50.0), (firing.Value, firing.Threshold));
        Assert.Contains("62.5% of block.tanh.output's 8 units are saturated", firing.Description, StringComparison.Ordinal);
        Assert.Contains("tanh band", firing.Description, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1.0f, true)]
    [InlineData(-1.0f, true)]
    [InlineData(0.99999994f, false)] // the largest float below 1: tanh of about 8.5..9.0, inside the band
    public void Evaluate_MapsTheTanhBandThroughTanh_OnOutputs(float output, bool saturated)
    {
        var driver = new AnalysisTestDriver(new SaturatedActivationRule());

        driver.Pipe(Record(0, Layer(Tanh, 4, 2, (s, u) => output)));

        Assert.Equal(saturated, driver.Transitions.Count == 1);
    }

    [Theory]
    [InlineData(9.5f, true)]
    [InlineData(-9.5f, true)]
    [InlineData(9.4f, false)]
    public void Evaluate_ComparesWithTheThresholdsDirectly_WhenTensorsAreInputs(float input, bool saturated)
    {
        var driver = new AnalysisTestDriver(new SaturatedActivationRule { TensorsAreInputs = true });

        driver.Pipe(Record(0, Layer("fc1.tanh_input", 4, 2, (s, u) => input)));

        Assert.Equal(saturated, driver.Transitions.Count == 1);
    }

    [Theory]
    [InlineData("head.sigmoid.output", 1e-11f, true)] // below sigmoid(-23) = 1.03e-10
    [InlineData("head.sigmoid.output", 1e-9f, false)]
    [InlineData("head.tanh.output", 1e-11f, false)] // near 0 is the middle of tanh's band
    public void Evaluate_UsesTheSigmoidBand_ForSigmoidNames(string name, float output, bool saturated)
    {
        var driver = new AnalysisTestDriver(new SaturatedActivationRule());

        driver.Pipe(Record(0, Layer(name, 4, 2, (s, u) => output)));

        Assert.Equal(saturated, driver.Transitions.Count == 1);
    }

    [Fact]
    public void Evaluate_NeverFires_OnAHealthyTanhLayer()
    {
        var random = new Random(23);
        var driver = new AnalysisTestDriver(new SaturatedActivationRule());

        driver.PipeSteps(0, 200, step =>
        {
            float[] pre = Normal(random, 64 * 16, std: 2);
            return Record(step,
                Layer(Tanh, 64, 16, (s, u) => MathF.Tanh(pre[(s * 16) + u])),
                Layer("head.sigmoid.output", 64, 16, (s, u) => 1 / (1 + MathF.Exp(-pre[(s * 16) + u])), raw: false));
        });

        Assert.Empty(driver.Transitions);
    }

    [Theory]
    [InlineData(996, true)] // 99.6% of the outputs at exactly +-1.0: the histogram proves it (bucket [1, 2) starts at 1)
    [InlineData(995, false)]
    public void Evaluate_FiresFromTheSummary_OnlyWhenItProvesTheLayerSaturated(int atOne, bool fires)
    {
        var driver = new AnalysisTestDriver(new SaturatedActivationRule());

        driver.Pipe(Record(0, Layer(Tanh, 100, 10, (s, u) => (s * 10) + u < atOne ? ((s + u) % 2 == 0 ? 1f : -1f) : 0.99999994f, raw: false)));

        Assert.Equal(fires, driver.Transitions.Count == 1);
        if (fires)
        {
            Assert.Equal(99.6, driver.Transitions[0].Value, 1e-9);
            Assert.Contains("summary only", driver.Transitions[0].Description, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Evaluate_SelectsTanhAndSigmoidNamedActivations_ByDefault()
    {
        var driver = new AnalysisTestDriver(new SaturatedActivationRule());

        driver.Pipe(Record(0, Saturating(8, name: "act1.output"), Saturating(8, name: "Sigmoid_3.output")));

        Assert.Equal("Sigmoid_3.output", Assert.Single(driver.Transitions).Identity[AlertLabels.Tensor]);
    }

    [Fact]
    public void Evaluate_CountsARuleFault_WhenABandIsEmpty()
    {
        var driver = new AnalysisTestDriver(new SaturatedActivationRule { ThresholdTanhMin = 5, ThresholdTanhMax = 5 });

        driver.Pipe(Record(0, Saturating(8)));

        Assert.Equal(1, driver.Engine.RuleFaults);
        Assert.Contains("minimum must be below its maximum", driver.Engine.LastRuleFault, StringComparison.Ordinal);
    }

    [Fact]
    public void Requirements_AskForRawActivations()
    {
        TensorRequirement requirement = Assert.Single(new SaturatedActivationRule().Requirements);

        Assert.Equal(("activations", true), (requirement.Collection, requirement.Raw));
    }

    [Fact]
    public void Init_Throws_WhenAParameterIsOutOfRange()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new SaturatedActivationRule { ThresholdTanhMax = double.PositiveInfinity });
        Assert.Throws<ArgumentOutOfRangeException>(() => new SaturatedActivationRule { ThresholdSigmoidMin = double.NaN });
        Assert.Throws<ArgumentOutOfRangeException>(() => new SaturatedActivationRule { ThresholdInactivity = 100.1 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new SaturatedActivationRule { ThresholdLayer = 100 });
    }
}
