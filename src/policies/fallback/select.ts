import type { FallbackTrigger } from '../../config/types.ts';
import type { LocalReason } from '../../proxy/errors.ts';

/** How the protected call ended, as the fallback sees it: after retries, at the response head. */
export type CallOutcome =
  | { readonly kind: 'response'; readonly status: number }
  | { readonly kind: 'error'; readonly reason: LocalReason };

// `deadline_exceeded` counts as `timeout`: either way no answer could come in time, and a
// stale or static answer is ready at once, within what little the caller has left.
const triggerByReason: Partial<Record<LocalReason, FallbackTrigger>> = {
  circuit_open: 'circuit-open',
  bulkhead_full: 'bulkhead-full',
  timeout: 'timeout',
  deadline_exceeded: 'timeout',
  upstream_unavailable: 'upstream-unavailable',
};

/** The trigger an outcome stands for, or undefined for one that never starts a fallback. */
export function triggerOf(outcome: CallOutcome): FallbackTrigger | undefined {
  if (outcome.kind === 'response') return outcome.status >= 500 && outcome.status <= 599 ? '5xx' : undefined;
  return triggerByReason[outcome.reason];
}

/** True when the outcome is one of the route's `fallback.on` triggers. */
export function triggersFallback(outcome: CallOutcome, on: readonly FallbackTrigger[]): boolean {
  const trigger = triggerOf(outcome);
  return trigger !== undefined && on.includes(trigger);
}
