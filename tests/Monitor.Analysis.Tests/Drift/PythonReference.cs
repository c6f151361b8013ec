using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Monitor.Analysis.Tests.Drift;

/// <summary>
/// Runs a reference script (tests/Monitor.Analysis.Tests/Drift/Reference/*.py) under Debian's python3 with scipy 1.10
/// (installed by tests/install-test-servers.sh): one JSON document in on stdin, one JSON document out on stdout. Batch
/// many cases into one call: starting Python with scipy costs about half a second.
/// </summary>
/// <remarks>
/// The interpreter is <c>$MONITOR_PYTHON</c>, else <c>/usr/bin/python3</c>: Debian's python3-scipy installs for the
/// system interpreter, not for a pyenv or venv one that may come first on PATH. A missing interpreter or module fails
/// the test with the reason (never a silent skip).
/// </remarks>
internal static class PythonReference
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(2);

    /// <summary>The interpreter the scripts run under.</summary>
    public static string Interpreter => Environment.GetEnvironmentVariable("MONITOR_PYTHON") is { Length: > 0 } python ? python : "/usr/bin/python3";

    /// <summary>Runs <paramref name="script"/> (a file name in Drift/Reference) with <paramref name="input"/> on stdin.</summary>
    /// <returns>The JSON the script printed.</returns>
    public static async Task<JsonNode> RunAsync(string script, JsonNode input)
    {
        string path = Path.Combine(AppContext.BaseDirectory, "Drift", "Reference", script);
        Assert.True(File.Exists(path), $"reference script {path} is missing (is it copied to the output directory?)");
        var start = new ProcessStartInfo(Interpreter, [path])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {Interpreter}");
        using var cancellation = new CancellationTokenSource(Timeout);
        Task<string> output = process.StandardOutput.ReadToEndAsync(cancellation.Token);
        Task<string> errors = process.StandardError.ReadToEndAsync(cancellation.Token);
        await process.StandardInput.WriteAsync(input.ToJsonString());
        process.StandardInput.Close();
        try
        {
            await process.WaitForExitAsync(cancellation.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{script} did not finish within {Timeout}");
        }

        string stdout = await output;
        string stderr = await errors;
        Assert.True(process.ExitCode == 0,
            $"{Interpreter} {script} exited with {process.ExitCode} (run tests/install-test-servers.sh for python3-scipy): {stderr}");
        return JsonNode.Parse(stdout) ?? throw new InvalidOperationException($"{script} printed nothing");
    }
}
