// The responses Breakwater makes itself. One registry: each reason has a stable name (the
// x-breakwater-reason header, the access-log `reason` and the metrics label) and a status.

export const localReasons = {
  no_route: { status: 404, message: 'no route matches this request' },
  deadline_exceeded: { status: 504, message: "the caller's deadline was spent before an attempt could start" },
  timeout: { status: 504, message: 'the upstream did not answer within the timeout' },
  circuit_open: { status: 503, message: "the upstream's circuit breaker is open" },
  bulkhead_full: { status: 503, message: 'too many concurrent requests to this upstream' },
  upstream_unavailable: { status: 503, message: 'no connection to the upstream could be made, or it reset' },
  fault_injected: { status: 503, message: 'fault injected by route policy' },
  payload_too_large: { status: 413, message: 'the request body is larger than the configured limit' },
  bad_request: { status: 400, message: 'malformed HTTP request' },
  headers_too_large: { status: 431, message: 'the request headers are larger than the configured limit' },
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

  constructor(reason: LocalReason, options: { message?: string; status?: number; attemptFailure?: AttemptFailure; cause?: unknown } = {}) {
    super(options.message ?? localReasons[reason].message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ProxyError';
    this.reason = reason;
    this.status = options.status ?? localReasons[reason].status;
    this.attemptFailure = options.attemptFailure;
  }
}

const connectFailureCodes = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EADDRNOTAVAIL',
]);

/**
 * Maps an error from the upstream client to a ProxyError. A connection that was never made
 * is `connect-failure` (the request never left, so even a POST may be retried); anything
 * else that ends the exchange before a response is a `reset`.
 */
export function fromUpstreamError(error: unknown): ProxyError {
  if (error instanceof ProxyError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && connectFailureCodes.has(code)) {
    return new ProxyError('upstream_unavailable', { attemptFailure: 'connect-failure', cause: error });
  }
  return new ProxyError('upstream_unavailable', { attemptFailure: 'reset', cause: error });
}
