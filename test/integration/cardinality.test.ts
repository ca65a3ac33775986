// Label values come from the config and from small closed sets, never from the traffic: a
// thousand distinct paths, query strings, request ids and idempotency keys must not add a
// single series, or a crawler or a scanner hitting the sidecar would grow Prometheus' memory
// without bound.

import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ephemeralAddresses, startBreakwater, type RunningBreakwater } from '../support/breakwater.ts';
import { startUpstream, type UpstreamServer } from '../support/upstream-server.ts';

const distinctRequests = 1000;
const concurrency = 10;

/** Breakwater's own series in a /metrics exposition, one identity (name and labels) each. */
async function breakwaterSeries(proxy: RunningBreakwater): Promise<string[]> {
  const text = await (await request(`${proxy.telemetryUrl}/metrics`)).body.text();
  return text
    .split('\n')
    .filter((line) => line.startsWith('breakwater_'))
    .map((line) => line.slice(0, line.lastIndexOf(' ')));
}

describe('label cardinality', () => {
  let upstream: UpstreamServer;
  let proxy: RunningBreakwater;

  beforeAll(async () => {
    // Every other path answers 503, so statuses, retries and the breaker all take part.
    upstream = await startUpstream((req, res) => {
      const failing = (req.url ?? '').includes('/fail/');
      res.writeHead(failing ? 503 : 200, { 'content-type': 'text/plain' });
      res.end(failing ? 'down' : 'ok');
    });
    proxy = await startBreakwater(`${ephemeralAddresses}
upstreams:
  orders:
    endpoints: ["${upstream.origin}"]
    bulkhead: {maxConcurrent: 50}
    circuitBreaker: {minRequests: 100000}
routes:
  - name: orders
    match: {pathPrefix: /orders}
    upstream: orders
    retry: {maxAttempts: 2, backoff: {type: none}, budget: {ratio: 1, minPerSecond: 1000}}
  - name: charge
    match: {pathPrefix: /charge}
    upstream: orders
    idempotency: {}
`);
  });

  afterAll(async () => {
    await proxy.stop();
    await upstream.close();
  });

  /** Sends one request; a /charge path is a POST whose idempotency key is the request id. */
  async function send(path: string, requestId: string): Promise<number> {
    const keyed = path.startsWith('/charge');
    const response = await request(`${proxy.url()}${path}`, {
      method: keyed ? 'POST' : 'GET',
      headers: { 'x-request-id': requestId, ...(keyed ? { 'idempotency-key': requestId } : {}) },
      ...(keyed ? { body: '{"amount":1}' } : {}),
    });
    await response.body.dump();
    return response.statusCode;
  }

  /** The four kinds of request of the test: a success, an upstream failure retried once, no route, and a keyed POST. */
  const paths = (id: string): string[] => [`/orders/ok/${id}?page=${id}`, `/orders/fail/${id}`, `/nowhere/${id}`, `/charge/${id}`];

  it('does not grow with distinct paths, query strings, request ids and idempotency keys', async () => {
    // One request of each kind creates every series this traffic can make.
    expect(await Promise.all(paths('first').map((path) => send(path, 'first')))).toEqual([200, 503, 404, 200]);
    // The keyed POST's answer is stored just after its last byte went out.
    await expect.poll(async () => (await breakwaterSeries(proxy)).some((series) => series.includes('operation="replace"'))).toBe(true);
    const before = await breakwaterSeries(proxy);

    // A thousand more, each with its own path, query string and request id.
    const statuses = new Map<number, number>();
    for (let start = 0; start < distinctRequests; start += concurrency) {
      const batch = Array.from({ length: concurrency }, (_, offset) => {
        const id = `${start + offset}-${crypto.randomUUID()}`;
        const path = paths(id)[(start + offset) % 4]!;
        return send(path, id);
      });
      for (const status of await Promise.all(batch)) statuses.set(status, (statuses.get(status) ?? 0) + 1);
    }
    const after = await breakwaterSeries(proxy);

    // The requests went through and were counted...
    expect([...statuses.keys()].sort()).toEqual([200, 404, 503]);
    expect(upstream.requests.length).toBeGreaterThan(distinctRequests / 2);
    const counted = (await (await request(`${proxy.telemetryUrl}/metrics`)).body.text())
      .split('\n')
      .filter((line) => line.startsWith('breakwater_requests_total{'))
      .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
    expect(counted).toBe(distinctRequests + 4);
    // ...and made no new series: the same names and label sets as after the first three.
    expect(after.length).toBe(before.length);
    expect(after).toEqual(before);
    expect(after.filter((series) => series.includes('/orders') || series.includes('/nowhere') || series.includes('/charge'))).toEqual([]);
    // The keyed POSTs were de-duplicated under their route and counted as first uses, each key once.
    expect(after).toContain('breakwater_idempotency_requests_total{route="charge",result="first"}');
    expect(after).toContain('breakwater_store_operation_duration_seconds_count{store="default",operation="take"}');
  });
});
