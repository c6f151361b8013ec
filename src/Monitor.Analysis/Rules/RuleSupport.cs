using Google.Protobuf.Collections;
using Monitor.Contracts;
using Monitor.Contracts.V1;

namespace Monitor.Analysis.Rules;

/// <summary>Helpers shared by the tensor rules: summary bounds, raw-value arithmetic, requirements.</summary>
/// <remarks>
/// Everything here runs per tensor per record, so it allocates nothing and loops over protobuf collections by index
/// (their enumerators are boxed).
/// </remarks>
internal static partial class RuleSupport
{
    /// <summary>Whether the record is a training step (or says nothing about its mode).</summary>
    /// <remarks>Weights do not change during evaluation or prediction steps; rules about updates skip them.</remarks>
    public static bool IsTraining(StepRecord record) => record.Mode is Mode.Train or Mode.Unspecified;

    /// <summary>Elements that are neither NaN nor infinite.</summary>
    public static ulong FiniteCount(TensorSummary summary)
    {
        ulong nonFinite = summary.NanCount + summary.InfCount;
        return summary.Count > nonFinite ? summary.Count - nonFinite : 0;
    }

    /// <summary><paramref name="part"/> of <paramref name="whole"/> in percent (0 when whole is 0).</summary>
    public static double Percent(double part, double whole) => whole > 0 ? 100.0 * part / whole : 0;

    /// <summary>numpy's <c>isclose(a, b)</c> for finite values: <c>|a - b| &lt;= atol + rtol * |b|</c>.</summary>
    public static bool Close(double a, double b, double rtol, double atol) => Math.Abs(a - b) <= atol + rtol * Math.Abs(b);

    /// <summary>
    /// numpy's <c>isclose(a, b, rtol, atol, equal_nan)</c> for one element: equal infinities are close, NaN is close
    /// to NaN only with <paramref name="equalNan"/>.
    /// </summary>
    public static bool Close(float a, float b, double rtol, double atol, bool equalNan)
    {
        if (float.IsFinite(a) && float.IsFinite(b))
        {
            return Close((double)a, b, rtol, atol);
        }

        if (float.IsNaN(a) || float.IsNaN(b))
        {
            return equalNan && float.IsNaN(a) && float.IsNaN(b);
        }

        return a == b;
    }

    /// <summary>
    /// A lower bound, provable from the summary alone, on the number of elements <c>x &lt;= bound</c>: the larger of
    /// the histogram buckets lying wholly at or below the bound, the zero count (when the bound is not negative), and
    /// every finite element when the maximum is at or below the bound. A sampled histogram (<c>sampled_count</c> not 0)
    /// contributes its buckets' share of the sample less <see cref="Log2Histogram.SampledFractionErrorBound"/> at
    /// <see cref="SampledHistogramAlpha"/>, times the elements counted: that part holds with probability 1 - 1e-6.
    /// </summary>
    public static ulong CountAtMostLowerBound(TensorSummary summary, double bound)
    {
        ulong finite = FiniteCount(summary);
        if (finite > 0 && summary.Max <= bound)
        {
            return finite;
        }

        ulong fromZeros = bound >= 0 ? summary.ZeroCount : 0;
        ulong fromHistogram = 0;
        if (summary.Histogram is { } histogram)
        {
            // Only the span of buckets that was sent (the rest are empty), in ascending order of value.
            RepeatedField<ulong> counts = histogram.Counts;
            int first = (int)histogram.FirstBucket;
            for (int i = 0; i < counts.Count; i++)
            {
                // Every value of bucket b lies in [edge b, edge b+1] (a value on an edge belongs to one of the two).
                if (UpperEdge(histogram, first + i) > bound)
                {
                    break;
                }

                fromHistogram += counts[i];
            }

            fromHistogram = ElementsAtLeast(summary, histogram, fromHistogram);
        }

        return Math.Max(fromZeros, fromHistogram);
    }

    /// <summary>
    /// A lower bound, provable from the summary alone, on the number of elements <c>x &gt;= bound</c> (see
    /// <see cref="CountAtMostLowerBound"/>).
    /// </summary>
    public static ulong CountAtLeastLowerBound(TensorSummary summary, double bound)
    {
        ulong finite = FiniteCount(summary);
        if (finite > 0 && summary.Min >= bound)
        {
            return finite;
        }

        ulong fromZeros = bound <= 0 ? summary.ZeroCount : 0;
        ulong fromHistogram = 0;
        if (summary.Histogram is { } histogram)
        {
            RepeatedField<ulong> counts = histogram.Counts;
            int first = (int)histogram.FirstBucket;
            for (int i = counts.Count - 1; i >= 0; i--)
            {
                if (LowerEdge(histogram, first + i) < bound)
                {
                    break;
                }

                fromHistogram += counts[i];
            }

            fromHistogram = ElementsAtLeast(summary, histogram, fromHistogram);
        }

        return Math.Max(fromZeros, fromHistogram);
    }

    /// <summary>
    /// An upper bound, provable from the summary, on <c>percentile(95) - percentile(5)</c> of the finite elements
    /// (numpy's linear interpolation): the 5th percentile is at least the lower edge of the bucket holding its lower
    /// order statistic, the 95th at most the upper edge of the bucket holding its upper one, both clamped to
    /// [min, max]. Without a histogram, <c>max - min</c>. NaN when the summary cannot tell (non-finite elements, fewer
    /// than two elements). A sampled histogram is ranked in its sample, the percentiles widened by its error bound at
    /// <see cref="SampledHistogramAlpha"/> (the bound then holds with probability 1 - 2e-6).
    /// </summary>
    public static double PercentileSpreadUpperBound(TensorSummary summary, double low, double high)
    {
        ulong n = summary.Count;
        if (n < 2 || summary.NanCount + summary.InfCount > 0)
        {
            return double.NaN;
        }

        double lower = summary.Min;
        double upper = summary.Max;
        if (summary.Histogram is { } histogram)
        {
            // Ranks among the elements counted: all of them, or the sample's, whose shares are off by at most slack.
            ulong ranked = histogram.SampledCount == 0 ? n : histogram.SampledCount;
            double slack = histogram.SampledCount == 0 ? 0 : Log2Histogram.SampledFractionErrorBound(histogram.SampledCount, SampledHistogramAlpha);
            double lowShare = (low / 100) - slack, highShare = (high / 100) + slack;
            int lowBucket = lowShare < 0 || ranked < 2 ? -1 : BucketOfRank(histogram, (ulong)Math.Floor(lowShare * (ranked - 1)));
            int highBucket = highShare > 1 || ranked < 2 ? -1 : BucketOfRank(histogram, (ulong)Math.Ceiling(highShare * (ranked - 1)));
            if (lowBucket >= 0)
            {
                lower = Math.Max(lower, LowerEdge(histogram, lowBucket));
            }

            if (highBucket >= 0)
            {
                upper = Math.Min(upper, UpperEdge(histogram, highBucket));
            }
        }

        return Math.Max(0, upper - lower);
    }

    /// <summary>
    /// numpy's <c>percentile(values, p)</c> (linear interpolation) of the finite values, sorting a copy in
    /// <paramref name="scratch"/> (grown when too small). NaN when there is no finite value.
    /// </summary>
    public static void Percentiles(ReadOnlySpan<float> values, double low, double high, ref float[] scratch, out double lowValue, out double highValue)
    {
        if (scratch.Length < values.Length)
        {
            scratch = new float[values.Length];
        }

        int n = 0;
        foreach (float value in values)
        {
            if (float.IsFinite(value))
            {
                scratch[n++] = value;
            }
        }

        Span<float> sorted = scratch.AsSpan(0, n);
        sorted.Sort();
        lowValue = Interpolate(sorted, low);
        highValue = Interpolate(sorted, high);
    }

    /// <summary>
    /// Counts, with raw values, the neurons whose activity is below <paramref name="thresholdInactivity"/> percent of the
    /// samples: an element is active when <c>lower &lt; x &lt; upper</c> (NaN never is). The first dimension of the
    /// shape is the batch; every position in the remaining dimensions is a neuron. Tensors of rank 0 or 1 are one sample
    /// whose every element is a neuron. Truncated raw values are used for the complete samples they hold.
    /// </summary>
    /// <returns>False when the tensor has no raw values or not even one complete sample of them.</returns>
    public static bool TryCountInactiveNeurons(TensorRecord tensor, double lower, double upper, double thresholdInactivity,
        ref int[] scratch, out long inactive, out long neurons, out long samples)
    {
        inactive = 0;
        neurons = 0;
        samples = 0;
        ReadOnlySpan<float> raw = TensorValues.Raw(tensor);
        if (raw.IsEmpty)
        {
            return false;
        }

        RepeatedField<long> shape = tensor.Shape;
        long perSample = 1;
        if (shape.Count >= 2)
        {
            for (int d = 1; d < shape.Count; d++)
            {
                perSample *= shape[d];
            }
        }
        else
        {
            perSample = shape.Count == 1 ? shape[0] : raw.Length;
        }

        if (perSample <= 0 || perSample > raw.Length)
        {
            return false;
        }

        int width = (int)perSample;
        int rows = raw.Length / width;
        if (scratch.Length < width)
        {
            scratch = new int[width];
        }

        Span<int> active = scratch.AsSpan(0, width);
        active.Clear();
        for (int r = 0; r < rows; r++)
        {
            ReadOnlySpan<float> row = raw.Slice(r * width, width);
            for (int j = 0; j < row.Length; j++)
            {
                float x = row[j];
                if (lower < x && x < upper)
                {
                    active[j]++;
                }
            }
        }

        // Inactive: active in fewer than thresholdInactivity percent of the samples.
        double needed = thresholdInactivity / 100 * rows;
        foreach (int count in active)
        {
            if (count < needed)
            {
                inactive++;
            }
        }

        neurons = width;
        samples = rows;
        return true;
    }

    /// <summary>
    /// The smallest element-level inactive fraction, in percent, that proves more than <paramref name="thresholdLayer"/>
    /// percent of the neurons inactive whatever the per-neuron split: a neuron that is not inactive is active in at
    /// least <paramref name="thresholdInactivity"/> percent of the samples, so an inactive share z of all elements
    /// forces a share of at least (z - (1 - TI)) / TI of inactive neurons. Hence 100 * (1 - TI * (1 - TL)).
    /// </summary>
    public static double ProvenInactivePercent(double thresholdInactivity, double thresholdLayer) =>
        100 * (1 - thresholdInactivity / 100 * (1 - thresholdLayer / 100));

    /// <summary>
    /// Removes the entries of one rank of a run (<see cref="ITrainingRule.ForgetRank"/>: rare, so a scan is fine).
    /// </summary>
    public static void Forget<T>(Dictionary<SeriesKey, T> series, string run, uint rank)
    {
        foreach (SeriesKey key in series.Keys)
        {
            if (key.Rank == rank && key.Run == run)
            {
                // Removing while enumerating is allowed for Dictionary since .NET Core 3.0.
                series.Remove(key);
            }
        }
    }

    /// <summary>One requirement per collection of the selector (none when it looks at every tensor).</summary>
    public static IReadOnlyList<TensorRequirement> Requirements(TensorSelector selector, bool raw, string why)
    {
        var requirements = new List<TensorRequirement>(selector.Collections.Count);
        foreach (Collection collection in selector.Collections)
        {
            requirements.Add(new TensorRequirement(CollectionNames.NameOf(collection), raw, why));
        }

        return requirements;
    }

    private static double Interpolate(ReadOnlySpan<float> sorted, double percentile)
    {
        if (sorted.IsEmpty)
        {
            return double.NaN;
        }

        double rank = percentile / 100 * (sorted.Length - 1);
        int below = (int)Math.Floor(rank);
        int above = Math.Min(below + 1, sorted.Length - 1);
        double fraction = rank - below;
        return sorted[below] + (fraction * (sorted[above] - (double)sorted[below]));
    }

    /// <summary>The probability the rules allow a sampled histogram's error bound to fail (1e-6).</summary>
    public const double SampledHistogramAlpha = 1e-6;

    // Counts of a set of buckets as elements of the tensor: exact, or for a sampled histogram the set's share of the
    // sample less its error bound, times the elements counted (a lower bound with probability 1 - alpha).
    private static ulong ElementsAtLeast(TensorSummary summary, Histogram histogram, ulong counted)
    {
        if (histogram.SampledCount == 0)
        {
            return counted;
        }

        double share = ((double)counted / histogram.SampledCount) - Log2Histogram.SampledFractionErrorBound(histogram.SampledCount, SampledHistogramAlpha);
        return share <= 0 ? 0 : (ulong)Math.Floor(share * (summary.Count - summary.NanCount));
    }

    private static int BucketOfRank(Histogram histogram, ulong rank)
    {
        ulong seen = 0;
        RepeatedField<ulong> counts = histogram.Counts;
        for (int i = 0; i < counts.Count; i++)
        {
            seen += counts[i];
            if (seen > rank)
            {
                return (int)histogram.FirstBucket + i;
            }
        }

        return -1;
    }

    private static double LowerEdge(Histogram histogram, int bucket) => Edge(histogram, bucket, double.NegativeInfinity);

    private static double UpperEdge(Histogram histogram, int bucket) => Edge(histogram, bucket + 1, double.PositiveInfinity);

    // Edges of the log2 layout are fixed; explicit histograms carry theirs. A missing edge bounds nothing.
    private static double Edge(Histogram histogram, int index, double missing) => histogram.Layout switch
    {
        HistogramLayout.Log2Magnitude when index < Log2Histogram.Edges.Length => Log2Histogram.Edges[index],
        HistogramLayout.Explicit when index < histogram.Edges.Count => histogram.Edges[index],
        _ => missing,
    };
}

/// <summary>A copy of a tensor's raw values, kept from one traced step to the next (buffer reused).</summary>
internal sealed class ValueSnapshot
{
    private float[] _values = [];

    public int Length { get; private set; }

    public bool Complete { get; private set; }

    public ReadOnlySpan<float> Values => _values.AsSpan(0, Length);

    public void Store(ReadOnlySpan<float> values, bool complete)
    {
        if (_values.Length < values.Length)
        {
            _values = new float[values.Length];
        }

        values.CopyTo(_values);
        Length = values.Length;
        Complete = complete;
    }

    public void Clear() => Length = 0;

    public void WriteState(ref State.StateWriter writer)
    {
        writer.WriteBool(Complete);
        writer.WriteSingles(Values);
    }

    public static ValueSnapshot ReadState(ref State.StateReader reader)
    {
        var snapshot = new ValueSnapshot();
        bool complete = reader.ReadBool("values complete");
        snapshot.Store(reader.ReadSingles("values"), complete);
        return snapshot;
    }
}
