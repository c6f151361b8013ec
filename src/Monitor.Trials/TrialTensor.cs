using System.Globalization;
using System.Runtime.InteropServices;
using Monitor.Contracts;
using Monitor.Contracts.V1;

namespace Monitor.Trials;

/// <summary>Raw element values of a tensor at one step, as traced (float32, row-major).</summary>
/// <param name="Values">The values traced: all of them, or the first ones when <paramref name="Truncated"/>.</param>
/// <param name="Shape">The tensor's dimensions.</param>
/// <param name="TotalElements">Elements of the tensor.</param>
/// <param name="Truncated">True when the selection's <c>limitSize</c> kept fewer than <paramref name="TotalElements"/>.</param>
public sealed record TrialValue(float[] Values, IReadOnlyList<long> Shape, long TotalElements, bool Truncated);

/// <summary>The histogram of a tensor at one step: bucket <c>i</c> spans <c>Edges[i]</c> to <c>Edges[i + 1]</c>.</summary>
/// <param name="Edges">Bucket edges, one more than <paramref name="Counts"/>; may hold -inf/+inf.</param>
/// <param name="Counts">Elements per bucket (the non-empty span the worker sent, for the log2-magnitude layout); for a
/// sampled histogram, elements of the sample.</param>
/// <param name="SampledCount">0 when every element but NaN was counted; else the elements of the sample the counts sum
/// to (a bucket's share of the tensor is its count divided by this; see <c>Log2Histogram.SampledFractionErrorBound</c>).</param>
public sealed record TrialHistogram(double[] Edges, long[] Counts, long SampledCount = 0);

/// <summary>
/// One traced tensor of a <see cref="Trial"/> (smdebug's <c>trial.tensor(name)</c>): its steps, raw values, reductions
/// and histograms at a step, and the workers (ranks) that traced it.
/// </summary>
/// <remarks>
/// <para><b>Reductions</b> (<see cref="Reduction"/>, smdebug's <c>reduction_value(step, name, mode, worker, abs)</c>)
/// are answered from the traced summary, which covers every element of the tensor (non-finite ones left out, as the
/// summary's statistics are of the finite elements), computed on the worker in double precision:</para>
/// <list type="bullet">
/// <item>stored in the summary, returned as is: <c>min</c>, <c>max</c>, <c>mean</c>, <c>variance</c> (population),
/// <c>l1</c>, <c>l2</c>; with <c>abs</c>: <c>mean</c> (the mean |x|), <c>sum</c> and <c>l1</c> (the L1 norm),
/// <c>l2</c>;</item>
/// <item>derived from stored fields: <c>std</c> (the square root of the variance), <c>sum</c> (mean × finite elements),
/// <c>count</c> (finite elements); with <c>abs</c>: <c>max</c> (max(|min|, |max|)), <c>min</c> (exact when the elements
/// do not change sign or a zero was counted), <c>variance</c> and <c>std</c> (l2² / n − mean|x|², which loses precision
/// when the spread is tiny next to the magnitude);</item>
/// <item>not determined by the summary: <c>prod</c>, and <c>min</c> with <c>abs</c> when the elements change sign and
/// none is zero. These are computed from the raw values when every element was traced; otherwise the call throws
/// <see cref="TensorUnavailableForStepException"/>, as smdebug does.</item>
/// </list>
/// <para>Where a step was traced in several modes or by several ranks, pass <c>mode</c> or <c>rank</c>; the tensor
/// does not pick one. Thread-safe, as the trial.</para>
/// </remarks>
public sealed class TrialTensor
{
    /// <summary>The reduction names <see cref="Reduction"/> knows (smdebug's, and <c>count</c>).</summary>
    public static IReadOnlyList<string> ReductionNames { get; } = ["min", "max", "mean", "std", "variance", "sum", "prod", "l1", "l2", "count"];

    private readonly Trial _trial;

    internal TrialTensor(Trial trial, string name)
    {
        _trial = trial;
        Name = name;
    }

    /// <summary>The tensor's name, e.g. <c>fc1.weight.grad</c>.</summary>
    public string Name { get; }

    /// <summary>
    /// Steps at which the tensor was traced (in <paramref name="mode"/>; null: any), ascending (smdebug's
    /// <c>tensor.steps(mode, show_incomplete_steps)</c>).
    /// </summary>
    /// <param name="mode">Only this mode; null: any.</param>
    /// <param name="showIncompleteSteps">False (default): only steps that every rank which ever traced the tensor traced;
    /// true: steps that at least one did.</param>
    public IReadOnlyList<long> Steps(Mode? mode = null, bool showIncompleteSteps = false) => _trial.TensorSteps(Name, mode, showIncompleteSteps);

    /// <summary>The ranks that traced the tensor (at <paramref name="step"/>, in <paramref name="mode"/>, when given), ascending.</summary>
    public IReadOnlyList<int> Workers(long? step = null, Mode? mode = null) => _trial.TensorWorkers(Name, step, mode);

    /// <summary>The raw values traced at <paramref name="step"/> (smdebug's <c>tensor.value(step, mode, worker)</c>).</summary>
    /// <exception cref="TensorUnavailableForStepException">Not traced at that step (the message lists the nearest
    /// steps), ambiguous without a mode or rank, or traced as a summary only (no raw values).</exception>
    public TrialValue Value(long step, Mode? mode = null, int? rank = null)
    {
        TensorRecord tensor = _trial.Find(Name, step, mode, rank);
        if (tensor.Raw is not { } raw)
        {
            throw new TensorUnavailableForStepException($"{_trial.Describe(Name, step, mode, rank)}: only a summary was traced, no raw values (trace raw values for its collection: raw: true in the selection)");
        }

        ReadOnlySpan<byte> bytes = raw.Float32Le.Span;
        float[] values = MemoryMarshal.Cast<byte, float>(bytes[..(bytes.Length / 4 * 4)]).ToArray();
        return new TrialValue(values, [.. tensor.Shape], (long)raw.TotalElements, raw.Truncated);
    }

    /// <summary>
    /// A reduction of the tensor at <paramref name="step"/> (smdebug's <c>tensor.reduction_value(step, name, mode,
    /// worker, abs)</c>); which reductions the summary determines is in the type's remarks.
    /// </summary>
    /// <param name="step">The step.</param>
    /// <param name="name">One of <see cref="ReductionNames"/> (case-insensitive).</param>
    /// <param name="abs">True: the reduction of |x|.</param>
    /// <param name="mode">The step's mode; null: the only mode the tensor was traced in at that step.</param>
    /// <param name="rank">The rank; null: the only rank that traced it at that step.</param>
    /// <exception cref="ArgumentException"><paramref name="name"/> is not a known reduction.</exception>
    /// <exception cref="TensorUnavailableForStepException">Not traced at that step, ambiguous, or neither the summary
    /// nor complete raw values determine the reduction.</exception>
    public double Reduction(long step, string name, bool abs = false, Mode? mode = null, int? rank = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        string reduction = name.ToLowerInvariant();
        if (!ReductionNames.Contains(reduction))
        {
            throw new ArgumentException($"unknown reduction {name}; known: {string.Join(", ", ReductionNames)}", nameof(name));
        }

        TensorRecord tensor = _trial.Find(Name, step, mode, rank);
        if (tensor.Summary is { } summary && FromSummary(summary, reduction, abs) is { } value)
        {
            return value;
        }

        if (tensor.Raw is { Truncated: false } raw)
        {
            return FromValues(MemoryMarshal.Cast<byte, float>(raw.Float32Le.Span[..(raw.Float32Le.Length / 4 * 4)]), reduction, abs);
        }

        string why = tensor.Summary is null ? "no summary was traced" : $"the summary does not determine {(abs ? "abs " : "")}{reduction}";
        throw new TensorUnavailableForStepException($"{_trial.Describe(Name, step, mode, rank)}: {why}, and no complete raw values were traced");
    }

    /// <summary>The histogram traced at <paramref name="step"/>, edges resolved from its layout.</summary>
    /// <exception cref="TensorUnavailableForStepException">Not traced at that step, ambiguous, or traced without a histogram.</exception>
    public TrialHistogram Histogram(long step, Mode? mode = null, int? rank = null)
    {
        TensorRecord tensor = _trial.Find(Name, step, mode, rank);
        if (tensor.Summary?.Histogram is not { } histogram)
        {
            throw new TensorUnavailableForStepException($"{_trial.Describe(Name, step, mode, rank)}: traced without a histogram");
        }

        ReadOnlySpan<double> edges = HistogramEdges.Of(histogram);
        int first = (int)histogram.FirstBucket;
        int buckets = histogram.Counts.Count;
        double[] spanned = edges.Length >= first + buckets + 1 ? edges.Slice(first, buckets + 1).ToArray() : [];
        return new TrialHistogram(spanned, [.. histogram.Counts.Select(c => (long)c)], (long)histogram.SampledCount);
    }

    private static double? FromSummary(TensorSummary s, string reduction, bool abs)
    {
        double finite = s.Count - s.NanCount - s.InfCount;
        if (!abs)
        {
            return reduction switch
            {
                "min" => s.Min,
                "max" => s.Max,
                "mean" => s.Mean,
                "variance" => s.Variance,
                "std" => Math.Sqrt(s.Variance),
                "sum" => s.Mean * finite,
                "l1" => s.L1,
                "l2" => s.L2,
                "count" => finite,
                _ => null,
            };
        }

        return reduction switch
        {
            "mean" => s.AbsMean,
            "sum" or "l1" => s.L1,
            "l2" => s.L2,
            "max" => Math.Max(Math.Abs(s.Min), Math.Abs(s.Max)),
            "min" when s.Min >= 0 => s.Min,
            "min" when s.Max <= 0 => -s.Max,
            "min" when s.ZeroCount > 0 => 0,
            "variance" => Math.Max(0, (s.L2 * s.L2 / finite) - (s.AbsMean * s.AbsMean)),
            "std" => Math.Sqrt(Math.Max(0, (s.L2 * s.L2 / finite) - (s.AbsMean * s.AbsMean))),
            "count" => finite,
            _ => null,
        };
    }

    private static double FromValues(ReadOnlySpan<float> values, string reduction, bool abs)
    {
        double min = double.PositiveInfinity, max = double.NegativeInfinity, sum = 0, squares = 0, absolute = 0, product = 1;
        long n = 0;
        foreach (float raw in values)
        {
            double x = abs ? Math.Abs(raw) : raw;
            if (!double.IsFinite(x))
            {
                continue;
            }

            n++;
            min = Math.Min(min, x);
            max = Math.Max(max, x);
            sum += x;
            squares += x * x;
            absolute += Math.Abs(x);
            product *= x;
        }

        double mean = n == 0 ? double.NaN : sum / n;
        double variance = n == 0 ? double.NaN : Math.Max(0, (squares / n) - (mean * mean));
        return reduction switch
        {
            "min" => n == 0 ? double.NaN : min,
            "max" => n == 0 ? double.NaN : max,
            "mean" => mean,
            "variance" => variance,
            "std" => Math.Sqrt(variance),
            "sum" => sum,
            "prod" => product,
            "l1" => absolute,
            "l2" => Math.Sqrt(squares),
            "count" => n,
            _ => throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"unknown reduction {reduction}")),
        };
    }
}
