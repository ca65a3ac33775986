// Starting OpenTelemetry: the SDK, its sampler and its exporter, configured by the standard
// OTEL_* variables. Without an OTLP endpoint the SDK is not even loaded: requests carry no
// trace, and traceparent and tracestate pass upstream like any other header.

import { context, diag, DiagLogLevel, logs, ProxyTracer, trace, type DiagLogger } from '@opentelemetry/api';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import type { Sampler, SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace';
import type { Logger } from 'pino';
import { breakwaterVersion } from '../../runtime/version.ts';
import { ratioBound, TraceIds } from './ids.ts';
import { Tracing } from './spans.ts';

/**
 * The share of new traces sampled when OTEL_TRACES_SAMPLER is unset and OTEL_TRACES_SAMPLER_ARG
 * does not say: every one, as the OpenTelemetry specification defaults the ratio. A caller's
 * sampling decision is always followed.
 */
export const defaultSampleRatio = 1;

/** The tracer's name, and the service name unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES name another. */
const serviceName = 'breakwater';

/** The SDK's globals hold one tracer provider at a time. */
let running = false;

/** The sampler OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG choose, with what to log of it. */
export interface ChosenSampler {
  readonly sampler: Sampler;
  /** The OTEL_TRACES_SAMPLER value in use. */
  readonly name: string;
  /** The ratio of new traces sampled, for the ratio samplers. */
  readonly ratio: number | undefined;
}

const defaultSamplerName = 'parentbased_traceidratio';

/**
 * Builds the sampler the standard variables name: `always_on`, `always_off`, `traceidratio`,
 * `parentbased_always_on`, `parentbased_always_off` or `parentbased_traceidratio`, the ratio
 * from OTEL_TRACES_SAMPLER_ARG. Unset or unknown, parent-based by ratio: the SDK's own default,
 * parentbased_always_on, would ignore OTEL_TRACES_SAMPLER_ARG.
 */
export async function samplerFromEnv(logger: Logger): Promise<ChosenSampler> {
  const [{ getNumberFromEnv, getStringFromEnv }, { AlwaysOffSampler, AlwaysOnSampler, ParentBasedSampler, TraceIdRatioBasedSampler }] = await Promise.all([
    import('@opentelemetry/core'),
    import('@opentelemetry/sdk-trace'),
  ]);
  const sampleRatio = (): number => {
    const ratio = getNumberFromEnv('OTEL_TRACES_SAMPLER_ARG') ?? defaultSampleRatio;
    if (ratio >= 0 && ratio <= 1) return ratio;
    logger.warn({ OTEL_TRACES_SAMPLER_ARG: ratio, ratio: defaultSampleRatio }, 'OTEL_TRACES_SAMPLER_ARG is outside 0..1; using the default ratio');
    return defaultSampleRatio;
  };
  let name = getStringFromEnv('OTEL_TRACES_SAMPLER')?.trim() ?? defaultSamplerName;
  switch (name) {
    case 'always_on':
      return { sampler: new AlwaysOnSampler(), name, ratio: undefined };
    case 'always_off':
      return { sampler: new AlwaysOffSampler(), name, ratio: undefined };
    case 'parentbased_always_on':
      return { sampler: new ParentBasedSampler({ root: new AlwaysOnSampler() }), name, ratio: undefined };
    case 'parentbased_always_off':
      return { sampler: new ParentBasedSampler({ root: new AlwaysOffSampler() }), name, ratio: undefined };
    case 'traceidratio': {
      const ratio = sampleRatio();
      return { sampler: new TraceIdRatioBasedSampler(ratio), name, ratio };
    }
    case defaultSamplerName:
      break;
    default:
      logger.warn({ OTEL_TRACES_SAMPLER: name, sampler: defaultSamplerName }, 'OTEL_TRACES_SAMPLER names no known sampler; using the default');
      name = defaultSamplerName;
  }
  const ratio = sampleRatio();
  return { sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) }), name, ratio };
}

/**
 * Starts the OpenTelemetry SDK when the OTEL_* variables ask for traces: an OTLP endpoint set
 * (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), the SDK not disabled,
 * and OTEL_TRACES_EXPORTER neither `none` nor only names of exporters the SDK does not have.
 * Resolves to undefined when they do not.
 * `spanProcessors`, when given, receive the spans in place of the exporter the variables choose.
 */
export async function startTracing(options: { readonly logger: Logger; readonly spanProcessors?: SpanProcessor[] }): Promise<Tracing | undefined> {
  const { getBooleanFromEnv, getStringFromEnv, getStringListFromEnv, diagLogLevelFromString, W3CTraceContextPropagator } = await import('@opentelemetry/core');
  const endpoint = getStringFromEnv('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT') ?? getStringFromEnv('OTEL_EXPORTER_OTLP_ENDPOINT');
  if (endpoint === undefined || getBooleanFromEnv('OTEL_SDK_DISABLED') || getStringListFromEnv('OTEL_TRACES_EXPORTER')?.[0] === 'none') {
    return undefined;
  }
  if (running) throw new Error('OpenTelemetry tracing already runs for another Breakwater in this process');

  const [{ NodeSDK }, { defaultResource, resourceFromAttributes }] = await Promise.all([
    import('@opentelemetry/sdk-node'),
    import('@opentelemetry/resources'),
  ]);
  const version = breakwaterVersion;
  const logger = options.logger.child({ component: 'opentelemetry' });
  const { sampler, name, ratio } = await samplerFromEnv(logger);
  const ids = new TraceIds();
  const traceExporter = options.spanProcessors === undefined ? await otlpHttpExporter(getStringFromEnv, getStringListFromEnv) : undefined;
  const sdk = new NodeSDK({
    // The resource detectors and OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES override these.
    resource: defaultResource().merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: serviceName, [ATTR_SERVICE_VERSION]: version })),
    // Breakwater asks the same sampler first, and makes no SDK span for a request it drops.
    sampler,
    // A new trace's server span gets the trace id that sampler was asked about.
    idGenerator: ids,
    spanProcessors: options.spanProcessors,
    // Batched as OTEL_BSP_* says; undefined lets the SDK build the exporter the variables name.
    traceExporter,
    // Traces only: Prometheus serves the metrics and pino writes the logs.
    metricReaders: [],
    logRecordProcessors: [],
    // Spans are parented explicitly and Breakwater carries the W3C context itself.
    textMapPropagator: null,
  });
  // The SDK's own complaints (an unreachable collector, a bad variable) go to the JSON log.
  // Errors only by default: under overload the SDK warns of dropped spans at every export,
  // which would flood the log that the access log shares.
  diag.setLogger(diagToPino(logger), {
    logLevel: diagLogLevelFromString(getStringFromEnv('OTEL_LOG_LEVEL')) ?? DiagLogLevel.ERROR,
    suppressOverrideMessage: true,
  });
  sdk.start();
  const tracer = trace.getTracer(serviceName, version);
  // The SDK registers no tracer provider when OTEL_TRACES_EXPORTER names only exporters it
  // does not have (`jaeger`): the API's stand-in would then drop every span unseen.
  if (tracer instanceof ProxyTracer) {
    logger.warn({ OTEL_TRACES_EXPORTER: getStringFromEnv('OTEL_TRACES_EXPORTER') }, 'OTEL_TRACES_EXPORTER names no exporter the SDK knows; tracing is off');
    await sdk.shutdown();
    releaseGlobals();
    return undefined;
  }
  running = true;
  logger.info({ endpoint: URL.canParse(endpoint) ? new URL(endpoint).origin : endpoint, sampler: name, ratio }, 'tracing started');
  // Exports the spans still buffered, stops the SDK and frees its globals for a later start. An
  // unreachable collector costs the last spans, after the exporter's own timeout, and never the
  // clean exit of the drain.
  const stop = async (): Promise<void> => {
    try {
      await sdk.shutdown();
    } catch (error) {
      logger.warn({ err: error }, 'the last spans could not be exported');
    } finally {
      releaseGlobals();
      running = false;
    }
  };
  return new Tracing(
    {
      tracer,
      sampler,
      newTraceBound: ratio === undefined ? undefined : ratioBound(ratio),
      ids,
      propagator: new W3CTraceContextPropagator(),
      endpoints: new Map(),
    },
    stop,
  );
}

/**
 * The OTLP exporter of OTEL_EXPORTER_OTLP_* over undici (see otlp-transport.ts) when the
 * variables choose OTLP/HTTP to an `http:` collector, as a sidecar beside a node's collector
 * mostly does. Otherwise undefined: the SDK builds what they name (gRPC, `https:` with its
 * certificate variables, Zipkin, the console, several exporters).
 */
async function otlpHttpExporter(
  getStringFromEnv: (name: string) => string | undefined,
  getStringListFromEnv: (name: string) => string[] | undefined,
): Promise<SpanExporter | undefined> {
  const exporters = getStringListFromEnv('OTEL_TRACES_EXPORTER') ?? [];
  if (exporters.length > 1 || (exporters.length === 1 && exporters[0] !== 'otlp')) return undefined;
  const protocol = getStringFromEnv('OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') ?? getStringFromEnv('OTEL_EXPORTER_OTLP_PROTOCOL') ?? 'http/protobuf';
  if (protocol !== 'http/protobuf' && protocol !== 'http/json') return undefined;
  const [{ OTLPExporterBase, createOtlpNetworkExportDelegate }, { convertLegacyHttpOptions, createOtlpHttpExporterMetrics }, serializers, { UndiciExporterTransport }] = await Promise.all([
    import('@opentelemetry/otlp-exporter-base'),
    import('@opentelemetry/otlp-exporter-base/node-http'),
    import('@opentelemetry/otlp-transformer'),
    import('./otlp-transport.ts'),
  ]);
  const json = protocol === 'http/json';
  // The SDK's own reading of the variables: endpoint, headers, timeout, compression.
  const options = convertLegacyHttpOptions({}, 'TRACES', 'v1/traces', { 'Content-Type': json ? 'application/json' : 'application/x-protobuf' });
  if (!URL.canParse(options.url) || new URL(options.url).protocol !== 'http:') return undefined;
  const metrics = createOtlpHttpExporterMetrics('otlp_http_span_exporter', serializers.TraceExporterMetricsHelper, options.url, undefined);
  const serializer = json ? serializers.JsonTraceSerializer : serializers.ProtobufTraceSerializer;
  return new OTLPExporterBase(createOtlpNetworkExportDelegate(options, serializer, metrics, new UndiciExporterTransport(options)));
}

function diagToPino(logger: Logger): DiagLogger {
  const write =
    (level: 'error' | 'warn' | 'info' | 'debug' | 'trace') =>
    (message: string, ...args: unknown[]): void => {
      if (args.length === 0) logger[level](message);
      else logger[level]({ details: args.map(String) }, message);
    };
  return { error: write('error'), warn: write('warn'), info: write('info'), debug: write('debug'), verbose: write('trace') };
}

/** Frees the API's globals that the SDK's start registered, so that a later start can. */
function releaseGlobals(): void {
  trace.disable();
  context.disable();
  logs.disable();
  diag.disable();
}

