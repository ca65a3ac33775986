// The deadline of a request, in one place. On the wire a deadline is a relative budget (hosts'
// clocks differ); inside Breakwater it is an absolute monotonic instant. This module computes
// a request's deadline from its route's timeout and its caller's headers, bounds each attempt
// by it, writes what is left of it on each attempt's headers, and makes the replies a spent
// deadline ends in. The listener owns the one timer; src/policies/deadline/layer.ts the
// per-try bound.

import type { DeadlineConfig } from '../../config/types.ts';
import { ProxyError } from '../../exchange/errors.ts';
import type { PolicyEvents } from '../../exchange/events.ts';
import type { ProxyRequest } from '../../exchange/request.ts';
import { callerBudgetMs } from './budget.ts';

/** A request's deadline, or the news that the caller had no time left to give. */
export type RequestDeadline =
  | { readonly kind: 'spent' }
  | {
      readonly kind: 'set';
      /** How long the whole exchange may take, from its arrival. */
      readonly lifetimeMs: number;
      /** What set it: the route's timeout, or the caller's smaller budget. */
      readonly source: 'route' | 'caller';
    };

const spent: RequestDeadline = { kind: 'spent' };

/**
 * The smallest of the route's timeout and the budget the caller sent in any header of
 * `settings.accept` (capped at `maxInbound`); spent when the caller's budget was zero or less.
 */
export function requestDeadline(
  routeTimeoutMs: number,
  headers: Readonly<Record<string, string | string[] | undefined>>,
  settings: DeadlineConfig,
): RequestDeadline {
  const budget = callerBudgetMs(headers, settings.accept, settings.maxInboundMs);
  if (budget === undefined || budget >= routeTimeoutMs) return { kind: 'set', lifetimeMs: routeTimeoutMs, source: 'route' };
  if (budget <= 0) return spent;
  return { kind: 'set', lifetimeMs: budget, source: 'caller' };
}

/** What the timeout reply says expired. */
export function expiryMessage(deadline: Extract<RequestDeadline, { kind: 'set' }>): string {
  return deadline.source === 'route'
    ? `the route timeout of ${deadline.lifetimeMs} ms expired`
    : `the caller's deadline of ${deadline.lifetimeMs} ms expired`;
}

/** Where a request is told its deadline is spent: the route and upstream it was bound for. */
type Bound = Pick<ProxyRequest, 'route' | 'upstream'>;

/**
 * The `504 deadline_exceeded` reply: the deadline was spent before an attempt could start, so
 * no upstream sees the request. Counted where it is decided.
 */
export function deadlineExceeded(events: PolicyEvents, stage: 'arrival' | 'attempt', message: string, request: Bound | ProxyRequest): ProxyError {
  events.emit({ type: 'deadline-exceeded', route: request.route, upstream: request.upstream, stage }, 'requestId' in request ? request : undefined);
  return new ProxyError('deadline_exceeded', { message });
}

/**
 * What a request ends with when its deadline fires: `timeout` once it is under way (an attempt
 * started, or an answer is streaming), which retry and breakers see as a timed-out attempt;
 * `deadline_exceeded` when no attempt could start in time (a queue, an injected delay).
 */
export function deadlineReached(
  events: PolicyEvents,
  request: ProxyRequest,
  deadline: Extract<RequestDeadline, { kind: 'set' }>,
  answering: boolean,
): ProxyError {
  const message = expiryMessage(deadline);
  if (request.attempts === 0 && !answering) return deadlineExceeded(events, 'attempt', `${message} before an attempt could start`, request);
  return new ProxyError('timeout', { message, attemptFailure: 'timeout' });
}

/** The instant one attempt's response head is due: the per-try timeout's, never past `dueAt`. */
export function attemptDueAt(now: number, dueAt: number, perTryTimeoutMs: number | undefined): number {
  return perTryTimeoutMs === undefined ? dueAt : Math.min(dueAt, now + perTryTimeoutMs);
}

/** Whole milliseconds to announce for a wait that ends at `until`: never more than is left. */
export function announcedBudgetMs(until: number, now: number): number {
  return Math.max(0, Math.floor(until - now));
}

/** What the deadline header tells the upstream of an attempt due at `dueAt`: how long Breakwater will wait for it. */
export function deadlineHeaderValue(dueAt: number, now: number): string {
  return String(announcedBudgetMs(dueAt, now));
}
