using System.Globalization;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace Monitor.Benchmarks;

/// <summary>Marks a benchmark class whose every invocation reads <see cref="Bytes"/> bytes, for the GB/s column.</summary>
[AttributeUsage(AttributeTargets.Class)]
public sealed class BytesPerInvocationAttribute(long bytes) : Attribute
{
    public long Bytes { get; } = bytes;
}

/// <summary>GB/s from the mean time, for classes with <see cref="BytesPerInvocationAttribute"/>.</summary>
public sealed class ThroughputColumn : IColumn
{
    public string Id => nameof(ThroughputColumn);

    public string ColumnName => "GB/s";

    public bool AlwaysShow => false;

    public ColumnCategory Category => ColumnCategory.Custom;

    public int PriorityInCategory => 0;

    public bool IsNumeric => true;

    public UnitType UnitType => UnitType.Dimensionless;

    public string Legend => "Bytes read per invocation / mean time, in 10^9 bytes per second";

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var attribute = (BytesPerInvocationAttribute?)Attribute.GetCustomAttribute(benchmarkCase.Descriptor.Type, typeof(BytesPerInvocationAttribute));
        double? meanNs = summary[benchmarkCase]?.ResultStatistics?.Mean;
        return attribute is null || meanNs is not > 0 ? "-" : (attribute.Bytes / meanNs.Value).ToString("F2", CultureInfo.InvariantCulture);
    }

    public bool IsAvailable(Summary summary) => true;

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
}
