namespace Monitor.Testing;

/// <summary>Measures what warmed-up code allocates on the calling thread.</summary>
internal static class SteadyStateAllocation
{
    /// <summary>
    /// The fewest bytes any of <paramref name="passes"/> runs of <paramref name="pass"/> allocated. A one-off
    /// runtime allocation on the thread (a tier-up or on-stack replacement of a hot loop on a busy machine) is not
    /// the code's, and it does not recur; an allocation the code makes shows in every pass.
    /// </summary>
    public static long LeastBytes(Action pass, int passes = 3)
    {
        long least = long.MaxValue;
        for (int i = 0; i < passes && least != 0; i++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            pass();
            least = Math.Min(least, GC.GetAllocatedBytesForCurrentThread() - before);
        }

        return least;
    }
}
