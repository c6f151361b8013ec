namespace Monitor.Analysis.Drift;

/// <summary>
/// The few numpy / C-library behaviours the scipy ports must reproduce bit for bit: numpy's summation order, its
/// float floor division, and <c>frexp</c>/<c>log1p</c>/<c>expm1</c>, which .NET lacks or computes naively.
/// </summary>
internal static class NumpyArithmetic
{
    // numpy reduces a contiguous float64 array in chunks of its buffer size (8192 elements), summing each chunk
    // pairwise (numpy/core/src/umath/loops_utils.h.src, pairwise_sum) and adding the chunk sums in order; a
    // statistic that subtracts two large sums (Cramér-von Mises' U) depends on that order in its last digits.
    private const int ReduceChunk = 8192;
    private const int PairwiseBlock = 128;

    /// <summary><c>np.sum</c> of a contiguous float64 array, in numpy 1.24's order of additions.</summary>
    public static double Sum(ReadOnlySpan<double> values)
    {
        double total = 0.0;
        for (int start = 0; start < values.Length; start += ReduceChunk)
        {
            total += PairwiseSum(values.Slice(start, Math.Min(ReduceChunk, values.Length - start)));
        }

        return total;
    }

    private static double PairwiseSum(ReadOnlySpan<double> a)
    {
        int n = a.Length;
        if (n < 8)
        {
            double res = 0.0;
            for (int i = 0; i < n; i++)
            {
                res += a[i];
            }

            return res;
        }

        if (n <= PairwiseBlock)
        {
            double r0 = a[0], r1 = a[1], r2 = a[2], r3 = a[3], r4 = a[4], r5 = a[5], r6 = a[6], r7 = a[7];
            int i = 8;
            for (; i < n - (n % 8); i += 8)
            {
                r0 += a[i];
                r1 += a[i + 1];
                r2 += a[i + 2];
                r3 += a[i + 3];
                r4 += a[i + 4];
                r5 += a[i + 5];
                r6 += a[i + 6];
                r7 += a[i + 7];
            }

            double res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7));
            for (; i < n; i++)
            {
                res += a[i];
            }

            return res;
        }

        int half = n / 2;
        half -= half % 8;
        return PairwiseSum(a[..half]) + PairwiseSum(a[half..]);
    }

    /// <summary>numpy's float <c>a // b</c> (<c>npy_divmod</c>): floor of the quotient, corrected by the remainder.</summary>
    public static double FloorDivide(double a, double b)
    {
        double mod = a % b;
        double div = (a - mod) / b;
        if (mod != 0 && (b < 0) != (mod < 0))
        {
            div -= 1.0;
        }

        if (div == 0)
        {
            return Math.CopySign(0.0, a / b);
        }

        double floor = Math.Floor(div);
        return div - floor > 0.5 ? floor + 1.0 : floor;
    }

    /// <summary>C's <c>frexp</c>: <paramref name="x"/> = mantissa · 2^exponent with 0.5 ≤ |mantissa| &lt; 1 (0 for 0).</summary>
    public static double Frexp(double x, out int exponent)
    {
        if (x == 0 || !double.IsFinite(x))
        {
            exponent = 0;
            return x;
        }

        exponent = Math.ILogB(x) + 1;
        return Math.ScaleB(x, -exponent);
    }

    /// <summary>log(1 + x), accurate for small x (Kahan's correction; .NET's <c>LogP1</c> is <c>Log(x + 1)</c>).</summary>
    public static double Log1p(double x)
    {
        double u = 1.0 + x;
        return u == 1.0 ? x : Math.Log(u) * x / (u - 1.0);
    }

    /// <summary>exp(x) − 1, accurate for small x (Kahan's correction; .NET's <c>ExpM1</c> is <c>Exp(x) - 1</c>).</summary>
    public static double Expm1(double x)
    {
        if (Math.Abs(x) >= 0.5)
        {
            return Math.Exp(x) - 1.0;
        }

        double u = Math.Exp(x);
        if (u == 1.0)
        {
            return x;
        }

        double um1 = u - 1.0;
        return um1 == -1.0 ? -1.0 : um1 * x / Math.Log(u);
    }
}
