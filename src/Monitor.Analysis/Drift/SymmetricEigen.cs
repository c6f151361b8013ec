namespace Monitor.Analysis.Drift;

/// <summary>
/// Eigendecomposition of a real symmetric matrix: Householder reduction to tridiagonal form, then the implicit QL
/// algorithm with Wilkinson-style shifts (Golub and Van Loan, "Matrix Computations", 8.3; the EISPACK tred2/tql2
/// scheme). O(d³) time and O(d²) memory, meant for a one-time fit with d up to a few hundred.
/// </summary>
internal static class SymmetricEigen
{
    private const int MaxIterationsPerEigenvalue = 60;

    /// <summary>
    /// Decomposes the symmetric <paramref name="matrix"/> (d × d, row-major; only read) into eigenvalues sorted
    /// descending and orthonormal eigenvectors: column c of <paramref name="eigenvectors"/> (d × d, row-major) belongs to
    /// <paramref name="eigenvalues"/>[c].
    /// </summary>
    /// <exception cref="ArithmeticException">The QL iteration did not converge (non-finite input).</exception>
    public static void Decompose(ReadOnlySpan<double> matrix, int d, Span<double> eigenvalues, Span<double> eigenvectors)
    {
        Span<double> z = eigenvectors[..(d * d)];
        matrix[..(d * d)].CopyTo(z);
        double[] offDiagonal = new double[d];
        Tridiagonalize(z, d, eigenvalues, offDiagonal);
        QlImplicit(eigenvalues, offDiagonal, z, d);
        SortDescending(eigenvalues, z, d);
    }

    // Reduces a (overwritten by the accumulated orthogonal Q) to tridiagonal T = Qᵀ A Q with diagonal `diagonal` and
    // sub-diagonal offDiagonal[i] = T[i + 1, i] (offDiagonal[d - 1] = 0).
    private static void Tridiagonalize(Span<double> a, int d, Span<double> diagonal, Span<double> offDiagonal)
    {
        double[] q = new double[d * d];
        for (int i = 0; i < d; i++)
        {
            q[i * d + i] = 1;
        }

        double[] v = new double[d];
        double[] p = new double[d];
        for (int k = 0; k < d - 2; k++)
        {
            // Householder vector v (unit) with (I - 2vvᵀ) x = alpha e1 for x = a[k+1.., k].
            double norm = 0;
            for (int i = k + 1; i < d; i++)
            {
                norm += a[i * d + k] * a[i * d + k];
            }

            norm = Math.Sqrt(norm);
            double x0 = a[(k + 1) * d + k];
            if (norm == 0)
            {
                continue;
            }

            double alpha = x0 > 0 ? -norm : norm;
            double vNorm = 0;
            for (int i = k + 1; i < d; i++)
            {
                v[i] = a[i * d + k];
            }

            v[k + 1] -= alpha;
            for (int i = k + 1; i < d; i++)
            {
                vNorm += v[i] * v[i];
            }

            vNorm = Math.Sqrt(vNorm);
            if (vNorm == 0)
            {
                continue;
            }

            for (int i = k + 1; i < d; i++)
            {
                v[i] /= vNorm;
            }

            // A22 <- H A22 H with H = I - 2vvᵀ: p = A22 v, w = p - (vᵀp) v, A22 -= 2 (v wᵀ + w vᵀ).
            double vp = 0;
            for (int i = k + 1; i < d; i++)
            {
                double sum = 0;
                for (int j = k + 1; j < d; j++)
                {
                    sum += a[i * d + j] * v[j];
                }

                p[i] = sum;
                vp += v[i] * sum;
            }

            for (int i = k + 1; i < d; i++)
            {
                p[i] -= vp * v[i];
            }

            for (int i = k + 1; i < d; i++)
            {
                for (int j = k + 1; j < d; j++)
                {
                    a[i * d + j] -= 2 * (v[i] * p[j] + p[i] * v[j]);
                }
            }

            a[(k + 1) * d + k] = alpha;
            a[k * d + k + 1] = alpha;
            for (int i = k + 2; i < d; i++)
            {
                a[i * d + k] = 0;
                a[k * d + i] = 0;
            }

            // Q <- Q H.
            for (int i = 0; i < d; i++)
            {
                double sum = 0;
                for (int j = k + 1; j < d; j++)
                {
                    sum += q[i * d + j] * v[j];
                }

                sum *= 2;
                for (int j = k + 1; j < d; j++)
                {
                    q[i * d + j] -= sum * v[j];
                }
            }
        }

        for (int i = 0; i < d; i++)
        {
            diagonal[i] = a[i * d + i];
            offDiagonal[i] = i + 1 < d ? a[(i + 1) * d + i] : 0;
        }

        q.AsSpan().CopyTo(a);
    }

    // Implicit QL on the tridiagonal (diagonal, offDiagonal); rotations are accumulated into the columns of z.
    private static void QlImplicit(Span<double> diagonal, Span<double> offDiagonal, Span<double> z, int d)
    {
        for (int l = 0; l < d; l++)
        {
            int iterations = 0;
            while (true)
            {
                // Find the first negligible off-diagonal element at or after l.
                int m = l;
                for (; m < d - 1; m++)
                {
                    double scale = Math.Abs(diagonal[m]) + Math.Abs(diagonal[m + 1]);
                    if (Math.Abs(offDiagonal[m]) <= double.Epsilon || Math.Abs(offDiagonal[m]) <= 2.220446049250313e-16 * scale)
                    {
                        break;
                    }
                }

                if (m == l)
                {
                    break;
                }

                if (++iterations > MaxIterationsPerEigenvalue)
                {
                    throw new ArithmeticException("The symmetric eigenvalue iteration did not converge.");
                }

                // Shift from the leading 2 × 2 block's eigenvalue closer to diagonal[l].
                double g = (diagonal[l + 1] - diagonal[l]) / (2 * offDiagonal[l]);
                double r = Hypot(g, 1);
                g = diagonal[m] - diagonal[l] + offDiagonal[l] / (g + (g >= 0 ? r : -r));
                double s = 1;
                double c = 1;
                double p = 0;
                bool underflow = false;
                for (int i = m - 1; i >= l; i--)
                {
                    double f = s * offDiagonal[i];
                    double b = c * offDiagonal[i];
                    r = Hypot(f, g);
                    offDiagonal[i + 1] = r;
                    if (r == 0)
                    {
                        diagonal[i + 1] -= p;
                        offDiagonal[m] = 0;
                        underflow = true;
                        break;
                    }

                    s = f / r;
                    c = g / r;
                    g = diagonal[i + 1] - p;
                    r = (diagonal[i] - g) * s + 2 * c * b;
                    p = s * r;
                    diagonal[i + 1] = g + p;
                    g = c * r - b;
                    for (int k = 0; k < d; k++)
                    {
                        double zi1 = z[k * d + i + 1];
                        double zi = z[k * d + i];
                        z[k * d + i + 1] = s * zi + c * zi1;
                        z[k * d + i] = c * zi - s * zi1;
                    }
                }

                if (underflow)
                {
                    continue;
                }

                diagonal[l] -= p;
                offDiagonal[l] = g;
                offDiagonal[m] = 0;
            }
        }
    }

    private static void SortDescending(Span<double> values, Span<double> vectors, int d)
    {
        // Selection sort: d is small and each swap moves a whole column.
        for (int i = 0; i < d - 1; i++)
        {
            int best = i;
            for (int j = i + 1; j < d; j++)
            {
                if (values[j] > values[best])
                {
                    best = j;
                }
            }

            if (best == i)
            {
                continue;
            }

            (values[i], values[best]) = (values[best], values[i]);
            for (int k = 0; k < d; k++)
            {
                (vectors[k * d + i], vectors[k * d + best]) = (vectors[k * d + best], vectors[k * d + i]);
            }
        }
    }

    private static double Hypot(double x, double y)
    {
        double ax = Math.Abs(x);
        double ay = Math.Abs(y);
        double big = Math.Max(ax, ay);
        if (big == 0)
        {
            return 0;
        }

        double small = Math.Min(ax, ay) / big;
        return big * Math.Sqrt(1 + small * small);
    }
}
