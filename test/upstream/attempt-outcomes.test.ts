// What outlier detection and the latency estimate are told of an attempt, through the real
// forwarding handler and a real upstream on loopback: a failure or a timeout counts against the
// endpoint; an attempt cancelled by its caller (a hedge that lost, a client that left) counts
// as no failure, and only as a floor of the endpoint's latency.

import type { ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import type { UpstreamConfig } from '../../src/config/types.ts';
import { Scope } from '../../src/exchange/cancel.ts';
import { ProxyError } from '../../src/exchange/errors.ts';
import type { PolicyEvent } from '../../src/exchange/events.ts';
import { seededRandom } from '../../src/runtime/random.ts';
import { PeakEwma } from '../../src/upstream/ewma.ts';
import { forwardTo } from '../../src/upstream/forward.ts';
import { Upstream } from '../../src/upstream/upstream.ts';
import { FakeClock } from '../support/fake-clock.ts';
import { proxyRequest, scopeOf } from '../support/handlers.ts';
import { startUpstream, type UpstreamServer } from '../support/upstream-server.ts';
import { waitFor } from '../support/wait.ts';

let servers: UpstreamServer[] = [];
let target: Upstream | undefined;

afterEach(async () => {
  await target?.destroy();
  await Promise.all(servers.map((server) => server.close()));
  servers = [];
  target = undefined;
});

async function setUp(clock: FakeClock, events: PolicyEvent[]) {
  const held: ServerResponse[] = [];
  servers = await Promise.all([startUpstream((_req, res) => held.push(res)), startUpstream((_req, res) => held.push(res))]);
  const config: UpstreamConfig = {
    name: 'catalog',
    endpoints: servers.map((server) => server.origin),
    loadBalancing: 'round-robin',
    connectTimeoutMs: 1_000,
    idleTimeoutMs: 60_000,
    // One failure ejects: any outcome that counts shows at once.
    outlierDetection: {
      consecutiveFailures: 1,
      baseEjectionTimeMs: 30_000,
      maxEjectionTimeMs: 300_000,
      maxEjectionPercent: 50,
      failOn: ['5xx', 'connect-failure', 'reset', 'timeout'],
    },
  };
  target = new Upstream(config, { random: seededRandom(1), clock, events: { emit: (event) => events.push(event) } });
  const handler = forwardTo(target, { clock, observe: () => undefined, deadlineHeader: 'x-request-timeout-ms' });
  return { held, handler, upstream: target };
}

const ejections = (events: readonly PolicyEvent[]) => events.filter((event) => event.type === 'endpoint-ejected');

describe('an attempt as outlier detection sees it', () => {
  it('counts no failure for an attempt its caller cancelled, and takes the time it waited as a floor of its latency', async () => {
    const clock = new FakeClock(1_000);
    const events: PolicyEvent[] = [];
    const { held, handler, upstream } = await setUp(clock, events);
    const request = proxyRequest({ upstream: 'catalog', headers: ['host', 'catalog'], deadlineAt: 31_000 });
    const scope = new Scope(scopeOf(request));
    const attempt = handler(request, scope).catch((error: unknown) => error);
    await waitFor('the attempt to reach the upstream', () => held.length === 1);
    clock.advance(400);

    // Another attempt won: this one is called off, with no attempt failure.
    const lost = new ProxyError('upstream_unavailable', { message: 'another attempt answered first' });
    scope.cancel(lost);

    expect(await attempt).toBe(lost);
    expect(ejections(events)).toEqual([]);
    // 400 ms without an answer, above the 30 ms the estimate started from: it is at least that slow.
    expect(upstream.endpoints[0]!.latency.estimate(clock.now())).toBe(400);
  });

  it('leaves the latency estimate alone for an attempt cancelled sooner than the endpoint usually answers', async () => {
    const clock = new FakeClock(1_000);
    const events: PolicyEvent[] = [];
    const { held, handler, upstream } = await setUp(clock, events);
    const request = proxyRequest({ upstream: 'catalog', headers: ['host', 'catalog'], deadlineAt: 31_000 });
    const scope = new Scope(scopeOf(request));
    const attempt = handler(request, scope).catch((error: unknown) => error);
    await waitFor('the attempt to reach the upstream', () => held.length === 1);
    clock.advance(5);

    // A hedge that lost 5 ms after it went out says nothing of an endpoint estimated at 30 ms.
    scope.cancel(new ProxyError('upstream_unavailable', { message: 'another attempt answered first' }));
    await attempt;

    expect(upstream.endpoints[0]!.latency.estimate(clock.now())).toBe(new PeakEwma(1_000).estimate(clock.now()));
  });

  it('counts a timed-out attempt as a failure, at the time it waited', async () => {
    const clock = new FakeClock(1_000);
    const events: PolicyEvent[] = [];
    const { held, handler, upstream } = await setUp(clock, events);
    const request = proxyRequest({ upstream: 'catalog', headers: ['host', 'catalog'], deadlineAt: 31_000 });
    const scope = new Scope(scopeOf(request));
    const attempt = handler(request, scope).catch((error: unknown) => error);
    await waitFor('the attempt to reach the upstream', () => held.length === 1);
    clock.advance(400);

    scope.cancel(new ProxyError('timeout', { attemptFailure: 'timeout' }));
    await attempt;

    expect(ejections(events)).toEqual([expect.objectContaining({ endpoint: servers[0]!.origin, reason: 'consecutive' })]);
    expect(upstream.endpoints[0]!.latency.estimate(clock.now())).toBe(400);
    // The next attempt goes to the other endpoint.
    expect(upstream.pick([]).origin).toBe(servers[1]!.origin);
  });

  it('counts a 5xx response as a failure, and not as a latency: a quick refusal is no sign of a fast endpoint', async () => {
    const clock = new FakeClock(1_000);
    const events: PolicyEvent[] = [];
    const { held, handler, upstream } = await setUp(clock, events);
    const request = proxyRequest({ upstream: 'catalog', headers: ['host', 'catalog'], deadlineAt: 31_000 });
    const attempt = handler(request, scopeOf(request));
    await waitFor('the attempt to reach the upstream', () => held.length === 1);
    clock.advance(120);

    held[0]!.writeHead(503).end();
    const response = await attempt;
    response.body.discard();

    expect(response.status).toBe(503);
    expect(ejections(events)).toHaveLength(1);
    // The estimate is the default, faded by the time gone by: the 503 was no sample.
    expect(upstream.endpoints[0]!.latency.estimate(clock.now())).toBe(new PeakEwma(1_000).estimate(clock.now()));
  });

  it('feeds the time of an answer below 500 to the latency estimate', async () => {
    const clock = new FakeClock(1_000);
    const events: PolicyEvent[] = [];
    const { held, handler, upstream } = await setUp(clock, events);
    const request = proxyRequest({ upstream: 'catalog', headers: ['host', 'catalog'], deadlineAt: 31_000 });
    const attempt = handler(request, scopeOf(request));
    await waitFor('the attempt to reach the upstream', () => held.length === 1);
    clock.advance(120);

    held[0]!.writeHead(404).end();
    const response = await attempt;
    response.body.discard();

    expect(response.status).toBe(404);
    expect(ejections(events)).toEqual([]);
    expect(upstream.endpoints[0]!.latency.estimate(clock.now())).toBe(120);
  });
});
