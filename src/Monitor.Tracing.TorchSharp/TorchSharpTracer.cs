using System.Runtime.InteropServices;
using Monitor.Contracts;
using Monitor.Contracts.V1;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Monitor.Tracing.TorchSharp;

/// <summary>
/// Attaches a <see cref="StepTracer"/> to a TorchSharp model and optimizer: parameters (weights, biases), their
/// gradients, module outputs (activations, through forward hooks), losses and the optimizer's learning rates.
/// </summary>
/// <remarks>
/// <para><b>Use.</b> Per step: <see cref="BeginStep"/> before the forward pass, <see cref="RecordLoss"/> after the loss is
/// computed, <see cref="EndStep"/> after <c>optimizer.step()</c> and before the next <c>zero_grad()</c> (so weights are
/// the updated ones and gradients are this step's). Call submodules with <c>call()</c>, not <c>forward()</c>, so their
/// hooks run. Names follow PyTorch: <c>fc1.weight</c>, <c>fc1.weight.grad</c>, <c>fc1.output</c>,
/// <c>optimizer.param_groups.0.lr</c>.</para>
/// <para><b>Cost.</b> Nothing is captured on steps the schedule skips, nor for tensors the selection leaves out, nor for
/// those the overhead budget thins out of a step (<see cref="TracerOptions.OverheadBudget"/>; the hooks, the capture at
/// <see cref="EndStep"/> and the batch and tensor recorders are what it counts as the tracer's cost). CPU
/// tensors are read in place by the fused summarizer (no copy for contiguous float32). Tensors on other devices are
/// reduced on the device, and all their statistics of a step are copied to the host in one transfer at
/// <see cref="EndStep"/>: one device-to-host synchronisation per step, not one per tensor. Once warm, the capture of
/// CPU tensors allocates only what TorchSharp allocates for a gradient: <c>Parameter.grad</c> returns a new managed
/// wrapper (48 bytes) per call, and there is no other public way to reach a gradient. Device reductions queue about
/// 30 torch operations per tensor (each allocates managed wrappers) and none that synchronises: hooks never wait for
/// the device, raw values and sampled rows are copied on the device and travel in the step's one transfer, and
/// temporaries stay within about three float32 copies of a chunk of at most 2^24 elements (see
/// <c>DeviceReductions</c>).</para>
/// <para><b>Failure.</b> Like the tracer, no method or hook throws into the training loop; faults are counted in
/// <see cref="TracerStatistics.Faults"/>. Threading: the training thread only.</para>
/// </remarks>
public sealed class TorchSharpTracer : IDisposable
{
    private readonly StepTracer _tracer;
    private readonly nn.Module _model;
    private readonly optim.Optimizer? _optimizer;
    private readonly TorchSharpTracerOptions _options;
    private readonly List<IDisposable> _hooks = [];
    private readonly (string Name, string GradientName, CollectionSet Collections, Parameter Parameter)[] _parameters;
    private readonly List<PendingDeviceSummary> _pending = [];
    private readonly Dictionary<string, CatalogEntry> _catalog = new(StringComparer.Ordinal);
    private readonly ulong[] _buckets = new ulong[TensorSummarizer.BucketCount];
    private float[] _rawValues = [];
    private volatile CatalogEntry[] _catalogSnapshot = [];
    private bool _disposed;
    private Mode _mode = Mode.Train;

    private static readonly CollectionSet GradientSet = CollectionSet.Of(Collection.Gradients);
    private static readonly CollectionSet ActivationSet = CollectionSet.Of(Collection.Activations);
    private static readonly CollectionSet LossSet = CollectionSet.Of(Collection.Losses);
    private static readonly CollectionSet OptimizerSet = CollectionSet.Of(Collection.Optimizer);
    private static readonly CollectionSet InputSet = CollectionSet.Of(Collection.Inputs);
    private static readonly CollectionSet PredictionSet = CollectionSet.Of(Collection.Predictions);
    private static readonly CollectionSet LabelSet = CollectionSet.Of(Collection.Labels);

    private TorchSharpTracer(StepTracer tracer, nn.Module model, optim.Optimizer? optimizer, TorchSharpTracerOptions options)
    {
        _tracer = tracer;
        _model = model;
        _optimizer = optimizer;
        _options = options;
        _parameters = model.named_parameters()
            .Select(p =>
            {
                string last = p.name[(p.name.LastIndexOf('.') + 1)..];
                CollectionSet collections = CollectionSet.Of(last == "bias" ? Collection.Biases : Collection.Weights);
                return (p.name, p.name + ".grad", collections, p.parameter);
            })
            .ToArray();
        foreach ((string name, string gradientName, CollectionSet collections, Parameter parameter) in _parameters)
        {
            AddToCatalog(name, parameter.shape, parameter.dtype, collections);
            AddToCatalog(gradientName, parameter.shape, parameter.dtype, GradientSet);
        }
    }

    /// <summary>The tracer records go through.</summary>
    public StepTracer Tracer => _tracer;

    /// <summary>
    /// Every tensor this adapter can trace, with shape, dtype and collections (activations appear after the first
    /// forward pass that ran with the hooks attached; losses and learning rates after they were first recorded). A
    /// snapshot: safe to read from any thread (the control plane publishes it).
    /// </summary>
    public IReadOnlyList<CatalogEntry> Catalog => _catalogSnapshot;

    /// <summary>Attaches to <paramref name="model"/> (and <paramref name="optimizer"/>, for learning rates).</summary>
    /// <exception cref="ArgumentNullException">A required argument is null.</exception>
    public static TorchSharpTracer Attach(StepTracer tracer, nn.Module model, optim.Optimizer? optimizer = null, TorchSharpTracerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(tracer);
        ArgumentNullException.ThrowIfNull(model);
        var adapter = new TorchSharpTracer(tracer, model, optimizer, options ?? new TorchSharpTracerOptions());
        // Lineage: the framework versions go into the run metadata, which the first record carries.
        tracer.AddVersion("TorchSharp", typeof(torch).Assembly.GetName().Version?.ToString() ?? "");
        tracer.AddVersion("libtorch", torch.__version__);
        if (adapter._options.CaptureActivations)
        {
            foreach ((string name, nn.Module module) in model.named_modules())
            {
                if (name.Length > 0 && module is nn.Module<Tensor, Tensor> hookable)
                {
                    adapter.AddActivationHook(name + ".output", hookable);
                }
            }
        }

        return adapter;
    }

    /// <summary>
    /// Begins a step; see <see cref="StepTracer.BeginStep"/>. When a selection with a one-shot <c>atBegin</c> part has
    /// just taken effect, that capture (parameters as they are now, with raw values) is taken and sent first. Never
    /// throws.
    /// </summary>
    public bool BeginStep(long step, Mode mode = Mode.Train)
    {
        DisposePending();
        if (_tracer.BeginAtBeginCapture(step))
        {
            using StepTracer.CostScope cost = _tracer.MeasureCost();
            try
            {
                CaptureParameters();
                FlushDeviceSummaries();
            }
#pragma warning disable CA1031 // Never throw into the training loop.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                _tracer.ReportFault("at-begin", ex);
            }
            finally
            {
                DisposePending();
                _tracer.EndStep();
            }
        }

        _mode = mode;
        return _tracer.BeginStep(step, mode);
    }

    /// <summary>Traces a loss tensor (collection losses). Never throws.</summary>
    public void RecordLoss(Tensor loss, string name = "loss") => RecordTensor(name, loss, LossSet);

    /// <summary>Traces any tensor under the given collections (inputs, predictions, labels, custom). Never throws.</summary>
    public void RecordTensor(string name, Tensor tensor, CollectionSet collections)
    {
        try
        {
            using StepTracer.CostScope cost = _tracer.MeasureCost();
            if (!_catalog.ContainsKey(name))
            {
                AddToCatalog(name, tensor.shape, tensor.dtype, collections);
            }

            Capture(name, collections, tensor);
        }
#pragma warning disable CA1031 // Never throw into the training loop.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            _tracer.ReportFault("capture", ex);
        }
    }

    /// <summary>
    /// Traces one batch of examples, each tensor with the batch as its first dimension: the model's
    /// <paramref name="inputs"/> (tabular: <c>[batch, features]</c>, with <paramref name="featureNames"/>), its
    /// <paramref name="predictions"/>, the <paramref name="labels"/> and the per-example <paramref name="losses"/>
    /// (a loss computed with <c>reduction: none</c>). These are what drift monitors compare between a reference and the
    /// latest steps. Summaries cover the whole batch; raw values (when the selection asks for them, e.g.
    /// <c>inputs: {raw: true}</c>) are whole examples, as many as <c>limitSize</c> holds, sampled at the same rows of
    /// every tensor (see <see cref="StepTracer.AddBatch"/>). Pass null for what you do not have. Never throws.
    /// </summary>
    /// <param name="inputs">Model inputs (collection inputs, name <c>inputs</c>).</param>
    /// <param name="predictions">Predictions: class ids or scores (collection predictions, name <c>predictions</c>).</param>
    /// <param name="labels">Targets (collection labels, name <c>labels</c>).</param>
    /// <param name="losses">Per-example losses (collection losses, name <paramref name="lossName"/>). Record the
    /// batch's loss either here or as a scalar with <see cref="RecordLoss"/>, not both under one name: a name is traced
    /// once per step.</param>
    /// <param name="featureNames">Names of the input columns (the product of the dimensions after the first), or null.</param>
    /// <param name="lossName">Name of the per-example losses. Default <c>loss</c>.</param>
    public void RecordBatch(Tensor? inputs = null, Tensor? predictions = null, Tensor? labels = null, Tensor? losses = null,
        IReadOnlyList<string>? featureNames = null, string lossName = "loss")
    {
        try
        {
            using StepTracer.CostScope cost = _tracer.MeasureCost();
            if (inputs is not null)
            {
                CaptureBatch("inputs", InputSet, inputs, featureNames);
            }

            if (predictions is not null)
            {
                CaptureBatch("predictions", PredictionSet, predictions, null);
            }

            if (labels is not null)
            {
                CaptureBatch("labels", LabelSet, labels, null);
            }

            if (losses is not null)
            {
                CaptureBatch(lossName, LossSet, losses, null);
            }
        }
#pragma warning disable CA1031 // Never throw into the training loop.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            _tracer.ReportFault("capture", ex);
        }
    }

    /// <summary>
    /// Ends the step: captures parameters, gradients and learning rates (training steps only), copies device
    /// statistics to the host in one transfer, and hands the record to the tracer. Never throws.
    /// </summary>
    public void EndStep()
    {
        // The whole capture is the tracer's cost of the step (the overhead budget weighs it against the step time).
        using StepTracer.CostScope cost = _tracer.MeasureCost();
        try
        {
            // Parameters, gradients and learning rates belong to training steps; an eval or predict step has no backward
            // pass and its record would only repeat the last training step's values.
            bool traced = _tracer.IsTracingStep && _mode == Mode.Train;
            if (traced)
            {
                CaptureParameters();
            }

            if (_optimizer is not null)
            {
                // Indexed when it is a list (TorchSharp's optimizers keep one): its enumerator would be boxed every step.
                if (_optimizer.ParamGroups is IReadOnlyList<optim.ILearningRateController> groups)
                {
                    for (int group = 0; group < groups.Count; group++)
                    {
                        CaptureLearningRate(group, groups[group], traced);
                    }
                }
                else
                {
                    int group = 0;
                    foreach (optim.ILearningRateController controller in _optimizer.ParamGroups)
                    {
                        CaptureLearningRate(group++, controller, traced);
                    }
                }
            }

            if (_tracer.IsTracingStep)
            {
                FlushDeviceSummaries();
            }
        }
#pragma warning disable CA1031 // Never throw into the training loop.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            _tracer.ReportFault("end-step", ex);
        }
        finally
        {
            DisposePending();
            _tracer.EndStep();
        }
    }

    /// <summary>Removes the hooks. The tracer itself is not disposed.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        foreach (IDisposable hook in _hooks)
        {
            hook.Dispose();
        }

        DisposePending();
    }

    private readonly List<string> _learningRateNames = [];

    private void CaptureLearningRate(int group, optim.ILearningRateController controller, bool traced)
    {
        // Listed in the catalog whether or not this step is traced.
        string name = LearningRateName(group);
        AddToCatalog(name, [], ScalarType.Float64, OptimizerSet);
        if (traced)
        {
            _tracer.AddScalar(name, OptimizerSet, controller.LearningRate);
        }
    }

    private string LearningRateName(int group)
    {
        while (_learningRateNames.Count <= group)
        {
            _learningRateNames.Add($"optimizer.param_groups.{_learningRateNames.Count}.lr");
        }

        return _learningRateNames[group];
    }

    private void CaptureParameters()
    {
        foreach ((string name, string gradientName, CollectionSet collections, Parameter parameter) in _parameters)
        {
            Capture(name, collections, parameter);
            if (_tracer.Wants(gradientName, GradientSet))
            {
                using Tensor? gradient = parameter.grad;
                if (gradient is not null)
                {
                    Capture(gradientName, GradientSet, gradient);
                }
            }
        }
    }

    private void AddToCatalog(string name, long[] shape, ScalarType dtype, CollectionSet collections)
    {
        if (_catalog.ContainsKey(name))
        {
            return;
        }

        _catalog[name] = new CatalogEntry(name, shape, DTypeName(DTypeOf(dtype)), collections.Members().Select(CollectionNames.NameOf).ToArray());
        _catalogSnapshot = [.. _catalog.Values];
    }

    private void AddActivationHook(string name, nn.Module<Tensor, Tensor> module)
    {
        var remover = module.register_forward_hook((_, _, output) =>
        {
            try
            {
                using StepTracer.CostScope cost = _tracer.MeasureCost();
                if (!_catalog.ContainsKey(name))
                {
                    AddToCatalog(name, output.shape, output.dtype, ActivationSet);
                }

                Capture(name, ActivationSet, output);
            }
#pragma warning disable CA1031 // A hook runs inside the user's forward pass: it must never throw.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                _tracer.ReportFault("forward-hook", ex);
            }

            // Returning the output unchanged: the hook observes, it never alters the forward pass.
            return output;
        });
        _hooks.Add(new HookHandle(remover.remove));
    }

    private void Capture(string name, CollectionSet collections, Tensor tensor)
    {
        if (!_tracer.Wants(name, collections))
        {
            return;
        }

        DType dtype = DTypeOf(tensor.dtype);
        if (SummarizesOnHost(tensor))
        {
            ReadOnlySpan<long> dimensions = ShapeOf(tensor, stackalloc long[MaxStackDimensions]);
            if (IsHostFloat32(tensor))
            {
                _tracer.AddValues(name, collections, dtype, dimensions, Float32Of(tensor));
                return;
            }

            using var scope = NewDisposeScope();
            _tracer.AddValues(name, collections, dtype, dimensions, Float32Of(ConvertedFloat32(tensor)));
            return;
        }

        long[] shape = tensor.shape;
        Tensor reductions = DeviceReductions.Compute(tensor);
        Tensor? raw = null;
        if (_tracer.RawLimitOf(name, collections) is > 0 and int limit)
        {
            // The head is copied on the device (the tensor may change in place before the step ends) and leaves it with
            // the step's reductions.
            using var scope = NewDisposeScope();
            Tensor head = tensor.detach().reshape(-1);
            raw = head.slice(0, 0, Math.Min(limit, head.numel()), 1).to_type(ScalarType.Float64, copy: true).MoveToOuterDisposeScope();
        }

        _pending.Add(new PendingDeviceSummary(name, collections, dtype, shape, tensor.numel(), reductions, raw));
    }

    private bool SummarizesOnHost(Tensor tensor) => tensor.device_type == DeviceType.CPU && _options.SummaryLocation == SummaryLocation.Auto;

    // Tensors of more dimensions take TorchSharp's shape array (which allocates) instead of a stack buffer.
    private const int MaxStackDimensions = 16;

    /// <summary>The tensor's shape, read dimension by dimension into <paramref name="buffer"/>: <c>Tensor.shape</c>
    /// allocates an array (and more) per call.</summary>
    private static ReadOnlySpan<long> ShapeOf(Tensor tensor, Span<long> buffer)
    {
        long rank = tensor.Dimensions;
        if (rank > buffer.Length)
        {
            return tensor.shape;
        }

        Span<long> shape = buffer[..(int)rank];
        for (int i = 0; i < shape.Length; i++)
        {
            shape[i] = tensor.size(i);
        }

        return shape;
    }

    /// <summary>A contiguous float32 CPU tensor: its values are read in place, with no copy and no managed wrapper.</summary>
    private static bool IsHostFloat32(Tensor tensor) => tensor.dtype == ScalarType.Float32 && tensor.is_contiguous();

    /// <summary>A contiguous float32 copy of another CPU tensor. Call inside a dispose scope, and read it before the scope ends.</summary>
    private static Tensor ConvertedFloat32(Tensor tensor)
    {
        Tensor values = tensor.detach();
        if (values.dtype != ScalarType.Float32)
        {
            values = values.to_type(ScalarType.Float32);
        }

        return values.is_contiguous() ? values : values.contiguous();
    }

    /// <summary>The values of a contiguous float32 CPU tensor, in libtorch's own buffer.</summary>
    private static ReadOnlySpan<float> Float32Of(Tensor tensor) => MemoryMarshal.Cast<byte, float>(tensor.bytes);

    private void CaptureBatch(string name, CollectionSet collections, Tensor tensor, IReadOnlyList<string>? featureNames)
    {
        if (!_catalog.ContainsKey(name))
        {
            AddToCatalog(name, tensor.shape, tensor.dtype, collections);
        }

        if (!_tracer.Wants(name, collections))
        {
            return;
        }

        DType dtype = DTypeOf(tensor.dtype);
        if (SummarizesOnHost(tensor))
        {
            ReadOnlySpan<long> dimensions = ShapeOf(tensor, stackalloc long[MaxStackDimensions]);
            if (IsHostFloat32(tensor))
            {
                _tracer.AddBatch(name, collections, dtype, dimensions, Float32Of(tensor), featureNames);
                return;
            }

            using var scope = NewDisposeScope();
            _tracer.AddBatch(name, collections, dtype, dimensions, Float32Of(ConvertedFloat32(tensor)), featureNames);
            return;
        }

        long[] shape = tensor.shape;

        Tensor reductions = DeviceReductions.Compute(tensor);
        Tensor? rows = null;
        int kept = StepTracer.BatchSampleRows(shape, _tracer.RawLimitOf(name, collections));
        if (kept > 0)
        {
            // The sampled examples are picked on the device, at the rows BatchSample.Row gives (index · batch / kept),
            // and leave it with the step's reductions.
            using var scope = NewDisposeScope();
            long batch = shape.Length == 0 ? 1 : shape[0];
            Tensor index = arange(kept, ScalarType.Int64, tensor.device);
            if (kept < batch)
            {
                index = index.mul_(batch).floor_divide_(kept);
            }

            Tensor source = shape.Length == 0 ? tensor.detach().reshape(1) : tensor.detach();
            rows = source.index_select(0, index).reshape(-1).to_type(ScalarType.Float64).MoveToOuterDisposeScope();
        }

        _pending.Add(new PendingDeviceSummary(name, collections, dtype, shape, tensor.numel(), reductions, rows) { Batch = true, FeatureNames = featureNames });
    }

    private void FlushDeviceSummaries()
    {
        if (_pending.Count == 0)
        {
            return;
        }

        using var scope = NewDisposeScope();
        var parts = new List<Tensor>(2 * _pending.Count);
        foreach (PendingDeviceSummary p in _pending)
        {
            parts.Add(p.Reductions);
            if (p.Raw is { } raw)
            {
                parts.Add(raw);
            }
        }

        // The single device-to-host transfer of the step: every reduction and every raw head, in one float64 buffer.
        Tensor host = CopyToHost(cat(parts, 0));
        ReadOnlySpan<double> all = host.data<double>().ToArray();
        int offset = 0;
        foreach (PendingDeviceSummary p in _pending)
        {
            int width = (int)(DeviceReductions.ChunksOf(p.Count) * DeviceReductions.Width);
            DeviceReductions.Read(all.Slice(offset, width), DeviceReductions.ChunksOf(p.Count), p.Count, _buckets, out TensorStatistics statistics);
            offset += width;
            int rawLength = p.Raw is { } raw ? (int)raw.numel() : 0;
            if (_rawValues.Length < rawLength)
            {
                _rawValues = new float[rawLength];
            }

            Span<float> values = _rawValues.AsSpan(0, rawLength);
            for (int i = 0; i < values.Length; i++)
            {
                values[i] = (float)all[offset + i];
            }

            offset += rawLength;
            if (p.Batch)
            {
                _tracer.AddBatchSummary(p.Name, p.Collections, p.DType, p.Shape, statistics, _buckets, values, p.FeatureNames);
            }
            else
            {
                _tracer.AddSummary(p.Name, p.Collections, p.DType, p.Shape, statistics, _buckets, values);
            }
        }
    }

    /// <summary>Device-to-host copies made (the step's one transfer; <see cref="CopyToHost"/> counts them).</summary>
    internal long HostTransfers { get; private set; }

    /// <summary>The seam of the device-to-host copy (tests count the copies; on CPU tensors it is the identity).</summary>
    internal Func<Tensor, Tensor> HostCopy { get; set; } = tensor => tensor.cpu();

    private Tensor CopyToHost(Tensor tensor)
    {
        HostTransfers++;
        return HostCopy(tensor);
    }

    private void DisposePending()
    {
        foreach (PendingDeviceSummary p in _pending)
        {
            p.Reductions.Dispose();
            p.Raw?.Dispose();
        }

        _pending.Clear();
    }

    internal static DType DTypeOf(ScalarType type) => type switch
    {
        ScalarType.Float32 => DType.Float32,
        ScalarType.Float64 => DType.Float64,
        ScalarType.Float16 => DType.Float16,
        ScalarType.BFloat16 => DType.Bfloat16,
        ScalarType.Int8 => DType.Int8,
        ScalarType.Int16 => DType.Int16,
        ScalarType.Int32 => DType.Int32,
        ScalarType.Int64 => DType.Int64,
        ScalarType.Byte => DType.Uint8,
        ScalarType.Bool => DType.Bool,
        _ => DType.Unspecified,
    };

    internal static string DTypeName(DType type) => type switch
    {
        DType.Bfloat16 => "bfloat16",
        DType.Unspecified => "unknown",
        _ => type.ToString().ToLowerInvariant(),
    };

    private sealed record PendingDeviceSummary(string Name, CollectionSet Collections, DType DType, long[] Shape, long Count, Tensor Reductions, Tensor? Raw)
    {
        /// <summary>A batch of examples (RecordBatch): <see cref="Raw"/> holds whole sampled rows.</summary>
        public bool Batch { get; init; }

        public IReadOnlyList<string>? FeatureNames { get; init; }
    }

    private sealed class HookHandle(Action remove) : IDisposable
    {
        public void Dispose() => remove();
    }
}
