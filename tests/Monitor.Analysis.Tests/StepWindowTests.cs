namespace Monitor.Analysis.Tests;

public sealed class StepWindowTests
{
    [Fact]
    public void NewWindow_IsEmpty_WithNaNMeanAndLast()
    {
        var window = new StepWindow(4);

        Assert.Equal(4, window.Capacity);
        Assert.Equal(0, window.Count);
        Assert.Equal(0, window.Added);
        Assert.False(window.IsFull);
        Assert.True(double.IsNaN(window.Mean));
        Assert.True(double.IsNaN(window.Last));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    public void Constructor_Throws_WhenCapacityIsBelowOne(int capacity)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new StepWindow(capacity));
    }

    [Fact]
    public void Add_AveragesTheValuesHeld_WhenNotYetFull()
    {
        var window = new StepWindow(4);

        window.Add(1);
        Assert.Equal((1, 1.0, 1.0, false), (window.Count, window.Mean, window.Last, window.IsFull));
        window.Add(2);
        window.Add(6);
        Assert.Equal((3, 3.0, 6.0, false), (window.Count, window.Mean, window.Last, window.IsFull));
    }

    [Fact]
    public void IsFull_BecomesTrue_WhenCapacityValuesWereAdded()
    {
        var window = new StepWindow(3);
        window.Add(1);
        window.Add(2);
        Assert.False(window.IsFull);

        window.Add(3);

        Assert.True(window.IsFull);
        Assert.Equal(3, window.Count);
        Assert.Equal(2.0, window.Mean);
    }

    [Fact]
    public void Add_EvictsTheOldestValue_WhenFull()
    {
        var window = new StepWindow(3);

        for (int v = 1; v <= 5; v++)
        {
            window.Add(v);
        }

        Assert.Equal(3, window.Count);
        Assert.Equal(5, window.Added);
        Assert.True(window.IsFull);
        Assert.Equal(4.0, window.Mean); // (3 + 4 + 5) / 3
        Assert.Equal(5.0, window.Last);

        window.Add(-12);
        Assert.Equal(-1.0, window.Mean); // (4 + 5 - 12) / 3
        Assert.Equal(-12.0, window.Last);
    }

    [Fact]
    public void Add_KeepsOnlyTheLastValue_WhenCapacityIsOne()
    {
        var window = new StepWindow(1);

        foreach (double v in new[] { 3.5, -1.0, 7.25 })
        {
            window.Add(v);
            Assert.Equal(v, window.Mean);
            Assert.Equal(v, window.Last);
            Assert.True(window.IsFull);
        }

        Assert.Equal(3, window.Added);
    }

    [Fact]
    public void Mean_MatchesAFreshSum_AfterManyRandomAdds()
    {
        var random = new Random(99);
        var window = new StepWindow(13);
        var all = new List<double>();

        for (int i = 0; i < 10_000; i++)
        {
            double value = (random.NextDouble() - 0.5) * Math.Pow(10, random.Next(-3, 4));
            window.Add(value);
            all.Add(value);
            double expected = all.Skip(Math.Max(0, all.Count - 13)).Average();
            Assert.Equal(expected, window.Mean, Math.Abs(expected) * 1e-9 + 1e-12);
            Assert.Equal(value, window.Last);
        }
    }

    [Theory]
    [InlineData(2)]
    [InlineData(7)]
    [InlineData(1000)]
    public void Mean_DoesNotDrift_After10MillionAlternatingLargeAndSmallAdds(int capacity)
    {
        const long Adds = 10_000_000;
        var window = new StepWindow(capacity);

        for (long i = 0; i < Adds; i++)
        {
            window.Add(i % 2 == 0 ? 1e9 : 1);
            if (i >= capacity && (i % 9_973 == 0 || i == Adds - 1))
            {
                AssertMeanIsExact(window, i + 1, capacity);
            }
        }

        Assert.Equal(Adds, window.Added);
        AssertMeanIsExact(window, Adds, capacity);
    }

    [Fact]
    public void Mean_IsExactAgain_OneCapacityAfterHugeValuesLeave()
    {
        var window = new StepWindow(4);
        for (int i = 0; i < 1_000; i++)
        {
            window.Add(i % 2 == 0 ? 1e20 : 1);
        }

        // Four more adds (a multiple of the capacity) evict every huge value; the recomputed sum is exact.
        for (int i = 0; i < 4; i++)
        {
            window.Add(0.25);
        }

        Assert.Equal(0.25, window.Mean);
    }

    private static void AssertMeanIsExact(StepWindow window, long added, int capacity)
    {
        // The window holds the values added as numbers added-capacity .. added-1; even numbers were 1e9.
        long first = added - capacity;
        long evens = ((added + 1) / 2) - ((first + 1) / 2);
        double expected = ((evens * 1e9) + (capacity - evens)) / capacity;
        double relative = Math.Abs(window.Mean - expected) / expected;
        Assert.True(relative <= 1e-6, $"after {added} adds the mean is {window.Mean:R}, expected {expected:R} (relative error {relative:E2})");
    }
}
