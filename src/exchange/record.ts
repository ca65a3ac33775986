import type { AttemptOutcome } from './outcome.ts';

/**
 * How an attempt ended, as recorded: its outcome, or cancelled by Breakwater before one (a
 * hedge that lost, a client gone), which says nothing of the upstream.
 */
export type RecordedOutcome = AttemptOutcome | { readonly kind: 'cancelled' };

/**
 * How a request came: HTTP/1.1 (or 1.0), HTTP/2 with prior knowledge, a gRPC call (over
 * HTTP/2, its outcome a grpc-status), or a WebSocket handshake (over HTTP/1.1).
 */
export type RequestProtocol = 'http1' | 'h2c' | 'grpc' | 'websocket';

/**
 * One finished client request. The access log, the request metrics and the server span all
 * read this one record, so the three always agree on what happened.
 */
export interface RequestRecord {
  readonly listener: string;
  readonly protocol: RequestProtocol;
  /** undefined when no route matched. */
  readonly route: string | undefined;
  /** undefined when the request never had an upstream. */
  readonly upstream: string | undefined;
  readonly method: string;
  /** The request target as received; telemetry keeps only its path. */
  readonly path: string;
  /** The status the client was answered, or 499 when it went away first (as nginx logs it). */
  readonly status: number;
  /**
   * A gRPC call's grpc-status, as its client reads it: the one Breakwater or the upstream sent
   * (in the trailers or a Trailers-Only head), CANCELLED when the client went away first,
   * UNKNOWN when the call ended without one. Undefined for other requests.
   */
  readonly grpcStatus: number | undefined;
  /** A gRPC call's service and method, when its route labels its metrics with them; undefined otherwise. */
  readonly grpcMethod?: { readonly service: string; readonly method: string } | undefined;
  /** The x-breakwater-reason of a response Breakwater made itself, or client_closed; undefined when the upstream answered. */
  readonly reason: string | undefined;
  /** What went wrong, in words (the reply's message: the endpoint and cause of upstream_unavailable, say); undefined when the upstream answered. */
  readonly detail: string | undefined;
  /** The fallback kind that served the response, if one did. */
  readonly fallback: string | undefined;
  readonly durationMs: number;
  readonly attempts: number;
  readonly requestId: string;
  /** The caller's trace id (from its traceparent) or the server span's; see RequestTrace. */
  readonly traceId: string | undefined;
  /** The server span's id, when the request is sampled. */
  readonly spanId: string | undefined;
}

/** Who or what ended a tunnel: one side closing or resetting its connection, or Breakwater. */
export type TunnelEnd = 'client' | 'upstream' | 'idle_timeout' | 'max_duration' | 'drain';

/**
 * A WebSocket's record once its tunnel has closed: the handshake's request record, with the
 * duration from the handshake's arrival to the tunnel's close. The access log's line for a
 * WebSocket is this one.
 */
export interface TunnelRecord extends RequestRecord {
  readonly protocol: 'websocket';
  /** From the handshake's arrival to the 101 sent to the client. */
  readonly handshakeMs: number;
  /** Bytes carried after the 101, client to upstream. */
  readonly bytesToUpstream: number;
  /** Bytes carried after the 101, upstream to client. */
  readonly bytesToClient: number;
  readonly closedBy: TunnelEnd;
}

/** One upstream attempt, at its outcome. The attempt metrics read it. */
export interface AttemptRecord {
  readonly route: string;
  readonly upstream: string;
  /** The endpoint's origin, `http://host:port`. */
  readonly endpoint: string;
  readonly outcome: RecordedOutcome;
  /** From sending the attempt to its outcome. */
  readonly durationMs: number;
  /** What was left of the request's deadline when the attempt started. */
  readonly remainingMs: number;
}

/** Told of every attempt's outcome. */
export type AttemptObserver = (record: AttemptRecord) => void;

/** Why a listener closed a connection without serving it (the `reason` label of the metric). */
export type ConnectionRejection = 'max_connections' | 'per_client' | 'headers_timeout';
