namespace Monitor.Analysis.State;

/// <summary>
/// A rule whose per-(run, rank) state can be written to bytes and read back, so that
/// <see cref="AnalysisEngine.WriteSnapshot(string, uint, System.Buffers.IBufferWriter{byte})"/> and <see cref="AnalysisEngine.RestoreSnapshot"/> carry it (a service
/// replica that takes over a partition carries on where the previous one stopped). Every built-in rule (training and
/// drift) implements it; a configured rule that does not is listed in <see cref="AnalysisEngine.UnsnapshottedRules"/> and
/// starts empty for a restored key.
/// </summary>
/// <remarks>
/// <para>Called by the engine on its own thread, between records (like <see cref="ITrainingRule.ForgetRank"/>).</para>
/// <para>The bytes must be deterministic (the same state gives the same bytes: sort what a dictionary holds) and
/// describe only <c>(run, rank)</c>. The rule's parameters are not written: the configuration supplies them again.
/// State that the current parameters cannot take over (a window of another size, another window specification) is
/// adapted or dropped by the rule, as its docs say, not treated as corrupt.</para>
/// </remarks>
public interface IStatefulRule
{
    /// <summary>Version of the layout <see cref="WriteState"/> writes, at least 1; raise it when the layout changes.</summary>
    int StateVersion { get; }

    /// <summary>
    /// Writes what the rule keeps for <paramref name="rank"/> of <paramref name="run"/>; nothing at all when it keeps
    /// nothing for the key: the engine then leaves the rule's section out, and a restore starts the rule empty for it.
    /// </summary>
    void WriteState(string run, uint rank, ref StateWriter writer);

    /// <summary>
    /// Reads what <see cref="WriteState"/> wrote in layout <paramref name="version"/> (1 to <see cref="StateVersion"/>)
    /// without changing the rule, and returns the action that installs it, replacing whatever the rule keeps for the
    /// key. The engine calls the action only once every section of the key has been read, so a corrupt snapshot
    /// changes nothing; the action must not throw.
    /// </summary>
    /// <exception cref="InvalidDataException">The bytes are not a valid state of this rule (thrown by
    /// <paramref name="reader"/>, or by the rule for values out of range).</exception>
    Action ReadState(string run, uint rank, int version, ref StateReader reader);
}
