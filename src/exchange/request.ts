import type { IncomingHttpHeaders } from 'node:http';
import type { Duplex, Readable } from 'node:stream';
import type { BreakerStateName, PolicyEvent } from './events.ts';
import type { AttemptOutcome } from './outcome.ts';
import type { RecordedOutcome, RequestRecord } from './record.ts';

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
  /** Monotonic ms by which the whole exchange must be over (src/policies/deadline/). */
  readonly deadlineAt: number;
  /** Upstream attempts started so far; each attempt takes the next number. */
  attempts: number;
  /** The endpoints (origins) this request's attempts went to, in order: a retry or hedge goes elsewhere first. */
  readonly tried: string[];
  /** The request's trace; undefined while tracing is off. */
  readonly trace?: RequestTrace | undefined;
  /** True for a gRPC call (content-type application/grpc*); its outcome is its grpc-status. */
  readonly grpc?: boolean;
  /** Set when the request is the replay of a dead letter: that dead letter's id. */
  readonly replayOf?: string | undefined;
  /** Set on a WebSocket handshake: the protocol the client asks to switch to. */
  readonly upgrade?: 'websocket' | undefined;
}

/**
 * Where a response body streams: the client's response (node:http's ServerResponse is one), or a
 * copy that keeps what passes. Only what bodies use: writes with back-pressure, and the end.
 */
export interface BodySink {
  /** False when the sink's buffer is full: wait for 'drain' before writing more. */
  write(chunk: Buffer): boolean;
  /**
   * Trailer fields to send after the body, before `end`: an HTTP/2 response's trailers, or
   * the last chunk's of an HTTP/1.1 chunked one. Absent on a sink that keeps bytes only.
   */
  addTrailers?(trailers: Record<string, string | string[]>): void;
  end(chunk?: Buffer): unknown;
  on(event: 'drain', listener: () => void): unknown;
  off(event: 'drain', listener: () => void): unknown;
}

/** A response body that can be streamed once into a client response, or thrown away. */
export interface ResponseBody {
  /** Streams the body into `sink` with back-pressure; resolves when it ends. */
  pipeTo(sink: BodySink): Promise<void>;
  /** Drops the body and frees its connection (a retry or fallback replaces this response). */
  discard(): void;
  /**
   * Calls `done` once, when the body has streamed, failed or been discarded (at once when it
   * already has): a body that knows its own end spares onBodyEnd a wrapper. Optional.
   */
  onEnd?(done: () => void): void;
}

export interface UpstreamResponse {
  readonly status: number;
  /** Lower-cased names, as the upstream sent them (hop-by-hop included). */
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: ResponseBody;
  /** Set when a fallback made this response: stale | upstream | static. */
  readonly fallback?: 'stale' | 'upstream' | 'static';
  /**
   * A gRPC call's status when its head tells it: the grpc-status of a Trailers-Only response,
   * or the gRPC equivalent of an HTTP error status. Undefined otherwise.
   */
  readonly grpcStatus?: number | undefined;
  /** Set when the head could not tell the attempt's outcome: a gRPC call's status comes with its trailers. */
  readonly lateOutcome?: LateOutcome | undefined;
  /** Set when the upstream switched protocols (a 101 to a handshake); its body is empty. */
  readonly tunnel?: UpstreamTunnel;
}

/** The outcome of an attempt whose response head could not tell it. */
export interface LateOutcome {
  /**
   * Calls `listener` once the response is over, with its outcome: the status its trailers
   * carried, or the failure that cut it short (reset, timeout); undefined when Breakwater
   * cancelled or discarded it, which says nothing of the upstream.
   */
  onOutcome(listener: (outcome: AttemptOutcome | undefined) => void): void;
}


/** The upstream's connection after its 101: the WebSocket's bytes flow on it from here on. */
export interface UpstreamTunnel {
  readonly socket: Duplex;
  /**
   * Called once when the tunnel has closed: until then the endpoint counts it in flight, so
   * that least-request and peak-EWMA balancing spread long-lived tunnels over the endpoints.
   */
  release(): void;
}

/**
 * A body that calls `done` once, when it has streamed, failed or been discarded: whoever holds
 * something for the whole exchange (a bulkhead slot, a link to the request's signal) lets go
 * of it there.
 */
class BodyWithEnd implements ResponseBody {
  readonly #body: ResponseBody;
  #done: (() => void) | null;

  constructor(body: ResponseBody, done: () => void) {
    this.#body = body;
    this.#done = done;
  }

  pipeTo(sink: BodySink): Promise<void> {
    let piping: Promise<void>;
    try {
      piping = this.#body.pipeTo(sink);
    } catch (error) {
      this.#end();
      return Promise.reject(error);
    }
    const end = (): void => this.#end();
    piping.then(end, end);
    return piping;
  }

  discard(): void {
    try {
      this.#body.discard();
    } finally {
      this.#end();
    }
  }

  #end(): void {
    const done = this.#done;
    this.#done = null;
    done?.();
  }
}

/**
 * `response` with a body that calls `done` once the exchange is over: the response itself when
 * its body can tell its end (an upstream's), else a copy with its body wrapped.
 */
export function onBodyEnd(response: UpstreamResponse, done: () => void): UpstreamResponse {
  const body = response.body;
  if (body.onEnd !== undefined) {
    body.onEnd(done);
    return response;
  }
  return { ...response, body: new BodyWithEnd(body, done) };
}

/**
 * A client's request as it arrived, by HTTP/1.1 (node:http's IncomingMessage is one) or HTTP/2:
 * what the trace of a request and the headers sent upstream read from it.
 */
export interface ArrivedRequest {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  readonly headers: IncomingHttpHeaders;
  /** The header block as a flat [name, value, ...] list, names as the client spelt them. */
  readonly rawHeaders: string[];
  readonly httpVersionMajor: number;
  readonly httpVersion: string;
  readonly socket: { readonly remoteAddress?: string | undefined };
}

/** Starts the trace of each request (src/telemetry/tracing/). */
export interface RequestTracer {
  startRequest(req: ArrivedRequest, listener: string): RequestTrace;
}

/**
 * The trace of one request: a server span for the request and a client span for each upstream
 * attempt. The data path knows it only through this interface.
 */
export interface RequestTrace {
  /**
   * The trace id the access log carries: the caller's when it sent a traceparent, or the
   * server span's when the request is sampled; undefined otherwise.
   */
  readonly traceId: string | undefined;
  /** The server span's id; undefined when the request is not sampled. */
  readonly spanId: string | undefined;
  /** Starts an attempt's client span and puts its context in `attempt.headers`. */
  startAttempt(request: ProxyRequest, attempt: AttemptStart): AttemptTrace;
  /** Records what a policy did to this request on the server span. */
  event(event: PolicyEvent): void;
  /** Ends the server span with what the client was answered. */
  end(record: RequestRecord): void;
}

export interface AttemptStart {
  /** The attempt's number: 1 for the first, and one more for each retry or hedge. */
  readonly number: number;
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
  /** The attempt's outcome: a response head with its status, a failure before one, or cancelled. */
  outcome(outcome: RecordedOutcome): void;
  /** The exchange is over: the response body ended or failed, or it was discarded. */
  end(): void;
}
