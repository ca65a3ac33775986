import type { FailureKind, FallbackTrigger, RetryCondition } from '../config/types.ts';
import type { AttemptFailure, LocalReason } from './errors.ts';
import { grpcConditions, isGrpcCondition, isGrpcServerError } from './grpc.ts';

// How a call ended, classified once and shared by every policy, so none re-derives whether a
// 503 or a reset counts. Two moments are classified: one attempt at its response head (retry,
// the breaker, telemetry), and the whole call after retries (fallback). A gRPC call's outcome is
// its grpc-status: in the head of a Trailers-Only response, else in the trailers at the end.

/**
 * One attempt's outcome: a response head with its status, or a failure before one.
 * `grpcStatus` is set for a gRPC call whose status is known: from the trailers, from the head
 * of a Trailers-Only response, or the gRPC equivalent of an HTTP error status.
 */
export type AttemptOutcome =
  | { readonly kind: 'response'; readonly status: number; readonly grpcStatus?: number | undefined }
  | { readonly kind: 'failure'; readonly failure: AttemptFailure };

/** The whole call's outcome after retries: the response that stands, or the reply Breakwater makes. */
export type CallOutcome =
  | { readonly kind: 'response'; readonly status: number; readonly grpcStatus?: number | undefined }
  | { readonly kind: 'error'; readonly reason: LocalReason };

type ResponseOutcome = Extract<AttemptOutcome, { kind: 'response' }>;

// An outcome is a value, and every layer a response passes asks for its own: the outcome of a
// plain HTTP status is made once per status and shared.
const httpOutcomes: (ResponseOutcome | undefined)[] = [];

/** The outcome of a response head: its status, and its gRPC status when it carries one. */
export function responseOutcome(response: { readonly status: number; readonly grpcStatus?: number | undefined }): ResponseOutcome {
  const status = response.status;
  if (response.grpcStatus !== undefined) return { kind: 'response', status, grpcStatus: response.grpcStatus };
  return (httpOutcomes[status] ??= { kind: 'response', status });
}

/** A gRPC status other than OK: the call failed, whatever its HTTP status. */
function grpcFailed(outcome: { readonly grpcStatus?: number | undefined }): boolean {
  return outcome.grpcStatus !== undefined && outcome.grpcStatus !== 0;
}

/**
 * True when the outcome is one of `retryOn` (`5xx`, `gateway-error` = 502/503/504, a status,
 * a failure kind, or a gRPC status name).
 */
export function matchesRetryOn(outcome: AttemptOutcome, retryOn: readonly RetryCondition[]): boolean {
  for (const condition of retryOn) {
    if (outcome.kind === 'failure') {
      if (condition === outcome.failure) return true;
      continue;
    }
    const status = outcome.status;
    if (condition === status) return true;
    if (condition === '5xx' && status >= 500 && status <= 599) return true;
    if (condition === 'gateway-error' && (status === 502 || status === 503 || status === 504)) return true;
    if (outcome.grpcStatus !== undefined && isGrpcCondition(condition) && grpcConditions[condition] === outcome.grpcStatus) return true;
  }
  return false;
}

/**
 * True when the outcome counts as a failure for a breaker (or outlier detection) with
 * `failOn`: `5xx` also counts a gRPC call's server errors, as Envoy judges gRPC calls.
 */
export function matchesFailOn(outcome: AttemptOutcome, failOn: readonly FailureKind[]): boolean {
  if (outcome.kind === 'failure') return failOn.includes(outcome.failure);
  if (outcome.status >= 500 && outcome.status <= 599 && failOn.includes('5xx')) return true;
  const grpcStatus = outcome.grpcStatus;
  if (grpcStatus === undefined || grpcStatus === 0) return false;
  for (const kind of failOn) {
    if (kind === '5xx' ? isGrpcServerError(grpcStatus) : isGrpcCondition(kind) && grpcConditions[kind] === grpcStatus) return true;
  }
  return false;
}

// `deadline_exceeded` counts as `timeout`: either way no answer could come in time.
const failureByReason: Partial<Record<LocalReason, FallbackTrigger>> = {
  circuit_open: 'circuit-open',
  bulkhead_full: 'bulkhead-full',
  timeout: 'timeout',
  deadline_exceeded: 'timeout',
  upstream_unavailable: 'upstream-unavailable',
  // An upstream that answers with something unusable is as unavailable as one that resets.
  upstream_invalid_response: 'upstream-unavailable',
};

/**
 * The kind of failure a call's outcome is, in the words a route's `fallback.on` uses; undefined
 * for a success, a 4xx, or a reply (no_route, an injected fault...) no policy stands in for.
 */
export function callFailure(outcome: CallOutcome): FallbackTrigger | undefined {
  if (outcome.kind === 'response') {
    if (outcome.status >= 500 && outcome.status <= 599) return '5xx';
    return grpcFailed(outcome) && isGrpcServerError(outcome.grpcStatus!) ? '5xx' : undefined;
  }
  return failureByReason[outcome.reason];
}
