using System.Globalization;
using System.Text;
using Monitor.Contracts;
using Monitor.Contracts.Transport;

namespace Monitor.Service;

/// <summary>
/// Writes undecodable records to the dead-letter topic, byte for byte, with the reason and origin in headers
/// (<see cref="DeadLetterHeaders"/>), and waits for the transport to confirm.
/// </summary>
/// <remarks>Called from the pipeline thread; the record's offset is marked processed only after this returns.</remarks>
internal sealed class DeadLetterSink(IRecordProducer producer, string topic, TimeSpan timeout, int attempts = 3)
{
    /// <summary>Sends one record; true when the transport accepted it within the attempts.</summary>
    public bool Send(TransportMessage message, DecodeError error, out string? failure)
    {
        List<KeyValuePair<string, byte[]>> headers =
        [
            .. message.Headers,
            new(DeadLetterHeaders.ErrorKind, Encoding.UTF8.GetBytes(error.Kind.ToString())),
            new(DeadLetterHeaders.Reason, Encoding.UTF8.GetBytes(error.Reason)),
            new(DeadLetterHeaders.SourceTopic, Encoding.UTF8.GetBytes(message.Topic)),
            new(DeadLetterHeaders.SourcePartition, Encoding.UTF8.GetBytes(message.Partition.ToString(CultureInfo.InvariantCulture))),
            new(DeadLetterHeaders.SourceOffset, Encoding.UTF8.GetBytes(message.Offset.ToString(CultureInfo.InvariantCulture))),
        ];
        failure = null;
        for (int attempt = 1; attempt <= attempts; attempt++)
        {
            using var delivered = new ManualResetEventSlim();
            DeliveryReport outcome = default;
            producer.Produce(topic, message.Key ?? "", message.Value, headers, report =>
            {
                outcome = report;
                delivered.Set();
            });
            if (!delivered.Wait(timeout))
            {
                failure = $"no delivery report within {timeout.TotalSeconds:F0} s";
                continue;
            }

            if (outcome.Delivered)
            {
                return true;
            }

            failure = outcome.Error;
        }

        return false;
    }
}
