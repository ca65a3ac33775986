import { Scope } from '../../exchange/cancel.ts';
import { ProxyError } from '../../exchange/errors.ts';
import type { PolicyEvents } from '../../exchange/events.ts';
import { callHandler, type Layer } from '../../exchange/handler.ts';
import { onBodyEnd, type UpstreamResponse } from '../../exchange/request.ts';
import type { LatencyPercentileConfig } from '../../config/types.ts';
import type { Clock } from '../../runtime/clock.ts';
import { TimerQueue } from '../../runtime/timer-queue.ts';
import { attemptDueAt, deadlineExceeded } from './deadline.ts';
import { percentileBound, type LatencyWindow } from './latency.ts';

export interface AttemptTimeoutDeps {
  readonly clock: Clock;
  readonly events: PolicyEvents;
  /**
   * Where the route's successful attempt latencies go, for percentile-based bounds (this
   * layer's adaptive per-try timeout, a hedge delay); absent when nothing on the route reads them.
   */
  readonly latencies?: readonly LatencyWindow[];
}

/** A per-try timeout: fixed in ms, or drawn from the route's latencies (the first of deps.latencies). */
export type PerTryTimeout = number | LatencyPercentileConfig | undefined;

/**
 * Bounds one attempt until its response head: min(perTryTimeout, what is left of the
 * deadline). The attempt runs in a scope of its own, due at that bound (which the upstream is
 * told) and cancelled alone when the per-try timeout fires; the scope follows the request's
 * until the attempt's body is over. An attempt that could not start before the deadline is
 * refused without touching the network.
 */
export function attemptTimeoutLayer(perTry: PerTryTimeout, deps: AttemptTimeoutDeps): Layer {
  const { clock, events } = deps;
  const latencies = deps.latencies ?? [];
  const adaptiveWindow = latencies[0];
  const perTryMs = (now: number): number | undefined =>
    perTry === undefined || typeof perTry === 'number' ? perTry : percentileBound(perTry, adaptiveWindow!, now);
  /** Counts a response head that came back well, for the route's percentiles. */
  const observe = (response: UpstreamResponse, startedAt: number): void => {
    if (response.status >= 500) return;
    const now = clock.now();
    for (const window of latencies) window.record(now - startedAt, now);
  };
  // Nearly every attempt answers before its per-try timeout: one timer serves them all.
  const perTryTimers = new TimerQueue(clock);

  return (next) => (request, scope) => {
    const now = clock.now();
    if (scope.dueAt - now <= 0) {
      return Promise.reject(deadlineExceeded(events, 'attempt', "the caller's deadline was spent before an attempt could start", request));
    }
    const boundMs = perTryMs(now);
    const dueAt = attemptDueAt(now, scope.dueAt, boundMs);
    if (dueAt === scope.dueAt) {
      // The request's own timer already bounds this attempt.
      if (latencies.length === 0) return next(request, scope);
      return callHandler(next, request, scope).then((response) => {
        observe(response, now);
        return response;
      });
    }

    const attempt = new Scope(scope, dueAt);
    const expire = (): void => {
      events.emit({ type: 'per-try-timeout', route: request.route, upstream: request.upstream }, request);
      attempt.cancel(new ProxyError('timeout', { message: `the per-try timeout of ${Math.round(boundMs!)} ms expired`, attemptFailure: 'timeout' }));
    };
    // Here the per-try timeout, not the deadline, bounds the attempt: it is due at now + boundMs.
    const timer = perTryTimers.add(now, boundMs!, expire);
    return callHandler(next, request, attempt).then(
      (response) => {
        perTryTimers.remove(timer);
        observe(response, now);
        return onBodyEnd(response, () => attempt.release());
      },
      (error: unknown) => {
        perTryTimers.remove(timer);
        attempt.release();
        throw error;
      },
    );
  };
}
