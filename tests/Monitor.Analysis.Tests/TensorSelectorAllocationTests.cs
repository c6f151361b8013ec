using Monitor.Contracts.V1;
using static Monitor.Analysis.Tests.AnalysisTestDriver;

namespace Monitor.Analysis.Tests;

/// <summary>TensorSelector.Matches allocates nothing once a name is decided (it runs per tensor per record in every rule).</summary>
public sealed class TensorSelectorAllocationTests
{
    [Fact]
    public void Matches_DoesNotAllocate_WhenTheDecisionIsCached()
    {
        var selector = new TensorSelector([Collection.Losses], include: ["loss"], exclude: ["aux"]);
        TensorRecord tensor = Loss("loss", 1);
        Assert.True(selector.Matches(tensor));

        long allocated = SteadyStateAllocation.LeastBytes(() =>
        {
            for (int i = 0; i < 1_000; i++)
            {
                selector.Matches(tensor);
            }
        });

        Assert.Equal(0, allocated);
    }
}
