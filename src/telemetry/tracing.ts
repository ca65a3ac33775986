// OpenTelemetry traces, made by hand on the data path: one server span per request and one
// client span per upstream attempt, exported by the OpenTelemetry Node SDK, which the standard
// OTEL_* variables configure. Without an OTLP endpoint the SDK is not even loaded: requests
// carry no trace, and traceparent and tracestate pass upstream like any other header.

import { randomFillSync } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import {
  context,
  defaultTextMapGetter,
  diag,
  DiagLogLevel,
  INVALID_SPANID,
  INVALID_TRACEID,
  logs,
  ProxyTracer,
  ROOT_CONTEXT,
  SamplingDecision,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type DiagLogger,
  type Span,
  type TextMapPropagator,
  type TextMapSetter,
  type TraceState,
  type Tracer,
} from '@opentelemetry/api';
import {
  ATTR_CLIENT_ADDRESS,
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_REQUEST_METHOD_ORIGINAL,
  ATTR_HTTP_REQUEST_RESEND_COUNT,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_NETWORK_PROTOCOL_VERSION,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_SERVICE_NAME,
  ATTR_SERVICE_VERSION,
  ATTR_URL_PATH,
  ATTR_URL_SCHEME,
} from '@opentelemetry/semantic-conventions';
import type { IdGenerator, Sampler, SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace';
import type { Logger } from 'pino';
import type { PolicyEvent, PolicyEvents } from '../policies/events.ts';
import type { AttemptStart, AttemptTrace, ProxyRequest, RequestTrace } from '../proxy/context.ts';
import type { AttemptFailure } from '../proxy/errors.ts';
import type { RequestRecord, RequestTracer } from '../proxy/listener.ts';
import { pathOnly } from './logger.ts';

/**
 * The share of new traces sampled when OTEL_TRACES_SAMPLER is unset and OTEL_TRACES_SAMPLER_ARG
 * does not say: every one, as the OpenTelemetry specification defaults the ratio. A caller's
 * sampling decision is always followed.
 */
export const defaultSampleRatio = 1;

/** The tracer's name, and the service name unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES name another. */
const serviceName = 'breakwater';

/** The methods of RFC 9110 and PATCH; semantic conventions report any other as `_OTHER`. */
const knownMethods = new Set(['CONNECT', 'DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT', 'TRACE']);

/** Who answered the client, the server span's `breakwater.outcome`. */
type RequestOutcome = 'upstream' | 'fallback' | 'local' | 'client_closed';

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

  const [{ NodeSDK }, { defaultResource, resourceFromAttributes }, version] = await Promise.all([
    import('@opentelemetry/sdk-node'),
    import('@opentelemetry/resources'),
    packageVersion(),
  ]);
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
  return new Tracing(
    sdk,
    {
      tracer,
      sampler,
      newTraceBound: ratio === undefined ? undefined : ratioBound(ratio),
      ids,
      propagator: new W3CTraceContextPropagator(),
      endpoints: new Map(),
    },
    logger,
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

async function packageVersion(): Promise<string> {
  // package.json sits two levels up both from src/telemetry/ and from the built dist/telemetry/.
  const text = await readFile(new URL('../../package.json', import.meta.url), 'utf8');
  return (JSON.parse(text) as { version: string }).version;
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

/** Records the policy events that happened to a traced request on its server span. */
export const spanEvents: PolicyEvents = {
  emit(event, request) {
    request?.trace?.event(event);
  },
};

/** What the spans of every request share. */
interface Spans {
  readonly tracer: Tracer;
  /** The SDK's sampler, asked first: a request it drops never reaches the SDK. */
  readonly sampler: Sampler;
  /**
   * For the ratio samplers: a new trace is sampled when its trace id's hash is below this
   * bound. Breakwater applies the rule itself to the ids it draws, without asking the sampler.
   */
  readonly newTraceBound: number | undefined;
  readonly ids: TraceIds;
  readonly propagator: TextMapPropagator;
  /** server.address and server.port by endpoint origin; origins come from the config. */
  readonly endpoints: Map<string, Endpoint>;
}

interface Endpoint {
  readonly address: string;
  readonly port: number;
}

/** Bytes of randomness drawn at once: the ids of 256 traces. */
const idBlockBytes = 4096;

/**
 * The bound of TraceIdRatioBasedSampler: a trace id whose hash is below it is sampled. The
 * same arithmetic as the SDK's; a unit test holds the two to the same decisions.
 */
export function ratioBound(ratio: number): number {
  return ratio >= 1 ? 2 ** 32 : Math.floor(Math.max(0, ratio) * 0xffffffff);
}

/**
 * Random W3C ids, cut from a block of random bytes drawn (and hex-encoded) at once. It is the
 * SDK's id generator too, so that a new trace's server span gets the trace id the sampling
 * decision was made on.
 */
class TraceIds implements IdGenerator {
  readonly #block = Buffer.allocUnsafe(idBlockBytes);
  #hex = '';
  #used = idBlockBytes;
  #chosenTraceId: string | undefined;
  /**
   * The ratio samplers' hash of the id newTraceId() returned last: its four 32-bit words
   * XORed, read from the bytes instead of parsed back from the hex.
   */
  lastTraceIdHash = 0;

  newTraceId(): string {
    const at = this.#take(16);
    const id = this.#hex.slice(2 * at, 2 * at + 32);
    // All zeros is no id in W3C Trace Context.
    if (id === INVALID_TRACEID) return this.newTraceId();
    const block = this.#block;
    this.lastTraceIdHash = (block.readUInt32BE(at) ^ block.readUInt32BE(at + 4) ^ block.readUInt32BE(at + 8) ^ block.readUInt32BE(at + 12)) >>> 0;
    return id;
  }

  /** Makes `traceId` the id of the next trace the SDK starts; undefined lets it draw one. */
  choose(traceId: string | undefined): void {
    this.#chosenTraceId = traceId;
  }

  generateTraceId(): string {
    const chosen = this.#chosenTraceId;
    if (chosen === undefined) return this.newTraceId();
    this.#chosenTraceId = undefined;
    return chosen;
  }

  generateSpanId(): string {
    const at = this.#take(8);
    const id = this.#hex.slice(2 * at, 2 * at + 16);
    return id === INVALID_SPANID ? this.generateSpanId() : id;
  }

  /** The offset of `bytes` fresh random bytes in the block, drawing a new block when needed. */
  #take(bytes: number): number {
    if (this.#used + bytes > idBlockBytes) {
      randomFillSync(this.#block);
      // One encoding for the whole block: each id is then a slice of this string.
      this.#hex = this.#block.toString('hex');
      this.#used = 0;
    }
    const at = this.#used;
    this.#used += bytes;
    return at;
  }
}

/** What Breakwater's samplers are told of a request besides its trace id: nothing. */
const noAttributes: Attributes = Object.freeze({});
const noLinks = Object.freeze([]) as [];

/** A running SDK, which the listeners start request traces with. */
export class Tracing implements RequestTracer {
  readonly #sdk: { shutdown(): Promise<void> };
  readonly #spans: Spans;
  readonly #logger: Logger;

  constructor(sdk: { shutdown(): Promise<void> }, spans: Spans, logger: Logger) {
    this.#sdk = sdk;
    this.#spans = spans;
    this.#logger = logger;
  }

  startRequest(req: IncomingMessage, listener: string): RequestTrace {
    const spans = this.#spans;
    const method = req.method ?? 'GET';
    // Without a traceparent the request starts a trace: nothing to parse.
    const parent = req.headers.traceparent === undefined ? ROOT_CONTEXT : spans.propagator.extract(ROOT_CONTEXT, req.headers, defaultTextMapGetter);
    const parentIds = parent === ROOT_CONTEXT ? undefined : trace.getSpanContext(parent);
    const traceId = parentIds?.traceId ?? spans.ids.newTraceId();
    // Most requests go unsampled under a low ratio: they get no span and no context object.
    if (parentIds === undefined && spans.newTraceBound !== undefined) {
      if (spans.ids.lastTraceIdHash >= spans.newTraceBound) return new UnsampledTrace(spans.ids, traceId, undefined);
    } else {
      const sampling = spans.sampler.shouldSample(parent, traceId, method, SpanKind.SERVER, noAttributes, noLinks);
      if (sampling.decision === SamplingDecision.NOT_RECORD) {
        return new UnsampledTrace(spans.ids, traceId, sampling.traceState ?? parentIds?.traceState);
      }
    }
    const [address, port] = splitAuthority(req.headers.host ?? '');
    const known = knownMethods.has(method);
    if (parentIds === undefined) spans.ids.choose(traceId);
    const span = spans.tracer.startSpan(method, { kind: SpanKind.SERVER }, parent);
    // One by one after the start: the SDK cleans attributes given to startSpan twice over.
    span.setAttribute(ATTR_HTTP_REQUEST_METHOD, known ? method : '_OTHER');
    span.setAttribute(ATTR_HTTP_REQUEST_METHOD_ORIGINAL, known ? undefined : method);
    span.setAttribute(ATTR_URL_SCHEME, 'http');
    span.setAttribute(ATTR_URL_PATH, pathOnly(req.url ?? '/'));
    span.setAttribute(ATTR_SERVER_ADDRESS, address === '' ? undefined : address);
    span.setAttribute(ATTR_SERVER_PORT, port);
    span.setAttribute(ATTR_CLIENT_ADDRESS, req.socket.remoteAddress);
    span.setAttribute(ATTR_NETWORK_PROTOCOL_VERSION, req.httpVersion);
    span.setAttribute('breakwater.listener', listener);
    spans.ids.choose(undefined);
    return new ServerSpan(spans, span, trace.setSpan(parent, span), method, known);
  }

  /**
   * Exports the spans still buffered, stops the SDK and frees its globals for a later start. An
   * unreachable collector costs the last spans, after the exporter's own timeout, and never the
   * clean exit of the drain.
   */
  async shutdown(): Promise<void> {
    try {
      await this.#sdk.shutdown();
    } catch (error) {
      this.#logger.warn({ err: error }, 'the last spans could not be exported');
    } finally {
      releaseGlobals();
      running = false;
    }
  }
}

/** Frees the API's globals that the SDK's start registered, so that a later start can. */
function releaseGlobals(): void {
  trace.disable();
  context.disable();
  logs.disable();
  diag.disable();
}

/** Takes the caller's traceparent and tracestate out of a header list. */
function removeTraceHeaders(headers: string[]): void {
  for (let i = headers.length - 2; i >= 0; i -= 2) {
    const name = headers[i]!;
    // The length test spares lower-casing every other header name.
    if ((name.length === 11 || name.length === 10) && traceHeaders.has(name.toLowerCase())) headers.splice(i, 2);
  }
}

const traceHeaders = new Set(['traceparent', 'tracestate']);

const appendHeader: TextMapSetter<string[]> = {
  set: (headers, name, value) => {
    headers.push(name, value);
  },
};

/** Puts `spanContext` in a header list, in place of any traceparent and tracestate it had. */
function inject(spans: Spans, spanContext: Context, headers: string[]): void {
  removeTraceHeaders(headers);
  spans.propagator.inject(spanContext, headers, appendHeader);
}

/** server.address and server.port of an endpoint origin. */
function endpoint(spans: Spans, origin: string): Endpoint {
  let found = spans.endpoints.get(origin);
  if (found === undefined) {
    const url = new URL(origin);
    found = { address: url.hostname, port: url.port === '' ? 80 : Number(url.port) };
    spans.endpoints.set(origin, found);
  }
  return found;
}

/**
 * A request the sampler dropped: no span, nothing exported, nothing recorded. Its attempts
 * still carry the trace upstream, not sampled, as the SDK's non-recording span would, so the
 * services behind Breakwater make the same decision.
 */
class UnsampledTrace implements RequestTrace {
  readonly traceId = undefined;
  readonly spanId = undefined;
  readonly #ids: TraceIds;
  readonly #traceId: string;
  readonly #traceState: TraceState | undefined;

  constructor(ids: TraceIds, traceId: string, traceState: TraceState | undefined) {
    this.#ids = ids;
    this.#traceId = traceId;
    this.#traceState = traceState;
  }

  startAttempt(_request: ProxyRequest, attempt: AttemptStart): AttemptTrace {
    const headers = attempt.headers;
    removeTraceHeaders(headers);
    // Each attempt under a span id of its own; flags 00: not sampled.
    headers.push('traceparent', `00-${this.#traceId}-${this.#ids.generateSpanId()}-00`);
    if (this.#traceState !== undefined) headers.push('tracestate', this.#traceState.serialize());
    return unrecordedAttempt;
  }

  // Nothing to record and nothing to end.
  event(): void {}

  end(): void {}
}

/** A request's server span; attempts are its children. */
class ServerSpan implements RequestTrace {
  readonly traceId: string | undefined;
  readonly spanId: string | undefined;
  readonly #spans: Spans;
  readonly #span: Span;
  readonly #context: Context;
  readonly #method: string;
  readonly #knownMethod: boolean;
  readonly #recording: boolean;

  constructor(spans: Spans, span: Span, spanContext: Context, method: string, knownMethod: boolean) {
    this.#spans = spans;
    this.#span = span;
    this.#context = spanContext;
    this.#method = method;
    this.#knownMethod = knownMethod;
    this.#recording = span.isRecording();
    const ids = span.spanContext();
    this.traceId = this.#recording ? ids.traceId : undefined;
    this.spanId = this.#recording ? ids.spanId : undefined;
  }

  startAttempt(request: ProxyRequest, attempt: AttemptStart): AttemptTrace {
    if (!this.#recording) {
      // Without an exporter it knows (OTEL_TRACES_EXPORTER), the SDK makes no span: the caller's context travels on.
      inject(this.#spans, this.#context, attempt.headers);
      return unrecordedAttempt;
    }
    const method = this.#method;
    const known = this.#knownMethod;
    const { address, port } = endpoint(this.#spans, attempt.origin);
    const span = this.#spans.tracer.startSpan(`${method} ${attempt.upstream}`, { kind: SpanKind.CLIENT }, this.#context);
    span.setAttribute(ATTR_HTTP_REQUEST_METHOD, known ? method : '_OTHER');
    span.setAttribute(ATTR_HTTP_REQUEST_METHOD_ORIGINAL, known ? undefined : method);
    span.setAttribute(ATTR_SERVER_ADDRESS, address);
    span.setAttribute(ATTR_SERVER_PORT, port);
    span.setAttribute(ATTR_URL_PATH, pathOnly(request.path));
    // Set on retries only, as the semantic conventions say: the first attempt has none.
    span.setAttribute(ATTR_HTTP_REQUEST_RESEND_COUNT, request.attempts > 1 ? request.attempts - 1 : undefined);
    span.setAttribute('breakwater.route', request.route);
    span.setAttribute('breakwater.upstream', attempt.upstream);
    span.setAttribute('breakwater.breaker_state', attempt.breakerState);
    span.setAttribute('breakwater.deadline_remaining_ms', Math.max(0, Math.round(attempt.remainingMs)));
    inject(this.#spans, trace.setSpan(this.#context, span), attempt.headers);
    return new ClientSpan(span);
  }

  event(event: PolicyEvent): void {
    if (!this.#recording) return;
    const recorded = spanEvent(event);
    if (recorded !== undefined) this.#span.addEvent(recorded[0], recorded[1]);
  }

  end(record: RequestRecord): void {
    const span = this.#span;
    if (this.#recording) {
      const outcome = requestOutcome(record);
      const answered = outcome !== 'client_closed';
      span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, answered ? record.status : undefined);
      span.setAttribute('breakwater.route', record.route);
      span.setAttribute('breakwater.upstream', record.upstream);
      span.setAttribute('breakwater.outcome', outcome);
      span.setAttribute('breakwater.reason', record.reason);
      span.setAttribute('breakwater.fallback', record.fallback);
      span.setAttribute('breakwater.attempts', record.attempts);
      if (record.route !== undefined) span.updateName(`${this.#method} ${record.route}`);
      // A server span is in error for a 5xx only: a 4xx is the client's mistake.
      if (answered && record.status >= 500) {
        span.setAttribute(ATTR_ERROR_TYPE, record.reason ?? String(record.status));
        span.setStatus({ code: SpanStatusCode.ERROR });
      }
    }
    span.end();
  }
}

/** One attempt's client span. */
class ClientSpan implements AttemptTrace {
  readonly #span: Span;

  constructor(span: Span) {
    this.#span = span;
  }

  outcome(outcome: 'response' | AttemptFailure, status: number | undefined): void {
    const span = this.#span;
    span.setAttribute('breakwater.outcome', outcome);
    span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
    // A client span is in error for a 4xx or 5xx, or for no response at all.
    const errorType = outcome !== 'response' ? outcome : status !== undefined && status >= 400 ? String(status) : undefined;
    if (errorType !== undefined) {
      span.setAttribute(ATTR_ERROR_TYPE, errorType);
      span.setStatus({ code: SpanStatusCode.ERROR });
    }
  }

  end(): void {
    this.#span.end();
  }
}

const unrecordedAttempt: AttemptTrace = { outcome: () => undefined, end: () => undefined };

/** Host and port of a Host header (`name`, `name:port`, `[v6]:port`). */
function splitAuthority(authority: string): [string, number | undefined] {
  const colon = authority.lastIndexOf(':');
  if (colon === -1 || colon < authority.lastIndexOf(']')) return [authority, undefined];
  const port = Number(authority.slice(colon + 1));
  return [authority.slice(0, colon), Number.isInteger(port) ? port : undefined];
}

function requestOutcome(record: RequestRecord): RequestOutcome {
  if (record.reason === 'client_closed') return 'client_closed';
  if (record.fallback !== undefined) return 'fallback';
  return record.reason === undefined ? 'upstream' : 'local';
}

/** The span event for a policy event about one request; undefined for events about no request. */
function spanEvent(event: PolicyEvent): [string, Attributes] | undefined {
  switch (event.type) {
    case 'retry':
      return ['breakwater.retry.backoff', { 'breakwater.retry.next_attempt': event.attempt, 'breakwater.retry.backoff_ms': event.delayMs, 'breakwater.retry.trigger': event.trigger }];
    case 'retry-give-up':
      return ['breakwater.retry.give_up', { 'breakwater.retry.give_up_reason': event.reason }];
    case 'per-try-timeout':
      return ['breakwater.per_try_timeout', {}];
    case 'deadline-exceeded':
      return ['breakwater.deadline_exceeded', { 'breakwater.deadline.stage': event.stage }];
    case 'breaker-rejected':
      return ['breakwater.circuit_breaker.rejected', { 'breakwater.circuit_breaker.name': event.breaker }];
    case 'bulkhead-queued':
      return ['breakwater.bulkhead.queued', { 'breakwater.bulkhead.wait_ms': event.waitedMs }];
    case 'bulkhead-rejected':
      return ['breakwater.bulkhead.rejected', { 'breakwater.bulkhead.reject_reason': event.reason }];
    case 'fallback':
      return ['breakwater.fallback', { 'breakwater.fallback.kind': event.kind, 'breakwater.fallback.result': event.result }];
    case 'fault-injected':
      return ['breakwater.fault.injected', { 'breakwater.fault.kind': event.kind }];
    case 'breaker-transition':
      return undefined;
    default: {
      const unknown: never = event;
      return unknown;
    }
  }
}
