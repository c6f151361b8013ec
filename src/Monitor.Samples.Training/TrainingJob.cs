using System.Globalization;
using Monitor.Contracts;
using Monitor.Contracts.V1;
using Monitor.Tracing.TorchSharp;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Monitor.Samples.Training;

/// <summary>Options of <see cref="TrainingJob"/>.</summary>
public sealed class TrainingJobOptions
{
    /// <summary>Steps to train. Default 300.</summary>
    public int Steps { get; init; } = 300;

    /// <summary>Fault to inject. Default <see cref="Fault.None"/>.</summary>
    public Fault Fault { get; init; } = Fault.None;

    /// <summary>First step with the fault. Default 150.</summary>
    public int FaultAt { get; init; } = 150;

    /// <summary>
    /// Examples per step. Default 1024: large enough that the mean loss over 100 steps keeps falling measurably for
    /// thousands of steps, so a healthy run never looks like a plateau.
    /// </summary>
    public int BatchSize { get; init; } = 1024;

    /// <summary>A validation pass (eval mode, fresh data) every this many steps; 0: none. Default 10.</summary>
    public int EvalEvery { get; init; } = 10;

    /// <summary>Input features, named <c>x0</c>, <c>x1</c>, ... in the traced records. Default 16.</summary>
    public int Inputs { get; init; } = 16;

    /// <summary>Hidden units per layer. Default 64.</summary>
    public int Hidden { get; init; } = 64;

    /// <summary>Classes. Default 4.</summary>
    public int Classes { get; init; } = 4;

    /// <summary>SGD learning rate. Default 0.05.</summary>
    public double LearningRate { get; init; } = 0.05;

    /// <summary>Data-parallel ranks trained in this process. Default 1.</summary>
    public int Ranks { get; init; } = 1;

    /// <summary>Seed of the model, the teacher and the data. Default 7.</summary>
    public int Seed { get; init; } = 7;

    /// <summary>Pause after each step, to make a run last long enough to watch. Default none.</summary>
    public TimeSpan StepDelay { get; init; } = TimeSpan.Zero;

    /// <summary>
    /// The job's hyperparameters as the run metadata records them (<c>TracerOptions.Hyperparameters</c>): learning
    /// rate, batch size, steps, seed, model sizes, evaluation interval and the injected fault.
    /// </summary>
    public IReadOnlyDictionary<string, string> Hyperparameters() => new Dictionary<string, string>
    {
        ["learning_rate"] = RunMetadata.FormatValue(LearningRate),
        ["batch_size"] = RunMetadata.FormatValue(BatchSize),
        ["steps"] = RunMetadata.FormatValue(Steps),
        ["seed"] = RunMetadata.FormatValue(Seed),
        ["inputs"] = RunMetadata.FormatValue(Inputs),
        ["hidden"] = RunMetadata.FormatValue(Hidden),
        ["classes"] = RunMetadata.FormatValue(Classes),
        ["eval_every"] = RunMetadata.FormatValue(EvalEvery),
        ["optimizer"] = "sgd",
        ["fault"] = FaultNames.NameOf(Fault),
        ["fault_at"] = RunMetadata.FormatValue(FaultAt),
    };

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid option.</summary>
    public void Validate()
    {
        if (Steps < 1)
        {
            throw new ArgumentException($"steps is {Steps}; it must be at least 1");
        }

        if (FaultAt < 0)
        {
            throw new ArgumentException($"fault-at is {FaultAt}; it must not be negative");
        }

        if (Ranks is < 1 or > 64)
        {
            throw new ArgumentException($"ranks is {Ranks}; it must be between 1 and 64");
        }

        if (BatchSize < 1 || Inputs < 1 || Hidden < 1 || Classes < 2)
        {
            throw new ArgumentException("batch size, inputs and hidden units must be positive and classes at least 2");
        }

        if (!(LearningRate > 0))
        {
            throw new ArgumentException($"learning rate is {LearningRate}; it must be positive");
        }
    }
}

/// <summary>What one step did, for progress displays.</summary>
/// <param name="Step">Step number, from 0.</param>
/// <param name="Loss">Training loss of the step's batch (the unscaled cross-entropy), averaged over ranks.</param>
/// <param name="FaultActive">Whether the fault was in effect.</param>
public readonly record struct StepProgress(long Step, double Loss, bool FaultActive);

/// <summary>
/// A real TorchSharp training job: <see cref="SampleModel"/> learns to imitate a fixed random "teacher" network on
/// an endless stream of synthetic Gaussian inputs (an online-learning setting: every batch is new), with SGD and
/// cross-entropy. A <see cref="Fault"/> can be switched on at a given step.
/// </summary>
public sealed class TrainingJob
{
    private readonly TrainingJobOptions _options;

    /// <summary>Creates the job; options are validated here.</summary>
    public TrainingJob(TrainingJobOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
    }

    /// <summary>Trains with the same tracer set-up on every rank; see the main overload.</summary>
    public Task<long> RunAsync(
        Func<nn.Module, optim.Optimizer, TorchSharpTracer?>? attachTracer,
        Action<StepProgress>? onStep = null,
        Func<bool>? shouldStop = null,
        CancellationToken cancellationToken = default) =>
        RunAsync(attachTracer is null ? null : (_, model, optimizer) => attachTracer(model, optimizer), onStep, shouldStop, cancellationToken);

    /// <summary>
    /// Trains for <see cref="TrainingJobOptions.Steps"/> steps or until stopped. With several
    /// <see cref="TrainingJobOptions.Ranks"/>, runs synchronous data parallelism in this thread: every rank has its own
    /// replica of the model (identical at start), optimizer and data shard; after each rank's backward pass the
    /// gradients are averaged across ranks (an all-reduce), then every rank takes its optimizer step.
    /// </summary>
    /// <param name="attachTracer">Called once per rank with its model and optimizer; returns the adapter to trace that rank with, or null.</param>
    /// <param name="onStep">Called after every step on the training thread (loss averaged over ranks); must be quick.</param>
    /// <param name="shouldStop">Asked before every step; true ends training early (e.g. a stop command).</param>
    /// <param name="cancellationToken">Ends training early.</param>
    /// <returns>Steps completed.</returns>
    public async Task<long> RunAsync(
        Func<int, nn.Module, optim.Optimizer, TorchSharpTracer?>? attachTracer = null,
        Action<StepProgress>? onStep = null,
        Func<bool>? shouldStop = null,
        CancellationToken cancellationToken = default)
    {
        torch.manual_seed(_options.Seed);
        using var teacher = Teacher(_options.Seed);
        // The concept-drift fault's teacher: another random network, so the same inputs get other labels. (The replicas
        // below reseed torch's generator, so creating it does not change their initialisation.)
        using var driftedTeacher = Teacher(_options.Seed + 1000);
        using var lossFunction = nn.CrossEntropyLoss(reduction: nn.Reduction.None);
        var replicas = new Replica[_options.Ranks];
        try
        {
            for (int rank = 0; rank < replicas.Length; rank++)
            {
                // Same seed for every replica: data parallelism starts from identical weights.
                torch.manual_seed(_options.Seed + 1);
                var model = new SampleModel(_options.Inputs, _options.Hidden, _options.Classes);
                var optimizer = optim.SGD(model.parameters(), _options.LearningRate);
                replicas[rank] = new Replica(model, optimizer, new Generator((ulong)(_options.Seed + 100 + rank)), new Generator((ulong)(_options.Seed + 200 + rank)));
                replicas[rank].Tracer = attachTracer?.Invoke(rank, model, optimizer);
            }

            long step = 0;
            for (; step < _options.Steps; step++)
            {
                if (cancellationToken.IsCancellationRequested || (shouldStop?.Invoke() ?? false))
                {
                    break;
                }

                bool faulty = _options.Fault != Fault.None && step >= _options.FaultAt;
                // From the fault on, the concept-drift fault labels with the other teacher (also in validation).
                SampleModel labeller = faulty && _options.Fault == Fault.ConceptDrift ? driftedTeacher : teacher;
                double loss = TrainStep(step, labeller, replicas, lossFunction, faulty);
                onStep?.Invoke(new StepProgress(step, loss, faulty));
                if (_options.StepDelay > TimeSpan.Zero)
                {
                    try
                    {
                        await Task.Delay(_options.StepDelay, cancellationToken).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException)
                    {
                        break;
                    }
                }
            }

            return step;
        }
        finally
        {
            foreach (Replica? replica in replicas)
            {
                replica?.Dispose();
            }
        }
    }

    /// <summary>
    /// A random teacher network whose classes are balanced: a random network's argmax favours some classes heavily
    /// (one class can take two thirds of the inputs), which would make every healthy run look imbalanced. The output
    /// biases are shifted until every class takes close to 1/classes of a calibration sample.
    /// </summary>
    private SampleModel Teacher(int seed)
    {
        torch.manual_seed(seed);
        var teacher = new SampleModel(_options.Inputs, _options.Hidden, _options.Classes);
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        using var calibration = new Generator((ulong)seed + 999);
        Tensor logits = teacher.call(torch.randn([8192, _options.Inputs], generator: calibration));
        Tensor bias = torch.zeros(_options.Classes);
        double scale = logits.std().item<float>();
        for (int iteration = 0; iteration < 400; iteration++)
        {
            Tensor shares = torch.bincount((logits + bias).argmax(1), minlength: _options.Classes).to_type(ScalarType.Float32) / logits.shape[0];
            // A class that takes too much gets its logit lowered, one that takes too little raised, in steps that start
            // at the logits' own spread and shrink, so the shares settle instead of swinging between classes.
            bias.sub_((shares - (1.0 / _options.Classes)) * (scale / (1 + (iteration / 20.0))));
        }

        teacher.Fc3.bias!.add_(bias);
        return teacher;
    }

    private double TrainStep(long step, SampleModel teacher, Replica[] replicas, nn.Module<Tensor, Tensor, Tensor> lossFunction, bool faulty)
    {
        using var scope = torch.NewDisposeScope();
        Fault fault = faulty ? _options.Fault : Fault.None;
        double lossSum = 0;
        foreach (Replica replica in replicas)
        {
            if (faulty && !replica.FaultApplied)
            {
                ApplyOnce(replica, fault);
                replica.FaultApplied = true;
            }

            (Tensor inputs, Tensor labels) = TrainingBatch(teacher, replica, fault);
            foreach (var group in replica.Optimizer.ParamGroups)
            {
                group.LearningRate = fault switch
                {
                    Fault.ExplodingGradients => _options.LearningRate * 500,
                    Fault.LossPlateau => 0,
                    _ => _options.LearningRate,
                };
            }

            replica.Tracer?.BeginStep(step, Mode.Train);
            replica.Optimizer.zero_grad();
            Tensor logits = replica.Model.call(inputs);
            Tensor losses = lossFunction.call(logits, labels);
            Tensor loss = losses.mean();
            if (replica.Tracer is { } tracer)
            {
                using Tensor predictions = logits.argmax(1);
                tracer.RecordBatch(inputs, predictions, labels, losses, FeatureNames);
            }

            Tensor objective = fault == Fault.VanishingGradients ? loss * 1e-10 : loss;
            objective.backward();
            lossSum += loss.item<float>();
        }

        if (replicas.Length > 1)
        {
            AverageGradients(replicas);
        }

        foreach (Replica replica in replicas)
        {
            replica.Optimizer.step();
            replica.Tracer?.EndStep();
        }

        if (_options.EvalEvery > 0 && step % _options.EvalEvery == 0)
        {
            Evaluate(step, teacher, replicas, lossFunction, fault);
        }

        return lossSum / replicas.Length;
    }

    /// <summary>A validation pass on fresh data (eval mode): the loss the Overfit rule compares with training's.</summary>
    private void Evaluate(long step, SampleModel teacher, Replica[] replicas, nn.Module<Tensor, Tensor, Tensor> lossFunction, Fault fault)
    {
        using var noGrad = torch.no_grad();
        foreach (Replica replica in replicas)
        {
            // Validation data comes from the same (possibly drifted) source as the training data.
            Tensor inputs = DriftInputs(torch.randn([_options.BatchSize, _options.Inputs], generator: replica.EvalData), fault);
            Tensor labels = teacher.call(inputs).argmax(1);
            replica.Tracer?.BeginStep(step, Mode.Eval);
            Tensor losses = lossFunction.call(replica.Model.call(inputs), labels);
            replica.Tracer?.RecordBatch(losses: losses);
            replica.Tracer?.EndStep();
        }
    }

    /// <summary>
    /// The input-drift fault: features x0 to x3 move by 1.5 standard deviations (x0 and x2 down, x1 down with twice its
    /// spread, x3 up), as when an upstream source changes units or population; x4 and later are untouched. The directions
    /// are the ones (of the 64 sign and spread choices) that keep the default teacher's classes balanced (shares 0.23 to
    /// 0.32), so the fault is drift of the inputs alone, not also a shift of the labels.
    /// </summary>
    private static Tensor DriftInputs(Tensor inputs, Fault fault)
    {
        if (fault != Fault.InputDrift)
        {
            return inputs;
        }

        using var noGrad = torch.no_grad();
        Tensor drifted = inputs.clone();
        drifted[TensorIndex.Colon, 0].sub_(1.5);
        drifted[TensorIndex.Colon, 1].mul_(2).sub_(1.5);
        drifted[TensorIndex.Colon, 2].sub_(1.5);
        drifted[TensorIndex.Colon, 3].add_(1.5);
        return drifted;
    }

    private (Tensor Inputs, Tensor Labels) TrainingBatch(SampleModel teacher, Replica replica, Fault fault)
    {
        if (fault == Fault.LossPlateau && replica.StalledBatch is { } stalled)
        {
            return stalled;
        }

        if (fault == Fault.Overfit)
        {
            // One fixed batch of 32 examples with random labels, every step: the model memorises it.
            replica.MemorisedBatch ??= (
                torch.randn([OverfitExamples, _options.Inputs], generator: replica.Data).DetachFromDisposeScope(),
                torch.randint(0, _options.Classes, [OverfitExamples], generator: replica.Data).DetachFromDisposeScope());
            return replica.MemorisedBatch.Value;
        }

        Tensor inputs = DriftInputs(torch.randn([_options.BatchSize, _options.Inputs], generator: replica.Data), fault);
        Tensor labels;
        using (torch.no_grad())
        {
            labels = teacher.call(inputs).argmax(1);
        }

        if (fault == Fault.Nan)
        {
            inputs[0, 0] = float.NaN;
        }
        else if (fault == Fault.ClassImbalance)
        {
            // 95% of the labels become class 0.
            Tensor skew = torch.rand([_options.BatchSize], generator: replica.Data).lt(0.95);
            labels = torch.where(skew, torch.zeros_like(labels), labels);
        }

        if (fault == Fault.LossPlateau)
        {
            replica.StalledBatch = (inputs.DetachFromDisposeScope(), labels.DetachFromDisposeScope());
        }

        return (inputs, labels);
    }

    /// <summary>One-time changes to the model at the fault step.</summary>
    private static void ApplyOnce(Replica replica, Fault fault)
    {
        using var noGrad = torch.no_grad();
        SampleModel model = replica.Model;
        switch (fault)
        {
            case Fault.DeadRelu:
                model.Fc2.bias!.fill_(-100);
                break;
            case Fault.SaturatedActivation:
                model.Fc1.weight!.mul_(10_000);
                model.Fc1.bias!.mul_(10_000);
                break;
            case Fault.PoorInit:
                foreach (Parameter parameter in model.parameters())
                {
                    parameter.normal_(0, 1e-3, generator: replica.Data);
                }

                break;
            case Fault.UnchangedWeights:
                model.Fc2.weight!.requires_grad_(false);
                break;
        }
    }

    /// <summary>The all-reduce of data parallelism: every replica's gradient becomes the mean over replicas.</summary>
    private static void AverageGradients(Replica[] replicas)
    {
        using var noGrad = torch.no_grad();
        Parameter[][] parameters = [.. replicas.Select(r => r.Model.parameters().ToArray())];
        for (int p = 0; p < parameters[0].Length; p++)
        {
            using Tensor mean = torch.zeros_like(parameters[0][p]);
            foreach (Parameter[] replica in parameters)
            {
                using Tensor? gradient = replica[p].grad;
                if (gradient is not null)
                {
                    mean.add_(gradient);
                }
            }

            mean.div_(replicas.Length);
            foreach (Parameter[] replica in parameters)
            {
                using Tensor? gradient = replica[p].grad;
                gradient?.copy_(mean);
            }
        }
    }

    private sealed class Replica(SampleModel model, optim.Optimizer optimizer, Generator data, Generator evalData) : IDisposable
    {
        public SampleModel Model { get; } = model;

        public optim.Optimizer Optimizer { get; } = optimizer;

        public Generator Data { get; } = data;

        public Generator EvalData { get; } = evalData;

        public TorchSharpTracer? Tracer { get; set; }

        public bool FaultApplied { get; set; }

        public (Tensor Inputs, Tensor Labels)? StalledBatch { get; set; }

        public (Tensor Inputs, Tensor Labels)? MemorisedBatch { get; set; }

        public void Dispose()
        {
            Tracer?.Dispose();
            Optimizer.Dispose();
            Model.Dispose();
            Data.Dispose();
            EvalData.Dispose();
            StalledBatch?.Inputs.Dispose();
            StalledBatch?.Labels.Dispose();
            MemorisedBatch?.Inputs.Dispose();
            MemorisedBatch?.Labels.Dispose();
        }
    }

    // Small enough for the sample model to memorise within tens of steps.
    private const int OverfitExamples = 32;

    /// <summary>The names of the input features in the traced records: <c>x0</c>, <c>x1</c>, ...</summary>
    public IReadOnlyList<string> FeatureNames => field ??= [.. Enumerable.Range(0, _options.Inputs).Select(i => "x" + i.ToString(CultureInfo.InvariantCulture))];
}
