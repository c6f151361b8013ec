using Monitor.Analysis.Drift;
using static Monitor.Analysis.Tests.Drift.DetectorRuns;

namespace Monitor.Analysis.Tests.Drift;

/// <summary>
/// river's own expectations, on river's own streams (rebuilt by Reference/river_streams.py with Python's random and
/// numpy's legacy seeding): the examples in the docstrings of <c>river/drift/adwin.py</c>, <c>page_hinkley.py</c>,
/// <c>binary/ddm.py</c>, <c>eddm.py</c>, <c>hddm_a.py</c> and <c>hddm_w.py</c> (each docstring lists every detection
/// over its whole stream), <c>river/drift/test_adwin_regression.py</c>, and <c>river/drift/test_drift_detectors.py</c>.
/// </summary>
public sealed class DriftDetectorRiverExamplesTests(RiverStreamsFixture streams) : IClassFixture<RiverStreamsFixture>
{
    [Fact]
    public void Adwin_DetectsOnlyAt1023_OnTheDocstringStream() =>
        Assert.Equal([1023], Drifts(new AdwinDetector(), streams["doc_a"]));

    [Fact]
    public void PageHinkley_DetectsOnlyAt1006_OnTheDocstringStream() =>
        Assert.Equal([1006], Drifts(new PageHinkleyDetector(), streams["doc_a"]));

    [Fact]
    public void Ddm_PrintsRiversDocstringEvents_OnTheBinaryStream() =>
        Assert.Equal(["warning 1084", "drift 1334", "warning 1492"], DocstringEvents(new DdmDetector(), streams["doc_b"]));

    [Fact]
    public void Eddm_PrintsRiversDocstringEvents_WithAlpha08AndBeta075() =>
        Assert.Equal(["warning 1059", "drift 1278"], DocstringEvents(new EddmDetector { Alpha = 0.8, Beta = 0.75 }, streams["doc_b"]));

    [Fact]
    public void HddmA_PrintsRiversDocstringEvents_OnTheBinaryStream() =>
        Assert.Equal(["warning 451", "drift 1206"], DocstringEvents(new HddmADetector(), streams["doc_b"]));

    [Fact]
    public void HddmW_PrintsRiversDocstringEvents_OnTheBinaryStream() =>
        Assert.Equal(["warning 451", "drift 1077"], DocstringEvents(new HddmWDetector(), streams["doc_b"]));

    [Fact]
    public void Adwin_DetectsEachSegment_AsRiversRegressionTest() =>
        Assert.Equal([1023, 2015, 3007], Drifts(new AdwinDetector(), streams["adwin_segments"]));

    [Fact]
    public void Adwin_MatchesRiversTestSuite_OnDataStream1() =>
        Assert.Equal([1023], Drifts(new AdwinDetector(), streams["suite_1"]));

    [Fact]
    public void Ddm_MatchesRiversTestSuite_OnDataStream2AndOnes()
    {
        Assert.Equal([1049], Drifts(new DdmDetector(), streams["suite_2"]));
        Assert.Empty(Drifts(new DdmDetector(), DriftStreams.Constant(1000, 1.0)));
    }

    [Fact]
    public void Eddm_MatchesRiversTestSuite_WithAlpha09AndBeta08() =>
        Assert.Equal([1059], Drifts(new EddmDetector { Alpha = 0.9, Beta = 0.8 }, streams["suite_2"]));

    [Fact]
    public void HddmA_MatchesRiversTestSuite_OneAndTwoSided()
    {
        Assert.Equal([1047], Drifts(new HddmADetector(), streams["suite_2"]));
        Assert.Equal([531, 1015, 1545], Drifts(new HddmADetector { TwoSidedTest = true }, streams["suite_3"]));
    }

    [Fact]
    public void HddmW_MatchesRiversTestSuite_OneAndTwoSided()
    {
        Assert.Equal([1018], Drifts(new HddmWDetector(), streams["suite_2"]));
        Assert.Equal([507, 1032, 1508], Drifts(new HddmWDetector { TwoSidedTest = true }, streams["suite_3"]));
    }

    [Fact]
    public void PageHinkley_MatchesRiversTestSuite_InEveryMode()
    {
        Assert.Equal([588, 1681], Drifts(new PageHinkleyDetector { Mode = PageHinkleyMode.Up }, streams["suite_3"]));
        Assert.Equal([1172], Drifts(new PageHinkleyDetector { Mode = PageHinkleyMode.Down }, streams["suite_3"]));
        Assert.Equal([588, 1097, 1585], Drifts(new PageHinkleyDetector { Mode = PageHinkleyMode.Both }, streams["suite_3"]));
    }
}
