using Monitor.Analysis.Rules;
using Monitor.Contracts.V1;
using static Monitor.Analysis.Tests.AnalysisTestDriver;
using static Monitor.Analysis.Tests.RuleTestRecords;

namespace Monitor.Analysis.Tests;

public sealed class NLPSequenceRatioRuleTests
{
    /// <summary>A batch of <paramref name="sequences"/> token sequences of length 10, each with <paramref name="padding"/> trailing zeros.</summary>
    internal static TensorRecord Tokens(int sequences, Func<int, int> padding, int unknown = 0)
    {
        const int Length = 10;
        float[] values = new float[sequences * Length];
        for (int s = 0; s < sequences; s++)
        {
            for (int i = 0; i < Length; i++)
            {
                values[(s * Length) + i] = i >= Length - padding(s) ? 0 : i < unknown ? 1 : 100 + i;
            }
        }

        return Raw("input_ids", values, [sequences, Length], DType.Int64, Collection.Inputs);
    }

    [Fact]
    public void Evaluate_FiresAtTheFirstBatchWhosePaddingShareExceedsTheThreshold()
    {
        var driver = new AnalysisTestDriver(new NLPSequenceRatioRule());

        // 8 sequences of 10 tokens; padding grows by one token a step: 4 of 10 (40%) at step 4, 6 of 10 at step 6.
        // The share is above the default 50% from step 6 on.
        driver.PipeSteps(0, 10, step => Record(step, Tokens(8, _ => (int)step)));

        AlertTransition fired = Assert.Single(driver.Transitions);
        Assert.Equal((AlertState.Firing, 6L, "input_ids"), (fired.State, fired.Step, fired.Identity[AlertLabels.Tensor]));
        Assert.Equal((60.0, 50.0), (fired.Value, fired.Threshold));
        Assert.Equal("NLPSequenceRatio", fired.RuleName);
        Assert.Contains("token 0 is 60.0% of the 8 sequences of input_ids (length 10), allowed 50.0%", fired.Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_AveragesTheShareOverTheSequencesOfTheBatch()
    {
        var driver = new AnalysisTestDriver(new NLPSequenceRatioRule());

        // Half the sequences fully padded, half not padded at all: 50%, not above the threshold; one more padded
        // token in one sequence tips it over (41 of 80).
        Assert.Empty(driver.Pipe(Record(0, Tokens(8, s => s % 2 == 0 ? 10 : 0))));
        Assert.Equal(51.25, Assert.Single(driver.Pipe(Record(1, Tokens(8, s => s % 2 == 0 ? 10 : s == 1 ? 1 : 0)))).Value);
    }

    [Fact]
    public void Evaluate_ChecksEveryConfiguredToken_AndReportsTheWorst()
    {
        var driver = new AnalysisTestDriver(new NLPSequenceRatioRule { TokenThresholdsPercent = new Dictionary<int, double> { [0] = 50, [1] = 20 } });

        // 30% padding (fine) and 30% unknown tokens (id 1, above 20%).
        AlertTransition fired = Assert.Single(driver.Pipe(Record(0, Tokens(4, _ => 3, unknown: 3))));

        Assert.Equal((30.0, 20.0), (fired.Value, fired.Threshold));
        Assert.Contains("token 1 is 30.0%", fired.Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_NeverFires_ForWellBucketedBatches()
    {
        var random = new Random(37);
        var driver = new AnalysisTestDriver(new NLPSequenceRatioRule { TokenThresholdsPercent = new Dictionary<int, double> { [0] = 50, [1] = 5 } });

        // Padding 0-4 of 10 tokens per sequence, no unknown tokens.
        driver.PipeSteps(0, 1_000, step => Record(step, Tokens(32, _ => random.Next(5))));

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Evaluate_SkipsTensorsThatAreNotTokenIds()
    {
        var driver = new AnalysisTestDriver(new NLPSequenceRatioRule());
        float[] zeros = new float[40];

        // Float images and uint8 pixels full of zeros, and a summary-only id tensor: none are token ids with raw values.
        driver.PipeSteps(0, 10, step => Record(step,
            Raw("image", zeros, [1, 1, 4, 10], DType.Float32, Collection.Inputs),
            Raw("pixels", zeros, [4, 10], DType.Uint8, Collection.Inputs),
            Tensor("input_ids", 0, 0, Collection.Inputs)));

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Evaluate_UsesWholeSequencesOnly_WhenRawValuesAreTruncated()
    {
        var driver = new AnalysisTestDriver(new NLPSequenceRatioRule());

        // Shape [3, 10] but 25 values: two whole sequences (no padding) are used, the padded half of the third is not.
        float[] values = [.. Enumerable.Range(0, 20).Select(i => 100f + i), .. Enumerable.Repeat(0f, 5)];
        TensorRecord truncated = Raw("input_ids", values, [3, 10], DType.Int32, Collection.Inputs);
        truncated.Raw.Truncated = true;

        Assert.Empty(driver.Pipe(Record(0, truncated)));
    }

    [Fact]
    public void Defaults_MatchSmdebug()
    {
        var rule = new NLPSequenceRatioRule();

        Assert.Equal(new Dictionary<int, double> { [0] = 50 }, rule.TokenThresholdsPercent);
        Assert.Equal([Collection.Inputs], rule.Selector.Collections);
        Assert.True(Assert.Single(rule.Requirements).Raw);
    }

    [Fact]
    public void Init_Throws_WhenTokenThresholdsAreInvalid()
    {
        Assert.Throws<ArgumentNullException>(() => new NLPSequenceRatioRule { TokenThresholdsPercent = null! });
        Assert.Throws<ArgumentException>(() => new NLPSequenceRatioRule { TokenThresholdsPercent = new Dictionary<int, double>() });
        Assert.Throws<ArgumentOutOfRangeException>(() => new NLPSequenceRatioRule { TokenThresholdsPercent = new Dictionary<int, double> { [-1] = 10 } });
        Assert.Throws<ArgumentOutOfRangeException>(() => new NLPSequenceRatioRule { TokenThresholdsPercent = new Dictionary<int, double> { [0] = 101 } });
        Assert.Throws<ArgumentOutOfRangeException>(() => new NLPSequenceRatioRule { TokenThresholdsPercent = new Dictionary<int, double> { [0] = double.NaN } });
    }
}
