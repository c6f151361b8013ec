namespace Monitor.Analysis.Tests.Drift;

/// <summary>One detector configuration on one deterministic stream (see <see cref="DriftStreams"/>).</summary>
internal sealed record AgreementCase(string Id, string Detector, IReadOnlyDictionary<string, string> Parameters, Func<double[]> Stream);

/// <summary>
/// The configurations and streams whose detection indices are pinned in <see cref="DriftDetectorAgreementTests"/>:
/// every detector with river's defaults and with other parameters (clock, grace period, mode, two-sided tests, ...),
/// on mean shifts, rate changes, heavy tails and constant streams.
/// </summary>
internal static class DriftAgreementCases
{
    private static readonly Func<double[]> OneShift = () => DriftStreams.Gaussian(1, (2000, 0.0, 1.0), (2000, 1.0, 1.0));
    private static readonly Func<double[]> FourRegimes = () => DriftStreams.Gaussian(2, (1500, 0.0, 0.5), (1500, 0.5, 0.5), (1500, -0.5, 2.0), (1500, 3.0, 0.1));
    private static readonly Func<double[]> HeavyTails = () => DriftStreams.HeavyTailed(3, (3000, 0.0, 1.0), (3000, 5.0, 1.0));
    private static readonly Func<double[]> UpThenDown = () => DriftStreams.Gaussian(5, (1000, 0.0, 1.0), (1000, 2.0, 1.0), (1000, -1.0, 1.0));
    private static readonly Func<double[]> RateUp = () => DriftStreams.Bernoulli(6, (2000, 0.2), (2000, 0.5));
    private static readonly Func<double[]> RateSteps = () => DriftStreams.Bernoulli(7, (1000, 0.05), (1000, 0.15), (1000, 0.3));
    private static readonly Func<double[]> RateUpDownUp = () => DriftStreams.Bernoulli(8, (1500, 0.4), (1500, 0.1), (1500, 0.5));
    private static readonly Func<double[]> SmallRates = () => DriftStreams.Bernoulli(4, (2000, 0.1), (2000, 0.4));

    public static IReadOnlyList<AgreementCase> All { get; } =
    [
        new("adwin-defaults-shift", "adwin", P(), OneShift),
        new("adwin-clock1-shift", "adwin", P(("clock", "1")), OneShift),
        new("adwin-custom-regimes", "adwin", P(("delta", "0.01"), ("clock", "7"), ("grace_period", "50"), ("min_window_length", "3"), ("max_buckets", "3")), FourRegimes),
        new("adwin-defaults-heavy", "adwin", P(), HeavyTails),
        new("adwin-small-buckets-rates", "adwin", P(("max_buckets", "2"), ("min_window_length", "1"), ("grace_period", "0"), ("clock", "1")), SmallRates),
        new("adwin-loose-regimes", "adwin", P(("delta", "0.1"), ("clock", "16")), FourRegimes),
        new("adwin-defaults-constant", "adwin", P(), () => DriftStreams.Constant(5000, 3.0)),
        new("ph-defaults-updown", "page-hinkley", P(), UpThenDown),
        new("ph-up-updown", "page-hinkley", P(("mode", "up"), ("threshold", "10"), ("delta", "0.05")), UpThenDown),
        new("ph-down-updown", "page-hinkley", P(("mode", "down"), ("threshold", "10"), ("alpha", "0.99"), ("min_instances", "10")), UpThenDown),
        new("ph-defaults-heavy", "page-hinkley", P(), HeavyTails),
        new("ph-both-regimes", "page-hinkley", P(("threshold", "20"), ("alpha", "1")), FourRegimes),
        new("ph-defaults-constant", "page-hinkley", P(), () => DriftStreams.Constant(3000, -2.5)),
        new("ddm-defaults-rateup", "ddm", P(), RateUp),
        new("ddm-custom-steps", "ddm", P(("warm_start", "5"), ("warning_threshold", "1.5"), ("drift_threshold", "2.5")), RateSteps),
        new("ddm-defaults-ones", "ddm", P(), () => DriftStreams.Constant(2000, 1.0)),
        new("eddm-defaults-rateup", "eddm", P(), RateUp),
        new("eddm-custom-steps", "eddm", P(("alpha", "0.9"), ("beta", "0.8"), ("warm_start", "10")), RateSteps),
        new("hddm-a-defaults-rateup", "hddm-a", P(), RateUp),
        new("hddm-a-two-sided", "hddm-a", P(("two_sided_test", "true"), ("drift_confidence", "0.01"), ("warning_confidence", "0.05")), RateUpDownUp),
        new("hddm-w-defaults-rateup", "hddm-w", P(), RateUp),
        new("hddm-w-two-sided", "hddm-w", P(("two_sided_test", "true"), ("lambda_val", "0.2")), RateUpDownUp),
        new("hddm-w-custom-steps", "hddm-w", P(("lambda_val", "0.01"), ("drift_confidence", "0.01")), RateSteps),
    ];

    private static Dictionary<string, string> P(params (string Key, string Value)[] pairs) => pairs.ToDictionary(p => p.Key, p => p.Value);
}
