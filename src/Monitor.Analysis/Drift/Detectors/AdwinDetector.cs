using Monitor.Analysis.State;

namespace Monitor.Analysis.Drift;

/// <summary>
/// ADWIN (adaptive windowing, Bifet and Gavaldà 2007) as river's <c>drift.ADWIN</c>: a window of recent values,
/// summarised in exponential buckets, that drops its oldest part whenever the means of an older and a newer part
/// differ by more than a Hoeffding-style bound. A drop is a detected drift.
/// </summary>
/// <remarks>
/// <para>
/// Matches river's current core (<c>rust_src/adwin.rs</c>, a port of <c>river/drift/adwin_c.pyx</c>) operation by
/// operation, including the order of the floating-point operations in the bucket merges, the variance bookkeeping and
/// the cut test, so detection indices agree with river's. Every <see cref="Clock"/> updates, once the window holds
/// more than <see cref="GracePeriod"/> values, every cut between bucket summaries is tested, oldest first; at the
/// first cut where both sides hold at least <see cref="MinWindowLength"/> values and
/// <c>|mean(W0) − mean(W1)| &gt; sqrt(2 m σ²_W δ′) + 2/3 δ′ m</c> (with <c>m = 1/(n0 − L + 1) + 1/(n1 − L + 1)</c>,
/// <c>δ′ = ln(2 ln|W| / delta)</c>, <c>σ²_W</c> the window's sum of squared deviations over its width), the oldest
/// bucket is dropped and the test restarts; the update then reports drift.
/// </para>
/// <para>
/// As river's <c>ADWIN</c>, the update after a detection restarts the detector from an empty window. Cost: O(1)
/// amortised per update plus, every <see cref="Clock"/> updates, one pass over the about
/// <c>max_buckets · log2(width / max_buckets)</c> bucket summaries. Memory: two arrays of
/// <c>(max_buckets + 1)</c> doubles per bucket row, grown by doubling (a row per power of two of the width); an update
/// allocates nothing unless the window grows into a new power of two beyond the capacity, and restarting keeps the
/// arrays. Not thread-safe. Values are taken as given: a NaN or infinity stays in the window's sums until the next
/// restart (callers drop non-finite values, as for the two-sample tests).
/// </para>
/// </remarks>
public sealed class AdwinDetector : IDriftDetector
{
    /// <summary>river's default <c>delta</c>.</summary>
    public const double DefaultDelta = 0.002;

    /// <summary>river's default <c>clock</c>.</summary>
    public const int DefaultClock = 32;

    /// <summary>river's default <c>max_buckets</c>.</summary>
    public const int DefaultMaxBuckets = 5;

    /// <summary>river's default <c>min_window_length</c>.</summary>
    public const int DefaultMinWindowLength = 5;

    /// <summary>river's default <c>grace_period</c>.</summary>
    public const int DefaultGracePeriod = 10;

    private const string DetectorName = "adwin";

    // Enough rows for windows of about 5 · 2^8 values before the first growth.
    private const int InitialRowCapacity = 8;

    private readonly double _delta = DefaultDelta;
    private readonly int _clock = DefaultClock;
    private readonly int _maxBuckets = DefaultMaxBuckets;

    // Doubles, as in river's Rust core: they are only ever compared with the (double) sub-window lengths.
    private readonly double _minWindowLength = DefaultMinWindowLength;
    private readonly double _gracePeriod = DefaultGracePeriod;

    // Row r holds _counts[r] bucket summaries of 2^r values each, oldest first, at [r * _stride + k]:
    // the sum of the values (_totals) and their sum of squared deviations from their mean (_variances).
    private readonly int _stride = DefaultMaxBuckets + 1;
    private double[] _totals;
    private double[] _variances;
    private int[] _counts;
    private int _rows = 1;

    private double _total;
    private double _variance;
    private double _width;
    private long _tick;
    private int _detections;
    private bool _driftDetected;

    /// <summary>A detector with river's defaults; set the parameters with an object initializer.</summary>
    public AdwinDetector()
    {
        _totals = new double[InitialRowCapacity * _stride];
        _variances = new double[InitialRowCapacity * _stride];
        _counts = new int[InitialRowCapacity];
    }

    /// <summary>river's <c>delta</c>: the significance of the cut test; smaller values detect less. Default 0.002;
    /// must be in (0, 1), else <see cref="ArgumentOutOfRangeException"/>.</summary>
    public double Delta
    {
        get => _delta;
        init => _delta = DetectorArguments.InOpenUnitInterval(value, DetectorName, "delta");
    }

    /// <summary>river's <c>clock</c>: cuts are tested every this many updates. Default 32; at least 1.</summary>
    public int Clock
    {
        get => _clock;
        init => _clock = DetectorArguments.AtLeast(value, 1, DetectorName, "clock");
    }

    /// <summary>
    /// river's <c>max_buckets</c>: bucket summaries of each size kept before the two oldest are merged. Default 5; at
    /// least 2 (with 1 a merge empties a row, and river's core then fails when it drops from an empty oldest row).
    /// </summary>
    public int MaxBuckets
    {
        get => _maxBuckets;
        init
        {
            _maxBuckets = DetectorArguments.AtLeast(value, 2, DetectorName, "max_buckets");
            _stride = value + 1;
            _totals = new double[InitialRowCapacity * _stride];
            _variances = new double[InitialRowCapacity * _stride];
        }
    }

    /// <summary>river's <c>min_window_length</c>: the fewest values either side of a cut must hold to be tested.
    /// Default 5; at least 1.</summary>
    public int MinWindowLength
    {
        get => (int)_minWindowLength;
        init => _minWindowLength = DetectorArguments.AtLeast(value, 1, DetectorName, "min_window_length");
    }

    /// <summary>river's <c>grace_period</c>: no cut is tested until the window holds more than this many values.
    /// Default 10; at least 0.</summary>
    public int GracePeriod
    {
        get => (int)_gracePeriod;
        init => _gracePeriod = DetectorArguments.AtLeast(value, 0, DetectorName, "grace_period");
    }

    /// <inheritdoc />
    public string Name => DetectorName;

    /// <inheritdoc />
    public bool DriftDetected => _driftDetected;

    /// <summary>Always false: ADWIN signals no warnings.</summary>
    public bool WarningDetected => false;

    /// <summary>river's <c>width</c>: the number of values in the window.</summary>
    public long Width => (long)_width;

    /// <summary>river's <c>total</c>: the sum of the values in the window.</summary>
    public double Total => _total;

    /// <summary>river's <c>variance</c>: the window's sum of squared deviations from its mean (river keeps it
    /// undivided; divide by <see cref="Width"/> for the population variance).</summary>
    public double Variance => _variance;

    /// <summary>river's <c>estimation</c>: the mean of the window, 0 when it is empty.</summary>
    public double Estimation => _width == 0 ? 0.0 : _total / _width;

    /// <summary>river's <c>n_detections</c>: drifts detected since the last restart. As in river it is 1 right after
    /// a detection and 0 again after the next update, which restarts the detector.</summary>
    public int DetectionCount => _detections;

    /// <inheritdoc />
    /// <remarks>Per row of bucket summaries (sizes 1, 2, 4, ...): its count, then each summary's total and variance.</remarks>
    public void WriteState(ref StateWriter writer)
    {
        writer.WriteVarUInt((ulong)_rows);
        for (int row = 0; row < _rows; row++)
        {
            int count = _counts[row];
            writer.WriteVarUInt((ulong)count);
            for (int k = 0; k < count; k++)
            {
                writer.WriteDouble(_totals[(row * _stride) + k]);
                writer.WriteDouble(_variances[(row * _stride) + k]);
            }
        }

        writer.WriteDouble(_total);
        writer.WriteDouble(_variance);
        writer.WriteDouble(_width);
        writer.WriteVarInt(_tick);
        writer.WriteVarInt(_detections);
        writer.WriteBool(_driftDetected);
    }

    /// <inheritdoc />
    /// <remarks>False when a row holds more summaries than <see cref="MaxBuckets"/> (written with a larger one).</remarks>
    public bool ReadState(ref StateReader reader)
    {
        // A window of 2^62 values or more cannot have been filled.
        int start = reader.Offset;
        int rows = (int)reader.ReadVarUInt("rows", 62);
        if (rows == 0)
        {
            throw reader.Invalid("rows", "a window has at least one row", start);
        }

        if (_counts.Length < rows)
        {
            Array.Resize(ref _counts, rows);
            Array.Resize(ref _totals, rows * _stride);
            Array.Resize(ref _variances, rows * _stride);
        }

        _rows = rows;
        bool fits = true;
        for (int row = 0; row < rows; row++)
        {
            int count = reader.ReadCount("bucket count", 16);
            fits &= count <= _maxBuckets;
            _counts[row] = Math.Min(count, _maxBuckets);
            for (int k = 0; k < count; k++)
            {
                double total = reader.ReadDouble("bucket total");
                double variance = reader.ReadDouble("bucket variance");
                if (k < _maxBuckets)
                {
                    _totals[(row * _stride) + k] = total;
                    _variances[(row * _stride) + k] = variance;
                }
            }
        }

        _total = reader.ReadDouble("total");
        _variance = reader.ReadDouble("variance");
        _width = reader.ReadDouble("width");
        _tick = reader.ReadVarInt("tick", 0, long.MaxValue);
        _detections = (int)reader.ReadVarInt("detections", 0, int.MaxValue);
        _driftDetected = reader.ReadBool("drift");
        if (!fits)
        {
            Reset();
        }

        return fits;
    }

    /// <inheritdoc />
    public void Update(double value)
    {
        if (_driftDetected)
        {
            Reset();
        }

        Insert(value);
        _driftDetected = DetectChange();
    }

    private void Reset()
    {
        Array.Clear(_counts, 0, _rows);
        _rows = 1;
        _total = 0.0;
        _variance = 0.0;
        _width = 0.0;
        _tick = 0;
        _detections = 0;
        _driftDetected = false;
    }

    private void Insert(double value)
    {
        int newest = _counts[0];
        _totals[newest] = value;
        _variances[newest] = 0.0;
        _counts[0] = newest + 1;

        _width += 1.0;
        double incrementalVariance = 0.0;
        if (_width > 1.0)
        {
            double deviation = value - (_total / (_width - 1.0));
            incrementalVariance = (_width - 1.0) * deviation * deviation / _width;
        }

        _variance += incrementalVariance;
        _total += value;
        CompressBuckets();
    }

    private void CompressBuckets()
    {
        int full = _maxBuckets + 1;
        for (int row = 0; _counts[row] == full; row++)
        {
            int at = row * _stride;
            double size = 1L << row;
            double total0 = _totals[at];
            double total1 = _totals[at + 1];
            double mean0 = total0 / size;
            double mean1 = total1 / size;
            double mergedTotal = total0 + total1;
            // river: n1 * n2 / (n1 + n2) = n1 / 2, as the two summaries are of one size.
            double mergedVariance = _variances[at] + _variances[at + 1] + (size * 0.5 * (mean0 - mean1) * (mean0 - mean1));

            if (row + 1 == _rows)
            {
                AddRow();
            }

            int next = (row + 1) * _stride;
            int nextCount = _counts[row + 1];
            _totals[next + nextCount] = mergedTotal;
            _variances[next + nextCount] = mergedVariance;
            _counts[row + 1] = nextCount + 1;

            int remaining = full - 2;
            for (int k = 0; k < remaining; k++)
            {
                _totals[at + k] = _totals[at + k + 2];
                _variances[at + k] = _variances[at + k + 2];
            }

            _counts[row] = remaining;
        }
    }

    private void AddRow()
    {
        if (_rows == _counts.Length)
        {
            int capacity = _counts.Length * 2;
            Array.Resize(ref _counts, capacity);
            Array.Resize(ref _totals, capacity * _stride);
            Array.Resize(ref _variances, capacity * _stride);
        }

        _counts[_rows] = 0;
        _rows++;
    }

    private bool DetectChange()
    {
        _tick++;
        bool changeDetected = false;
        if (_tick % _clock == 0 && _width > _gracePeriod)
        {
            // Each cut found drops the oldest summary, and the test starts over on the smaller window.
            while (CutOldest())
            {
                changeDetected = true;
            }
        }

        if (changeDetected)
        {
            _detections++;
        }

        return changeDetected;
    }

    /// <summary>Tests every cut, oldest first; at the first significant one drops the oldest summary.</summary>
    private bool CutOldest()
    {
        // River evaluates these inside its cut test; they depend only on the window, which no cut changes before the
        // pass ends, so computing them once gives the same bits.
        double deltaPrime = Math.Log(2.0 * Math.Log(_width) / _delta);
        double varianceInWindow = _variance / _width;
        double minLength = _minWindowLength;
        double[] totals = _totals;

        double n0 = 0.0;
        double n1 = _width;
        double u0 = 0.0;
        double u1 = _total;
        for (int row = _rows - 1; row >= 0; row--)
        {
            double size = 1L << row;
            int count = _counts[row];
            int at = row * _stride;
            // The newest summary of all closes the pass: after it W1 would be empty.
            int end = row == 0 ? count - 1 : count;
            for (int k = 0; k < count; k++)
            {
                n0 += size;
                n1 -= size;
                double total = totals[at + k];
                u0 += total;
                u1 -= total;
                if (k == end)
                {
                    return false;
                }

                double deltaMean = (u0 / n0) - (u1 / n1);
                if (n1 >= minLength && n0 >= minLength)
                {
                    double mRecip = (1.0 / (n0 - minLength + 1.0)) + (1.0 / (n1 - minLength + 1.0));
                    double epsilon = Math.Sqrt(2.0 * mRecip * varianceInWindow * deltaPrime) + (2.0 / 3.0 * deltaPrime * mRecip);
                    if (Math.Abs(deltaMean) > epsilon)
                    {
                        // A cut has n0 >= min_window_length >= 1 and n1 >= 1, so the window is never empty here.
                        DeleteOldest();
                        return true;
                    }
                }
            }
        }

        return false;
    }

    private void DeleteOldest()
    {
        int last = _rows - 1;
        int at = last * _stride;
        double size = 1L << last;
        double total = _totals[at];
        double mean = total / size;
        double variance = _variances[at];

        _width -= size;
        _total -= total;
        double windowMean = _total / _width;
        _variance -= variance + (size * _width * (mean - windowMean) * (mean - windowMean) / (size + _width));

        int remaining = _counts[last] - 1;
        for (int k = 0; k < remaining; k++)
        {
            _totals[at + k] = _totals[at + k + 1];
            _variances[at + k] = _variances[at + k + 1];
        }

        _counts[last] = remaining;
        if (remaining == 0)
        {
            _rows--;
        }
    }
}
