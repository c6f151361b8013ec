using Monitor.Analysis.Drift;

namespace Monitor.Analysis.Tests.Drift;

/// <summary>Runs a detector over a stream and records what it signalled, as river's examples and tests do.</summary>
internal static class DetectorRuns
{
    /// <summary>Every index after whose update <see cref="IDriftDetector.DriftDetected"/> was true.</summary>
    public static int[] Drifts(IDriftDetector detector, double[] stream) => Run(detector, stream).Drifts;

    /// <summary>Drift and warning indices (a warning index for every update that left a warning).</summary>
    public static (int[] Drifts, int[] Warnings) Run(IDriftDetector detector, double[] stream)
    {
        var drifts = new List<int>();
        var warnings = new List<int>();
        for (int i = 0; i < stream.Length; i++)
        {
            detector.Update(stream[i]);
            if (detector.DriftDetected)
            {
                drifts.Add(i);
            }

            if (detector.WarningDetected)
            {
                warnings.Add(i);
            }
        }

        return ([.. drifts], [.. warnings]);
    }

    /// <summary>
    /// What the loop of river's binary-detector docstrings prints: the first warning after the start or after each
    /// drift ("warning 1084"), and every drift ("drift 1334").
    /// </summary>
    public static string[] DocstringEvents(IDriftDetector detector, double[] stream)
    {
        var events = new List<string>();
        bool printWarning = true;
        for (int i = 0; i < stream.Length; i++)
        {
            detector.Update(stream[i]);
            if (detector.WarningDetected && printWarning)
            {
                events.Add($"warning {i}");
                printWarning = false;
            }

            if (detector.DriftDetected)
            {
                events.Add($"drift {i}");
                printWarning = true;
            }
        }

        return [.. events];
    }

    /// <summary>Indices written as river's test lists are compared here: "3,5-9,12" for 3, 5, 6, 7, 8, 9, 12.</summary>
    public static string Ranges(IEnumerable<int> indices)
    {
        var parts = new List<string>();
        int[] sorted = [.. indices];
        for (int i = 0; i < sorted.Length;)
        {
            int j = i;
            while (j + 1 < sorted.Length && sorted[j + 1] == sorted[j] + 1)
            {
                j++;
            }

            parts.Add(i == j ? $"{sorted[i]}" : $"{sorted[i]}-{sorted[j]}");
            i = j + 1;
        }

        return string.Join(",", parts);
    }
}
