using Monitor.Contracts.V1;

namespace Monitor.Tracing;

/// <summary>
/// The overhead budget's controller: measures the tracer's cost against the step time over windows of steps and
/// sets a thinning stride per collection.
/// </summary>
/// <remarks>
/// <para><b>Measurement.</b> A window is at least <see cref="MinWindowSteps"/> steps and at least the largest stride,
/// so it covers a whole rotation of every thinned collection; its ratio is the cost summed over the window divided by
/// the step time summed over it. Which collection costs what is estimated from what it had summarized in the window:
/// its elements plus <see cref="TensorWeight"/> per tensor. A step counts at most <see cref="PauseFactor"/> times the
/// previous window's mean step time: an evaluation pass, a checkpoint or a stalled data loader between two steps is
/// not time the tracer's cost is weighed against, and would otherwise make it stop thinning right after. Steps that
/// really grow longer are counted in full after a few windows (the cap doubles with each).</para>
/// <para><b>Control.</b> Over budget (and at least <see cref="MinCostPerStep"/> a step), strides of the heaviest
/// collections double, the heaviest first, until the estimate is down to 3/4 of the budget. Under half the budget,
/// strides halve, the lightest collection first, as long as the estimate stays within half the budget. Between half
/// the budget and the budget nothing changes: the gap keeps measurement noise from making strides oscillate.</para>
/// <para><b>Threading.</b> Updated by the training thread only; <see cref="StrideOf"/> and <see cref="Ratio"/> may be
/// read from any thread (an int and a double's bits, each read whole).</para>
/// </remarks>
internal sealed class OverheadGovernor
{
    /// <summary>Largest stride: a tensor is still traced at least once every 1,024 traced steps.</summary>
    public const int MaxStride = 1024;

    /// <summary>Fewest steps a measurement window has.</summary>
    public const int MinWindowSteps = 8;

    /// <summary>
    /// Weight of a tensor's fixed costs (the lookups, the record's messages), in elements: about what the summarizer reads
    /// in the microsecond those take.
    /// </summary>
    public const long TensorWeight = 1024;

    /// <summary>Most a step counts, in means of the previous window's steps (see the remarks).</summary>
    public const int PauseFactor = 2;

    /// <summary>Below this cost a step (0.1 ms), thinning would lose data to save nothing measurable: it never starts.</summary>
    public static readonly TimeSpan MinCostPerStep = TimeSpan.FromMilliseconds(0.1);

    private const int Slots = 32;
    private const double PlanFraction = 0.75;
    private const double ShrinkFraction = 0.5;

    private readonly int[] _stride = new int[Slots];
    private readonly long[] _weight = new long[Slots];
    private readonly long _minCostTicks;
    private long _fixedWeight;
    private long _windowCost;
    private long _windowTime;
    private int _windowSteps;
    private long _meanStepTicks;
    private int _maxStride = 1;
    private long _ratioBits;

    /// <summary>A controller whose costs and step times are timestamps of <paramref name="frequency"/> ticks a second.</summary>
    public OverheadGovernor(long frequency)
    {
        Array.Fill(_stride, 1);
        _minCostTicks = (long)(MinCostPerStep.TotalSeconds * frequency);
    }

    /// <summary>The measured cost as a fraction of the step time, over the last complete window (0 before the first).</summary>
    public double Ratio => BitConverter.Int64BitsToDouble(Volatile.Read(ref _ratioBits));

    /// <summary>True when some collection has a stride above 1.</summary>
    public bool Thinning => _maxStride > 1;

    /// <summary>The stride of a collection (1: not thinned).</summary>
    public int StrideOf(Collection collection) => Volatile.Read(ref _stride[(int)collection]);

    /// <summary>Counts a tensor summarized this step: <paramref name="thin"/> is the collection it is thinned with
    /// (<see cref="Collection.Unspecified"/> when it never is).</summary>
    public void Traced(Collection thin, long elements)
    {
        long weight = Math.Max(elements, 0) + TensorWeight;
        if (thin == Collection.Unspecified)
        {
            _fixedWeight += weight;
        }
        else
        {
            _weight[(int)thin] += weight;
        }
    }

    /// <summary>
    /// Ends a step of <paramref name="stepTicks"/> that cost the tracer <paramref name="costTicks"/>; at the end of a
    /// window, adjusts the strides to <paramref name="budget"/>. No budget: nothing is thinned from now on.
    /// </summary>
    public void CloseStep(long stepTicks, long costTicks, double? budget)
    {
        if (budget is null && _maxStride > 1)
        {
            Array.Fill(_stride, 1);
            _maxStride = 1;
        }

        long counted = Math.Max(stepTicks, 0);
        if (_meanStepTicks > 0 && counted > PauseFactor * _meanStepTicks)
        {
            counted = PauseFactor * _meanStepTicks;
        }

        _windowCost += Math.Max(costTicks, 0);
        _windowTime += counted;
        if (++_windowSteps < Math.Max(MinWindowSteps, _maxStride))
        {
            return;
        }

        double ratio = _windowTime > 0 ? (double)_windowCost / _windowTime : 0;
        Volatile.Write(ref _ratioBits, BitConverter.DoubleToInt64Bits(ratio));
        if (budget is { } fraction)
        {
            Adjust(ratio, fraction, _windowCost / _windowSteps >= _minCostTicks);
        }

        _meanStepTicks = _windowTime / _windowSteps;
        _windowCost = _windowTime = _fixedWeight = 0;
        _windowSteps = 0;
        Array.Clear(_weight);
    }

    private void Adjust(double ratio, double budget, bool worthThinning)
    {
        long total = _fixedWeight;
        foreach (long weight in _weight)
        {
            total += weight;
        }

        if (total == 0)
        {
            return;
        }

        // Each collection's share of the measured cost, at its current stride.
        Span<double> cost = stackalloc double[Slots];
        for (int i = 0; i < Slots; i++)
        {
            cost[i] = ratio * _weight[i] / total;
        }

        double estimate = ratio;
        if (ratio > budget && worthThinning)
        {
            while (estimate > PlanFraction * budget && Heaviest(cost) is int heaviest and >= 0)
            {
                _stride[heaviest] *= 2;
                estimate -= cost[heaviest] / 2;
                cost[heaviest] /= 2;
            }
        }
        else if (ratio < ShrinkFraction * budget)
        {
            while (LightestThinned(cost) is int lightest and >= 0 && estimate + cost[lightest] <= ShrinkFraction * budget)
            {
                _stride[lightest] /= 2;
                estimate += cost[lightest];
                cost[lightest] *= 2;
            }
        }

        int max = 1;
        foreach (int stride in _stride)
        {
            max = Math.Max(max, stride);
        }

        _maxStride = max;
    }

    private int Heaviest(ReadOnlySpan<double> cost)
    {
        int best = -1;
        for (int i = 0; i < Slots; i++)
        {
            if (cost[i] > 0 && _stride[i] < MaxStride && (best < 0 || cost[i] > cost[best]))
            {
                best = i;
            }
        }

        return best;
    }

    private int LightestThinned(ReadOnlySpan<double> cost)
    {
        int best = -1;
        for (int i = 0; i < Slots; i++)
        {
            if (_stride[i] > 1 && (best < 0 || cost[i] < cost[best]))
            {
                best = i;
            }
        }

        return best;
    }
}
