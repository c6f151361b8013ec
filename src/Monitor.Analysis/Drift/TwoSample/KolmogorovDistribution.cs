namespace Monitor.Analysis.Drift;

/// <summary>
/// The finite-n distribution of the two-sided one-sample Kolmogorov-Smirnov statistic D_n, as scipy 1.10's
/// <c>kstwo.sf</c> computes it (<c>scipy/stats/_ksstats.py</c>, <c>_kolmogn</c>, which follows Simard and L'Ecuyer
/// 2011 in choosing a method per region), and the one-sided Smirnov survival function it uses
/// (<c>scipy/special/cephes/kolmogorov.c</c>, <c>smirnov</c>). Every region is implemented: Ruben-Gambino near the
/// ends, the Durbin matrix (Marsaglia-Tsang-Wang), Pomeranz's recursion, the Pelz-Good expansion, and 2 · Smirnov's
/// sum in double-double arithmetic.
/// </summary>
/// <remarks>
/// scipy evaluates a few intermediate products in x87 long double (numpy's <c>longdouble</c> scale factors); here
/// everything is float64, which changes results by a few units in the last place of the CDF.
/// </remarks>
internal static class KolmogorovDistribution
{
    private const int ScaleExponent = 128;
    private const int SmirnovMaxComputeN = 1000000;
    private const int SmirnovUpperMaxTerms = 3;
    private const int SmirnovUpperSumMinN = 10;
    private const int MaxExponent = 960;
    private const double DblEpsilon = 2.220446049250313e-16;
    private const double Ln2 = 0.69314718055994530942;

    // cephes' MINLOG with DENORMAL defined: log(2^-1075).
    private const double MinLog = -7.451332191019412076235E2;
    private const double PelzGoodMinLog = -708;

    // Bernoulli-number coefficients of Stirling's series for log(n!/n^n), highest power first (_ksstats.py).
    private static ReadOnlySpan<double> StirlingCoefficients =>
    [
        -2.955065359477124183e-2, 6.4102564102564102564e-3, -1.9175269175269175269e-3, 8.4175084175084175084e-4,
        -5.952380952380952381e-4, 7.9365079365079365079e-4, -2.7777777777777777778e-3, 8.3333333333333333333e-2,
    ];

    private static readonly double ScaleUp = Math.ScaleB(1.0, ScaleExponent);
    private static readonly double ScaleDown = Math.ScaleB(1.0, -ScaleExponent);
    private static readonly double Log2Pi = Math.Log(2 * Math.PI);
    private static readonly double Sqrt2Pi = Math.Sqrt(2 * Math.PI);
    private static readonly double Sqrt3 = Math.Sqrt(3);
    private static readonly double PiSquared = Math.PI * Math.PI;
    private static readonly double PiFour = Math.Pow(Math.PI, 4);
    private static readonly double PiSix = Math.Pow(Math.PI, 6);

    /// <summary>
    /// <c>scipy.stats.kstwo.sf(x, n)</c>: P(D_n ≥ x). NaN when n is not a positive integer (scipy's bad argument);
    /// 1 at or below the support's lower end 0.5/n, 0 at or above 1.
    /// </summary>
    /// <param name="x">The statistic.</param>
    /// <param name="n">The sample size, as a float (ks_2samp passes <c>round(en)</c>).</param>
    /// <param name="workspace">Scratch for the Durbin matrices.</param>
    public static double TwoSidedSf(double x, double n, DriftWorkspace workspace)
    {
        if (!(n >= 1) || n != Math.Round(n) || double.IsNaN(x))
        {
            return double.NaN;
        }

        if (x <= 0.5 / n)
        {
            return 1.0;
        }

        if (x >= 1.0)
        {
            return 0.0;
        }

        return n > int.MaxValue ? double.NaN : Kolmogn((int)n, x, cdf: false, workspace);
    }

    /// <summary>The cephes <c>smirnov(n, x)</c>: P(D⁺_n ≥ x), the one-sided survival function.</summary>
    public static double SmirnovSf(int n, double x)
    {
        if (double.IsNaN(x) || !(n > 0 && x >= 0.0 && x <= 1.0))
        {
            return double.NaN;
        }

        if (n == 1)
        {
            return 1 - x;
        }

        if (x == 0.0)
        {
            return 1.0;
        }

        if (x == 1.0)
        {
            return 0.0;
        }

        // floor(n·x) and the remainder exactly (the product is formed in double-double).
        DoubleDouble nxD = DoubleDouble.Mul(n, x);
        DoubleDouble nxFloorD = nxD.Floor();
        double alpha = (nxD - nxFloorD).Hi;
        int nxfl = (int)nxFloorD.Hi;
        if (alpha == 1)
        {
            nxfl += 1;
            alpha = 0;
        }

        int n1mxfl = n - nxfl - (alpha == 0 ? 0 : 1);
        int n1mxceil = n - nxfl;
        if (alpha == 0)
        {
            // The last term belongs to neither sum.
            n1mxfl -= 1;
            n1mxceil += 1;
        }

        if (nxfl == 0 || (nxfl == 1 && alpha == 0))
        {
            // x ≤ 1/n: cdf = x (1 + x)^(n-1). This and the next special cases return unclipped, as in cephes.
            double t = PowD(DoubleDouble.Add(1, x), n - 1).Hi;
            return 1 - (x * t);
        }

        if (-2 * n * x * x < MinLog)
        {
            return 0.0;
        }

        if (nxfl >= n - 1)
        {
            return PowD(DoubleDouble.Add(1, -x), n).Hi;
        }

        if (n > SmirnovMaxComputeN)
        {
            // p ~ exp(-(6nx + 1)^2 / 18n).
            double logp = -Math.Pow((6.0 * n * x) + 1, 2) / 18.0 / n;
            return logp < -Ln2 ? Math.Exp(logp) : 1 - (-NumpyArithmetic.Expm1(logp));
        }

        int nUpperTerms = n - n1mxceil + 1;
        bool useUpperSum = nUpperTerms <= 1 && x < 0.5;
        useUpperSum = useUpperSum
            || (n >= SmirnovUpperSumMinN && nUpperTerms <= SmirnovUpperMaxTerms && x <= 0.5 / Math.Sqrt(n));

        int start = 0, step = 1, nTerms = n1mxfl + 1;
        int vmid = n / 2;
        var cman = DoubleDouble.One;
        int cexpt = 0;
        DoubleDouble aj;
        if (useUpperSum)
        {
            start = n;
            step = -1;
            nTerms = n - n1mxceil + 1;
            aj = Pow4D(1, x, 1, 0, n - 1);
        }
        else
        {
            aj = Pow4D(1, -x, 1, 0, n) / x;
        }

        DoubleDouble ajSum = DoubleDouble.Zero + aj;
        UpdateBinomial(ref cman, ref cexpt, n, 0);
        for (int j = 1; j < nTerms; j++)
        {
            int v = start + (j * step);
            aj = SmirnovTerm(n, x, v, cman, cexpt);
            if (aj.IsFinite && !aj.IsZero)
            {
                ajSum += aj;
            }

            if (!aj.IsZero)
            {
                if (4 * (nTerms - j) * Math.Abs(aj.Hi) < DblEpsilon * ajSum.Hi && j != nTerms - 1)
                {
                    break;
                }
            }
            else if (j > vmid)
            {
                break;
            }

            UpdateBinomial(ref cman, ref cexpt, n, j);
        }

        double prob = (ajSum * x).Hi;
        return Clip(step < 0 ? 1 - prob : prob);
    }

    // C's CLIP(x, 0, 1) macro, which maps NaN to 1.
    private static double Clip(double p) => p < 0 ? 0 : (p < 1.0 ? p : 1.0);

    private static double Select(double cdfProb, double sfProb, bool cdf) => ClipNaN(cdf ? cdfProb : sfProb);

    // np.clip keeps NaN.
    private static double ClipNaN(double p) => double.IsNaN(p) ? p : Math.Clamp(p, 0.0, 1.0);

    private static double Kolmogn(int n, double x, bool cdf, DriftWorkspace workspace)
    {
        if (x >= 1.0)
        {
            return Select(1.0, 0.0, cdf);
        }

        if (x <= 0.0)
        {
            return Select(0.0, 1.0, cdf);
        }

        double t = n * x;
        double prob;
        if (t <= 1.0)
        {
            // Ruben-Gambino: 1/2n ≤ x ≤ 1/n.
            if (t <= 0.5)
            {
                return Select(0.0, 1.0, cdf);
            }

            if (n <= 140)
            {
                double inverse = 1.0 / n, factor = (2 * t) - 1;
                prob = 1.0;
                for (int i = 1; i <= n; i++)
                {
                    prob *= i * inverse * factor;
                }
            }
            else
            {
                prob = Math.Exp(LogNFactorialDivNPowN(n) + (n * Math.Log((2 * t) - 1)));
            }

            return Select(prob, 1.0 - prob, cdf);
        }

        if (t >= n - 1)
        {
            prob = 2 * Math.Pow(1.0 - x, n);
            return Select(1 - prob, prob, cdf);
        }

        if (x >= 0.5)
        {
            prob = 2 * SmirnovSf(n, x);
            return Select(1.0 - prob, prob, cdf);
        }

        double nxSquared = t * x;
        if (n <= 140)
        {
            if (nxSquared <= 0.754693)
            {
                prob = Durbin(n, x, workspace);
                return Select(prob, 1.0 - prob, cdf);
            }

            if (nxSquared <= 4)
            {
                prob = Pomeranz(n, x);
                return Select(prob, 1.0 - prob, cdf);
            }

            prob = 2 * SmirnovSf(n, x);
            return Select(1.0 - prob, prob, cdf);
        }

        // The CDF and the SF have different cut-offs on n·x².
        if (!cdf)
        {
            if (nxSquared >= 370.0)
            {
                return 0.0;
            }

            if (nxSquared >= 2.2)
            {
                return ClipNaN(2 * SmirnovSf(n, x));
            }
        }

        double cdfProb;
        if (nxSquared >= 18.0)
        {
            cdfProb = 1.0;
        }
        else if (n <= 100000 && n * Math.Pow(x, 1.5) <= 1.4)
        {
            cdfProb = Durbin(n, x, workspace);
        }
        else
        {
            cdfProb = PelzGood(n, x);
        }

        return Select(cdfProb, 1.0 - cdfProb, cdf);
    }

    // log(n! / n^n) by Stirling's series with n·log(n) removed up front (_log_nfactorial_div_n_pow_n).
    private static double LogNFactorialDivNPowN(int n)
    {
        double rn = 1.0 / n;
        double y = rn / n;
        double poly = 0.0;
        foreach (double c in StirlingCoefficients)
        {
            poly = (poly * y) + c;
        }

        return (Math.Log(n) / 2) - n + (Log2Pi / 2) + (rn * poly);
    }

    /// <summary>P(D_n ≤ d) by Durbin's matrix, computed as Marsaglia, Tsang and Wang do (_kolmogn_DMTW).</summary>
    private static double Durbin(int n, double d, DriftWorkspace workspace)
    {
        if (d >= 1.0)
        {
            return 1.0;
        }

        double nd = n * d;
        if (nd <= 0.5)
        {
            return 0.0;
        }

        int k = (int)Math.Ceiling(nd);
        double h = k - nd;
        int m = (2 * k) - 1;
        Span<double> hm = workspace.Doubles(WorkspaceSlots.Matrix0, m * m);
        Span<double> power = workspace.Doubles(WorkspaceSlots.Matrix1, m * m);
        Span<double> product = workspace.Doubles(WorkspaceSlots.Matrix2, m * m);
        Span<double> v = workspace.Doubles(WorkspaceSlots.Vector0, m);
        Span<double> w = workspace.Doubles(WorkspaceSlots.Vector1, m);

        // v[j] = (1 - h^(j+1)) / (j+1)! (the first column and, reversed, the last row); w[j] = 1/j!.
        double fac = 1.0;
        for (int j = 1; j <= m; j++)
        {
            w[j - 1] = fac;
            fac /= j;
            v[j - 1] = (1.0 - Math.Pow(h, j)) * fac;
        }

        double tt = Math.Pow(Math.Max((2 * h) - 1.0, 0), m) - (2 * Math.Pow(h, m));
        v[m - 1] = (1.0 + tt) * fac;

        hm.Clear();
        for (int i = 1; i < m; i++)
        {
            for (int row = i - 1; row < m; row++)
            {
                hm[(row * m) + i] = w[row - (i - 1)];
            }
        }

        for (int row = 0; row < m; row++)
        {
            hm[row * m] = v[row];
        }

        for (int col = 0; col < m; col++)
        {
            hm[((m - 1) * m) + col] = v[m - 1 - col];
        }

        power.Clear();
        for (int i = 0; i < m; i++)
        {
            power[(i * m) + i] = 1.0;
        }

        int nn = n;
        int expnt = 0, hExpnt = 0;
        while (nn > 0)
        {
            if (nn % 2 != 0)
            {
                Multiply(power, hm, product, m);
                product.CopyTo(power);
                expnt += hExpnt;
            }

            nn /= 2;
            if (nn == 0)
            {
                // scipy squares once more here; the square is never used.
                break;
            }

            Multiply(hm, hm, product, m);
            product.CopyTo(hm);
            hExpnt *= 2;
            if (Math.Abs(hm[((k - 1) * m) + k - 1]) > ScaleUp)
            {
                for (int i = 0; i < m * m; i++)
                {
                    hm[i] /= ScaleUp;
                }

                hExpnt += ScaleExponent;
            }
        }

        double p = power[((k - 1) * m) + k - 1];

        // Multiply by n!/n^n.
        for (int i = 1; i <= n; i++)
        {
            p = i * p / n;
            if (Math.Abs(p) < ScaleDown)
            {
                p *= ScaleUp;
                expnt -= ScaleExponent;
            }
        }

        if (expnt != 0)
        {
            p = Math.ScaleB(p, expnt);
        }

        return ClipNaN(p);
    }

    private static void Multiply(ReadOnlySpan<double> a, ReadOnlySpan<double> b, Span<double> result, int m)
    {
        result[..(m * m)].Clear();
        for (int i = 0; i < m; i++)
        {
            Span<double> row = result.Slice(i * m, m);
            for (int l = 0; l < m; l++)
            {
                double ail = a[(i * m) + l];
                ReadOnlySpan<double> brow = b.Slice(l * m, m);
                for (int j = 0; j < m; j++)
                {
                    row[j] += ail * brow[j];
                }
            }
        }
    }

    private static (int J1, int J2) PomeranzBounds(int i, int n, int ll, int ceilf, int roundf)
    {
        int j1, j2;
        if (i == 0)
        {
            j1 = -ll - ceilf - 1;
            j2 = ll + ceilf - 1;
        }
        else
        {
            int ip1div2 = (i + 1) / 2, ip1mod2 = (i + 1) % 2;
            if (ip1mod2 == 0)
            {
                if (ip1div2 == n + 1)
                {
                    j1 = n - ll - ceilf - 1;
                    j2 = n + ll + ceilf - 1;
                }
                else
                {
                    j1 = ip1div2 - 1 - ll - roundf - 1;
                    j2 = ip1div2 + ll - 1 + ceilf - 1;
                }
            }
            else
            {
                j1 = ip1div2 - 1 - ll - 1;
                j2 = ip1div2 + ll + roundf - 1;
            }
        }

        return (Math.Max(j1 + 2, 0), Math.Min(j2, n));
    }

    /// <summary>P(D_n ≤ x) by Pomeranz's recursion (_kolmogn_Pomeranz); only used for n ≤ 140.</summary>
    private static double Pomeranz(int n, double x)
    {
        double t = n * x;
        int ll = (int)Math.Floor(t);
        double f = 1.0 * (t - ll);
        double g = Math.Min(f, 1.0 - f);
        int ceilf = f > 0 ? 1 : 0;
        int roundf = f > 0.5 ? 1 : 0;
        int npwrs = 2 * (ll + 1);

        // (g/n)^m/m!, (2g/n)^m/m!, ((1-2g)/n)^m/m!: Poisson probabilities without their normalising factor.
        Span<double> gpower = stackalloc double[npwrs];
        Span<double> twogpower = stackalloc double[npwrs];
        Span<double> onem2gpower = stackalloc double[npwrs];
        gpower[0] = 1.0;
        twogpower[0] = 1.0;
        onem2gpower[0] = 1.0;
        double gOverN = g / n, twoGOverN = 2 * g / n, oneMinusTwoGOverN = (1 - (2 * g)) / n;
        for (int m = 1; m < npwrs; m++)
        {
            gpower[m] = gpower[m - 1] * gOverN / m;
            twogpower[m] = twogpower[m - 1] * twoGOverN / m;
            onem2gpower[m] = onem2gpower[m - 1] * oneMinusTwoGOverN / m;
        }

        Span<double> v0 = stackalloc double[npwrs];
        Span<double> v1 = stackalloc double[npwrs];
        Span<double> conv = stackalloc double[2 * npwrs];
        v0.Clear();
        v1.Clear();
        v1[0] = 1;
        int v0s = 0, v1s = 0;
        int expnt = 0;
        (int j1, int j2) = PomeranzBounds(0, n, ll, ceilf, roundf);
        for (int i = 1; i < (2 * n) + 2; i++)
        {
            int k1 = j1;
            Span<double> swap = v0;
            v0 = v1;
            v1 = swap;
            (v0s, v1s) = (v1s, v0s);
            v1.Clear();
            (j1, j2) = PomeranzBounds(i, n, ll, ceilf, roundf);
            ReadOnlySpan<double> pwrs = i == 1 || i == (2 * n) + 1 ? gpower : (i % 2 != 0 ? twogpower : onem2gpower);
            int ln2 = j2 - k1 + 1;
            if (ln2 > 0)
            {
                ReadOnlySpan<double> a = PythonSlice(v0, k1 - v0s, k1 - v0s + ln2);
                ReadOnlySpan<double> b = PythonSlice(pwrs, 0, ln2);
                int convLength = a.Length + b.Length - 1;
                for (int c = 0; c < convLength; c++)
                {
                    double sum = 0.0;
                    int lo = Math.Max(0, c - (b.Length - 1)), hi = Math.Min(c, a.Length - 1);
                    for (int q = lo; q <= hi; q++)
                    {
                        sum += a[q] * b[c - q];
                    }

                    conv[c] = sum;
                }

                int convStart = j1 - k1;
                int convLen = j2 - j1 + 1;
                PythonSlice(conv[..convLength], convStart, convStart + convLen).CopyTo(v1);
                double max = double.NegativeInfinity;
                foreach (double value in v1)
                {
                    max = Math.Max(max, value);
                }

                if (max > 0 && max < ScaleDown)
                {
                    for (int q = 0; q < v1.Length; q++)
                    {
                        v1[q] *= ScaleUp;
                    }

                    expnt -= ScaleExponent;
                }

                v1s = v0s + j1 - k1;
            }
        }

        double ans = v1[n - v1s];
        for (int m = 1; m <= n; m++)
        {
            if (Math.Abs(ans) > ScaleUp)
            {
                ans *= ScaleDown;
                expnt += ScaleExponent;
            }

            ans *= m;
        }

        if (expnt != 0)
        {
            ans = Math.ScaleB(ans, expnt);
        }

        return ClipNaN(ans);
    }

    private static ReadOnlySpan<double> PythonSlice(ReadOnlySpan<double> span, int start, int stop)
    {
        int length = span.Length;
        start = start < 0 ? Math.Max(start + length, 0) : Math.Min(start, length);
        stop = stop < 0 ? Math.Max(stop + length, 0) : Math.Min(stop, length);
        return stop > start ? span[start..stop] : [];
    }

    /// <summary>The Pelz-Good approximation to P(D_n ≤ x) (_kolmogn_PelzGood).</summary>
    private static double PelzGood(int n, double x)
    {
        if (x <= 0.0)
        {
            return 0.0;
        }

        if (x >= 1.0)
        {
            return 1.0;
        }

        double z = Math.Sqrt(n) * x;
        double zsquared = z * z, zthree = Math.Pow(z, 3), zfour = Math.Pow(z, 4), zsix = Math.Pow(z, 6);
        double qlog = -PiSquared / 8 / zsquared;
        if (qlog < PelzGoodMinLog)
        {
            return 0.0;
        }

        double q = Math.Exp(qlog);
        double k1a = -zsquared;
        double k1b = PiSquared / 4;
        double k2a = (6 * zsix) + (2 * zfour);
        double k2b = ((2 * zfour) - (5 * zsquared)) * PiSquared / 4;
        double k2c = PiFour * (1 - (2 * zsquared)) / 16;
        double k3d = PiSix * (5 - (30 * zsquared)) / 64;
        double k3c = PiFour * ((-60 * zsquared) + (212 * zfour)) / 16;
        double k3b = PiSquared * ((135 * zfour) - (96 * zsix)) / 4;
        double k3a = (-30 * zsix) - (90 * Math.Pow(z, 8));

        // Horner in q^8 over the odd terms of the four series.
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        int maxk = (int)Math.Ceiling(16 * z / Math.PI);
        for (int k = maxk; k > 0; k--)
        {
            double mm = (2 * k) - 1;
            double msquared = mm * mm, mfour = Math.Pow(mm, 4), msix = Math.Pow(mm, 6);
            double qpower = Math.Pow(q, 8 * k);
            s0 = (s0 * qpower) + 1.0;
            s1 = (s1 * qpower) + (k1a + (k1b * msquared));
            s2 = (s2 * qpower) + (k2a + (k2b * msquared) + (k2c * mfour));
            s3 = (s3 * qpower) + (k3a + (k3b * msquared) + (k3c * mfour) + (k3d * msix));
        }

        s0 = s0 * q * Sqrt2Pi / z;
        s1 = s1 * q * Sqrt2Pi / (6 * zfour);
        s2 = s2 * q * Sqrt2Pi / (72 * Math.Pow(z, 7));
        s3 = s3 * q * Sqrt2Pi / (6480 * Math.Pow(z, 10));

        // The sums over all integers k for K2 and K3.
        q = Math.Exp(-PiSquared / 2 / zsquared);
        double sqrt3z = Sqrt3 * z;
        Span<double> k2terms = maxk <= 64 ? stackalloc double[maxk] : new double[maxk];
        Span<double> k3terms = maxk <= 64 ? stackalloc double[maxk] : new double[maxk];
        for (int k = maxk; k > 0; k--)
        {
            double ksquared = (double)k * k;
            double qpwer = Math.Pow(q, ksquared);
            double kspi = Math.PI * k;
            k2terms[maxk - k] = ksquared * qpwer;
            k3terms[maxk - k] = (sqrt3z + kspi) * (sqrt3z - kspi) * ksquared * qpwer;
        }

        double k2extra = NumpyArithmetic.Sum(k2terms);
        double k3extra = NumpyArithmetic.Sum(k3terms);

        k2extra *= PiSquared * Sqrt2Pi / (-36 * zthree);
        s2 += k2extra;
        k3extra *= PiSquared * Sqrt2Pi / (216 * zsix);
        s3 += k3extra;

        s1 /= Math.Pow(n, 0.5);
        s2 /= n;
        s3 /= Math.Pow(n, 1.5);
        return 0 + s0 + s1 + s2 + s3;
    }

    // A_v = C(n, v) (x + v/n)^(v-1) (1 - x - v/n)^(n-v), with the binomial carried as mantissa and exponent.
    private static DoubleDouble SmirnovTerm(int n, double x, int v, DoubleDouble cman, int cexpt)
    {
        DoubleDouble t2x = DoubleDouble.Div(n - v, n) - x;
        DoubleDouble t2 = Pow2Scaled(t2x, n - v, out int t2E);
        DoubleDouble t1x = DoubleDouble.Div(v, n) + x;
        DoubleDouble t1 = Pow2Scaled(t1x, v - 1, out int t1E);
        DoubleDouble ans = t1 * t2 * cman;
        return ans.ScaleB(cexpt + t1E + t2E);
    }

    private static void UpdateBinomial(ref DoubleDouble cman, ref int cexpt, int n, int j)
    {
        DoubleDouble rat = DoubleDouble.Div(n - j, j + 1.0);
        cman = (cman * rat).Frexp(out int expt);
        cexpt += expt;
    }

    // a^m, trading accuracy for time as cephes' pow_D does: pow of the high part, corrected for the low part.
    private static DoubleDouble PowD(DoubleDouble a, int m)
    {
        if (m <= 0)
        {
            return m == 0 ? DoubleDouble.One : DoubleDouble.One / PowD(a, -m);
        }

        if (a.IsZero)
        {
            return DoubleDouble.Zero;
        }

        double ans = Math.Pow(a.Hi, m);
        double r = a.Lo / a.Hi;
        double adj = m * r;
        if (Math.Abs(adj) > 1e-8)
        {
            adj = Math.Abs(adj) < 1e-4
                ? adj + ((m * r) * ((m - 1) / 2.0 * r))
                : NumpyArithmetic.Expm1(m * NumpyArithmetic.Log1p(r));
        }

        return DoubleDouble.Add(ans, ans * adj);
    }

    private static double NextPowerOf2(double x)
    {
        double q = Math.ScaleB(x, 1 - 53);
        double l = Math.Abs(q + x);
        if (l == 0)
        {
            l = Math.Abs(x);
        }
        else
        {
            int lint = (int)l;
            if (lint == l)
            {
                l = lint;
            }
        }

        return l;
    }

    // a^m as a mantissa and a binary exponent, so that (x + v/n)^(v-1) cannot underflow (pow2Scaled_D).
    private static DoubleDouble Pow2Scaled(DoubleDouble a, int m, out int exponent)
    {
        if (m <= 0)
        {
            if (m == 0)
            {
                exponent = 0;
                return DoubleDouble.One;
            }

            DoubleDouble inverse = Pow2Scaled(a, -m, out int aE1);
            DoubleDouble result = (DoubleDouble.One / inverse).Frexp(out int aE2);
            exponent = -aE1 + aE2;
            return result;
        }

        DoubleDouble y = a.Frexp(out int yE);
        if (m == 1)
        {
            exponent = yE;
            return y;
        }

        int maxExpt = MaxExponent;
        if (m * (y.Hi - 1) / y.Hi < -MaxExponent * Ln2)
        {
            double lg2y = Math.Log(y.Hi) / Ln2;
            double lgAns = m * lg2y;
            if (lgAns <= -MaxExponent)
            {
                maxExpt = (int)(NextPowerOf2((-MaxExponent / lg2y) + 1) / 2);
            }
        }

        DoubleDouble ans;
        int ansE;
        if (m <= maxExpt)
        {
            ans = PowD(y, m).Frexp(out ansE);
            exponent = ansE + (m * yE);
            return ans;
        }

        int quotient = m / maxExpt;
        int remainder = m % maxExpt;
        DoubleDouble y2r = Pow2Scaled(y, remainder, out int y2rE);
        DoubleDouble y2m = Pow2Scaled(y, maxExpt, out int y2mE);
        DoubleDouble y2mq = Pow2Scaled(y2m, quotient, out int y2mqE);
        ans = (y2r * y2mq).Frexp(out ansE);
        y2mqE += y2mE * quotient;
        ansE += y2mqE + y2rE;
        ansE += m * yE;
        exponent = ansE;
        return ans;
    }

    // ((a + b) / (c + d))^m (pow4_D).
    private static DoubleDouble Pow4D(double a, double b, double c, double d, int m)
    {
        if (m <= 0)
        {
            return m == 0 ? DoubleDouble.One : Pow4D(c, d, a, b, -m);
        }

        DoubleDouble numerator = DoubleDouble.Add(a, b);
        DoubleDouble denominator = DoubleDouble.Add(c, d);
        if (numerator.IsZero)
        {
            return denominator.IsZero ? new DoubleDouble(double.NaN, double.NaN) : DoubleDouble.Zero;
        }

        if (denominator.IsZero)
        {
            return numerator.Hi < 0
                ? new DoubleDouble(double.NegativeInfinity, 0)
                : new DoubleDouble(double.PositiveInfinity, 0);
        }

        return PowD(numerator / denominator, m);
    }
}
