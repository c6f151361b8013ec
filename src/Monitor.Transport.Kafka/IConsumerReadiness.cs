namespace Monitor.Transport.Kafka;

/// <summary>
/// A record consumer that can say whether it is ready to be given traffic: <c>/readyz</c> of
/// the monitor service asks it. A consumer without it (the in-process bus) is ready while the pipeline runs.
/// </summary>
public interface IConsumerReadiness
{
    /// <summary>Whether the consumer is ready now, and a line saying why or why not (the body of <c>/readyz</c>).</summary>
    /// <remarks>Called from HTTP threads while another thread consumes: implementations are thread-safe and quick
    /// (no network call).</remarks>
    bool IsReady(out string detail);
}
