using Monitor.Analysis;
using Monitor.Service.State;

namespace Monitor.Service.Tests;

/// <summary>The changelog's outbox entries: what a restored partition sends to the webhooks again.</summary>
public sealed class NotificationOutboxTests
{
    [Fact]
    public void Entry_RoundTripsEveryFieldTheWebhookPayloadNeeds()
    {
        AlertTransition firing = AlertDispatcherTests.Firing("run-1") with { TraceContext = new TraceContext("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331") };

        byte[] entry = NotificationOutbox.Write(firing);
        AlertTransition read = NotificationOutbox.Read(entry, "entry");

        Assert.True(NotificationOutbox.IsEntry(entry));
        Assert.Equal(firing.Identity, read.Identity);
        Assert.Equal(firing.Identity.Labels.OrderBy(l => l.Key), read.Identity.Labels.OrderBy(l => l.Key));
        Assert.Equal((firing.State, firing.PreviousState, firing.Step, firing.Value, firing.Threshold, firing.Description, firing.ActiveSince, firing.At),
            (read.State, read.PreviousState, read.Step, read.Value, read.Threshold, read.Description, read.ActiveSince, read.At));
        Assert.Equal(firing.Annotations.OrderBy(a => a.Key), read.Annotations.OrderBy(a => a.Key));
        Assert.Equal(firing.Actions, read.Actions);
        Assert.Equal(firing.TraceContext, read.TraceContext);
    }

    [Fact]
    public void Key_SeparatesTheFiringAndTheResolutionOfOneAlert_AndEachFiring()
    {
        AlertTransition firing = AlertDispatcherTests.Firing("run-1");
        AlertTransition resolved = AlertDispatcherTests.Resolved(firing, at: firing.At.AddMinutes(1));
        AlertTransition again = firing with { At = firing.At.AddMinutes(2) };

        string[] keys = [.. new[] { firing, resolved, again }.Select(t => NotificationOutbox.Key("run-1/0", t))];

        Assert.Equal(3, keys.Distinct().Count());
        Assert.All(keys, k => Assert.StartsWith("run-1/0#notify#" + firing.Identity.Fingerprint + "#", k, StringComparison.Ordinal));
    }

    [Fact]
    public void Read_RefusesAnEngineSnapshot_ATruncatedEntry_AndAnotherVersion()
    {
        byte[] entry = NotificationOutbox.Write(AlertDispatcherTests.Firing("run-1"));
        byte[] otherVersion = [.. entry];
        otherVersion[4] = 99;

        Assert.False(NotificationOutbox.IsEntry("MNST\u0001"u8));
        Assert.Throws<InvalidDataException>(() => NotificationOutbox.Read(entry.AsSpan(0, entry.Length - 3), "entry"));
        Assert.Throws<InvalidDataException>(() => NotificationOutbox.Read(otherVersion, "entry"));
    }
}
