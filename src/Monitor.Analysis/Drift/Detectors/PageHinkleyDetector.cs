using Monitor.Analysis.State;

namespace Monitor.Analysis.Drift;

/// <summary>Which changes of the mean <see cref="PageHinkleyDetector"/> watches (river's <c>mode</c>).</summary>
public enum PageHinkleyMode
{
    /// <summary>river's <c>"up"</c>: increases only.</summary>
    Up,

    /// <summary>river's <c>"down"</c>: decreases only.</summary>
    Down,

    /// <summary>river's <c>"both"</c>: increases and decreases (river's default).</summary>
    Both,
}

/// <summary>
/// The Page-Hinkley test as river's <c>drift.PageHinkley</c>: cumulative sums of the deviations from the running
/// mean, faded by <see cref="Alpha"/> and offset by ±<see cref="Delta"/>; drift when a sum has risen (or fallen) more
/// than <see cref="Threshold"/> above its extreme.
/// </summary>
/// <remarks>
/// Per update, as river (<c>river/drift/page_hinkley.py</c>): the running mean takes the value (river's
/// <c>stats.Mean</c>), <c>dev = x − mean</c>, <c>S⁺ = alpha·S⁺ + dev − delta</c>, <c>S⁻ = alpha·S⁻ + dev + delta</c>,
/// <c>min⁺ = min(min⁺, S⁺)</c> (from +∞), <c>max⁻ = max(max⁻, S⁻)</c> (from −1, as river); once
/// <see cref="MinInstances"/> values are seen, drift when <c>S⁺ − min⁺ &gt; threshold</c> (up) or
/// <c>max⁻ − S⁻ &gt; threshold</c> (down). The update after a detection restarts the detector. O(1) time, no
/// allocation, not thread-safe. No warnings. Values are taken as given (a NaN stays in the sums until the next
/// restart).
/// </remarks>
public sealed class PageHinkleyDetector : IDriftDetector
{
    /// <summary>river's default <c>min_instances</c>.</summary>
    public const int DefaultMinInstances = 30;

    /// <summary>river's default <c>delta</c>.</summary>
    public const double DefaultDelta = 0.005;

    /// <summary>river's default <c>threshold</c>.</summary>
    public const double DefaultThreshold = 50.0;

    /// <summary>river's default <c>alpha</c>, <c>1 - 0.0001</c>.</summary>
    public const double DefaultAlpha = 1 - 0.0001;

    /// <summary>river's default <c>mode</c>.</summary>
    public const PageHinkleyMode DefaultMode = PageHinkleyMode.Both;

    private const string DetectorName = "page-hinkley";

    private readonly int _minInstances = DefaultMinInstances;
    private readonly double _delta = DefaultDelta;
    private readonly double _threshold = DefaultThreshold;
    private readonly double _alpha = DefaultAlpha;
    private readonly PageHinkleyMode _mode = DefaultMode;

    private RunningMean _mean;
    private double _sumIncrease;
    private double _sumDecrease;
    private double _minIncrease = double.PositiveInfinity;
    private double _maxDecrease = -1.0;
    private bool _driftDetected;

    /// <summary>river's <c>min_instances</c>: no drift is signalled before this many values. Default 30; at least 1,
    /// else <see cref="ArgumentOutOfRangeException"/>.</summary>
    public int MinInstances
    {
        get => _minInstances;
        init => _minInstances = DetectorArguments.AtLeast(value, 1, DetectorName, "min_instances");
    }

    /// <summary>river's <c>delta</c>: the magnitude of change tolerated per value. Default 0.005; finite, at least 0.</summary>
    public double Delta
    {
        get => _delta;
        init => _delta = DetectorArguments.NonNegative(value, DetectorName, "delta");
    }

    /// <summary>river's <c>threshold</c> (lambda): how far a sum must move from its extreme. Default 50; finite,
    /// greater than 0.</summary>
    public double Threshold
    {
        get => _threshold;
        init => _threshold = DetectorArguments.Positive(value, DetectorName, "threshold");
    }

    /// <summary>river's <c>alpha</c>: the fading factor of the sums. Default 1 − 0.0001; in (0, 1].</summary>
    public double Alpha
    {
        get => _alpha;
        init => _alpha = DetectorArguments.InUnitInterval(value, DetectorName, "alpha");
    }

    /// <summary>river's <c>mode</c>: which changes to detect. Default <see cref="PageHinkleyMode.Both"/>.</summary>
    public PageHinkleyMode Mode
    {
        get => _mode;
        init => _mode = DetectorArguments.Defined(value, DetectorName, "mode");
    }

    /// <inheritdoc />
    public string Name => DetectorName;

    /// <inheritdoc />
    public bool DriftDetected => _driftDetected;

    /// <summary>Always false: Page-Hinkley signals no warnings.</summary>
    public bool WarningDetected => false;

    /// <summary>Values seen since the last restart.</summary>
    public long Count => (long)_mean.Count;

    /// <summary>The running mean of the values since the last restart.</summary>
    public double Mean => _mean.Mean;

    /// <summary>river's <c>_sum_increase</c>: the faded sum of <c>x − mean − delta</c>.</summary>
    public double SumIncrease => _sumIncrease;

    /// <summary>river's <c>_sum_decrease</c>: the faded sum of <c>x − mean + delta</c>.</summary>
    public double SumDecrease => _sumDecrease;

    /// <summary>river's <c>_min_increase</c>: the smallest <see cref="SumIncrease"/> so far (+∞ before any value).</summary>
    public double MinIncrease => _minIncrease;

    /// <summary>river's <c>_max_decrease</c>: the largest <see cref="SumDecrease"/> so far (−1 before any value).</summary>
    public double MaxDecrease => _maxDecrease;

    /// <inheritdoc />
    public void WriteState(ref StateWriter writer)
    {
        _mean.Write(ref writer);
        writer.WriteDouble(_sumIncrease);
        writer.WriteDouble(_sumDecrease);
        writer.WriteDouble(_minIncrease);
        writer.WriteDouble(_maxDecrease);
        writer.WriteBool(_driftDetected);
    }

    /// <inheritdoc />
    public bool ReadState(ref StateReader reader)
    {
        _mean = RunningMean.Read(ref reader);
        _sumIncrease = reader.ReadDouble("sum increase");
        _sumDecrease = reader.ReadDouble("sum decrease");
        _minIncrease = reader.ReadDouble("min increase");
        _maxDecrease = reader.ReadDouble("max decrease");
        _driftDetected = reader.ReadBool("drift");
        return true;
    }

    /// <inheritdoc />
    public void Update(double value)
    {
        if (_driftDetected)
        {
            _mean = default;
            _sumIncrease = 0.0;
            _sumDecrease = 0.0;
            _minIncrease = double.PositiveInfinity;
            _maxDecrease = -1.0;
            _driftDetected = false;
        }

        _mean.Update(value);
        double deviation = value - _mean.Mean;
        _sumIncrease = (_alpha * _sumIncrease) + deviation - _delta;
        _sumDecrease = (_alpha * _sumDecrease) + deviation + _delta;
        if (_sumIncrease < _minIncrease)
        {
            _minIncrease = _sumIncrease;
        }

        if (_sumDecrease > _maxDecrease)
        {
            _maxDecrease = _sumDecrease;
        }

        if (_mean.Count >= _minInstances)
        {
            double increase = _sumIncrease - _minIncrease;
            double decrease = _maxDecrease - _sumDecrease;
            _driftDetected = _mode switch
            {
                PageHinkleyMode.Up => increase > _threshold,
                PageHinkleyMode.Down => decrease > _threshold,
                _ => increase > _threshold || decrease > _threshold,
            };
        }
    }
}
