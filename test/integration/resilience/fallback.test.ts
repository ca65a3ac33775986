import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { ephemeralAddresses, startBreakwater, type RunningBreakwater } from '../../support/breakwater.ts';
import { startFaultyUpstream, type FaultyUpstream } from '../../support/faulty-upstream.ts';

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

describe('fallbacks through an upstream outage', () => {
  let primary: FaultyUpstream;
  let recovery: FaultyUpstream;
  let proxy: RunningBreakwater;

  afterEach(async () => {
    await Promise.all([primary.close(), recovery.close()]);
    await proxy.stop();
  });

  async function get(path: string): Promise<Answer> {
    const response = await request(`${proxy.url()}${path}`);
    return { status: response.statusCode, headers: response.headers, body: await response.body.text() };
  }

  it('answers from the stale cache, then a failover upstream or a static reply, else the original error', async () => {
    primary = await startFaultyUpstream();
    recovery = await startFaultyUpstream();
    // Three routes to the same upstream, each with its own chain:
    //   /catalog  stale cache, then a static empty list
    //   /profile  stale cache only
    //   /orders   a failover to the recovery upstream
    proxy = await startBreakwater(`${ephemeralAddresses}
upstreams:
  primary: {endpoints: ["${primary.origin}"]}
  recovery: {endpoints: ["${recovery.origin}"]}
routes:
  - name: catalog
    match: {pathPrefix: /catalog}
    upstream: primary
    fallback:
      on: [upstream-unavailable, 5xx]
      chain:
        - staleCache: {maxAge: 5m}
        - response: {status: 200, headers: {content-type: application/json}, body: '{"items":[]}'}
  - name: profile
    match: {pathPrefix: /profile}
    upstream: primary
    fallback:
      on: [upstream-unavailable]
      chain:
        - staleCache: {maxAge: 5m}
  - name: orders
    match: {pathPrefix: /orders}
    upstream: primary
    fallback:
      on: [upstream-unavailable]
      chain:
        - upstream: recovery
`);

    // While the upstream is healthy, GETs are answered by it and fill the caches. Each of its
    // answers names the request it answered, so a cached copy is told apart from a fresh one.
    const warm = new Map<string, string>();
    for (const path of ['/catalog/shoes', '/catalog/hats', '/profile/ada']) {
      const answer = await get(path);
      expect(answer.status).toBe(200);
      expect(answer.headers['x-breakwater-fallback']).toBeUndefined();
      warm.set(path, answer.body);
    }
    const answeredBeforeOutage = primary.requests.length;

    // The upstream goes down.
    await primary.outage();

    // The same GETs are answered from the cache: the stored bodies, marked stale, with an Age.
    for (const [path, body] of warm) {
      const answer = await get(path);
      expect(answer.status, path).toBe(200);
      expect(answer.headers['x-breakwater-fallback'], path).toBe('stale');
      expect(answer.headers.age, path).toMatch(/^\d+$/);
      expect(answer.body, path).toBe(body);
    }

    // A URL never cached falls to the next step: the static reply.
    const uncached = await get('/catalog/gloves');
    expect(uncached.status).toBe(200);
    expect(uncached.headers['x-breakwater-fallback']).toBe('static');
    expect(uncached.headers['content-type']).toBe('application/json');
    expect(JSON.parse(uncached.body)).toEqual({ items: [] });

    // With no step after the cache, an uncached URL gets the original error.
    const unserved = await get('/profile/grace');
    expect(unserved.status).toBe(503);
    expect(unserved.headers['x-breakwater-reason']).toBe('upstream_unavailable');
    expect(unserved.headers['x-breakwater-fallback']).toBeUndefined();
    expect(JSON.parse(unserved.body)).toMatchObject({ error: { reason: 'upstream_unavailable', route: 'profile', upstream: 'primary' } });

    // The failover step sends the request to the recovery upstream, which answers it.
    const failedOver = await get('/orders/42');
    expect(failedOver.status).toBe(200);
    expect(failedOver.headers['x-breakwater-fallback']).toBe('upstream');
    expect(recovery.requests.map((seen) => seen.url)).toEqual(['/orders/42']);
    expect(JSON.parse(failedOver.body)).toMatchObject({ url: '/orders/42' });

    // None of it reached the primary upstream, and the access log names the fallback that served.
    expect(primary.requests.length).toBe(answeredBeforeOutage);
    // (A request's line is written once its response has closed, so it is waited for.)
    const served = (): unknown[][] =>
      proxy.log
        .accessLines()
        .slice(warm.size)
        .map((line) => [line.path, line.status, line.fallback]);
    await expect.poll(served).toEqual([
      ['/catalog/shoes', 200, 'stale'],
      ['/catalog/hats', 200, 'stale'],
      ['/profile/ada', 200, 'stale'],
      ['/catalog/gloves', 200, 'static'],
      ['/profile/grace', 503, undefined],
      ['/orders/42', 200, 'upstream'],
    ]);
  });
});
