import type { ProxyRequest, ResponseBody, UpstreamResponse } from '../../proxy/context.ts';
import { ProxyError } from '../../proxy/errors.ts';
import type { Clock } from '../../runtime/clock.ts';
import type { Handler, Layer } from '../../stack/handler.ts';
import type { PolicyEvents } from '../events.ts';
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
    if (reason !== 'deadline') return new ProxyError('bulkhead_full', { message });
    events.emit({ type: 'deadline-exceeded', route: request.route, upstream: request.upstream, stage: 'attempt' }, request);
    return new ProxyError('deadline_exceeded', { message });
  }

  function waitForSlot(request: ProxyRequest, waiter: Waiter): Promise<void> {
    const queuedAt = clock.now();
    const remaining = request.deadlineAt - queuedAt;
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
        request.cancelAttempt = null;
      };
      const cancelTimer = clock.setTimer(waitMs, () => {
        limiter.cancel(waiter);
        stopWaiting();
        reject(outOfTime());
      });
      // The request is cut short (route timeout, client gone) while it waits: leave the queue now.
      request.cancelAttempt = (reason) => {
        limiter.cancel(waiter);
        stopWaiting();
        reject(reason);
      };
      wakeUps.set(waiter, () => {
        stopWaiting();
        events.emit({ type: 'bulkhead-queued', upstream: request.upstream, route: request.route, waitedMs: clock.now() - queuedAt }, request);
        resolve();
      });
    });
  }

  /** Calls next with the slot held; gives the slot back exactly once, when the exchange is over. */
  async function withSlot(next: Handler, request: ProxyRequest): Promise<UpstreamResponse> {
    let held = true;
    const giveBack = (): void => {
      if (!held) return;
      held = false;
      releaseSlot(limiter);
    };
    let response: UpstreamResponse;
    try {
      response = await next(request);
    } catch (error) {
      giveBack();
      throw error;
    }
    const body = response.body;
    const heldBody: ResponseBody = {
      // Through a promise executor, so a body that throws instead of rejecting still frees the slot.
      pipeTo: (sink) => new Promise<void>((resolve) => resolve(body.pipeTo(sink))).finally(giveBack),
      discard: () => {
        try {
          body.discard();
        } finally {
          giveBack();
        }
      },
    };
    return { ...response, body: heldBody };
  }

  return (next) => async (request) => {
    if (request.abortReason !== null) throw request.abortReason;
    const acquisition = limiter.tryAcquire();
    if (acquisition.kind === 'rejected') {
      throw refuse(
        request,
        'full',
        `upstream ${request.upstream} is at its limit of ${limiter.maxConcurrent} concurrent requests and ${limiter.maxQueued} queued`,
      );
    }
    if (acquisition.kind === 'queued') await waitForSlot(request, acquisition.waiter);
    return withSlot(next, request);
  };
}
