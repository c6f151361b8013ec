namespace Monitor.Analysis.Drift;

/// <summary>The <see cref="DriftWorkspace"/> slots the scipy two-sample tests use (one test runs at a time per workspace).</summary>
internal static class WorkspaceSlots
{
    public const int SortedReference = 0;
    public const int SortedCurrent = 1;
    public const int Scratch0 = 2;
    public const int Scratch1 = 3;
    public const int Scratch2 = 4;
    public const int Scratch3 = 5;
    public const int Matrix0 = 6;
    public const int Matrix1 = 7;
    public const int Matrix2 = 8;
    public const int Vector0 = 9;
    public const int Vector1 = 10;
}

/// <summary>Argument checks and sorted copies shared by the two-sample tests.</summary>
internal static class TwoSampleScratch
{
    /// <summary>Throws <see cref="ArgumentException"/> when either sample has fewer than <paramref name="minimum"/> values.</summary>
    public static void RequireSizes(ReadOnlySpan<double> reference, ReadOnlySpan<double> current, int minimum, string test)
    {
        if (reference.Length < minimum)
        {
            throw new ArgumentException(Message(test, "reference", reference.Length, minimum), nameof(reference));
        }

        if (current.Length < minimum)
        {
            throw new ArgumentException(Message(test, "current", current.Length, minimum), nameof(current));
        }
    }

    private static string Message(string test, string sample, int length, int minimum) => minimum == 1
        ? $"{test}: the {sample} sample is empty"
        : $"{test}: the {sample} sample has {length} values; the test needs at least {minimum}";

    /// <summary>Sorted copies of both samples in the workspace's first two slots.</summary>
    public static void SortBoth(
        ReadOnlySpan<double> reference, ReadOnlySpan<double> current, DriftWorkspace workspace, out Span<double> sortedReference, out Span<double> sortedCurrent)
    {
        sortedReference = workspace.Doubles(WorkspaceSlots.SortedReference, reference.Length);
        sortedCurrent = workspace.Doubles(WorkspaceSlots.SortedCurrent, current.Length);
        reference.CopyTo(sortedReference);
        current.CopyTo(sortedCurrent);
        sortedReference.Sort();
        sortedCurrent.Sort();
    }
}
