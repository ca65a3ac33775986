import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ephemeralAddresses, startBreakwater, type RunningBreakwater } from '../../support/breakwater.ts';
import { startFaultyUpstream, type FaultyUpstream, type SeenRequest } from '../../support/faulty-upstream.ts';

const backoffMs = 300;
const firstAttemptMs = 100;

describe('deadlines across retries', () => {
  let ledger: FaultyUpstream;
  let proxy: RunningBreakwater;

  beforeEach(async () => {
    ledger = await startFaultyUpstream();
    // Every retry waits a fixed 300 ms first.
    proxy = await startBreakwater(`${ephemeralAddresses}
upstreams:
  ledger: {endpoints: ["${ledger.origin}"]}
routes:
  - name: ledger
    match: {pathPrefix: /}
    upstream: ledger
    timeout: 10s
    retry:
      maxAttempts: 3
      retryOn: [503]
      backoff: {type: fixed, base: ${backoffMs}ms, max: ${backoffMs}ms, jitter: none}
`);
  });

  afterEach(async () => {
    await ledger.close();
    await proxy.stop();
  });

  async function metrics(): Promise<string> {
    return (await request(`${proxy.telemetryUrl}/metrics`)).body.text();
  }

  it("makes no retry that could not finish within the caller's budget", async () => {
    // The upstream fails every request.
    ledger.fail(1);

    // The caller allows 200 ms, less than the backoff before a retry.
    const response = await request(`${proxy.url()}/balance`, { headers: { 'x-request-timeout-ms': '200' } });
    await response.body.dump();

    // One attempt only: its 503 comes back as it was, rather than a retry that would outlive the budget.
    expect(response.statusCode).toBe(503);
    expect(response.headers['x-breakwater-reason']).toBeUndefined();
    expect(response.headers['x-breakwater-attempts']).toBe('1');
    expect(ledger.requests).toHaveLength(1);
    expect(await metrics()).toContain('breakwater_retries_exhausted_total{route="ledger",upstream="ledger",reason="deadline"} 1');
  });

  it('tells the upstream a smaller budget on each retry', async () => {
    // The first attempt of each request fails after 100 ms; the retry succeeds at once.
    const isFirstAttempt = (seen: SeenRequest): boolean => seen.headers['x-breakwater-attempt'] === '1';
    ledger.fail(isFirstAttempt);
    ledger.delay((seen) => (isFirstAttempt(seen) ? firstAttemptMs : 0));

    // The caller allows 3 s: room for the backoff and a second attempt.
    const response = await request(`${proxy.url()}/balance`, { headers: { 'x-request-timeout-ms': '3000' } });
    await response.body.dump();
    expect(response.statusCode).toBe(200);
    expect(response.headers['x-breakwater-attempts']).toBe('2');

    // Each attempt carried what was left of the caller's budget when it left: never more than
    // the caller allowed, and for the retry, less by at least the first attempt's 100 ms and the
    // backoff (less a little, for timers that fire a hair early).
    const announced = ledger.requests.map((seen) => Number(seen.headers['x-request-timeout-ms']));
    expect(ledger.requests.map((seen) => seen.headers['x-breakwater-attempt'])).toEqual(['1', '2']);
    const [first, second] = announced as [number, number];
    expect(first).toBeLessThanOrEqual(3000);
    expect(second).toBeLessThan(first);
    expect(first - second).toBeGreaterThanOrEqual(firstAttemptMs + backoffMs - 10);
  });

  it('answers 504 deadline_exceeded, with no upstream call, when the budget is spent on arrival', async () => {
    // Callers whose budget is already spent, in each header Breakwater accepts.
    const spent = [
      { 'x-request-timeout-ms': '0' },
      { 'grpc-timeout': '0m' },
      { 'x-envoy-expected-rq-timeout-ms': '0' },
    ];
    for (const headers of spent) {
      const response = await request(`${proxy.url()}/balance`, { headers });
      const body = (await response.body.json()) as { error: { reason: string; route: string } };
      expect(response.statusCode).toBe(504);
      expect(response.headers['x-breakwater-reason']).toBe('deadline_exceeded');
      expect(response.headers['x-breakwater-attempts']).toBe('0');
      expect(body.error).toMatchObject({ reason: 'deadline_exceeded', route: 'ledger' });
    }

    // The upstream saw none of them, and operators see them counted.
    expect(ledger.requests).toHaveLength(0);
    expect(await metrics()).toContain('breakwater_deadline_exceeded_total{route="ledger",upstream="ledger",stage="arrival"} 3');
  });
});
