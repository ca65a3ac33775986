// The pure rules of replaying a dead letter: what the request sent again looks like, and
// whether its outcome delivered it. The replayer (replayer.ts) sends it and keeps the history.

import type { FallbackTrigger } from '../../config/types.ts';
import { headerValues } from '../../exchange/headers.ts';
import { REPLAY_HEADER, decideCapture, type DeadLetterMeta, type FinalOutcome } from './capture.ts';

/** The methods that may not be sent twice unless the upstream can tell a repeat (section on retries). */
const unsafeMethods: ReadonlySet<string> = new Set(['POST', 'PATCH']);

/**
 * The headers a replay sends: the dead letter's, marked with its id, and for a POST or PATCH
 * without an idempotency key, the id as its key, so that an upstream (or Breakwater's own
 * idempotency) that saw the request before can tell the replay is a repeat.
 * `keyHeader` is the route's idempotency header when it has one.
 */
export function replayHeaders(meta: Pick<DeadLetterMeta, 'method' | 'headers'>, id: string, keyHeader = 'idempotency-key'): string[] {
  const headers = [...meta.headers, REPLAY_HEADER, id];
  if (unsafeMethods.has(meta.method.toUpperCase()) && headerValues(meta.headers, keyHeader.toLowerCase()).length === 0) headers.push(keyHeader, id);
  return headers;
}

/** Why a dead letter cannot be replayed, or undefined when it can. */
export function unreplayable(meta: Pick<DeadLetterMeta, 'truncated'>): string | undefined {
  return meta.truncated ? 'its body was not kept (larger than maxBodyBytes, or cut short by its client), so it cannot be sent again' : undefined;
}

/**
 * Whether a replay delivered its request: the upstream answered, not a fallback, with a status
 * that is not one of the route's `on`. Any reply Breakwater makes itself (a breaker still open,
 * a timeout, an injected fault, an idempotency conflict) means it did not.
 */
export function replayDelivered(outcome: FinalOutcome, on: readonly FallbackTrigger[]): boolean {
  if (outcome.kind === 'error' || outcome.fallback) return false;
  return !decideCapture(outcome, on).capture;
}
