namespace Monitor.Contracts;

/// <summary>
/// How examples of a batch are sampled when fewer are kept than the batch holds (the tracer's raw values of a batch,
/// a drift monitor's rows per step): evenly spaced, row <c>floor(i * batch / kept)</c> for i = 0 .. kept-1, so a sorted
/// or grouped batch is sampled across its whole length and two tensors of one batch are sampled at the same rows.
/// </summary>
public static class BatchSample
{
    /// <summary>The batch row that sampled row <paramref name="index"/> of <paramref name="kept"/> is.</summary>
    public static long Row(long index, long kept, long batch) =>
        kept >= batch ? index
        // Int128 division costs tens of nanoseconds; it is needed only when index * batch would overflow a long.
        : index <= long.MaxValue / Math.Max(batch, 1) ? index * batch / kept
        : (long)((Int128)index * batch / kept);

    /// <summary>Columns of a batch tensor: the product of the dimensions after the first (1 for rank 0 or 1).</summary>
    public static long Columns(ReadOnlySpan<long> shape)
    {
        long columns = 1;
        for (int d = 1; d < shape.Length; d++)
        {
            columns *= Math.Max(shape[d], 0);
        }

        return columns;
    }
}
