using System.Runtime.InteropServices;

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
    public const int SortKeys = 11;

    // Int slots (a separate set from the double slots).
    public const int SortCounts = 4;
    public const int RankCounts = 5;
    public const int TieCounts = 6;
    public const int RankTable = 7;
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

    /// <summary>Whether <paramref name="values"/> is in ascending order (NaN nowhere: the tests take finite values).</summary>
    internal static bool IsSorted(ReadOnlySpan<double> values)
    {
        for (int i = 1; i < values.Length; i++)
        {
            if (values[i] < values[i - 1])
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Sorted copies of both samples in the workspace's first two slots.</summary>
    public static void SortBoth(
        ReadOnlySpan<double> reference, ReadOnlySpan<double> current, DriftWorkspace workspace, out Span<double> sortedReference, out Span<double> sortedCurrent)
    {
        sortedReference = workspace.Doubles(WorkspaceSlots.SortedReference, reference.Length);
        sortedCurrent = workspace.Doubles(WorkspaceSlots.SortedCurrent, current.Length);
        SortInto(reference, sortedReference, workspace);
        SortInto(current, sortedCurrent, workspace);
    }

    // Below this size introsort beats clearing and walking the radix histograms.
    private const int RadixThreshold = 512;
    private const int DigitBits = 8;
    private const int Buckets = 1 << DigitBits;
    private const int Digits = 64 / DigitBits;

    /// <summary>
    /// Sorts <paramref name="source"/> into <paramref name="destination"/> (ascending; −0 before +0, which compare
    /// equal). Large inputs take an LSD radix sort on the order-preserving bit pattern of the doubles, several times
    /// faster than introsort at the sizes drift tests see; sorting is most of the cost of every test here.
    /// </summary>
    internal static void SortInto(ReadOnlySpan<double> source, Span<double> destination, DriftWorkspace workspace)
    {
        int n = source.Length;
        if (IsSorted(source))
        {
            // A monitor's frozen reference is kept sorted: one pass to see it beats any sort.
            source.CopyTo(destination);
            return;
        }

        if (n < RadixThreshold)
        {
            source.CopyTo(destination);
            destination.Sort();
            return;
        }

        Span<ulong> keys = MemoryMarshal.Cast<double, ulong>(destination[..n]);
        Span<ulong> temp = MemoryMarshal.Cast<double, ulong>(workspace.Doubles(WorkspaceSlots.SortKeys, n));
        Span<int> counts = workspace.Ints(WorkspaceSlots.SortCounts, Digits * Buckets);
        counts.Clear();
        for (int i = 0; i < n; i++)
        {
            // Flip all bits of negatives and the sign bit of positives: unsigned order is then numeric order.
            ulong bits = BitConverter.DoubleToUInt64Bits(source[i]);
            ulong key = (bits & 0x8000_0000_0000_0000UL) != 0 ? ~bits : bits | 0x8000_0000_0000_0000UL;
            keys[i] = key;
            for (int d = 0; d < Digits; d++)
            {
                counts[(d * Buckets) + (int)((key >> (d * DigitBits)) & (Buckets - 1))]++;
            }
        }

        Span<ulong> from = keys, to = temp;
        for (int d = 0; d < Digits; d++)
        {
            Span<int> digitCounts = counts.Slice(d * Buckets, Buckets);
            int shift = d * DigitBits;
            if (digitCounts[(int)((from[0] >> shift) & (Buckets - 1))] == n)
            {
                // Every key has this digit: the pass would not move anything.
                continue;
            }

            int offset = 0;
            for (int bucket = 0; bucket < Buckets; bucket++)
            {
                int count = digitCounts[bucket];
                digitCounts[bucket] = offset;
                offset += count;
            }

            for (int i = 0; i < n; i++)
            {
                ulong key = from[i];
                to[digitCounts[(int)((key >> shift) & (Buckets - 1))]++] = key;
            }

            Span<ulong> swap = from;
            from = to;
            to = swap;
        }

        if (from != keys)
        {
            from.CopyTo(keys);
        }

        for (int i = 0; i < n; i++)
        {
            ulong key = keys[i];
            ulong bits = (key & 0x8000_0000_0000_0000UL) != 0 ? key & 0x7FFF_FFFF_FFFF_FFFFUL : ~key;
            destination[i] = BitConverter.UInt64BitsToDouble(bits);
        }
    }
}
