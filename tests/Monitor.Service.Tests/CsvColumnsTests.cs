using Monitor.Service.Drift;

namespace Monitor.Service.Tests;

public sealed class CsvColumnsTests
{
    [Fact]
    public void Parse_ReadsColumnsByHeader_WithQuotesEmptyCellsAndNamedSpecialValues()
    {
        (IReadOnlyList<string> names, IReadOnlyDictionary<string, double[]> columns) =
            CsvColumns.Parse("a,\"b, quoted\",c\r\n1.5,-2e-3,nan\n\n 3 ,\"4\",inf\n,5,-Infinity\n", "data.csv");

        Assert.Equal(["a", "b, quoted", "c"], names);
        Assert.Equal([1.5, 3, double.NaN], columns["a"]);
        Assert.Equal([-2e-3, 4, 5], columns["b, quoted"]);
        Assert.Equal([double.NaN, double.PositiveInfinity, double.NegativeInfinity], columns["c"]);
    }

    [Theory]
    [InlineData("", "data.csv: the file is empty")]
    [InlineData("a,b\n", "data.csv: the file has a header but no rows of values")]
    [InlineData("a,a\n1,2\n", "data.csv:1: column 2 repeats the name 'a' of column 1")]
    [InlineData("a,\n1,2\n", "data.csv:1: column 2 of the header has no name")]
    [InlineData("a,b\n1,2\n3\n", "data.csv:3: 1 fields, but the header names 2 columns")]
    [InlineData("a,b\n1,2\n3,x4\n", "data.csv:3: column 'b': 'x4' is not a number")]
    [InlineData("a,b\n1,\"2\n", "data.csv:2: a quoted field is not closed")]
    public void Parse_NamesTheFileLineAndColumn_OfEveryProblem(string text, string message)
    {
        CsvFormatException error = Assert.Throws<CsvFormatException>(() => CsvColumns.Parse(text, "data.csv"));

        Assert.StartsWith(message, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_NamesTheFile_WhenItCannotBeRead()
    {
        string path = Path.Combine(Path.GetTempPath(), "monitor-missing-" + Guid.NewGuid().ToString("N") + ".csv");

        CsvFormatException error = Assert.Throws<CsvFormatException>(() => CsvColumns.Read(path));

        Assert.StartsWith(path + ":", error.Message, StringComparison.Ordinal);
    }
}
