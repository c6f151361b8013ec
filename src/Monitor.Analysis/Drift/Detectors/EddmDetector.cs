using Monitor.Analysis.State;

namespace Monitor.Analysis.Drift;

/// <summary>
/// EDDM, the early drift detection method of Baena-García et al. (2006), as river's <c>drift.binary.EDDM</c>: watches
/// the distance between consecutive errors (1 values) of a stream of 1 (error) and 0 (correct), its mean <c>p′</c>
/// and standard deviation <c>s′</c>; warns, then signals drift, when <c>p′ + 2s′</c> falls well below its maximum
/// (errors coming closer together).
/// </summary>
/// <remarks>
/// <para>
/// Per update, as river (<c>river/drift/binary/eddm.py</c>): only a value equal to 1 counts as an error; it feeds the
/// distance to the previous error (in values) into a running mean and variance (river's <c>stats.Var</c>, ddof 1).
/// Once more than <see cref="WarmStart"/> values are seen, <c>p′ + 2s′</c> either raises the maximum, or, once more
/// than <see cref="WarmStart"/> errors are seen, is compared with it: drift when the ratio is below
/// <see cref="Beta"/>, else warning when it is below <see cref="Alpha"/>, else no warning. As in river, a value of 0
/// leaves the warning as it was, and a drift leaves the warning of the error before. The update after a detection
/// restarts the detector. O(1) time, no allocation, not thread-safe.
/// </para>
/// <para>
/// river requires <c>alpha &gt;= beta</c>. Init properties cannot see each other, so that pair is checked by
/// <see cref="DriftDetectors.Create"/> (an <see cref="ArgumentException"/>) and by the first <see cref="Update"/>
/// (an <see cref="InvalidOperationException"/>); each property's own range is checked when it is set.
/// </para>
/// </remarks>
public sealed class EddmDetector : IDriftDetector
{
    /// <summary>river's default <c>warm_start</c>.</summary>
    public const int DefaultWarmStart = 30;

    /// <summary>river's default <c>alpha</c>.</summary>
    public const double DefaultAlpha = 0.95;

    /// <summary>river's default <c>beta</c>.</summary>
    public const double DefaultBeta = 0.9;

    private const string DetectorName = "eddm";

    private readonly int _warmStart = DefaultWarmStart;
    private readonly double _alpha = DefaultAlpha;
    private readonly double _beta = DefaultBeta;

    private RunningVariance _distances;
    private long _count;
    private long _lastError;
    private long _errorCount;
    private double _maxLevel = -1.0;
    private bool _parametersChecked;
    private bool _driftDetected;
    private bool _warningDetected;

    /// <summary>river's <c>warm_start</c>: the fewest values, and then errors, before anything is signalled.
    /// Default 30; at least 0, else <see cref="ArgumentOutOfRangeException"/>.</summary>
    public int WarmStart
    {
        get => _warmStart;
        init => _warmStart = DetectorArguments.AtLeast(value, 0, DetectorName, "warm_start");
    }

    /// <summary>river's <c>alpha</c>: the ratio to the maximum below which a warning is signalled. Default 0.95; in
    /// (0, 1] and at least <see cref="Beta"/>.</summary>
    public double Alpha
    {
        get => _alpha;
        init => _alpha = DetectorArguments.InUnitInterval(value, DetectorName, "alpha");
    }

    /// <summary>river's <c>beta</c>: the ratio to the maximum below which drift is signalled. Default 0.9; in (0, 1]
    /// and at most <see cref="Alpha"/>.</summary>
    public double Beta
    {
        get => _beta;
        init => _beta = DetectorArguments.InUnitInterval(value, DetectorName, "beta");
    }

    /// <inheritdoc />
    public string Name => DetectorName;

    /// <inheritdoc />
    public bool DriftDetected => _driftDetected;

    /// <inheritdoc />
    public bool WarningDetected => _warningDetected;

    /// <summary>Values seen since the last restart.</summary>
    public long Count => _count;

    /// <summary>Errors (values equal to 1) seen since the last restart.</summary>
    public long ErrorCount => _errorCount;

    /// <summary>The mean distance between consecutive errors since the last restart.</summary>
    public double MeanDistance => _distances.Mean.Mean;

    /// <inheritdoc />
    public void WriteState(ref StateWriter writer)
    {
        _distances.Write(ref writer);
        writer.WriteVarInt(_count);
        writer.WriteVarInt(_lastError);
        writer.WriteVarInt(_errorCount);
        writer.WriteDouble(_maxLevel);
        writer.WriteBool(_driftDetected);
        writer.WriteBool(_warningDetected);
    }

    /// <inheritdoc />
    public bool ReadState(ref StateReader reader)
    {
        _distances = RunningVariance.Read(ref reader);
        _count = reader.ReadVarInt("count", 0, long.MaxValue);
        _lastError = reader.ReadVarInt("last error", 0, _count);
        _errorCount = reader.ReadVarInt("error count", 0, _count);
        _maxLevel = reader.ReadDouble("max level");
        _driftDetected = reader.ReadBool("drift");
        _warningDetected = reader.ReadBool("warning");
        return true;
    }

    /// <inheritdoc />
    /// <exception cref="InvalidOperationException">On the first update, when <see cref="Alpha"/> is less than
    /// <see cref="Beta"/>.</exception>
    public void Update(double value)
    {
        if (!_parametersChecked)
        {
            if (ParameterProblem() is { } problem)
            {
                throw new InvalidOperationException(problem);
            }

            _parametersChecked = true;
        }

        if (_driftDetected)
        {
            _distances = default;
            _count = 0;
            _lastError = 0;
            _errorCount = 0;
            _maxLevel = -1.0;
            _driftDetected = false;
            _warningDetected = false;
        }

        _count++;
        if (value == 1.0)
        {
            _errorCount++;
            _distances.Update(_count - _lastError);
            if (_count > _warmStart)
            {
                // Math.Pow, not Math.Sqrt: river takes the square root as `** 0.5`, which is C's pow, and the two can
                // differ in the last bit.
                double level = _distances.Mean.Mean + (2 * Math.Pow(_distances.Variance, 0.5));
                if (level > _maxLevel)
                {
                    _maxLevel = level;
                }
                else if (_errorCount > _warmStart)
                {
                    double ratio = level / _maxLevel;
                    if (ratio < _beta)
                    {
                        _driftDetected = true;
                    }
                    else
                    {
                        _warningDetected = ratio < _alpha;
                    }
                }
            }

            _lastError = _count;
        }
    }

    /// <summary>The cross-parameter problem river rejects, or null.</summary>
    internal string? ParameterProblem() =>
        _alpha < _beta ? $"eddm parameter 'alpha' ({_alpha}) must be at least 'beta' ({_beta}), as in river." : null;
}
