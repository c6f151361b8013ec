using Monitor.Contracts.Transport;

namespace Monitor.Service.Tests;

/// <summary>What <see cref="ProcessedOffsets"/> lets a host commit, held back by dead-letter writes and forgotten with a partition.</summary>
public sealed class ProcessedOffsetsTests
{
    private static TransportMessage At(int partition, long offset) => new() { Topic = "t", Partition = partition, Offset = offset, Value = [] };

    private static ProcessedOffsets Held() => new(new InProcessBus().CreateConsumer("t"), holdCommits: true);

    [Fact]
    public void Committable_IsTheNextOffsetAfterTheLastRecordDone_HeldBackByAnOutstandingDeadLetter()
    {
        ProcessedOffsets offsets = Held();
        offsets.Done(At(0, 0));
        offsets.Started(At(0, 1));
        offsets.Done(At(0, 2));
        offsets.Done(At(1, 5));

        Assert.Equal(new Dictionary<(string, int), long> { [("t", 0)] = 1, [("t", 1)] = 6 }, offsets.Committable());
        Assert.Equal(1, offsets.Pending);

        offsets.Settled(At(0, 1));
        Assert.Equal(3, offsets.Committable()[("t", 0)]);
        Assert.Equal(0, offsets.Pending);
    }

    [Fact]
    public void Forget_DropsThePartition_AndItsOutstandingWrites_SoNoCommitCarriesIt()
    {
        ProcessedOffsets offsets = Held();
        offsets.Done(At(0, 0));
        offsets.Started(At(1, 0));
        offsets.Done(At(1, 1));

        offsets.Forget("t", 1);

        Assert.Equal(new Dictionary<(string, int), long> { [("t", 0)] = 1 }, offsets.Committable());
        Assert.Equal(0, offsets.Pending);
        // A write of the partition that settles afterwards does not bring it back.
        offsets.Settled(At(1, 0));
        Assert.False(offsets.Committable().ContainsKey(("t", 1)));
    }
}
