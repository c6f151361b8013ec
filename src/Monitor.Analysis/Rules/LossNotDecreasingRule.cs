using System.Globalization;
using Monitor.Contracts.V1;

namespace Monitor.Analysis.Rules;

/// <summary>
/// Loss not decreasing (smdebug <c>LossNotDecreasing</c>): every <see cref="NumSteps"/> traced steps, compares the
/// mean loss of those steps with the mean of the <see cref="NumSteps"/> before, and fires when it has not gone
/// down by at least <see cref="DiffPercent"/> percent.
/// </summary>
/// <remarks>
/// Formula, per loss tensor (collection losses) of each rank, on tumbling blocks of <c>n = NumSteps</c> traced steps:
/// <c>previous - current &lt; |previous| * DiffPercent / 100</c>. smdebug compares single loss values
/// <c>num_steps</c> apart; comparing block means is the same test with the batch-to-batch noise of the loss averaged
/// out, which otherwise makes the single-value comparison fire at random on a healthy, noisy loss.
/// </remarks>
public sealed class LossNotDecreasingRule : ITrainingRule
{
    private readonly Dictionary<SeriesKey, Blocks> _series = [];

    /// <summary>Traced steps per block. Default 10 (smdebug's <c>num_steps</c>).</summary>
    public int NumSteps
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(NumSteps), value, "NumSteps must be at least 1");
    } = 10;

    /// <summary>Minimum relative decrease between blocks, in percent. Default 0.1 (smdebug's <c>diff_percent</c>).</summary>
    public double DiffPercent
    {
        get;
        init => field = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(DiffPercent), value, "DiffPercent must not be negative");
    } = 0.1;

    /// <inheritdoc />
    public string Name { get; init; } = "LossNotDecreasing";


    /// <inheritdoc />
    public void Evaluate(StepRecord record, RuleContext context)
    {
        foreach (TensorRecord tensor in record.Tensors)
        {
            if (tensor.Summary is not { } summary || !tensor.Collections.Contains(Collection.Losses) || !double.IsFinite(summary.Mean))
            {
                continue;
            }

            var key = new SeriesKey(record.RunId, record.Rank, tensor.Name);
            if (!_series.TryGetValue(key, out Blocks? blocks))
            {
                blocks = new Blocks();
                _series[key] = blocks;
            }

            blocks.Sum += summary.Mean;
            if (++blocks.Count < NumSteps)
            {
                continue;
            }

            double current = blocks.Sum / blocks.Count;
            double? previous = blocks.PreviousMean;
            blocks.PreviousMean = current;
            blocks.Sum = 0;
            blocks.Count = 0;
            if (previous is not { } before)
            {
                continue;
            }

            double required = Math.Abs(before) * DiffPercent / 100;
            double decrease = before - current;
            context.Report(tensor.Name, decrease < required, current, before - required, string.Create(CultureInfo.InvariantCulture,
                $"mean {tensor.Name} over the last {NumSteps} traced steps is {current:G4}, previous {NumSteps}: {before:G4} (needed a decrease of at least {DiffPercent}%)"));
        }
    }

    private sealed class Blocks
    {
        public double Sum;
        public int Count;
        public double? PreviousMean;
    }
}
