using Monitor.Analysis.State;

namespace Monitor.Analysis.Drift;

/// <summary>
/// A small seeded generator (SplitMix64, Steele, Lea and Flood 2014) whose whole state is one 64-bit integer, so a
/// drift monitor's permutations survive an engine snapshot: a restored engine draws the same permutations, and the
/// same p-values, as one that never stopped. <see cref="System.Random"/> cannot be serialized.
/// </summary>
/// <remarks>Not thread-safe (one per series). Deterministic for a seed on every platform and .NET version.</remarks>
public sealed class DriftRandom
{
    private ulong _state;

    /// <summary>A generator seeded with <paramref name="seed"/>.</summary>
    public DriftRandom(long seed) => _state = (ulong)seed;

    /// <summary>The generator's state: <see cref="Restore"/> of it continues the same sequence.</summary>
    public ulong State => _state;

    /// <summary>A generator continuing from <paramref name="state"/> (a <see cref="State"/>).</summary>
    public static DriftRandom Restore(ulong state) => new(0) { _state = state };

    /// <summary>Uniform in [<paramref name="minValue"/>, <paramref name="maxValue"/>), unbiased (Lemire's multiply and reject).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maxValue"/> is not above <paramref name="minValue"/>.</exception>
    public int Next(int minValue, int maxValue)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(maxValue, minValue);
        uint range = (uint)(maxValue - minValue);
        ulong product = (ulong)NextUInt32() * range;
        if ((uint)product < range)
        {
            uint threshold = (0u - range) % range;
            while ((uint)product < threshold)
            {
                product = (ulong)NextUInt32() * range;
            }
        }

        return minValue + (int)(product >> 32);
    }

    /// <summary>Writes <see cref="State"/>.</summary>
    internal void WriteState(ref StateWriter writer) => writer.WriteVarUInt(_state);

    /// <summary>Reads what <see cref="WriteState"/> wrote.</summary>
    internal static DriftRandom ReadState(ref StateReader reader) => Restore(reader.ReadVarUInt("random state"));

    private uint NextUInt32() => (uint)(NextUInt64() >> 32);

    private ulong NextUInt64()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
