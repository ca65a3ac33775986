import type { Logger } from 'pino';
import type { PolicyEvent, PolicyEvents } from '../exchange/events.ts';

/**
 * Logs the policy events an operator wants to read as a line, not only as a metric: every
 * circuit breaker transition (warn when it stops letting calls through, info otherwise), every
 * endpoint ejection (warn) and return (info), and every change DNS makes to an upstream's
 * endpoints (info), or a lookup that failed (warn).
 */
export function logPolicyEvents(logger: Logger): PolicyEvents {
  return {
    emit(event: PolicyEvent) {
      switch (event.type) {
        case 'breaker-transition': {
          const blocking = event.to === 'open' || event.to === 'forced-open';
          logger[blocking ? 'warn' : 'info'](
            { breaker: event.breaker, upstream: event.upstream, from: event.from, to: event.to },
            'circuit breaker transition',
          );
          return;
        }
        case 'endpoint-ejected':
          logger.warn(
            { upstream: event.upstream, endpoint: event.endpoint, reason: event.reason, ejectedForMs: Math.round(event.durationMs), ejections: event.ejections },
            'endpoint ejected',
          );
          return;
        case 'endpoint-returned':
          logger.info({ upstream: event.upstream, endpoint: event.endpoint }, 'endpoint returned from ejection');
          return;
        case 'endpoints-discovered':
          logger.info({ upstream: event.upstream, dns: event.name, added: event.added, removed: event.removed }, 'endpoints changed');
          return;
        case 'dns-lookup-failed':
          logger.warn({ upstream: event.upstream, dns: event.name, error: event.message, kept: event.kept }, 'DNS lookup failed; keeping the last endpoints');
          return;
        default:
          return;
      }
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
