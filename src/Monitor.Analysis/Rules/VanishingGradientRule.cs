using System.Globalization;
using Monitor.Analysis.State;
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
public sealed class VanishingGradientRule : PerTensorRule
{
    private readonly SeriesTable<StepWindow> _windows = new();

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
    public override TensorSelector Selector
    {
        get;
        init => field = value ?? throw new ArgumentNullException(nameof(Selector));
    } = TensorSelector.Of(Collection.Gradients);

    /// <inheritdoc />
    public override string Name { get; init; } = "VanishingGradient";

    /// <inheritdoc />
    public override IReadOnlyList<TensorRequirement> Requirements =>
        RuleSupport.Requirements(Selector, raw: false, "mean |g| (summary abs_mean) over the last traced steps");

    /// <inheritdoc />
    public override void ForgetRank(string run, uint rank) => _windows.Forget(run, rank);

    /// <inheritdoc />
    public override void WriteState(string run, uint rank, ref StateWriter writer) =>
        _windows.WriteState(run, rank, ref writer, static (ref StateWriter w, StepWindow window) => window.WriteState(ref w));

    /// <inheritdoc />
    /// <remarks>A window written with another <see cref="WindowSteps"/> keeps its most recent values that fit.</remarks>
    public override Action ReadState(string run, uint rank, int version, ref StateReader reader)
    {
        int capacity = WindowSteps;
        return _windows.ReadState(run, rank, ref reader, (ref StateReader r) => StepWindow.ReadState(ref r, capacity));
    }

    private protected override string Healthy => "mean |gradient| is at or above the threshold";

    private protected override void EvaluateTensor(StepRecord record, TensorRecord tensor, RuleContext context)
    {
        if (tensor.Summary is not { } summary || double.IsNaN(summary.AbsMean))
        {
            return;
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
            return;
        }

        double mean = window.Mean;
        if (mean < Threshold)
        {
            Problem(context, tensor, mean, Threshold, string.Create(CultureInfo.InvariantCulture,
                $"mean |gradient| of {tensor.Name} over the last {WindowSteps} traced steps is {mean:G3} (threshold {Threshold:G3})"));
        }
        else
        {
            Passing(context, tensor, mean, Threshold);
        }
    }
}
