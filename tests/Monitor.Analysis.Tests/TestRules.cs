using Monitor.Contracts.V1;

namespace Monitor.Analysis.Tests;

/// <summary>
/// A rule for engine tests: for every tensor with a summary, the condition holds when the summary's mean is above
/// <see cref="Threshold"/>. With <see cref="RankLevel"/> it reports once per record about the rank instead.
/// </summary>
internal sealed class MeanAboveRule(string name = "MeanAbove") : ITrainingRule
{
    public string Name { get; } = name;

    public string Severity { get; init; } = "critical";

    public int ForEvaluations { get; init; }

    public double Threshold { get; init; }

    public bool RankLevel { get; init; }

    public int Evaluations { get; private set; }

    public void Evaluate(StepRecord record, RuleContext context)
    {
        Evaluations++;
        foreach (TensorRecord tensor in record.Tensors)
        {
            if (tensor.Summary is not { } summary)
            {
                continue;
            }

            context.Report(RankLevel ? null : tensor.Name, summary.Mean > Threshold, summary.Mean, Threshold, $"mean of {tensor.Name} is {summary.Mean}");
            if (RankLevel)
            {
                return;
            }
        }
    }
}

/// <summary>A rule that throws on every record (optionally after reporting), for fault isolation tests.</summary>
internal sealed class ThrowingRule(string name = "Throwing") : ITrainingRule
{
    public string Name { get; } = name;

    public bool ReportFirst { get; init; }

    public void Evaluate(StepRecord record, RuleContext context)
    {
        if (ReportFirst)
        {
            context.Report(null, true, 1, 0, "reported before throwing");
        }

        throw new InvalidOperationException($"broken at step {record.Step}");
    }
}
