import type { HedgeConfig, RetryConfig } from '../../config/types.ts';
import { DEFAULTS } from '../../config/defaults.ts';
import { Scope, hasEnded, waitOrAbort } from '../../exchange/cancel.ts';
import { ProxyError } from '../../exchange/errors.ts';
import type { GiveUpReason, PolicyEvents } from '../../exchange/events.ts';
import { callHandler, type CallScope, type Handler, type Layer } from '../../exchange/handler.ts';
import { matchesRetryOn, responseOutcome, type AttemptOutcome } from '../../exchange/outcome.ts';
import { bufferBody, ReplayableBody } from '../../exchange/request-body.ts';
import { onBodyEnd, type ProxyRequest, type UpstreamResponse } from '../../exchange/request.ts';
import type { Clock } from '../../runtime/clock.ts';
import type { Random } from '../../runtime/random.ts';
import { TimerQueue } from '../../runtime/timer-queue.ts';
import { percentileBound, type LatencyWindow } from '../deadline/latency.ts';
import { backoffDelay } from '../retry/backoff.ts';
import type { RetryBudget } from '../retry/budget.ts';
import { decideRetry, grpcMayRepeat, mayRepeat } from '../retry/decide.ts';

export interface HedgeDeps {
  readonly clock: Clock;
  readonly random: Random;
  readonly events: PolicyEvents;
  /** The route's hedge budget: a hedge is paid for like a retry. */
  readonly hedgeBudget: RetryBudget;
  /** The upstream's retry budget, when the route also retries. */
  readonly retryBudget?: RetryBudget;
  /** The breaker of the route's upstream, when it has one: no retry while it is open. */
  readonly breakerOpen?: (now: number) => boolean;
  /** The route's latencies, for a percentile delay. */
  readonly latencies?: LatencyWindow;
  /** The header of the route's idempotency keys, when it names one: a POST with a key may be hedged. */
  readonly keyHeader?: string;
  /** True when the upstream has an endpoint `request` has not tried: a retry going there needs no backoff. */
  readonly untried?: (request: ProxyRequest) => boolean;
}

/** How one attempt ended: a response head, an attempt failure, or a refusal by a policy below (circuit_open...). */
type Result =
  | { readonly kind: 'response'; readonly outcome: Extract<AttemptOutcome, { kind: 'response' }>; readonly response: UpstreamResponse }
  | { readonly kind: 'failure'; readonly outcome: Extract<AttemptOutcome, { kind: 'failure' }>; readonly error: ProxyError }
  | { readonly kind: 'refused'; readonly error: unknown };

interface Flight {
  readonly scope: Scope;
  /** 1 for the request's first attempt, 2 for the next started, ... */
  readonly order: number;
  readonly startedAt: number;
}

const noHeaders: Readonly<Record<string, string | undefined>> = {};
const defaultRetryOn = DEFAULTS.retry.retryOn;
const defaultBufferLimit = 64 * 1024;
const ignore = (): void => undefined;

function lostTo(order: number): ProxyError {
  return new ProxyError('upstream_unavailable', { message: `attempt ${order} of this request answered first` });
}

/** How the attempt `pending` ended. */
async function resultOf(pending: Promise<UpstreamResponse>): Promise<Result> {
  try {
    const response = await pending;
    return { kind: 'response', outcome: responseOutcome(response), response };
  } catch (error) {
    if (error instanceof ProxyError && error.attemptFailure !== undefined) return { kind: 'failure', outcome: { kind: 'failure', failure: error.attemptFailure }, error };
    return { kind: 'refused', error };
  }
}

/** The request's first attempt, started before the hedging loop took over. */
interface FirstAttempt {
  readonly scope: Scope;
  readonly pending: Promise<UpstreamResponse>;
  readonly startedAt: number;
  /** The hedge delay has passed with no answer: the loop sends a hedge at once. */
  readonly hedgeDue: boolean;
}

/** The answer a result stands for once nothing better comes: the response, or the error. */
function settle(result: Result): UpstreamResponse {
  if (result.kind === 'response') return result.response;
  throw result.error;
}

/** Gives back what a result holds that nobody will use: its body and its scope's link. */
function letGo(flight: Flight, result: Result): void {
  if (result.kind === 'response') result.response.body.discard();
  flight.scope.release();
}

/**
 * Hedged requests ("The Tail at Scale"): when an attempt has not answered within the hedge
 * delay (fixed, or a percentile of the route's latencies), another goes out, to an endpoint the
 * request has not tried; the first response head that is not a retryable failure wins and the
 * others are cancelled, their connections aborted and nothing counted against the upstream.
 * The layer also owns the route's retries, so that hedges and retries together stay within
 * retry.maxAttempts: when every attempt in flight has failed, it retries as the retry layer
 * would (backoff only when returning to a tried endpoint, budget, breaker, deadline). Only requests that may be sent twice are hedged:
 * idempotent methods, or POST/PATCH with an idempotency key, with a body within bufferLimit.
 * A request keeps one bulkhead slot however many of its attempts are in flight.
 */
export function hedgeLayer(hedge: HedgeConfig, retry: RetryConfig | undefined, deps: HedgeDeps): Layer {
  const { clock, random, events, hedgeBudget, retryBudget, breakerOpen, latencies } = deps;
  const retryOn = retry?.retryOn ?? defaultRetryOn;
  const maxTotal = retry?.maxAttempts ?? hedge.maxAttempts;
  const bufferLimit = retry?.bufferLimitBytes ?? defaultBufferLimit;
  const delayMs = (now: number): number => (hedge.delayMs !== undefined ? hedge.delayMs : percentileBound(hedge.adaptiveDelay!, latencies!, now));
  // Nearly every request waits a hedge delay and nearly every wait is cancelled: one timer serves them all.
  const firstDelays = new TimerQueue(clock);

  /** A response a client should get at once: a success, or a failure that no retry or hedge could mend. */
  function isFinalResponse(response: UpstreamResponse, outcome: AttemptOutcome): boolean {
    const status = response.status;
    if (status >= 400 && status <= 499 && status !== 429) return true;
    return !matchesRetryOn(outcome, retryOn);
  }

  function isFinal(result: Result): result is Extract<Result, { kind: 'response' }> {
    return result.kind === 'response' && isFinalResponse(result.response, result.outcome);
  }

  /** Whether `request` may be sent more than once at a time. */
  const mayRepeatRequest = (request: ProxyRequest): boolean =>
    (request.grpc === true && grpcMayRepeat(retryOn)) || mayRepeat(request.method, request.headers, deps.keyHeader);

  /** `first`: the attempt already under way when the request's body was at hand from the start. */
  async function run(next: Handler, request: ProxyRequest, scope: CallScope, first?: FirstAttempt): Promise<UpstreamResponse> {
    const { route, upstream } = request;
    const arrivedAt = first?.startedAt ?? clock.now();
    let buffered = true;
    // A gRPC call's body streams to its attempts as it comes (it may not end before answers do).
    let replay: ReplayableBody | undefined;
    const body = request.body;
    if (body !== null && !Buffer.isBuffer(body)) {
      if (request.grpc === true) replay = new ReplayableBody(body, bufferLimit);
      else buffered = await bufferBody(request, body, bufferLimit, scope);
    }
    const replayable = (): boolean => (replay === undefined ? buffered : replay.replayable);
    let mayHedge = replayable() && mayRepeatRequest(request);

    const flying = new Set<Flight>();
    const landed: { flight: Flight; result: Result }[] = [];
    let finished = false;
    let wake: (() => void) | null = null;
    let started = 0;
    let lastLaunchAt = arrivedAt;
    let last: Result | undefined;
    let backoffs = 0;
    let previousDelayMs = retry?.backoff.baseMs ?? 0;

    const track = (flight: Flight, pending: Promise<UpstreamResponse>): void => {
      flying.add(flight);
      void resultOf(pending).then((result) => {
        flying.delete(flight);
        // Too late: an answer was already chosen.
        if (finished) letGo(flight, result);
        else {
          landed.push({ flight, result });
          wake?.();
        }
      });
    };

    const launch = (): void => {
      if (replay !== undefined) request.body = replay.open();
      started += 1;
      lastLaunchAt = clock.now();
      const flight: Flight = { scope: new Scope(scope), order: started, startedAt: lastLaunchAt };
      track(flight, callHandler(next, request, flight.scope));
    };

    /** Ends the request with `result`: every other attempt is cancelled, and its resources freed as it ends. */
    const finish = (winner: Flight | undefined, result: Result): UpstreamResponse => {
      finished = true;
      if (winner !== undefined && latencies !== undefined && flying.size > 0) recordOutrun(winner);
      for (const flight of flying) flight.scope.cancel(lostTo(winner?.order ?? started));
      for (const { flight, result: other } of landed) letGo(flight, other);
      if (result.kind !== 'response') {
        winner?.scope.release();
        return settle(result);
      }
      return winner === undefined ? result.response : onBodyEnd(result.response, () => winner.scope.release());
    };

    /**
     * An attempt that a later one outran would have taken at least as long as it has run: that
     * lower bound enters the delay's window. Left out, the slowest attempts (the ones hedging
     * cuts short) would never be seen, and the percentile would drift down, hedging more.
     */
    const recordOutrun = (winner: Flight): void => {
      const now = clock.now();
      for (const flight of flying) if (flight.order < winner.order) latencies!.record(now - flight.startedAt, now);
    };

    const giveUp = (reason: GiveUpReason, result: Result): UpstreamResponse => {
      if (retry !== undefined) events.emit({ type: 'retry-give-up', route, upstream, reason }, request);
      return finish(undefined, result);
    };

    let hedgeDue = false;
    if (first === undefined) launch();
    else {
      started = 1;
      track({ scope: first.scope, order: 1, startedAt: first.startedAt }, first.pending);
      hedgeDue = first.hedgeDue;
    }
    for (;;) {
      // Wait for an attempt to end, or for the hedge delay to pass with no answer.
      const canHedge = mayHedge && replayable() && flying.size > 0 && flying.size < hedge.maxAttempts && started < maxTotal && !hasEnded(scope);
      if (hedgeDue) {
        // The first attempt was started, and its hedge delay waited, before the loop.
      } else if (landed.length === 0) {
        const waitMs = canHedge ? Math.max(0, lastLaunchAt + delayMs(clock.now()) - clock.now()) : undefined;
        await new Promise<void>((resolve) => {
          let cancelTimer = (): void => undefined;
          wake = () => {
            cancelTimer();
            resolve();
          };
          if (waitMs !== undefined) {
            cancelTimer = clock.setTimer(waitMs, () => {
              hedgeDue = true;
              resolve();
            });
          }
        });
        wake = null;
      }
      const sendHedge = hedgeDue;
      hedgeDue = false;

      for (let next = landed.shift(); next !== undefined; next = landed.shift()) {
        const { flight, result } = next;
        if (isFinal(result)) {
          if (flight.order > 1 && started > 1) events.emit({ type: 'hedge', route, upstream, result: 'won' }, request);
          return finish(flight, result);
        }
        // A failure: it stands until something better comes.
        if (last !== undefined && last.kind === 'response') last.response.body.discard();
        flight.scope.release();
        last = result;
      }

      if (sendHedge && flying.size > 0) {
        if (!replayable()) {
          // More of a streaming body passed than bufferLimit while the hedge delay ran.
          mayHedge = false;
          continue;
        }
        if (hedgeBudget.tryWithdraw(clock.now())) {
          events.emit({ type: 'hedge', route, upstream, result: 'sent' }, request);
          launch();
        } else {
          events.emit({ type: 'hedge', route, upstream, result: 'budget_exhausted' }, request);
          mayHedge = false;
        }
        continue;
      }
      if (flying.size > 0) continue;

      // Every attempt has ended without a final answer: retry, as the retry layer would.
      const failed = last!;
      if (failed.kind === 'refused' || hasEnded(scope) || retry === undefined) return finish(undefined, failed);
      const now = clock.now();
      const remainingMs = scope.dueAt - now;
      const decision = decideRetry(retry, {
        outcome: failed.outcome,
        responseHeaders: failed.kind === 'response' ? failed.response.headers : noHeaders,
        method: request.method,
        requestHeaders: request.headers,
        grpc: request.grpc === true,
        remainingMs,
        wallNow: clock.wallNow(),
        ...(deps.keyHeader === undefined ? {} : { keyHeader: deps.keyHeader }),
      });
      if (decision.kind === 'final') return finish(undefined, failed);
      if (decision.kind === 'give-up') return giveUp(decision.reason, failed);
      if (started >= maxTotal) return giveUp('attempts', failed);
      if (!replayable()) return giveUp('body', failed);
      if (breakerOpen?.(now) === true) return giveUp('breaker', failed);
      const backsOff = decision.retryAfterMs === undefined && deps.untried?.(request) !== true;
      const waitMs = decision.retryAfterMs ?? (backsOff ? backoffDelay(retry.backoff, backoffs + 1, previousDelayMs, random) : 0);
      if (remainingMs <= waitMs) return giveUp('deadline', failed);
      if (retryBudget !== undefined && !retryBudget.tryWithdraw(now)) return giveUp('budget', failed);
      if (backsOff) {
        backoffs += 1;
        previousDelayMs = waitMs;
      }
      if (failed.kind === 'response') failed.response.body.discard();
      last = undefined;
      events.emit({ type: 'retry', route, upstream, attempt: started + 1, delayMs: waitMs, trigger: decision.trigger }, request);
      if (waitMs > 0) {
        try {
          await waitOrAbort(clock, waitMs, scope.signal);
        } catch (error) {
          finished = true;
          throw error;
        }
      }
      launch();
    }
  }

  /**
   * The common case, without the loop's state: a request whose body is at hand from the start
   * sends its first attempt here, and keeps it when it is final within the hedge delay. The
   * loop takes over, with that attempt in flight, when the delay passes or the attempt ends
   * otherwise. The request's answer waits for the first attempt to settle either way: once the
   * loop has an answer it cancels the attempts still in flight, and this one settles as soon as
   * its cancellation has reached the upstream's client.
   */
  function start(next: Handler, request: ProxyRequest, scope: CallScope, startedAt: number): Promise<UpstreamResponse> {
    const first = new Scope(scope);
    const pending = callHandler(next, request, first);
    let takeover: Promise<UpstreamResponse> | undefined;
    const handOver = (hedgeDue: boolean): Promise<UpstreamResponse> => {
      takeover = run(next, request, scope, { scope: first, pending, startedAt, hedgeDue });
      // Observed once the first attempt settles; until then, a failure of the loop is not unhandled.
      takeover.catch(ignore);
      return takeover;
    };
    const canHedge = hedge.maxAttempts > 1 && maxTotal > 1 && mayRepeatRequest(request) && !hasEnded(scope);
    const wait = canHedge ? firstDelays.add(startedAt, delayMs(startedAt), () => handOver(true)) : undefined;
    return pending.then(
      (response) => {
        if (takeover !== undefined) return takeover;
        if (wait !== undefined) firstDelays.remove(wait);
        if (!isFinalResponse(response, responseOutcome(response))) return handOver(false);
        return onBodyEnd(response, () => first.release());
      },
      () => {
        if (takeover !== undefined) return takeover;
        if (wait !== undefined) firstDelays.remove(wait);
        return handOver(false);
      },
    );
  }

  return (next) => (request, scope) => {
    const arrivedAt = clock.now();
    retryBudget?.recordRequest(arrivedAt);
    hedgeBudget.recordRequest(arrivedAt);
    const body = request.body;
    return body === null || Buffer.isBuffer(body) ? start(next, request, scope, arrivedAt) : run(next, request, scope);
  };
}
