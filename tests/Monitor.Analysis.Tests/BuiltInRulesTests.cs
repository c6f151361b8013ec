using Monitor.Analysis.Rules;
using Monitor.Contracts.V1;
using static Monitor.Analysis.Tests.AnalysisTestDriver;
using static Monitor.Analysis.Tests.RuleTestData;

namespace Monitor.Analysis.Tests;

public sealed class BuiltInRulesTests
{
    private static readonly string[] TensorRuleNames =
    [
        "AllZero", "DeadRelu", "ExplodingTensor", "NonFiniteTensor", "PoorWeightInitialization", "SaturatedActivation",
        "TensorVariance", "UnchangedTensor", "VanishingGradient", "WeightUpdateRatio",
    ];

    [Fact]
    public void TensorRules_MakeEachRuleUnderItsName()
    {
        Assert.Equal(TensorRuleNames, BuiltInRules.TensorRules.Keys.Order(StringComparer.Ordinal));
        foreach ((string name, Func<ITrainingRule> factory) in BuiltInRules.TensorRules)
        {
            ITrainingRule rule = factory();
            Assert.Equal(name, rule.Name);
            Assert.NotSame(rule, factory());
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TensorRules_RaiseNothing_OnHealthyTraining(bool raw)
    {
        var driver = new AnalysisTestDriver([.. BuiltInRules.TensorRules.Values.Select(factory => factory())]);

        driver.PipeAll(new HealthyRun(seed: 41, raw).Records(300));

        Assert.Empty(driver.Transitions);
        Assert.Equal(0, driver.Engine.RuleFaults);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TensorRules_AllocateNothing_PerHealthyRecord(bool raw)
    {
        var engine = new AnalysisEngine([.. BuiltInRules.TensorRules.Values.Select(factory => factory())]);
        StepRecord[] records = [.. new HealthyRun(seed: 43, raw, layers: 20).Records(200)];
        foreach (StepRecord record in records.AsSpan(0, 100))
        {
            engine.Process(record);
        }

        // Three measured parts of the run, the least counted: a one-off tier-up allocation is not the rules'.
        int next = 100;
        long allocated = SteadyStateAllocation.LeastBytes(() =>
        {
            foreach (StepRecord record in records.AsSpan(next, 33))
            {
                engine.Process(record);
            }

            next += 33;
        });

        Assert.Equal(0, allocated);
        Assert.Empty(engine.ActiveAlerts);
    }

    [Fact]
    public void TensorRules_Fire_WhenTheirFaultIsInjected()
    {
        var driver = new AnalysisTestDriver([.. BuiltInRules.TensorRules.Values.Select(factory => factory())]);
        var run = new HealthyRun(seed: 47, raw: true);

        driver.PipeAll(run.Records(20));
        // One step in which every gradient is NaN: both NaN rules fire, nothing else.
        StepRecord poisoned = run.Records(1).Single();
        foreach (TensorRecord tensor in poisoned.Tensors.Where(t => t.Collections.Contains(Collection.Gradients)))
        {
            tensor.Summary.NanCount = tensor.Summary.Count;
        }

        driver.Pipe(poisoned);

        Assert.Equal(["ExplodingTensor", "NonFiniteTensor"], driver.Transitions.Select(t => t.RuleName).Distinct().Order(StringComparer.Ordinal));
    }

    /// <summary>
    /// A synthetic, healthy training run: per layer, weights that move a little each step (variance about 0.01),
    /// gradients of about 1e-2, ReLU and tanh outputs over a batch of 16 with normal pre-activations, and a falling
    /// loss.
    /// </summary>
    private sealed class HealthyRun(int seed, bool raw, int layers = 3)
    {
        private readonly Random _random = new(seed);
        private readonly float[][] _weights = [.. Enumerable.Range(0, layers).Select(_ => Normal(new Random(seed + 1), 64, std: 0.1))];
        private long _step;

        public IEnumerable<StepRecord> Records(int count)
        {
            for (int i = 0; i < count; i++, _step++)
            {
                var tensors = new List<TensorRecord>();
                for (int layer = 0; layer < layers; layer++)
                {
                    float[] gradient = Normal(_random, 64, std: 0.01);
                    float[] weights = _weights[layer];
                    for (int j = 0; j < weights.Length; j++)
                    {
                        weights[j] -= 0.1f * gradient[j];
                    }

                    float[] pre = Normal(_random, 16 * 8);
                    tensors.Add(Values($"fc{layer}.weight", [.. weights], [8, 8], raw, Collection.Weights));
                    tensors.Add(Values($"fc{layer}.weight.grad", gradient, [8, 8], raw, Collection.Gradients));
                    tensors.Add(Values($"relu{layer}.output", [.. pre.Select(x => Math.Max(x, 0f))], [16, 8], raw, Collection.Activations));
                    tensors.Add(Values($"tanh{layer}.output", [.. pre.Select(MathF.Tanh)], [16, 8], raw, Collection.Activations));
                }

                tensors.Add(Values("loss", [(float)(2.0 / (_step + 1))], [], raw: false, Collection.Losses));
                yield return Record(_step, [.. tensors]);
            }
        }
    }
}
