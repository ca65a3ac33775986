import type { FallbackTrigger } from '../../config/types.ts';
import { callFailure, type CallOutcome } from '../../exchange/outcome.ts';

/**
 * True when the call's outcome is one of the route's `fallback.on` triggers. A spent deadline
 * counts as `timeout`: a stale or static answer is ready at once, within what little the
 * caller has left.
 */
export function triggersFallback(outcome: CallOutcome, on: readonly FallbackTrigger[]): boolean {
  const failure = callFailure(outcome);
  return failure !== undefined && on.includes(failure);
}
