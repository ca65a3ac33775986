import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { ephemeralAddresses, startBreakwater, type RunningBreakwater } from '../../support/breakwater.ts';
import { startFaultyUpstream, type FaultyUpstream } from '../../support/faulty-upstream.ts';

const minRequests = 5;
const halfOpenRequests = 2;

interface Answer {
  readonly status: number;
  readonly reason: string | undefined;
  readonly attempts: string | undefined;
}

describe('circuit breaker through an upstream outage', () => {
  let upstream: FaultyUpstream;
  let proxy: RunningBreakwater;

  afterEach(async () => {
    await proxy.stop();
    await upstream.close();
  });

  async function get(path = '/orders'): Promise<Answer> {
    const response = await request(`${proxy.url()}${path}`);
    await response.body.dump();
    const reason = response.headers['x-breakwater-reason'];
    const attempts = response.headers['x-breakwater-attempts'];
    return {
      status: response.statusCode,
      reason: typeof reason === 'string' ? reason : undefined,
      attempts: typeof attempts === 'string' ? attempts : undefined,
    };
  }

  async function breakerState(): Promise<string | undefined> {
    const circuits = (await (await request(`${proxy.adminUrl}/circuits`)).body.json()) as { name: string; state: string }[];
    return circuits.find((circuit) => circuit.name === 'orders')?.state;
  }

  async function stateGauge(): Promise<string[]> {
    const text = await (await request(`${proxy.telemetryUrl}/metrics`)).body.text();
    return text.split('\n').filter((line) => line.startsWith('breakwater_circuit_breaker_state{breaker="orders"') && line.endsWith(' 1'));
  }

  async function setMode(state: string): Promise<number> {
    const response = await request(`${proxy.adminUrl}/circuits/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ state }),
    });
    await response.body.dump();
    return response.statusCode;
  }

  it('opens after minRequests failures, refuses without a connection, then probes and closes once the upstream is back', async () => {
    upstream = await startFaultyUpstream();
    // openFor is long enough to look at the open breaker, short enough to wait out.
    proxy = await startBreakwater(`${ephemeralAddresses}
upstreams:
  orders:
    endpoints: ["${upstream.origin}"]
    circuitBreaker: {window: 10s, minRequests: ${minRequests}, failureRate: 0.5, openFor: 1s, halfOpenRequests: ${halfOpenRequests}}
routes:
  - {name: orders, match: {pathPrefix: /}, upstream: orders}
`);

    // The breaker starts closed.
    expect(await breakerState()).toBe('closed');

    // The upstream dies: every call fails, and the breaker counts each one. Below minRequests
    // calls in the window it does not judge, so these all reach for the upstream.
    await upstream.outage();
    for (let call = 0; call < minRequests; call++) {
      expect(await get()).toEqual({ status: 503, reason: 'upstream_unavailable', attempts: '1' });
    }

    // minRequests calls in the window, all failed: the breaker is open and refuses at once.
    expect(await get()).toEqual({ status: 503, reason: 'circuit_open', attempts: '0' });

    // The upstream comes back, but while the breaker is open it sees no connection at all.
    await upstream.restore();
    const connectionsWhileOpen = upstream.connections;
    const requestsWhileOpen = upstream.requests.length;
    for (let call = 0; call < 3; call++) {
      expect(await get()).toEqual({ status: 503, reason: 'circuit_open', attempts: '0' });
    }
    expect(upstream.connections).toBe(connectionsWhileOpen);
    expect(upstream.requests.length).toBe(requestsWhileOpen);

    // Operators see it open on the admin port and in the state gauge.
    expect(await breakerState()).toBe('open');
    expect(await stateGauge()).toEqual(['breakwater_circuit_breaker_state{breaker="orders",upstream="orders",state="open"} 1']);

    // After openFor the breaker lets probes through.
    await expect.poll(breakerState, { timeout: 10_000, interval: 50 }).toBe('half-open');

    // Every probe succeeds against the restored upstream, so the breaker closes.
    for (let probe = 0; probe < halfOpenRequests; probe++) {
      expect(await get()).toEqual({ status: 200, reason: undefined, attempts: '1' });
    }
    expect(await breakerState()).toBe('closed');
    expect(await stateGauge()).toEqual(['breakwater_circuit_breaker_state{breaker="orders",upstream="orders",state="closed"} 1']);
    expect(upstream.requests.length).toBe(requestsWhileOpen + halfOpenRequests);

    // Calls succeed again.
    for (let call = 0; call < 5; call++) expect((await get()).status).toBe(200);
  });

  it('obeys an operator: forced open refuses every call, auto lets them through again', async () => {
    upstream = await startFaultyUpstream();
    proxy = await startBreakwater(`${ephemeralAddresses}
upstreams:
  orders:
    endpoints: ["${upstream.origin}"]
    circuitBreaker: {minRequests: ${minRequests}}
routes:
  - {name: orders, match: {pathPrefix: /}, upstream: orders}
`);
    expect((await get()).status).toBe(200);

    // An operator forces the breaker open: the healthy upstream gets nothing.
    expect(await setMode('forced-open')).toBe(200);
    const connections = upstream.connections;
    const received = upstream.requests.length;
    expect(await get()).toEqual({ status: 503, reason: 'circuit_open', attempts: '0' });
    expect(await breakerState()).toBe('forced-open');
    expect(await stateGauge()).toEqual(['breakwater_circuit_breaker_state{breaker="orders",upstream="orders",state="forced-open"} 1']);
    expect(upstream.connections).toBe(connections);
    expect(upstream.requests.length).toBe(received);

    // Back to auto: the breaker starts closed and calls flow.
    expect(await setMode('auto')).toBe(200);
    expect(await breakerState()).toBe('closed');
    expect(await get()).toEqual({ status: 200, reason: undefined, attempts: '1' });
    expect(upstream.requests.length).toBe(received + 1);
  });
});
