using System.Globalization;
using Monitor.Analysis.State;
using Monitor.Contracts.V1;

namespace Monitor.Analysis.Rules;

/// <summary>
/// Weight update ratio (smdebug <c>WeightUpdateRatio</c>): fires for a weight tensor whose update between two traced
/// training steps is too large, or too small, relative to the weights: <c>ratio &gt; LargeThreshold</c> or
/// <c>ratio &lt; SmallThreshold</c>.
/// </summary>
/// <remarks>
/// <para><b>Formula with raw values</b>, per selected tensor of each rank, between a traced training step and the
/// previous one: <c>ratio = ||w_t - w_prev||_2 / (||w_prev||_2 + epsilon)</c> over the captured elements. Raw values
/// cut at the selection's <c>limitSize</c> give the ratio of that leading slice of the tensor (the same elements on
/// both steps), an estimate of the whole tensor's. Steps whose values hold NaN or Inf give no verdict
/// (<see cref="ExplodingTensorRule"/> covers them).</para>
/// <para><b>Without raw values</b> the update itself is unknown and a small update cannot be shown. The rule then
/// judges only the large side, and only when the summaries prove it: by the triangle inequality
/// <c>||Δw|| &gt;= | ||w_t|| - ||w_prev|| |</c> (the <c>l2</c> fields), and by Cauchy-Schwarz <c>||Δw|| &gt;= sqrt(n)
/// * |mean_t - mean_prev|</c>; the larger of the two, divided by <c>||w_prev|| + epsilon</c>, is a lower bound of the
/// ratio, and the rule fires when that bound exceeds <see cref="LargeThreshold"/>. The observed value is then the
/// bound.</para>
/// <para>Only training steps are compared (mode train or unspecified): weights do not move during evaluation. A
/// record older than the last one compared for a tensor (out of order) is skipped. Memory: one copy of the captured
/// values per selected tensor and rank.</para>
/// <para>Parameters follow the SageMaker developer guide, "List of Debugger Built-in Rules", section
/// WeightUpdateRatio (awsdocs/amazon-sagemaker-developer-guide, doc_source/debugger-built-in-rules.md):
/// <c>num_steps</c> (default None: the previous saved step) → <see cref="NumSteps"/>, <c>large_threshold</c> (10.0)
/// → <see cref="LargeThreshold"/>, <c>small_threshold</c> (1e-8) → <see cref="SmallThreshold"/>, <c>epsilon</c>
/// (1e-9) → <see cref="Epsilon"/>; the collection is weights. The guide does not say which weights the update is
/// divided by; we take the weights before the update.</para>
/// </remarks>
public sealed class WeightUpdateRatioRule : PerTensorRule
{
    private readonly SeriesTable<Previous> _previous = new();

    /// <summary>
    /// Largest gap, in steps, between the two traced steps compared; null: any gap, the previous traced step
    /// (smdebug's <c>num_steps</c>, default None). With a value, a step further than that from the previous traced
    /// one is not compared (it starts over), so trace every <c>NumSteps</c> steps or more often.
    /// </summary>
    public int? NumSteps
    {
        get;
        init => field = value is null or >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(NumSteps), value, "NumSteps must be at least 1 or null");
    }

    /// <summary>Ratio above which the update is too large. Default 10.0 (smdebug's <c>large_threshold</c>).</summary>
    public double LargeThreshold
    {
        get;
        init => field = value is > 0 and < double.PositiveInfinity ? value : throw new ArgumentOutOfRangeException(nameof(LargeThreshold), value, "LargeThreshold must be a positive, finite number");
    } = 10.0;

    /// <summary>Ratio below which the update is too small. Default 1e-8 (smdebug's <c>small_threshold</c>).</summary>
    public double SmallThreshold
    {
        get;
        init => field = value is >= 0 and < double.PositiveInfinity ? value : throw new ArgumentOutOfRangeException(nameof(SmallThreshold), value, "SmallThreshold must be a non-negative, finite number");
    } = 1e-8;

    /// <summary>Added to the weights' norm so the ratio never divides by zero. Default 1e-9 (smdebug's
    /// <c>epsilon</c>).</summary>
    public double Epsilon
    {
        get;
        init => field = value is >= 0 and < double.PositiveInfinity ? value : throw new ArgumentOutOfRangeException(nameof(Epsilon), value, "Epsilon must be a non-negative, finite number");
    } = 1e-9;

    /// <summary>Tensors looked at. Default every tensor of collection weights.</summary>
    public override TensorSelector Selector
    {
        get;
        init => field = value ?? throw new ArgumentNullException(nameof(Selector));
    } = TensorSelector.Of(Collection.Weights);

    /// <inheritdoc />
    public override string Name { get; init; } = "WeightUpdateRatio";

    /// <inheritdoc />
    public override IReadOnlyList<TensorRequirement> Requirements =>
        RuleSupport.Requirements(Selector, raw: true, "the update w_t - w_prev needs raw values of consecutive traced steps; summaries only bound it from below");

    /// <inheritdoc />
    public override void ForgetRank(string run, uint rank) => _previous.Forget(run, rank);

    /// <inheritdoc />
    public override void WriteState(string run, uint rank, ref StateWriter writer) =>
        _previous.WriteState(run, rank, ref writer, static (ref StateWriter w, Previous previous) => previous.WriteState(ref w));

    /// <inheritdoc />
    public override Action ReadState(string run, uint rank, int version, ref StateReader reader) =>
        _previous.ReadState(run, rank, ref reader, Previous.ReadState);

    private protected override string Healthy => "update/weight ratio within bounds";

    private protected override bool TrainingStepsOnly => true;

    private protected override void EvaluateTensor(StepRecord record, TensorRecord tensor, RuleContext context)
    {
        ReadOnlySpan<float> raw = TensorValues.Raw(tensor);
        TensorSummary? summary = tensor.Summary;
        if (raw.IsEmpty && summary is null)
        {
            return;
        }

        var key = new SeriesKey(record.RunId, record.Rank, tensor.Name);
        ref Previous? slot = ref _previous.GetValueRefOrAddDefault(key, out _);
        Previous previous = slot ??= new Previous();
        if (record.Step <= previous.Step)
        {
            return;
        }

        if (previous.Step != Previous.None && (NumSteps is not { } gap || record.Step - previous.Step <= gap))
        {
            Compare(record, context, tensor, raw, summary, previous);
        }

        previous.Step = record.Step;
        previous.Values.Store(raw, TensorValues.IsComplete(tensor));
        previous.HasSummary = summary is not null;
        if (summary is not null)
        {
            previous.L2 = summary.L2;
            previous.Mean = summary.Mean;
            previous.Count = summary.Count;
            previous.AllFinite = summary.NanCount + summary.InfCount == 0;
        }
    }

    private void Compare(StepRecord record, RuleContext context, TensorRecord tensor, ReadOnlySpan<float> raw, TensorSummary? summary,
        Previous previous)
    {
        bool holds;
        double ratio;
        double bound;
        string method;
        if (!raw.IsEmpty && raw.Length == previous.Values.Length)
        {
            if (!UpdateNorms(raw, previous.Values.Values, out double update, out double weights))
            {
                return;
            }

            ratio = update / (weights + Epsilon);
            bool large = ratio > LargeThreshold;
            holds = large || ratio < SmallThreshold;
            bound = large || !holds ? LargeThreshold : SmallThreshold;
            method = "";
        }
        else if (summary is { } s && previous.HasSummary && previous.AllFinite && s.NanCount + s.InfCount == 0
            && s.Count == previous.Count && double.IsFinite(s.L2) && double.IsFinite(previous.L2))
        {
            double fromNorms = Math.Abs(s.L2 - previous.L2);
            double fromMeans = Math.Sqrt(s.Count) * Math.Abs(s.Mean - previous.Mean);
            ratio = Math.Max(fromNorms, fromMeans) / (previous.L2 + Epsilon);
            holds = ratio > LargeThreshold;
            bound = LargeThreshold;
            method = "at least ";
        }
        else
        {
            return;
        }

        if (holds)
        {
            Problem(context, tensor, ratio, bound, string.Create(CultureInfo.InvariantCulture,
                $"update/weight ratio of {tensor.Name} from step {previous.Step} to {record.Step} is {method}{ratio:G4}, {(ratio > LargeThreshold ? "above the large" : "below the small")} threshold {bound:G4}{(method.Length > 0 ? " (summary bound; raw values not traced)" : "")}"));
        }
        else
        {
            Passing(context, tensor, ratio, bound);
        }
    }

    // ||current - previous||_2 and ||previous||_2, in double; false when a value is not finite.
    private static bool UpdateNorms(ReadOnlySpan<float> current, ReadOnlySpan<float> previous, out double update, out double weights)
    {
        double updateSquares = 0;
        double weightSquares = 0;
        for (int i = 0; i < current.Length; i++)
        {
            double before = previous[i];
            double delta = current[i] - before;
            updateSquares += delta * delta;
            weightSquares += before * before;
        }

        update = Math.Sqrt(updateSquares);
        weights = Math.Sqrt(weightSquares);
        return double.IsFinite(update) && double.IsFinite(weights);
    }

    private sealed class Previous
    {
        public const long None = long.MinValue;

        public long Step = None;
        public bool HasSummary;
        public bool AllFinite;
        public ulong Count;
        public double L2;
        public double Mean;

        public ValueSnapshot Values { get; private init; } = new();

        public void WriteState(ref StateWriter writer)
        {
            writer.WriteVarInt(Step);
            writer.WriteBool(HasSummary);
            writer.WriteBool(AllFinite);
            writer.WriteVarUInt(Count);
            writer.WriteDouble(L2);
            writer.WriteDouble(Mean);
            Values.WriteState(ref writer);
        }

        public static Previous ReadState(ref StateReader reader) => new()
        {
            Step = reader.ReadVarInt("last step"),
            HasSummary = reader.ReadBool("has summary"),
            AllFinite = reader.ReadBool("all finite"),
            Count = reader.ReadVarUInt("count"),
            L2 = reader.ReadDouble("l2"),
            Mean = reader.ReadDouble("mean"),
            Values = ValueSnapshot.ReadState(ref reader),
        };
    }
}
