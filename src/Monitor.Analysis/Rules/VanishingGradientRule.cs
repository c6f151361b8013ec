using System.Globalization;
using Monitor.Contracts.V1;

namespace Monitor.Analysis.Rules;

/// <summary>
/// Vanishing gradient (smdebug <c>VanishingGradient</c>): fires for a gradient tensor whose mean absolute value,
/// averaged over the last <see cref="WindowSteps"/> traced steps, is below <see cref="Threshold"/>.
/// </summary>
/// <remarks>
/// <para>Formula: <c>mean over the window of abs_mean(g) &lt; threshold</c>, per selected tensor (default: collection
/// gradients) of each rank. Reads summaries only.</para>
/// <para>smdebug tests the single current step; averaging over a short window keeps one unusually quiet batch from
/// raising an alert (<c>WindowSteps = 1</c> is smdebug's test). Reports once the window is full, on every traced step
/// after that. Parameters follow the SageMaker developer guide, "List of Debugger Built-in Rules", section
/// VanishingGradient (awsdocs/amazon-sagemaker-developer-guide, doc_source/debugger-built-in-rules.md):
/// <c>threshold</c> → <see cref="Threshold"/>.</para>
/// </remarks>
public sealed class VanishingGradientRule : ITrainingRule
{
    private const string Healthy = "mean |gradient| is at or above the threshold";
    private readonly Dictionary<SeriesKey, StepWindow> _windows = [];
    private readonly ActiveSeries _active = new();

    /// <summary>Threshold on the mean absolute gradient. Default 1e-7 (smdebug's <c>threshold</c> default).</summary>
    public double Threshold
    {
        get;
        init => field = value > 0 ? value : throw new ArgumentOutOfRangeException(nameof(Threshold), value, "Threshold must be positive");
    } = 1e-7;

    /// <summary>Traced steps averaged. Default 5 (smdebug: 1, the current step).</summary>
    public int WindowSteps
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(WindowSteps), value, "WindowSteps must be at least 1");
    } = 5;

    /// <summary>Tensors looked at. Default every tensor of collection gradients.</summary>
    public TensorSelector Selector
    {
        get;
        init => field = value ?? throw new ArgumentNullException(nameof(Selector));
    } = TensorSelector.Of(Collection.Gradients);

    /// <inheritdoc />
    public string Name { get; init; } = "VanishingGradient";

    /// <inheritdoc />
    public IReadOnlyList<TensorRequirement> Requirements =>
        RuleSupport.Requirements(Selector, raw: false, "mean |g| (summary abs_mean) over the last traced steps");

    /// <inheritdoc />
    public void Evaluate(StepRecord record, RuleContext context)
    {
        ArgumentNullException.ThrowIfNull(record);
        ArgumentNullException.ThrowIfNull(context);
        var tensors = record.Tensors;
        for (int i = 0; i < tensors.Count; i++)
        {
            TensorRecord tensor = tensors[i];
            if (tensor.Summary is not { } summary || double.IsNaN(summary.AbsMean) || !Selector.Matches(tensor))
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
            bool holds = mean < Threshold;
            if (_active.ShouldReport(key, holds))
            {
                context.Report(tensor.Name, holds, mean, Threshold, holds
                    ? string.Create(CultureInfo.InvariantCulture,
                        $"mean |gradient| of {tensor.Name} over the last {WindowSteps} traced steps is {mean:G3} (threshold {Threshold:G3})")
                    : Healthy);
            }
        }
    }
}
