import { DEFAULTS } from '../../config/defaults.ts';
import type { FaultConfig } from '../../config/types.ts';
import { waitOrAbort } from '../../exchange/cancel.ts';
import { ProxyError } from '../../exchange/errors.ts';
import type { PolicyEvents } from '../../exchange/events.ts';
import type { CallScope, Layer } from '../../exchange/handler.ts';
import type { ProxyRequest } from '../../exchange/request.ts';
import type { Clock } from '../../runtime/clock.ts';
import type { Random } from '../../runtime/random.ts';
import { deadlineExceeded } from '../deadline/deadline.ts';
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
  const abortGrpcStatus = config.abort?.grpcStatus ?? DEFAULTS.fault.abortGrpcStatus;

  /** Waits `delayMs`; gives up when the request is cut short or its deadline comes first. */
  async function delay(request: ProxyRequest, scope: CallScope, delayMs: number): Promise<void> {
    const waitMs = Math.max(0, Math.min(delayMs, scope.dueAt - clock.now()));
    await waitOrAbort(clock, waitMs, scope.signal);
    if (waitMs < delayMs) throw deadlineExceeded(events, 'attempt', `the deadline ran out during an injected delay of ${delayMs} ms`, request);
  }

  return (next) => async (request, scope) => {
    const decision = decideFault(config, random);
    if (decision.delayMs > 0) {
      events.emit({ type: 'fault-injected', route: request.route, kind: 'delay' }, request);
      await delay(request, scope, decision.delayMs);
    }
    if (decision.abortStatus !== null) {
      events.emit({ type: 'fault-injected', route: request.route, kind: 'abort' }, request);
      throw new ProxyError('fault_injected', { status: decision.abortStatus, grpcStatus: abortGrpcStatus });
    }
    return next(request, scope);
  };
}
