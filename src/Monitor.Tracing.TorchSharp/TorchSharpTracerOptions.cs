namespace Monitor.Tracing.TorchSharp;

/// <summary>Where tensor statistics are computed.</summary>
public enum SummaryLocation
{
    /// <summary>CPU tensors on the host with the fused summarizer; other devices on the device. The default.</summary>
    Auto,

    /// <summary>Always on the device, with torch reductions, copied to the host once per step (tests, comparisons).</summary>
    Device,
}

/// <summary>Options of <see cref="TorchSharpTracer"/>.</summary>
public sealed class TorchSharpTracerOptions
{
    /// <summary>Trace module outputs through forward hooks (the activations collection). Default true.</summary>
    public bool CaptureActivations { get; init; } = true;

    /// <summary>Where statistics are computed. Default <see cref="SummaryLocation.Auto"/>.</summary>
    public SummaryLocation SummaryLocation { get; init; } = SummaryLocation.Auto;
}
