using Monitor.Analysis.Rules;
using Monitor.Contracts.V1;
using static Monitor.Analysis.Tests.AnalysisTestDriver;
using static Monitor.Analysis.Tests.RuleTestRecords;

namespace Monitor.Analysis.Tests;

public sealed class CheckInputImagesRuleTests
{
    /// <summary>A batch of <paramref name="n"/> images of 3 channels of 4 × 4 pixels, NCHW or NHWC.</summary>
    internal static TensorRecord Images(int n, Func<int, int, float> pixel, bool nhwc = false, DType dtype = DType.Float32)
    {
        const int Channels = 3;
        const int Pixels = 16;
        float[] values = new float[n * Channels * Pixels];
        for (int image = 0; image < n; image++)
        {
            for (int c = 0; c < Channels; c++)
            {
                for (int p = 0; p < Pixels; p++)
                {
                    int index = nhwc ? (image * Pixels * Channels) + (p * Channels) + c : (image * Channels * Pixels) + (c * Pixels) + p;
                    values[index] = pixel(c, p);
                }
            }
        }

        long[] shape = nhwc ? [n, 4, 4, Channels] : [n, Channels, 4, 4];
        return Raw("image", values, shape, dtype, Collection.Inputs);
    }

    // Channel 0 in [0, 1] (0.3 / 0.7, mean 0.5): not normalized. Channels 1 and 2: -1 / +1 (mean 0, std 1).
    internal static float Unnormalized(int channel, int pixel) => channel == 0 ? (pixel % 2 == 0 ? 0.3f : 0.7f) : (pixel % 2 == 0 ? -1f : 1f);

    [Fact]
    public void Evaluate_FiresWhenTheWindowOfImagesHasAChannelMeanAboveTheThreshold()
    {
        var driver = new AnalysisTestDriver(new CheckInputImagesRule());

        // Batches of 10 images: the default window of 500 images closes at the 50th record (step 49).
        driver.PipeSteps(0, 49, step => Record(step, Images(10, Unnormalized)));

        AlertTransition fired = Assert.Single(driver.Transitions);
        Assert.Equal((AlertState.Firing, 49L, "image"), (fired.State, fired.Step, fired.Identity[AlertLabels.Tensor]));
        Assert.Equal(0.5, fired.Value, 1e-6);
        Assert.Equal(0.2, fired.Threshold);
        Assert.Equal("CheckInputImages", fired.RuleName);
        Assert.Contains("mean of channel 0 of image over the last 500 images is 0.5", fired.Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_NeverFires_WhenImagesAreNormalized()
    {
        var random = new Random(31);
        var driver = new AnalysisTestDriver(new CheckInputImagesRule { ThresholdStd = 0.2 });

        // Every channel about N(0, 1): sums of 12 uniforms minus 6.
        driver.PipeSteps(0, 500, step => Record(step, Images(16, (_, _) => (float)(Enumerable.Range(0, 12).Sum(_ => random.NextDouble()) - 6))));

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Evaluate_ReadsTheChannelAxis_WhenImagesAreNhwc()
    {
        var driver = new AnalysisTestDriver(new CheckInputImagesRule { Channel = 3, ThresholdSamples = 10 });

        // Channel 2 is the unnormalized one here.
        AlertTransition fired = Assert.Single(driver.Pipe(Record(0, Images(10, (c, p) => Unnormalized(2 - c, p), nhwc: true))));

        Assert.Equal(0.5, fired.Value, 1e-6);
        Assert.Contains("channel 2", fired.Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_ChecksTheStandardDeviation_OnlyWhenThresholdStdIsSet()
    {
        // Zero mean, standard deviation 0.5 in every channel.
        StepRecord record = Record(0, Images(10, (_, p) => p % 2 == 0 ? -0.5f : 0.5f));

        var meanOnly = new AnalysisTestDriver(new CheckInputImagesRule { ThresholdSamples = 10 });
        meanOnly.Pipe(record);
        var withStd = new AnalysisTestDriver(new CheckInputImagesRule { ThresholdSamples = 10, ThresholdStd = 0.2 });
        withStd.Pipe(record);

        Assert.Empty(meanOnly.Transitions);
        AlertTransition fired = Assert.Single(withStd.Transitions);
        Assert.Equal((0.5, 0.2), (fired.Value, fired.Threshold));
        Assert.Contains("standard deviation of channel 0", fired.Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_CountsOnlyWholeImages_WhenRawValuesAreTruncated()
    {
        var driver = new AnalysisTestDriver(new CheckInputImagesRule { ThresholdSamples = 2 });

        // One and a half images of 48 values: one image counts, the window (2) is not full yet.
        TensorRecord cut = Images(2, Unnormalized);
        float[] firstValues = [.. TensorValues.Raw(cut)[..72]];
        TensorRecord truncated = Raw("image", firstValues, [2, 3, 4, 4], DType.Float32, Collection.Inputs);
        truncated.Raw.Truncated = true;
        truncated.Raw.TotalElements = 96;

        Assert.Empty(driver.Pipe(Record(0, truncated)));
        Assert.Single(driver.Pipe(Record(1, Images(1, Unnormalized))));
    }

    [Fact]
    public void Evaluate_SkipsTokenIdsAndTensorsWithoutRawValues()
    {
        var driver = new AnalysisTestDriver(new CheckInputImagesRule { ThresholdSamples = 1 });

        driver.PipeSteps(0, 20, step => Record(step,
            Raw("input_ids", [5, 7, 9, 11], [2, 2], DType.Int64, Collection.Inputs),
            Images(4, Unnormalized, dtype: DType.Int32),
            Tensor("image", 0.5, 0.5, Collection.Inputs)));

        Assert.Empty(driver.Transitions);
    }

    [Fact]
    public void Evaluate_FiresForUint8Images()
    {
        var driver = new AnalysisTestDriver(new CheckInputImagesRule { ThresholdSamples = 4 });

        AlertTransition fired = Assert.Single(driver.Pipe(Record(0, Images(4, (_, p) => p * 16, dtype: DType.Uint8))));

        Assert.Equal(120.0, fired.Value, 1e-9);
    }

    [Fact]
    public void Defaults_MatchSmdebug()
    {
        var rule = new CheckInputImagesRule();

        Assert.Equal((0.2, (double?)null, 500, 1), (rule.ThresholdMean, rule.ThresholdStd, rule.ThresholdSamples, rule.Channel));
        Assert.Equal([Collection.Inputs], rule.Selector.Collections);
        Assert.Equal(("inputs", true), (Assert.Single(rule.Requirements).Collection, rule.Requirements[0].Raw));
    }

    [Fact]
    public void Init_Throws_WhenAParameterIsOutOfRange()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new CheckInputImagesRule { ThresholdMean = -0.1 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new CheckInputImagesRule { ThresholdMean = double.NaN });
        Assert.Throws<ArgumentOutOfRangeException>(() => new CheckInputImagesRule { ThresholdStd = -1 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new CheckInputImagesRule { ThresholdSamples = 0 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new CheckInputImagesRule { Channel = 0 });
    }
}
