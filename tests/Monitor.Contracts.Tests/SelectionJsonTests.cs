using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Monitor.Testing;

namespace Monitor.Contracts.Tests;

public sealed class SelectionJsonTests
{
    [Fact]
    public void Parse_ReturnsAnEqualSelection_WhenGivenTheSerializedFormOfAFullSelection()
    {
        TraceSelection original = FullSelection();

        TraceSelection parsed = SelectionJson.Parse(SelectionJson.Serialize(original));

        Assert.Equal(SelectionJson.Serialize(original), SelectionJson.Serialize(parsed));
        Assert.Equal(original.Version, parsed.Version);
        Assert.Equal(original.Tensors, parsed.Tensors);
        Assert.Equal(original.Schedule, parsed.Schedule);
        Assert.Equal(original.LimitSize, parsed.LimitSize);
        Assert.Equal(original.ChiefOnly, parsed.ChiefOnly);
        Assert.Equal(original.Modes, parsed.Modes);
        Assert.Equal(original.Ranks, parsed.Ranks);
        Assert.Equal(original.Budget, parsed.Budget);
        Assert.Equal(original.Pin, parsed.Pin);
        AssertSameCollections(original.Collections, parsed.Collections);
        Assert.NotNull(parsed.AtBegin);
        AssertSameCollections(original.AtBegin!.Collections, parsed.AtBegin.Collections);
        Assert.Equal(original.AtBegin.Tensors, parsed.AtBegin.Tensors);
        Assert.Equal(original.AtBegin.LimitSize, parsed.AtBegin.LimitSize);
    }

    [Fact]
    public void Parse_ReturnsAnEqualSelection_WhenSerializedIndented()
    {
        TraceSelection original = FullSelection();
        string indented = SelectionJson.Serialize(original, indented: true);

        TraceSelection parsed = SelectionJson.Parse(indented);

        Assert.Contains('\n', indented);
        Assert.Equal(SelectionJson.Serialize(original), SelectionJson.Serialize(parsed));
    }

    [Fact]
    public void Serialize_WritesTheDocumentedCamelCaseNames_ForEveryField()
    {
        using JsonDocument document = JsonDocument.Parse(SelectionJson.Serialize(FullSelection()));
        JsonElement root = document.RootElement;

        Assert.Equal(
            ["atBegin", "budget", "chiefOnly", "collections", "limitSize", "modes", "pin", "ranks", "schedule", "tensors", "version"],
            root.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
        Assert.Equal(5000, root.GetProperty("limitSize").GetInt32());
        Assert.True(root.GetProperty("chiefOnly").GetBoolean());
        Assert.Equal("eval", root.GetProperty("modes")[1].GetString());
        Assert.Equal(3, root.GetProperty("ranks")[1].GetInt32());
        JsonElement weights = root.GetProperty("collections").GetProperty("weights");
        Assert.False(weights.GetProperty("histogram").GetBoolean());
        Assert.True(weights.GetProperty("raw").GetBoolean());
        JsonElement atBegin = root.GetProperty("atBegin");
        Assert.Equal(64, atBegin.GetProperty("limitSize").GetInt32());
        Assert.Equal("embedding.weight", atBegin.GetProperty("tensors")[0].GetString());
        Assert.True(atBegin.GetProperty("collections").TryGetProperty("biases", out _));
    }

    [Fact]
    public void Serialize_LeavesOutAtBegin_WhenItIsNull()
    {
        using JsonDocument document = JsonDocument.Parse(SelectionJson.Serialize(new TraceSelection()));

        Assert.False(document.RootElement.TryGetProperty("atBegin", out _));
    }

    [Fact]
    public void Parse_UsesTheDefaults_WhenTheDocumentIsEmpty()
    {
        TraceSelection parsed = SelectionJson.Parse("{}");

        Assert.Equal(0, parsed.Version);
        Assert.Empty(parsed.Collections);
        Assert.Empty(parsed.Tensors);
        Assert.Equal(new TraceSchedule(), parsed.Schedule);
        Assert.Equal(TraceSelection.DefaultLimitSize, parsed.LimitSize);
        Assert.False(parsed.ChiefOnly);
        Assert.Empty(parsed.Modes);
        Assert.Empty(parsed.Ranks);
        Assert.Null(parsed.AtBegin);
    }

    [Fact]
    public void Parse_UsesFilterDefaults_WhenACollectionIsAnEmptyObject()
    {
        CollectionFilter filter = SelectionJson.Parse("""{ "collections": { "weights": {} } }""").Collections["weights"];

        Assert.True(filter.Histogram);
        Assert.False(filter.Raw);
        Assert.Empty(filter.Include);
        Assert.Empty(filter.Exclude);
    }

    [Theory]
    [InlineData("""{ "schedule": { "everystep": 5 } }""", "schedule.everystep")]
    [InlineData("""{ "limitsize2": 5 }""", "limitsize2")]
    [InlineData("""{ "collections": { "weights": { "includes": ["x"] } } }""", "collections.weights.includes")]
    [InlineData("""{ "atBegin": { "tensors": ["x"], "limit": 3 } }""", "atBegin.limit")]
    [InlineData("""{ "schedule": { "stepRange": { "start": 1, "end": 2, "step": 1 } } }""", "schedule.stepRange.step")]
    public void Parse_ThrowsNamingThePath_WhenAMemberIsUnknown(string json, string path)
    {
        var exception = Assert.Throws<SelectionValidationException>(() => SelectionJson.Parse(json));

        string problem = Assert.Single(exception.Problems);
        Assert.StartsWith(path + ": ", problem, StringComparison.Ordinal);
        Assert.Contains("could not be mapped", problem, StringComparison.Ordinal);
        Assert.IsType<JsonException>(exception.InnerException, exactMatch: false);
    }

    [Theory]
    [InlineData("""{ "schedule": { "everySteps": "5" } }""", "schedule.everySteps")]
    [InlineData("""{ "limitSize": "100" }""", "limitSize")]
    [InlineData("""{ "limitSize": 1.5 }""", "limitSize")]
    [InlineData("""{ "version": "3" }""", "version")]
    [InlineData("""{ "chiefOnly": "true" }""", "chiefOnly")]
    [InlineData("""{ "chiefOnly": 1 }""", "chiefOnly")]
    [InlineData("""{ "ranks": ["1"] }""", "ranks")]
    [InlineData("""{ "tensors": "loss" }""", "tensors")]
    [InlineData("""{ "collections": ["weights"] }""", "collections")]
    [InlineData("""{ "schedule": { "everySeconds": "NaN" } }""", "schedule.everySeconds")]
    public void Parse_ThrowsNamingThePath_WhenAValueHasTheWrongType(string json, string path)
    {
        var exception = Assert.Throws<SelectionValidationException>(() => SelectionJson.Parse(json));

        string problem = Assert.Single(exception.Problems);
        Assert.StartsWith(path, problem, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("not json")]
    [InlineData("")]
    [InlineData("{")]
    [InlineData("{ \"version\": }")]
    [InlineData("[]")]
    [InlineData("42")]
    [InlineData("\"selection\"")]
    public void Parse_ThrowsSelectionValidationException_WhenTheInputIsNotASelectionObject(string json)
    {
        var exception = Assert.Throws<SelectionValidationException>(() => SelectionJson.Parse(json));

        Assert.NotEmpty(Assert.Single(exception.Problems));
    }

    [Fact]
    public void Parse_ThrowsSelectionValidationException_WhenTheDocumentIsJsonNull()
    {
        var exception = Assert.Throws<SelectionValidationException>(() => SelectionJson.Parse("null"));

        Assert.Equal(["the selection is JSON null"], exception.Problems);
    }

    [Fact]
    public void Parse_ThrowsArgumentNullException_WhenTheStringIsNull()
    {
        Assert.Throws<ArgumentNullException>(() => SelectionJson.Parse(null!));
    }

    [Fact]
    public void Parse_AcceptsCommentsAndTrailingCommas()
    {
        const string json = """
            {
              // trace the first layer's gradients
              "collections": {
                "gradients": { "include": ["^fc1\\.",], }, /* raw off */
              },
              "modes": ["train",],
              "schedule": { "everySteps": 10, },
            }
            """;

        TraceSelection parsed = SelectionJson.Parse(json);

        Assert.Equal(["^fc1\\."], parsed.Collections["gradients"].Include);
        Assert.Equal(["train"], parsed.Modes);
        Assert.Equal(10, parsed.Schedule.EverySteps);
    }

    [Fact]
    public void Parse_ThrowsNamingStepRange_WhenTheRangeIsEmpty()
    {
        var exception = Assert.Throws<SelectionValidationException>(
            () => SelectionJson.Parse("""{ "schedule": { "stepRange": { "start": 5, "end": 2 } } }"""));

        Assert.Equal(["schedule.stepRange: [5, 2] is empty (end before start)"], exception.Problems);
    }

    [Fact]
    public void Parse_ThrowsListingEveryProblem_WhenWellFormedJsonIsInvalid()
    {
        const string json = """
            { "limitSize": 0, "modes": ["fit"], "ranks": [-1], "atBegin": {}, "collections": { "weight": {} } }
            """;

        var exception = Assert.Throws<SelectionValidationException>(() => SelectionJson.Parse(json));

        Assert.Equal(5, exception.Problems.Count);
        foreach (string field in new[] { "collections.weight:", "limitSize:", "modes[0]:", "ranks[0]:", "atBegin:" })
        {
            Assert.Contains(exception.Problems, p => p.StartsWith(field, StringComparison.Ordinal));
        }
    }

    [Fact]
    public void Parse_ReportsNullCollectionsAndSchedule_AsProblems()
    {
        var exception = Assert.Throws<SelectionValidationException>(
            () => SelectionJson.Parse("""{ "collections": null, "schedule": null }"""));

        Assert.Equal(
            ["collections: must be an object (use {} for none)", "schedule: must be an object (use {} for every step)"],
            exception.Problems);
    }

    [Fact]
    public void Schema_DeclaresDraft2020AndATitle()
    {
        JsonObject schema = SchemaObject();

        Assert.Equal("https://json-schema.org/draft/2020-12/schema", (string?)schema["$schema"]);
        Assert.False(string.IsNullOrWhiteSpace((string?)schema["title"]));
        Assert.False(string.IsNullOrWhiteSpace((string?)schema["description"]));
        Assert.Equal("object", (string?)schema["type"]);
        // Unknown members are refused by Parse, and the schema says so.
        Assert.False((bool?)schema["additionalProperties"]);
    }

    [Fact]
    public void Schema_HasAPropertyForEveryPublicPropertyOfTraceSelection()
    {
        string[] expected = [.. typeof(TraceSelection).GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Select(p => p.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name)
            .OfType<string>()
            .Order(StringComparer.Ordinal)];

        JsonObject properties = SchemaObject()["properties"]!.AsObject();

        Assert.Equal(["atBegin", "budget", "chiefOnly", "collections", "limitSize", "modes", "pin", "ranks", "schedule", "tensors", "version"], expected);
        Assert.Equal(expected, properties.Select(p => p.Key).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Schema_DescribesEveryProperty_AtEveryDepth()
    {
        List<string> described = [];
        List<string> undescribed = [];

        Walk(SchemaObject(), "$");

        Assert.Empty(undescribed);
        // Nested objects are covered too: the schedule, the step range, the filters and the at-begin capture.
        Assert.Contains("$.schedule.stepRange.start", described);
        Assert.Contains("$.collections.*.raw", described);
        Assert.Contains("$.atBegin.limitSize", described);

        void Walk(JsonNode? node, string path)
        {
            if (node is not JsonObject schema)
            {
                return;
            }

            if (schema["properties"] is JsonObject properties)
            {
                foreach ((string name, JsonNode? property) in properties)
                {
                    string propertyPath = $"{path}.{name}";
                    (property is JsonObject p && !string.IsNullOrWhiteSpace((string?)p["description"]) ? described : undescribed).Add(propertyPath);
                    Walk(property, propertyPath);
                }
            }

            Walk(schema["additionalProperties"], path + ".*");
            Walk(schema["items"], path + "[]");
        }
    }

    [Theory]
    [InlineData("0.02", 0.02)]
    [InlineData("1", 1.0)]
    [InlineData("\"none\"", null)]
    public void Parse_ReadsTheBudget_WhenAFractionOrNone(string budget, double? expected)
    {
        TraceSelection parsed = SelectionJson.Parse($$$"""{"collections": {"weights": {}}, "budget": {{{budget}}}, "pin": ["^fc1\\."]}""");

        Assert.Equal(expected, parsed.Budget!.Fraction);
        Assert.Equal(["^fc1\\."], parsed.Pin);
        Assert.Equal(expected is null ? "\"none\"" : budget, JsonNode.Parse(SelectionJson.Serialize(parsed))!["budget"]!.ToJsonString());
    }

    [Fact]
    public void Parse_LeavesTheBudgetToTheWorker_WhenAbsent()
    {
        TraceSelection parsed = SelectionJson.Parse("""{"collections": {"weights": {}}}""");

        Assert.Null(parsed.Budget);
        Assert.Null(JsonNode.Parse(SelectionJson.Serialize(parsed))!["budget"]);
    }

    [Theory]
    [InlineData("0", "budget: 0 is outside (0, 1]")]
    [InlineData("1.5", "budget: 1.5 is outside (0, 1]")]
    [InlineData("-0.01", "budget: -0.01 is outside (0, 1]")]
    [InlineData("\"lots\"", "budget: budget must be a fraction of the step time in (0, 1] (e.g. 0.02) or \"none\"")]
    [InlineData("true", "budget: budget must be a fraction")]
    public void Parse_RefusesTheBudget_WhenNotAFractionInRangeOrNone(string budget, string problem)
    {
        var exception = Assert.Throws<SelectionValidationException>(() => SelectionJson.Parse($$$"""{"collections": {"weights": {}}, "budget": {{{budget}}}}"""));

        Assert.StartsWith(problem, Assert.Single(exception.Problems), StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_RefusesAPin_WhenItIsNotARegularExpression()
    {
        var exception = Assert.Throws<SelectionValidationException>(() => SelectionJson.Parse("""{"collections": {"weights": {}}, "pin": ["(fc"]}"""));

        Assert.StartsWith("pin[0]: invalid regular expression", Assert.Single(exception.Problems), StringComparison.Ordinal);
    }

    [Fact]
    public void Schema_DescribesTheBudget_AsAFractionOrNone()
    {
        JsonObject budget = SchemaObject()["properties"]!["budget"]!.AsObject();

        Assert.Contains("none", (string?)budget["description"], StringComparison.Ordinal);
        JsonArray oneOf = budget["oneOf"]!.AsArray();
        Assert.Equal("number", (string?)oneOf[0]!["type"]);
        Assert.Equal(0, (int?)oneOf[0]!["exclusiveMinimum"]);
        Assert.Equal(1, (int?)oneOf[0]!["maximum"]);
        Assert.Equal("none", (string?)oneOf[1]!["const"]);
    }

    [Fact]
    public void Schema_DescribesCollectionFilters_WithIncludeExcludeHistogramAndRaw()
    {
        JsonObject filter = SchemaObject()["properties"]!["collections"]!["additionalProperties"]!.AsObject();

        Assert.Equal("object", (string?)filter["type"]);
        Assert.Equal(["exclude", "histogram", "include", "raw"], filter["properties"]!.AsObject().Select(p => p.Key).Order(StringComparer.Ordinal));
        Assert.Equal("boolean", (string?)filter["properties"]!["raw"]!["type"]);
        Assert.Equal("boolean", (string?)filter["properties"]!["histogram"]!["type"]);
        Assert.Equal("string", (string?)filter["properties"]!["include"]!["items"]!["type"]);
    }

    [Fact]
    public void Schema_AtBeginCollections_ReferToTheSameFilterSchema()
    {
        JsonObject schema = SchemaObject();
        JsonNode atBeginFilter = schema["properties"]!["atBegin"]!["properties"]!["collections"]!["additionalProperties"]!;

        // Either inlined or a JSON pointer into this document; either way the same four members.
        JsonNode resolved = atBeginFilter["$ref"] is { } reference ? Resolve(schema, (string)reference!) : atBeginFilter;

        Assert.Equal(["exclude", "histogram", "include", "raw"], resolved["properties"]!.AsObject().Select(p => p.Key).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Schema_ReturnsAFreshDocument_EachCall()
    {
        JsonObject first = SchemaObject();
        first["title"] = "changed";

        Assert.NotEqual("changed", (string?)SchemaObject()["title"]);
    }

    private static JsonObject SchemaObject() => Assert.IsType<JsonObject>(SelectionJson.Schema());

    private static JsonNode Resolve(JsonObject root, string reference)
    {
        Assert.StartsWith("#/", reference, StringComparison.Ordinal);
        JsonNode current = root;
        foreach (string segment in reference[2..].Split('/'))
        {
            current = current[segment] ?? throw new InvalidOperationException($"{reference} does not resolve at '{segment}'");
        }

        return current;
    }

    private static void AssertSameCollections(IReadOnlyDictionary<string, CollectionFilter> expected, IReadOnlyDictionary<string, CollectionFilter> actual)
    {
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
        foreach ((string name, CollectionFilter filter) in expected)
        {
            CollectionFilter other = actual[name];
            Assert.Equal(filter.Include, other.Include);
            Assert.Equal(filter.Exclude, other.Exclude);
            Assert.Equal(filter.Histogram, other.Histogram);
            Assert.Equal(filter.Raw, other.Raw);
        }
    }

    /// <summary>Every field set to something other than its default.</summary>
    [Fact]
    public void Fuzz_Parse_ReturnsAValidSelectionOrAValidationError_WhenTheDocumentIsMutated()
    {
        Random random = Fuzz.NewRandom(31_415);
        string[] valid = [SelectionJson.Serialize(FullSelection()), SelectionJson.Serialize(FullSelection(), indented: true), SelectionJson.Serialize(new TraceSelection())];
        string[] tokens = ["{", "}", "[", "]", "\"", ":", ",", "null", "true", "1e999", "-0", "99999999999999999999", "\"\\u0000\"",
            "\"everySteps\":", "\"collections\":{", "\"include\":[\"(a+)+$\"]", "\"limitSize\":-1,", "/* c */", new string('[', 2_000), "\"ranks\":[-1]"];
        Dictionary<string, int> outcomes = Fuzz.Run("selection JSON", Fuzz.Inputs(10_000), i =>
        {
            string json = random.Next(10) == 0 ? Fuzz.RandomText(random, 200) : Fuzz.MutateText(valid[random.Next(valid.Length)], random, tokens);
            try
            {
                TraceSelection parsed = SelectionJson.Parse(json);
                Assert.Empty(parsed.Validate());
                return "parsed";
            }
            catch (SelectionValidationException ex)
            {
                Assert.False(string.IsNullOrWhiteSpace(ex.Message), $"input #{i} was refused without a reason: {json}");
                return "refused";
            }
        }, TimeSpan.FromSeconds(2));

        Assert.True(outcomes.GetValueOrDefault("parsed") > 0 && outcomes.GetValueOrDefault("refused") > 0, "the mutations reach both sides");
    }

    private static TraceSelection FullSelection() => new()
    {
        Version = 12,
        Collections = new Dictionary<string, CollectionFilter>
        {
            [CollectionNames.Weights] = new() { Include = ["^fc1\\.", "^fc2\\."], Exclude = ["norm"], Histogram = false, Raw = true },
            [CollectionNames.Gradients] = new() { Include = ["\\.grad$"] },
            [CollectionNames.Losses] = new(),
        },
        Tensors = ["loss", "fc3.output"],
        Schedule = new TraceSchedule { EverySteps = 10, EverySeconds = 2.5, StepRange = new StepRange(100, 200) },
        LimitSize = 5000,
        ChiefOnly = true,
        Modes = ["train", "eval"],
        Ranks = [0, 3],
        Budget = new TraceBudget(0.05),
        Pin = ["^fc2\\.weight\\.grad$"],
        AtBegin = new AtBeginCapture
        {
            Collections = new Dictionary<string, CollectionFilter>
            {
                [CollectionNames.Biases] = new() { Exclude = ["^head"] },
                [CollectionNames.Weights] = new() { Include = ["^embedding"], Histogram = false },
            },
            Tensors = ["embedding.weight"],
            LimitSize = 64,
        },
    };
}
