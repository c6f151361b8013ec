using Monitor.Analysis.State;

namespace Monitor.Analysis.Drift;

/// <summary>
/// DDM, the drift detection method of Gama et al. (2004), as river's <c>drift.binary.DDM</c>: watches the error
/// rate <c>p</c> of a stream of 1 (error) and 0 (correct) and its binomial standard deviation
/// <c>s = sqrt(p (1 − p) / n)</c>; warns, then signals drift, when <c>p + s</c> rises far above the lowest
/// <c>p_min + s_min</c> seen.
/// </summary>
/// <remarks>
/// Per update, as river (<c>river/drift/binary/ddm.py</c>): the error rate takes the value (river's
/// <c>stats.Mean</c>); once more than <see cref="WarmStart"/> values are seen, <c>(p_min, s_min)</c> move to
/// <c>(p, s)</c> whenever <c>p + s &lt;= p_min + s_min</c>; warning when <c>p + s &gt; p_min + warning_threshold ·
/// s_min</c>, drift (and no warning) when <c>p + s &gt; p_min + drift_threshold · s_min</c>. The update after a
/// detection restarts the detector. O(1) time, no allocation, not thread-safe. Values other than 0 and 1 are averaged
/// as river averages them; a NaN stays in the error rate until the next restart.
/// </remarks>
public sealed class DdmDetector : IDriftDetector
{
    /// <summary>river's default <c>warm_start</c>.</summary>
    public const int DefaultWarmStart = 30;

    /// <summary>river's default <c>warning_threshold</c>.</summary>
    public const double DefaultWarningThreshold = 2.0;

    /// <summary>river's default <c>drift_threshold</c>.</summary>
    public const double DefaultDriftThreshold = 3.0;

    private const string DetectorName = "ddm";

    private readonly int _warmStart = DefaultWarmStart;
    private readonly double _warningThreshold = DefaultWarningThreshold;
    private readonly double _driftThreshold = DefaultDriftThreshold;

    private RunningMean _errorRate;
    private double _pMin = double.PositiveInfinity;
    private double _sMin = double.PositiveInfinity;
    private double _psMin = double.PositiveInfinity;
    private bool _driftDetected;
    private bool _warningDetected;

    /// <summary>river's <c>warm_start</c>: nothing is signalled until more than this many values are seen. Default 30;
    /// at least 0, else <see cref="ArgumentOutOfRangeException"/>.</summary>
    public int WarmStart
    {
        get => _warmStart;
        init => _warmStart = DetectorArguments.AtLeast(value, 0, DetectorName, "warm_start");
    }

    /// <summary>river's <c>warning_threshold</c>: standard deviations above the minimum for a warning. Default 2;
    /// finite, greater than 0.</summary>
    public double WarningThreshold
    {
        get => _warningThreshold;
        init => _warningThreshold = DetectorArguments.Positive(value, DetectorName, "warning_threshold");
    }

    /// <summary>river's <c>drift_threshold</c>: standard deviations above the minimum for drift. Default 3; finite,
    /// greater than 0.</summary>
    public double DriftThreshold
    {
        get => _driftThreshold;
        init => _driftThreshold = DetectorArguments.Positive(value, DetectorName, "drift_threshold");
    }

    /// <inheritdoc />
    public string Name => DetectorName;

    /// <inheritdoc />
    public bool DriftDetected => _driftDetected;

    /// <inheritdoc />
    public bool WarningDetected => _warningDetected;

    /// <summary>Values seen since the last restart.</summary>
    public long Count => (long)_errorRate.Count;

    /// <summary>The error rate <c>p</c> since the last restart.</summary>
    public double ErrorRate => _errorRate.Mean;

    /// <summary>river's <c>_p_min</c>: the error rate where <c>p + s</c> was lowest (+∞ until the warm start ends).</summary>
    public double MinErrorRate => _pMin;

    /// <summary>river's <c>_s_min</c>: the standard deviation where <c>p + s</c> was lowest (+∞ until the warm start ends).</summary>
    public double MinStandardDeviation => _sMin;

    /// <inheritdoc />
    public void WriteState(ref StateWriter writer)
    {
        _errorRate.Write(ref writer);
        writer.WriteDouble(_pMin);
        writer.WriteDouble(_sMin);
        writer.WriteDouble(_psMin);
        writer.WriteBool(_driftDetected);
        writer.WriteBool(_warningDetected);
    }

    /// <inheritdoc />
    public bool ReadState(ref StateReader reader)
    {
        _errorRate = RunningMean.Read(ref reader);
        _pMin = reader.ReadDouble("p min");
        _sMin = reader.ReadDouble("s min");
        _psMin = reader.ReadDouble("ps min");
        _driftDetected = reader.ReadBool("drift");
        _warningDetected = reader.ReadBool("warning");
        return true;
    }

    /// <inheritdoc />
    public void Update(double value)
    {
        if (_driftDetected)
        {
            _errorRate = default;
            _pMin = double.PositiveInfinity;
            _sMin = double.PositiveInfinity;
            _psMin = double.PositiveInfinity;
            _driftDetected = false;
            _warningDetected = false;
        }

        _errorRate.Update(value);
        double p = _errorRate.Mean;
        double n = _errorRate.Count;
        double s = Math.Sqrt(p * (1 - p) / n);
        if (n > _warmStart)
        {
            if (p + s <= _psMin)
            {
                _pMin = p;
                _sMin = s;
                _psMin = _pMin + _sMin;
            }

            _warningDetected = p + s > _pMin + (_warningThreshold * _sMin);
            if (p + s > _pMin + (_driftThreshold * _sMin))
            {
                _driftDetected = true;
                _warningDetected = false;
            }
        }
    }
}
