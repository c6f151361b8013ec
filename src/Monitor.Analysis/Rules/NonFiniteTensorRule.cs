using System.Globalization;
using Monitor.Analysis.State;
using Monitor.Contracts.V1;

namespace Monitor.Analysis.Rules;

/// <summary>
/// NaN or Inf anywhere (Monitor's rule, the rank-level companion of smdebug's <c>ExplodingTensor</c>): one alert per
/// rank that fires at the first traced step in which any selected tensor holds a NaN or an infinity, and resolves at
/// the first later traced step in which none does.
/// </summary>
/// <remarks>
/// <para>Formula, per rank: <c>sum over selected tensors of (nan_count + inf_count) &gt; 0</c>, from the summaries
/// (which count every element, raw values or not). A record without any selected tensor gives no verdict.</para>
/// <para>Why a second rule next to <see cref="ExplodingTensorRule"/>: once a NaN appears it spreads through the
/// backward pass to nearly every tensor within a step or two, and a per-tensor rule then raises hundreds of alerts.
/// This one raises one, naming the step it was first seen at and the first tensor (in record order) that carried it,
/// which is what a <c>stop</c> action wants to act on.</para>
/// </remarks>
public sealed class NonFiniteTensorRule : ITrainingRule, IStatefulRule
{
    private const string Healthy = "no NaN or Inf in the traced tensors";
    private readonly SeriesTable<long> _firstSeen = new();

    /// <summary>Tensors looked at. Default every traced tensor.</summary>
    public TensorSelector Selector
    {
        get;
        init => field = value ?? throw new ArgumentNullException(nameof(Selector));
    } = new TensorSelector([]);

    /// <inheritdoc />
    public string Name { get; init; } = "NonFiniteTensor";

    /// <inheritdoc />
    public IReadOnlyList<TensorRequirement> Requirements =>
        RuleSupport.Requirements(Selector, raw: false, "summary nan_count and inf_count");

    /// <inheritdoc />
    public void ForgetRank(string run, uint rank) => _firstSeen.Forget(run, rank);

    /// <inheritdoc />
    public int StateVersion => 1;

    /// <inheritdoc />
    public void WriteState(string run, uint rank, ref StateWriter writer) =>
        _firstSeen.WriteState(run, rank, ref writer, static (ref StateWriter w, long since) => w.WriteVarInt(since));

    /// <inheritdoc />
    public Action ReadState(string run, uint rank, int version, ref StateReader reader) =>
        _firstSeen.ReadState(run, rank, ref reader, static (ref StateReader r) => r.ReadVarInt("non-finite since step"));

    /// <inheritdoc />
    public void Evaluate(StepRecord record, RuleContext context)
    {
        ArgumentNullException.ThrowIfNull(record);
        ArgumentNullException.ThrowIfNull(context);
        var tensors = record.Tensors;
        int examined = 0;
        int affected = 0;
        ulong nan = 0;
        ulong inf = 0;
        TensorRecord? first = null;
        for (int i = 0; i < tensors.Count; i++)
        {
            TensorRecord tensor = tensors[i];
            if (tensor.Summary is not { } summary || !Selector.Matches(tensor))
            {
                continue;
            }

            examined++;
            if (summary.NanCount + summary.InfCount > 0)
            {
                affected++;
                nan += summary.NanCount;
                inf += summary.InfCount;
                first ??= tensor;
            }
        }

        if (examined == 0)
        {
            return;
        }

        var key = new SeriesKey(record.RunId, record.Rank, "");
        if (first is null)
        {
            if (_firstSeen.Count != 0)
            {
                _firstSeen.Remove(key);
            }

            // Also when this instance never saw the NaN: keepFiringFor and reloads leave alerts only the engine knows.
            context.ReportPassing(null, 0, 0, Healthy);
            return;
        }

        if (!_firstSeen.TryGetValue(key, out long since))
        {
            since = record.Step;
            _firstSeen[key] = since;
        }

        TensorSummary firstSummary = first.Summary;
        context.Report(null, true, nan + inf, 0, string.Create(CultureInfo.InvariantCulture,
            $"{affected} of {examined} traced tensors hold NaN or Inf at step {record.Step} ({nan} NaN, {inf} Inf in all), first {first.Name} ({firstSummary.NanCount} NaN, {firstSummary.InfCount} Inf); non-finite since step {since}"));
    }
}
