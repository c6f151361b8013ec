using System.Diagnostics;
using System.Globalization;
using Monitor.Tracing;

namespace Monitor.Benchmarks;

/// <summary>
/// <c>summarizer-ratio [rounds] [elements] [normal|rows]</c>: the summarizer with its sampled histogram, the same with
/// every histogram exact, and a plain vectorized read of the same buffer (default 10M elements, 40 MB), timed one call
/// at a time in turn for each round (default 200), so that all three see the same load on this shared machine; prints
/// the minimum and the median of each and their ratios to the plain read. <c>normal</c> (the default) is N(0, 0.01);
/// <c>rows</c> is a matrix of 4,096-element rows, each with its own mean (N(0, 0.01)) and a spread of 0.001, as the
/// gradient of a weight matrix is (each row scaled by its output's error).
/// </summary>
internal static class SummarizerRatio
{
    public static int Run(string[] args)
    {
        int rounds = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 200;
        int elements = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 10_000_000;
        float[] values = SummarizerAftermathBenchmarks.Normal(elements, 0.01f, seed: 1);
        if (args.Length > 2 && args[2] == "rows")
        {
            float[] spread = SummarizerAftermathBenchmarks.Normal(elements, 0.001f, seed: 2);
            for (int i = 0; i < elements; i++)
            {
                // Element j belongs to row j / 4096, whose mean is the original draw values[j / 4096]: written from the
                // end, so that draw is read before its own element is rewritten.
                values[elements - 1 - i] = values[(elements - 1 - i) / 4096] + spread[elements - 1 - i];
            }
        }

        var buckets = new ulong[TensorSummarizer.BucketCount];
        string[] names = ["sampled histogram", "exact histogram", "plain read"];
        var times = new double[names.Length][];
        for (int k = 0; k < names.Length; k++)
        {
            times[k] = new double[rounds];
        }

        double sink = 0;
        for (int round = -10; round < rounds; round++)
        {
            for (int k = 0; k < names.Length; k++)
            {
                long start = Stopwatch.GetTimestamp();
                switch (k)
                {
                    case 0:
                        TensorSummarizer.SummarizeWith(values, buckets, out TensorStatistics sampled, sampleLargeHistograms: true);
                        sink += sampled.Variance;
                        break;
                    case 1:
                        TensorSummarizer.SummarizeWith(values, buckets, out TensorStatistics exact, sampleLargeHistograms: false);
                        sink += exact.Variance;
                        break;
                    default:
                        sink += SummarizerBenchmarks.PlainRead(values);
                        break;
                }

                double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                if (round >= 0)
                {
                    times[k][round] = ms;
                }
            }
        }

        double gigabytes = elements * 4.0 / 1e9;
        Array.ForEach(times, Array.Sort);
        double plainMin = times[2][0], plainMedian = times[2][rounds / 2];
        Console.WriteLine($"{elements:N0} elements ({(args.Length > 2 ? args[2] : "normal")}), {rounds} rounds, Vector<float> {System.Numerics.Vector<float>.Count} lanes (checksum {sink:G3})");
        for (int k = 0; k < names.Length; k++)
        {
            double min = times[k][0], median = times[k][rounds / 2];
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{names[k],-18} min {min,7:F3} ms ({gigabytes / (min / 1e3),5:F1} GB/s, {plainMin / min,4:P0} of the read)   median {median,7:F3} ms ({plainMedian / median,4:P0} of the read)"));
        }

        return 0;
    }
}
