using System.Buffers.Binary;
using Monitor.Analysis.State;

namespace Monitor.Analysis.Drift;

/// <summary>
/// CPython's <c>random.Random</c> as far as river's KSWIN uses it: MT19937 seeded from an integer the way
/// <c>random_seed</c> does (<c>init_by_array</c> over the absolute value's 32-bit words, least significant first),
/// <c>getrandbits(k)</c> for k ≤ 32, <c>_randbelow_with_getrandbits</c> and <c>sample(range(n), k)</c> (CPython 3.11's
/// <c>Lib/random.py</c>). So KSWIN with a seed draws the same sample indices as river's and detects at the same places.
/// </summary>
/// <remarks>Plain data (the 624-word state and its position), so a detector holding one can be snapshotted. Not thread-safe.</remarks>
internal sealed class PythonRandom
{
    private const int N = 624;
    private const int M = 397;
    private const uint MatrixA = 0x9908b0df;
    private const uint UpperMask = 0x80000000;
    private const uint LowerMask = 0x7fffffff;

    private readonly uint[] _state = new uint[N];
    private int _index = N + 1;
    private int[] _pool = [];

    /// <summary>Seeds as <c>random.Random(seed)</c> does for an integer seed.</summary>
    public PythonRandom(long seed)
    {
        ulong magnitude = seed < 0 ? (ulong)-(seed + 1) + 1 : (ulong)seed;
        uint[] key = magnitude >> 32 == 0 ? [(uint)magnitude] : [(uint)magnitude, (uint)(magnitude >> 32)];
        InitByArray(key);
    }

    private PythonRandom()
    {
    }

    /// <summary>Reads what <see cref="WriteState"/> wrote: the generator continues where the written one was.</summary>
    public static PythonRandom ReadState(ref StateReader reader)
    {
        var random = new PythonRandom { _index = reader.ReadInt32("twister position", N) };
        ReadOnlySpan<byte> words = reader.ReadBytes(N * sizeof(uint), "twister state");
        for (int i = 0; i < N; i++)
        {
            random._state[i] = BinaryPrimitives.ReadUInt32LittleEndian(words[(i * sizeof(uint))..]);
        }

        return random;
    }

    /// <summary>Writes the position and the 624 words of state (2.5 KB; the sample pool is scratch).</summary>
    public void WriteState(ref StateWriter writer)
    {
        writer.WriteVarInt(_index);
        Span<byte> word = stackalloc byte[sizeof(uint)];
        foreach (uint value in _state)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(word, value);
            writer.WriteBytes(word);
        }
    }

    /// <summary><c>getrandbits(bits)</c> for 1 ≤ bits ≤ 32.</summary>
    public uint GetRandBits(int bits) => Next() >> (32 - bits);

    /// <summary><c>_randbelow_with_getrandbits(n)</c>: uniform in [0, n), n ≥ 1, by rejection.</summary>
    public int RandBelow(int n)
    {
        int bits = 32 - int.LeadingZeroCount(n);
        uint r = GetRandBits(bits);
        while (r >= (uint)n)
        {
            r = GetRandBits(bits);
        }

        return (int)r;
    }

    /// <summary>
    /// <c>sample(range(n), k)</c> into <paramref name="result"/> (length k): CPython's pool method when a list of n is
    /// smaller than a set of k, else its rejection method, each drawing exactly as CPython does.
    /// </summary>
    public void Sample(int n, Span<int> result)
    {
        int k = result.Length;
        ArgumentOutOfRangeException.ThrowIfGreaterThan(k, n);
        int setSize = 21;
        if (k > 5)
        {
            // 4 ** ceil(log(3k, 4)), as CPython computes it in floating point.
            setSize += (int)Math.Pow(4, Math.Ceiling(Math.Log(k * 3) / Math.Log(4)));
        }

        if (n <= setSize)
        {
            if (_pool.Length < n)
            {
                _pool = new int[n];
            }

            for (int i = 0; i < n; i++)
            {
                _pool[i] = i;
            }

            for (int i = 0; i < k; i++)
            {
                int j = RandBelow(n - i);
                result[i] = _pool[j];
                _pool[j] = _pool[n - i - 1];
            }

            return;
        }

        for (int i = 0; i < k; i++)
        {
            int j = RandBelow(n);
            while (result[..i].Contains(j))
            {
                j = RandBelow(n);
            }

            result[i] = j;
        }
    }

    private void InitGenRand(uint seed)
    {
        _state[0] = seed;
        for (int i = 1; i < N; i++)
        {
            _state[i] = (1812433253u * (_state[i - 1] ^ (_state[i - 1] >> 30))) + (uint)i;
        }

        _index = N;
    }

    private void InitByArray(uint[] key)
    {
        InitGenRand(19650218u);
        int i = 1, j = 0;
        for (int k = Math.Max(N, key.Length); k > 0; k--)
        {
            _state[i] = (_state[i] ^ ((_state[i - 1] ^ (_state[i - 1] >> 30)) * 1664525u)) + key[j] + (uint)j;
            i++;
            j++;
            if (i >= N)
            {
                _state[0] = _state[N - 1];
                i = 1;
            }

            if (j >= key.Length)
            {
                j = 0;
            }
        }

        for (int k = N - 1; k > 0; k--)
        {
            _state[i] = (_state[i] ^ ((_state[i - 1] ^ (_state[i - 1] >> 30)) * 1566083941u)) - (uint)i;
            i++;
            if (i >= N)
            {
                _state[0] = _state[N - 1];
                i = 1;
            }
        }

        _state[0] = 0x80000000u;
    }

    private uint Next()
    {
        if (_index >= N)
        {
            Twist();
        }

        uint y = _state[_index++];
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c5680u;
        y ^= (y << 15) & 0xefc60000u;
        y ^= y >> 18;
        return y;
    }

    private void Twist()
    {
        for (int kk = 0; kk < N; kk++)
        {
            uint y = (_state[kk] & UpperMask) | (_state[(kk + 1) % N] & LowerMask);
            _state[kk] = _state[(kk + M) % N] ^ (y >> 1) ^ ((y & 1) == 0 ? 0 : MatrixA);
        }

        _index = 0;
    }
}
