using Monitor.Analysis.Rules;

namespace Monitor.Analysis.Tests;

public sealed class BuiltInRulesDataTests
{
    [Fact]
    public void DataRules_ListTheLossAndDataRules_BySmdebugName()
    {
        Assert.Equal(
            ["CheckInputImages", "ClassImbalance", "Confusion", "LossNotDecreasing", "NLPSequenceRatio", "Overfit", "Overtraining", "SimilarAcrossRuns", "StalledTraining"],
            BuiltInRules.DataRules.Keys.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void DataRules_CreateAFreshRuleNamedAsItsKey_OnEveryCall()
    {
        foreach ((string name, Func<ITrainingRule> create) in BuiltInRules.DataRules)
        {
            ITrainingRule first = create();
            ITrainingRule second = create();

            Assert.Equal(name, first.Name);
            Assert.NotSame(first, second);
        }
    }

    [Fact]
    public void DataRules_CanAllRunInOneEngine()
    {
        var driver = new AnalysisTestDriver([.. BuiltInRules.DataRules.Values.Select(create => create())]);

        driver.PipeSteps(0, 100, step => AnalysisTestDriver.Record(step, AnalysisTestDriver.Loss("loss", 1_000 - step)));
        driver.Time.Advance(TimeSpan.FromMinutes(1));

        Assert.Empty(driver.Engine.Tick());
        Assert.Equal(0, driver.Engine.RuleFaults);
        Assert.Empty(driver.Transitions);
    }
}
