// What the policies decide, as typed events. Policies emit them and know nothing of metrics,
// traces or logs; telemetry subscribes and turns them into those (src/telemetry).

/** Why an attempt's outcome asked for a retry. */
export type RetryTrigger = 'connect-failure' | 'reset' | 'timeout' | 'status';

/** Why retrying stopped with the last attempt's outcome still a failure. */
export type GiveUpReason =
  | 'attempts' // maxAttempts reached
  | 'budget' // the upstream's retry budget is spent
  | 'deadline' // the backoff or the next attempt would not fit in the remaining deadline
  | 'breaker' // the breaker is open
  | 'method' // a POST/PATCH without Idempotency-Key after the request left
  | 'body' // the body was larger than bufferLimit and cannot be replayed
  | 'retry-after'; // Retry-After asks for longer than the deadline leaves

export type BreakerStateName = 'closed' | 'open' | 'half-open' | 'forced-open' | 'disabled';

export type FallbackKind = 'stale' | 'upstream' | 'static';

/** A hedge sent, a hedge that answered first, or one the hedge budget did not allow. */
export type HedgeResult = 'sent' | 'won' | 'budget_exhausted';

/**
 * What idempotency did with a request: the first with its key, a replay of a stored answer, a
 * conflict with one in progress (409), a mismatch with the key's first request (422), a missing
 * key where one is required (400), a store that failed, or a request of a listed method that
 * carried no key and passed without de-duplication.
 */
export type IdempotencyResult = 'first' | 'replayed' | 'conflict' | 'mismatch' | 'missing' | 'store_error' | 'bypassed';

/**
 * Why a dead letter was not kept: its route already holds `maxEntries` (full), the store failed
 * or could not keep up (store_error), or the store refused an entry that size (too_large).
 */
export type DeadLetterDrop = 'full' | 'store_error' | 'too_large';

/** How a replay of a dead letter ended: delivered (the entry is gone) or not (it stays). */
export type DeadLetterReplayResult = 'success' | 'failure';

/** Which outlier-detection rule ejected an endpoint. */
export type EjectionReason = 'consecutive' | 'failure_rate' | 'latency';

export type PolicyEvent =
  | { readonly type: 'retry'; readonly route: string; readonly upstream: string; readonly attempt: number; readonly delayMs: number; readonly trigger: RetryTrigger }
  | { readonly type: 'retry-give-up'; readonly route: string; readonly upstream: string; readonly reason: GiveUpReason }
  | { readonly type: 'per-try-timeout'; readonly route: string; readonly upstream: string }
  | { readonly type: 'deadline-exceeded'; readonly route: string; readonly upstream: string; readonly stage: 'arrival' | 'attempt' }
  | { readonly type: 'breaker-transition'; readonly breaker: string; readonly upstream: string; readonly from: BreakerStateName; readonly to: BreakerStateName }
  | { readonly type: 'breaker-rejected'; readonly breaker: string; readonly route: string; readonly upstream: string }
  | { readonly type: 'bulkhead-queued'; readonly upstream: string; readonly route: string; readonly waitedMs: number }
  | { readonly type: 'bulkhead-rejected'; readonly upstream: string; readonly route: string; readonly reason: 'full' | 'queue-timeout' | 'deadline' }
  | { readonly type: 'fallback'; readonly route: string; readonly kind: FallbackKind; readonly result: 'success' | 'failure' }
  | { readonly type: 'fault-injected'; readonly route: string; readonly kind: 'delay' | 'abort' }
  | { readonly type: 'idempotency'; readonly route: string; readonly result: IdempotencyResult }
  | { readonly type: 'hedge'; readonly route: string; readonly upstream: string; readonly result: HedgeResult }
  /** A dead letter was kept; `reason` is the reply's reason, or the upstream's status. */
  | { readonly type: 'dead-letter'; readonly route: string; readonly reason: string }
  | { readonly type: 'dead-letter-dropped'; readonly route: string; readonly cause: DeadLetterDrop; readonly detail: string }
  | { readonly type: 'dead-letter-replay'; readonly route: string; readonly result: DeadLetterReplayResult }
  // About an upstream's endpoints, not about one request.
  | {
      readonly type: 'endpoint-ejected';
      readonly upstream: string;
      readonly endpoint: string;
      readonly reason: EjectionReason;
      readonly durationMs: number;
      /** Ejections in a row, this one included. */
      readonly ejections: number;
    }
  | { readonly type: 'endpoint-returned'; readonly upstream: string; readonly endpoint: string }
  | { readonly type: 'endpoints-discovered'; readonly upstream: string; readonly name: string; readonly added: readonly string[]; readonly removed: readonly string[] }
  | { readonly type: 'dns-lookup-failed'; readonly upstream: string; readonly name: string; readonly message: string; readonly kept: number };

/** What an event needs of the request it happened to: its trace, to record the event on (a ProxyRequest is one). */
export interface EventSubject {
  readonly trace?: { event(event: PolicyEvent): void } | undefined;
}

export interface PolicyEvents {
  /**
   * `request` is the request the event happened to, when there is one: tracing records the
   * event on that request's span.
   */
  emit(event: PolicyEvent, request?: EventSubject): void;
}
