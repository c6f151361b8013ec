using Monitor.Analysis.State;

namespace Monitor.Analysis.Drift;

/// <summary>
/// river's <c>stats.Var</c> (ddof 1) with unit weights: Welford's update
/// <c>S += (x − mean_old) · (x − mean_new)</c>, variance <c>S / (n − 1)</c> once <c>n &gt; 1</c>, else 0. Plain data.
/// </summary>
internal struct RunningVariance
{
    /// <summary>river's <c>mean</c>.</summary>
    public RunningMean Mean;

    /// <summary>river's <c>_S</c>: the sum of squared deviations from the mean.</summary>
    public double SumOfSquares;

    public readonly double Variance => Mean.Count > 1 ? SumOfSquares / (Mean.Count - 1) : 0.0;

    public void Update(double x)
    {
        double oldMean = Mean.Mean;
        Mean.Update(x);
        SumOfSquares += (x - oldMean) * (x - Mean.Mean);
    }

    /// <summary>Reads what <see cref="Write"/> wrote.</summary>
    public static RunningVariance Read(ref StateReader reader) =>
        new() { Mean = RunningMean.Read(ref reader), SumOfSquares = reader.ReadDouble("sum of squares") };

    /// <summary>Writes the mean and the sum of squares (a detector's snapshot).</summary>
    public readonly void Write(ref StateWriter writer)
    {
        Mean.Write(ref writer);
        writer.WriteDouble(SumOfSquares);
    }
}
