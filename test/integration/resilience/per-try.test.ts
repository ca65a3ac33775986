import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { ephemeralAddresses, startBreakwater, type RunningBreakwater } from '../../support/breakwater.ts';
import { startFaultyUpstream, type FaultyUpstream } from '../../support/faulty-upstream.ts';
import { startUpstream, type UpstreamServer } from '../../support/upstream-server.ts';

const requests = 6;

describe('per-try timeout with one slow endpoint of two', () => {
  let slow: FaultyUpstream;
  let healthy: FaultyUpstream;
  let proxy: RunningBreakwater;

  afterEach(async () => {
    await Promise.all([slow.close(), healthy.close()]);
    await proxy.stop();
  });

  it('cuts the slow attempts short and lands every retry on the healthy endpoint', async () => {
    // One endpoint answers only after 5 s, far beyond the per-try timeout; the other in 5 ms.
    slow = await startFaultyUpstream();
    slow.stall(5000);
    healthy = await startFaultyUpstream({ latencyMs: 5 });

    // Round-robin over both; a timed-out attempt is retried at once, and the retry takes the
    // balancer's next pick, which after the slow endpoint is the healthy one. Sent one after
    // another, the first request goes to the healthy endpoint and every later one starts on the
    // slow endpoint and retries on the healthy one.
    proxy = await startBreakwater(`${ephemeralAddresses}
upstreams:
  catalog:
    endpoints: ["${healthy.origin}", "${slow.origin}"]
    loadBalancing: round-robin
routes:
  - name: catalog
    match: {pathPrefix: /}
    upstream: catalog
    timeout: 10s
    retry:
      maxAttempts: 2
      perTryTimeout: 300ms
      retryOn: [timeout, connect-failure, reset, 503]
      backoff: {type: none}
`);

    // Requests one after another, so each retry directly follows its own timed-out attempt.
    const attemptsById = new Map<string, string>();
    for (let n = 1; n <= requests; n++) {
      const requestId = `catalog-${n}`;
      const response = await request(`${proxy.url()}/items/${n}`, { headers: { 'x-request-id': requestId } });
      await response.body.dump();
      // Every request succeeds.
      expect(response.statusCode).toBe(200);
      attemptsById.set(requestId, String(response.headers['x-breakwater-attempts']));
    }

    // The healthy endpoint answered every request exactly once.
    const answeredByHealthy = healthy.requests.map((seen) => seen.headers['x-request-id']);
    expect(answeredByHealthy.toSorted()).toEqual([...attemptsById.keys()].toSorted());

    // The requests whose first attempt went to the slow endpoint, and only those, took two attempts.
    const stalledIds = new Set(slow.requests.map((seen) => String(seen.headers['x-request-id'])));
    expect(stalledIds.size).toBe(requests - 1);
    expect(slow.requests.every((seen) => seen.headers['x-breakwater-attempt'] === '1')).toBe(true);
    for (const [requestId, attempts] of attemptsById) {
      expect(attempts, requestId).toBe(stalledIds.has(requestId) ? '2' : '1');
    }

    // The slow endpoint's attempts were cut off: nothing is left waiting on it.
    expect(slow.inFlight).toBe(0);

    // The access log tells the same story, request by request. (A request's line is written
    // once its response has closed, so the last one is waited for.)
    await expect.poll(() => proxy.log.accessLines().length).toBe(requests);
    const logged = new Map(proxy.log.accessLines().map((line) => [String(line.requestId), line]));
    for (const [requestId, attempts] of attemptsById) {
      expect(logged.get(requestId), requestId).toMatchObject({ route: 'catalog', status: 200, attempts: Number(attempts) });
    }

    // And the per-try timeouts are counted, one per slow attempt.
    const metrics = await (await request(`${proxy.telemetryUrl}/metrics`)).body.text();
    expect(metrics).toContain(`breakwater_per_try_timeouts_total{route="catalog",upstream="catalog"} ${stalledIds.size}`);
  });
});

describe('per-try timeout when the proxy itself was held up', () => {
  let upstream: UpstreamServer | undefined;
  let proxy: RunningBreakwater | undefined;

  afterEach(async () => {
    await proxy?.stop();
    await upstream?.close();
  });

  it('keeps an answer that arrived while the proxy was busy past the timeout, instead of timing it out', async () => {
    // The upstream answers at once, then holds the whole process (Breakwater runs in it too)
    // for 150 ms, as a long garbage collection or a starved CPU would: the 50 ms per-try
    // timeout falls due while the answer already waits in Breakwater's socket.
    upstream = await startUpstream((_req, res) => {
      res.writeHead(200, { 'content-length': '2' }).end('ok');
      const until = performance.now() + 150;
      while (performance.now() < until) {
        // busy: no event loop turn until the pause is over
      }
    });
    proxy = await startBreakwater(`${ephemeralAddresses}
upstreams:
  catalog: {endpoints: ["${upstream.origin}"]}
routes:
  - name: catalog
    match: {pathPrefix: /}
    upstream: catalog
    timeout: 5s
    retry: {maxAttempts: 1, perTryTimeout: 50ms}
`);

    for (let n = 0; n < 3; n++) {
      const response = await request(`${proxy.url()}/items/${n}`);
      expect(await response.body.text()).toBe('ok');
      expect(response.statusCode).toBe(200);
    }
    const metrics = await (await request(`${proxy.telemetryUrl}/metrics`)).body.text();
    expect(metrics).not.toContain('breakwater_per_try_timeouts_total{route="catalog"');
  });
});
