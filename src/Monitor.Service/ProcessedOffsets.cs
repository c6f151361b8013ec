using Monitor.Contracts.Transport;

namespace Monitor.Service;

/// <summary>
/// Which offset of each partition may be committed while some of its records are still being dead-lettered: a
/// partition's committed position must never pass a record whose dead-letter write is outstanding, or a crash would
/// lose it. Records analysed at once advance the position; a dead-lettered one holds it back until it settles.
/// </summary>
/// <remarks>
/// <para>Pipeline thread only (it calls <see cref="IRecordConsumer.MarkProcessed"/>). A partition's records arrive
/// in offset order; after a rebalance they may start again lower, and nothing below what was marked is marked again.</para>
/// <para>With <paramref name="holdCommits"/> (a state directory), nothing is passed to the consumer as records go:
/// <see cref="Committable"/> says how far each partition could be committed, and the host marks those offsets once a
/// state that reflects them is saved, so the committed offsets never run ahead of the saved state.</para>
/// </remarks>
internal sealed class ProcessedOffsets(IRecordConsumer consumer, bool holdCommits = false)
{
    private readonly Dictionary<(string Topic, int Partition), PartitionState> _partitions = [];

    /// <summary>Per partition, the offset of the first record not yet safe to commit (last committable + 1); partitions
    /// with nothing committable are left out. A new dictionary per call.</summary>
    public Dictionary<(string Topic, int Partition), long> Committable()
    {
        var next = new Dictionary<(string Topic, int Partition), long>(_partitions.Count);
        foreach (((string topic, int partition), PartitionState state) in _partitions)
        {
            if (state.Marked >= 0)
            {
                next[(topic, partition)] = state.Marked + 1;
            }
        }

        return next;
    }

    /// <summary>
    /// The partition left this member (revoked or lost): what was marked of it is forgotten, so no later commit carries
    /// an offset of a partition another member owns. Its outstanding dead-letter writes settle as usual.
    /// </summary>
    public void Forget(string topic, int partition)
    {
        if (_partitions.Remove((topic, partition), out PartitionState? state))
        {
            Pending -= state.Outstanding.Count;
        }
    }

    /// <summary>Records (dead-letter writes) outstanding over all partitions.</summary>
    public int Pending { get; private set; }

    /// <summary>The record is done with (analysed, or skipped on purpose).</summary>
    public void Done(TransportMessage message)
    {
        PartitionState state = StateOf(message);
        state.Position = message.Offset;
        Advance(message, state);
    }

    /// <summary>The record's dead-letter write started: its offset stays uncommitted until <see cref="Settled"/>.</summary>
    public void Started(TransportMessage message)
    {
        PartitionState state = StateOf(message);
        state.Position = message.Offset;
        if (state.Outstanding.Add(message.Offset))
        {
            Pending++;
        }
    }

    /// <summary>
    /// The record will not be processed by this member (the service stops before its dead-letter write could start):
    /// it holds its partition's position back, so whoever resumes the partition reads it again.
    /// </summary>
    public void Abandoned(TransportMessage message)
    {
        PartitionState state = StateOf(message);
        state.Position = message.Offset;
        state.Outstanding.Add(message.Offset);
    }

    /// <summary>The record's dead-letter write settled (accepted, or its loss counted).</summary>
    public void Settled(TransportMessage message)
    {
        PartitionState state = StateOf(message);
        if (state.Outstanding.Remove(message.Offset))
        {
            Pending--;
        }

        Advance(message, state);
    }

    private PartitionState StateOf(TransportMessage message)
    {
        if (!_partitions.TryGetValue((message.Topic, message.Partition), out PartitionState? state))
        {
            state = new PartitionState();
            _partitions.Add((message.Topic, message.Partition), state);
        }

        return state;
    }

    private void Advance(TransportMessage message, PartitionState state)
    {
        long upTo = state.Outstanding.Count == 0 ? state.Position : Math.Min(state.Position, state.Outstanding.Min - 1);
        if (upTo <= state.Marked)
        {
            return;
        }

        state.Marked = upTo;
        if (holdCommits)
        {
            return;
        }

        consumer.MarkProcessed(upTo == message.Offset
            ? message
            : new TransportMessage { Topic = message.Topic, Partition = message.Partition, Offset = upTo, Value = [] });
    }

    private sealed class PartitionState
    {
        public readonly SortedSet<long> Outstanding = [];
        public long Position = -1;
        public long Marked = -1;
    }
}
