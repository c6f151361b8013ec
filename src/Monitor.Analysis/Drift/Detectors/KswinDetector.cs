using Monitor.Analysis.State;

namespace Monitor.Analysis.Drift;

/// <summary>
/// KSWIN (Kolmogorov-Smirnov windowing, Raab et al. 2020) as river's <c>drift.KSWIN</c>: a sliding window of
/// <see cref="WindowSize"/> values; once full, <see cref="StatSize"/> values drawn without replacement from its older part
/// are tested against its newest <see cref="StatSize"/> with the two-sample KS test (scipy's <c>ks_2samp</c>, method auto,
/// <see cref="KolmogorovSmirnovTest"/>); drift when <c>p ≤ alpha</c> and the statistic exceeds 0.1.
/// </summary>
/// <remarks>
/// <para>Per update, as river (<c>river/drift/kswin.py</c>): after a detection the detector restarts (empty window, the
/// generator seeded again); the value is appended (the oldest one leaves a full window); with a full window the older
/// <c>window_size - stat_size</c> positions are sampled with Python's <c>random.sample</c>, which this class reproduces
/// bit for bit (<see cref="PythonRandom"/>), so with a <see cref="Seed"/> it detects at the same indices as river. Without
/// a seed (river's default <c>None</c>) each restart draws a seed of its own, as Python seeds from the OS.</para>
/// <para>Cost per update with a full window: the KS test on two samples of <see cref="StatSize"/> (sorting and the exact
/// p-value), about a microsecond at the defaults; nothing is allocated once the window is full. Not thread-safe.</para>
/// </remarks>
public sealed class KswinDetector : IDriftDetector
{
    private const string DetectorName = "kswin";

    /// <summary>river's default <c>alpha</c>.</summary>
    public const double DefaultAlpha = 0.005;

    /// <summary>river's default <c>window_size</c>.</summary>
    public const int DefaultWindowSize = 100;

    /// <summary>river's default <c>stat_size</c>.</summary>
    public const int DefaultStatSize = 30;

    /// <summary>The statistic must exceed this as well as the p-value being at most alpha (river's constant).</summary>
    public const double MinimumStatistic = 0.1;

    private readonly DriftWorkspace _workspace = new();
    private double[] _window = [];
    private int _start;
    private int _count;
    private double[] _sample = [];
    private double[] _recent = [];
    private int[] _indices = [];
    private PythonRandom? _random;
    private bool _driftDetected;

    /// <inheritdoc />
    public string Name => DetectorName;

    /// <summary>river's <c>alpha</c>: the p-value at or below which the test signals, in [0, 1]. Default 0.005.</summary>
    public double Alpha
    {
        get;
        init => field = value is >= 0 and <= 1 ? value : DetectorArguments.InUnitInterval(value, DetectorName, "alpha");
    } = DefaultAlpha;

    /// <summary>river's <c>window_size</c>: values in the sliding window, more than <see cref="StatSize"/>. Default 100.</summary>
    public int WindowSize
    {
        get;
        init => field = DetectorArguments.AtLeast(value, 2, DetectorName, "window_size");
    } = DefaultWindowSize;

    /// <summary>river's <c>stat_size</c>: values in each of the two tested samples, at least 1 and less than <see cref="WindowSize"/>. Default 30.</summary>
    public int StatSize
    {
        get;
        init => field = DetectorArguments.AtLeast(value, 1, DetectorName, "stat_size");
    } = DefaultStatSize;

    /// <summary>river's <c>seed</c> of Python's <c>random.Random</c>; null (the default) seeds each restart at random.</summary>
    public long? Seed { get; init; }

    /// <summary>The p-value of the last test (river's <c>p_value</c>; 0 before the window is first full).</summary>
    public double PValue { get; private set; }

    /// <summary>The statistic of the last test (0 before the window is first full).</summary>
    public double Statistic { get; private set; }

    /// <summary>Values seen since the last restart (river's <c>n</c>).</summary>
    public long Count { get; private set; }

    /// <inheritdoc />
    public bool DriftDetected => _driftDetected;

    /// <inheritdoc />
    public bool WarningDetected => false;

    /// <summary>Why the parameters cannot work together (stat_size not below window_size), or null.</summary>
    internal string? ParameterProblem() => StatSize < WindowSize ? null : $"kswin parameter 'stat_size' ({StatSize}) must be smaller than 'window_size' ({WindowSize}).";

    /// <inheritdoc />
    /// <remarks>Nothing but a flag before the first update; then the window's values (oldest first), the counters,
    /// the last test's p-value and statistic, and the generator's state (2.5 KB).</remarks>
    public void WriteState(ref StateWriter writer)
    {
        writer.WriteBool(_random is not null);
        if (_random is null)
        {
            return;
        }

        writer.WriteVarUInt((ulong)WindowSize);
        writer.WriteVarUInt((ulong)_count);
        for (int i = 0; i < _count; i++)
        {
            writer.WriteDouble(At(i));
        }

        writer.WriteVarInt(Count);
        writer.WriteDouble(PValue);
        writer.WriteDouble(Statistic);
        writer.WriteBool(_driftDetected);
        _random.WriteState(ref writer);
    }

    /// <inheritdoc />
    /// <remarks>False when the window was written with another <see cref="WindowSize"/> (the detector starts over).</remarks>
    public bool ReadState(ref StateReader reader)
    {
        if (!reader.ReadBool("started"))
        {
            return true;
        }

        int windowSize = (int)reader.ReadVarUInt("window size", int.MaxValue);
        int count = (int)reader.ReadVarUInt("window count", (ulong)windowSize);
        if (count > reader.Remaining / sizeof(double))
        {
            throw reader.Invalid("window count", "more values than bytes left");
        }

        bool fits = windowSize == WindowSize;
        if (fits)
        {
            Restart();
        }

        for (int i = 0; i < count; i++)
        {
            double value = reader.ReadDouble("window value");
            if (fits)
            {
                _window[i] = value;
            }
        }

        long seen = reader.ReadVarInt("count", count, long.MaxValue);
        double pValue = reader.ReadDouble("p-value");
        double statistic = reader.ReadDouble("statistic");
        bool drift = reader.ReadBool("drift");
        PythonRandom random = PythonRandom.ReadState(ref reader);
        if (fits)
        {
            (_count, Count, PValue, Statistic, _driftDetected, _random) = (count, seen, pValue, statistic, drift, random);
        }
        else
        {
            _random = null;
        }

        return fits;
    }

    /// <inheritdoc />
    public void Update(double value)
    {
        if (_random is null || _driftDetected)
        {
            Restart();
        }

        Count++;
        if (_count < WindowSize)
        {
            _window[(_start + _count++) % WindowSize] = value;
        }
        else
        {
            _window[_start] = value;
            _start = (_start + 1) % WindowSize;
        }

        if (_count < WindowSize)
        {
            _driftDetected = false;
            return;
        }

        int older = WindowSize - StatSize;
        _random!.Sample(older, _indices);
        for (int i = 0; i < StatSize; i++)
        {
            _sample[i] = At(_indices[i]);
            _recent[i] = At(older + i);
        }

        TwoSampleResult result = KolmogorovSmirnovTest.Compute(_sample, _recent, _workspace);
        Statistic = result.Statistic;
        PValue = result.PValue;
        _driftDetected = result.PValue <= Alpha && result.Statistic > MinimumStatistic;
    }

    private double At(int index) => _window[(_start + index) % WindowSize];

    private void Restart()
    {
        if (ParameterProblem() is { } problem)
        {
            throw new InvalidOperationException(problem);
        }

        if (_window.Length != WindowSize)
        {
            _window = new double[WindowSize];
            _sample = new double[StatSize];
            _recent = new double[StatSize];
            _indices = new int[StatSize];
        }

        _start = 0;
        _count = 0;
        Count = 0;
        PValue = 0;
        Statistic = 0;
        _driftDetected = false;
        _random = new PythonRandom(Seed ?? Random.Shared.NextInt64());
    }
}
