using Monitor.Analysis.State;

namespace Monitor.Analysis.Drift;

/// <summary>
/// river's <c>stats.Mean</c> with unit weights: <c>n += 1; mean += (1 / n) · (x − mean)</c>, in that order of
/// operations, so the detectors built on it round as river's do. Plain data, copied by value (river's
/// <c>clone</c>).
/// </summary>
internal struct RunningMean
{
    /// <summary>river's <c>n</c>: the number of values seen, as a double.</summary>
    public double Count;

    /// <summary>The mean of the values seen (0 before any).</summary>
    public double Mean;

    public void Update(double x)
    {
        Count += 1.0;
        Mean += 1.0 / Count * (x - Mean);
    }

    /// <summary>Reads what <see cref="Write"/> wrote.</summary>
    public static RunningMean Read(ref StateReader reader) =>
        new() { Count = reader.ReadDouble("mean count"), Mean = reader.ReadDouble("mean") };

    /// <summary>Writes the count and the mean (a detector's snapshot).</summary>
    public readonly void Write(ref StateWriter writer)
    {
        writer.WriteDouble(Count);
        writer.WriteDouble(Mean);
    }
}
