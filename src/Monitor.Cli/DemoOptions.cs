using Monitor.Samples.Training;

namespace Monitor.Cli;

/// <summary>Settings of <c>monitor demo</c>.</summary>
internal sealed class DemoOptions
{
    public int Steps { get; init; } = 300;

    public Fault Fault { get; init; } = Fault.None;

    public int FaultAt { get; init; } = 150;

    /// <summary>SGD learning rate of the sample job, recorded as the hyperparameter <c>learning_rate</c>.</summary>
    public double LearningRate { get; init; } = new TrainingJobOptions().LearningRate;

    /// <summary>Port of /metrics; 0 picks a free one.</summary>
    public int MetricsPort { get; init; } = 9464;

    /// <summary>Null: the in-process bus. "mock": librdkafka's mock cluster. Else bootstrap servers of a real cluster.</summary>
    public string? Kafka { get; init; }

    /// <summary>librdkafka properties of every Kafka client (with <see cref="Kafka"/>); default none.</summary>
    public IReadOnlyDictionary<string, string> KafkaProperties { get; init; } = new Dictionary<string, string>();

    public string RunId { get; init; } = "demo";

    /// <summary>Data-parallel ranks, each with its own tracer, transport producer and control-plane connection.</summary>
    public int Ranks { get; init; } = 1;

    /// <summary>Redis of the control plane; null: an in-process Garnet server on a free port.</summary>
    public string? Redis { get; init; }

    /// <summary>Rule file for the service; null: the default rule set (<c>monitor rules default</c>).</summary>
    public string? RulesFile { get; init; }

    /// <summary>Where to record every step record the service analyses (for <c>monitor replay</c>); null: nowhere.</summary>
    public string? RecordFile { get; init; }

    /// <summary>Archive directory: every step record is also written to Parquet there (its own consumer group); null: no archive.</summary>
    public string? ArchiveDirectory { get; init; }

    /// <summary>How often workers re-read the selection without a notice.</summary>
    public TimeSpan ControlPollInterval { get; init; } = TimeSpan.FromSeconds(2);

    public TimeSpan StepDelay { get; init; } = TimeSpan.Zero;

    /// <summary>How long to wait, after training, for the service to analyse every delivered record.</summary>
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromSeconds(30);
}
