using Monitor.Analysis.State;

namespace Monitor.Analysis.Drift;

/// <summary>
/// HDDM_W, the McDiarmid-bound drift detector with the weighted moving-average test of Frías-Blanco et al. (2014), as
/// river's <c>drift.binary.HDDM_W</c> (<c>HDDMW</c> in river's newest releases): compares exponentially weighted
/// means of a stream of 1 (error) and 0 (correct) before and after a cut point; warns, then signals drift, when the
/// recent one exceeds the older one (and, two-sided, falls below it) by more than a McDiarmid bound.
/// </summary>
/// <remarks>
/// Per update, as river (<c>river/drift/binary/hddm_w.py</c>, with river's <c>stats.EWMean</c>, now
/// <c>rust_src/ewmean.rs</c>: the first value, then <c>λx + (1 − λ)·mean</c>): the overall weighted mean takes the
/// value together with its independent-bound term <c>ibc = λ² + (1 − λ)²·ibc</c> (from 1). The cut point for increases
/// moves to now when <c>ewma + ε &lt; cut</c>, with <c>ε = sqrt(ibc · ln(1/drift_confidence) / 2)</c>, restarting the
/// sample after it; otherwise the value joins that sample. Drift when the sample's mean exceeds the mean at the cut by
/// more than <c>sqrt((ibc₁ + ibc₂) · ln(1/confidence) / 2)</c> at <see cref="DriftConfidence"/> (no warning), else
/// warning at <see cref="WarningConfidence"/>; the mirror-image cut for decreases is kept always and tested with
/// <see cref="TwoSidedTest"/>, setting drift or warning without clearing the other. The update after a detection
/// restarts the detector. O(1) time, no allocation, not thread-safe.
/// </remarks>
public sealed class HddmWDetector : IDriftDetector
{
    /// <summary>river's default <c>drift_confidence</c>.</summary>
    public const double DefaultDriftConfidence = 0.001;

    /// <summary>river's default <c>warning_confidence</c>.</summary>
    public const double DefaultWarningConfidence = 0.005;

    /// <summary>river's default <c>lambda_val</c>.</summary>
    public const double DefaultLambda = 0.05;

    /// <summary>river's default <c>two_sided_test</c>.</summary>
    public const bool DefaultTwoSidedTest = false;

    private const string DetectorName = "hddm-w";

    private readonly double _driftConfidence = DefaultDriftConfidence;
    private readonly double _warningConfidence = DefaultWarningConfidence;
    private readonly double _lambda = DefaultLambda;
    private readonly bool _twoSidedTest = DefaultTwoSidedTest;
    private readonly double _lambdaSquared = DefaultLambda * DefaultLambda;
    private readonly double _complementSquared = Math.Pow(1 - DefaultLambda, 2);

    // ln(1 / confidence), which river takes on every bound, taken once (the same call on the same argument: the same bits).
    private readonly double _logInverseDrift = Math.Log(1 / DefaultDriftConfidence);
    private readonly double _logInverseWarning = Math.Log(1 / DefaultWarningConfidence);

    private Sample _total = Sample.Empty;
    private Sample _increaseBefore = Sample.Empty;
    private Sample _increaseAfter = Sample.Empty;
    private Sample _decreaseBefore = Sample.Empty;
    private Sample _decreaseAfter = Sample.Empty;
    private double _increaseCut = double.PositiveInfinity;
    private double _decreaseCut = double.NegativeInfinity;
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
            _logInverseDrift = Math.Log(1 / value);
        }
    }

    /// <summary>river's <c>warning_confidence</c>: the confidence of the warning test. Default 0.005; in (0, 1).</summary>
    public double WarningConfidence
    {
        get => _warningConfidence;
        init
        {
            _warningConfidence = DetectorArguments.InOpenUnitInterval(value, DetectorName, "warning_confidence");
            _logInverseWarning = Math.Log(1 / value);
        }
    }

    /// <summary>river's <c>lambda_val</c>: the weight of the newest value in the weighted means. Default 0.05; in
    /// (0, 1].</summary>
    public double Lambda
    {
        get => _lambda;
        init
        {
            _lambda = DetectorArguments.InUnitInterval(value, DetectorName, "lambda_val");
            _lambdaSquared = value * value;
            // river writes (1 - lambd) ** 2, which is C's pow.
            _complementSquared = Math.Pow(1 - value, 2);
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

    /// <summary>The exponentially weighted mean of the values since the last restart (0 before any).</summary>
    public double WeightedMean => _total.Mean;

    /// <inheritdoc />
    public void WriteState(ref StateWriter writer)
    {
        _total.Write(ref writer);
        _increaseBefore.Write(ref writer);
        _increaseAfter.Write(ref writer);
        _decreaseBefore.Write(ref writer);
        _decreaseAfter.Write(ref writer);
        writer.WriteDouble(_increaseCut);
        writer.WriteDouble(_decreaseCut);
        writer.WriteBool(_driftDetected);
        writer.WriteBool(_warningDetected);
    }

    /// <inheritdoc />
    public bool ReadState(ref StateReader reader)
    {
        _total = Sample.Read(ref reader);
        _increaseBefore = Sample.Read(ref reader);
        _increaseAfter = Sample.Read(ref reader);
        _decreaseBefore = Sample.Read(ref reader);
        _decreaseAfter = Sample.Read(ref reader);
        _increaseCut = reader.ReadDouble("increase cut");
        _decreaseCut = reader.ReadDouble("decrease cut");
        _driftDetected = reader.ReadBool("drift");
        _warningDetected = reader.ReadBool("warning");
        return true;
    }

    /// <inheritdoc />
    public void Update(double value)
    {
        if (_driftDetected)
        {
            _total = Sample.Empty;
            _increaseBefore = Sample.Empty;
            _increaseAfter = Sample.Empty;
            _decreaseBefore = Sample.Empty;
            _decreaseAfter = Sample.Empty;
            _increaseCut = double.PositiveInfinity;
            _decreaseCut = double.NegativeInfinity;
            _driftDetected = false;
            _warningDetected = false;
        }

        Add(ref _total, value);

        double epsilon = McDiarmidBound(_total.IndependentBound, _logInverseDrift);
        if (_total.Mean + epsilon < _increaseCut)
        {
            _increaseCut = _total.Mean + epsilon;
            _increaseBefore = _total;
            _increaseAfter = Sample.Empty;
        }
        else
        {
            Add(ref _increaseAfter, value);
        }

        if (HasIncreased(_increaseBefore, _increaseAfter, _logInverseDrift))
        {
            _warningDetected = false;
            _driftDetected = true;
        }
        else
        {
            _warningDetected = HasIncreased(_increaseBefore, _increaseAfter, _logInverseWarning);
            _driftDetected = false;
        }

        // river computes the same bound again here; the sample has not changed since.
        if (_total.Mean - epsilon > _decreaseCut)
        {
            _decreaseCut = _total.Mean - epsilon;
            _decreaseBefore = _total;
            _decreaseAfter = Sample.Empty;
        }
        else
        {
            Add(ref _decreaseAfter, value);
        }

        if (_twoSidedTest)
        {
            if (HasIncreased(_decreaseAfter, _decreaseBefore, _logInverseDrift))
            {
                _driftDetected = true;
            }
            else if (HasIncreased(_decreaseAfter, _decreaseBefore, _logInverseWarning))
            {
                _warningDetected = true;
            }
        }
    }

    // logInverse: ln(1 / confidence).
    private static double McDiarmidBound(double independentBound, double logInverse) =>
        Math.Sqrt(independentBound * logInverse / 2);

    /// <summary>river's <c>_has_mean_changed(sample1, sample2)</c>: whether <paramref name="later"/>'s mean exceeds
    /// <paramref name="earlier"/>'s by more than the bound.</summary>
    private static bool HasIncreased(in Sample earlier, in Sample later, double logInverse) =>
        earlier.Initialized && later.Initialized
        && later.Mean - earlier.Mean > McDiarmidBound(earlier.IndependentBound + later.IndependentBound, logInverse);

    private void Add(ref Sample sample, double value)
    {
        sample.Mean = sample.Initialized ? (_lambda * value) + ((1.0 - _lambda) * sample.Mean) : value;
        sample.Initialized = true;
        sample.IndependentBound = _lambdaSquared + (_complementSquared * sample.IndependentBound);
    }

    /// <summary>river's <c>SampleInfo</c>: an exponentially weighted mean and its independent-bound term.</summary>
    private struct Sample
    {
        public static readonly Sample Empty = new() { IndependentBound = 1.0 };

        public double Mean;
        public double IndependentBound;
        public bool Initialized;

        public static Sample Read(ref StateReader reader) => new()
        {
            Mean = reader.ReadDouble("sample mean"),
            IndependentBound = reader.ReadDouble("sample bound"),
            Initialized = reader.ReadBool("sample initialized"),
        };

        public readonly void Write(ref StateWriter writer)
        {
            writer.WriteDouble(Mean);
            writer.WriteDouble(IndependentBound);
            writer.WriteBool(Initialized);
        }
    }
}
