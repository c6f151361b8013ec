using System.Numerics;
using System.Runtime.InteropServices;

namespace Monitor.Analysis.Drift;

/// <summary>The reconstruction error of one chunk and whether it is outside the reference band.</summary>
/// <param name="Error">The mean Euclidean distance between the chunk's scaled rows and their PCA reconstruction.</param>
/// <param name="IsAlert">Whether <paramref name="Error"/> is outside (lower, upper): NannyML's
/// <c>not (lower &lt; value &lt; upper)</c>, with no lower bound when it was dropped.</param>
public readonly record struct PcaReconstructionResult(double Error, bool IsAlert);

/// <summary>
/// NannyML's multivariate drift by PCA reconstruction error (<c>DataReconstructionDriftCalculator</c>,
/// <c>nannyml/drift/multivariate/data_reconstruction/calculator.py</c>), for continuous features: fitted once on a
/// reference (rows × d, row-major), then evaluating current chunks.
/// </summary>
/// <remarks>
/// <para>Fit, as NannyML's <c>_fit</c>: missing values (NaN) are replaced by the reference column mean (sklearn
/// <c>SimpleImputer(strategy="mean")</c>); columns are standardised with the reference mean and population standard
/// deviation (sklearn <c>StandardScaler</c>; a constant column, by sklearn's <c>_is_constant_feature</c> test, keeps
/// scale 1); a PCA (sklearn <c>PCA(n_components=0.65)</c>) keeps the smallest number k of components whose cumulative
/// explained variance ratio exceeds 0.65 (sklearn: <c>searchsorted(cumsum, 0.65, side="right") + 1</c>). The
/// components come from our own eigendecomposition of the covariance of the scaled reference (Householder + implicit
/// QL), the same subspace sklearn's SVD finds.</para>
/// <para>Error of a chunk: each row is imputed and scaled the same way, centred on the PCA mean, projected on the k
/// components and back; the error is the mean over rows of the Euclidean norm of the difference (NannyML's
/// <c>_calculate_dre_results</c>). The residual is computed from whichever side of the split is smaller (the kept
/// components, or the discarded ones whose projection norm equals the residual norm).</para>
/// <para>Alert band, as NannyML's default <c>StandardDeviationThreshold</c>: the reference is cut into chunks as its
/// <c>DefaultChunker</c> does (size ⌊n / 10⌋, a remainder kept as one more chunk), the error of each reference chunk
/// is computed, and the band is mean ± 3 · std with the population std (<c>np.nanstd</c>, ddof = 0). A lower bound at
/// or below 0 is dropped (NannyML's <c>lower_threshold_value_limit=0</c> with <c>override_using_none</c>), so
/// <see cref="LowerThreshold"/> is then null.</para>
/// <para>Differences: categorical columns (NannyML count-encodes them and imputes the most frequent value) are not
/// handled here; give numbers. ±∞ is refused, as sklearn refuses it. The instance is immutable after construction
/// and thread-safe; evaluation takes scratch from the caller's workspace (doubles slots 0-1) and allocates nothing
/// once it has grown.</para>
/// </remarks>
public sealed class PcaReconstructionDrift
{
    /// <summary>NannyML's default share of explained variance to keep, 0.65.</summary>
    public const double DefaultVarianceToKeep = 0.65;

    /// <summary>NannyML's default number of reference chunks, 10.</summary>
    public const int DefaultReferenceChunks = 10;

    /// <summary>NannyML's default width of the band in standard deviations, 3.</summary>
    public const double DefaultStandardDeviations = 3;

    // numpy's finfo(float64).eps.
    private const double MachineEpsilon = 2.220446049250313e-16;

    private readonly double[] _imputeMeans;
    private readonly double[] _scaleMeans;
    private readonly double[] _scales;
    private readonly double[] _pcaMean;

    // Rows of the basis the residual is computed from: the kept components (when k ≤ d - k) or the discarded ones.
    private readonly double[] _basis;
    private readonly int _basisRows;
    private readonly bool _basisIsDiscarded;
    private readonly double[] _referenceChunkErrors;

    /// <summary>Fits the imputer, scaler and PCA on the reference and computes the alert band from its chunks.</summary>
    /// <param name="reference">Reference rows, row-major (rows × <paramref name="dimension"/>); NaN marks a missing value.</param>
    /// <param name="dimension">Features per row (at least 1).</param>
    /// <param name="varianceToKeep">Share of explained variance to keep, in (0, 1); 0.65 by default.</param>
    /// <param name="referenceChunks">Chunks the reference is cut into for the band; 10 by default.</param>
    /// <param name="standardDeviations">Half-width of the band in standard deviations; 3 by default.</param>
    /// <exception cref="ArgumentException">Fewer rows than chunks (or than 2), a length that is not a multiple of the
    /// dimension, ±∞, a column without any value, or a reference without variance.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A parameter outside its range.</exception>
    public PcaReconstructionDrift(
        ReadOnlySpan<double> reference,
        int dimension,
        double varianceToKeep = DefaultVarianceToKeep,
        int referenceChunks = DefaultReferenceChunks,
        double standardDeviations = DefaultStandardDeviations)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(dimension);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(referenceChunks);
        if (!(varianceToKeep > 0 && varianceToKeep < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(varianceToKeep), varianceToKeep, "The share of variance to keep must lie in (0, 1).");
        }

        if (!(standardDeviations >= 0) || !double.IsFinite(standardDeviations))
        {
            throw new ArgumentOutOfRangeException(nameof(standardDeviations), standardDeviations, "The band width must be finite and not negative.");
        }

        if (reference.Length % dimension != 0)
        {
            throw new ArgumentException($"The reference length is not a multiple of the dimension {dimension}.", nameof(reference));
        }

        int n = reference.Length / dimension;
        if (n < Math.Max(2, referenceChunks))
        {
            throw new ArgumentException($"The reference needs at least {Math.Max(2, referenceChunks)} rows (it has {n}).", nameof(reference));
        }

        int d = dimension;
        Dimension = d;
        ReferenceRows = n;
        _imputeMeans = ColumnMeans(reference, n, d);

        // Imputed copy, then the scaler's mean and population variance (two passes).
        double[] data = reference.ToArray();
        Impute(data, _imputeMeans);
        _scaleMeans = new double[d];
        _scales = new double[d];
        for (int c = 0; c < d; c++)
        {
            double sum = 0;
            for (int r = 0; r < n; r++)
            {
                sum += data[r * d + c];
            }

            double mean = sum / n;
            double squares = 0;
            for (int r = 0; r < n; r++)
            {
                double deviation = data[r * d + c] - mean;
                squares += deviation * deviation;
            }

            double variance = squares / n;

            // sklearn's _is_constant_feature: the variance is within rounding of 0.
            double upperBound = n * MachineEpsilon * variance + Math.Pow(n * mean * MachineEpsilon, 2);
            _scaleMeans[c] = mean;
            _scales[c] = variance <= upperBound ? 1 : Math.Sqrt(variance);
        }

        for (int r = 0; r < n; r++)
        {
            for (int c = 0; c < d; c++)
            {
                data[r * d + c] = (data[r * d + c] - _scaleMeans[c]) / _scales[c];
            }
        }

        // PCA on the scaled data: its own mean, the covariance, and the eigendecomposition.
        _pcaMean = new double[d];
        for (int r = 0; r < n; r++)
        {
            for (int c = 0; c < d; c++)
            {
                _pcaMean[c] += data[r * d + c];
            }
        }

        for (int c = 0; c < d; c++)
        {
            _pcaMean[c] /= n;
        }

        double[] covariance = new double[d * d];
        double[] centred = new double[d];
        for (int r = 0; r < n; r++)
        {
            for (int c = 0; c < d; c++)
            {
                centred[c] = data[r * d + c] - _pcaMean[c];
            }

            for (int i = 0; i < d; i++)
            {
                double ci = centred[i];
                for (int j = i; j < d; j++)
                {
                    covariance[i * d + j] += ci * centred[j];
                }
            }
        }

        for (int i = 0; i < d; i++)
        {
            for (int j = i; j < d; j++)
            {
                covariance[i * d + j] /= n - 1;
                covariance[j * d + i] = covariance[i * d + j];
            }
        }

        double[] eigenvalues = new double[d];
        double[] eigenvectors = new double[d * d];
        SymmetricEigen.Decompose(covariance, d, eigenvalues, eigenvectors);
        double totalVariance = 0;
        for (int i = 0; i < d; i++)
        {
            eigenvalues[i] = Math.Max(eigenvalues[i], 0);
            totalVariance += eigenvalues[i];
        }

        if (!(totalVariance > 0))
        {
            throw new ArgumentException("The reference has no variance.", nameof(reference));
        }

        double[] ratios = new double[d];
        int kept = 0;
        double cumulative = 0;
        for (int i = 0; i < d; i++)
        {
            ratios[i] = eigenvalues[i] / totalVariance;
            cumulative += ratios[i];
            if (cumulative <= varianceToKeep)
            {
                kept++;
            }
        }

        kept = Math.Min(kept + 1, d);
        Components = kept;
        ExplainedVarianceRatios = Array.AsReadOnly(ratios);
        KeptVarianceRatio = 0;
        for (int i = 0; i < kept; i++)
        {
            KeptVarianceRatio += ratios[i];
        }

        _basisIsDiscarded = d - kept < kept;
        int basisStart = _basisIsDiscarded ? kept : 0;
        _basisRows = _basisIsDiscarded ? d - kept : kept;
        _basis = new double[_basisRows * d];
        for (int b = 0; b < _basisRows; b++)
        {
            for (int c = 0; c < d; c++)
            {
                _basis[b * d + c] = eigenvectors[c * d + basisStart + b];
            }
        }

        // The band from the reference's own chunks (NannyML's DefaultChunker: size n / chunks, remainder kept).
        int chunkSize = n / referenceChunks;
        int chunkCount = n / chunkSize + (n % chunkSize == 0 ? 0 : 1);
        _referenceChunkErrors = new double[chunkCount];
        var workspace = new DriftWorkspace();
        for (int chunk = 0; chunk < chunkCount; chunk++)
        {
            int start = chunk * chunkSize;
            int rows = Math.Min(chunkSize, n - start);
            _referenceChunkErrors[chunk] = ReconstructionError(reference.Slice(start * d, rows * d), workspace);
        }

        double errorSum = 0;
        foreach (double error in _referenceChunkErrors)
        {
            errorSum += error;
        }

        ReferenceChunkErrors = Array.AsReadOnly(_referenceChunkErrors);
        ReferenceMean = errorSum / chunkCount;
        double errorSquares = 0;
        foreach (double error in _referenceChunkErrors)
        {
            errorSquares += (error - ReferenceMean) * (error - ReferenceMean);
        }

        ReferenceStandardDeviation = Math.Sqrt(errorSquares / chunkCount);
        double lower = ReferenceMean - ReferenceStandardDeviation * standardDeviations;
        LowerThreshold = lower <= 0 ? null : lower;
        UpperThreshold = ReferenceMean + ReferenceStandardDeviation * standardDeviations;
    }

    /// <summary>Features per row.</summary>
    public int Dimension { get; }

    /// <summary>Rows of the reference.</summary>
    public int ReferenceRows { get; }

    /// <summary>The number of principal components kept.</summary>
    public int Components { get; }

    /// <summary>Explained variance ratio of every component, descending (sklearn's <c>explained_variance_ratio_</c>
    /// before truncation).</summary>
    public IReadOnlyList<double> ExplainedVarianceRatios { get; }

    /// <summary>The share of variance the kept components explain (more than the requested share).</summary>
    public double KeptVarianceRatio { get; }

    /// <summary>The reconstruction error of each reference chunk, in order.</summary>
    public IReadOnlyList<double> ReferenceChunkErrors { get; }

    /// <summary>The mean of <see cref="ReferenceChunkErrors"/>.</summary>
    public double ReferenceMean { get; }

    /// <summary>The population standard deviation (ddof = 0) of <see cref="ReferenceChunkErrors"/>.</summary>
    public double ReferenceStandardDeviation { get; }

    /// <summary>mean - 3 std of the reference chunk errors, or null when that is at most 0 (no lower bound).</summary>
    public double? LowerThreshold { get; }

    /// <summary>mean + 3 std of the reference chunk errors.</summary>
    public double UpperThreshold { get; }

    /// <summary>The mean reconstruction error of a chunk.</summary>
    /// <param name="chunk">Rows, row-major (rows × <see cref="Dimension"/>, at least one row); NaN is imputed.</param>
    /// <param name="workspace">Scratch memory (doubles slots 0-1), one per thread.</param>
    /// <exception cref="ArgumentException">No rows, a length that is not a multiple of the dimension, or ±∞.</exception>
    public double ReconstructionError(ReadOnlySpan<double> chunk, DriftWorkspace workspace)
    {
        ArgumentNullException.ThrowIfNull(workspace);
        int d = Dimension;
        if (chunk.IsEmpty || chunk.Length % d != 0)
        {
            throw new ArgumentException($"The chunk must hold at least one row of {d} values.", nameof(chunk));
        }

        int rows = chunk.Length / d;
        Span<double> y = workspace.Doubles(0, d);
        Span<double> projection = workspace.Doubles(1, _basisRows);
        double total = 0;
        for (int r = 0; r < rows; r++)
        {
            ReadOnlySpan<double> row = chunk.Slice(r * d, d);
            for (int c = 0; c < d; c++)
            {
                double value = row[c];
                if (double.IsNaN(value))
                {
                    value = _imputeMeans[c];
                }
                else if (double.IsInfinity(value))
                {
                    throw new ArgumentException("The chunk contains an infinite value.", nameof(chunk));
                }

                y[c] = (value - _scaleMeans[c]) / _scales[c] - _pcaMean[c];
            }

            for (int b = 0; b < _basisRows; b++)
            {
                projection[b] = Dot(_basis.AsSpan(b * d, d), y);
            }

            double squares = 0;
            if (_basisIsDiscarded)
            {
                // The residual lies in the span of the discarded components, so its norm is that of this projection.
                for (int b = 0; b < _basisRows; b++)
                {
                    squares += projection[b] * projection[b];
                }
            }
            else
            {
                for (int b = 0; b < _basisRows; b++)
                {
                    Axpy(-projection[b], _basis.AsSpan(b * d, d), y);
                }

                squares = Dot(y, y);
            }

            total += Math.Sqrt(squares);
        }

        return total / rows;
    }

    /// <summary>The chunk's reconstruction error and whether it is outside the reference band.</summary>
    /// <param name="chunk">Rows, row-major (rows × <see cref="Dimension"/>, at least one row); NaN is imputed.</param>
    /// <param name="workspace">Scratch memory (doubles slots 0-1), one per thread.</param>
    /// <exception cref="ArgumentException">No rows, a length that is not a multiple of the dimension, or ±∞.</exception>
    public PcaReconstructionResult Evaluate(ReadOnlySpan<double> chunk, DriftWorkspace workspace)
    {
        double error = ReconstructionError(chunk, workspace);
        double lower = LowerThreshold ?? double.NegativeInfinity;
        return new PcaReconstructionResult(error, !(lower < error && error < UpperThreshold));
    }

    private static double[] ColumnMeans(ReadOnlySpan<double> reference, int n, int d)
    {
        double[] sums = new double[d];
        int[] counts = new int[d];
        for (int r = 0; r < n; r++)
        {
            for (int c = 0; c < d; c++)
            {
                double value = reference[r * d + c];
                if (double.IsInfinity(value))
                {
                    throw new ArgumentException("The reference contains an infinite value.", nameof(reference));
                }

                if (!double.IsNaN(value))
                {
                    sums[c] += value;
                    counts[c]++;
                }
            }
        }

        for (int c = 0; c < d; c++)
        {
            if (counts[c] == 0)
            {
                throw new ArgumentException($"Reference column {c} has no value.", nameof(reference));
            }

            sums[c] /= counts[c];
        }

        return sums;
    }

    private static void Impute(Span<double> data, double[] means)
    {
        int d = means.Length;
        for (int i = 0; i < data.Length; i++)
        {
            if (double.IsNaN(data[i]))
            {
                data[i] = means[i % d];
            }
        }
    }

    private static double Dot(ReadOnlySpan<double> a, ReadOnlySpan<double> b)
    {
        int width = Vector<double>.Count;
        ReadOnlySpan<Vector<double>> va = MemoryMarshal.Cast<double, Vector<double>>(a);
        ReadOnlySpan<Vector<double>> vb = MemoryMarshal.Cast<double, Vector<double>>(b[..a.Length]);
        Vector<double> sum = Vector<double>.Zero;
        for (int v = 0; v < va.Length; v++)
        {
            sum = Vector.FusedMultiplyAdd(va[v], vb[v], sum);
        }

        double result = Vector.Sum(sum);
        for (int i = va.Length * width; i < a.Length; i++)
        {
            result += a[i] * b[i];
        }

        return result;
    }

    // y += alpha · x.
    private static void Axpy(double alpha, ReadOnlySpan<double> x, Span<double> y)
    {
        int width = Vector<double>.Count;
        ReadOnlySpan<Vector<double>> vx = MemoryMarshal.Cast<double, Vector<double>>(x);
        Span<Vector<double>> vy = MemoryMarshal.Cast<double, Vector<double>>(y[..x.Length]);
        var scale = new Vector<double>(alpha);
        for (int v = 0; v < vx.Length; v++)
        {
            vy[v] = Vector.FusedMultiplyAdd(scale, vx[v], vy[v]);
        }

        for (int i = vx.Length * width; i < x.Length; i++)
        {
            y[i] += alpha * x[i];
        }
    }
}
