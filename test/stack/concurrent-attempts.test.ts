// Two attempts of one request in flight at once, as a hedge makes them: each runs in a scope of
// its own under the request's, through the real layers and a real upstream on loopback.
// Cancelling one must end exactly that attempt and give back exactly what it held.
import { getEventListeners } from 'node:events';
import type { ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { Scope } from '../../src/exchange/cancel.ts';
import { ProxyError } from '../../src/exchange/errors.ts';
import type { PolicyEvent } from '../../src/exchange/events.ts';
import { compose } from '../../src/exchange/handler.ts';
import type { AttemptRecord } from '../../src/exchange/record.ts';
import { breakerLayer } from '../../src/policies/breaker/layer.ts';
import { CircuitBreaker } from '../../src/policies/breaker/state.ts';
import { attemptTimeoutLayer } from '../../src/policies/deadline/layer.ts';
import { bulkheadLayer } from '../../src/policies/bulkhead/layer.ts';
import { Bulkhead } from '../../src/policies/bulkhead/limiter.ts';
import { systemRandom } from '../../src/runtime/random.ts';
import { forwardTo } from '../../src/upstream/forward.ts';
import { Upstream } from '../../src/upstream/upstream.ts';
import { breakerConfig } from '../policies/breaker/breaker-config.ts';
import { FakeClock } from '../support/fake-clock.ts';
import { proxyRequest, scopeOf } from '../support/handlers.ts';
import { memorySink } from '../support/sinks.ts';
import { startUpstream, type UpstreamServer } from '../support/upstream-server.ts';

const listeners = (signal: AbortSignal): number => getEventListeners(signal, 'abort').length;

let server: UpstreamServer | undefined;
let target: Upstream | undefined;

afterEach(async () => {
  await target?.destroy();
  await server?.close();
  target = undefined;
  server = undefined;
});

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setImmediate(resolve));
}

describe('two attempts of one request in flight', () => {
  it('cancels one alone: its connection is aborted, and its slot, probe, timer and listeners are given back', async () => {
    // The upstream holds every request until the test answers it, by attempt number.
    const held = new Map<string, { res: ServerResponse; closed: boolean }>();
    server = await startUpstream((req, res) => {
      const entry = { res, closed: false };
      res.on('close', () => (entry.closed = true));
      held.set(String(req.headers['x-breakwater-attempt']), entry);
    });
    target = new Upstream(
      { name: 'catalog', endpoints: [server.origin], loadBalancing: 'round-robin', connectTimeoutMs: 1_000, idleTimeoutMs: 60_000 },
      systemRandom,
    );

    const clock = new FakeClock(1_000);
    const events: PolicyEvent[] = [];
    const emit = { emit: (event: PolicyEvent) => events.push(event) };
    const attempts: AttemptRecord[] = [];
    const bulkhead = new Bulkhead({ maxConcurrent: 4, maxQueued: 0 });
    const breaker = new CircuitBreaker({ name: 'catalog', upstream: 'catalog', config: breakerConfig() });
    const handler = compose(
      [
        bulkheadLayer(bulkhead, { clock, events: emit, queueTimeoutMs: 100 }),
        breakerLayer(breaker, { clock, events: emit }),
        attemptTimeoutLayer(10_000, { clock, events: emit }),
      ],
      forwardTo(target, { clock, observe: (record) => attempts.push(record), deadlineHeader: 'x-request-timeout-ms' }),
    );

    const request = proxyRequest({ upstream: 'catalog', path: '/search', headers: ['host', 'catalog'], deadlineAt: 31_000 });
    const scope = scopeOf(request);
    const loserScope = new Scope(scope);
    const winnerScope = new Scope(scope);
    const loser = handler(request, loserScope).catch((error: unknown) => error);
    const winner = handler(request, winnerScope);
    await until(() => held.size === 2);
    expect(bulkhead.snapshot().inFlight).toBe(2);
    expect(target.endpoints[0]!.inFlight).toBe(2);
    // Both attempts' per-try timeouts wait on the layer's one timer.
    expect(clock.pending).toBe(1);

    // The first attempt loses: only it is cancelled.
    const lost = new ProxyError('upstream_unavailable', { message: 'another attempt answered first' });
    loserScope.cancel(lost);
    expect(await loser).toBe(lost);
    await until(() => held.get('1')!.closed);
    expect(held.get('2')!.closed).toBe(false);
    expect(bulkhead.snapshot().inFlight).toBe(1);
    expect(target.endpoints[0]!.inFlight).toBe(1);
    // The winner's timeout still waits; the loser's is given back (no timer is left once the winner ends, below).
    expect(clock.pending).toBe(1);
    expect(listeners(loserScope.signal)).toBe(0);
    expect(scope.signal.aborted).toBe(false);

    // The second answers, and its body streams to the client.
    held.get('2')!.res.writeHead(200, { 'content-type': 'text/plain' }).end('found');
    const answer = await winner;
    expect(answer.status).toBe(200);
    const client = memorySink();
    await answer.body.pipeTo(client.sink);
    winnerScope.release();
    expect(client.text()).toBe('found');

    // Nothing is left held: no slot, no place on the endpoint, no timer, no listener.
    expect(bulkhead.snapshot()).toMatchObject({ inFlight: 0, queued: 0 });
    expect(target.endpoints[0]!.inFlight).toBe(0);
    expect(clock.pending).toBe(0);
    expect(listeners(winnerScope.signal)).toBe(0);
    expect(listeners(scope.signal)).toBe(0);
    // The cancelled attempt is no failure of the upstream's: the breaker counted the winner only.
    expect(breaker.rates(clock.now())).toMatchObject({ calls: 1, failures: 0 });
    expect(attempts.map((attempt) => attempt.outcome)).toContainEqual({ kind: 'response', status: 200 });
    expect(events).toEqual([]);
  });

  it("ends every attempt when the request's own scope ends", async () => {
    const held: ServerResponse[] = [];
    server = await startUpstream((_req, res) => held.push(res));
    target = new Upstream(
      { name: 'catalog', endpoints: [server.origin], loadBalancing: 'round-robin', connectTimeoutMs: 1_000, idleTimeoutMs: 60_000 },
      systemRandom,
    );
    const clock = new FakeClock(1_000);
    const handler = forwardTo(target, { clock, observe: () => undefined, deadlineHeader: 'x-request-timeout-ms' });
    const request = proxyRequest({ upstream: 'catalog', headers: ['host', 'catalog'], deadlineAt: 31_000 });
    const controller = new AbortController();
    const scope = { signal: controller.signal, dueAt: request.deadlineAt };
    const first = handler(request, new Scope(scope)).catch((error: unknown) => error);
    const second = handler(request, new Scope(scope)).catch((error: unknown) => error);
    await until(() => held.length === 2);

    const timeout = new ProxyError('timeout', { attemptFailure: 'timeout' });
    controller.abort(timeout);
    expect(await first).toBe(timeout);
    expect(await second).toBe(timeout);
    expect(target.endpoints[0]!.inFlight).toBe(0);
  });
});
