// Whether the OTEL_* variables may ask for traces at all: only when an OTLP endpoint is set is
// start.ts loaded, and with it the OpenTelemetry API and SDK, which a sidecar that does not
// trace would otherwise hold in memory for its whole life. start.ts reads the variables in
// full (the SDK disabled, no exporter) and may still decide against tracing.

export function otlpEndpointSet(env: NodeJS.ProcessEnv = process.env): boolean {
  return [env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, env.OTEL_EXPORTER_OTLP_ENDPOINT].some((value) => value !== undefined && value.trim() !== '');
}
