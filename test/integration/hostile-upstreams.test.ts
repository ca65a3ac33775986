// Upstreams that misbehave on purpose, over real sockets: responses that are not HTTP or are
// too large get 502 and count against the breaker; responses that trickle, stall or never end
// are ended by the route timeout or the upstream's idleTimeout, and give their bulkhead slot
// back; none of them grows the proxy's memory.

import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ephemeralAddresses, startBreakwater, type RunningBreakwater } from '../support/breakwater.ts';
import { startHostileUpstream, type HostileUpstream } from '../support/hostile-upstream.ts';
import { residentBytes, spawnBreakwater } from '../support/process.ts';

interface Answer {
  readonly status: number;
  readonly reason: string | undefined;
  readonly body: string;
  readonly ms: number;
}

async function get(url: string): Promise<Answer> {
  const started = performance.now();
  const response = await request(url, { signal: AbortSignal.timeout(10_000) });
  const body = await response.body.text();
  const reason = response.headers['x-breakwater-reason'];
  return { status: response.statusCode, reason: typeof reason === 'string' ? reason : undefined, body, ms: performance.now() - started };
}

/** Reads a response's head, then its body to the end or until the proxy cuts it: how much arrived, and whether it was cut. */
async function readToEnd(url: string): Promise<{ status: number; bytes: number; cut: boolean; ms: number }> {
  const started = performance.now();
  const response = await request(url, { signal: AbortSignal.timeout(10_000) });
  let bytes = 0;
  try {
    for await (const chunk of response.body) bytes += (chunk as Buffer).length;
    return { status: response.statusCode, bytes, cut: false, ms: performance.now() - started };
  } catch {
    return { status: response.statusCode, bytes, cut: true, ms: performance.now() - started };
  }
}

const routeTimeoutMs = 600;
/** Long enough that the upstream's idleTimeout (300 ms, checked about twice a second) ends a stalled body first. */
const stallRouteTimeoutMs = 5000;
/** What a loaded 2-core machine may add to a timeout before its effect is seen. */
const marginMs = 1500;

describe('hostile upstreams', () => {
  let upstream: HostileUpstream;
  let proxy: RunningBreakwater;

  beforeAll(async () => {
    upstream = await startHostileUpstream();
    proxy = await startBreakwater(`${ephemeralAddresses}
upstreams:
  invalid:
    endpoints: ["${upstream.origin}"]
    circuitBreaker: {minRequests: 4, failureRate: 0.5, openFor: 1m}
  slow:
    endpoints: ["${upstream.origin}"]
    # one request at a time: a slot held past its request's deadline would refuse the next
    bulkhead: {maxConcurrent: 1}
  stalling:
    endpoints: ["${upstream.origin}"]
    idleTimeout: 300ms
    bulkhead: {maxConcurrent: 1}
  other:
    endpoints: ["${upstream.origin}"]
routes:
  - {name: invalid, match: {pathPrefix: /invalid}, upstream: invalid, timeout: ${routeTimeoutMs}ms}
  - {name: slow, match: {pathPrefix: /slow}, upstream: slow, timeout: ${routeTimeoutMs}ms}
  - {name: other, match: {pathPrefix: /other}, upstream: other, timeout: ${routeTimeoutMs}ms}
  - {name: stalling, match: {pathPrefix: /stalling}, upstream: stalling, timeout: ${stallRouteTimeoutMs}ms}
`);
  });

  afterAll(async () => {
    await proxy.stop();
    await upstream.close();
  });

  it.each([
    ['big-headers', /response headers over limits\.maxResponseHeaderBytes \(65536 bytes\)/],
    ['bad-status', /malformed response: invalid status code/],
    ['not-http', /malformed response/],
    ['continue', /unexpected informational or upgrade response/],
    ['flood-1xx', /more than 64 informational \(1xx\) responses/],
  ])('answers %s with 502 upstream_invalid_response, naming the endpoint and the fault', async (hostility, detail) => {
    const answer = await get(`${proxy.url()}/other/${hostility}`);

    expect(answer.status).toBe(502);
    expect(answer.reason).toBe('upstream_invalid_response');
    expect(JSON.parse(answer.body)).toMatchObject({ error: { reason: 'upstream_invalid_response', route: 'other', upstream: 'other' } });
    expect(JSON.parse(answer.body).error.message).toContain(`${upstream.origin} sent an invalid response: `);
    expect(JSON.parse(answer.body).error.message).toMatch(detail);
  });

  it('passes the final answer on after informational responses, without them', async () => {
    const response = await request(`${proxy.url()}/other/hints`);

    expect(response.statusCode).toBe(200);
    expect(await response.body.text()).toBe('ok');
  });

  it('counts invalid responses as failures: the breaker opens and the upstream is called no more', async () => {
    for (let i = 0; i < 4; i++) expect((await get(`${proxy.url()}/invalid/bad-status`)).status).toBe(502);

    const before = upstream.received()['bad-status'] ?? 0;
    const refused = await get(`${proxy.url()}/invalid/bad-status`);

    expect(refused).toMatchObject({ status: 503, reason: 'circuit_open' });
    expect(upstream.received()['bad-status'] ?? 0).toBe(before);
    const circuits = (await (await request(`${proxy.adminUrl}/circuits`)).body.json()) as { name: string; state: string }[];
    expect(circuits.find((circuit) => circuit.name === 'invalid')?.state).toBe('open');
  });

  it('ends a response head that trickles at the route timeout with 504, and frees the slot', async () => {
    const answer = await get(`${proxy.url()}/slow/trickle-head`);

    expect(answer).toMatchObject({ status: 504, reason: 'timeout' });
    expect(answer.ms).toBeLessThan(routeTimeoutMs + marginMs);
    expect((await get(`${proxy.url()}/slow/ok`)).status).toBe(200);
  });

  it.each([['trickle-body'], ['never-ends'], ['stall-body']])('cuts a %s response at the route timeout and frees the slot at once', async (hostility) => {
    const answer = await readToEnd(`${proxy.url()}/slow/${hostility}`);

    // The head was passed on; the body was cut short, within the route timeout.
    expect(answer.status).toBe(200);
    expect(answer.cut).toBe(true);
    expect(answer.ms).toBeLessThan(routeTimeoutMs + marginMs);
    // The bulkhead's one slot is free again: the next request is served, not refused.
    expect((await get(`${proxy.url()}/slow/ok`)).status).toBe(200);
    await expect.poll(() => proxy.log.accessLines().find((line) => line.path === `/slow/${hostility}`)).toMatchObject({ status: 200, reason: 'timeout' });
  });

  it('cuts a stalled body after the upstream’s idleTimeout, well before the route timeout, and frees the slot', async () => {
    const answer = await readToEnd(`${proxy.url()}/stalling/stall-body`);

    expect(answer).toMatchObject({ status: 200, cut: true, bytes: 'the first part'.length });
    expect(answer.ms).toBeLessThan(stallRouteTimeoutMs - marginMs);
    await expect
      .poll(() => proxy.log.accessLines().find((entry) => entry.path === '/stalling/stall-body'))
      .toMatchObject({ status: 200, reason: 'timeout', detail: expect.stringMatching(/sent no part of the response body for the upstream's idleTimeout/) });
    expect((await get(`${proxy.url()}/stalling/ok`)).status).toBe(200);
  });

  it('leaves no connection to the upstream open once the requests are over', async () => {
    await expect.poll(() => upstream.open(), { timeout: 5000 }).toBe(0);
  });
});

describe('hostile upstreams and the proxy’s memory', () => {
  it('stays bounded through oversized heads, 1xx floods and a body without end that nobody reads', async () => {
    const upstream = await startHostileUpstream();
    const proxy = await spawnBreakwater(`${ephemeralAddresses}
upstreams:
  hostile: {endpoints: ["${upstream.origin}"]}
routes:
  - {name: hostile, match: {pathPrefix: /}, upstream: hostile, timeout: 1s}
`);
    try {
      const url = proxy.url();
      // Warm up, so that what is measured is growth, not start-up.
      for (let i = 0; i < 20; i++) await get(`${url}/ok`);
      const before = await residentBytes(proxy.pid);

      for (let i = 0; i < 50; i++) {
        expect((await get(`${url}/big-headers`)).status).toBe(502);
        expect((await get(`${url}/flood-1xx`)).status).toBe(502);
      }
      // Four bodies without end, none of them read until the route timeout ends them:
      // back-pressure must hold them at the upstream.
      let most = before;
      const sampler = setInterval(() => void residentBytes(proxy.pid).then((bytes) => (most = Math.max(most, bytes))), 50);
      const unread = await Promise.all(Array.from({ length: 4 }, () => request(`${url}/never-ends`)));
      // A client that reads nothing does not see its connection close: the proxy's access log says when it ended them.
      await expect.poll(() => proxy.lines.filter((line) => line.path === '/never-ends').length, { timeout: 10_000 }).toBe(4);
      clearInterval(sampler);
      for (const response of unread) response.body.destroy();

      // The proxy stopped reading each body when its client did: the upstream could hand over
      // no more than the sockets' buffers hold, where a second at loopback speed is gigabytes.
      expect(upstream.endlessBytes()).toBeLessThan(4 * 64 * 1024 * 1024);
      // Growth of a few buffers is fine; holding the streams would be hundreds of megabytes.
      expect(most - before).toBeLessThan(48 * 1024 * 1024);
    } finally {
      proxy.kill();
      await proxy.exited;
      await upstream.close();
    }
  });
});
