using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Monitor.Contracts;

/// <summary>
/// A selection's overhead budget: the fraction of the step time the tracer may spend on the training thread
/// (<c>"budget": 0.02</c>), or no budget at all (<c>"budget": "none"</c>, e.g. while debugging, when every selected
/// tensor must be traced at every scheduled step whatever it costs). A selection without one keeps the worker's own
/// default (<c>TracerOptions.OverheadBudget</c>, 2%).
/// </summary>
/// <param name="Fraction">The budget, in (0, 1]; null for none.</param>
[JsonConverter(typeof(TraceBudgetJsonConverter))]
public sealed record TraceBudget(double? Fraction)
{
    /// <summary>The JSON word for no budget.</summary>
    public const string NoneWord = "none";

    /// <summary>No budget: nothing is thinned.</summary>
    public static TraceBudget None { get; } = new((double?)null);

    /// <summary>True for <see cref="None"/>.</summary>
    public bool IsNone => Fraction is null;

    /// <summary>The problem with a budget fraction (it must be in (0, 1]), or null when it is valid.</summary>
    public static string? Check(double fraction) =>
        fraction > 0 && fraction <= 1 ? null : $"{fraction.ToString(CultureInfo.InvariantCulture)} is outside (0, 1] (a fraction of the step time, e.g. 0.02), or use \"{NoneWord}\"";

    /// <inheritdoc />
    public override string ToString() => Fraction is { } f ? f.ToString(CultureInfo.InvariantCulture) : NoneWord;
}

/// <summary>Reads and writes a <see cref="TraceBudget"/> as a number or the string <c>"none"</c>.</summary>
internal sealed class TraceBudgetJsonConverter : JsonConverter<TraceBudget>
{
    public override TraceBudget Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.TokenType switch
    {
        JsonTokenType.Number => new TraceBudget(reader.GetDouble()),
        JsonTokenType.String when reader.ValueTextEquals(TraceBudget.NoneWord) => TraceBudget.None,
        _ => throw new JsonException($"budget must be a fraction of the step time in (0, 1] (e.g. 0.02) or \"{TraceBudget.NoneWord}\""),
    };

    public override void Write(Utf8JsonWriter writer, TraceBudget value, JsonSerializerOptions options)
    {
        if (value.Fraction is { } fraction)
        {
            writer.WriteNumberValue(fraction);
        }
        else
        {
            writer.WriteStringValue(TraceBudget.NoneWord);
        }
    }
}
