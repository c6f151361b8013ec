using System.Diagnostics;
using System.Globalization;
using Monitor.Contracts.Transport;

namespace Monitor.Tracing;

/// <summary>
/// The OpenTelemetry <c>send {topic}</c> PRODUCER span of one step record: started by the tracer's sender just before
/// the record is handed to the transport, ended by the delivery report (so it covers the broker's acknowledgement),
/// with the messaging attributes of <see cref="MessagingAttributes"/> and the delivered partition and offset.
/// </summary>
/// <remarks>
/// Exists only while a listener (an OpenTelemetry SDK with this source added) is attached: without one the sender
/// allocates nothing for tracing. The delivery callback runs once, on the transport's thread.
/// </remarks>
internal sealed class SendSpan
{
    /// <summary>Attribute with the record's run id.</summary>
    public const string MonitorRunAttribute = "monitor.run";

    /// <summary>Attribute with the record's rank.</summary>
    public const string MonitorRankAttribute = "monitor.rank";

    /// <summary>Attribute with the record's step.</summary>
    public const string MonitorStepAttribute = "monitor.step";

    private readonly Activity _activity;
    private readonly Action<DeliveryReport> _next;

    private SendSpan(Activity activity, Action<DeliveryReport> next)
    {
        _activity = activity;
        _next = next;
        OnDelivery = Delivered;
    }

    /// <summary>The span.</summary>
    public Activity Activity => _activity;

    /// <summary>Ends the span with the outcome, then calls the tracer's own delivery callback.</summary>
    public Action<DeliveryReport> OnDelivery { get; }

    /// <summary>
    /// Starts the span as a child of <paramref name="parent"/> (the training thread's span at <c>EndStep</c>, or none:
    /// then it roots a trace of its own). Leaves <see cref="Activity.Current"/> as it found it.
    /// </summary>
    /// <returns>Null when nobody listens.</returns>
    public static SendSpan? Start(string spanName, in ActivityContext parent, string topic, string key, long step, string run, int rank, int bodySize,
        Action<DeliveryReport> next)
    {
        Activity? previous = Activity.Current;
        Activity? activity = StepTracer.Source.StartActivity(spanName, ActivityKind.Producer, parent);
        // The sender thread must not carry the span into the next record.
        Activity.Current = previous;
        if (activity is null)
        {
            return null;
        }

        if (activity.IsAllDataRequested)
        {
            activity.SetTag(MessagingAttributes.MessagingSystem, MessagingAttributes.Kafka);
            activity.SetTag(MessagingAttributes.OperationType, MessagingAttributes.Send);
            activity.SetTag(MessagingAttributes.OperationName, MessagingAttributes.Send);
            activity.SetTag(MessagingAttributes.DestinationName, topic);
            activity.SetTag(MessagingAttributes.KafkaMessageKey, key);
            activity.SetTag(MessagingAttributes.BodySize, bodySize);
            activity.SetTag(MonitorRunAttribute, run);
            activity.SetTag(MonitorRankAttribute, rank);
            activity.SetTag(MonitorStepAttribute, step);
        }

        return new SendSpan(activity, next);
    }

    /// <summary>Ends the span as failed: the transport threw instead of reporting.</summary>
    public void Failed(Exception exception)
    {
        if (_activity.IsAllDataRequested)
        {
            _activity.SetTag(MessagingAttributes.ErrorType, exception.GetType().FullName);
        }

        _activity.SetStatus(ActivityStatusCode.Error, exception.Message);
        Stop();
    }

    private void Delivered(DeliveryReport report)
    {
        try
        {
            if (_activity.IsAllDataRequested && report.Partition >= 0)
            {
                _activity.SetTag(MessagingAttributes.PartitionId, report.Partition.ToString(CultureInfo.InvariantCulture));
                _activity.SetTag(MessagingAttributes.KafkaOffset, report.Offset);
            }

            if (!report.Delivered)
            {
                if (_activity.IsAllDataRequested)
                {
                    _activity.SetTag(MessagingAttributes.ErrorType, report.ErrorType ?? "_OTHER");
                }

                _activity.SetStatus(ActivityStatusCode.Error, report.Error);
            }

            Stop();
        }
        finally
        {
            _next(report);
        }
    }

    private void Stop()
    {
        // Stop makes the span's predecessor current on the calling thread; keep that thread's own current span.
        Activity? current = Activity.Current;
        _activity.Stop();
        Activity.Current = ReferenceEquals(current, _activity) ? null : current;
    }
}
