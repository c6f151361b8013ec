using System.Globalization;
using System.Text.Json.Serialization;

namespace Monitor.Contracts;

/// <summary>
/// Redis keys and channels of the control plane. Every per-run key carries the run as a hash tag (<c>{run}</c>) so
/// that all of a run's keys live in one slot of a Redis Cluster (and MULTI/EXEC over them works there). Only
/// strings, hashes, lists, sets, INCR, MULTI/EXEC and pub/sub are used, which Redis and Garnet both support.
/// </summary>
public static class ControlPlaneKeys
{
    /// <summary>Set of run ids that have control-plane state.</summary>
    public const string Runs = "monitor:runs";

    /// <summary>String: the run's selection (JSON, <see cref="TraceSelection"/>, carries its version).</summary>
    public static string Selection(string run) => $"monitor:{{{run}}}:selection";

    /// <summary>String: one rank's own selection; it takes precedence over the run's.</summary>
    public static string RankSelection(string run, int rank) => $"monitor:{{{run}}}:selection:rank:{Invariant(rank)}";

    /// <summary>Counter (INCR) from which every stored selection of the run takes its version.</summary>
    public static string Version(string run) => $"monitor:{{{run}}}:version";

    /// <summary>Hash: tensor name → <see cref="CatalogEntry"/> JSON, as published by the rank.</summary>
    public static string Catalog(string run, int rank) => $"monitor:{{{run}}}:catalog:{Invariant(rank)}";

    /// <summary>Hash: rank → <see cref="WorkerStatus"/> JSON (the heartbeat).</summary>
    public static string Workers(string run) => $"monitor:{{{run}}}:workers";

    /// <summary>Hash: rank → <see cref="RunMetadata"/> JSON (the rank's lineage, written once at its start).</summary>
    public static string Metadata(string run) => $"monitor:{{{run}}}:metadata";

    /// <summary>List: <see cref="ArtifactRecord"/> JSON in the order the ranks recorded them, trimmed to the newest <see cref="ArtifactsLength"/>.</summary>
    public static string Artifacts(string run) => $"monitor:{{{run}}}:artifacts";

    /// <summary>Artifact events kept per run in <see cref="Artifacts"/>.</summary>
    public const int ArtifactsLength = 10_000;

    /// <summary>String: a command for the run's workers (e.g. stop).</summary>
    public static string Command(string run) => $"monitor:{{{run}}}:command";

    /// <summary>Integer: the id of the run's latest command (INCR), so workers tell new commands from old ones without clocks.</summary>
    public static string CommandSequence(string run) => $"monitor:{{{run}}}:command-seq";

    /// <summary>List: <see cref="AuditEntry"/> JSON, newest first, trimmed to <see cref="AuditLength"/>.</summary>
    public static string Audit(string run) => $"monitor:{{{run}}}:audit";

    /// <summary>Pub/sub channel: "something changed, re-read" notices (<see cref="ControlNotice"/> JSON).</summary>
    public static string Control(string run) => $"monitor:{{{run}}}:control";

    /// <summary>Entries kept in the audit list.</summary>
    public const int AuditLength = 1000;

    private static string Invariant(int rank) => rank.ToString(CultureInfo.InvariantCulture);
}

/// <summary>One change of a run's selection, as kept in the audit list.</summary>
public sealed record AuditEntry
{
    /// <summary>When the change was stored.</summary>
    [JsonPropertyName("at")]
    public DateTimeOffset At { get; init; }

    /// <summary>Who made it (user name, or the API's principal).</summary>
    [JsonPropertyName("who")]
    public string Who { get; init; } = "";

    /// <summary>Through what: <c>cli</c>, <c>api</c>, ...</summary>
    [JsonPropertyName("source")]
    public string Source { get; init; } = "";

    /// <summary><c>set</c> or <c>clear</c> (a rank's own selection removed).</summary>
    [JsonPropertyName("action")]
    public string Action { get; init; } = "set";

    /// <summary>The rank whose own selection changed; null for the run's selection.</summary>
    [JsonPropertyName("rank")]
    public int? Rank { get; init; }

    /// <summary>Version replaced (null when there was none).</summary>
    [JsonPropertyName("oldVersion")]
    public long? OldVersion { get; init; }

    /// <summary>Version stored (null for a clear).</summary>
    [JsonPropertyName("newVersion")]
    public long? NewVersion { get; init; }

    /// <summary>The selection stored (null for a clear).</summary>
    [JsonPropertyName("selection")]
    public TraceSelection? Selection { get; init; }
}

/// <summary>A rank's heartbeat, written by its control loop.</summary>
public sealed record WorkerStatus
{
    /// <summary>Rank.</summary>
    [JsonPropertyName("rank")]
    public int Rank { get; init; }

    /// <summary>Host name of the worker.</summary>
    [JsonPropertyName("host")]
    public string Host { get; init; } = "";

    /// <summary>Process id of the worker.</summary>
    [JsonPropertyName("pid")]
    public int ProcessId { get; init; }

    /// <summary>When this heartbeat was written.</summary>
    [JsonPropertyName("at")]
    public DateTimeOffset At { get; init; }

    /// <summary>Version of the selection in force.</summary>
    [JsonPropertyName("selectionVersion")]
    public long SelectionVersion { get; init; }

    /// <summary>The last selection version the rank refused, if any.</summary>
    [JsonPropertyName("rejectedVersion")]
    public long? RejectedVersion { get; init; }

    /// <summary>Why it was refused.</summary>
    [JsonPropertyName("rejectionReason")]
    public string? RejectionReason { get; init; }

    /// <summary>Steps begun so far.</summary>
    [JsonPropertyName("steps")]
    public long Steps { get; init; }

    /// <summary>Records delivered so far.</summary>
    [JsonPropertyName("recordsDelivered")]
    public long RecordsDelivered { get; init; }

    /// <summary>Records lost so far (queue full, failed delivery).</summary>
    [JsonPropertyName("recordsLost")]
    public long RecordsLost { get; init; }

    /// <summary>Raw parts left out of records so far to keep them within the tracer's byte budget (summaries were sent).</summary>
    [JsonPropertyName("rawPartsTrimmed")]
    public long RawPartsTrimmed { get; init; }

    /// <summary>
    /// The tracer's own cost on the training thread as a fraction of the step time (last complete budget window; 0
    /// before the first). Absent in heartbeats of older workers.
    /// </summary>
    [JsonPropertyName("overheadRatio")]
    public double OverheadRatio { get; init; }

    /// <summary>The overhead budget in force (a fraction of the step time), or null when there is none.</summary>
    [JsonPropertyName("overheadBudget")]
    public double? OverheadBudget { get; init; }

    /// <summary>The collections the overhead budget thins now, each with its stride; null (left out) when none is.</summary>
    [JsonPropertyName("thinned")]
    public IReadOnlyList<ThinnedCollectionStatus>? Thinned { get; init; }

    /// <summary>
    /// True in the last heartbeat of a rank that stopped on purpose (its control loop was disposed), so its silence
    /// afterwards is not taken for a lost worker. Default false (also for heartbeats of older workers).
    /// </summary>
    [JsonPropertyName("stopped")]
    public bool Stopped { get; init; }
}

/// <summary>A collection the tracer's overhead budget thins: each of its tensors is traced every <see cref="Stride"/>-th traced step.</summary>
/// <param name="Collection">The collection's name (<see cref="CollectionNames"/>).</param>
/// <param name="Stride">Its stride, a power of two of at least 2.</param>
public sealed record ThinnedCollectionStatus(
    [property: JsonPropertyName("collection")] string Collection,
    [property: JsonPropertyName("stride")] int Stride);

/// <summary>A traceable tensor of a rank, as published in its catalog.</summary>
/// <param name="Name">Tensor name.</param>
/// <param name="Shape">Shape when last seen.</param>
/// <param name="DType">Element type (e.g. <c>float32</c>).</param>
/// <param name="Collections">Collections it belongs to (de-duplicated).</param>
public sealed record CatalogEntry(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("shape")] IReadOnlyList<long> Shape,
    [property: JsonPropertyName("dtype")] string DType,
    [property: JsonPropertyName("collections")] IReadOnlyList<string> Collections);

/// <summary>A command for a run's workers, stored at <see cref="ControlPlaneKeys.Command"/>.</summary>
public sealed record RunCommand
{
    /// <summary>The command; <c>stop</c> is the one there is: end training at the next step.</summary>
    [JsonPropertyName("command")]
    public string Command { get; init; } = "stop";

    /// <summary>Why, for people (the worker prints and reports it).</summary>
    [JsonPropertyName("reason")]
    public string Reason { get; init; } = "";

    /// <summary>Who issued it: an alert (rule and fingerprint) or a user.</summary>
    [JsonPropertyName("issuedBy")]
    public string IssuedBy { get; init; } = "";

    /// <summary>When it was issued (the issuer's clock), for people and for commands without an <see cref="Id"/>.</summary>
    [JsonPropertyName("issuedAt")]
    public DateTimeOffset IssuedAt { get; init; }

    /// <summary>
    /// Redis-side sequence number (<see cref="ControlPlaneKeys.CommandSequence"/>), set when the command is stored. A
    /// worker ignores commands whose id is not above the sequence it read when it first reached Redis, so a rerun under
    /// the same run id is not stopped by an old command, whatever the clocks say (a command stored between a worker's
    /// start and its first contact with Redis counts as older). 0: written by a version without ids; then the issue
    /// time is compared with the worker's start.
    /// </summary>
    [JsonPropertyName("id")]
    public long Id { get; init; }

    /// <summary>Only these ranks; empty: every rank.</summary>
    [JsonPropertyName("ranks")]
    public IReadOnlyList<int> Ranks { get; init; } = [];
}

/// <summary>The wake-up published on <see cref="ControlPlaneKeys.Control"/>: re-read the keys; it carries no state.</summary>
/// <param name="Kind"><c>selection</c> or <c>command</c>.</param>
/// <param name="Rank">The rank concerned, or null for all.</param>
/// <param name="Version">The version stored, when a selection.</param>
public sealed record ControlNotice(
    [property: JsonPropertyName("kind")] string Kind,
    [property: JsonPropertyName("rank")] int? Rank,
    [property: JsonPropertyName("version")] long? Version);
