using System.Globalization;
using Monitor.Analysis.State;
using Monitor.Contracts.V1;

namespace Monitor.Analysis.Rules;

/// <summary>
/// Stalled training (smdebug <c>StalledTrainingRule</c>): fires, from <see cref="AnalysisEngine.Tick(bool)"/>, for a rank of a
/// run that has sent no new step for <see cref="Threshold"/>; resolves when its steps resume.
/// </summary>
/// <remarks>
/// <para>Formula, per (run, rank): <c>silence = now - lastProgress</c>, where <c>lastProgress</c> is the event time of
/// the record that brought the newest step (records without an event time count from the first tick after them) and
/// <c>now</c> is the engine's clock at the tick. The condition holds while <c>silence &gt;= Threshold</c>; the rule
/// reports its verdict at every tick and every record with a newer step (so a binding's <c>for</c> and
/// <c>keepFiringFor</c> durations and evaluations apply). A rank whose run ended (its end-of-run record, <see cref="ITrainingRule.ForgetRank"/>) is forgotten at
/// once, so a finished run never looks stalled; one whose end record never came (a crashed worker) and that stays
/// silent for <see cref="ForgetAfter"/> is taken to have finished: its alert is resolved and its state dropped, which
/// keeps memory bounded by the ranks of live runs. Steps that go back with a newer event time (a job resumed from a
/// checkpoint) start the rank afresh. While the host lags behind its topic it ticks at the newest event time read
/// instead of the clock (<see cref="AnalysisEngine.Tick(bool)"/>), so records still waiting to be read are not
/// silence.</para>
/// <para>Parameters and defaults follow the SageMaker developer guide, "List of Debugger Built-in Rules",
/// StalledTrainingRule (<c>threshold</c>, in seconds → <see cref="Threshold"/>). <c>stop_training_on_fire</c> and
/// <c>training_job_name_prefix</c> are the binding's <c>stop</c> action here (<see cref="RuleBinding.Actions"/>).</para>
/// <para>Differences from smdebug: smdebug watches for new tensor files of the whole job; this rule watches each rank,
/// so one hung worker of a distributed job is found while the others wait for it. Event times come from the
/// workers' clocks: clock skew adds to or takes from the silence (negligible against the 30-minute default), and
/// replaying old records against a live clock makes every rank look stalled.</para>
/// </remarks>
public sealed class StalledTrainingRule : ITimedTrainingRule, IStatefulRule
{
    private const string Progressing = "the rank is sending new steps";

    private readonly Dictionary<(string Run, uint Rank), Stream> _streams = [];

    /// <summary>Silence after which a rank is stalled. Default 30 minutes (smdebug's <c>threshold</c>, 1800 s).</summary>
    public TimeSpan Threshold
    {
        get;
        init => field = value > TimeSpan.Zero ? value : throw new ArgumentOutOfRangeException(nameof(Threshold), value, "Threshold must be positive");
    } = TimeSpan.FromSeconds(1800);

    /// <summary>
    /// Silence after which a rank is taken to have finished: its alert resolves and its state is dropped. Default 24
    /// hours (ours). Keep it longer than <see cref="Threshold"/>, or stalled ranks are forgotten before they fire.
    /// </summary>
    public TimeSpan ForgetAfter
    {
        get;
        init => field = value > TimeSpan.Zero ? value : throw new ArgumentOutOfRangeException(nameof(ForgetAfter), value, "ForgetAfter must be positive");
    } = TimeSpan.FromHours(24);

    /// <inheritdoc />
    public string Name { get; init; } = "StalledTraining";

    /// <summary>Ranks tracked now (for diagnostics and tests).</summary>
    public int TrackedRanks => _streams.Count;

    /// <inheritdoc />
    public void ForgetRank(string run, uint rank) => _streams.Remove((run, rank));

    /// <inheritdoc />
    public int StateVersion => 1;

    /// <inheritdoc />
    public void WriteState(string run, uint rank, ref StateWriter writer)
    {
        if (_streams.TryGetValue((run, rank), out Stream? stream))
        {
            writer.WriteVarInt(stream.Step);
            writer.WriteBool(stream.LastProgress is not null);
            if (stream.LastProgress is { } last)
            {
                writer.WriteTime(last);
            }
        }
    }

    /// <inheritdoc />
    public Action ReadState(string run, uint rank, int version, ref StateReader reader)
    {
        if (reader.Remaining == 0)
        {
            return () => _streams.Remove((run, rank));
        }

        var stream = new Stream { Step = reader.ReadVarInt("last step") };
        stream.LastProgress = reader.ReadBool("progress time present") ? reader.ReadTime("last progress") : null;
        return () => _streams[(run, rank)] = stream;
    }

    /// <inheritdoc />
    public void Evaluate(StepRecord record, RuleContext context)
    {
        ArgumentNullException.ThrowIfNull(record);
        ArgumentNullException.ThrowIfNull(context);
        var key = (record.RunId, record.Rank);
        if (!_streams.TryGetValue(key, out Stream? stream))
        {
            stream = new Stream { Step = record.Step };
            _streams[key] = stream;
        }
        else if (record.Step <= stream.Step)
        {
            return;
        }

        stream.Step = record.Step;
        stream.LastProgress = record.EventTimeUnixNanos > 0
            ? DateTimeOffset.UnixEpoch.AddTicks(record.EventTimeUnixNanos / 100)
            : null;
        context.ReportPassing(null, 0, Threshold.TotalSeconds, Progressing);
    }

    /// <inheritdoc />
    public void Tick(DateTimeOffset now, RuleContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        foreach (((string run, uint rank), Stream stream) in _streams)
        {
            stream.LastProgress ??= now;
            TimeSpan silence = now - stream.LastProgress.Value;
            if (silence >= ForgetAfter)
            {
                if (context.IsActiveFor(run, rank, null))
                {
                    context.ReportFor(run, rank, stream.Step, null, false, silence.TotalSeconds, Threshold.TotalSeconds, string.Create(CultureInfo.InvariantCulture,
                        $"no new step for {silence.TotalHours:F1} h: taken to have finished (forgotten after {ForgetAfter.TotalHours:F1} h)"));
                }

                // Removing while enumerating is allowed for Dictionary since .NET Core 3.0.
                _streams.Remove((run, rank));
            }
            else if (silence >= Threshold)
            {
                context.ReportFor(run, rank, stream.Step, null, true, silence.TotalSeconds, Threshold.TotalSeconds, string.Create(CultureInfo.InvariantCulture,
                    $"no new step from run {run} rank {rank} for {silence.TotalSeconds:F0} s (last step {stream.Step}, threshold {Threshold.TotalSeconds:F0} s)"));
            }
            else
            {
                // Resolves what keepFiringFor holds, and an alert raised before a reload by the previous instance.
                context.ReportPassingFor(run, rank, stream.Step, null, silence.TotalSeconds, Threshold.TotalSeconds, Progressing);
            }
        }
    }

    private sealed class Stream
    {
        public long Step;
        public DateTimeOffset? LastProgress;
    }
}
