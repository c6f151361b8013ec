using Monitor.Samples.Training;

// The sample job on its own, tracing to a real Kafka cluster (see SampleJobCommand):
//   dotnet run --project src/Monitor.Samples.Training -- --kafka localhost:9092 --redis localhost:6379 --steps 1000 --fault vanishing-gradients
// With OTEL_EXPORTER_OTLP_ENDPOINT set, each record's `send monitor.steps` span is exported over OTLP.
return await SampleJobCommand.InvokeAsync(args);
