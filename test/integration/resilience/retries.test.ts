import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { ephemeralAddresses, startBreakwater, type RunningBreakwater } from '../../support/breakwater.ts';
import { startFaultyUpstream, type FaultyUpstream } from '../../support/faulty-upstream.ts';
import { seededRandom } from '../../support/seeded-random.ts';

const requests = 500;
const concurrency = 10;
const budget = { ratio: 0.5, minPerSecond: 1, windowSeconds: 60 };

describe('retries against an upstream with transient failures', () => {
  let upstream: FaultyUpstream;
  let proxy: RunningBreakwater;

  afterEach(async () => {
    await proxy.stop();
    await upstream.close();
  });

  it('turns 30% transient 503s into at least 99% success without exceeding the retry budget', async () => {
    // An upstream that answers 30% of its requests 503, the failing ones drawn from a fixed seed,
    // each after 0 to 3 ms, so concurrent requests finish out of order.
    upstream = await startFaultyUpstream({ seed: 7, failures: 0.3, latencyMs: (seen) => seen.index % 4 });

    // With 30% of attempts failing, a request needs 0.3 + 0.3² + 0.3³ + ... ≈ 0.43 retries on
    // average, so the budget ratio must be above that: the default 0.2 would run dry and let
    // failures through, 0.5 leaves room for unlucky streaks. Five attempts fail together for
    // 0.3⁵ ≈ 0.24% of requests. The budget window outlasts the test, so one window holds it all.
    proxy = await startBreakwater(
      `${ephemeralAddresses}
upstreams:
  flaky: {endpoints: ["${upstream.origin}"]}
routes:
  - name: flaky
    match: {pathPrefix: /}
    upstream: flaky
    retry:
      maxAttempts: 5
      retryOn: [503]
      backoff: {type: exponential, base: 2ms, max: 20ms, jitter: full}
      budget: {ratio: ${budget.ratio}, minPerSecond: ${budget.minPerSecond}, window: ${budget.windowSeconds}s}
`,
      { random: seededRandom(11) },
    );

    // 500 GETs, 10 at a time.
    const statuses: number[] = [];
    let attemptsReported = 0;
    for (let sent = 0; sent < requests; sent += concurrency) {
      const batch = Array.from({ length: concurrency }, async (_, offset) => {
        const response = await request(`${proxy.url()}/items/${sent + offset}`);
        await response.body.dump();
        statuses.push(response.statusCode);
        attemptsReported += Number(response.headers['x-breakwater-attempts']);
      });
      await Promise.all(batch);
    }

    // At least 99% of the callers got their 200; the rest got the upstream's last 503 as it was.
    const succeeded = statuses.filter((status) => status === 200).length;
    expect(statuses).toHaveLength(requests);
    expect(succeeded).toBeGreaterThanOrEqual(requests * 0.99);
    expect(statuses.every((status) => status === 200 || status === 503)).toBe(true);

    // The retries did happen, and every attempt the callers were told about reached the upstream.
    expect(upstream.requests.length).toBeGreaterThan(requests);
    expect(upstream.requests.length).toBe(attemptsReported);

    // The extra load stays within the budget: requests × (1 + ratio) + minPerSecond × window.
    expect(upstream.requests.length).toBeLessThanOrEqual(requests * (1 + budget.ratio) + budget.minPerSecond * budget.windowSeconds);

    // Each retry told the upstream which attempt it was.
    const attemptNumbers = new Set(upstream.requests.map((seen) => seen.headers['x-breakwater-attempt']));
    expect(attemptNumbers.has('2')).toBe(true);
    expect([...attemptNumbers].every((attempt) => ['1', '2', '3', '4', '5'].includes(String(attempt)))).toBe(true);
  });
});

describe('retries across endpoints', () => {
  const upstreams: FaultyUpstream[] = [];
  let proxy: RunningBreakwater | undefined;

  afterEach(async () => {
    await proxy?.stop();
    await Promise.all(upstreams.splice(0).map((upstream) => upstream.close()));
  });

  async function start(endpoints: readonly FaultyUpstream[]): Promise<RunningBreakwater> {
    // A backoff long enough to see: a retry that waited for it takes a second at least.
    return startBreakwater(
      `${ephemeralAddresses}
upstreams:
  pair: {endpoints: [${endpoints.map((upstream) => `"${upstream.origin}"`).join(', ')}], loadBalancing: round-robin}
routes:
  - name: pair
    match: {pathPrefix: /}
    upstream: pair
    timeout: 10s
    retry:
      maxAttempts: 3
      retryOn: [503]
      backoff: {type: fixed, base: 1s, max: 1s, jitter: none}
`,
      { random: seededRandom(3) },
    );
  }

  it('sends the retry to the other endpoint at once, and waits the backoff only to return to one already tried', async () => {
    const broken = await startFaultyUpstream({ failures: 1 });
    const alsoBroken = await startFaultyUpstream({ failures: 1 });
    upstreams.push(broken, alsoBroken);
    proxy = await start([broken, alsoBroken]);

    const startedAt = performance.now();
    const response = await request(`${proxy.url()}/items/1`);
    await response.body.dump();
    const tookMs = performance.now() - startedAt;

    // Three attempts: one on each endpoint without a wait, then one back after the 1 s backoff.
    expect(response.statusCode).toBe(503);
    expect(response.headers['x-breakwater-attempts']).toBe('3');
    expect(broken.requests.length + alsoBroken.requests.length).toBe(3);
    expect(Math.min(broken.requests.length, alsoBroken.requests.length)).toBe(1);
    expect(tookMs).toBeGreaterThanOrEqual(1_000);
    expect(tookMs).toBeLessThan(2_000);
  });

  it('answers from the healthy endpoint without waiting the backoff when the first one fails', async () => {
    const broken = await startFaultyUpstream({ failures: 1 });
    const healthy = await startFaultyUpstream({ failures: 0 });
    upstreams.push(broken, healthy);
    proxy = await start([broken, healthy]);

    // Round robin from the first endpoint: each request starts on the broken endpoint (the
    // healthy one's retry moved the turn back to it) and is retried on the healthy one.
    for (let i = 0; i < 4; i++) {
      const startedAt = performance.now();
      const response = await request(`${proxy.url()}/items/${i}`);
      await response.body.dump();
      expect(response.statusCode).toBe(200);
      expect(performance.now() - startedAt).toBeLessThan(1_000);
    }
    expect(broken.requests.length).toBe(4);
    expect(healthy.requests.length).toBe(4);
  });
});
