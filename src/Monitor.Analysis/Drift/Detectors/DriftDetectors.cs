using System.Globalization;

namespace Monitor.Analysis.Drift;

/// <summary>
/// Builds streaming drift detectors from their CLI names and river-spelled parameters, e.g.
/// <c>Create("adwin", {"delta": "0.01", "clock": "1"})</c>.
/// </summary>
/// <remarks>
/// Names: <c>adwin</c>, <c>page-hinkley</c>, <c>kswin</c>, <c>ddm</c>, <c>eddm</c>, <c>hddm-a</c>, <c>hddm-w</c> (see
/// <see cref="Names"/>). Parameters use river's names (<c>min_window_length</c>, <c>lambda_val</c>, ...); values are
/// numbers in invariant culture (integers where river takes an int), <c>true</c>/<c>false</c>, or words
/// (<c>mode</c>: <c>up</c>, <c>down</c>, <c>both</c>). Unset parameters take river's defaults. Thread-safe (no state).
/// </remarks>
public static class DriftDetectors
{
    private static readonly (string Word, PageHinkleyMode Value)[] PageHinkleyModes =
        [("up", PageHinkleyMode.Up), ("down", PageHinkleyMode.Down), ("both", PageHinkleyMode.Both)];

    private static readonly Spec[] Specs =
    [
        new("adwin", ["delta", "clock", "max_buckets", "min_window_length", "grace_period"], p => new AdwinDetector
        {
            Delta = p.Number("delta") ?? AdwinDetector.DefaultDelta,
            Clock = p.Integer("clock") ?? AdwinDetector.DefaultClock,
            MaxBuckets = p.Integer("max_buckets") ?? AdwinDetector.DefaultMaxBuckets,
            MinWindowLength = p.Integer("min_window_length") ?? AdwinDetector.DefaultMinWindowLength,
            GracePeriod = p.Integer("grace_period") ?? AdwinDetector.DefaultGracePeriod,
        }),
        new("page-hinkley", ["min_instances", "delta", "threshold", "alpha", "mode"], p => new PageHinkleyDetector
        {
            MinInstances = p.Integer("min_instances") ?? PageHinkleyDetector.DefaultMinInstances,
            Delta = p.Number("delta") ?? PageHinkleyDetector.DefaultDelta,
            Threshold = p.Number("threshold") ?? PageHinkleyDetector.DefaultThreshold,
            Alpha = p.Number("alpha") ?? PageHinkleyDetector.DefaultAlpha,
            Mode = p.Word("mode", PageHinkleyModes) ?? PageHinkleyDetector.DefaultMode,
        }),
        new("kswin", ["alpha", "window_size", "stat_size", "seed"], p =>
        {
            var kswin = new KswinDetector
            {
                Alpha = p.Number("alpha") ?? KswinDetector.DefaultAlpha,
                WindowSize = p.Integer("window_size") ?? KswinDetector.DefaultWindowSize,
                StatSize = p.Integer("stat_size") ?? KswinDetector.DefaultStatSize,
                Seed = p.Integer("seed"),
            };
            return kswin.ParameterProblem() is { } problem ? throw new ArgumentException(problem, "stat_size") : kswin;
        }),
        new("ddm", ["warm_start", "warning_threshold", "drift_threshold"], p => new DdmDetector
        {
            WarmStart = p.Integer("warm_start") ?? DdmDetector.DefaultWarmStart,
            WarningThreshold = p.Number("warning_threshold") ?? DdmDetector.DefaultWarningThreshold,
            DriftThreshold = p.Number("drift_threshold") ?? DdmDetector.DefaultDriftThreshold,
        }),
        new("eddm", ["warm_start", "alpha", "beta"], p =>
        {
            var eddm = new EddmDetector
            {
                WarmStart = p.Integer("warm_start") ?? EddmDetector.DefaultWarmStart,
                Alpha = p.Number("alpha") ?? EddmDetector.DefaultAlpha,
                Beta = p.Number("beta") ?? EddmDetector.DefaultBeta,
            };
            return eddm.ParameterProblem() is { } problem ? throw new ArgumentException(problem, "alpha") : eddm;
        }),
        new("hddm-a", ["drift_confidence", "warning_confidence", "two_sided_test"], p => new HddmADetector
        {
            DriftConfidence = p.Number("drift_confidence") ?? HddmADetector.DefaultDriftConfidence,
            WarningConfidence = p.Number("warning_confidence") ?? HddmADetector.DefaultWarningConfidence,
            TwoSidedTest = p.Boolean("two_sided_test") ?? HddmADetector.DefaultTwoSidedTest,
        }),
        new("hddm-w", ["drift_confidence", "warning_confidence", "lambda_val", "two_sided_test"], p => new HddmWDetector
        {
            DriftConfidence = p.Number("drift_confidence") ?? HddmWDetector.DefaultDriftConfidence,
            WarningConfidence = p.Number("warning_confidence") ?? HddmWDetector.DefaultWarningConfidence,
            Lambda = p.Number("lambda_val") ?? HddmWDetector.DefaultLambda,
            TwoSidedTest = p.Boolean("two_sided_test") ?? HddmWDetector.DefaultTwoSidedTest,
        }),
    ];

    /// <summary>The CLI names of the detectors, in the order of river's documentation.</summary>
    public static IReadOnlyList<string> Names { get; } = [.. Specs.Select(s => s.Name)];

    /// <summary>The river-spelled parameters <paramref name="name"/> takes.</summary>
    /// <exception cref="ArgumentException">An unknown name; the message lists the valid ones.</exception>
    public static IReadOnlyList<string> Parameters(string name) => Find(name).Parameters;

    /// <summary>A new detector <paramref name="name"/> with <paramref name="parameters"/> (river's names and defaults).</summary>
    /// <param name="name">A CLI name from <see cref="Names"/>.</param>
    /// <param name="parameters">river-spelled parameters and their values as text; missing ones take river's defaults.</param>
    /// <exception cref="ArgumentException">An unknown name or parameter, a value that does not parse, or one out of
    /// range (an <see cref="ArgumentOutOfRangeException"/>); the message names the parameter and lists the valid
    /// names, parameters or values.</exception>
    public static IDriftDetector Create(string name, IReadOnlyDictionary<string, string> parameters)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(parameters);
        Spec spec = Find(name);
        foreach (string key in parameters.Keys)
        {
            if (!spec.Parameters.Contains(key, StringComparer.Ordinal))
            {
                throw new ArgumentException(
                    $"{spec.Name} has no parameter '{key}'; valid parameters: {string.Join(", ", spec.Parameters)}.", key);
            }
        }

        return spec.Build(new Reader(spec.Name, parameters));
    }

    private static Spec Find(string name) =>
        Array.Find(Specs, s => s.Name == name)
        ?? throw new ArgumentException($"unknown drift detector '{name}'; valid detectors: {string.Join(", ", Names)}.", nameof(name));

    private sealed record Spec(string Name, string[] Parameters, Func<Reader, IDriftDetector> Build);

    private sealed class Reader(string detector, IReadOnlyDictionary<string, string> values)
    {
        public double? Number(string parameter)
        {
            if (!values.TryGetValue(parameter, out string? text))
            {
                return null;
            }

            return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) && double.IsFinite(value)
                ? value
                : throw Invalid(parameter, text, "a finite number");
        }

        public int? Integer(string parameter)
        {
            if (!values.TryGetValue(parameter, out string? text))
            {
                return null;
            }

            return int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int value)
                ? value
                : throw Invalid(parameter, text, "an integer");
        }

        public bool? Boolean(string parameter)
        {
            if (!values.TryGetValue(parameter, out string? text))
            {
                return null;
            }

            return text.Trim().ToLowerInvariant() switch
            {
                "true" => true,
                "false" => false,
                _ => throw Invalid(parameter, text, "true or false"),
            };
        }

        public T? Word<T>(string parameter, (string Word, T Value)[] words)
            where T : struct
        {
            if (!values.TryGetValue(parameter, out string? text))
            {
                return null;
            }

            foreach ((string word, T value) in words)
            {
                if (string.Equals(word, text.Trim(), StringComparison.OrdinalIgnoreCase))
                {
                    return value;
                }
            }

            throw Invalid(parameter, text, string.Join(", ", words.Select(w => w.Word)));
        }

        private ArgumentException Invalid(string parameter, string text, string expected) =>
            new($"{detector} parameter '{parameter}' must be {expected}; got '{text}'.", parameter);
    }
}
