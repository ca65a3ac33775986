import type { FaultConfig } from '../../config/types.ts';
import type { ProxyRequest } from '../../proxy/context.ts';
import { ProxyError } from '../../proxy/errors.ts';
import type { Clock } from '../../runtime/clock.ts';
import type { Random } from '../../runtime/random.ts';
import type { Layer } from '../../stack/handler.ts';
import type { PolicyEvents } from '../events.ts';
import { decideFault } from './decide.ts';

export interface FaultDeps {
  readonly clock: Clock;
  readonly random: Random;
  readonly events: PolicyEvents;
}

/**
 * Chaos testing, as Istio's HTTPFault: a share of requests wait before they are proxied, and a
 * share are answered with the configured status (reason fault_injected) without reaching the
 * upstream. The layer is outermost, so an injected abort is never retried and never replaced
 * by a fallback: the caller sees the fault it asked to test against.
 */
export function faultLayer(config: FaultConfig, deps: FaultDeps): Layer {
  const { clock, random, events } = deps;

  /** Waits `delayMs` on the clock; gives up when the request is cut short or its deadline comes first. */
  function delay(request: ProxyRequest, delayMs: number): Promise<void> {
    if (request.abortReason !== null) return Promise.reject(request.abortReason);
    const waitMs = Math.max(0, Math.min(delayMs, request.deadlineAt - clock.now()));
    return new Promise((resolve, reject) => {
      const cancelTimer = clock.setTimer(waitMs, () => {
        request.cancelAttempt = null;
        if (waitMs === delayMs) {
          resolve();
          return;
        }
        events.emit({ type: 'deadline-exceeded', route: request.route, upstream: request.upstream, stage: 'attempt' }, request);
        reject(new ProxyError('deadline_exceeded', { message: `the deadline ran out during an injected delay of ${delayMs} ms` }));
      });
      request.cancelAttempt = (reason) => {
        cancelTimer();
        request.cancelAttempt = null;
        reject(reason);
      };
    });
  }

  return (next) => async (request) => {
    const decision = decideFault(config, random);
    if (decision.delayMs > 0) {
      events.emit({ type: 'fault-injected', route: request.route, kind: 'delay' }, request);
      await delay(request, decision.delayMs);
    }
    if (decision.abortStatus !== null) {
      events.emit({ type: 'fault-injected', route: request.route, kind: 'abort' }, request);
      throw new ProxyError('fault_injected', { status: decision.abortStatus });
    }
    return next(request);
  };
}
