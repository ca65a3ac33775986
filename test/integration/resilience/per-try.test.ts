import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { ephemeralAddresses, startBreakwater, type RunningBreakwater } from '../../support/breakwater.ts';
import { startFaultyUpstream, type FaultyUpstream } from '../../support/faulty-upstream.ts';

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
