using System.Globalization;
using Monitor.Analysis.State;
using Monitor.Analysis.Windows;
using Monitor.Contracts.V1;

namespace Monitor.Analysis.Rules;

/// <summary>A summary statistic of a tensor.</summary>
public enum TensorStatistic
{
    /// <summary>Mean of the finite elements.</summary>
    Mean,

    /// <summary>Mean of |x|.</summary>
    AbsMean,

    /// <summary>Smallest finite element.</summary>
    Min,

    /// <summary>Largest finite element.</summary>
    Max,

    /// <summary>Population variance.</summary>
    Variance,

    /// <summary>Sum of |x|.</summary>
    L1,

    /// <summary>Euclidean norm.</summary>
    L2,

    /// <summary>Fraction of elements equal to zero.</summary>
    ZeroFraction,

    /// <summary>NaN plus infinite elements.</summary>
    NonFiniteCount,
}

/// <summary>How a window's aggregate is compared with the threshold.</summary>
public enum ThresholdComparison
{
    /// <summary>Holds when the aggregate is above the threshold.</summary>
    Above,

    /// <summary>Holds when the aggregate is at or above the threshold.</summary>
    AtOrAbove,

    /// <summary>Holds when the aggregate is below the threshold.</summary>
    Below,

    /// <summary>Holds when the aggregate is at or below the threshold.</summary>
    AtOrBelow,
}

/// <summary>
/// A rule written entirely in configuration, like a Prometheus alerting expression: a summary statistic of the
/// selected tensors, aggregated over a window (steps or event time, tumbling or sliding), compared with a threshold.
/// </summary>
/// <remarks>
/// Formula: <c>aggregate(statistic over the window) comparison threshold</c>, per tensor of each rank, reported when a
/// window closes. Example: the L2 norm of any gradient averaged over 20 steps above 100.
/// </remarks>
public sealed class ThresholdRule : ITrainingRule, IStatefulRule
{
    private readonly List<WindowResult> _closed = [];
    private WindowedSeries? _windows;

    /// <inheritdoc />
    public string Name { get; init; } = "Threshold";

    /// <summary>Tensors looked at. Default: every tensor.</summary>
    public TensorSelector Selector { get; init; } = new([]);

    /// <summary>Statistic taken from each tensor summary. Default <see cref="TensorStatistic.Mean"/>.</summary>
    public TensorStatistic Statistic { get; init; } = TensorStatistic.Mean;

    /// <summary>How the window's values are combined. Default <see cref="WindowAggregate.Mean"/>.</summary>
    public WindowAggregate Aggregate { get; init; } = WindowAggregate.Mean;

    /// <summary>Window. Default: every traced step on its own (a tumbling window of one step).</summary>
    public WindowSpec Window { get; init; } = WindowSpec.OfSteps(1);

    /// <summary>Comparison. Default <see cref="ThresholdComparison.Above"/>.</summary>
    public ThresholdComparison Comparison { get; init; } = ThresholdComparison.Above;

    /// <summary>Threshold. Default 0.</summary>
    public double Threshold { get; init; }

    /// <inheritdoc />
    public void ForgetRank(string run, uint rank) => _windows?.Forget(run, rank);

    /// <inheritdoc />
    public int StateVersion => 1;

    /// <inheritdoc />
    public void WriteState(string run, uint rank, ref StateWriter writer)
    {
        _windows ??= new WindowedSeries(Window, Aggregate);
        _windows.WriteState(run, rank, ref writer);
    }

    /// <inheritdoc />
    /// <remarks>Windows written under another <see cref="Window"/> or <see cref="Aggregate"/> start empty.</remarks>
    public Action ReadState(string run, uint rank, int version, ref StateReader reader)
    {
        _windows ??= new WindowedSeries(Window, Aggregate);
        return _windows.ReadState(run, rank, ref reader);
    }

    /// <inheritdoc />
    public void Evaluate(StepRecord record, RuleContext context)
    {
        _windows ??= new WindowedSeries(Window, Aggregate);
        DateTimeOffset time = DateTimeOffset.UnixEpoch.AddTicks(record.EventTimeUnixNanos / 100);
        foreach (TensorRecord tensor in record.Tensors)
        {
            if (tensor.Summary is not { } summary || !Selector.Matches(tensor))
            {
                continue;
            }

            _closed.Clear();
            _windows.Add(new SeriesKey(record.RunId, record.Rank, tensor.Name), record.Step, time, Value(summary), _closed);
            foreach (WindowResult window in _closed)
            {
                bool holds = Comparison switch
                {
                    ThresholdComparison.Above => window.Value > Threshold,
                    ThresholdComparison.AtOrAbove => window.Value >= Threshold,
                    ThresholdComparison.Below => window.Value < Threshold,
                    _ => window.Value <= Threshold,
                };
                context.Report(tensor.Name, holds, window.Value, Threshold, holds
                    ? string.Create(CultureInfo.InvariantCulture,
                        $"{Aggregate} of {Statistic} of {tensor.Name} over steps {window.StartStep}-{window.EndStep} is {window.Value:G4} ({Comparison} {Threshold:G4})")
                    : "within bounds");
            }
        }
    }

    private double Value(TensorSummary summary) => Statistic switch
    {
        TensorStatistic.Mean => summary.Mean,
        TensorStatistic.AbsMean => summary.AbsMean,
        TensorStatistic.Min => summary.Min,
        TensorStatistic.Max => summary.Max,
        TensorStatistic.Variance => summary.Variance,
        TensorStatistic.L1 => summary.L1,
        TensorStatistic.L2 => summary.L2,
        TensorStatistic.ZeroFraction => summary.Count == 0 ? 0 : (double)summary.ZeroCount / summary.Count,
        _ => summary.NanCount + summary.InfCount,
    };
}
