using System.Globalization;

namespace Monitor.Analysis.Drift;

/// <summary>
/// Parameter checks shared by the streaming detectors. Each throws <see cref="ArgumentOutOfRangeException"/> whose
/// parameter name is river's spelling of the parameter (<c>delta</c>, <c>min_window_length</c>, ...), so a message
/// reads the same whether the detector was built in code or by <see cref="DriftDetectors.Create"/>.
/// </summary>
internal static class DetectorArguments
{
    /// <summary><paramref name="value"/> in the open interval (0, 1).</summary>
    public static double InOpenUnitInterval(double value, string detector, string parameter) =>
        value is > 0 and < 1 ? value : throw OutOfRange(detector, parameter, value, "must be greater than 0 and less than 1");

    /// <summary><paramref name="value"/> in the half-open interval (0, 1].</summary>
    public static double InUnitInterval(double value, string detector, string parameter) =>
        value is > 0 and <= 1 ? value : throw OutOfRange(detector, parameter, value, "must be greater than 0 and at most 1");

    /// <summary>A finite <paramref name="value"/> greater than zero.</summary>
    public static double Positive(double value, string detector, string parameter) =>
        value > 0 && double.IsFinite(value) ? value : throw OutOfRange(detector, parameter, value, "must be a finite number greater than 0");

    /// <summary>A finite <paramref name="value"/> of zero or more.</summary>
    public static double NonNegative(double value, string detector, string parameter) =>
        value >= 0 && double.IsFinite(value) ? value : throw OutOfRange(detector, parameter, value, "must be a finite number of at least 0");

    /// <summary>An integer of at least <paramref name="minimum"/>.</summary>
    public static int AtLeast(int value, int minimum, string detector, string parameter) =>
        value >= minimum ? value : throw OutOfRange(detector, parameter, value, $"must be an integer of at least {minimum.ToString(CultureInfo.InvariantCulture)}");

    /// <summary>A named value of <typeparamref name="T"/>.</summary>
    public static T Defined<T>(T value, string detector, string parameter)
        where T : struct, Enum =>
        Enum.IsDefined(value)
            ? value
            : throw OutOfRange(detector, parameter, value, $"must be one of {string.Join(", ", Enum.GetNames<T>()).ToLowerInvariant()}");

    private static ArgumentOutOfRangeException OutOfRange(string detector, string parameter, object value, string rule) =>
        new(parameter, value, $"{detector} parameter '{parameter}' {rule}; got {Convert.ToString(value, CultureInfo.InvariantCulture)}.");
}
