// A handler should reject, never throw; when one throws anyway, each layer must still answer
// with a rejected promise and give back what it holds (a bulkhead slot, a probe, a timer).
import { describe, expect, it } from 'vitest';
import { breakerLayer } from '../../src/policies/breaker/layer.ts';
import { CircuitBreaker } from '../../src/policies/breaker/state.ts';
import { bulkheadLayer } from '../../src/policies/bulkhead/layer.ts';
import { Bulkhead } from '../../src/policies/bulkhead/limiter.ts';
import { fallbackLayer } from '../../src/policies/fallback/layer.ts';
import { RetryBudget } from '../../src/policies/retry/budget.ts';
import { retryLayer } from '../../src/policies/retry/layer.ts';
import { attemptTimeoutLayer } from '../../src/policies/deadline/layer.ts';
import { ProxyError } from '../../src/exchange/errors.ts';
import type { Handler } from '../../src/exchange/handler.ts';
import { FakeClock } from '../support/fake-clock.ts';
import { call, proxyRequest, response, scripted } from '../support/handlers.ts';
import { fixedRandom } from '../support/seeded-random.ts';
import { breakerConfig } from './breaker/breaker-config.ts';

const noEvents = { emit: () => undefined };

/** A handler that throws `error` synchronously on its first `times` calls, then answers 200. */
function throwing(error: unknown, times = Number.POSITIVE_INFINITY): Handler & { calls: number } {
  const handler = Object.assign(
    () => {
      handler.calls += 1;
      if (handler.calls <= times) throw error;
      return Promise.resolve(response(200));
    },
    { calls: 0 },
  );
  return handler;
}

describe('a handler that throws instead of rejecting', () => {
  it('bulkhead: rejects and frees the slot', async () => {
    const bulkhead = new Bulkhead({ maxConcurrent: 1, maxQueued: 0 });
    const handler = bulkheadLayer(bulkhead, { clock: new FakeClock(), events: noEvents, queueTimeoutMs: 100 })(throwing(new Error('boom')));
    await expect(call(handler, proxyRequest())).rejects.toThrow('boom');
    expect(bulkhead.snapshot()).toMatchObject({ inFlight: 0, queued: 0 });
  });

  it('circuit breaker: rejects and gives the half-open probe slot to the next call', async () => {
    const clock = new FakeClock(1_000);
    const breaker = new CircuitBreaker({ name: 'b', upstream: 'test-upstream', config: breakerConfig({ halfOpenRequests: 1 }), onTransition: () => undefined });
    const layer = breakerLayer(breaker, { clock, events: noEvents });
    const failing = layer(scripted(503));
    for (let i = 0; i < 4; i++) await call(failing, proxyRequest()).catch(() => undefined);
    clock.advance(30_000);
    expect(breaker.stateNameAt(clock.now())).toBe('half-open');

    await expect(call(layer(throwing(new ProxyError('deadline_exceeded'))), proxyRequest())).rejects.toMatchObject({ reason: 'deadline_exceeded' });
    const probe = await call(layer(scripted(200)), proxyRequest());
    expect(probe.status).toBe(200);
  });

  it('circuit breaker: counts a thrown attempt failure as a failed call', async () => {
    const clock = new FakeClock(1_000);
    const breaker = new CircuitBreaker({ name: 'b', upstream: 'test-upstream', config: breakerConfig(), onTransition: () => undefined });
    const handler = breakerLayer(breaker, { clock, events: noEvents })(throwing(new ProxyError('upstream_unavailable', { attemptFailure: 'reset' })));
    for (let i = 0; i < 4; i++) await expect(call(handler, proxyRequest())).rejects.toMatchObject({ attemptFailure: 'reset' });
    expect(breaker.stateNameAt(clock.now())).toBe('open');
  });

  it('per-try timeout: rejects and cancels its timer', async () => {
    const clock = new FakeClock(1_000);
    const handler = attemptTimeoutLayer(200, { clock, events: noEvents })(throwing(new Error('boom')));
    await expect(call(handler, proxyRequest({ deadlineAt: 5_000 }))).rejects.toThrow('boom');
    expect(clock.pending).toBe(0);
  });

  it('retry: a thrown attempt failure is retried like a rejected one', async () => {
    const clock = new FakeClock();
    const upstream = throwing(new ProxyError('upstream_unavailable', { attemptFailure: 'reset' }), 1);
    const handler = retryLayer(
      {
        maxAttempts: 2,
        retryOn: ['reset'],
        backoff: { type: 'fixed', baseMs: 0, maxMs: 0, jitter: 'none' },
        respectRetryAfter: true,
        budget: { ratio: 0.2, minPerSecond: 10, windowMs: 10_000 },
        bufferLimitBytes: 1_024,
      },
      { clock, random: fixedRandom(0.5), events: noEvents, budget: new RetryBudget({ ratio: 0.2, minPerSecond: 10, windowMs: 10_000 }) },
    )(upstream);
    const answer = await call(handler, proxyRequest({ deadlineAt: 10_000 }));
    expect(answer.status).toBe(200);
    expect(upstream.calls).toBe(2);
  });

  it('fallback: a thrown failure that is a trigger is answered from the chain', async () => {
    const handler = fallbackLayer(
      { on: ['upstream-unavailable'], chain: [{ kind: 'response', status: 200, headers: {}, body: 'spare' }] },
      { clock: new FakeClock(), events: noEvents, route: 'test-route' },
    )(throwing(new ProxyError('upstream_unavailable', { attemptFailure: 'reset' })));
    const answer = await call(handler, proxyRequest());
    expect(answer.fallback).toBe('static');
  });
});
