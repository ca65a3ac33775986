// The responses Breakwater makes itself. One registry: each reason has a stable name (the
// x-breakwater-reason header, the access-log `reason` and the metrics label) and a status.

export const localReasons = {
  no_route: { status: 404, message: 'no route matches this request' },
  deadline_exceeded: { status: 504, message: "the caller's deadline was spent before an attempt could start" },
  timeout: { status: 504, message: 'the upstream did not answer within the timeout' },
  circuit_open: { status: 503, message: "the upstream's circuit breaker is open" },
  bulkhead_full: { status: 503, message: 'too many concurrent requests to this upstream' },
  upstream_unavailable: { status: 503, message: 'no connection to the upstream could be made, or it reset' },
  upstream_invalid_response: { status: 502, message: 'the upstream sent a response that is not valid HTTP/1.1 or is over a limit' },
  fault_injected: { status: 503, message: 'fault injected by route policy' },
  payload_too_large: { status: 413, message: 'the request body is larger than the configured limit' },
  bad_request: { status: 400, message: 'malformed HTTP request' },
  request_timeout: { status: 408, message: 'the request headers did not arrive within the headers timeout' },
  expectation_failed: { status: 417, message: 'the only expectation Breakwater meets is Expect: 100-continue' },
  headers_too_large: { status: 431, message: 'the request headers are larger than the configured limit' },
  method_not_allowed: { status: 405, message: 'CONNECT is not proxied: Breakwater forwards HTTP requests to configured upstreams only' },
  upgrade_not_supported: { status: 501, message: 'only WebSocket upgrades are proxied (h2c and other upgrades are not)' },
  idempotency_key_missing: { status: 400, message: 'this route requires an idempotency key on this method' },
  idempotency_key_reused: { status: 422, message: 'the idempotency key was first used for a different request' },
  idempotency_in_progress: { status: 409, message: 'a request with this idempotency key is still in progress' },
  idempotency_store_unavailable: { status: 503, message: 'the idempotency store could not be reached' },
} as const satisfies Record<string, { status: number; message: string }>;

export type LocalReason = keyof typeof localReasons;

/** Why an attempt to reach an upstream failed, as the retry and breaker policies classify it. */
export type AttemptFailure = 'connect-failure' | 'reset' | 'timeout';

/** A failure that ends in a response Breakwater makes itself. */
export class ProxyError extends Error {
  readonly reason: LocalReason;
  readonly status: number;
  /** Set when the failure came from an upstream attempt. */
  readonly attemptFailure: AttemptFailure | undefined;
  /** What a gRPC caller is told, when not the reason's own status (an injected abort's grpcStatus). */
  readonly grpcStatus: number | undefined;

  constructor(
    reason: LocalReason,
    options: { message?: string; status?: number; grpcStatus?: number; attemptFailure?: AttemptFailure; cause?: unknown } = {},
  ) {
    super(options.message ?? localReasons[reason].message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ProxyError';
    this.reason = reason;
    this.status = options.status ?? localReasons[reason].status;
    this.attemptFailure = options.attemptFailure;
    this.grpcStatus = options.grpcStatus;
  }
}

/** What an operator reads for each connection error code: why no connection could be made. */
const connectFailures: Readonly<Record<string, string>> = {
  UND_ERR_CONNECT_TIMEOUT: 'connect timeout',
  H2C_CONNECT_TIMEOUT: 'connect timeout',
  ECONNREFUSED: 'connection refused',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ENOTFOUND: 'DNS failure: no such host',
  EAI_AGAIN: 'DNS failure: lookup timed out',
  EADDRNOTAVAIL: 'no local address available',
};

/** Why an exchange that had a connection ended before its response, by error code. */
const resets: Readonly<Record<string, string>> = {
  ECONNRESET: 'connection reset',
  EPIPE: 'connection reset',
  UND_ERR_SOCKET: 'connection closed',
  UND_ERR_CLOSED: 'connection closed',
  H2C_CLOSED: 'connection closed',
  ERR_HTTP2_STREAM_ERROR: 'stream reset',
  ERR_HTTP2_SESSION_ERROR: 'connection closed',
  ERR_HTTP2_GOAWAY_SESSION: 'connection closed',
};

/**
 * Why an upstream's response could not be used: what the HTTP/1.1 parser refused, by undici's
 * error. Undici reports an unsolicited `100 Continue` as a socket error named "bad response".
 */
function invalidResponse(error: unknown, maxResponseHeaderBytes: number | undefined): string | undefined {
  if (!(error instanceof Error)) return undefined;
  const code = (error as { code?: unknown }).code;
  if (code === 'UND_ERR_HEADERS_OVERFLOW' || code === 'H2C_HEADERS_OVERFLOW') {
    return maxResponseHeaderBytes === undefined
      ? 'response headers over limits.maxResponseHeaderBytes'
      : `response headers over limits.maxResponseHeaderBytes (${maxResponseHeaderBytes} bytes)`;
  }
  if (code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH') return 'response body does not match its Content-Length';
  if (error.name === 'HTTPParserError') {
    // undici's message ends with llhttp's reason in brackets: "(Invalid status code)".
    const detail = /\(([^)]+)\)\s*$/.exec(error.message)?.[1];
    return detail === undefined ? 'malformed response' : `malformed response: ${detail.toLowerCase()}`;
  }
  if (code === 'UND_ERR_SOCKET' && (error.message === 'bad response' || error.message === 'bad upgrade')) return 'unexpected informational or upgrade response';
  return undefined;
}

/**
 * Maps an error from the upstream client to a ProxyError whose message names the endpoint
 * and the cause. A connection that was never made is `connect-failure` (the request never
 * left, so even a POST may be retried). A response that is not valid HTTP, or over a limit, is
 * `502 upstream_invalid_response`; as for anything else that ends the exchange before a usable
 * response, the attempt failed with `reset`: the connection is closed, as Envoy classifies an
 * upstream protocol error.
 */
export function fromUpstreamError(error: unknown, endpoint: string, maxResponseHeaderBytes?: number): ProxyError {
  if (error instanceof ProxyError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  const known = typeof code === 'string' ? code : undefined;
  const connectFailure = known === undefined ? undefined : connectFailures[known];
  if (connectFailure !== undefined) {
    return new ProxyError('upstream_unavailable', { message: `could not connect to ${endpoint}: ${connectFailure}`, attemptFailure: 'connect-failure', cause: error });
  }
  // An h2c stream refused before the upstream did any work on it: as safe to send again as a
  // connection never made.
  if (known === 'H2C_STREAM_REFUSED') {
    return new ProxyError('upstream_unavailable', { message: `${endpoint} refused the stream before processing it (HTTP/2 REFUSED_STREAM)`, attemptFailure: 'connect-failure', cause: error });
  }
  if (known === 'UND_ERR_BODY_TIMEOUT' || known === 'H2C_BODY_TIMEOUT') {
    return new ProxyError('timeout', { message: `${endpoint} sent no part of the response body for the upstream's idleTimeout`, attemptFailure: 'timeout', cause: error });
  }
  const invalid = invalidResponse(error, maxResponseHeaderBytes);
  if (invalid !== undefined) {
    return new ProxyError('upstream_invalid_response', { message: `${endpoint} sent an invalid response: ${invalid}`, attemptFailure: 'reset', cause: error });
  }
  const cause = (known === undefined ? undefined : resets[known]) ?? known ?? (error instanceof Error ? error.message : 'unknown error');
  return new ProxyError('upstream_unavailable', { message: `${endpoint} ended the exchange before a response: ${cause}`, attemptFailure: 'reset', cause: error });
}
