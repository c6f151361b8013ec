using Monitor.Analysis.State;

namespace Monitor.Analysis.Drift;

/// <summary>
/// HDDM_A, the Hoeffding-bound drift detector with the moving-average test of Frías-Blanco et al. (2014), as river's
/// <c>drift.binary.HDDM_A</c> (<c>HDDMA</c> in river's newest releases): compares the mean of a stream of 1 (error)
/// and 0 (correct) since a cut point with the mean up to that cut point; warns, then signals drift, when the mean has
/// risen (and, two-sided, fallen) by more than a Hoeffding bound at the warning and drift confidences.
/// </summary>
/// <remarks>
/// Per update, as river (<c>river/drift/binary/hddm_a.py</c>): the overall mean <c>z</c> takes the value; the cut
/// point for increases moves to now when <c>x_min + ε(n_min) &gt;= z + ε(n)</c>, the one for decreases when
/// <c>x_max − ε(n_max) &lt;= z − ε(n)</c>, with <c>ε(n) = sqrt(1/(2n) · ln(1/drift_confidence))</c>; then the mean
/// since a cut point is tested against <c>sqrt(m/2 · ln(2/confidence))</c>, <c>m = (n − n_cut)/n_cut · 1/n</c>. Drift
/// on an increase at <see cref="DriftConfidence"/> (no warning), else warning on one at
/// <see cref="WarningConfidence"/>; with <see cref="TwoSidedTest"/>, a decrease also sets drift or warning (without
/// clearing the other). The update after a detection restarts the detector. O(1) time, no allocation, not
/// thread-safe.
/// </remarks>
public sealed class HddmADetector : IDriftDetector
{
    /// <summary>river's default <c>drift_confidence</c>.</summary>
    public const double DefaultDriftConfidence = 0.001;

    /// <summary>river's default <c>warning_confidence</c>.</summary>
    public const double DefaultWarningConfidence = 0.005;

    /// <summary>river's default <c>two_sided_test</c>.</summary>
    public const bool DefaultTwoSidedTest = false;

    private const string DetectorName = "hddm-a";

    private readonly double _driftConfidence = DefaultDriftConfidence;
    private readonly double _warningConfidence = DefaultWarningConfidence;
    private readonly bool _twoSidedTest = DefaultTwoSidedTest;

    // The logarithms river takes on every update, taken once (the same call on the same argument: the same bits).
    private readonly double _logInverseDrift = Math.Log(1.0 / DefaultDriftConfidence);
    private readonly double _logTwiceInverseDrift = Math.Log(2.0 / DefaultDriftConfidence);
    private readonly double _logTwiceInverseWarning = Math.Log(2.0 / DefaultWarningConfidence);

    private RunningMean _overall;
    private RunningMean _atMinimum;
    private RunningMean _atMaximum;
    private bool _driftDetected;
    private bool _warningDetected;

    /// <summary>river's <c>drift_confidence</c>: the confidence of the drift test (smaller detects less). Default
    /// 0.001; in (0, 1), else <see cref="ArgumentOutOfRangeException"/>.</summary>
    public double DriftConfidence
    {
        get => _driftConfidence;
        init
        {
            _driftConfidence = DetectorArguments.InOpenUnitInterval(value, DetectorName, "drift_confidence");
            _logInverseDrift = Math.Log(1.0 / value);
            _logTwiceInverseDrift = Math.Log(2.0 / value);
        }
    }

    /// <summary>river's <c>warning_confidence</c>: the confidence of the warning test. Default 0.005; in (0, 1).</summary>
    public double WarningConfidence
    {
        get => _warningConfidence;
        init
        {
            _warningConfidence = DetectorArguments.InOpenUnitInterval(value, DetectorName, "warning_confidence");
            _logTwiceInverseWarning = Math.Log(2.0 / value);
        }
    }

    /// <summary>river's <c>two_sided_test</c>: also detect decreases of the mean. Default false.</summary>
    public bool TwoSidedTest
    {
        get => _twoSidedTest;
        init => _twoSidedTest = value;
    }

    /// <inheritdoc />
    public string Name => DetectorName;

    /// <inheritdoc />
    public bool DriftDetected => _driftDetected;

    /// <inheritdoc />
    public bool WarningDetected => _warningDetected;

    /// <summary>Values seen since the last restart.</summary>
    public long Count => (long)_overall.Count;

    /// <summary>The mean of the values since the last restart (river's <c>_z</c>).</summary>
    public double Mean => _overall.Mean;

    /// <inheritdoc />
    public void WriteState(ref StateWriter writer)
    {
        _overall.Write(ref writer);
        _atMinimum.Write(ref writer);
        _atMaximum.Write(ref writer);
        writer.WriteBool(_driftDetected);
        writer.WriteBool(_warningDetected);
    }

    /// <inheritdoc />
    public bool ReadState(ref StateReader reader)
    {
        _overall = RunningMean.Read(ref reader);
        _atMinimum = RunningMean.Read(ref reader);
        _atMaximum = RunningMean.Read(ref reader);
        _driftDetected = reader.ReadBool("drift");
        _warningDetected = reader.ReadBool("warning");
        return true;
    }

    /// <inheritdoc />
    public void Update(double value)
    {
        if (_driftDetected)
        {
            _overall = default;
            _atMinimum = default;
            _atMaximum = default;
            _driftDetected = false;
            _warningDetected = false;
        }

        _overall.Update(value);
        if (_atMinimum.Count == 0)
        {
            _atMinimum = _overall;
        }

        if (_atMaximum.Count == 0)
        {
            _atMaximum = _overall;
        }

        double boundOverall = HoeffdingBound(_overall.Count);
        if (_atMinimum.Mean + HoeffdingBound(_atMinimum.Count) >= _overall.Mean + boundOverall)
        {
            _atMinimum = _overall;
        }

        if (_atMaximum.Mean - HoeffdingBound(_atMaximum.Count) <= _overall.Mean - boundOverall)
        {
            _atMaximum = _overall;
        }

        if (MeanIncreased(_logTwiceInverseDrift))
        {
            _warningDetected = false;
            _driftDetected = true;
        }
        else
        {
            _warningDetected = MeanIncreased(_logTwiceInverseWarning);
            _driftDetected = false;
        }

        if (_twoSidedTest)
        {
            if (MeanDecreased(_logTwiceInverseDrift))
            {
                _driftDetected = true;
            }
            else if (MeanDecreased(_logTwiceInverseWarning))
            {
                _warningDetected = true;
            }
        }
    }

    // river bounds both cut points with the drift confidence, also for the warning test.
    private double HoeffdingBound(double n) => Math.Sqrt(1.0 / (2 * n) * _logInverseDrift);

    // logTwiceInverse: ln(2 / confidence).
    private bool MeanIncreased(double logTwiceInverse) =>
        _atMinimum.Count != _overall.Count && _overall.Mean - _atMinimum.Mean >= Bound(_atMinimum.Count, logTwiceInverse);

    private bool MeanDecreased(double logTwiceInverse) =>
        _atMaximum.Count != _overall.Count && _atMaximum.Mean - _overall.Mean >= Bound(_atMaximum.Count, logTwiceInverse);

    private double Bound(double cutCount, double logTwiceInverse)
    {
        double m = (_overall.Count - cutCount) / cutCount * (1.0 / _overall.Count);
        return Math.Sqrt(m / 2 * logTwiceInverse);
    }
}
