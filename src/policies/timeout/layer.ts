import { ProxyError } from '../../proxy/errors.ts';
import type { Clock } from '../../runtime/clock.ts';
import { callHandler, type Layer } from '../../stack/handler.ts';
import type { PolicyEvents } from '../events.ts';

export interface AttemptTimeoutDeps {
  readonly clock: Clock;
  readonly events: PolicyEvents;
}

/**
 * Bounds one attempt until its response head arrives: min(perTryTimeout, what is left of the
 * deadline). The attempt carries that bound to the upstream (request.attemptDeadlineAt). An
 * attempt that could not start before the deadline is refused without touching the network.
 */
export function attemptTimeoutLayer(perTryTimeoutMs: number | undefined, deps: AttemptTimeoutDeps): Layer {
  const { clock, events } = deps;
  return (next) => (request) => {
    const now = clock.now();
    const remaining = request.deadlineAt - now;
    if (remaining <= 0) {
      events.emit({ type: 'deadline-exceeded', route: request.route, upstream: request.upstream, stage: 'attempt' }, request);
      return Promise.reject(new ProxyError('deadline_exceeded'));
    }
    if (perTryTimeoutMs === undefined || perTryTimeoutMs >= remaining) {
      // The route's deadline timer already bounds this attempt.
      request.attemptDeadlineAt = request.deadlineAt;
      return next(request);
    }
    request.attemptDeadlineAt = now + perTryTimeoutMs;
    const cancel = clock.setTimer(perTryTimeoutMs, () => {
      events.emit({ type: 'per-try-timeout', route: request.route, upstream: request.upstream }, request);
      request.cancelAttempt?.(
        new ProxyError('timeout', { message: `the per-try timeout of ${perTryTimeoutMs} ms expired`, attemptFailure: 'timeout' }),
      );
    });
    const pending = callHandler(next, request);
    // The caller waits on `pending` itself: no extra promise between it and the response.
    pending.then(cancel, cancel);
    return pending;
  };
}
