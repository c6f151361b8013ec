using System.Globalization;
using Google.Protobuf.Collections;
using Monitor.Analysis.State;
using Monitor.Contracts;
using Monitor.Contracts.V1;

namespace Monitor.Analysis.Rules;

/// <summary>
/// Check input images (smdebug <c>CheckInputImages</c>): estimates the mean of each channel of the input images from
/// their raw values and fires when one differs from zero by more than <see cref="ThresholdMean"/>, i.e. the images
/// were not normalized; optionally also when a channel's standard deviation is more than <see cref="ThresholdStd"/>
/// away from one.
/// </summary>
/// <remarks>
/// <para>Formula, per input tensor of each rank, on tumbling windows that close at the first record that brings the
/// window to at least <see cref="ThresholdSamples"/> images: for each channel <c>c</c> (axis <see cref="Channel"/> of
/// the tensor's shape, the batch being axis 0), <c>mean_c</c> and <c>std_c</c> over every finite value of that channel
/// in the window's images; the condition holds when <c>max_c |mean_c| &gt; ThresholdMean</c>, or, with
/// <see cref="ThresholdStd"/> set, <c>max_c |std_c - 1| &gt; ThresholdStd</c>. Only whole images are used (raw values
/// cut at the selection's limit leave the last one out); a shape with fewer axes than <see cref="Channel"/> is one
/// channel. Tensors of integer types other than <c>uint8</c>/<c>int8</c> (token ids, masks) and tensors of fewer
/// than two axes are not images and are skipped.</para>
/// <para>Parameters and defaults follow the SageMaker developer guide, "List of Debugger Built-in Rules",
/// CheckInputImages (<c>threshold_mean</c>, <c>threshold_samples</c>, <c>regex</c> → <see cref="Selector"/>,
/// <c>channel</c>).</para>
/// <para>Differences from smdebug: the default input tensor is the <c>inputs</c> collection, not the MXNet name
/// <c>.*hybridsequential0_input_0</c>. The statistics restart with every window, so the alert follows the data.
/// <see cref="ThresholdStd"/> is ours (off by default): the guide asks for zero mean and unit variance but checks the
/// mean only.</para>
/// </remarks>
public sealed class CheckInputImagesRule : ITrainingRule, IStatefulRule
{
    private const string Normalized = "every channel's mean (and standard deviation) within the thresholds";

    private static readonly TensorRequirement[] Needs =
        [new(CollectionNames.Inputs, Raw: true, "pixel values of the input images, for the mean per channel")];

    private readonly SeriesTable<Moments> _series = new();

    /// <summary>Largest allowed |mean| of a channel. Default 0.2 (smdebug's <c>threshold_mean</c>).</summary>
    public double ThresholdMean
    {
        get;
        init => field = value >= 0 && double.IsFinite(value) ? value : throw new ArgumentOutOfRangeException(nameof(ThresholdMean), value, "ThresholdMean must be finite and not negative");
    } = 0.2;

    /// <summary>Largest allowed |std - 1| of a channel, or null to not check it. Default null (ours).</summary>
    public double? ThresholdStd
    {
        get;
        init => field = value is null || (value >= 0 && double.IsFinite(value.Value)) ? value : throw new ArgumentOutOfRangeException(nameof(ThresholdStd), value, "ThresholdStd must be finite and not negative");
    }

    /// <summary>Images per window before the rule evaluates. Default 500 (smdebug's <c>threshold_samples</c>).</summary>
    public int ThresholdSamples
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(ThresholdSamples), value, "ThresholdSamples must be at least 1");
    } = 500;

    /// <summary>Axis of the color channel, at least 1 (axis 0 is the batch). Default 1, NCHW (smdebug's <c>channel</c>); 3 for NHWC.</summary>
    public int Channel
    {
        get;
        init => field = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(Channel), value, "Channel must be at least 1 (axis 0 is the batch)");
    } = 1;

    /// <summary>Which tensors are input images (smdebug's <c>regex</c>). Default: the <c>inputs</c> collection.</summary>
    public TensorSelector Selector { get; init; } = TensorSelector.Of(Collection.Inputs);

    /// <inheritdoc />
    public string Name { get; init; } = "CheckInputImages";

    /// <inheritdoc />
    public IReadOnlyList<TensorRequirement> Requirements => Needs;

    /// <inheritdoc />
    public void ForgetRank(string run, uint rank) => _series.Forget(run, rank);

    /// <inheritdoc />
    public int StateVersion => 1;

    /// <inheritdoc />
    public void WriteState(string run, uint rank, ref StateWriter writer) =>
        _series.WriteState(run, rank, ref writer, static (ref StateWriter w, Moments moments) => moments.WriteState(ref w));

    /// <inheritdoc />
    public Action ReadState(string run, uint rank, int version, ref StateReader reader) =>
        _series.ReadState(run, rank, ref reader, Moments.ReadState);

    /// <inheritdoc />
    public void Evaluate(StepRecord record, RuleContext context)
    {
        ArgumentNullException.ThrowIfNull(record);
        ArgumentNullException.ThrowIfNull(context);
        // Indexed: foreach over a RepeatedField allocates an enumerator per record.
        for (int index = 0; index < record.Tensors.Count; index++)
        {
            TensorRecord tensor = record.Tensors[index];
            if (tensor.Shape.Count < 2 || IsIdType(tensor.Dtype) || !TensorValues.HasRaw(tensor) || !Selector.Matches(tensor))
            {
                continue;
            }

            if (!Layout(tensor.Shape, Channel, out int outer, out int channels, out int inner))
            {
                continue;
            }

            int perImage = outer * channels * inner;
            ReadOnlySpan<float> values = TensorValues.Raw(tensor);
            int images = values.Length / perImage;
            if (images == 0)
            {
                continue;
            }

            var key = new SeriesKey(record.RunId, record.Rank, tensor.Name);
            if (!_series.TryGetValue(key, out Moments? moments) || moments.Channels != channels)
            {
                moments = new Moments(channels);
                _series[key] = moments;
            }

            for (int image = 0; image < images; image++)
            {
                for (int o = 0; o < outer; o++)
                {
                    for (int c = 0; c < channels; c++)
                    {
                        moments.Add(c, values.Slice((image * perImage) + (((o * channels) + c) * inner), inner));
                    }
                }
            }

            moments.Images += images;
            if (moments.Images >= ThresholdSamples)
            {
                Report(context, tensor.Name, moments);
                moments.Restart();
            }
        }
    }

    private void Report(RuleContext context, string tensor, Moments moments)
    {
        int meanChannel = -1;
        double worstMean = -1;
        double worstMeanValue = 0;
        int stdChannel = -1;
        double worstStd = -1;
        double worstStdValue = 0;
        for (int c = 0; c < moments.Channels; c++)
        {
            if (moments.Count[c] == 0)
            {
                continue;
            }

            double mean = moments.Sum[c] / moments.Count[c];
            double std = Math.Sqrt(Math.Max(0, (moments.SumOfSquares[c] / moments.Count[c]) - (mean * mean)));
            if (Math.Abs(mean) > worstMean)
            {
                worstMean = Math.Abs(mean);
                worstMeanValue = mean;
                meanChannel = c;
            }

            if (Math.Abs(std - 1) > worstStd)
            {
                worstStd = Math.Abs(std - 1);
                worstStdValue = std;
                stdChannel = c;
            }
        }

        if (meanChannel < 0)
        {
            return;
        }

        if (worstMean > ThresholdMean)
        {
            context.Report(tensor, true, worstMeanValue, ThresholdMean, string.Create(CultureInfo.InvariantCulture,
                $"mean of channel {meanChannel} of {tensor} over the last {moments.Images} images is {worstMeanValue:G4} (|mean| allowed up to {ThresholdMean:G3}): inputs not normalized"));
        }
        else if (ThresholdStd is { } thresholdStd && worstStd > thresholdStd)
        {
            context.Report(tensor, true, worstStdValue, thresholdStd, string.Create(CultureInfo.InvariantCulture,
                $"standard deviation of channel {stdChannel} of {tensor} over the last {moments.Images} images is {worstStdValue:G4} (|std - 1| allowed up to {thresholdStd:G3}): inputs not normalized"));
        }
        else
        {
            context.Report(tensor, false, worstMeanValue, ThresholdMean, Normalized);
        }
    }

    /// <summary>Integer types that hold ids or flags rather than pixels.</summary>
    private static bool IsIdType(DType dtype) => dtype is DType.Int16 or DType.Int32 or DType.Int64 or DType.Bool;

    /// <summary>Splits an image (the shape without its batch axis) into outer blocks × channels × inner values.</summary>
    private static bool Layout(RepeatedField<long> shape, int channelAxis, out int outer, out int channels, out int inner)
    {
        long o = 1;
        long c = 1;
        long i = 1;
        for (int axis = 1; axis < shape.Count; axis++)
        {
            long size = shape[axis];
            if (size <= 0)
            {
                outer = channels = inner = 0;
                return false;
            }

            if (axis < channelAxis)
            {
                o *= size;
            }
            else if (axis == channelAxis)
            {
                c = size;
            }
            else
            {
                i *= size;
            }

            if (o * c * i > int.MaxValue)
            {
                outer = channels = inner = 0;
                return false;
            }
        }

        outer = (int)o;
        channels = (int)c;
        inner = (int)i;
        return true;
    }

    private sealed class Moments(int channels)
    {
        public readonly double[] Sum = new double[channels];
        public readonly double[] SumOfSquares = new double[channels];
        public readonly long[] Count = new long[channels];
        public long Images;

        public int Channels => Sum.Length;

        public void Add(int channel, ReadOnlySpan<float> values)
        {
            double sum = 0;
            double squares = 0;
            long count = 0;
            foreach (float v in values)
            {
                if (float.IsFinite(v))
                {
                    sum += v;
                    squares += (double)v * v;
                    count++;
                }
            }

            Sum[channel] += sum;
            SumOfSquares[channel] += squares;
            Count[channel] += count;
        }

        public void Restart()
        {
            Array.Clear(Sum);
            Array.Clear(SumOfSquares);
            Array.Clear(Count);
            Images = 0;
        }

        public static Moments ReadState(ref StateReader reader)
        {
            double[] sum = reader.ReadDoubles("channel sums");
            double[] squares = reader.ReadDoubles("channel sums of squares");
            long[] count = reader.ReadVarInts("channel counts");
            long images = reader.ReadVarInt("images", 0, long.MaxValue);
            if (sum.Length == 0 || squares.Length != sum.Length || count.Length != sum.Length)
            {
                throw reader.Invalid("channel moments", "the per-channel arrays are empty or differ in length");
            }

            var moments = new Moments(sum.Length) { Images = images };
            sum.CopyTo(moments.Sum, 0);
            squares.CopyTo(moments.SumOfSquares, 0);
            count.CopyTo(moments.Count, 0);
            return moments;
        }

        public void WriteState(ref StateWriter writer)
        {
            writer.WriteDoubles(Sum);
            writer.WriteDoubles(SumOfSquares);
            writer.WriteVarInts(Count);
            writer.WriteVarInt(Images);
        }
    }
}
