using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;

namespace Monitor.Benchmarks;

/// <summary>
/// Entry point: <c>dotnet run -c Release --project tests/Monitor.Benchmarks -- --filter '*'</c>.
/// Runs in-process (the repository's strict build policy would otherwise apply to BenchmarkDotNet's generated
/// project, and libtorch loads from this output folder). Returns non-zero when any benchmark fails.
/// <c>service-throughput [STEPS]</c> and <c>step-to-alert [TRIALS]</c> run the whole-service measurements instead
/// (<see cref="ServiceThroughputBenchmarks"/>, <see cref="StepToAlertLatency"/>); <c>summarizer-ratio</c> and
/// <c>tracer-overhead-interleaved</c> time cases in turn, round by round (<see cref="SummarizerRatio"/>,
/// <see cref="TracerOverheadInterleaved"/>).
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        // Measurements of the whole service (CPU time and memory of this process, a child that feeds it), not of calls.
        switch (args)
        {
            case ["service-feeder", string compression]:
                return ServiceFeeder.RunChild(compression);
            case ["service-throughput", .. var rest]:
                return ServiceThroughputBenchmarks.Run(rest);
            case ["step-to-alert", .. var rest]:
                return StepToAlertLatency.Run(rest);
            case ["summarizer-ratio", .. var rest]:
                return SummarizerRatio.Run(rest);
            case ["tracer-overhead-interleaved", .. var rest]:
                return TracerOverheadInterleaved.Run(rest);
        }

        // Every benchmark class names its own job through [Config] (all in-process).
        IConfig config = DefaultConfig.Instance
            .AddColumn(new ThroughputColumn())
            .WithOptions(ConfigOptions.DisableOptimizationsValidator);
        IEnumerable<Summary> summaries = BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, config);
        return summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success)) ? 1 : 0;
    }

    /// <summary>For microbenchmarks: BenchmarkDotNet's pilot and overhead stages, 3 warm-up and 15 measured iterations.</summary>
    public sealed class StandardConfig : ManualConfig
    {
        public StandardConfig() =>
            AddJob(Job.Default.WithToolchain(InProcessEmitToolchain.Instance).WithWarmupCount(3).WithIterationCount(15));
    }

    /// <summary>For benchmarks of whole training steps (tens of milliseconds each): one invocation per iteration.</summary>
    public sealed class TrainingStepConfig : ManualConfig
    {
        public TrainingStepConfig() =>
            AddJob(Job.Default.WithToolchain(InProcessEmitToolchain.Instance).WithStrategy(BenchmarkDotNet.Engines.RunStrategy.Monitoring)
                .WithWarmupCount(5).WithIterationCount(60).WithInvocationCount(1).WithUnrollFactor(1))
                .AddColumn(BenchmarkDotNet.Columns.StatisticColumn.Median, BenchmarkDotNet.Columns.StatisticColumn.P90);
    }
}
