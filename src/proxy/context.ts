import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { BreakerStateName, PolicyEvent } from '../policies/events.ts';
import type { AttemptFailure, ProxyError } from './errors.ts';
import type { RequestRecord } from './listener.ts';

/** Everything the layers and the upstream client need to know about one client request. */
export interface ProxyRequest {
  readonly listener: string;
  readonly route: string;
  readonly upstream: string;
  readonly method: string;
  /** Origin-form target (path and query) to send upstream. */
  readonly path: string;
  /** Headers to send upstream, as a flat [name, value, ...] list, hop-by-hop headers removed. */
  readonly headers: string[];
  /**
   * The request body, or null when the request has none. A layer that may replay it (retry)
   * replaces a small stream with its bytes before the first attempt.
   */
  body: Readable | Buffer | null;
  readonly requestId: string;
  /** Monotonic ms when the request arrived. */
  readonly startedAt: number;
  /** Monotonic ms by which the whole exchange must be over. */
  readonly deadlineAt: number;
  /**
   * Monotonic ms by which the current attempt must have its response head: the per-try
   * timeout, never past `deadlineAt`. The attempt tells the upstream what is left of it.
   */
  attemptDeadlineAt: number;
  /** Upstream attempts made so far. */
  attempts: number;
  /** Why the request was cut short (timeout, client gone), once it was. */
  abortReason: ProxyError | null;
  /** Cancels the attempt in progress; set by whoever is waiting on the upstream. */
  cancelAttempt: ((reason: ProxyError) => void) | null;
  /** The request's trace; undefined while tracing is off. */
  readonly trace?: RequestTrace | undefined;
}

/**
 * The trace of one request (src/telemetry/tracing.ts): a server span for the request and a
 * client span for each upstream attempt. The data path knows it only through this interface.
 */
export interface RequestTrace {
  /** The server span's W3C ids, for the access log; undefined when the request is not sampled. */
  readonly traceId: string | undefined;
  readonly spanId: string | undefined;
  /** Starts an attempt's client span and puts its context in `attempt.headers`. */
  startAttempt(request: ProxyRequest, attempt: AttemptStart): AttemptTrace;
  /** Records what a policy did to this request on the server span. */
  event(event: PolicyEvent): void;
  /** Ends the server span with what the client was answered. */
  end(record: RequestRecord): void;
}

export interface AttemptStart {
  /** The upstream the attempt goes to: the route's, or a failover upstream. */
  readonly upstream: string;
  /** The endpoint's origin, `http://host:port`. */
  readonly origin: string;
  /** What was left of the request's deadline when the attempt started. */
  readonly remainingMs: number;
  /** The state of the route's breaker when the attempt started, if the route has one. */
  readonly breakerState: BreakerStateName | undefined;
  /** The headers the attempt sends: the caller's traceparent and tracestate give way to the attempt's. */
  readonly headers: string[];
}

export interface AttemptTrace {
  /** The attempt's outcome: a response head with its status, or a failure before one. */
  outcome(outcome: 'response' | AttemptFailure, status: number | undefined): void;
  /** The exchange is over: the response body ended or failed, or it was discarded. */
  end(): void;
}

/** Ends the request early: the attempt in progress, if any, fails with `reason`. */
export function abortRequest(request: ProxyRequest, reason: ProxyError): void {
  if (request.abortReason !== null) return;
  request.abortReason = reason;
  request.cancelAttempt?.(reason);
}

/** A response body that can be streamed once into a client response, or thrown away. */
export interface ResponseBody {
  /** Streams the body into `sink` with back-pressure; resolves when it ends. */
  pipeTo(sink: ServerResponse): Promise<void>;
  /** Drops the body and frees its connection (a retry or fallback replaces this response). */
  discard(): void;
}

export interface UpstreamResponse {
  readonly status: number;
  /** Lower-cased names, as the upstream sent them (hop-by-hop included). */
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: ResponseBody;
  /** Set when a fallback made this response: stale | upstream | static. */
  readonly fallback?: 'stale' | 'upstream' | 'static';
}
