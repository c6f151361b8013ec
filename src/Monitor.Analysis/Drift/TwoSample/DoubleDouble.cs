namespace Monitor.Analysis.Drift;

/// <summary>
/// A double-double number (hi + lo, |lo| ≤ ulp(hi)/2), the arithmetic scipy's cephes <c>smirnov</c> runs in
/// (<c>scipy/special/cephes/dd_real.h</c>, after Hida, Li and Bailey's QD library). Only what the Smirnov sum needs.
/// </summary>
internal readonly struct DoubleDouble
{
    public static readonly DoubleDouble One = new(1.0, 0.0);
    public static readonly DoubleDouble Zero = new(0.0, 0.0);

    public DoubleDouble(double hi, double lo)
    {
        Hi = hi;
        Lo = lo;
    }

    public double Hi { get; }

    public double Lo { get; }

    public bool IsZero => Hi == 0.0;

    public bool IsFinite => double.IsFinite(Hi);

    private static double TwoSum(double a, double b, out double err)
    {
        double s = a + b;
        double bb = s - a;
        err = (a - (s - bb)) + (b - bb);
        return s;
    }

    private static double QuickTwoSum(double a, double b, out double err)
    {
        double s = a + b;
        err = b - (s - a);
        return s;
    }

    private static double TwoProd(double a, double b, out double err)
    {
        double p = a * b;
        err = Math.FusedMultiplyAdd(a, b, -p);
        return p;
    }

    /// <summary>a + b exactly.</summary>
    public static DoubleDouble Add(double a, double b)
    {
        double s = TwoSum(a, b, out double e);
        return new DoubleDouble(s, e);
    }

    /// <summary>a · b exactly.</summary>
    public static DoubleDouble Mul(double a, double b)
    {
        double p = TwoProd(a, b, out double e);
        return new DoubleDouble(p, e);
    }

    /// <summary>a / b to double-double precision.</summary>
    public static DoubleDouble Div(double a, double b) => Div(new DoubleDouble(a, 0.0), new DoubleDouble(b, 0.0));

    public static DoubleDouble operator +(DoubleDouble a, DoubleDouble b)
    {
        // The IEEE-style addition (Briggs and Kahan), as dd_add.
        double s1 = TwoSum(a.Hi, b.Hi, out double s2);
        double t1 = TwoSum(a.Lo, b.Lo, out double t2);
        s2 += t1;
        s1 = QuickTwoSum(s1, s2, out s2);
        s2 += t2;
        s1 = QuickTwoSum(s1, s2, out s2);
        return new DoubleDouble(s1, s2);
    }

    public static DoubleDouble operator -(DoubleDouble a) => new(-a.Hi, -a.Lo);

    public static DoubleDouble operator -(DoubleDouble a, DoubleDouble b) => a + -b;

    public static DoubleDouble operator +(DoubleDouble a, double b)
    {
        double s1 = TwoSum(a.Hi, b, out double s2);
        s2 += a.Lo;
        s1 = QuickTwoSum(s1, s2, out s2);
        return new DoubleDouble(s1, s2);
    }

    public static DoubleDouble operator -(DoubleDouble a, double b) => a + -b;

    public static DoubleDouble operator *(DoubleDouble a, DoubleDouble b)
    {
        double p1 = TwoProd(a.Hi, b.Hi, out double p2);
        p2 += (a.Hi * b.Lo) + (a.Lo * b.Hi);
        p1 = QuickTwoSum(p1, p2, out p2);
        return new DoubleDouble(p1, p2);
    }

    public static DoubleDouble operator *(DoubleDouble a, double b)
    {
        double p1 = TwoProd(a.Hi, b, out double e1);
        double p2 = TwoProd(a.Lo, b, out double e2);
        p1 = QuickTwoSum(p1, e2 + p2 + e1, out e1);
        return new DoubleDouble(p1, e1);
    }

    public static DoubleDouble operator /(DoubleDouble a, DoubleDouble b) => Div(a, b);

    public static DoubleDouble operator /(DoubleDouble a, double b) => Div(a, new DoubleDouble(b, 0.0));

    private static DoubleDouble Div(DoubleDouble a, DoubleDouble b)
    {
        // The accurate division: three quotient digits, as dd_accurate_div.
        double q1 = a.Hi / b.Hi;
        DoubleDouble r = a - (b * q1);
        double q2 = r.Hi / b.Hi;
        r -= b * q2;
        double q3 = r.Hi / b.Hi;
        q1 = QuickTwoSum(q1, q2, out q2);
        return new DoubleDouble(q1, q2) + q3;
    }

    /// <summary>Floor, as dd_floor.</summary>
    public DoubleDouble Floor()
    {
        double hi = Math.Floor(Hi);
        double lo = 0.0;
        if (hi == Hi)
        {
            lo = Math.Floor(Lo);
            hi = QuickTwoSum(hi, lo, out lo);
        }

        return new DoubleDouble(hi, lo);
    }

    /// <summary>this · 2^exponent, as dd_ldexp.</summary>
    public DoubleDouble ScaleB(int exponent) => new(Math.ScaleB(Hi, exponent), Math.ScaleB(Lo, exponent));

    /// <summary>Mantissa and exponent with 0.5 ≤ |hi| &lt; 1 (or |hi| = 1 with lo of opposite sign), as dd_frexp.</summary>
    public DoubleDouble Frexp(out int exponent)
    {
        double man = NumpyArithmetic.Frexp(Hi, out exponent);
        double b1 = Math.ScaleB(Lo, -exponent);
        if (Math.Abs(man) == 0.5 && man * b1 < 0)
        {
            man *= 2;
            b1 *= 2;
            exponent -= 1;
        }

        return new DoubleDouble(man, b1);
    }
}
