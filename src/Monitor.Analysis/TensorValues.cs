using System.Runtime.InteropServices;
using Monitor.Contracts.V1;

namespace Monitor.Analysis;

/// <summary>Reads the raw values a record carries for a tensor (when its selection asked for them).</summary>
public static class TensorValues
{
    /// <summary>True when the tensor carries raw values.</summary>
    public static bool HasRaw(TensorRecord tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        return tensor.Raw is { } raw && !raw.Float32Le.IsEmpty;
    }

    /// <summary>
    /// The raw values (the first <c>limitSize</c> elements, row-major, as float32), empty when none were captured.
    /// The span points into the record's buffer: valid while the record is.
    /// </summary>
    public static ReadOnlySpan<float> Raw(TensorRecord tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (tensor.Raw is not { } raw || raw.Float32Le.IsEmpty)
        {
            return [];
        }

        // The wire format is little-endian float32, which is this machine's layout on every supported platform.
        return MemoryMarshal.Cast<byte, float>(raw.Float32Le.Span);
    }

    /// <summary>Whether the raw values are all of the tensor (not cut at the selection's limit).</summary>
    public static bool IsComplete(TensorRecord tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        return tensor.Raw is { Truncated: false } raw && !raw.Float32Le.IsEmpty;
    }
}
