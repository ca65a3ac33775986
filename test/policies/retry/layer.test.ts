import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { RetryConfig } from '../../../src/config/types.ts';
import type { PolicyEvent } from '../../../src/exchange/events.ts';
import { RetryBudget } from '../../../src/policies/retry/budget.ts';
import { retryLayer, type RetryDeps } from '../../../src/policies/retry/layer.ts';
import type { ProxyRequest, UpstreamResponse } from '../../../src/exchange/request.ts';
import { ProxyError } from '../../../src/exchange/errors.ts';
import type { Handler } from '../../../src/exchange/handler.ts';
import { FakeClock } from '../../support/fake-clock.ts';
import { abortListeners, abortRequest, call, hanging, proxyRequest, response, scripted } from '../../support/handlers.ts';
import { fixedRandom } from '../../support/seeded-random.ts';

const retryConfig: RetryConfig = {
  maxAttempts: 3,
  retryOn: ['connect-failure', 'reset', 'timeout', 502, 503, 504],
  backoff: { type: 'fixed', baseMs: 100, maxMs: 1_000, jitter: 'none' },
  respectRetryAfter: true,
  budget: { ratio: 0.2, minPerSecond: 10, windowMs: 10_000 },
  bufferLimitBytes: 1_024,
};

function setup(config: Partial<RetryConfig> = {}, deps: Partial<RetryDeps> = {}) {
  const clock = new FakeClock();
  const events: PolicyEvent[] = [];
  const merged = { ...retryConfig, ...config };
  const layer = retryLayer(merged, {
    clock,
    random: fixedRandom(0.5),
    events: { emit: (event) => events.push(event) },
    budget: new RetryBudget(merged.budget),
    ...deps,
  });
  return { clock, events, layer };
}

type Settled = { response: UpstreamResponse; error?: undefined } | { error: unknown; response?: undefined };

/** Starts the request and lets time run on the fake clock until it settles or `ms` pass. */
async function run(handler: Handler, request: ProxyRequest, clock: FakeClock, ms = 2_000): Promise<Settled> {
  const settled = call(handler, request).then(
    (answer): Settled => ({ response: answer }),
    (error: unknown): Settled => ({ error }),
  );
  // Let stream events (body buffering) run before the fake clock moves.
  await new Promise((resolve) => setImmediate(resolve));
  await clock.advanceAsync(ms, 10);
  return settled;
}

/** A client upload that arrives in `chunks`, with or without a Content-Length. */
function upload(chunks: Buffer[], declareLength: boolean): { body: Readable; headers: string[] } {
  const length = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
  return {
    body: Readable.from(chunks, { objectMode: false }),
    headers: declareLength ? ['host', 'test', 'content-length', String(length)] : ['host', 'test'],
  };
}

async function readAll(body: ProxyRequest['body']): Promise<Buffer> {
  if (body === null) return Buffer.alloc(0);
  if (Buffer.isBuffer(body)) return body;
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const giveUps = (events: PolicyEvent[]) => events.filter((event) => event.type === 'retry-give-up');
const retries = (events: PolicyEvent[]) => events.filter((event) => event.type === 'retry');

describe('retry layer: retrying', () => {
  it('retries until the upstream succeeds, discarding the failed responses', async () => {
    const { clock, events, layer } = setup();
    const upstream = scripted(503, 'reset', 200);
    const request = proxyRequest();
    const result = await run(layer(upstream), request, clock);
    expect(result.response?.status).toBe(200);
    expect(upstream.calls).toHaveLength(3);
    expect(request.attempts).toBe(3);
    expect(upstream.responses[0]!.discarded).toBe(true);
    expect(upstream.responses[1]!.discarded).toBe(false);
    expect(events).toEqual([
      { type: 'retry', route: 'test-route', upstream: 'test-upstream', attempt: 2, delayMs: 100, trigger: 'status' },
      { type: 'retry', route: 'test-route', upstream: 'test-upstream', attempt: 3, delayMs: 100, trigger: 'reset' },
    ]);
  });

  it('waits the backoff between attempts', async () => {
    const { clock, layer } = setup({ backoff: { type: 'exponential', baseMs: 100, maxMs: 1_000, jitter: 'none' } });
    const upstream = scripted(503, 503, 200);
    const pending = call(layer(upstream), proxyRequest());
    await clock.advanceAsync(99);
    expect(upstream.calls).toHaveLength(1);
    await clock.advanceAsync(1);
    expect(upstream.calls).toHaveLength(2);
    // The second retry waits twice as long.
    await clock.advanceAsync(199);
    expect(upstream.calls).toHaveLength(2);
    await clock.advanceAsync(1);
    expect((await pending).status).toBe(200);
  });

  it('feeds decorrelated jitter its previous delay', async () => {
    const { clock, events, layer } = setup({
      maxAttempts: 4,
      backoff: { type: 'exponential', baseMs: 100, maxMs: 10_000, jitter: 'decorrelated' },
    });
    await run(layer(scripted(503)), proxyRequest(), clock, 5_000);
    // random() = 0.5: 100 + (3×100 − 100)/2, then 100 + (3×200 − 100)/2, then 100 + (3×350 − 100)/2.
    expect(retries(events).map((event) => event.delayMs)).toEqual([200, 350, 575]);
  });

  it('retries at once on an endpoint the request has not tried, and backs off only when it returns to one', async () => {
    // Two endpoints: the first retry goes to the one not tried yet, later ones return.
    const { clock, events, layer } = setup(
      { maxAttempts: 4, backoff: { type: 'exponential', baseMs: 100, maxMs: 1_000, jitter: 'none' } },
      { untried: (request) => request.attempts < 2 },
    );
    const upstream = scripted(503, 503, 503, 200);
    const pending = call(layer(upstream), proxyRequest());
    await clock.advanceAsync(0);
    expect(upstream.calls).toHaveLength(2);
    // The first return waits the backoff's base, not the second retry's doubled delay.
    await clock.advanceAsync(99);
    expect(upstream.calls).toHaveLength(2);
    await clock.advanceAsync(1);
    expect(upstream.calls).toHaveLength(3);
    await clock.advanceAsync(200);
    expect((await pending).status).toBe(200);
    expect(retries(events).map((event) => event.delayMs)).toEqual([0, 100, 200]);
  });

  it('waits what Retry-After asks for even on an endpoint not tried yet', async () => {
    const { clock, events, layer } = setup({}, { untried: () => true });
    const upstream = scripted(() => Promise.resolve(response(503, { 'retry-after': '1' })), 200);
    const result = await run(layer(upstream), proxyRequest(), clock, 3_000);
    expect(result.response?.status).toBe(200);
    expect(retries(events).map((event) => event.delayMs)).toEqual([1_000]);
  });

  it('retries at once with backoff none', async () => {
    const { clock, layer } = setup({ backoff: { type: 'none', baseMs: 0, maxMs: 0, jitter: 'none' } });
    const upstream = scripted('reset', 200);
    const pending = call(layer(upstream), proxyRequest());
    await clock.advanceAsync(0);
    expect((await pending).status).toBe(200);
    expect(upstream.calls).toHaveLength(2);
  });

  it('passes a response that is not retried straight through', async () => {
    const { clock, events, layer } = setup();
    const upstream = scripted(404);
    const result = await run(layer(upstream), proxyRequest(), clock);
    expect(result.response?.status).toBe(404);
    expect(upstream.responses[0]!.discarded).toBe(false);
    expect(upstream.calls).toHaveLength(1);
    expect(events).toEqual([]);
  });
  it('passes a 5xx that retryOn does not list straight through', async () => {
    const { clock, events, layer } = setup();
    const upstream = scripted(500);
    const result = await run(layer(upstream), proxyRequest(), clock);
    expect(result.response?.status).toBe(500);
    expect(upstream.responses[0]!.discarded).toBe(false);
    expect(upstream.calls).toHaveLength(1);
    expect(events).toEqual([]);
  });
});

describe('retry layer: giving up', () => {
  it('passes the last upstream response through once attempts are exhausted', async () => {
    const { clock, events, layer } = setup();
    const upstream = scripted(503);
    const result = await run(layer(upstream), proxyRequest(), clock);
    expect(result.response?.status).toBe(503);
    expect(upstream.calls).toHaveLength(3);
    expect(upstream.responses[2]!.discarded).toBe(false);
    expect(giveUps(events)).toEqual([{ type: 'retry-give-up', route: 'test-route', upstream: 'test-upstream', reason: 'attempts' }]);
  });

  it('rethrows the last attempt failure: a per-try timeout on the last try is a 504 timeout', async () => {
    const { clock, layer } = setup();
    const upstream = scripted('reset', 'timeout', 'timeout');
    const result = await run(layer(upstream), proxyRequest(), clock);
    expect(result.error).toBeInstanceOf(ProxyError);
    expect(result.error).toMatchObject({ reason: 'timeout', status: 504 });
    expect(upstream.calls).toHaveLength(3);
  });

  it('never retries an error that is not an attempt failure', async () => {
    const errors = ['circuit_open', 'bulkhead_full', 'deadline_exceeded', 'fault_injected'] as const;
    for (const reason of errors) {
      const { clock, events, layer } = setup();
      const upstream = scripted(new ProxyError(reason));
      const result = await run(layer(upstream), proxyRequest(), clock);
      expect(result.error).toMatchObject({ reason });
      expect(upstream.calls).toHaveLength(1);
      expect(events).toEqual([]);
    }
  });

  it('rethrows errors that are not ProxyErrors', async () => {
    const { clock, layer } = setup();
    const bug = new TypeError('bug');
    const upstream = scripted(() => Promise.reject(bug));
    expect((await run(layer(upstream), proxyRequest(), clock)).error).toBe(bug);
    expect(upstream.calls).toHaveLength(1);
  });

  it('does not retry while the breaker is open', async () => {
    const asked: number[] = [];
    const { clock, events, layer } = setup({}, { breakerOpen: (now) => (asked.push(now), true) });
    const upstream = scripted(503);
    const result = await run(layer(upstream), proxyRequest(), clock);
    expect(result.response?.status).toBe(503);
    expect(upstream.calls).toHaveLength(1);
    expect(asked).toEqual([1_000]);
    expect(giveUps(events)).toMatchObject([{ reason: 'breaker' }]);
  });

  it('retries once the breaker is no longer open', async () => {
    let open = true;
    const { clock, layer } = setup({}, { breakerOpen: () => open });
    const upstream = scripted(503, 503, 200);
    expect((await run(layer(upstream), proxyRequest(), clock)).response?.status).toBe(503);
    open = false;
    expect((await run(layer(upstream), proxyRequest(), clock)).response?.status).toBe(200);
    expect(upstream.calls).toHaveLength(3);
  });

  it('does not retry when the budget is spent', async () => {
    const { clock, events, layer } = setup({ budget: { ratio: 0, minPerSecond: 0, windowMs: 10_000 } });
    const upstream = scripted('reset');
    const result = await run(layer(upstream), proxyRequest(), clock);
    expect(result.error).toMatchObject({ reason: 'upstream_unavailable', attemptFailure: 'reset' });
    expect(upstream.calls).toHaveLength(1);
    expect(giveUps(events)).toMatchObject([{ reason: 'budget' }]);
  });

  it('shares one budget between requests to the same upstream', async () => {
    // A floor of one retry per window, and no ratio.
    const { clock, events, layer } = setup({ budget: { ratio: 0, minPerSecond: 0.1, windowMs: 10_000 } });
    const upstream = scripted(503);
    const handler = layer(upstream);
    await run(handler, proxyRequest(), clock);
    await run(handler, proxyRequest(), clock);
    expect(upstream.calls).toHaveLength(3);
    expect(giveUps(events).map((event) => event.reason)).toEqual(['budget', 'budget']);
  });

  it('gives up instead of sleeping past the deadline', async () => {
    const { clock, events, layer } = setup({ backoff: { type: 'fixed', baseMs: 150, maxMs: 150, jitter: 'none' } });
    const upstream = scripted(503);
    // 100ms left after the first attempt: a 150ms backoff does not fit.
    const request = proxyRequest({ deadlineAt: 1_100 });
    const pending = call(layer(upstream), request);
    await clock.advanceAsync(0);
    expect((await pending).status).toBe(503);
    expect(clock.pending).toBe(0);
    expect(upstream.calls).toHaveLength(1);
    expect(giveUps(events)).toMatchObject([{ reason: 'deadline' }]);
  });

  it('gives up when the backoff would use up the deadline, leaving no time for the attempt', async () => {
    const { clock, events, layer } = setup();
    const result = await run(layer(scripted(503)), proxyRequest({ deadlineAt: 1_100 }), clock);
    expect(result.response?.status).toBe(503);
    expect(giveUps(events)).toMatchObject([{ reason: 'deadline' }]);
  });

  it('does not retry a POST without Idempotency-Key after it left', async () => {
    const { clock, events, layer } = setup();
    const upstream = scripted(503);
    const result = await run(layer(upstream), proxyRequest({ method: 'POST' }), clock);
    expect(result.response?.status).toBe(503);
    expect(upstream.calls).toHaveLength(1);
    expect(giveUps(events)).toMatchObject([{ reason: 'method' }]);
  });

  it('retries a POST without Idempotency-Key on connect-failure', async () => {
    const { clock, layer } = setup();
    const upstream = scripted('connect-failure', 200);
    const result = await run(layer(upstream), proxyRequest({ method: 'POST' }), clock);
    expect(result.response?.status).toBe(200);
    expect(upstream.calls).toHaveLength(2);
  });
});

describe('retry layer: Retry-After', () => {
  it('waits what Retry-After asks for instead of the backoff', async () => {
    const { clock, events, layer } = setup({ retryOn: [429] });
    const upstream = scripted(() => Promise.resolve(response(429, { 'retry-after': '2' })), 200);
    const pending = call(layer(upstream), proxyRequest());
    await clock.advanceAsync(1_999, 10);
    expect(upstream.calls).toHaveLength(1);
    await clock.advanceAsync(1);
    expect((await pending).status).toBe(200);
    expect(retries(events)).toMatchObject([{ delayMs: 2_000, trigger: 'status' }]);
  });

  it('does not retry when Retry-After asks for more than the deadline leaves', async () => {
    const { clock, events, layer } = setup();
    const upstream = scripted(() => Promise.resolve(response(503, { 'retry-after': '30' })), 200);
    const result = await run(layer(upstream), proxyRequest(), clock);
    expect(result.response?.status).toBe(503);
    expect(upstream.calls).toHaveLength(1);
    expect(giveUps(events)).toMatchObject([{ reason: 'retry-after' }]);
  });
});

describe('retry layer: aborts', () => {
  it('stops at once when the request is aborted during the backoff', async () => {
    const { clock, events, layer } = setup({ backoff: { type: 'fixed', baseMs: 1_000, maxMs: 1_000, jitter: 'none' } });
    const upstream = scripted(503);
    const request = proxyRequest();
    const settled = call(layer(upstream), request).then(
      () => 'answered',
      (error: unknown) => error,
    );
    await clock.advanceAsync(10);
    expect(retries(events)).toHaveLength(1);
    const routeTimeout = new ProxyError('timeout', { attemptFailure: 'timeout' });
    abortRequest(request, routeTimeout);
    // No time passes: the wait ends with the abort.
    expect(await settled).toBe(routeTimeout);
    expect(clock.pending).toBe(0);
    expect(upstream.calls).toHaveLength(1);
    expect(abortListeners(request)).toBe(0);
  });

  it('does not retry an attempt cut short by the route timeout', async () => {
    const { clock, events, layer } = setup();
    const upstream = hanging();
    const request = proxyRequest();
    const settled = call(layer(upstream), request).catch((error: unknown) => error);
    await clock.advanceAsync(10);
    const routeTimeout = new ProxyError('timeout', { attemptFailure: 'timeout' });
    abortRequest(request, routeTimeout);
    expect(await settled).toBe(routeTimeout);
    expect(upstream.calls).toHaveLength(1);
    expect(events).toEqual([]);
  });

  it('makes no attempt for a request aborted before it reached the layer', async () => {
    const { clock, layer } = setup();
    const upstream = scripted(200);
    const request = proxyRequest({ ...upload([Buffer.from('x')], true), method: 'PUT' });
    const gone = new ProxyError('upstream_unavailable', { message: 'the client closed the connection' });
    abortRequest(request, gone);
    expect((await run(layer(upstream), request, clock)).error).toBe(gone);
    expect(upstream.calls).toHaveLength(0);
  });
});

describe('retry layer: request bodies', () => {
  it('replays the same bytes on every attempt of a POST with Idempotency-Key', async () => {
    const { clock, layer } = setup();
    const chunks = [Buffer.from('{"amount":'), Buffer.from('42,"currency":'), Buffer.from('"EUR"}')];
    const { body, headers } = upload(chunks, false);
    const request = proxyRequest({ method: 'POST', body, headers: [...headers, 'Idempotency-Key', 'charge-7'] });
    const received: Buffer[] = [];
    const step = async (status: number) => {
      received.push(await readAll(request.body));
      return response(status);
    };
    const upstream = scripted(
      () => step(503),
      () => step(502),
      () => step(201),
    );
    const result = await run(layer(upstream), request, clock);
    expect(result.response?.status).toBe(201);
    expect(received).toHaveLength(3);
    for (const bytes of received) expect(bytes.equals(Buffer.concat(chunks))).toBe(true);
  });

  it('buffers a body of exactly bufferLimit bytes', async () => {
    const { clock, layer } = setup({ bufferLimitBytes: 8 });
    const request = proxyRequest({ method: 'PUT', ...upload([Buffer.from('1234'), Buffer.from('5678')], true) });
    const upstream = scripted(503, 200);
    expect((await run(layer(upstream), request, clock)).response?.status).toBe(200);
    expect(upstream.calls).toHaveLength(2);
    expect(request.body).toEqual(Buffer.from('12345678'));
  });

  it('streams a chunked body above bufferLimit through once, whole, and does not retry it', async () => {
    const { clock, events, layer } = setup({ bufferLimitBytes: 10 });
    const chunks = [Buffer.from('aaaaaa'), Buffer.from('bbbbbb'), Buffer.from('cccccc')];
    const request = proxyRequest({ method: 'PUT', ...upload(chunks, false) });
    let arrived: Buffer = Buffer.alloc(0);
    const upstream = scripted(async () => {
      arrived = await readAll(request.body);
      return response(503);
    });
    const result = await run(layer(upstream), request, clock);
    expect(result.response?.status).toBe(503);
    expect(upstream.calls).toHaveLength(1);
    expect(arrived.toString()).toBe('aaaaaabbbbbbcccccc');
    expect(giveUps(events)).toMatchObject([{ reason: 'body' }]);
  });

  it('does not read ahead a body whose Content-Length is above bufferLimit', async () => {
    const { clock, events, layer } = setup({ bufferLimitBytes: 4 });
    const { body, headers } = upload([Buffer.from('0123456789')], true);
    const request = proxyRequest({ method: 'PUT', body, headers });
    let sent: ProxyRequest['body'] = null;
    const upstream = scripted(() => {
      sent = request.body;
      return Promise.resolve(response(503));
    });
    await run(layer(upstream), request, clock);
    expect(sent).toBe(body);
    expect(upstream.calls).toHaveLength(1);
    expect(giveUps(events)).toMatchObject([{ reason: 'body' }]);
  });

  it('reports no give-up for a large body whose attempt succeeded', async () => {
    const { clock, events, layer } = setup({ bufferLimitBytes: 4 });
    const request = proxyRequest({ method: 'PUT', ...upload([Buffer.from('0123456789')], true) });
    await run(layer(scripted(200)), request, clock);
    expect(events).toEqual([]);
  });

  it('fails the request when the body fails while it is read', async () => {
    const { clock, layer } = setup();
    const tooLarge = new ProxyError('payload_too_large');
    const broken = new Readable({
      read() {
        this.destroy(tooLarge);
      },
    });
    const upstream = scripted(200);
    const result = await run(layer(upstream), proxyRequest({ method: 'PUT', body: broken }), clock);
    expect(result.error).toBe(tooLarge);
    expect(upstream.calls).toHaveLength(0);
  });

  it('answers 400 when the client body breaks off for another reason', async () => {
    const { clock, layer } = setup();
    const broken = new Readable({
      read() {
        this.destroy(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }));
      },
    });
    const result = await run(layer(scripted(200)), proxyRequest({ method: 'PUT', body: broken }), clock);
    expect(result.error).toMatchObject({ reason: 'bad_request', status: 400 });
  });

  it('stops waiting for a body that never ends when the request is aborted', async () => {
    const { clock, layer } = setup();
    const stalled = new Readable({ read() {} });
    stalled.push(Buffer.from('partial'));
    const request = proxyRequest({ method: 'PUT', body: stalled });
    const upstream = scripted(200);
    const settled = call(layer(upstream), request).catch((error: unknown) => error);
    await new Promise((resolve) => setImmediate(resolve));
    const routeTimeout = new ProxyError('timeout', { attemptFailure: 'timeout' });
    abortRequest(request, routeTimeout);
    expect(await settled).toBe(routeTimeout);
    expect(upstream.calls).toHaveLength(0);
    expect(abortListeners(request)).toBe(0);
    // The abandoned body's late errors do not escape.
    stalled.destroy(new Error('client reset'));
    await new Promise((resolve) => setImmediate(resolve));
    expect(clock.pending).toBe(0);
  });
});
