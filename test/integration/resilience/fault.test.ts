import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { ephemeralAddresses, startBreakwater, type RunningBreakwater } from '../../support/breakwater.ts';
import { startFaultyUpstream, type FaultyUpstream } from '../../support/faulty-upstream.ts';

const requests = 5;

describe('fault injection', () => {
  let inventory: FaultyUpstream;
  let proxy: RunningBreakwater;

  afterEach(async () => {
    await inventory.close();
    await proxy.stop();
  });

  async function metrics(): Promise<string> {
    return (await request(`${proxy.telemetryUrl}/metrics`)).body.text();
  }

  it('aborts every request with the configured status, before retries and fallbacks, without an upstream call', async () => {
    inventory = await startFaultyUpstream();
    // The route would retry a 5xx and replace one with a static reply; the injected abort sits
    // in front of both.
    proxy = await startBreakwater(`${ephemeralAddresses}
upstreams:
  inventory: {endpoints: ["${inventory.origin}"]}
routes:
  - name: stock
    match: {pathPrefix: /stock}
    upstream: inventory
    retry: {maxAttempts: 3, retryOn: [5xx]}
    fallback:
      on: [5xx]
      chain:
        - response: {status: 200, body: 'from the fallback'}
    fault:
      abort: {percent: 100, status: 500}
`);

    // Every request gets the injected 500, as the caller under test would see a failing dependency.
    for (let n = 0; n < requests; n++) {
      const response = await request(`${proxy.url()}/stock/${n}`);
      const body = (await response.body.json()) as { error: { reason: string; route: string; upstream: string } };
      expect(response.statusCode).toBe(500);
      expect(response.headers['x-breakwater-reason']).toBe('fault_injected');
      expect(response.headers['x-breakwater-attempts']).toBe('0');
      expect(response.headers['x-breakwater-fallback']).toBeUndefined();
      expect(body.error).toMatchObject({ reason: 'fault_injected', route: 'stock', upstream: 'inventory' });
    }

    // The upstream was never called, and each injected abort is counted.
    expect(inventory.requests).toHaveLength(0);
    expect(inventory.connections).toBe(0);
    expect(await metrics()).toContain(`breakwater_faults_injected_total{route="stock",kind="abort"} ${requests}`);
  });

  it('delays every request, and a delay longer than the route timeout ends in 504 before the upstream is called', async () => {
    inventory = await startFaultyUpstream();
    // Two routes delay every request: by less than their timeout, and by more.
    proxy = await startBreakwater(`${ephemeralAddresses}
upstreams:
  inventory: {endpoints: ["${inventory.origin}"]}
routes:
  - name: delayed
    match: {pathPrefix: /delayed}
    upstream: inventory
    timeout: 5s
    fault:
      delay: {percent: 100, duration: 50ms}
  - name: stalled
    match: {pathPrefix: /stalled}
    upstream: inventory
    timeout: 200ms
    fault:
      delay: {percent: 100, duration: 2s}
`);

    // A delay within the timeout: every request still reaches the upstream and succeeds.
    for (let n = 0; n < requests; n++) {
      const response = await request(`${proxy.url()}/delayed/${n}`);
      await response.body.dump();
      expect(response.statusCode).toBe(200);
    }
    expect(inventory.requests.map((seen) => seen.url)).toEqual(Array.from({ length: requests }, (_, n) => `/delayed/${n}`));
    expect(await metrics()).toContain(`breakwater_faults_injected_total{route="delayed",kind="delay"} ${requests}`);

    // A delay past the timeout: the deadline runs out during the delay, the caller gets a 504,
    // and the upstream is never called. The delay ends with the deadline, at the same
    // millisecond as the route's own timer, so whichever fires first names the reason: the
    // delay's deadline_exceeded or the route's timeout.
    const response = await request(`${proxy.url()}/stalled/1`);
    await response.body.dump();
    expect(response.statusCode).toBe(504);
    expect(['deadline_exceeded', 'timeout']).toContain(response.headers['x-breakwater-reason']);
    expect(response.headers['x-breakwater-attempts']).toBe('0');
    expect(inventory.requests).toHaveLength(requests);
  });
});
