import type { Logger } from 'pino';
import type { PolicyEvent, PolicyEvents } from '../exchange/events.ts';

/**
 * Logs the policy events an operator wants to read as a line, not only as a metric: every
 * circuit breaker transition (warn when it stops letting calls through, info otherwise).
 */
export function logPolicyEvents(logger: Logger): PolicyEvents {
  return {
    emit(event: PolicyEvent) {
      if (event.type !== 'breaker-transition') return;
      const blocking = event.to === 'open' || event.to === 'forced-open';
      logger[blocking ? 'warn' : 'info'](
        { breaker: event.breaker, upstream: event.upstream, from: event.from, to: event.to },
        'circuit breaker transition',
      );
    },
  };
}

/** Sends every event, with its request, to each of `targets`, in order. */
export function fanOut(...targets: PolicyEvents[]): PolicyEvents {
  return {
    emit(event, request) {
      for (const target of targets) target.emit(event, request);
    },
  };
}
