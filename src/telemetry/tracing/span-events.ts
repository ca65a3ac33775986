// What a policy did to a request, as events on the request's server span.

import type { Attributes } from '@opentelemetry/api';
import type { PolicyEvent, PolicyEvents } from '../../exchange/events.ts';

/** Records the policy events that happened to a traced request on its server span. */
export const spanEvents: PolicyEvents = {
  emit(event, request) {
    request?.trace?.event(event);
  },
};

/** The span event for a policy event about one request; undefined for events about no request. */
export function spanEvent(event: PolicyEvent): [string, Attributes] | undefined {
  switch (event.type) {
    case 'retry':
      return ['breakwater.retry.backoff', { 'breakwater.retry.next_attempt': event.attempt, 'breakwater.retry.backoff_ms': event.delayMs, 'breakwater.retry.trigger': event.trigger }];
    case 'retry-give-up':
      return ['breakwater.retry.give_up', { 'breakwater.retry.give_up_reason': event.reason }];
    case 'per-try-timeout':
      return ['breakwater.per_try_timeout', {}];
    case 'deadline-exceeded':
      return ['breakwater.deadline_exceeded', { 'breakwater.deadline.stage': event.stage }];
    case 'breaker-rejected':
      return ['breakwater.circuit_breaker.rejected', { 'breakwater.circuit_breaker.name': event.breaker }];
    case 'bulkhead-queued':
      return ['breakwater.bulkhead.queued', { 'breakwater.bulkhead.wait_ms': event.waitedMs }];
    case 'bulkhead-rejected':
      return ['breakwater.bulkhead.rejected', { 'breakwater.bulkhead.reject_reason': event.reason }];
    case 'fallback':
      return ['breakwater.fallback', { 'breakwater.fallback.kind': event.kind, 'breakwater.fallback.result': event.result }];
    case 'fault-injected':
      return ['breakwater.fault.injected', { 'breakwater.fault.kind': event.kind }];
    case 'idempotency':
      return ['breakwater.idempotency', { 'breakwater.idempotency.result': event.result }];
    case 'hedge':
      return ['breakwater.hedge', { 'breakwater.hedge.result': event.result }];
    // Breaker transitions and endpoint events belong to no request; dead letters are written
    // and replayed after their request's span has ended.
    case 'breaker-transition':
    case 'dead-letter':
    case 'dead-letter-dropped':
    case 'dead-letter-replay':
    case 'endpoint-ejected':
    case 'endpoint-returned':
    case 'endpoints-discovered':
    case 'dns-lookup-failed':
      return undefined;
    default: {
      const unknown: never = event;
      return unknown;
    }
  }
}
