// Replaying dead letters: one at a time through the route's whole policy stack, its history
// kept on failure and the entry removed on success; and a bulk replay that paces itself and
// stops when the route's breaker opens.

import type { DeadLetterConfig } from '../../config/types.ts';
import { waitOrAbort } from '../../exchange/cancel.ts';
import { ProxyError } from '../../exchange/errors.ts';
import type { PolicyEvents } from '../../exchange/events.ts';
import { callHandler, type Handler } from '../../exchange/handler.ts';
import type { BodySink, ProxyRequest } from '../../exchange/request.ts';
import type { Clock } from '../../runtime/clock.ts';
import type { LogEntry, LogStore } from '../../stores/store.ts';
import { DEAD_LETTER_STREAM, asDeadLetterMeta, storedMeta, withReplay, type FinalOutcome } from './capture.ts';
import { replayDelivered, replayHeaders, unreplayable } from './replay.ts';

/** A route as a replay needs it: its dead-letter settings, its store's log and its composed handler. */
export interface ReplayTarget {
  readonly route: string;
  readonly listener: string;
  readonly upstream: string;
  readonly timeoutMs: number;
  readonly config: DeadLetterConfig;
  readonly log: LogStore;
  readonly handler: Handler;
  /** The route's idempotency header, when it has idempotency keys. */
  readonly keyHeader?: string | undefined;
}

export interface ReplayDeps {
  readonly clock: Clock;
  readonly events: PolicyEvents;
}

/** What became of one dead letter asked to be replayed. */
export type ReplayReport =
  | {
      readonly id: string;
      readonly result: 'success' | 'failure';
      /** The status the replay got: the upstream's, or that of Breakwater's own reply. */
      readonly status: number;
      /** Breakwater's reply reason, when it made the reply. */
      readonly reason?: string;
      readonly attempts: number;
      /** Set when the entry could not be removed (success) or its history updated (failure). */
      readonly storeError?: string;
    }
  /** Not sent: it cannot be (its body was not kept), or it is not a dead letter this version reads. */
  | { readonly id: string; readonly result: 'skipped'; readonly why: string };

/** Takes a response body and throws it away, as fast as it comes. */
const discardingSink: BodySink = {
  write: () => true,
  end: () => undefined,
  on: () => undefined,
  off: () => undefined,
};

/** Sends one dead letter again through the route's policies and records what came of it. */
export async function replayEntry(target: ReplayTarget, entry: LogEntry, deps: ReplayDeps): Promise<ReplayReport> {
  const { clock, events } = deps;
  const meta = asDeadLetterMeta(entry.meta);
  if (meta === undefined) return { id: entry.id, result: 'skipped', why: 'it is not a dead letter this version of Breakwater can read' };
  const refusal = unreplayable(meta);
  if (refusal !== undefined) return { id: entry.id, result: 'skipped', why: refusal };

  const now = clock.now();
  const request: ProxyRequest = {
    listener: target.listener,
    route: target.route,
    upstream: target.upstream,
    method: meta.method,
    path: meta.url,
    headers: replayHeaders(meta, entry.id, target.keyHeader),
    body: entry.body ?? (meta.bodyBytes === 0 ? null : Buffer.alloc(0)),
    requestId: meta.requestId,
    startedAt: now,
    deadlineAt: now + target.timeoutMs,
    attempts: 0,
    tried: [],
    replayOf: entry.id,
  };
  // The replay's own deadline, as the listener gives a request its route timeout.
  const controller = new AbortController();
  const cancelTimer = clock.setTimer(target.timeoutMs, () =>
    controller.abort(new ProxyError('timeout', { message: `the replay did not finish within the route timeout of ${target.timeoutMs}ms`, attemptFailure: 'timeout' })),
  );
  let outcome: FinalOutcome;
  try {
    const response = await callHandler(target.handler, request, { signal: controller.signal, dueAt: request.deadlineAt });
    outcome = { kind: 'response', status: response.status, fallback: response.fallback !== undefined };
    // Read to its end, so that the exchange completes as a client's would: an idempotency
    // layer above stores the answer, and the connection goes back to its pool.
    await response.body.pipeTo(discardingSink).catch(() => undefined);
  } catch (error) {
    const reply = error instanceof ProxyError ? error : new ProxyError('upstream_unavailable', { cause: error });
    outcome = { kind: 'error', reason: reply.reason, status: reply.status, callerGone: false };
  } finally {
    cancelTimer();
  }

  const delivered = replayDelivered(outcome, target.config.on);
  const reason = outcome.kind === 'error' ? outcome.reason : undefined;
  const report = { id: entry.id, result: delivered ? ('success' as const) : ('failure' as const), status: outcome.status, ...(reason === undefined ? {} : { reason }), attempts: request.attempts };
  events.emit({ type: 'dead-letter-replay', route: target.route, result: report.result });
  try {
    if (delivered) await target.log.remove(DEAD_LETTER_STREAM, entry.id);
    else {
      const record = { at: clock.wallNow(), result: report.result, status: report.status, ...(reason === undefined ? {} : { reason }), attempts: report.attempts };
      await target.log.update(DEAD_LETTER_STREAM, entry.id, storedMeta(withReplay(meta, record)));
    }
  } catch (error) {
    return { ...report, storeError: error instanceof Error ? error.message : String(error) };
  }
  return report;
}

/** Which dead letters of a route a bulk replay takes, oldest first. */
export interface BulkReplay {
  readonly reason?: string | undefined;
  /** Wall-clock ms: dead letters kept at or after. */
  readonly since?: number | undefined;
  /** Wall-clock ms: dead letters kept at or before; absent, those kept before the replay started. */
  readonly until?: number | undefined;
  /** The most dead letters to send; absent, all that match. */
  readonly limit?: number | undefined;
  /** Replays started per second, at most. */
  readonly ratePerSecond: number;
}

/** Why a bulk replay stopped. */
export type BulkStop =
  /** Every matching dead letter was tried. */
  | 'done'
  /** `limit` were sent. */
  | 'limit'
  /** The route's circuit breaker refused a replay: the upstream is still failing. */
  | 'circuit-open'
  /** Whoever asked for it went away. */
  | 'cancelled'
  /** The store could not list or read the dead letters. */
  | 'store-error';

export interface BulkSummary {
  readonly stopped: BulkStop;
  readonly message: string;
  readonly replayed: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly skipped: number;
}

const stopMessages: Record<BulkStop, string> = {
  done: 'every matching dead letter was replayed',
  limit: 'the limit of dead letters to replay was reached',
  'circuit-open': "stopped: the route's circuit breaker is open, so the upstream is still failing; the remaining dead letters are kept",
  cancelled: 'stopped: the replay was cancelled',
  'store-error': 'stopped: the store could not be read',
};

// Dead letters are listed this many at a time: a page is read, then replayed one by one.
const PAGE = 100;

/**
 * Replays a route's dead letters in the order they were kept, at most `ratePerSecond` a second,
 * one at a time: each report is yielded as it comes, and the summary is returned at the end.
 * It stops by itself when the route's breaker refuses a replay, and when `signal` aborts.
 */
export async function* replayRoute(target: ReplayTarget, bulk: BulkReplay, deps: ReplayDeps, signal: AbortSignal): AsyncGenerator<ReplayReport, BulkSummary> {
  const { clock } = deps;
  const until = bulk.until ?? clock.wallNow();
  const intervalMs = 1000 / bulk.ratePerSecond;
  const counts = { replayed: 0, succeeded: 0, failed: 0, skipped: 0 };
  const summary = (stopped: BulkStop, detail?: string): BulkSummary => ({ stopped, message: detail === undefined ? stopMessages[stopped] : `${stopMessages[stopped]}: ${detail}`, ...counts });
  const startedAt = clock.now();
  let after: string | undefined;
  for (;;) {
    let page;
    try {
      page = await target.log.list(DEAD_LETTER_STREAM, {
        partition: target.route,
        order: 'oldest',
        limit: PAGE,
        until,
        ...(bulk.since === undefined ? {} : { since: bulk.since }),
        ...(bulk.reason === undefined ? {} : { tags: { reason: bulk.reason } }),
        ...(after === undefined ? {} : { after }),
      });
    } catch (error) {
      return summary('store-error', (error as Error).message);
    }
    for (const listed of page.entries) {
      if (bulk.limit !== undefined && counts.replayed >= bulk.limit) return summary('limit');
      if (signal.aborted) return summary('cancelled');
      let entry: LogEntry | undefined;
      try {
        entry = await target.log.get(DEAD_LETTER_STREAM, listed.id);
      } catch (error) {
        return summary('store-error', (error as Error).message);
      }
      // Replayed or deleted meanwhile (by another replica, say).
      if (entry === undefined) continue;
      const meta = asDeadLetterMeta(entry.meta);
      if (meta === undefined || unreplayable(meta) !== undefined) {
        counts.skipped += 1;
        yield await replayEntry(target, entry, deps);
        continue;
      }
      // Paced from the start, so that a slow replay is not followed by a burst.
      const dueAt = startedAt + counts.replayed * intervalMs;
      const waitMs = dueAt - clock.now();
      if (waitMs > 0) {
        try {
          await waitOrAbort(clock, waitMs, signal);
        } catch {
          return summary('cancelled');
        }
      }
      const report = await replayEntry(target, entry, deps);
      counts.replayed += 1;
      if (report.result === 'success') counts.succeeded += 1;
      else counts.failed += 1;
      yield report;
      if (report.result === 'failure' && report.reason === 'circuit_open') return summary('circuit-open');
    }
    if (page.next === undefined) return summary('done');
    after = page.next;
  }
}
