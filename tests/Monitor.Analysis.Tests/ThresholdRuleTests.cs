using Monitor.Analysis.Rules;
using Monitor.Analysis.Windows;
using Monitor.Contracts.V1;
using static Monitor.Analysis.Tests.AnalysisTestDriver;

namespace Monitor.Analysis.Tests;

public sealed class ThresholdRuleTests
{
    /// <summary>A summary in which every statistic has its own value (see <see cref="Expected"/>).</summary>
    private static TensorRecord Crafted(string name = "w", params Collection[] collections)
    {
        var tensor = new TensorRecord
        {
            Name = name,
            Dtype = DType.Float32,
            Summary = new TensorSummary
            {
                Count = 10,
                Mean = 1.5,
                AbsMean = 2.5,
                Min = -3.5,
                Max = 4.5,
                Variance = 5.5,
                L1 = 6.5,
                L2 = 7.5,
                ZeroCount = 2,
                NanCount = 3,
                InfCount = 6,
            },
        };
        tensor.Shape.Add(10);
        tensor.Collections.Add(collections);
        return tensor;
    }

    private static double Expected(TensorStatistic statistic) => statistic switch
    {
        TensorStatistic.Mean => 1.5,
        TensorStatistic.AbsMean => 2.5,
        TensorStatistic.Min => -3.5,
        TensorStatistic.Max => 4.5,
        TensorStatistic.Variance => 5.5,
        TensorStatistic.L1 => 6.5,
        TensorStatistic.L2 => 7.5,
        TensorStatistic.ZeroFraction => 0.2,
        TensorStatistic.NonFiniteCount => 9,
        _ => throw new ArgumentOutOfRangeException(nameof(statistic)),
    };

    /// <summary>A tensor whose summary has the given L2 norm.</summary>
    private static TensorRecord WithL2(string name, double l2, params Collection[] collections)
    {
        TensorRecord tensor = Tensor(name, 0, 0, collections);
        tensor.Summary.L2 = l2;
        return tensor;
    }

    public static TheoryData<TensorStatistic, ThresholdComparison> StatisticsAndComparisons()
    {
        var data = new TheoryData<TensorStatistic, ThresholdComparison>();
        foreach (TensorStatistic statistic in Enum.GetValues<TensorStatistic>())
        {
            foreach (ThresholdComparison comparison in Enum.GetValues<ThresholdComparison>())
            {
                data.Add(statistic, comparison);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(StatisticsAndComparisons))]
    public void Evaluate_ComparesTheStatistic_WithTheThreshold(TensorStatistic statistic, ThresholdComparison comparison)
    {
        double value = Expected(statistic);
        (double Threshold, bool Fires)[] cases = comparison switch
        {
            ThresholdComparison.Above => [(value - 0.25, true), (value, false), (value + 0.25, false)],
            ThresholdComparison.AtOrAbove => [(value - 0.25, true), (value, true), (value + 0.25, false)],
            ThresholdComparison.Below => [(value - 0.25, false), (value, false), (value + 0.25, true)],
            _ => [(value - 0.25, false), (value, true), (value + 0.25, true)],
        };

        foreach ((double threshold, bool fires) in cases)
        {
            var driver = new AnalysisTestDriver(new ThresholdRule { Statistic = statistic, Comparison = comparison, Threshold = threshold });

            // The default window is one step: step 0's window closes when step 1 arrives.
            Assert.Empty(driver.Pipe(Record(0, Crafted())));
            IReadOnlyList<AlertTransition> caused = driver.Pipe(Record(1, Crafted()));

            if (fires)
            {
                AlertTransition firing = Assert.Single(caused);
                Assert.Equal(AlertState.Firing, firing.State);
                Assert.Equal((value, threshold, 1L), (firing.Value, firing.Threshold, firing.Step));
                Assert.Equal("Threshold", firing.RuleName);
                Assert.Equal("w", firing.Identity[AlertLabels.Tensor]);
                Assert.Contains($"{statistic} of w over steps 0-0", firing.Description, StringComparison.Ordinal);
                Assert.Contains($"({comparison} ", firing.Description, StringComparison.Ordinal);
            }
            else
            {
                Assert.Empty(caused);
            }
        }
    }

    [Fact]
    public void Evaluate_TakesZeroFractionAsZero_WhenTheTensorHasNoElements()
    {
        TensorRecord Empty()
        {
            TensorRecord tensor = Crafted();
            tensor.Summary.Count = 0;
            tensor.Summary.ZeroCount = 0;
            return tensor;
        }

        var driver = new AnalysisTestDriver(new ThresholdRule { Statistic = TensorStatistic.ZeroFraction, Comparison = ThresholdComparison.AtOrBelow, Threshold = 0 });

        driver.Pipe(Record(0, Empty()));
        AlertTransition firing = Assert.Single(driver.Pipe(Record(1, Empty())));

        Assert.Equal(0, firing.Value);
    }

    [Fact]
    public void Evaluate_FiresAtTheStepAfterTheWindow_WhenTheWindowMeanCrossesTheThreshold()
    {
        var rule = new ThresholdRule
        {
            Statistic = TensorStatistic.L2,
            Aggregate = WindowAggregate.Mean,
            Window = WindowSpec.OfSteps(4),
            Comparison = ThresholdComparison.Above,
            Threshold = 10,
        };
        var driver = new AnalysisTestDriver(rule);
        double[] l2 = [1, 2, 3, 4, 8, 12, 14, 10, 1, 1, 1, 1, 1];

        // Steps 0-3 average 2.5, steps 4-7 average 11 (> 10) although steps 4 and 7 alone are not above 10.
        Assert.Empty(driver.PipeSteps(0, 7, step => Record(step, WithL2("w", l2[step]))));
        AlertTransition firing = Assert.Single(driver.Pipe(Record(8, WithL2("w", l2[8]))));
        Assert.Empty(driver.PipeSteps(9, 11, step => Record(step, WithL2("w", l2[step]))));
        AlertTransition resolved = Assert.Single(driver.Pipe(Record(12, WithL2("w", l2[12]))));

        Assert.Equal((AlertState.Firing, 8L, 11.0, 10.0), (firing.State, firing.Step, firing.Value, firing.Threshold));
        Assert.Equal("Mean of L2 of w over steps 4-7 is 11 (Above 10)", firing.Description);
        Assert.True(resolved.IsResolution);
        Assert.Equal((12L, 1.0), (resolved.Step, resolved.Value));
        Assert.Equal("within bounds", resolved.Description);
    }

    [Fact]
    public void Evaluate_AggregatesTheWindow_WithTheConfiguredAggregate()
    {
        var rule = new ThresholdRule
        {
            Statistic = TensorStatistic.L2,
            Aggregate = WindowAggregate.Max,
            Window = WindowSpec.OfSteps(4),
            Comparison = ThresholdComparison.AtOrAbove,
            Threshold = 14,
        };
        var driver = new AnalysisTestDriver(rule);
        double[] l2 = [1, 2, 3, 4, 8, 12, 14, 10, 1];

        driver.PipeSteps(0, 8, step => Record(step, WithL2("w", l2[step])));

        AlertTransition firing = Assert.Single(driver.Transitions);
        Assert.Equal((8L, 14.0), (firing.Step, firing.Value));
    }

    [Fact]
    public void Evaluate_KeepsSeparateWindows_PerTensorAndRank()
    {
        var driver = new AnalysisTestDriver(new ThresholdRule { Statistic = TensorStatistic.L2, Window = WindowSpec.OfSteps(2), Threshold = 5 });

        for (long step = 0; step <= 2; step++)
        {
            driver.Pipe(Record("run-1", 0, step, TimeOfStep(step), WithL2("a", 10), WithL2("b", 1)));
            driver.Pipe(Record("run-1", 1, step, TimeOfStep(step), WithL2("a", 1), WithL2("b", 1)));
        }

        AlertTransition firing = Assert.Single(driver.Transitions);
        Assert.Equal(("0", "a", 2L), (firing.Identity[AlertLabels.Rank], firing.Identity[AlertLabels.Tensor], firing.Step));
    }

    [Fact]
    public void Evaluate_LooksOnlyAtSelectedTensors_WhenASelectorIsGiven()
    {
        var rule = new ThresholdRule
        {
            Selector = new TensorSelector([Collection.Gradients], include: [@"^layer1\."], exclude: ["bias"]),
            Statistic = TensorStatistic.L2,
            Threshold = 5,
        };
        var driver = new AnalysisTestDriver(rule);
        TensorRecord[] Tensors() =>
        [
            WithL2("layer1.weight.grad", 10, Collection.Gradients),
            WithL2("layer1.bias.grad", 10, Collection.Gradients),
            WithL2("layer2.weight.grad", 10, Collection.Gradients),
            WithL2("layer1.weight", 10, Collection.Weights),
            WithL2("layer1.output", 10, Collection.Activations, Collection.Custom),
            WithL2("layer1.other.grad", 10, Collection.Custom, Collection.Gradients),
        ];

        driver.Pipe(Record(0, Tensors()));
        driver.Pipe(Record(1, Tensors()));

        Assert.Equal(
            ["layer1.other.grad", "layer1.weight.grad"],
            driver.Transitions.Select(t => t.Identity[AlertLabels.Tensor]).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Evaluate_LooksAtEveryTensor_WithTheDefaultSelector()
    {
        var driver = new AnalysisTestDriver(new ThresholdRule { Statistic = TensorStatistic.L2, Threshold = 5 });

        driver.Pipe(Record(0, WithL2("x", 10), WithL2("y", 10, Collection.Losses)));
        driver.Pipe(Record(1, WithL2("x", 10), WithL2("y", 10, Collection.Losses)));

        Assert.Equal(["x", "y"], driver.Transitions.Select(t => t.Identity[AlertLabels.Tensor]).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Evaluate_IgnoresTensorsWithoutSummary()
    {
        var driver = new AnalysisTestDriver(new ThresholdRule { Threshold = -1 });
        var bare = new TensorRecord { Name = "w", Dtype = DType.Float32 };

        driver.Pipe(Record(0, bare));
        driver.Pipe(Record(1, bare.Clone()));

        Assert.Empty(driver.Transitions);
        Assert.Equal(0, driver.Engine.RuleFaults);
    }

    [Fact]
    public void Evaluate_UsesEventTimeWindows_WhenTheWindowIsTimed()
    {
        // Steps are 1 s apart (TimeOfStep): a 10 s window holds 10 steps and closes when step 10 arrives.
        var driver = new AnalysisTestDriver(new ThresholdRule
        {
            Statistic = TensorStatistic.L2,
            Aggregate = WindowAggregate.Count,
            Window = WindowSpec.OfTime(TimeSpan.FromSeconds(10)),
            Comparison = ThresholdComparison.AtOrAbove,
            Threshold = 10,
        });

        Assert.Empty(driver.PipeSteps(0, 9, step => Record(step, WithL2("w", 1))));
        AlertTransition firing = Assert.Single(driver.Pipe(Record(10, WithL2("w", 1))));

        Assert.Equal((10L, 10.0), (firing.Step, firing.Value));
        Assert.Contains("over steps 0-9", firing.Description, StringComparison.Ordinal);
    }
}
