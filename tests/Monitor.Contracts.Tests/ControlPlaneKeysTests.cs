using System.Text.Json;

namespace Monitor.Contracts.Tests;

public sealed class ControlPlaneKeysTests
{
    private const string Run = "run-7.a_b";

    private static readonly Func<string, string>[] PerRunKeys =
    [
        ControlPlaneKeys.Selection,
        run => ControlPlaneKeys.RankSelection(run, 0),
        run => ControlPlaneKeys.RankSelection(run, 12),
        ControlPlaneKeys.Version,
        run => ControlPlaneKeys.Catalog(run, 0),
        run => ControlPlaneKeys.Catalog(run, 999),
        ControlPlaneKeys.Workers,
        ControlPlaneKeys.Metadata,
        ControlPlaneKeys.Artifacts,
        ControlPlaneKeys.Command,
        ControlPlaneKeys.Audit,
        ControlPlaneKeys.Control,
    ];

    [Fact]
    public void PerRunKeys_ContainTheRunHashTagExactlyOnce()
    {
        foreach (Func<string, string> key in PerRunKeys)
        {
            string value = key(Run);
            Assert.Equal(1, Occurrences(value, "{" + Run + "}"));
            Assert.Equal(1, value.Count(c => c == '{'));
            Assert.Equal(1, value.Count(c => c == '}'));
        }
    }

    [Theory]
    [InlineData("r")]
    [InlineData(Run)]
    [InlineData("0123456789")]
    public void PerRunKeys_ShareOneHashTag_SoTheyLiveInOneClusterSlot(string run)
    {
        string[] keys = [.. PerRunKeys.Select(key => key(run))];

        Assert.All(keys, key => Assert.Equal(run, HashTag(key)));
        Assert.Single(keys.Select(HashSlot).Distinct());
    }

    [Theory]
    [InlineData("123456789", 12739)]
    [InlineData("foo", 12182)]
    [InlineData("monitor:{foo}:selection", 12182)]
    public void HashSlot_MatchesRedisClusterKeySlot_ForKnownKeys(string key, int slot)
    {
        // The reference values are CLUSTER KEYSLOT's (the first is CRC16/XMODEM's check value, 0x31C3).
        Assert.Equal(slot, HashSlot(key));
    }

    [Fact]
    public void PerRunKeys_AreDistinct()
    {
        string[] keys = [.. PerRunKeys.Select(key => key(Run))];

        Assert.Equal(keys.Length, keys.Distinct(StringComparer.Ordinal).Count());
    }

    [Fact]
    public void PerRunKeys_DifferBetweenRuns()
    {
        Assert.All(PerRunKeys, key => Assert.NotEqual(key("run-a"), key("run-b")));
    }

    [Fact]
    public void Keys_FollowTheDocumentedLayout()
    {
        Assert.Equal("monitor:{r1}:selection", ControlPlaneKeys.Selection("r1"));
        Assert.Equal("monitor:{r1}:selection:rank:3", ControlPlaneKeys.RankSelection("r1", 3));
        Assert.Equal("monitor:{r1}:version", ControlPlaneKeys.Version("r1"));
        Assert.Equal("monitor:{r1}:catalog:3", ControlPlaneKeys.Catalog("r1", 3));
        Assert.Equal("monitor:{r1}:workers", ControlPlaneKeys.Workers("r1"));
        Assert.Equal("monitor:{r1}:metadata", ControlPlaneKeys.Metadata("r1"));
        Assert.Equal("monitor:{r1}:artifacts", ControlPlaneKeys.Artifacts("r1"));
        Assert.Equal("monitor:{r1}:command", ControlPlaneKeys.Command("r1"));
        Assert.Equal("monitor:{r1}:audit", ControlPlaneKeys.Audit("r1"));
        Assert.Equal("monitor:{r1}:control", ControlPlaneKeys.Control("r1"));
    }

    [Fact]
    public void Runs_HasNoHashTag()
    {
        Assert.DoesNotContain('{', ControlPlaneKeys.Runs);
        Assert.DoesNotContain('}', ControlPlaneKeys.Runs);
        Assert.Null(HashTag(ControlPlaneKeys.Runs));
    }

    [Fact]
    public void AuditLength_IsPositive()
    {
        Assert.True(ControlPlaneKeys.AuditLength > 0);
    }

    [Fact]
    public void AuditEntry_RoundTrips_WithTheDocumentedNames()
    {
        var entry = new AuditEntry
        {
            At = new DateTimeOffset(2026, 3, 4, 5, 6, 7, 890, TimeSpan.FromHours(2)),
            Who = "alice",
            Source = "cli",
            Action = "set",
            Rank = 3,
            OldVersion = 4,
            NewVersion = 5,
            Selection = new TraceSelection
            {
                Version = 5,
                Tensors = ["loss"],
                Modes = ["eval"],
                AtBegin = new AtBeginCapture { Tensors = ["embedding.weight"], LimitSize = 10 },
            },
        };

        string json = JsonSerializer.Serialize(entry, SelectionJson.Options);
        AuditEntry? back = JsonSerializer.Deserialize<AuditEntry>(json, SelectionJson.Options);

        Assert.Equal(["action", "at", "newVersion", "oldVersion", "rank", "selection", "source", "who"], PropertyNames(json));
        Assert.NotNull(back);
        Assert.Equal(entry with { Selection = null }, back with { Selection = null });
        Assert.Equal(entry.At.Offset, back.At.Offset);
        Assert.NotNull(back.Selection);
        Assert.Equal(SelectionJson.Serialize(entry.Selection), SelectionJson.Serialize(back.Selection));
    }

    [Fact]
    public void AuditEntry_LeavesOutNulls_ForAClearOfTheRunSelection()
    {
        var entry = new AuditEntry { At = DateTimeOffset.UnixEpoch, Who = "bob", Source = "api", Action = "clear", OldVersion = 9 };

        string json = JsonSerializer.Serialize(entry, SelectionJson.Options);
        AuditEntry? back = JsonSerializer.Deserialize<AuditEntry>(json, SelectionJson.Options);

        Assert.Equal(["action", "at", "oldVersion", "source", "who"], PropertyNames(json));
        Assert.Equal(entry, back);
    }

    [Fact]
    public void WorkerStatus_RoundTrips_WithTheDocumentedNames()
    {
        var status = new WorkerStatus
        {
            Rank = 2,
            Host = "node-1",
            ProcessId = 4242,
            At = new DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.Zero),
            SelectionVersion = 7,
            RejectedVersion = 8,
            RejectionReason = "limitSize: 0 is outside 1..250000",
            Steps = 1000,
            RecordsDelivered = 990,
            RecordsLost = 10,
            RawPartsTrimmed = 3,
            OverheadRatio = 0.015,
            OverheadBudget = 0.02,
            Stopped = true,
        };

        string json = JsonSerializer.Serialize(status, SelectionJson.Options);
        WorkerStatus? back = JsonSerializer.Deserialize<WorkerStatus>(json, SelectionJson.StatusOptions);

        Assert.Equal(
            ["at", "host", "overheadBudget", "overheadRatio", "pid", "rank", "rawPartsTrimmed", "recordsDelivered", "recordsLost", "rejectedVersion", "rejectionReason",
                "selectionVersion", "steps", "stopped"],
            PropertyNames(json));
        Assert.Equal(status, back);
    }

    [Fact]
    public void WorkerStatus_RoundTripsTheThinnedCollections_WithTheDocumentedNames()
    {
        var status = new WorkerStatus { Rank = 1, Thinned = [new ThinnedCollectionStatus("weights", 8), new ThinnedCollectionStatus("gradients", 16)] };

        string json = JsonSerializer.Serialize(status, SelectionJson.Options);
        WorkerStatus? back = JsonSerializer.Deserialize<WorkerStatus>(json, SelectionJson.StatusOptions);

        Assert.Contains("\"thinned\":[{\"collection\":\"weights\",\"stride\":8},{\"collection\":\"gradients\",\"stride\":16}]", json, StringComparison.Ordinal);
        Assert.Equal(status.Thinned, back!.Thinned);
    }

    [Fact]
    public void CatalogEntry_RoundTrips_WithTheDocumentedNames()
    {
        var entry = new CatalogEntry("fc1.weight", [16, 8], "float32", ["weights", "custom"]);

        string json = JsonSerializer.Serialize(entry, SelectionJson.Options);
        CatalogEntry? back = JsonSerializer.Deserialize<CatalogEntry>(json, SelectionJson.Options);

        Assert.Equal(["collections", "dtype", "name", "shape"], PropertyNames(json));
        Assert.NotNull(back);
        Assert.Equal(entry.Name, back.Name);
        Assert.Equal(entry.Shape, back.Shape);
        Assert.Equal(entry.DType, back.DType);
        Assert.Equal(entry.Collections, back.Collections);
    }

    [Fact]
    public void CatalogEntry_RoundTrips_WhenTheTensorIsAScalar()
    {
        var entry = new CatalogEntry("optimizer.param_groups.0.lr", [], "float64", ["optimizer"]);

        CatalogEntry? back = JsonSerializer.Deserialize<CatalogEntry>(JsonSerializer.Serialize(entry, SelectionJson.Options), SelectionJson.Options);

        Assert.NotNull(back);
        Assert.Empty(back.Shape);
        Assert.Equal("float64", back.DType);
    }

    [Theory]
    [InlineData("selection", 3, 17L)]
    [InlineData("selection", null, 18L)]
    [InlineData("command", null, null)]
    public void ControlNotice_RoundTrips_WithTheDocumentedNames(string kind, int? rank, long? version)
    {
        var notice = new ControlNotice(kind, rank, version);

        string json = JsonSerializer.Serialize(notice, SelectionJson.Options);
        ControlNotice? back = JsonSerializer.Deserialize<ControlNotice>(json, SelectionJson.Options);

        Assert.Equal(notice, back);
        Assert.Contains("kind", PropertyNames(json));
        Assert.Equal(rank is not null, PropertyNames(json).Contains("rank"));
        Assert.Equal(version is not null, PropertyNames(json).Contains("version"));
    }

    [Fact]
    public void ControlNotice_ReadsHandWrittenJson()
    {
        ControlNotice? notice = JsonSerializer.Deserialize<ControlNotice>("""{ "kind": "selection", "rank": 1, "version": 2 }""", SelectionJson.Options);

        Assert.Equal(new ControlNotice("selection", 1, 2), notice);
    }

    [Fact]
    public void WorkerStatus_RefusesUnknownMembers_LikeEveryControlPlaneDocument()
    {
        Assert.Throws<JsonException>(() => JsonSerializer.Deserialize<WorkerStatus>("""{ "rank": 1, "processId": 5 }""", SelectionJson.Options));
    }

    private static string[] PropertyNames(string json)
    {
        using JsonDocument document = JsonDocument.Parse(json);
        return [.. document.RootElement.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal)];
    }

    private static int Occurrences(string value, string part)
    {
        int count = 0;
        for (int at = value.IndexOf(part, StringComparison.Ordinal); at >= 0; at = value.IndexOf(part, at + 1, StringComparison.Ordinal))
        {
            count++;
        }

        return count;
    }

    /// <summary>Redis Cluster's hash tag: the text between the first '{' and the first '}' after it, when not empty.</summary>
    private static string? HashTag(string key)
    {
        int open = key.IndexOf('{', StringComparison.Ordinal);
        if (open < 0)
        {
            return null;
        }

        int close = key.IndexOf('}', open + 1);
        return close > open + 1 ? key[(open + 1)..close] : null;
    }

    /// <summary>Redis Cluster's slot: CRC16 (XMODEM) of the hash tag, or of the whole key without one, modulo 16384.</summary>
    private static int HashSlot(string key)
    {
        string hashed = HashTag(key) ?? key;
        ushort crc = 0;
        foreach (byte b in System.Text.Encoding.UTF8.GetBytes(hashed))
        {
            crc ^= (ushort)(b << 8);
            for (int i = 0; i < 8; i++)
            {
                crc = (crc & 0x8000) != 0 ? (ushort)((crc << 1) ^ 0x1021) : (ushort)(crc << 1);
            }
        }

        return crc % 16384;
    }
}
