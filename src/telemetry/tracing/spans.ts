// The spans of a request, made by hand on the data path: one server span per request and one
// client span per upstream attempt, with W3C context carried upstream on each attempt.

import {
  defaultTextMapGetter,
  ROOT_CONTEXT,
  SamplingDecision,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
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
  ATTR_URL_PATH,
  ATTR_URL_SCHEME,
} from '@opentelemetry/semantic-conventions';
import type { Sampler } from '@opentelemetry/sdk-trace';
import type { RecordedOutcome, RequestRecord } from '../../exchange/record.ts';
import type { ArrivedRequest, AttemptStart, AttemptTrace, ProxyRequest, RequestTrace, RequestTracer } from '../../exchange/request.ts';
import { grpcCodeName, grpcMethodOf, isGrpcServerError } from '../../exchange/grpc.ts';
import { pathOnly } from '../logger.ts';
import type { TraceIds } from './ids.ts';
import { spanEvent } from './span-events.ts';
import type { PolicyEvent } from '../../exchange/events.ts';

/** The methods of RFC 9110 and PATCH; semantic conventions report any other as `_OTHER`. */
const knownMethods = new Set(['CONNECT', 'DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT', 'TRACE']);

/** Who answered the client, the server span's `breakwater.outcome`. */
type RequestOutcome = 'upstream' | 'fallback' | 'local' | 'client_closed';

/** What the spans of every request share. */
export interface Spans {
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

/** What Breakwater's samplers are told of a request besides its trace id: nothing. */
const noAttributes: Attributes = Object.freeze({});
const noLinks = Object.freeze([]) as [];

/** A running SDK (src/telemetry/tracing/start.ts), which the listeners start request traces with. */
export class Tracing implements RequestTracer {
  readonly #spans: Spans;
  readonly #stop: () => Promise<void>;

  /** `stop` exports what is left and stops the SDK. */
  constructor(spans: Spans, stop: () => Promise<void>) {
    this.#spans = spans;
    this.#stop = stop;
  }

  startRequest(req: ArrivedRequest, listener: string): RequestTrace {
    const spans = this.#spans;
    const method = req.method ?? 'GET';
    // Without a traceparent the request starts a trace: nothing to parse.
    const parent = req.headers.traceparent === undefined ? ROOT_CONTEXT : spans.propagator.extract(ROOT_CONTEXT, req.headers, defaultTextMapGetter);
    const parentIds = parent === ROOT_CONTEXT ? undefined : trace.getSpanContext(parent);
    const traceId = parentIds?.traceId ?? spans.ids.newTraceId();
    // Most requests go unsampled under a low ratio: they get no span and no context object.
    if (parentIds === undefined && spans.newTraceBound !== undefined) {
      if (spans.ids.lastTraceIdHash >= spans.newTraceBound) return new UnsampledTrace(spans.ids, traceId, undefined, undefined);
    } else {
      const sampling = spans.sampler.shouldSample(parent, traceId, method, SpanKind.SERVER, noAttributes, noLinks);
      if (sampling.decision === SamplingDecision.NOT_RECORD) {
        return new UnsampledTrace(spans.ids, traceId, sampling.traceState ?? parentIds?.traceState, parentIds?.traceId);
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
    // The semantic conventions spell HTTP/2 as "2".
    span.setAttribute(ATTR_NETWORK_PROTOCOL_VERSION, req.httpVersionMajor === 2 ? '2' : req.httpVersion);
    span.setAttribute('breakwater.listener', listener);
    spans.ids.choose(undefined);
    return new ServerSpan(spans, span, trace.setSpan(parent, span), method, known, parentIds?.traceId);
  }

  /** Exports the spans still buffered and stops the SDK. */
  shutdown(): Promise<void> {
    return this.#stop();
  }
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
  /** The caller's trace id, for the access log; undefined when this request started the trace. */
  readonly traceId: string | undefined;
  readonly spanId = undefined;
  readonly #ids: TraceIds;
  readonly #traceId: string;
  readonly #traceState: TraceState | undefined;

  constructor(ids: TraceIds, traceId: string, traceState: TraceState | undefined, callerTraceId: string | undefined) {
    this.#ids = ids;
    this.#traceId = traceId;
    this.#traceState = traceState;
    this.traceId = callerTraceId;
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

  constructor(spans: Spans, span: Span, spanContext: Context, method: string, knownMethod: boolean, callerTraceId: string | undefined) {
    this.#spans = spans;
    this.#span = span;
    this.#context = spanContext;
    this.#method = method;
    this.#knownMethod = knownMethod;
    this.#recording = span.isRecording();
    const ids = span.spanContext();
    this.traceId = this.#recording ? ids.traceId : callerTraceId;
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
    // A gRPC call's span is named as the RPC conventions name it: service/method.
    const rpc = request.grpc === true ? grpcMethodOf(request.path) : undefined;
    const span = this.#spans.tracer.startSpan(rpc === undefined ? `${method} ${attempt.upstream}` : `${rpc.service}/${rpc.method}`, { kind: SpanKind.CLIENT }, this.#context);
    if (request.grpc === true) setRpcAttributes(span, rpc);
    span.setAttribute(ATTR_HTTP_REQUEST_METHOD, known ? method : '_OTHER');
    span.setAttribute(ATTR_HTTP_REQUEST_METHOD_ORIGINAL, known ? undefined : method);
    span.setAttribute(ATTR_SERVER_ADDRESS, address);
    span.setAttribute(ATTR_SERVER_PORT, port);
    span.setAttribute(ATTR_URL_PATH, pathOnly(request.path));
    // Set on retries only, as the semantic conventions say: the first attempt has none.
    span.setAttribute(ATTR_HTTP_REQUEST_RESEND_COUNT, attempt.number > 1 ? attempt.number - 1 : undefined);
    span.setAttribute('breakwater.route', request.route);
    span.setAttribute('breakwater.upstream', attempt.upstream);
    span.setAttribute('breakwater.breaker_state', attempt.breakerState);
    span.setAttribute('breakwater.deadline_remaining_ms', Math.max(0, Math.round(attempt.remainingMs)));
    span.setAttribute('breakwater.protocol', request.upgrade);
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
      // A WebSocket handshake's span ends at its answer; the tunnel's life is in the access log.
      span.setAttribute('breakwater.protocol', record.protocol);
      if (record.protocol === 'grpc') {
        // OpenTelemetry's RPC conventions: named service/method, the status as a number; in
        // error for the codes that say the server failed.
        const rpc = grpcMethodOf(record.path);
        setRpcAttributes(span, rpc);
        if (rpc !== undefined) span.updateName(`${rpc.service}/${rpc.method}`);
        span.setAttribute(ATTR_RPC_GRPC_STATUS_CODE, record.grpcStatus);
        if (record.grpcStatus !== undefined && isGrpcServerError(record.grpcStatus)) {
          span.setAttribute(ATTR_ERROR_TYPE, record.reason ?? grpcCodeName(record.grpcStatus));
          span.setStatus({ code: SpanStatusCode.ERROR });
        }
      } else if (record.route !== undefined) span.updateName(`${this.#method} ${record.route}`);
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

  outcome(outcome: RecordedOutcome): void {
    const span = this.#span;
    const status = outcome.kind === 'response' ? outcome.status : undefined;
    if (outcome.kind === 'cancelled') {
      // Ended by Breakwater, not by the upstream: no error of the upstream's.
      span.setAttribute('breakwater.outcome', 'cancelled');
      return;
    }
    span.setAttribute('breakwater.outcome', outcome.kind === 'response' ? 'response' : outcome.failure);
    span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
    const grpcStatus = outcome.kind === 'response' ? outcome.grpcStatus : undefined;
    if (grpcStatus !== undefined) {
      span.setAttribute(ATTR_RPC_GRPC_STATUS_CODE, grpcStatus);
      // A client span is in error for any status but OK.
      if (grpcStatus !== 0) {
        span.setAttribute(ATTR_ERROR_TYPE, grpcCodeName(grpcStatus));
        span.setStatus({ code: SpanStatusCode.ERROR });
        return;
      }
    }
    // A client span is in error for a 4xx or 5xx, or for no response at all.
    const errorType = outcome.kind === 'failure' ? outcome.failure : status !== undefined && status >= 400 ? String(status) : undefined;
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

// OpenTelemetry's RPC semantic conventions (rpc.*), still in the incubating set.
const ATTR_RPC_SYSTEM = 'rpc.system';
const ATTR_RPC_SERVICE = 'rpc.service';
const ATTR_RPC_METHOD = 'rpc.method';
const ATTR_RPC_GRPC_STATUS_CODE = 'rpc.grpc.status_code';

/** rpc.system, rpc.service and rpc.method of a gRPC call. */
function setRpcAttributes(span: Span, rpc: { readonly service: string; readonly method: string } | undefined): void {
  span.setAttribute(ATTR_RPC_SYSTEM, 'grpc');
  span.setAttribute(ATTR_RPC_SERVICE, rpc?.service);
  span.setAttribute(ATTR_RPC_METHOD, rpc?.method);
}

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

