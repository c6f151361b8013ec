using System.Globalization;
using Monitor.Contracts.V1;

namespace Monitor.Analysis.Rules;

/// <summary>
/// Vanishing gradient (smdebug <c>VanishingGradient</c>): fires for a gradient tensor whose mean absolute value,
/// averaged over the last <see cref="WindowSteps"/> traced steps, is below <see cref="Threshold"/>.
/// </summary>
/// <remarks>
/// Formula: <c>mean over the window of abs_mean(g) &lt; threshold</c>, per gradient tensor (collection gradients) of each
/// rank. smdebug tests the single current step; averaging over a short window keeps one unusually quiet batch from
/// raising an alert. Reports once the window is full, on every traced step after that.
/// </remarks>
public sealed class VanishingGradientRule : ITrainingRule
{
    private readonly Dictionary<SeriesKey, StepWindow> _windows = [];

    /// <summary>Threshold on the mean absolute gradient. Default 1e-7 (smdebug's default).</summary>
    public double Threshold
    {
        get;
        init => field = value > 0 ? value : throw new ArgumentOutOfRangeException(nameof(Threshold), value, "Threshold must be positive");
    } = 1e-7;

    /// <summary>Traced steps averaged. Default 5.</summary>
    public int WindowSteps
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(WindowSteps), value, "WindowSteps must be at least 1");
    } = 5;

    /// <inheritdoc />
    public string Name { get; init; } = "VanishingGradient";


    /// <inheritdoc />
    public void Evaluate(StepRecord record, RuleContext context)
    {
        foreach (TensorRecord tensor in record.Tensors)
        {
            if (tensor.Summary is not { } summary || !tensor.Collections.Contains(Collection.Gradients) || double.IsNaN(summary.AbsMean))
            {
                continue;
            }

            var key = new SeriesKey(record.RunId, record.Rank, tensor.Name);
            if (!_windows.TryGetValue(key, out StepWindow? window))
            {
                window = new StepWindow(WindowSteps);
                _windows[key] = window;
            }

            window.Add(summary.AbsMean);
            if (!window.IsFull)
            {
                continue;
            }

            double mean = window.Mean;
            context.Report(tensor.Name, mean < Threshold, mean, Threshold, string.Create(CultureInfo.InvariantCulture,
                $"mean |gradient| of {tensor.Name} over the last {WindowSteps} traced steps is {mean:G3} (threshold {Threshold:G3})"));
        }
    }
}
