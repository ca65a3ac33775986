import type { FailureKind, RetryCondition } from '../config/types.ts';
import type { AttemptFailure } from '../proxy/errors.ts';

// One classification of an attempt's outcome, shared by retry, the circuit breaker and
// fallbacks, so no policy re-derives whether a 503 or a reset counts.

export type AttemptOutcome = { readonly kind: 'response'; readonly status: number } | { readonly kind: 'failure'; readonly failure: AttemptFailure };

/** True when the outcome is one of `retryOn` (`5xx`, `gateway-error` = 502/503/504, a status, or a failure kind). */
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
  }
  return false;
}

/** True when the outcome counts as a failure for a breaker with `failOn`. */
export function matchesFailOn(outcome: AttemptOutcome, failOn: readonly FailureKind[]): boolean {
  if (outcome.kind === 'failure') return failOn.includes(outcome.failure);
  return outcome.status >= 500 && outcome.status <= 599 && failOn.includes('5xx');
}
