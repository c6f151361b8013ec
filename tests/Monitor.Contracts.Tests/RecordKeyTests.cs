namespace Monitor.Contracts.Tests;

public sealed class RecordKeyTests
{
    [Fact]
    public void Format_RoundTripsThroughTryParse()
    {
        string key = RecordKey.Format("run-1.a_b", 12);

        Assert.Equal("run-1.a_b/12", key);
        Assert.True(RecordKey.TryParse(key, out string? run, out int rank));
        Assert.Equal("run-1.a_b", run);
        Assert.Equal(12, rank);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("run")]
    [InlineData("/3")]
    [InlineData("run/")]
    [InlineData("run/-1")]
    [InlineData("run/x")]
    [InlineData("ru{n}/1")]
    public void TryParse_ReturnsFalse_WhenKeyIsNotARecordKey(string? key)
    {
        Assert.False(RecordKey.TryParse(key, out string? run, out int rank));
        Assert.Null(run);
        Assert.Equal(-1, rank);
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("a/b", "'/'")]
    [InlineData("a{b}", "'{'")]
    [InlineData("a b", "' '")]
    public void Check_NamesTheProblem_WhenRunIdIsInvalid(string runId, string expected)
    {
        Assert.Contains(expected, RunId.Check(runId));
    }

    [Fact]
    public void Check_RejectsRunIds_LongerThanTheLimit()
    {
        Assert.Null(RunId.Check(new string('a', RunId.MaxLength)));
        Assert.Contains("at most", RunId.Check(new string('a', RunId.MaxLength + 1)));
    }
}
