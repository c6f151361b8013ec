namespace Monitor.Analysis.Tests.Drift;

/// <summary>
/// Deterministic test streams for the streaming detectors: SplitMix64 uniforms and arithmetic only (normals as the
/// sum of 12 uniforms minus 6, heavy tails as a ratio of two such normals), so every IEEE-754 machine produces the same
/// bits and the expected detection indices stay valid everywhere.
/// </summary>
internal static class DriftStreams
{
    /// <summary>Segments of normal-ish values: (length, mean, standard deviation) each.</summary>
    public static double[] Gaussian(ulong seed, params (int Length, double Mean, double Sd)[] segments)
    {
        var random = new SplitMix64(seed);
        var values = new List<double>();
        foreach ((int length, double mean, double sd) in segments)
        {
            for (int i = 0; i < length; i++)
            {
                values.Add(mean + (sd * random.Normal()));
            }
        }

        return [.. values];
    }

    /// <summary>Segments of 0/1 values: (length, probability of a 1) each.</summary>
    public static double[] Bernoulli(ulong seed, params (int Length, double P)[] segments)
    {
        var random = new SplitMix64(seed);
        var values = new List<double>();
        foreach ((int length, double p) in segments)
        {
            for (int i = 0; i < length; i++)
            {
                values.Add(random.NextDouble() < p ? 1.0 : 0.0);
            }
        }

        return [.. values];
    }

    /// <summary>Segments of heavy-tailed values (a ratio of two normals, Cauchy-like): (length, location, scale) each.</summary>
    public static double[] HeavyTailed(ulong seed, params (int Length, double Location, double Scale)[] segments)
    {
        var random = new SplitMix64(seed);
        var values = new List<double>();
        foreach ((int length, double location, double scale) in segments)
        {
            for (int i = 0; i < length; i++)
            {
                values.Add(location + (scale * random.Normal() / random.Normal()));
            }
        }

        return [.. values];
    }

    /// <summary><paramref name="length"/> copies of <paramref name="value"/>.</summary>
    public static double[] Constant(int length, double value) => Enumerable.Repeat(value, length).ToArray();

    /// <summary>Sebastiano Vigna's SplitMix64.</summary>
    private sealed class SplitMix64(ulong seed)
    {
        private ulong _state = seed;

        public ulong Next()
        {
            ulong z = _state += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }

        /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
        public double NextDouble() => (Next() >> 11) * (1.0 / (1UL << 53));

        /// <summary>Irwin-Hall: mean 0, variance 1, support [-6, 6].</summary>
        public double Normal()
        {
            double sum = 0.0;
            for (int i = 0; i < 12; i++)
            {
                sum += NextDouble();
            }

            return sum - 6.0;
        }
    }
}
