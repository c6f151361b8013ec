namespace Monitor.Analysis;

/// <summary>A series the rules keep state for: one tensor (or none) of one rank of one run.</summary>
/// <param name="Run">Run id.</param>
/// <param name="Rank">Rank.</param>
/// <param name="Tensor">Tensor name, or empty for the rank as a whole.</param>
public readonly record struct SeriesKey(string Run, uint Rank, string Tensor);
