import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { HedgeConfig, RetryConfig } from '../../../src/config/types.ts';
import { ProxyError } from '../../../src/exchange/errors.ts';
import type { PolicyEvent } from '../../../src/exchange/events.ts';
import type { CallScope } from '../../../src/exchange/handler.ts';
import type { ProxyRequest, UpstreamResponse } from '../../../src/exchange/request.ts';
import { LatencyWindow } from '../../../src/policies/deadline/latency.ts';
import { hedgeLayer, type HedgeDeps } from '../../../src/policies/hedge/layer.ts';
import { RetryBudget } from '../../../src/policies/retry/budget.ts';
import { FakeClock } from '../../support/fake-clock.ts';
import { abortListeners, proxyRequest, response, start } from '../../support/handlers.ts';
import { fixedRandom } from '../../support/seeded-random.ts';

const hedge: HedgeConfig = { delayMs: 20, maxAttempts: 2, budget: { ratio: 1, minPerSecond: 100, windowMs: 10_000 } };

/** An upstream whose attempts answer when the test says so, each remembering its scope. */
function controlled() {
  const attempts: { request: ProxyRequest; scope: CallScope; answer: (status: number) => void; fail: (error: ProxyError) => void; cancelled: boolean }[] = [];
  const handler = (request: ProxyRequest, scope: CallScope): Promise<UpstreamResponse> =>
    new Promise((resolve, reject) => {
      request.attempts += 1;
      const entry = {
        request,
        scope,
        cancelled: false,
        answer: (status: number) => resolve(response(status)),
        fail: (error: ProxyError) => reject(error),
      };
      scope.signal.addEventListener('abort', () => {
        entry.cancelled = true;
        reject(scope.signal.reason);
      });
      attempts.push(entry);
    });
  return Object.assign(handler, { attempts });
}

function setup(config: Partial<HedgeConfig> = {}, retry?: RetryConfig, deps: Partial<HedgeDeps> = {}) {
  const clock = new FakeClock(1_000);
  const events: PolicyEvent[] = [];
  const layer = hedgeLayer({ ...hedge, ...config }, retry, {
    clock,
    random: fixedRandom(0.5),
    events: { emit: (event) => events.push(event) },
    hedgeBudget: new RetryBudget({ ...hedge.budget, ...config.budget }),
    ...deps,
  });
  const hedges = () => events.flatMap((event) => (event.type === 'hedge' ? [event.result] : []));
  return { clock, events, layer, hedges };
}

describe('hedged requests', () => {
  it('sends a hedge once the first attempt has not answered within the delay, and the first good answer wins', async () => {
    const { clock, layer, hedges } = setup();
    const upstream = controlled();
    const request = proxyRequest();
    const call = start(layer(upstream), request);
    await clock.advanceAsync(19);
    expect(upstream.attempts).toHaveLength(1);
    await clock.advanceAsync(1);
    expect(upstream.attempts).toHaveLength(2);

    upstream.attempts[1]!.answer(200);
    await call.done;
    expect(call.response?.status).toBe(200);
    // The loser is cancelled, and lets go of the request's signal.
    expect(upstream.attempts[0]!.cancelled).toBe(true);
    expect(hedges()).toEqual(['sent', 'won']);
    expect(request.attempts).toBe(2);
    call.response!.body.discard();
    expect(abortListeners(request)).toBe(0);
    expect(clock.pending).toBe(0);
  });

  it('sends no hedge when the first attempt answers in time', async () => {
    const { clock, layer, hedges } = setup();
    const upstream = controlled();
    const call = start(layer(upstream));
    await clock.advanceAsync(10);
    upstream.attempts[0]!.answer(200);
    await call.done;
    expect(upstream.attempts).toHaveLength(1);
    expect(hedges()).toEqual([]);
    expect(clock.pending).toBe(0);
  });

  it('keeps waiting for the other attempt when one fails in a retryable way', async () => {
    const { clock, layer } = setup();
    const upstream = controlled();
    const call = start(layer(upstream));
    await clock.advanceAsync(20);
    upstream.attempts[0]!.answer(503);
    await clock.advanceAsync(5);
    expect(call.settled).toBe(false);
    upstream.attempts[1]!.answer(200);
    await call.done;
    expect(call.response?.status).toBe(200);
  });

  it('answers with the last failure when every attempt failed and nothing retries', async () => {
    const { clock, layer } = setup();
    const upstream = controlled();
    const call = start(layer(upstream));
    await clock.advanceAsync(20);
    upstream.attempts[0]!.answer(503);
    upstream.attempts[1]!.fail(new ProxyError('upstream_unavailable', { attemptFailure: 'reset' }));
    await call.done;
    expect(call.error?.attemptFailure).toBe('reset');
  });

  it('stops hedging when the budget is spent, and says so', async () => {
    const { clock, layer, hedges } = setup({ budget: { ratio: 0, minPerSecond: 0, windowMs: 10_000 } });
    const upstream = controlled();
    const call = start(layer(upstream));
    await clock.advanceAsync(100, 10);
    expect(upstream.attempts).toHaveLength(1);
    expect(hedges()).toEqual(['budget_exhausted']);
    upstream.attempts[0]!.answer(200);
    await call.done;
  });

  it('hedges only requests that may be sent twice', async () => {
    const { clock, layer } = setup();
    const upstream = controlled();
    const post = start(layer(upstream), proxyRequest({ method: 'POST', headers: ['host', 'x'] }));
    await clock.advanceAsync(50, 10);
    expect(upstream.attempts).toHaveLength(1);
    upstream.attempts[0]!.answer(201);
    await post.done;

    const keyed = start(layer(upstream), proxyRequest({ method: 'POST', headers: ['host', 'x', 'Idempotency-Key', 'k1'] }));
    await clock.advanceAsync(20);
    expect(upstream.attempts).toHaveLength(3);
    upstream.attempts[2]!.answer(201);
    await keyed.done;
  });

  it('hedges no body larger than it can send again', async () => {
    const { clock, layer } = setup();
    const upstream = controlled();
    const big = proxyRequest({ method: 'PUT', body: Readable.from([Buffer.alloc(100 * 1024)]) });
    const call = start(layer(upstream), big);
    // Let the body's stream events run: the layer reads it before the first attempt.
    await new Promise((resolve) => setImmediate(resolve));
    await clock.advanceAsync(50, 10);
    expect(upstream.attempts).toHaveLength(1);
    upstream.attempts[0]!.answer(200);
    await call.done;
  });

  it('counts hedges and retries against one maxAttempts, and retries once every attempt failed', async () => {
    const retry: RetryConfig = {
      maxAttempts: 3,
      retryOn: [503],
      backoff: { type: 'fixed', baseMs: 10, maxMs: 10, jitter: 'none' },
      respectRetryAfter: true,
      budget: { ratio: 1, minPerSecond: 100, windowMs: 10_000 },
      bufferLimitBytes: 1024,
    };
    const { clock, layer, events } = setup({}, retry, { retryBudget: new RetryBudget(retry.budget) });
    const upstream = controlled();
    const call = start(layer(upstream));
    await clock.advanceAsync(20);
    upstream.attempts[0]!.answer(503);
    upstream.attempts[1]!.answer(503);
    // Both failed: a retry after the backoff, the third and last attempt; no hedge may follow it.
    await clock.advanceAsync(10);
    expect(upstream.attempts).toHaveLength(3);
    await clock.advanceAsync(100, 10);
    expect(upstream.attempts).toHaveLength(3);
    upstream.attempts[2]!.answer(503);
    await call.done;
    expect(call.response?.status).toBe(503);
    expect(events.filter((event) => event.type === 'retry-give-up')).toMatchObject([{ reason: 'attempts' }]);
  });

  it('retries at once on an endpoint the request has not tried, and backs off when it must return to one', async () => {
    const retry: RetryConfig = {
      maxAttempts: 3,
      retryOn: [503],
      backoff: { type: 'fixed', baseMs: 10, maxMs: 10, jitter: 'none' },
      respectRetryAfter: true,
      budget: { ratio: 1, minPerSecond: 100, windowMs: 10_000 },
      bufferLimitBytes: 1024,
    };
    // Two endpoints: a fresh one while the request has made fewer than two attempts.
    const { clock, layer, events } = setup({}, retry, { retryBudget: new RetryBudget(retry.budget), untried: (request) => request.attempts < 2 });
    const upstream = controlled();
    const call = start(layer(upstream));
    // The first attempt fails fast, before the hedge delay: the retry goes out at once.
    upstream.attempts[0]!.answer(503);
    await clock.advanceAsync(0);
    expect(upstream.attempts).toHaveLength(2);
    upstream.attempts[1]!.answer(503);
    // Both endpoints tried: the last attempt waits the backoff.
    await clock.advanceAsync(9);
    expect(upstream.attempts).toHaveLength(2);
    await clock.advanceAsync(1);
    expect(upstream.attempts).toHaveLength(3);
    upstream.attempts[2]!.answer(200);
    await call.done;
    expect(call.response?.status).toBe(200);
    expect(events.flatMap((event) => (event.type === 'retry' ? [event.delayMs] : []))).toEqual([0, 10]);
  });

  it('waits the percentile of the route latencies before hedging, and its max until enough are known', async () => {
    const latencies = new LatencyWindow(60_000);
    const adaptiveDelay = { percentile: 95, multiplier: 1, minMs: 5, maxMs: 400, minSamples: 10, windowMs: 60_000 };
    const { clock, layer } = setup({ delayMs: undefined, adaptiveDelay }, undefined, { latencies });
    const upstream = controlled();
    const first = start(layer(upstream));
    await clock.advanceAsync(399, 50);
    expect(upstream.attempts).toHaveLength(1);
    await clock.advanceAsync(1);
    expect(upstream.attempts).toHaveLength(2);
    upstream.attempts[0]!.answer(200);
    await first.done;

    for (let i = 0; i < 100; i++) latencies.record(30, clock.now());
    const second = start(layer(upstream));
    await clock.advanceAsync(35, 5);
    expect(upstream.attempts).toHaveLength(4);
    upstream.attempts[3]!.answer(200);
    await second.done;
  });

  it('counts an attempt outrun by its hedge in the delay window as at least as slow as it ran', async () => {
    const latencies = new LatencyWindow(60_000);
    const adaptiveDelay = { percentile: 95, multiplier: 1, minMs: 5, maxMs: 400, minSamples: 10, windowMs: 60_000 };
    const { clock, layer } = setup({ delayMs: undefined, adaptiveDelay }, undefined, { latencies });
    for (let i = 0; i < 100; i++) latencies.record(10, clock.now());
    const upstream = controlled();

    // The hedge answers first: the first attempt had run 15 ms when it was cancelled.
    const outrun = start(layer(upstream));
    await clock.advanceAsync(11, 1);
    expect(upstream.attempts).toHaveLength(2);
    await clock.advanceAsync(4);
    upstream.attempts[1]!.answer(200);
    await outrun.done;
    outrun.response!.body.discard();
    expect(upstream.attempts[0]!.cancelled).toBe(true);
    const afterOutrun = latencies.quantile(1, clock.now() + 1_000);
    expect(afterOutrun.count).toBe(101);
    expect(afterOutrun.value).toBeCloseTo(15, 0);

    // The first attempt answers first: the hedge it cancels had only just begun, and says nothing.
    const kept = start(layer(upstream));
    await clock.advanceAsync(12, 1);
    expect(upstream.attempts).toHaveLength(4);
    upstream.attempts[2]!.answer(200);
    await kept.done;
    kept.response!.body.discard();
    expect(upstream.attempts[3]!.cancelled).toBe(true);
    expect(latencies.quantile(1, clock.now() + 2_000).count).toBe(101);
  });

  it('ends every attempt when the request is cut short', async () => {
    const { clock, layer } = setup();
    const upstream = controlled();
    const request = proxyRequest();
    const call = start(layer(upstream), request);
    await clock.advanceAsync(20);
    const { abortRequest } = await import('../../support/handlers.ts');
    const timeout = new ProxyError('timeout', { attemptFailure: 'timeout' });
    abortRequest(request, timeout);
    await call.done;
    expect(call.error).toBe(timeout);
    expect(upstream.attempts.every((attempt) => attempt.cancelled)).toBe(true);
    expect(abortListeners(request)).toBe(0);
  });
});
