import type { Logger } from 'pino';
import type { DeadLetterDrop, PolicyEvent, PolicyEvents } from '../exchange/events.ts';
import type { Clock } from '../runtime/clock.ts';

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

/** How often, at most, dropped dead letters of one route and cause are logged. */
export const DROP_LOG_INTERVAL_MS = 60_000;

/**
 * Logs dropped dead letters as warnings, at most once per interval for each route and cause:
 * the first drop at once, and the drops that follow within the interval as one line at its
 * end, with their count and the last reason given. A store that is down during an outage
 * would otherwise write a line per request.
 */
export function logDeadLetterDrops(logger: Logger, clock: Clock, intervalMs = DROP_LOG_INTERVAL_MS): PolicyEvents {
  // Per route and cause: the drops not logged yet in the current interval, and its last detail.
  const windows = new Map<string, { count: number; detail: string }>();
  const write = (route: string, cause: DeadLetterDrop, dropped: number, detail: string): void => {
    logger.warn({ route, cause, dropped, detail, intervalSeconds: intervalMs / 1000 }, 'dead letters dropped');
  };
  const open = (key: string, route: string, cause: DeadLetterDrop): void => {
    windows.set(key, { count: 0, detail: '' });
    clock.setTimer(intervalMs, () => {
      const window = windows.get(key)!;
      if (window.count === 0) {
        windows.delete(key);
        return;
      }
      write(route, cause, window.count, window.detail);
      open(key, route, cause);
    });
  };
  return {
    emit(event) {
      if (event.type !== 'dead-letter-dropped') return;
      const key = `${event.cause}\n${event.route}`;
      const window = windows.get(key);
      if (window === undefined) {
        write(event.route, event.cause, 1, event.detail);
        open(key, event.route, event.cause);
        return;
      }
      window.count += 1;
      window.detail = event.detail;
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
