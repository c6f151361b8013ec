using Monitor.Analysis.Drift;
using static Monitor.Analysis.Tests.Drift.DetectorRuns;

namespace Monitor.Analysis.Tests.Drift;

/// <summary>The detectors' exposed state and river's restart-after-detection semantics (river's regression tests).</summary>
public sealed class DriftDetectorStateTests
{
    [Fact]
    public void Adwin_WidthCountsEveryValue_BeforeAnyDrift()
    {
        var adwin = new AdwinDetector();
        Assert.Equal(0.0, adwin.Estimation);
        for (int i = 1; i <= 100; i++)
        {
            adwin.Update(1.0);
            Assert.Equal(i, adwin.Width);
        }

        Assert.Equal(0, adwin.DetectionCount);
        Assert.False(adwin.WarningDetected);
    }

    [Fact]
    public void Adwin_KeepsRiversTotalEstimationAndVariance_WhenGivenOneToFive()
    {
        var adwin = new AdwinDetector();
        foreach (double value in new[] { 1.0, 2.0, 3.0, 4.0, 5.0 })
        {
            adwin.Update(value);
        }

        Assert.Equal(15.0, adwin.Total);
        Assert.Equal(3.0, adwin.Estimation);
        Assert.Equal(5, adwin.Width);
        Assert.Equal(10.0, adwin.Variance, 12);
    }

    [Fact]
    public void Adwin_VarianceIsTheSumOfSquaredDeviations_WhenNothingIsDropped()
    {
        double[] values = DriftStreams.Gaussian(99, (500, 5.0, 2.0));
        var adwin = new AdwinDetector { Clock = 1_000_000 };
        foreach (double value in values)
        {
            adwin.Update(value);
        }

        double mean = values.Average();
        double expected = values.Sum(v => (v - mean) * (v - mean));
        Assert.Equal(expected, adwin.Variance, expected * 1e-9);
        Assert.Equal(values.Sum(), adwin.Total, 1e-9);
    }

    [Fact]
    public void Adwin_RestartsFromAnEmptyWindow_OnTheUpdateAfterADetection()
    {
        var adwin = new AdwinDetector { Clock = 1 };
        for (int i = 0; i < 500; i++)
        {
            adwin.Update(0.0);
        }

        int updates = 0;
        while (!adwin.DriftDetected && updates < 500)
        {
            adwin.Update(100.0);
            updates++;
        }

        Assert.True(adwin.DriftDetected);
        Assert.Equal(1, adwin.DetectionCount);
        Assert.True(adwin.Width < 500 + updates);

        adwin.Update(50.0);
        Assert.False(adwin.DriftDetected);
        Assert.Equal(1, adwin.Width);
        Assert.Equal(50.0, adwin.Estimation);
        Assert.Equal(0, adwin.DetectionCount);
    }

    [Fact]
    public void Adwin_TestsNoCut_WithinTheGracePeriod()
    {
        var adwin = new AdwinDetector { GracePeriod = 100, Clock = 1 };
        double[] stream = [.. DriftStreams.Constant(50, 0.0), .. DriftStreams.Constant(50, 1000.0)];
        Assert.Empty(Drifts(adwin, stream));
    }

    [Fact]
    public void Adwin_DetectsNothing_OnAConstantOrAlternatingStream()
    {
        Assert.Empty(Drifts(new AdwinDetector(), DriftStreams.Constant(5000, 1.0)));
        Assert.Empty(Drifts(new AdwinDetector(), [.. Enumerable.Range(0, 2000).Select(i => (double)(i % 2))]));
    }

    [Fact]
    public void PageHinkley_ExposesRiversRunningSums()
    {
        var ph = new PageHinkleyDetector { Delta = 0.5, Alpha = 1.0 };
        ph.Update(1.0);
        // mean 1, deviation 0: S+ = -0.5, S- = 0.5.
        Assert.Equal((1L, 1.0, -0.5, 0.5, -0.5, 0.5), (ph.Count, ph.Mean, ph.SumIncrease, ph.SumDecrease, ph.MinIncrease, ph.MaxDecrease));
        ph.Update(3.0);
        // mean 2, deviation 1: S+ = -0.5 + 1 - 0.5 = 0, S- = 0.5 + 1 + 0.5 = 2.
        Assert.Equal((2L, 2.0, 0.0, 2.0, -0.5, 2.0), (ph.Count, ph.Mean, ph.SumIncrease, ph.SumDecrease, ph.MinIncrease, ph.MaxDecrease));
        Assert.False(ph.WarningDetected);
    }

    [Fact]
    public void PageHinkley_RestartsItsSums_OnTheUpdateAfterADetection()
    {
        var ph = new PageHinkleyDetector { MinInstances = 1, Threshold = 1.0 };
        ph.Update(0.0);
        ph.Update(10.0);
        Assert.True(ph.DriftDetected);
        ph.Update(7.0);
        Assert.False(ph.DriftDetected);
        // As after a first value: mean 7, deviation 0, S+ = -delta, S- = +delta.
        Assert.Equal((1L, 7.0, -0.005, 0.005, -0.005, 0.005), (ph.Count, ph.Mean, ph.SumIncrease, ph.SumDecrease, ph.MinIncrease, ph.MaxDecrease));
    }

    [Theory]
    [InlineData("ddm")]
    [InlineData("eddm")]
    [InlineData("hddm-a")]
    [InlineData("hddm-w")]
    public void BinaryDetectors_ClearDriftAndWarning_OnTheUpdateAfterADetection(string name)
    {
        IDriftDetector detector = DriftDetectors.Create(name, new Dictionary<string, string>());
        double[] stream = DriftStreams.Bernoulli(11, (1000, 0.1), (1000, 0.9));
        int detectedAt = -1;
        for (int i = 0; i < stream.Length && detectedAt < 0; i++)
        {
            detector.Update(stream[i]);
            if (detector.DriftDetected)
            {
                detectedAt = i;
            }
        }

        Assert.True(detectedAt >= 0, $"{name} detected nothing");
        detector.Update(0.0);
        Assert.False(detector.DriftDetected);
        Assert.False(detector.WarningDetected);
    }

    [Fact]
    public void Ddm_CountsFromOne_AfterARestart()
    {
        var ddm = new DdmDetector { WarmStart = 0 };
        double[] stream = [.. DriftStreams.Constant(100, 0.0), .. DriftStreams.Constant(100, 1.0)];
        int i = 0;
        while (!ddm.DriftDetected)
        {
            ddm.Update(stream[i++]);
        }

        ddm.Update(1.0);
        Assert.Equal(1, ddm.Count);
        Assert.Equal(1.0, ddm.ErrorRate);
    }

    [Fact]
    public void Eddm_TreatsOnlyOneAsAnError()
    {
        var eddm = new EddmDetector();
        foreach (double value in new[] { 0.0, 1.0, 0.5, 2.0, 1.0, 0.0, 0.0, 1.0 })
        {
            eddm.Update(value);
        }

        Assert.Equal(8, eddm.Count);
        Assert.Equal(3, eddm.ErrorCount);
        // Distances 2, 3, 3 (river counts from the start of the stream for the first error).
        Assert.Equal(8.0 / 3.0, eddm.MeanDistance, 12);
    }
}
