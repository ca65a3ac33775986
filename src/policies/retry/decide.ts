import type { RetryCondition, RetryConfig } from '../../config/types.ts';
import type { GiveUpReason, RetryTrigger } from '../../exchange/events.ts';
import { namesGrpcCondition } from '../../exchange/grpc.ts';
import { matchesRetryOn, type AttemptOutcome } from '../../exchange/outcome.ts';

// "Would I retry this outcome?": the rules that depend on the outcome and the request only.
// Attempts left, the budget, the breaker and the backoff's fit in the deadline are the
// layer's to check (src/policies/retry/layer.ts).

export type RetryDecision =
  /** Retry, after `retryAfterMs` when the upstream said how long to wait, else after the backoff. */
  | { readonly kind: 'retry'; readonly trigger: RetryTrigger; readonly retryAfterMs: number | undefined }
  /** The outcome is one retryOn lists, but a rule forbids retrying it. */
  | { readonly kind: 'give-up'; readonly reason: Extract<GiveUpReason, 'method' | 'retry-after'> }
  /** The outcome is final: a success, a 4xx other than 429, or an outcome retryOn does not list. */
  | { readonly kind: 'final' };

export interface RetryQuestion {
  readonly outcome: AttemptOutcome;
  /** The response's headers (lower-cased names); empty when the attempt failed. */
  readonly responseHeaders: Readonly<Record<string, string | string[] | undefined>>;
  readonly method: string;
  /** The request's headers as a flat [name, value, ...] list. */
  readonly requestHeaders: readonly string[];
  /** True for a gRPC call: a POST on the wire, which the route's retryOn may declare safe to repeat. */
  readonly grpc?: boolean;
  /** What is left of the request's deadline, in ms. */
  readonly remainingMs: number;
  /** Wall-clock ms since the epoch, for a Retry-After given as an HTTP-date. */
  readonly wallNow: number;
  /** The lower-cased header of the route's idempotency keys; `idempotency-key` when absent. */
  readonly keyHeader?: string;
}

/** Methods RFC 9110 defines as idempotent: sending one twice has the effect of sending it once. */
const idempotentMethods = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

/** The header a request's idempotency key travels in, unless its route names another. */
export const defaultKeyHeader = 'idempotency-key';

/** True when the request carries an idempotency key (in `keyHeader`), so its server can drop a repeat. */
export function hasIdempotencyKey(headers: readonly string[], keyHeader = defaultKeyHeader): boolean {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i]!.toLowerCase() === keyHeader) return true;
  }
  return false;
}

/**
 * True when sending the request more than once has the effect of sending it once: an
 * idempotent method, or a POST/PATCH whose server can drop a repeat by its Idempotency-Key.
 * Hedges need this; retries need it too unless the first attempt never left.
 */
export function mayRepeat(method: string, headers: readonly string[], keyHeader = defaultKeyHeader): boolean {
  // Node's parser hands methods over in upper case: the conversion is for other callers.
  return idempotentMethods.has(method) || idempotentMethods.has(method.toUpperCase()) || hasIdempotencyKey(headers, keyHeader);
}

/**
 * True when a gRPC call may be sent more than once on a route with `retryOn`: every gRPC call
 * is a POST on the wire, so the method rule cannot tell; a retryOn that names a gRPC status is
 * the route owner's statement that its calls may be repeated, as a retryPolicy is in gRPC's
 * own service config (contract section 14).
 */
export function grpcMayRepeat(retryOn: readonly RetryCondition[]): boolean {
  return namesGrpcCondition(retryOn);
}

/**
 * The wait a gRPC server's `grpc-retry-pushback-ms` asks for: a number of ms, or `stop` for a
 * negative or unparseable value, which means "do not retry" (gRPC A6); undefined when absent.
 */
export function parseGrpcPushback(value: string | string[] | undefined): number | 'stop' | undefined {
  const first = Array.isArray(value) ? value[0] : value;
  if (first === undefined) return undefined;
  const text = first.trim();
  return /^\d+$/.test(text) ? Number(text) : 'stop';
}

// RFC 9110 section 5.6.7: recipients accept the preferred IMF-fixdate and the two obsolete forms.
const imfFixdate = /^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/;
const rfc850Date = /^[A-Za-z]{6,9}, \d{2}-[A-Za-z]{3}-\d{2} \d{2}:\d{2}:\d{2} GMT$/;
const asctimeDate = /^[A-Za-z]{3} [A-Za-z]{3} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}$/;

/**
 * The wait a `Retry-After` value asks for, in ms: delay-seconds, or an HTTP-date minus
 * `wallNow` (0 for a date already past). Undefined when the value is neither.
 */
export function parseRetryAfter(value: string | string[] | undefined, wallNow: number): number | undefined {
  const first = Array.isArray(value) ? value[0] : value;
  if (first === undefined) return undefined;
  const text = first.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  let at: number;
  if (imfFixdate.test(text) || rfc850Date.test(text)) at = Date.parse(text);
  // asctime carries no zone; HTTP dates are always GMT.
  else if (asctimeDate.test(text)) at = Date.parse(`${text} GMT`);
  else return undefined;
  return Number.isNaN(at) ? undefined : Math.max(0, at - wallNow);
}

function triggerOf(outcome: AttemptOutcome): RetryTrigger {
  return outcome.kind === 'failure' ? outcome.failure : 'status';
}

/**
 * Whether this attempt's outcome may be retried under `config`:
 * - only outcomes retryOn lists, and never a 4xx other than 429;
 * - GET, HEAD, OPTIONS, PUT, DELETE and TRACE always; any other method (POST, PATCH...) only
 *   with an Idempotency-Key header, or on connect-failure, when the request never left;
 * - on a 429 or 503 with a valid Retry-After and `respectRetryAfter`, after exactly that wait,
 *   and only when an attempt could still start after it (it is shorter than `remainingMs`).
 */
export function decideRetry(config: Pick<RetryConfig, 'retryOn' | 'respectRetryAfter'>, question: RetryQuestion): RetryDecision {
  const { outcome } = question;
  if (outcome.kind === 'response' && outcome.status >= 400 && outcome.status <= 499 && outcome.status !== 429) return { kind: 'final' };
  if (!matchesRetryOn(outcome, config.retryOn)) return { kind: 'final' };

  const neverLeft = outcome.kind === 'failure' && outcome.failure === 'connect-failure';
  const repeatable = question.grpc === true ? grpcMayRepeat(config.retryOn) : false;
  if (!neverLeft && !repeatable && !mayRepeat(question.method, question.requestHeaders, question.keyHeader)) {
    return { kind: 'give-up', reason: 'method' };
  }

  if (config.respectRetryAfter && outcome.kind === 'response' && outcome.grpcStatus !== undefined) {
    // A gRPC server's pushback: wait exactly that long, or not retry at all (gRPC A6).
    const pushback = parseGrpcPushback(question.responseHeaders['grpc-retry-pushback-ms']);
    if (pushback === 'stop') return { kind: 'give-up', reason: 'retry-after' };
    if (pushback !== undefined && pushback >= question.remainingMs) return { kind: 'give-up', reason: 'retry-after' };
    if (pushback !== undefined) return { kind: 'retry', trigger: triggerOf(outcome), retryAfterMs: pushback };
  }

  let retryAfterMs: number | undefined;
  if (config.respectRetryAfter && outcome.kind === 'response' && (outcome.status === 429 || outcome.status === 503)) {
    retryAfterMs = parseRetryAfter(question.responseHeaders['retry-after'], question.wallNow);
    if (retryAfterMs !== undefined && retryAfterMs >= question.remainingMs) return { kind: 'give-up', reason: 'retry-after' };
  }
  return { kind: 'retry', trigger: triggerOf(outcome), retryAfterMs };
}
