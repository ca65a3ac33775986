import { describe, expect, it } from 'vitest';
import type { DeadlineConfig } from '../../../src/config/types.ts';
import type { PolicyEvent } from '../../../src/exchange/events.ts';
import {
  announcedBudgetMs,
  attemptDueAt,
  deadlineExceeded,
  deadlineReached,
  expiryMessage,
  requestDeadline,
  deadlineHeaderValue,
} from '../../../src/policies/deadline/deadline.ts';
import { proxyRequest } from '../../support/handlers.ts';

const settings: DeadlineConfig = {
  header: 'x-request-timeout-ms',
  accept: ['x-request-timeout-ms', 'grpc-timeout', 'x-envoy-expected-rq-timeout-ms'],
  maxInboundMs: 60_000,
};

function recorder() {
  const events: PolicyEvent[] = [];
  return { events, emit: (event: PolicyEvent) => events.push(event) };
}

describe("a request's deadline", () => {
  it("is the route's timeout when the caller sends no budget", () => {
    expect(requestDeadline(2_000, {}, settings)).toEqual({ kind: 'set', lifetimeMs: 2_000, source: 'route' });
  });

  it("is the caller's budget when it is smaller than the route's timeout", () => {
    expect(requestDeadline(2_000, { 'x-request-timeout-ms': '750' }, settings)).toEqual({ kind: 'set', lifetimeMs: 750, source: 'caller' });
    expect(requestDeadline(2_000, { 'grpc-timeout': '300m' }, settings)).toEqual({ kind: 'set', lifetimeMs: 300, source: 'caller' });
  });

  it("stays the route's timeout when the caller grants as much or more", () => {
    expect(requestDeadline(2_000, { 'x-request-timeout-ms': '2000' }, settings)).toMatchObject({ lifetimeMs: 2_000, source: 'route' });
    expect(requestDeadline(2_000, { 'x-request-timeout-ms': '9000' }, settings)).toMatchObject({ lifetimeMs: 2_000, source: 'route' });
  });

  it('caps what the caller asks for at maxInbound', () => {
    expect(requestDeadline(120_000, { 'grpc-timeout': '2H' }, settings)).toEqual({ kind: 'set', lifetimeMs: 60_000, source: 'caller' });
  });

  it('is spent when the caller had no time left to give', () => {
    expect(requestDeadline(2_000, { 'x-request-timeout-ms': '0' }, settings)).toEqual({ kind: 'spent' });
  });

  it('says in its timeout message what expired', () => {
    expect(expiryMessage({ kind: 'set', lifetimeMs: 2_000, source: 'route' })).toBe('the route timeout of 2000 ms expired');
    expect(expiryMessage({ kind: 'set', lifetimeMs: 750, source: 'caller' })).toBe("the caller's deadline of 750 ms expired");
  });
});

describe('when a deadline is spent', () => {
  it('makes a 504 deadline_exceeded and counts it, on the request when there is one', () => {
    const { events, emit } = recorder();
    const seen: unknown[] = [];
    const error = deadlineExceeded({ emit: (event, request) => (emit(event), seen.push(request)) }, 'arrival', 'spent on arrival', { route: 'charge', upstream: 'payments' });
    expect(error).toMatchObject({ reason: 'deadline_exceeded', status: 504, message: 'spent on arrival' });
    expect(events).toEqual([{ type: 'deadline-exceeded', route: 'charge', upstream: 'payments', stage: 'arrival' }]);
    const request = proxyRequest();
    deadlineExceeded({ emit: (event, on) => (emit(event), seen.push(on)) }, 'attempt', 'spent', request);
    expect(seen).toEqual([undefined, request]);
  });

  it('ends a request no attempt of which could start with deadline_exceeded', () => {
    const { events, emit } = recorder();
    const error = deadlineReached({ emit }, proxyRequest({ attempts: 0 }), { kind: 'set', lifetimeMs: 2_000, source: 'route' }, false);
    expect(error).toMatchObject({ reason: 'deadline_exceeded', message: 'the route timeout of 2000 ms expired before an attempt could start' });
    expect(events).toMatchObject([{ type: 'deadline-exceeded', stage: 'attempt' }]);
  });

  it('ends a request under way with a timeout, which retry and breakers see as a timed-out attempt', () => {
    const { events, emit } = recorder();
    const started = deadlineReached({ emit }, proxyRequest({ attempts: 1 }), { kind: 'set', lifetimeMs: 750, source: 'caller' }, false);
    expect(started).toMatchObject({ reason: 'timeout', attemptFailure: 'timeout', message: "the caller's deadline of 750 ms expired" });
    // An answer already streaming (a fallback's) is under way too.
    const answering = deadlineReached({ emit }, proxyRequest({ attempts: 0 }), { kind: 'set', lifetimeMs: 750, source: 'caller' }, true);
    expect(answering.reason).toBe('timeout');
    expect(events).toEqual([]);
  });
});

describe('an attempt within the deadline', () => {
  it('is due at its per-try timeout, never past the deadline', () => {
    expect(attemptDueAt(1_000, 5_000, 200)).toBe(1_200);
    expect(attemptDueAt(1_000, 1_100, 200)).toBe(1_100);
    expect(attemptDueAt(1_000, 5_000, undefined)).toBe(5_000);
  });

  it('tells the upstream whole milliseconds, never more than is left and never negative', () => {
    expect(announcedBudgetMs(1_500.9, 1_000)).toBe(500);
    expect(announcedBudgetMs(900, 1_000)).toBe(0);
    expect(deadlineHeaderValue(1_250.5, 1_000)).toBe('250');
    expect(deadlineHeaderValue(900, 1_000)).toBe('0');
  });
});
