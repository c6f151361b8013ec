using System.Diagnostics;
using System.Globalization;
using Monitor.Analysis;
using Monitor.Contracts;
using Monitor.Contracts.Transport;
using Monitor.Contracts.V1;

namespace Monitor.Service;

/// <summary>
/// The service's OpenTelemetry <c>process {topic}</c> CONSUMER span of one record: decode, analysis and the alert
/// transitions it caused. It is linked (not parented) to the worker's <c>send</c> span whose context the record's
/// <c>traceparent</c> header carries, as the messaging conventions do by default: one record's processing is its own
/// trace, and the link leads to the worker's.
/// </summary>
/// <remarks>Used on the pipeline thread only. Every method tolerates a null span (nobody listens) and costs nothing then.</remarks>
internal static class ProcessSpan
{
    /// <summary>Attribute with the record's run id (as the worker's span has it).</summary>
    public const string RunAttribute = "monitor.run";

    /// <summary>Attribute with the record's rank.</summary>
    public const string RankAttribute = "monitor.rank";

    /// <summary>Attribute with the record's step.</summary>
    public const string StepAttribute = "monitor.step";

    /// <summary>Name of the span event recorded for each alert transition the record caused.</summary>
    public const string AlertEvent = "monitor.alert";

    /// <summary>Starts the span, or returns null when no listener is attached. The span is current on the calling
    /// thread until it is disposed.</summary>
    /// <param name="spanName"><c>process {topic}</c>.</param>
    /// <param name="message">The record as consumed.</param>
    /// <param name="producer">The worker's span context from the headers, or default when there was none.</param>
    public static Activity? Start(string spanName, TransportMessage message, in ActivityContext producer)
    {
        if (!MonitorService.Source.HasListeners())
        {
            return null;
        }

        ActivityLink[]? links = producer == default ? null : [new ActivityLink(producer)];
        // A root linked to the producer: the pipeline thread has no ambient span (it starts with the execution
        // context's flow suppressed), and a default parent context means "the current span, if any".
        Activity? activity = MonitorService.Source.StartActivity(spanName, ActivityKind.Consumer, parentContext: default, links: links);
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag(MessagingAttributes.MessagingSystem, MessagingAttributes.Kafka);
            activity.SetTag(MessagingAttributes.OperationType, MessagingAttributes.Process);
            activity.SetTag(MessagingAttributes.OperationName, MessagingAttributes.Process);
            activity.SetTag(MessagingAttributes.DestinationName, message.Topic);
            activity.SetTag(MessagingAttributes.PartitionId, message.Partition.ToString(CultureInfo.InvariantCulture));
            activity.SetTag(MessagingAttributes.KafkaOffset, message.Offset);
            activity.SetTag(MessagingAttributes.BodySize, message.Value.Length);
            if (message.Key is { } key)
            {
                activity.SetTag(MessagingAttributes.KafkaMessageKey, key);
            }

            if (message.ConsumerGroup is { } group)
            {
                activity.SetTag(MessagingAttributes.ConsumerGroupName, group);
            }
        }

        return activity;
    }

    /// <summary>Records which run, rank and step the decoded record is.</summary>
    public static void Decoded(Activity? activity, StepRecord record)
    {
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag(RunAttribute, record.RunId);
            activity.SetTag(RankAttribute, (int)record.Rank);
            activity.SetTag(StepAttribute, record.Step);
        }
    }

    /// <summary>Marks the span failed: the record could not be decoded (it went to the dead-letter topic).</summary>
    public static void Undecodable(Activity? activity, DecodeError error)
    {
        if (activity is null)
        {
            return;
        }

        if (activity.IsAllDataRequested)
        {
            activity.SetTag(MessagingAttributes.ErrorType, error.Kind.ToString());
        }

        activity.SetStatus(ActivityStatusCode.Error, error.Reason);
    }

    /// <summary>Adds one <see cref="AlertEvent"/> event: alert name, fingerprint, new and previous state.</summary>
    public static void Alert(Activity? activity, AlertTransition transition)
    {
        if (activity is not { IsAllDataRequested: true })
        {
            return;
        }

        activity.AddEvent(new ActivityEvent(AlertEvent, tags: new ActivityTagsCollection
        {
            [AlertLabels.AlertName] = transition.RuleName,
            ["fingerprint"] = transition.Identity.Fingerprint,
            ["state"] = transition.State.ToString().ToLowerInvariant(),
            ["previous_state"] = transition.PreviousState.ToString().ToLowerInvariant(),
        }));
    }
}
