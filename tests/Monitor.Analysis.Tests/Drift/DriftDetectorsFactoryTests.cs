using Monitor.Analysis.Drift;

namespace Monitor.Analysis.Tests.Drift;

/// <summary>Parameter validation of the detectors and <see cref="DriftDetectors.Create"/>.</summary>
public sealed class DriftDetectorsFactoryTests
{
    private static readonly Dictionary<string, string> None = [];

    [Fact]
    public void Names_AreTheCliNames_InRiversOrder() =>
        Assert.Equal(["adwin", "page-hinkley", "kswin", "ddm", "eddm", "hddm-a", "hddm-w"], DriftDetectors.Names);

    [Theory]
    [InlineData("adwin", typeof(AdwinDetector))]
    [InlineData("page-hinkley", typeof(PageHinkleyDetector))]
    [InlineData("ddm", typeof(DdmDetector))]
    [InlineData("eddm", typeof(EddmDetector))]
    [InlineData("hddm-a", typeof(HddmADetector))]
    [InlineData("hddm-w", typeof(HddmWDetector))]
    public void Create_BuildsTheNamedDetector_WhenGivenNoParameters(string name, Type type)
    {
        IDriftDetector detector = DriftDetectors.Create(name, None);
        Assert.IsType(type, detector);
        Assert.Equal(name, detector.Name);
        Assert.False(detector.DriftDetected);
        Assert.False(detector.WarningDetected);
    }

    [Fact]
    public void Defaults_AreRiversDefaults_WhenNothingIsSet()
    {
        var adwin = (AdwinDetector)DriftDetectors.Create("adwin", None);
        Assert.Equal((0.002, 32, 5, 5, 10), (adwin.Delta, adwin.Clock, adwin.MaxBuckets, adwin.MinWindowLength, adwin.GracePeriod));
        var ph = (PageHinkleyDetector)DriftDetectors.Create("page-hinkley", None);
        Assert.Equal((30, 0.005, 50.0, 1 - 0.0001, PageHinkleyMode.Both), (ph.MinInstances, ph.Delta, ph.Threshold, ph.Alpha, ph.Mode));
        var ddm = (DdmDetector)DriftDetectors.Create("ddm", None);
        Assert.Equal((30, 2.0, 3.0), (ddm.WarmStart, ddm.WarningThreshold, ddm.DriftThreshold));
        var eddm = (EddmDetector)DriftDetectors.Create("eddm", None);
        Assert.Equal((30, 0.95, 0.9), (eddm.WarmStart, eddm.Alpha, eddm.Beta));
        var hddmA = (HddmADetector)DriftDetectors.Create("hddm-a", None);
        Assert.Equal((0.001, 0.005, false), (hddmA.DriftConfidence, hddmA.WarningConfidence, hddmA.TwoSidedTest));
        var hddmW = (HddmWDetector)DriftDetectors.Create("hddm-w", None);
        Assert.Equal((0.001, 0.005, 0.05, false), (hddmW.DriftConfidence, hddmW.WarningConfidence, hddmW.Lambda, hddmW.TwoSidedTest));
    }

    [Fact]
    public void Create_AppliesEveryRiverSpelledParameter_WhenGiven()
    {
        var adwin = (AdwinDetector)DriftDetectors.Create("adwin", new Dictionary<string, string>
        {
            ["delta"] = "0.01", ["clock"] = "1", ["max_buckets"] = "3", ["min_window_length"] = "2", ["grace_period"] = "0",
        });
        Assert.Equal((0.01, 1, 3, 2, 0), (adwin.Delta, adwin.Clock, adwin.MaxBuckets, adwin.MinWindowLength, adwin.GracePeriod));

        var ph = (PageHinkleyDetector)DriftDetectors.Create("page-hinkley", new Dictionary<string, string>
        {
            ["min_instances"] = "10", ["delta"] = "0", ["threshold"] = "1e1", ["alpha"] = "1", ["mode"] = "DOWN",
        });
        Assert.Equal((10, 0.0, 10.0, 1.0, PageHinkleyMode.Down), (ph.MinInstances, ph.Delta, ph.Threshold, ph.Alpha, ph.Mode));

        var ddm = (DdmDetector)DriftDetectors.Create("ddm", new Dictionary<string, string>
        {
            ["warm_start"] = "0", ["warning_threshold"] = "1.5", ["drift_threshold"] = "2.5",
        });
        Assert.Equal((0, 1.5, 2.5), (ddm.WarmStart, ddm.WarningThreshold, ddm.DriftThreshold));

        var eddm = (EddmDetector)DriftDetectors.Create("eddm", new Dictionary<string, string>
        {
            ["warm_start"] = "5", ["alpha"] = "0.8", ["beta"] = "0.75",
        });
        Assert.Equal((5, 0.8, 0.75), (eddm.WarmStart, eddm.Alpha, eddm.Beta));

        var hddmA = (HddmADetector)DriftDetectors.Create("hddm-a", new Dictionary<string, string>
        {
            ["drift_confidence"] = "0.01", ["warning_confidence"] = "0.05", ["two_sided_test"] = "True",
        });
        Assert.Equal((0.01, 0.05, true), (hddmA.DriftConfidence, hddmA.WarningConfidence, hddmA.TwoSidedTest));

        var hddmW = (HddmWDetector)DriftDetectors.Create("hddm-w", new Dictionary<string, string>
        {
            ["drift_confidence"] = "0.01", ["warning_confidence"] = "0.05", ["lambda_val"] = "0.2", ["two_sided_test"] = "false",
        });
        Assert.Equal((0.01, 0.05, 0.2, false), (hddmW.DriftConfidence, hddmW.WarningConfidence, hddmW.Lambda, hddmW.TwoSidedTest));
    }

    [Fact]
    public void Create_Throws_WhenTheNameIsUnknown()
    {
        var error = Assert.Throws<ArgumentException>(() => DriftDetectors.Create("adwn", None));
        Assert.Contains("'adwn'", error.Message, StringComparison.Ordinal);
        Assert.Contains("adwin, page-hinkley, kswin, ddm, eddm, hddm-a, hddm-w", error.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => DriftDetectors.Parameters("kswin-typo"));
    }

    [Fact]
    public void Create_Throws_WhenAParameterIsUnknown()
    {
        var error = Assert.Throws<ArgumentException>(() => DriftDetectors.Create("adwin", new Dictionary<string, string> { ["window"] = "5" }));
        Assert.Equal("window", error.ParamName);
        Assert.Contains("delta, clock, max_buckets, min_window_length, grace_period", error.Message, StringComparison.Ordinal);

        // .NET spellings are not river's.
        error = Assert.Throws<ArgumentException>(() => DriftDetectors.Create("hddm-w", new Dictionary<string, string> { ["lambda"] = "0.1" }));
        Assert.Contains("drift_confidence, warning_confidence, lambda_val, two_sided_test", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("adwin", "clock", "32.5", "an integer")]
    [InlineData("adwin", "delta", "small", "a finite number")]
    [InlineData("adwin", "delta", "NaN", "a finite number")]
    [InlineData("adwin", "delta", "0,01", "a finite number")]
    [InlineData("page-hinkley", "mode", "sideways", "up, down, both")]
    [InlineData("hddm-a", "two_sided_test", "yes", "true or false")]
    [InlineData("ddm", "warm_start", "", "an integer")]
    public void Create_Throws_WhenAValueDoesNotParse(string name, string parameter, string value, string expected)
    {
        var error = Assert.Throws<ArgumentException>(() => DriftDetectors.Create(name, new Dictionary<string, string> { [parameter] = value }));
        Assert.Equal(parameter, error.ParamName);
        Assert.Contains($"'{parameter}'", error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("adwin", "delta", "0")]
    [InlineData("adwin", "delta", "1")]
    [InlineData("adwin", "clock", "0")]
    [InlineData("adwin", "max_buckets", "1")]
    [InlineData("adwin", "min_window_length", "0")]
    [InlineData("adwin", "grace_period", "-1")]
    [InlineData("page-hinkley", "min_instances", "0")]
    [InlineData("page-hinkley", "delta", "-0.1")]
    [InlineData("page-hinkley", "threshold", "0")]
    [InlineData("page-hinkley", "alpha", "0")]
    [InlineData("page-hinkley", "alpha", "1.5")]
    [InlineData("ddm", "warm_start", "-1")]
    [InlineData("ddm", "warning_threshold", "0")]
    [InlineData("ddm", "drift_threshold", "-3")]
    [InlineData("eddm", "warm_start", "-5")]
    [InlineData("eddm", "alpha", "1.2")]
    [InlineData("eddm", "beta", "0")]
    [InlineData("hddm-a", "drift_confidence", "0")]
    [InlineData("hddm-a", "warning_confidence", "1")]
    [InlineData("hddm-w", "drift_confidence", "2")]
    [InlineData("hddm-w", "lambda_val", "0")]
    [InlineData("hddm-w", "lambda_val", "1.01")]
    public void Create_ThrowsOutOfRange_NamingTheRiverParameter(string name, string parameter, string value)
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => DriftDetectors.Create(name, new Dictionary<string, string> { [parameter] = value }));
        Assert.Equal(parameter, error.ParamName);
        Assert.Contains($"{name} parameter '{parameter}' must", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void InitProperties_ThrowOutOfRange_WithRiversParameterNames()
    {
        Assert.Equal("delta", Assert.Throws<ArgumentOutOfRangeException>(() => new AdwinDetector { Delta = double.NaN }).ParamName);
        Assert.Equal("max_buckets", Assert.Throws<ArgumentOutOfRangeException>(() => new AdwinDetector { MaxBuckets = 0 }).ParamName);
        Assert.Equal("threshold", Assert.Throws<ArgumentOutOfRangeException>(() => new PageHinkleyDetector { Threshold = double.PositiveInfinity }).ParamName);
        Assert.Equal("mode", Assert.Throws<ArgumentOutOfRangeException>(() => new PageHinkleyDetector { Mode = (PageHinkleyMode)7 }).ParamName);
        Assert.Equal("drift_threshold", Assert.Throws<ArgumentOutOfRangeException>(() => new DdmDetector { DriftThreshold = 0 }).ParamName);
        Assert.Equal("beta", Assert.Throws<ArgumentOutOfRangeException>(() => new EddmDetector { Beta = -1 }).ParamName);
        Assert.Equal("warning_confidence", Assert.Throws<ArgumentOutOfRangeException>(() => new HddmADetector { WarningConfidence = 0 }).ParamName);
        Assert.Equal("lambda_val", Assert.Throws<ArgumentOutOfRangeException>(() => new HddmWDetector { Lambda = 2 }).ParamName);
    }

    [Fact]
    public void Eddm_RejectsAlphaBelowBeta_AsRiverDoes()
    {
        var error = Assert.Throws<ArgumentException>(() => DriftDetectors.Create("eddm", new Dictionary<string, string> { ["beta"] = "0.96" }));
        Assert.Equal("alpha", error.ParamName);
        Assert.Contains("'alpha' (0.95) must be at least 'beta' (0.96)", error.Message, StringComparison.Ordinal);

        // Built directly, the pair can only be checked once both are set: on the first update.
        var eddm = new EddmDetector { Alpha = 0.5, Beta = 0.6 };
        Assert.Throws<InvalidOperationException>(() => eddm.Update(1));
        var equal = new EddmDetector { Alpha = 0.7, Beta = 0.7 };
        equal.Update(1);
    }
}
