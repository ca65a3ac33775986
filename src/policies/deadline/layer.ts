import { ChildScope } from '../../exchange/cancel.ts';
import { ProxyError } from '../../exchange/errors.ts';
import type { PolicyEvents } from '../../exchange/events.ts';
import { callHandler, type Layer } from '../../exchange/handler.ts';
import { onBodyEnd } from '../../exchange/request.ts';
import type { Clock } from '../../runtime/clock.ts';
import { attemptDueAt, deadlineExceeded } from './deadline.ts';

export interface AttemptTimeoutDeps {
  readonly clock: Clock;
  readonly events: PolicyEvents;
}

/**
 * Bounds one attempt until its response head: min(perTryTimeout, what is left of the
 * deadline). The attempt runs in a scope of its own, due at that bound (which the upstream is
 * told) and cancelled alone when the per-try timeout fires; the scope follows the request's
 * until the attempt's body is over. An attempt that could not start before the deadline is
 * refused without touching the network.
 */
export function attemptTimeoutLayer(perTryTimeoutMs: number | undefined, deps: AttemptTimeoutDeps): Layer {
  const { clock, events } = deps;
  return (next) => (request, scope) => {
    const now = clock.now();
    if (scope.dueAt - now <= 0) {
      return Promise.reject(deadlineExceeded(events, 'attempt', "the caller's deadline was spent before an attempt could start", request));
    }
    const dueAt = attemptDueAt(now, scope.dueAt, perTryTimeoutMs);
    // The request's own timer already bounds this attempt.
    if (dueAt === scope.dueAt) return next(request, scope);

    const attempt = new ChildScope(scope, dueAt);
    const cancelTimer = clock.setTimer(dueAt - now, () => {
      events.emit({ type: 'per-try-timeout', route: request.route, upstream: request.upstream }, request);
      attempt.cancel(new ProxyError('timeout', { message: `the per-try timeout of ${perTryTimeoutMs} ms expired`, attemptFailure: 'timeout' }));
    });
    return callHandler(next, request, attempt).then(
      (response) => {
        cancelTimer();
        return onBodyEnd(response, () => attempt.release());
      },
      (error: unknown) => {
        cancelTimer();
        attempt.release();
        throw error;
      },
    );
  };
}
