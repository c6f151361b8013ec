using Monitor.Analysis.Drift;

namespace Monitor.Analysis.Tests.Drift;

/// <summary>The detectors run every value of a series: once warmed up, an update allocates nothing, drifts included.</summary>
public sealed class DriftDetectorAllocationTests
{
    [Theory]
    [InlineData("adwin")]
    [InlineData("page-hinkley")]
    [InlineData("ddm")]
    [InlineData("eddm")]
    [InlineData("hddm-a")]
    [InlineData("hddm-w")]
    public void Update_DoesNotAllocate_InSteadyState(string name)
    {
        // Repeated regime changes: the detectors restart many times during the measured part.
        double[] stream = name is "adwin" or "page-hinkley"
            ? DriftStreams.Gaussian(21, (20_000, 0.0, 1.0), (5_000, 2.0, 1.0), (20_000, -1.0, 3.0), (5_000, 0.0, 0.1))
            : DriftStreams.Bernoulli(21, (20_000, 0.1), (5_000, 0.6), (20_000, 0.3), (5_000, 0.05));
        IDriftDetector detector = DriftDetectors.Create(name, new Dictionary<string, string>());
        // Warm-up: an ADWIN window of 50,000 values grows its bucket rows to their capacity for this stream.
        foreach (double value in stream)
        {
            detector.Update(value);
        }

        int drifts = 0;
        long allocated = SteadyStateAllocation.LeastBytes(() =>
        {
            for (int round = 0; round < 2; round++)
            {
                foreach (double value in stream)
                {
                    detector.Update(value);
                    drifts += detector.DriftDetected ? 1 : 0;
                }
            }
        });

        Assert.Equal(0, allocated);
        Assert.True(drifts > 0, "the measured part should include restarts");
    }
}
