using System.Diagnostics;
using System.Globalization;

namespace Monitor.Benchmarks;

/// <summary>
/// <c>tracer-overhead-interleaved [--block STEPS] [rounds] [cases...]</c>: the cases of <see cref="TracerOverheadBenchmarks"/>
/// (the same MLP, set up the same way, one model per case), each timed one <see cref="TracerOverheadBenchmarks.TrainStep"/>
/// at a time in turn for each round (default 120, after 10 warm-up rounds), starting each round with another case, so that
/// every case sees the same load on a shared machine. BenchmarkDotNet runs the cases one after another, a minute or more
/// apart, and on this machine the load between them moved the untraced step from 55 to 300 ms. Prints each case's
/// median and its ratio to the untraced step's, and the median of the per-round ratios (the traced step over the
/// untraced one of the same round).
/// </summary>
/// <remarks>
/// One step at a time is unfair to the overhead budget: a tracer measures its step from one <c>BeginStep</c> to the
/// next of its own model, which then spans every other case's step, so it sees a step several times longer than it is
/// and thins less than it would alone. <c>--block STEPS</c> runs that many consecutive steps of each case per round
/// instead (default rounds then 10, after 1 warm-up round) and times all but the first 5 of each block: only one step
/// in a block is stretched by the others, and the budget's windows (8 steps or more) after it are the case's own.
/// </remarks>
internal static class TracerOverheadInterleaved
{
    public static int Run(string[] args)
    {
        int block = 1;
        if (args is ["--block", string steps, .. var rest])
        {
            block = int.Parse(steps, CultureInfo.InvariantCulture);
            args = rest;
        }

        // In a block, the first steps follow the other cases' blocks: their caches and the budget's window are not yet the case's own.
        int skipped = block > 1 ? Math.Min(5, block - 1) : 0;
        int rounds = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : block > 1 ? 10 : 120;
        string[] cases = args.Length > 1 ? args[1..] : ["none", "gradients", "all", TracerOverheadBenchmarks.DefaultBudget];
        if (cases[0] != "none")
        {
            Console.Error.WriteLine("the first case must be none (the ratios are to it)");
            return 2;
        }

        var benchmarks = new TracerOverheadBenchmarks[cases.Length];
        var times = new double[cases.Length][];
        for (int k = 0; k < cases.Length; k++)
        {
            benchmarks[k] = new TracerOverheadBenchmarks { Traced = cases[k] };
            benchmarks[k].Setup();
            times[k] = new double[rounds * (block - skipped)];
        }

        int warmUp = block > 1 ? 1 : 10;
        float sink = 0;
        for (int round = -warmUp; round < rounds; round++)
        {
            for (int i = 0; i < cases.Length; i++)
            {
                // A different case goes first in each round, so none is always right after a warm cache.
                int k = (i + round + warmUp) % cases.Length;
                for (int step = 0; step < block; step++)
                {
                    long start = Stopwatch.GetTimestamp();
                    sink += benchmarks[k].TrainStep();
                    double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                    if (round >= 0 && step >= skipped)
                    {
                        times[k][(round * (block - skipped)) + step - skipped] = ms;
                    }
                }
            }
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{rounds} rounds of {block} step(s) per case after {warmUp} warm-up, {skipped} first step(s) of a block not timed, {Environment.ProcessorCount} cores (loss sum {sink:G3})"));
        double noneMedian = Median(times[0]);
        for (int k = 0; k < cases.Length; k++)
        {
            double[] perRound = [.. times[k].Zip(times[0], (traced, none) => traced / none)];
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{cases[k],-22} median {Median(times[k]),8:F2} ms  {Median(times[k]) / noneMedian,5:F3}x the untraced median   per-round ratio median {Median(perRound),5:F3}x"));
        }

        foreach (TracerOverheadBenchmarks benchmark in benchmarks)
        {
            benchmark.Cleanup();
        }

        return 0;
    }

    private static double Median(double[] values)
    {
        double[] sorted = [.. values.Order()];
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
