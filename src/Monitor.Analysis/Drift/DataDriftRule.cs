using System.Globalization;
using Monitor.Analysis.Rules;
using Monitor.Analysis.State;
using Monitor.Contracts;
using Monitor.Contracts.V1;

namespace Monitor.Analysis.Drift;

/// <summary>Where a drift monitor's reference window comes from.</summary>
public enum DriftReferenceKind
{
    /// <summary>The first <see cref="DataDriftRule.ReferenceSteps"/> traced steps of the run (kept for the run's life).</summary>
    First,

    /// <summary>The <see cref="DataDriftRule.ReferenceSteps"/> steps just before the current window (it moves with it).</summary>
    Sliding,

    /// <summary>A stored reference (<see cref="DataDriftRule.StoredReference"/>, the rule file's <c>referenceFile</c>).</summary>
    Stored,
}

/// <summary>A test over all monitored features at once, beside (or instead of) the per-feature tests.</summary>
public enum MultivariateDrift
{
    /// <summary>No multivariate test.</summary>
    None,

    /// <summary>alibi-detect's MMD drift on the feature vectors (<see cref="MaximumMeanDiscrepancyTest"/>): RBF kernel, median heuristic, permutation p-value.</summary>
    Mmd,

    /// <summary>NannyML's PCA reconstruction error (<see cref="PcaReconstructionDrift"/>): alert outside mean ± 3 std of the reference chunks' errors.</summary>
    Pca,
}

/// <summary>
/// Data drift (Evidently's column drift, alibi-detect's feature-wise tests): compares, per feature, the values of a
/// batch tensor (inputs, predictions, labels; raw examples recorded with <c>RecordBatch</c>) in a reference window with
/// those of the last <see cref="WindowSteps"/> steps, with a two-sample test, and reports one alert series per feature
/// (label <c>feature</c>), plus the statistic and p-value for <c>/metrics</c>.
/// </summary>
/// <remarks>
/// <para><b>Windows.</b> Per run, rank and tensor. The reference is the first <see cref="ReferenceSteps"/> steps
/// (<see cref="DriftReferenceKind.First"/>, the default), the same number of steps just before the current window
/// (<see cref="DriftReferenceKind.Sliding"/>), or a stored table (<see cref="DriftReferenceKind.Stored"/>). The current
/// window is the last <see cref="WindowSteps"/> steps; it is tested every <see cref="EverySteps"/> steps (default: the
/// window's length, so windows do not overlap). Of each record at most <see cref="RowsPerStep"/> examples are kept, evenly
/// spaced over those it carries. NaN and infinite values are dropped before testing, as Evidently does.</para>
/// <para><b>Columns.</b> The columns of a tensor <c>[examples, ...]</c> are the product of the dimensions after the
/// first, named by the record's <c>feature_names</c>, else by their index (<c>0</c>, <c>1</c>, ...); a one-column tensor's
/// feature is the tensor's name (e.g. <c>predictions</c>).</para>
/// <para><b>Tests.</b> <see cref="Test"/> names a test of <see cref="DriftTestCatalog"/> or <c>auto</c>, Evidently's choice per
/// feature (by reference size, feature kind and distinct values; see <see cref="DriftTestCatalog.ChooseDefault"/>).
/// <see cref="Correction"/> applies to tests with p-values (alibi-detect's <c>correction</c>).</para>
/// <para><b>Cost.</b> Keeping a record's examples copies <c>RowsPerStep × features</c> floats; a test runs per feature once
/// per <see cref="EverySteps"/> steps over <c>ReferenceSteps × RowsPerStep</c> and <c>WindowSteps × RowsPerStep</c> values.
/// Memory per series: <c>(ReferenceSteps + WindowSteps) × RowsPerStep × features</c> floats, and once a first-steps
/// reference is frozen, 12 bytes per reference value (the sorted values and KS's rank table, <see cref="SortedReference"/>).</para>
/// </remarks>
public sealed class DataDriftRule : ITrainingRule, IValidatedRule, IStatefulRule
{
    private static readonly TensorRequirement[] Needs =
    [
        new(CollectionNames.Inputs, Raw: true, "sampled examples of the inputs (RecordBatch), compared per feature between windows"),
    ];

    /// <summary>The <see cref="Test"/> that runs no per-feature test.</summary>
    public const string NoTest = "none";

    /// <summary>The feature a multivariate result is reported as.</summary>
    public const string AllFeatures = "*";

    private const string NoDrift = "no drift";

    private readonly SeriesTable<SeriesState> _series = new();
    private readonly DriftWorkspace _workspace = new();
    private double[] _reference = [];
    private double[] _current = [];
    private int[] _currentCounts = [];
    private int[] _referenceCounts = [];
    private TwoSampleResult[] _results = [];
    private IUnivariateDriftTest?[] _chosen = [];

    /// <inheritdoc />
    public string Name { get; init; } = "DataDrift";

    /// <summary>The batch tensors watched. Default: the <c>inputs</c> collection.</summary>
    public TensorSelector Selector { get; init; } = TensorSelector.Of(Collection.Inputs);

    /// <summary>The features to test, by name (or column index for unnamed columns). Default empty: every column.</summary>
    public IReadOnlyList<string> Features { get; init; } = [];

    /// <summary>Features whose values are category codes (tested as labels; see <see cref="FeatureKind"/>). Default none.</summary>
    public IReadOnlyList<string> Categorical { get; init; } = [];

    /// <summary>
    /// The test, as the CLI names it (<c>ks</c>, <c>psi</c>, <c>wasserstein-norm</c>, ...), <c>auto</c> for Evidently's
    /// choice per feature, or <c>none</c> for no per-feature test (only <see cref="Multivariate"/>). Default <c>auto</c>.
    /// </summary>
    /// <exception cref="ArgumentException">Not a known test.</exception>
    public string Test
    {
        get;
        init => field = value is DriftTestCatalog.Auto or NoTest || DriftTestCatalog.TryGet(value, out _)
            ? value
            : throw new ArgumentException($"unknown drift test '{value}'; use {DriftTestCatalog.Auto}, {NoTest} or one of: {string.Join(", ", DriftTestCatalog.Names)}", nameof(Test));
    } = DriftTestCatalog.Auto;

    /// <summary>
    /// A test of all monitored features together, reported as the feature <c>*</c>: <c>mmd</c> (alibi-detect's MMD on
    /// the feature vectors, drift when its permutation p-value is below <see cref="MultivariateThreshold"/>) or <c>pca</c>
    /// (NannyML's PCA reconstruction error, drift outside the reference band), for many features or a layer's
    /// activations. Rows with a non-finite value are left out; at most <see cref="MaxMultivariateRows"/> rows a side
    /// are used (evenly spaced). Default none.
    /// </summary>
    public MultivariateDrift Multivariate { get; init; }

    /// <summary>The p-value below which <c>mmd</c> signals (alibi-detect's <c>p_val</c>). Default 0.05.</summary>
    public double MultivariateThreshold
    {
        get;
        init => field = value is > 0 and < 1 ? value : throw new ArgumentOutOfRangeException(nameof(MultivariateThreshold), value, "MultivariateThreshold must be in (0, 1)");
    } = MaximumMeanDiscrepancyTest.DefaultPValueThreshold;

    /// <summary>Rows a side the multivariate test uses at most (MMD's kernel grows with their square). Default 500.</summary>
    public int MaxMultivariateRows
    {
        get;
        init => field = value is >= 20 and <= 20_000 ? value : throw new ArgumentOutOfRangeException(nameof(MaxMultivariateRows), value, "MaxMultivariateRows must be between 20 and 20000");
    } = 500;

    /// <summary>The threshold: a p-value for hypothesis tests, a distance for the others. Default null: the test's own default.</summary>
    public double? Threshold
    {
        get;
        init => field = value is null || (double.IsFinite(value.Value) && value > 0)
            ? value
            : throw new ArgumentOutOfRangeException(nameof(Threshold), value, "Threshold must be a positive number");
    }

    /// <summary>
    /// Traced steps of each series that are not looked at, before the reference begins: while a model is young its
    /// predictions change with every step, which is learning, not drift. Default 0.
    /// </summary>
    public int WarmupSteps
    {
        get;
        init => field = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(WarmupSteps), value, "WarmupSteps must not be negative");
    }

    /// <summary>Where the reference comes from. Default <see cref="DriftReferenceKind.First"/>.</summary>
    public DriftReferenceKind Reference { get; init; } = DriftReferenceKind.First;

    /// <summary>Steps in the reference window (not used with a stored reference). Default 50.</summary>
    public int ReferenceSteps
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(ReferenceSteps), value, "ReferenceSteps must be at least 1");
    } = 50;

    /// <summary>Steps in the current window. Default 50.</summary>
    public int WindowSteps
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(WindowSteps), value, "WindowSteps must be at least 1");
    } = 50;

    /// <summary>Steps between two tests. Default null: <see cref="WindowSteps"/> (windows that do not overlap).</summary>
    public int? EverySteps
    {
        get;
        init => field = value is null or >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(EverySteps), value, "EverySteps must be at least 1");
    }

    /// <summary>Examples kept of each record (evenly spaced over those it carries). Default 32.</summary>
    public int RowsPerStep
    {
        get;
        init => field = value is >= 1 and <= 100_000 ? value : throw new ArgumentOutOfRangeException(nameof(RowsPerStep), value, "RowsPerStep must be between 1 and 100000");
    } = 32;

    /// <summary>Multiple-testing correction over the features' p-values (alibi-detect's). Default none.</summary>
    public DriftCorrection Correction { get; init; } = DriftCorrection.None;

    /// <summary>
    /// The mode whose records are watched. Default <see cref="Mode.Train"/> (records without a mode count as training);
    /// <see cref="Mode.Unspecified"/> watches every record.
    /// </summary>
    public Mode Mode { get; init; } = Mode.Train;

    /// <summary>
    /// Path of a CSV file (header row, one column per feature) to use as the reference; the host loads it into
    /// <see cref="StoredReference"/> (the engine does no I/O). Default none.
    /// </summary>
    public string? ReferenceFile { get; init; }

    /// <summary>The stored reference (see <see cref="ReferenceFile"/>); required when <see cref="Reference"/> is
    /// <see cref="DriftReferenceKind.Stored"/>, and setting it makes the reference stored.</summary>
    public DriftReferenceTable? StoredReference { get; init; }

    /// <inheritdoc />
    public IReadOnlyList<TensorRequirement> Requirements => Needs;

    private DriftReferenceKind EffectiveReference => StoredReference is not null ? DriftReferenceKind.Stored : Reference;

    private int Every => EverySteps ?? WindowSteps;

    /// <inheritdoc />
    public IReadOnlyList<string> Validate()
    {
        var problems = new List<string>();
        if (Reference == DriftReferenceKind.Stored && StoredReference is null)
        {
            problems.Add("reference: 'stored' needs a referenceFile (a CSV file with a header row)");
        }

        if (StoredReference is { } table && Features.Count > 0 && Features.FirstOrDefault(f => !table.Has(f)) is { } missing)
        {
            problems.Add($"features: '{missing}' is not a column of the reference {table.Source} (its columns: {string.Join(", ", table.Names)})");
        }

        if (Test == NoTest && Multivariate == MultivariateDrift.None)
        {
            problems.Add("test: 'none' needs a multivariate test (multivariate: mmd or pca)");
        }

        if (Categorical.FirstOrDefault(c => Features.Count > 0 && !Features.Contains(c)) is { } stray)
        {
            problems.Add($"categorical: '{stray}' is not one of the features");
        }

        return problems;
    }

    /// <inheritdoc />
    public void ForgetRank(string run, uint rank) => _series.Forget(run, rank);

    /// <inheritdoc />
    public int StateVersion => 1;

    /// <inheritdoc />
    /// <remarks>
    /// Per tensor: its layout (columns, feature names, the columns tested), where its reference comes from, the warm-up
    /// and steps-since-test counters, the permutations' generator (<see cref="DriftRandom"/>), the current window's
    /// step blocks and, for a first-steps reference, the reference's blocks and whether it froze. A frozen reference's
    /// sorted values (<see cref="SortedReference"/>) are not written: they are the reference blocks' finite values,
    /// sorted, and a restore sorts them again (and so rebuilds KS's rank table). A stored reference is configuration
    /// and is not written. The fitted multivariate test is not written either: it is refitted, deterministically, from
    /// the same reference rows at the next test.
    /// </remarks>
    public void WriteState(string run, uint rank, ref StateWriter writer) =>
        _series.WriteState(run, rank, ref writer, static (ref StateWriter w, SeriesState state) => state.WriteState(ref w));

    /// <inheritdoc />
    /// <remarks>A series written under parameters that it does not fit (another layout of the features tested, another
    /// reference kind, more steps or rows than the windows now hold, a first-steps reference of another length) starts
    /// over, as a new series would.</remarks>
    public Action ReadState(string run, uint rank, int version, ref StateReader reader)
    {
        Dictionary<string, SavedSeries> saved = reader.Remaining == 0 ? [] : StateByName.Read(ref reader, "tensor", SeriesState.ReadState);
        var restored = new List<(SeriesKey Key, SeriesState State)>(saved.Count);
        foreach ((string tensor, SavedSeries series) in saved)
        {
            var key = new SeriesKey(run, rank, tensor);
            if (SeriesState.TryRestore(this, key, series) is { } state)
            {
                restored.Add((key, state));
            }
        }

        return () =>
        {
            _series.Forget(run, rank);
            foreach ((SeriesKey key, SeriesState state) in restored)
            {
                _series[key] = state;
            }
        };
    }

    /// <inheritdoc />
    public void Evaluate(StepRecord record, RuleContext context)
    {
        ArgumentNullException.ThrowIfNull(record);
        ArgumentNullException.ThrowIfNull(context);
        if (!RuleSupport.InMode(record, Mode))
        {
            return;
        }

        for (int index = 0; index < record.Tensors.Count; index++)
        {
            TensorRecord tensor = record.Tensors[index];
            // The selector's collection bit test first: it reads the tensor's own fields, HasRaw another object.
            if (Selector.Matches(tensor) && TensorValues.HasRaw(tensor))
            {
                Observe(record, tensor, context);
            }
        }
    }

    private void Observe(StepRecord record, TensorRecord tensor, RuleContext context)
    {
        int columns = (int)Math.Min(StepRecordDecoder.BatchColumns(tensor), int.MaxValue);
        ReadOnlySpan<float> raw = TensorValues.Raw(tensor);
        if (columns == 0 || raw.Length < columns)
        {
            return;
        }

        var key = new SeriesKey(record.RunId, record.Rank, tensor.Name);
        if (!_series.TryGetValue(key, out SeriesState? state) || !state.Fits(tensor, columns))
        {
            if (EffectiveReference == DriftReferenceKind.Stored && StoredReference is null)
            {
                throw new InvalidOperationException($"{Name}: reference is 'stored' but no referenceFile was loaded");
            }

            state = new SeriesState(this, key, tensor.FeatureNames, columns);
            _series[key] = state;
        }

        if (state.Selected.Length == 0 || state.WarmupLeft-- > 0)
        {
            return;
        }

        int available = raw.Length / columns;
        int rows = Math.Min(available, RowsPerStep);
        bool toReference = EffectiveReference == DriftReferenceKind.First && !state.ReferenceFrozen;
        Span<float> block = (toReference ? state.ReferenceBlocks! : state.Blocks).Append(record.Step, rows);
        int width = state.Selected.Length;
        for (int r = 0; r < rows; r++)
        {
            int source = (int)BatchSample.Row(r, rows, available) * columns;
            Span<float> target = block.Slice(r * width, width);
            for (int c = 0; c < width; c++)
            {
                target[c] = raw[source + state.Selected[c]];
            }
        }

        if (toReference)
        {
            if (state.ReferenceBlocks!.Count == ReferenceSteps)
            {
                state.Freeze();
            }

            return;
        }

        state.StepsSinceTest++;
        int needed = EffectiveReference == DriftReferenceKind.Sliding ? ReferenceSteps + WindowSteps : WindowSteps;
        if (state.Blocks.Count >= needed && state.StepsSinceTest >= Every)
        {
            state.StepsSinceTest = 0;
            TestWindow(state, tensor.Name, context);
        }
    }

    private void TestWindow(SeriesState state, string tensorName, RuleContext context)
    {
        int features = state.Selected.Length;
        EnsureLength(ref _results, features);
        EnsureLength(ref _chosen, features);
        StepBlocks blocks = state.Blocks;
        int currentFrom = blocks.Count - WindowSteps;
        int currentRows = blocks.RowsIn(currentFrom, blocks.Count);
        EnsureLength(ref _current, currentRows * features);
        EnsureLength(ref _currentCounts, features);
        bool sliding = EffectiveReference == DriftReferenceKind.Sliding;
        int referenceRows = 0;
        if (Test != NoTest)
        {
            blocks.GatherColumns(currentFrom, blocks.Count, _current, currentRows, _currentCounts);
            if (sliding)
            {
                referenceRows = blocks.RowsIn(currentFrom - ReferenceSteps, currentFrom);
                EnsureLength(ref _reference, referenceRows * features);
                EnsureLength(ref _referenceCounts, features);
                blocks.GatherColumns(currentFrom - ReferenceSteps, currentFrom, _reference, referenceRows, _referenceCounts);
            }
        }

        for (int f = 0; f < features && Test != NoTest; f++)
        {
            ReadOnlySpan<double> reference = sliding
                ? _reference.AsSpan(f * referenceRows, _referenceCounts[f])
                : state.FrozenReference[f].Values;
            ReadOnlySpan<double> current = _current.AsSpan(f * currentRows, _currentCounts[f]);
            if (reference.IsEmpty || current.IsEmpty)
            {
                _chosen[f] = null;
                continue;
            }

            IUnivariateDriftTest test = Test == DriftTestCatalog.Auto
                ? DriftTestCatalog.ChooseDefault(reference, current, state.Kinds[f])
                : DriftTestCatalog.Get(Test);
            _chosen[f] = test;
            _results[f] = sliding
                ? test.Test(reference, current, state.Kinds[f], _workspace)
                : test.Test(state.FrozenReference[f], current, state.Kinds[f], _workspace);
        }

        long firstStep = blocks.StepOf(currentFrom);
        long lastStep = blocks.StepOf(blocks.Count - 1);
        double corrected = CorrectedThreshold(features);
        for (int f = 0; f < features && Test != NoTest; f++)
        {
            if (_chosen[f] is not { } test)
            {
                continue;
            }

            TwoSampleResult result = _results[f];
            bool pTest = test.VerdictRule != DriftVerdictRule.StatisticAtLeast;
            bool correct = pTest && Correction != DriftCorrection.None;
            double threshold = correct ? corrected : Threshold ?? test.DefaultThreshold;
            // A corrected threshold is read as alibi-detect reads it: p strictly below (NaN: nothing is).
            bool drift = correct ? result.PValue < threshold : DriftVerdict.IsDrift(test.VerdictRule, result, threshold);
            string feature = state.Names[f];
            if (!drift && !context.IsActive(tensorName, feature))
            {
                // Nothing will show the words of a passing verdict without an alert: report the numbers only.
                context.ReportDrift(tensorName, feature, test.Name, drift: false, result.Statistic, result.PValue, threshold, NoDrift);
                continue;
            }

            string measured = pTest
                ? string.Create(CultureInfo.InvariantCulture, $"p-value {result.PValue:G4} (statistic {result.Statistic:G4}), drift {(correct || test.VerdictRule == DriftVerdictRule.PValueBelow ? "below" : "at or below")} {threshold:G4}{CorrectionNote()}")
                : string.Create(CultureInfo.InvariantCulture, $"{result.Statistic:G4}, drift at or above {threshold:G4}");
            string description = string.Create(CultureInfo.InvariantCulture,
                $"{feature} of {tensorName} {(drift ? "drifted" : "has not drifted")}: {test.Name} {measured}; steps {firstStep}-{lastStep} against {state.ReferenceDescription}");
            context.ReportDrift(tensorName, feature, test.Name, drift, result.Statistic, result.PValue, threshold, description);
        }

        if (Multivariate != MultivariateDrift.None)
        {
            TestAllFeatures(state, tensorName, firstStep, lastStep, context);
        }
    }

    private void TestAllFeatures(SeriesState state, string tensorName, long firstStep, long lastStep, RuleContext context)
    {
        StepBlocks blocks = state.Blocks;
        int currentFrom = blocks.Count - WindowSteps;
        if (EffectiveReference == DriftReferenceKind.Sliding || state.Multivariate is null)
        {
            // A sliding reference moves with every window; a frozen one is fitted once.
            double[] reference = EffectiveReference == DriftReferenceKind.Sliding
                ? Rows(blocks, currentFrom - ReferenceSteps, currentFrom, state.Selected.Length, MaxMultivariateRows)
                : state.ReferenceRows(MaxMultivariateRows);
            state.Multivariate = Fit(reference, state.Selected.Length);
        }

        double[] current = Rows(blocks, currentFrom, blocks.Count, state.Selected.Length, MaxMultivariateRows);
        int rows = current.Length / Math.Max(1, state.Selected.Length);
        string against = string.Create(CultureInfo.InvariantCulture, $"steps {firstStep}-{lastStep} ({rows} rows) against {state.ReferenceDescription}");
        switch (state.Multivariate)
        {
            case MaximumMeanDiscrepancyTest mmd when rows >= 2:
                MaximumMeanDiscrepancyResult m = mmd.Test(current, state.Random, _workspace);
                context.ReportDrift(tensorName, AllFeatures, "mmd", m.IsDrift, m.Statistic, m.PValue, MultivariateThreshold, string.Create(CultureInfo.InvariantCulture,
                    $"the {state.Selected.Length} features of {tensorName} {(m.IsDrift ? "drifted" : "have not drifted")} together: MMD² {m.Statistic:G4}, permutation p-value {m.PValue:G3}, drift below {MultivariateThreshold:G3}; {against}"));
                break;
            case PcaReconstructionDrift pca when rows >= 1:
                PcaReconstructionResult r = pca.Evaluate(current, _workspace);
                context.ReportDrift(tensorName, AllFeatures, "pca", r.IsAlert, r.Error, double.NaN, pca.UpperThreshold, string.Create(CultureInfo.InvariantCulture,
                    $"the {state.Selected.Length} features of {tensorName} {(r.IsAlert ? "drifted" : "have not drifted")} together: PCA reconstruction error {r.Error:G4} ({pca.Components} of {pca.Dimension} components), reference band {pca.LowerThreshold ?? double.NegativeInfinity:G4} to {pca.UpperThreshold:G4}; {against}"));
                break;
        }
    }

    /// <summary>The fitted multivariate test, or null when the reference cannot carry one (too few rows, no spread).</summary>
    private object? Fit(double[] reference, int dimension)
    {
        try
        {
            return Multivariate == MultivariateDrift.Mmd
                ? new MaximumMeanDiscrepancyTest(reference, dimension, pValueThreshold: MultivariateThreshold)
                : new PcaReconstructionDrift(reference, dimension);
        }
        catch (ArgumentException)
        {
            // A degenerate reference (constant, or fewer rows than the test needs) cannot be tested against: no verdict.
            return null;
        }
    }

    /// <summary>At most <paramref name="limit"/> rows, evenly spaced, of the blocks' rows whose every column is finite.</summary>
    private static double[] Rows(StepBlocks blocks, int from, int to, int columns, int limit)
    {
        var all = new double[blocks.RowsIn(from, to) * columns];
        int rows = blocks.GatherRows(from, to, all);
        return EvenlySpaced(all, rows, columns, limit);
    }

    internal static double[] EvenlySpaced(double[] all, int rows, int columns, int limit)
    {
        int kept = Math.Min(rows, limit);
        var result = new double[kept * columns];
        for (int i = 0; i < kept; i++)
        {
            all.AsSpan((int)BatchSample.Row(i, kept, rows) * columns, columns).CopyTo(result.AsSpan(i * columns, columns));
        }

        return result;
    }

    private string CorrectionNote() => Correction switch
    {
        DriftCorrection.Bonferroni => " (Bonferroni)",
        DriftCorrection.Fdr => " (Benjamini-Hochberg)",
        _ => "",
    };

    /// <summary>
    /// The corrected threshold over the features tested with p-values (<see cref="MultipleTestCorrection"/>, alibi-detect's
    /// <c>correction</c>): Bonferroni's <c>threshold / n</c>, or the Benjamini-Hochberg threshold (NaN when no feature
    /// is a discovery). NaN without correction.
    /// </summary>
    private double CorrectedThreshold(int features)
    {
        EnsureLength(ref _reference, features);
        int n = 0;
        for (int f = 0; f < features; f++)
        {
            if (_chosen[f] is { VerdictRule: not DriftVerdictRule.StatisticAtLeast })
            {
                // _reference is free once the features have been tested: reused as scratch for the p-values.
                _reference[n++] = _results[f].PValue;
            }
        }

        if (Correction == DriftCorrection.None || n == 0)
        {
            return double.NaN;
        }

        double level = Threshold ?? MultipleTestCorrection.DefaultLevel;
        ReadOnlySpan<double> pValues = _reference.AsSpan(0, n);
        return Correction == DriftCorrection.Bonferroni
            ? MultipleTestCorrection.Bonferroni(pValues, level).Threshold
            : MultipleTestCorrection.BenjaminiHochberg(pValues, _workspace, level).Threshold;
    }

    private static void EnsureLength<T>(ref T[] array, int length)
    {
        if (array.Length < length)
        {
            array = new T[Math.Max(length, array.Length * 2)];
        }
    }

    /// <summary>A series as a snapshot holds it, before it is checked against the rule's parameters.</summary>
    private sealed record SavedSeries(
        int Columns,
        string[] FeatureNames,
        long[] Selected,
        DriftReferenceKind Kind,
        int WarmupLeft,
        long StepsSinceTest,
        DriftRandom Random,
        (long Step, float[] Values)[] Blocks,
        (long Step, float[] Values)[]? Reference,
        bool Frozen);

    private sealed class SeriesState
    {
        private const int MaxRestoredColumns = 1 << 24;

        private readonly DataDriftRule _rule;
        private readonly int _columns;
        private readonly string[] _tensorNames;

        public SeriesState(DataDriftRule rule, SeriesKey key, IReadOnlyList<string> featureNames, int columns)
        {
            _rule = rule;
            _columns = columns;
            _tensorNames = [.. featureNames];
            string[] all = [.. Enumerable.Range(0, columns).Select(c => ColumnName(key.Tensor, featureNames, c, columns))];
            int[] selected = rule.Features.Count == 0
                ? [.. Enumerable.Range(0, columns)]
                : [.. rule.Features.Select(f => Array.IndexOf(all, f)).Where(i => i >= 0)];
            if (rule.EffectiveReference == DriftReferenceKind.Stored)
            {
                // A feature the stored reference lacks cannot be tested: it is left out (documented).
                selected = [.. selected.Where(c => rule.StoredReference!.Has(all[c]))];
            }

            Selected = selected;
            WarmupLeft = rule.WarmupSteps;
            Random = new DriftRandom(StableSeed($"{key.Run}/{key.Rank}/{key.Tensor}"));
            Names = [.. selected.Select(c => all[c])];
            Kinds = [.. Names.Select(n => rule.Categorical.Contains(n) ? FeatureKind.Categorical : FeatureKind.Numerical)];
            int capacity = rule.EffectiveReference == DriftReferenceKind.Sliding ? rule.ReferenceSteps + rule.WindowSteps : rule.WindowSteps;
            Blocks = new StepBlocks(capacity, rule.RowsPerStep, Math.Max(1, selected.Length));
            FrozenReference = new SortedReference[selected.Length];
            switch (rule.EffectiveReference)
            {
                case DriftReferenceKind.First:
                    ReferenceBlocks = new StepBlocks(rule.ReferenceSteps, rule.RowsPerStep, Math.Max(1, selected.Length));
                    ReferenceDescription = $"the first {rule.ReferenceSteps} steps";
                    break;
                case DriftReferenceKind.Stored:
                    for (int f = 0; f < selected.Length; f++)
                    {
                        FrozenReference[f] = new SortedReference(Finite(rule.StoredReference!.Column(Names[f])));
                    }

                    ReferenceFrozen = true;
                    ReferenceDescription = $"the reference {rule.StoredReference!.Source}";
                    break;
                default:
                    ReferenceDescription = $"the {rule.ReferenceSteps} steps before";
                    break;
            }
        }

        public int[] Selected { get; }

        public string[] Names { get; }

        public FeatureKind[] Kinds { get; }

        public StepBlocks Blocks { get; }

        public StepBlocks? ReferenceBlocks { get; }

        /// <summary>Per feature, the finite reference values, sorted, with what tests prepare on them once (tests are
        /// order-free; sorted values sort faster, and KS ranks in them through a table built once).</summary>
        public SortedReference[] FrozenReference { get; }

        public bool ReferenceFrozen { get; private set; }

        public string ReferenceDescription { get; private set; }

        public long StepsSinceTest { get; set; }

        /// <summary>The fitted multivariate test (frozen references keep theirs), or null.</summary>
        public object? Multivariate { get; set; }

        /// <summary>The permutations' source, seeded per series so a replay gives the same p-values (and snapshotted, so a
        /// restored engine draws the same permutations).</summary>
        public DriftRandom Random { get; private set; }

        /// <summary>The reference's rows (finite ones; a stored table's rows where every column has a value).</summary>
        public double[] ReferenceRows(int limit)
        {
            int columns = Selected.Length;
            if (ReferenceBlocks is { } blocks)
            {
                return Rows(blocks, 0, blocks.Count, columns, limit);
            }

            DriftReferenceTable table = _rule.StoredReference!;
            int rows = Names.Select(n => table.Column(n).Length).DefaultIfEmpty(0).Min();
            var all = new double[rows * columns];
            int kept = 0;
            for (int r = 0; r < rows; r++)
            {
                bool finite = true;
                for (int c = 0; c < columns; c++)
                {
                    double value = table.Column(Names[c])[r];
                    finite &= double.IsFinite(value);
                    all[(kept * columns) + c] = value;
                }

                kept += finite ? 1 : 0;
            }

            return EvenlySpaced(all, kept, columns, limit);
        }

        /// <summary>Records still to skip before the reference (see <see cref="DataDriftRule.WarmupSteps"/>).</summary>
        public int WarmupLeft;

        /// <summary>Whether a record's tensor still has this series' layout (else the series starts again).</summary>
        public bool Fits(TensorRecord tensor, int columns)
        {
            if (columns != _columns || tensor.FeatureNames.Count != _tensorNames.Length)
            {
                return false;
            }

            for (int i = 0; i < _tensorNames.Length; i++)
            {
                if (!string.Equals(tensor.FeatureNames[i], _tensorNames[i], StringComparison.Ordinal))
                {
                    return false;
                }
            }

            return true;
        }

        public void Freeze()
        {
            StepBlocks reference = ReferenceBlocks!;
            int rows = reference.RowsIn(0, reference.Count);
            int features = Selected.Length;
            var buffer = new double[rows * features];
            var counts = new int[features];
            reference.GatherColumns(0, reference.Count, buffer, rows, counts);
            for (int f = 0; f < features; f++)
            {
                double[] values = buffer.AsSpan(f * rows, counts[f]).ToArray();
                Array.Sort(values);
                FrozenReference[f] = new SortedReference(values);
            }

            ReferenceFrozen = true;
            ReferenceDescription = string.Create(CultureInfo.InvariantCulture,
                $"the {(_rule.WarmupSteps > 0 ? "" : "first ")}{_rule.ReferenceSteps} steps {reference.StepOf(0)}-{reference.StepOf(reference.Count - 1)}");
        }

        private static int StableSeed(string text)
        {
            // string.GetHashCode differs between processes; replays must draw the same permutations.
            int hash = 17;
            foreach (char c in text)
            {
                hash = unchecked((hash * 31) + c);
            }

            return hash;
        }

        private static double[] Finite(ReadOnlySpan<double> values)
        {
            var finite = new List<double>(values.Length);
            foreach (double value in values)
            {
                if (double.IsFinite(value))
                {
                    finite.Add(value);
                }
            }

            double[] sorted = [.. finite];
            Array.Sort(sorted);
            return sorted;
        }

        /// <summary>Reads what <see cref="WriteState"/> wrote, without building the series (see <see cref="TryRestore"/>).</summary>
        public static SavedSeries ReadState(ref StateReader reader)
        {
            // A row of 2^24 columns is 64 MiB of floats, far above what one record (1 MB by default) carries; a larger
            // count is corrupt, and would make the restore build a name per column.
            int columns = reader.ReadInt32("columns", MaxRestoredColumns);
            string[] featureNames = new string[reader.ReadCount("feature names", 1)];
            for (int i = 0; i < featureNames.Length; i++)
            {
                featureNames[i] = reader.ReadString("feature name");
            }

            long[] selected = reader.ReadVarInts("selected columns");
            var kind = (DriftReferenceKind)reader.ReadVarInt("reference kind", (long)DriftReferenceKind.First, (long)DriftReferenceKind.Stored);
            int warmupLeft = reader.ReadInt32("warm-up left");
            long stepsSinceTest = reader.ReadVarInt("steps since test", 0, long.MaxValue);
            DriftRandom random = DriftRandom.ReadState(ref reader);
            (long, float[])[] blocks = StepBlocks.ReadState(ref reader);
            (long, float[])[]? reference = null;
            bool frozen = false;
            if (kind == DriftReferenceKind.First)
            {
                reference = StepBlocks.ReadState(ref reader);
                frozen = reader.ReadBool("reference frozen");
            }

            return new SavedSeries(columns, featureNames, selected, kind, warmupLeft, stepsSinceTest, random, blocks, reference, frozen);
        }

        /// <summary>The series <paramref name="saved"/> describes under the rule's current parameters, or null when it
        /// does not fit them (it then starts over).</summary>
        public static SeriesState? TryRestore(DataDriftRule rule, SeriesKey key, SavedSeries saved)
        {
            if (saved.Kind != rule.EffectiveReference || (rule.EffectiveReference == DriftReferenceKind.Stored && rule.StoredReference is null)
                || (rule.Features.Count == 0 && saved.Selected.Length != saved.Columns))
            {
                return null;
            }

            var state = new SeriesState(rule, key, saved.FeatureNames, saved.Columns);
            if (!state.Selected.AsSpan().SequenceEqual([.. saved.Selected.Select(c => (int)c)]) || !state.Blocks.TryRestore(saved.Blocks))
            {
                return null;
            }

            if (state.ReferenceBlocks is { } referenceBlocks)
            {
                // A first-steps reference freezes the record it reaches its length: frozen exactly when full.
                if (saved.Frozen != (saved.Reference!.Length == rule.ReferenceSteps) || !referenceBlocks.TryRestore(saved.Reference))
                {
                    return null;
                }

                if (saved.Frozen)
                {
                    state.Freeze();
                }
            }

            state.WarmupLeft = Math.Min(saved.WarmupLeft, rule.WarmupSteps);
            state.StepsSinceTest = saved.StepsSinceTest;
            state.Random = saved.Random;
            return state;
        }

        /// <summary>Writes the series (see <see cref="DataDriftRule.WriteState"/>).</summary>
        public void WriteState(ref StateWriter writer)
        {
            writer.WriteVarInt(_columns);
            writer.WriteVarUInt((ulong)_tensorNames.Length);
            foreach (string name in _tensorNames)
            {
                writer.WriteString(name);
            }

            writer.WriteVarUInt((ulong)Selected.Length);
            foreach (int column in Selected)
            {
                writer.WriteVarInt(column);
            }

            writer.WriteVarInt((long)_rule.EffectiveReference);
            // Past the warm-up the counter keeps counting down; only whether it is above 0 matters.
            writer.WriteVarInt(Math.Max(0, WarmupLeft));
            writer.WriteVarInt(StepsSinceTest);
            Random.WriteState(ref writer);
            Blocks.WriteState(ref writer);
            if (ReferenceBlocks is { } reference)
            {
                reference.WriteState(ref writer);
                writer.WriteBool(ReferenceFrozen);
            }
        }

        private static string ColumnName(string tensorName, IReadOnlyList<string> featureNames, int column, int columns) =>
            featureNames.Count == columns ? featureNames[column]
            : columns == 1 ? tensorName
            : column.ToString(CultureInfo.InvariantCulture);
    }
}
