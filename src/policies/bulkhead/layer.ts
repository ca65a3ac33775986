import { abortReason, onAbort, hasEnded } from '../../exchange/cancel.ts';
import { ProxyError } from '../../exchange/errors.ts';
import type { PolicyEvents } from '../../exchange/events.ts';
import { callHandler, type CallScope, type Handler, type Layer } from '../../exchange/handler.ts';
import { onBodyEnd, type ProxyRequest, type UpstreamResponse } from '../../exchange/request.ts';
import type { Clock } from '../../runtime/clock.ts';
import { deadlineExceeded } from '../deadline/deadline.ts';
import type { Bulkhead, Waiter } from './limiter.ts';

export interface BulkheadDeps {
  readonly clock: Clock;
  readonly events: PolicyEvents;
  readonly queueTimeoutMs: number;
}

// Every route to an upstream shares its bulkhead, so a slot freed by one route's request may
// wake a request queued by another route's layer: the wake-ups live beside the waiters, not
// in one layer's closure.
const wakeUps = new WeakMap<Waiter, () => void>();

function releaseSlot(limiter: Bulkhead): void {
  const woken = limiter.release();
  if (woken !== undefined) wakeUps.get(woken)!();
}

/**
 * Holds one of the upstream's slots for the whole life of a request: every retry, and the
 * response body until it has streamed to the client or been discarded. Without a free slot the
 * request waits in the queue, at most the queue timeout and never past its deadline; without
 * room in the queue it is refused at once with 503 bulkhead_full.
 */
export function bulkheadLayer(limiter: Bulkhead, deps: BulkheadDeps): Layer {
  const { clock, events, queueTimeoutMs } = deps;

  function refuse(request: ProxyRequest, reason: 'full' | 'queue-timeout' | 'deadline', message: string): ProxyError {
    events.emit({ type: 'bulkhead-rejected', upstream: request.upstream, route: request.route, reason }, request);
    if (reason === 'deadline') return deadlineExceeded(events, 'attempt', message, request);
    return new ProxyError('bulkhead_full', { message });
  }

  function waitForSlot(request: ProxyRequest, scope: CallScope, waiter: Waiter): Promise<void> {
    const queuedAt = clock.now();
    const remaining = scope.dueAt - queuedAt;
    const deadlineFirst = remaining < queueTimeoutMs;
    const waitMs = Math.min(queueTimeoutMs, remaining);
    const outOfTime = (): ProxyError =>
      deadlineFirst
        ? refuse(request, 'deadline', `the deadline ran out while waiting for a free slot to upstream ${request.upstream}`)
        : refuse(request, 'queue-timeout', `no slot to upstream ${request.upstream} came free within the queue timeout of ${queueTimeoutMs} ms`);
    if (waitMs <= 0) {
      limiter.cancel(waiter);
      return Promise.reject(outOfTime());
    }
    return new Promise((resolve, reject) => {
      const stopWaiting = (): void => {
        wakeUps.delete(waiter);
        cancelTimer();
        stopListening();
      };
      const cancelTimer = clock.setTimer(waitMs, () => {
        limiter.cancel(waiter);
        stopWaiting();
        reject(outOfTime());
      });
      // The request is cut short (route timeout, client gone) while it waits: leave the queue now.
      const stopListening = onAbort(scope.signal, (reason) => {
        limiter.cancel(waiter);
        stopWaiting();
        reject(reason);
      });
      wakeUps.set(waiter, () => {
        stopWaiting();
        events.emit({ type: 'bulkhead-queued', upstream: request.upstream, route: request.route, waitedMs: clock.now() - queuedAt }, request);
        resolve();
      });
    });
  }

  // Made once per layer: the happy path allocates no closure of its own.
  const giveBack = (): void => releaseSlot(limiter);
  const holdSlot = (response: UpstreamResponse): UpstreamResponse => onBodyEnd(response, giveBack);
  const giveBackOnError = (error: unknown): never => {
    releaseSlot(limiter);
    throw error;
  };

  /** Calls next with the slot held; the slot is given back exactly once, when the exchange is over. */
  function withSlot(next: Handler, request: ProxyRequest, scope: CallScope): Promise<UpstreamResponse> {
    return callHandler(next, request, scope).then(holdSlot, giveBackOnError);
  }

  return (next) => (request, scope) => {
    if (hasEnded(scope)) return Promise.reject(abortReason(scope.signal));
    const acquisition = limiter.tryAcquire();
    if (acquisition.kind === 'rejected') {
      return Promise.reject(
        refuse(
          request,
          'full',
          `upstream ${request.upstream} is at its limit of ${limiter.maxConcurrent} concurrent requests and ${limiter.maxQueued} queued`,
        ),
      );
    }
    if (acquisition.kind === 'queued') return waitForSlot(request, scope, acquisition.waiter).then(() => withSlot(next, request, scope));
    return withSlot(next, request, scope);
  };
}
