using System.Collections.Frozen;
using System.Globalization;
using Monitor.Analysis.State;
using Monitor.Contracts;
using Monitor.Contracts.V1;

namespace Monitor.Analysis.Rules;

/// <summary>
/// NLP sequence ratio (smdebug <c>NLPSequenceRatio</c>): from the raw token ids of the input sequences, the share of
/// given tokens (padding, unknown words, ...) per sequence; fires when a token's share exceeds its threshold, a sign
/// that the bucketing wastes compute on padding or that the vocabulary misses too many words.
/// </summary>
/// <remarks>
/// <para>Formula, per input tensor of each rank, at every record: sequences are the rows of the last axis (length
/// <c>L = shape[^1]</c>, <c>S</c> whole rows in the raw values); for each token <c>t</c> of
/// <see cref="TokenThresholdsPercent"/>, <c>ratio_t = 100 * mean over sequences of (count of t in the sequence / L)</c>,
/// which for rows of equal length is <c>100 * count_t / (S * L)</c>. The condition holds when
/// <c>ratio_t &gt; threshold_t</c> for some token; the reported token is the one furthest above (or nearest to) its
/// threshold. Only tensors of signed integer types (<c>int16</c>, <c>int32</c>, <c>int64</c>, <c>int8</c>) are token
/// ids; others are skipped.</para>
/// <para>Parameters and defaults follow the SageMaker developer guide, "List of Debugger Built-in Rules",
/// NLPSequenceRatio (<c>tensor_regex</c> → <see cref="Selector"/>, <c>token_values</c> and
/// <c>token_thresholds_percent</c> → <see cref="TokenThresholdsPercent"/>: token 0 at 50%; the guide's default
/// thresholds string <c>"50,50"</c> has one entry more than its default tokens <c>"0"</c>).</para>
/// <para>Differences from smdebug: the default input tensor is the <c>inputs</c> collection (integer-typed tensors of
/// it), not the MXNet name <c>.*embedding0_input_0</c>.</para>
/// </remarks>
public sealed class NLPSequenceRatioRule : ITrainingRule, IStatefulRule
{
    private const string WithinThresholds = "every token's share within its threshold";

    private static readonly TensorRequirement[] Needs =
        [new(CollectionNames.Inputs, Raw: true, "token ids of the input sequences, to count the given tokens")];

    private float[] _tokens = [0];
    private double[] _thresholds = [50];
    private long[] _counts = new long[1];

    /// <summary>
    /// Tokens watched and the largest share, in percent of each sequence, each may have (smdebug's
    /// <c>token_values</c> with <c>token_thresholds_percent</c>). Default: token 0 at 50%. Token ids in
    /// [0, 2^24] (exact in float32), thresholds in [0, 100].
    /// </summary>
    public IReadOnlyDictionary<int, double> TokenThresholdsPercent
    {
        get;
        init
        {
            ArgumentNullException.ThrowIfNull(value, nameof(TokenThresholdsPercent));
            if (value.Count == 0)
            {
                throw new ArgumentException("TokenThresholdsPercent must name at least one token", nameof(TokenThresholdsPercent));
            }

            foreach ((int token, double percent) in value)
            {
                if (token is < 0 or > (1 << 24) || percent is not (>= 0 and <= 100))
                {
                    throw new ArgumentOutOfRangeException(nameof(TokenThresholdsPercent), $"token {token} at {percent}%: tokens must be in [0, 2^24] and thresholds in [0, 100]");
                }
            }

            field = value.ToFrozenDictionary();
            _tokens = [.. field.Keys.Select(t => (float)t)];
            _thresholds = [.. field.Values];
            _counts = new long[field.Count];
        }
    } = new Dictionary<int, double> { [0] = 50 }.ToFrozenDictionary();

    /// <summary>Which tensors hold token ids (smdebug's <c>tensor_regex</c>). Default: the <c>inputs</c> collection.</summary>
    public TensorSelector Selector { get; init; } = TensorSelector.Of(Collection.Inputs);

    /// <inheritdoc />
    public string Name { get; init; } = "NLPSequenceRatio";

    /// <inheritdoc />
    public IReadOnlyList<TensorRequirement> Requirements => Needs;

    /// <inheritdoc />
    public int StateVersion => 1;

    /// <inheritdoc />
    /// <remarks>Nothing: each record is judged on its own.</remarks>
    public void WriteState(string run, uint rank, ref StateWriter writer)
    {
    }

    /// <inheritdoc />
    public Action ReadState(string run, uint rank, int version, ref StateReader reader) => StateRestore.None;

    /// <inheritdoc />
    public void Evaluate(StepRecord record, RuleContext context)
    {
        ArgumentNullException.ThrowIfNull(record);
        ArgumentNullException.ThrowIfNull(context);
        // Indexed: foreach over a RepeatedField allocates an enumerator per record.
        for (int index = 0; index < record.Tensors.Count; index++)
        {
            TensorRecord tensor = record.Tensors[index];
            if (!IsTokenType(tensor.Dtype) || !TensorValues.HasRaw(tensor) || !Selector.Matches(tensor))
            {
                continue;
            }

            ReadOnlySpan<float> values = TensorValues.Raw(tensor);
            long length = tensor.Shape.Count > 0 ? tensor.Shape[^1] : values.Length;
            if (length <= 0 || length > values.Length)
            {
                continue;
            }

            int used = (int)(values.Length / length * length);
            Array.Clear(_counts);
            foreach (float v in values[..used])
            {
                for (int t = 0; t < _tokens.Length; t++)
                {
                    if (v == _tokens[t])
                    {
                        _counts[t]++;
                    }
                }
            }

            int worst = 0;
            double worstExcess = double.NegativeInfinity;
            for (int t = 0; t < _tokens.Length; t++)
            {
                double excess = (100.0 * _counts[t] / used) - _thresholds[t];
                if (excess > worstExcess)
                {
                    worst = t;
                    worstExcess = excess;
                }
            }

            double ratio = 100.0 * _counts[worst] / used;
            if (worstExcess > 0)
            {
                context.Report(tensor.Name, true, ratio, _thresholds[worst], string.Create(CultureInfo.InvariantCulture,
                    $"token {_tokens[worst]} is {ratio:F1}% of the {used / length} sequences of {tensor.Name} (length {length}), allowed {_thresholds[worst]:F1}%"));
            }
            else
            {
                context.Report(tensor.Name, false, ratio, _thresholds[worst], WithinThresholds);
            }
        }
    }

    private static bool IsTokenType(DType dtype) => dtype is DType.Int8 or DType.Int16 or DType.Int32 or DType.Int64;
}
