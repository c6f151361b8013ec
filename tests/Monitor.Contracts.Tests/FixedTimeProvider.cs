namespace Monitor.Contracts.Tests;

/// <summary>A clock stopped at one instant (this project has no FakeTimeProvider package).</summary>
internal sealed class FixedTimeProvider(DateTimeOffset now) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => now;
}
