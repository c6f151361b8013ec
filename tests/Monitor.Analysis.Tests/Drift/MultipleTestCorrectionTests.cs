using Monitor.Analysis.Drift;

namespace Monitor.Analysis.Tests.Drift;

public sealed class MultipleTestCorrectionTests
{
    [Fact]
    public void Bonferroni_DividesLevelByFeatures_WhenSeveralPValues()
    {
        Assert.Equal(new CorrectionResult(true, 0.05 / 3), MultipleTestCorrection.Bonferroni([0.02, 0.3, 0.011]));
        Assert.Equal(new CorrectionResult(false, 0.05 / 3), MultipleTestCorrection.Bonferroni([0.02, 0.3, 0.017]));
        Assert.Equal(new CorrectionResult(false, 0.025), MultipleTestCorrection.Bonferroni([0.025, 0.5]));
        Assert.Equal(new CorrectionResult(true, 0.01), MultipleTestCorrection.Bonferroni([0.009], level: 0.01));
    }

    [Fact]
    public void None_ComparesEachPValueWithLevel_WhenNoCorrection()
    {
        Assert.Equal(new CorrectionResult(true, 0.05), MultipleTestCorrection.None([0.5, 0.04]));
        Assert.Equal(new CorrectionResult(false, 0.05), MultipleTestCorrection.None([0.5, 0.05]));
    }

    public static TheoryData<double[], bool, double> BenjaminiHochbergCases => new()
    {
        // Sorted [0.01, 0.03, 0.04, 0.2] against [0.0125, 0.025, 0.0375, 0.05]: only rank 1 is below.
        { [0.01, 0.04, 0.03, 0.2], true, 0.0125 },
        // Ranks 1 and 2 below (thresholds 0.00625, 0.0125, ...).
        { [0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205], true, 0.0125 },
        // Step-up: rank 1 is not below 0.025 but rank 2 is below 0.05, so the threshold is 0.05.
        { [0.04, 0.03], true, 0.05 },
        { [0.02, 0.024], true, 0.05 },
        // A p-value equal to its threshold is not below it.
        { [0.025, 0.5], false, double.NaN },
        { [0.5, 0.6], false, double.NaN },
        // NaN sorts last in numpy and is never below: 0.01 keeps rank 1 of 2.
        { [double.NaN, 0.01], true, 0.025 },
    };

    [Theory]
    [MemberData(nameof(BenjaminiHochbergCases))]
    public void BenjaminiHochberg_ReturnsLargestSignificantThreshold_WhenSortedPValuesBelowRankThresholds(double[] pValues, bool drift, double threshold)
    {
        double[] copy = (double[])pValues.Clone();
        CorrectionResult result = MultipleTestCorrection.BenjaminiHochberg(pValues, new DriftWorkspace());
        Assert.Equal(drift, result.IsDrift);
        Assert.Equal(threshold, result.Threshold, 15);
        Assert.Equal(copy, pValues);
    }

    [Fact]
    public void BenjaminiHochbergThresholds_AreLevelTimesRankOverCount_WhenAsked()
    {
        double[] thresholds = new double[4];
        MultipleTestCorrection.BenjaminiHochbergThresholds(thresholds);
        double[] expected = [0.0125, 0.025, 0.0375, 0.05];
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.Equal(expected[i], thresholds[i], 1e-16);
        }
    }

    [Fact]
    public void Corrections_Throw_WhenNoPValues()
    {
        Assert.Throws<ArgumentException>(() => MultipleTestCorrection.Bonferroni([]));
        Assert.Throws<ArgumentException>(() => MultipleTestCorrection.None([]));
        Assert.Throws<ArgumentException>(() => MultipleTestCorrection.BenjaminiHochberg([], new DriftWorkspace()));
    }
}
