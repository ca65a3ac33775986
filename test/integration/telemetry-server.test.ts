import { afterEach, describe, expect, it } from 'vitest';
import { createMetrics, type Metrics } from '../../src/telemetry/metrics.ts';
import { startTelemetryServer } from '../../src/telemetry/server.ts';
import type { RunningServer } from '../../src/telemetry/http-server.ts';
import { checkMetrics } from '../support/promtool.ts';
import { answered, attemptRecord, failed, requestRecord } from '../support/records.ts';

const running: RunningServer[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((server) => server.close()));
});

async function start(opts: { ready?: () => boolean; metrics?: Metrics } = {}): Promise<{ base: string; metrics: Metrics; server: RunningServer }> {
  const metrics = opts.metrics ?? createMetrics();
  const server = await startTelemetryServer({
    address: { host: '127.0.0.1', port: 0 },
    metrics,
    health: { isReady: opts.ready ?? (() => true) },
  });
  running.push(server);
  return { base: `http://127.0.0.1:${server.port}`, metrics, server };
}

/** Some traffic of every kind the data path reports. */
function recordTraffic(metrics: Metrics): void {
  metrics.requestStarted('outbound');
  metrics.recordAttempt(attemptRecord({ outcome: failed('connect-failure'), durationMs: 0.8, remainingMs: 2000 }));
  metrics.recordAttempt(attemptRecord({ outcome: answered(200), durationMs: 31, remainingMs: 1999 }));
  metrics.recordRequest(requestRecord({ durationMs: 35 }));
  metrics.requestFinished('outbound');
  metrics.recordRequest(requestRecord({ listener: 'inbound', route: undefined, upstream: undefined, status: 404, reason: 'no_route', durationMs: 0.1, method: 'GET' }));
  metrics.recordReload('success', 1_750_000_000_000);
  metrics.recordReload('failure', 1_750_000_100_000);
  metrics.setConfigInfo('9f86d081884c7d65');
}

describe('telemetry server', () => {
  it('serves the metrics in the Prometheus text format', async () => {
    const { base, metrics } = await start();
    recordTraffic(metrics);

    const response = await fetch(`${base}/metrics`);

    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const body = await response.text();
    expect(body).toContain('breakwater_requests_total{listener="outbound",route="charge",upstream="payments",code="200",reason="",protocol="http1"} 1');
    expect(body).toContain('breakwater_upstream_attempts_total{route="charge",upstream="payments",outcome="connect-failure",code="",grpc_code=""} 1');
    expect(body).toContain('breakwater_config_info{hash="9f86d081884c7d65"} 1');
  });

  it('passes promtool check metrics after traffic', async () => {
    const { base, metrics } = await start();
    recordTraffic(metrics);

    const body = await (await fetch(`${base}/metrics`)).text();
    const result = await checkMetrics(body);

    expect(result.output).toBe('');
    expect(result.exitCode).toBe(0);
  });

  it('answers /healthz with ok while the process runs', async () => {
    const { base } = await start({ ready: () => false });

    const response = await fetch(`${base}/healthz`);

    expect(response.status).toBe(200);
    expect((await response.text()).trim()).toBe('ok');
  });

  it('answers /readyz from the health source at each request', async () => {
    let ready = false;
    const { base } = await start({ ready: () => ready });

    // Before the listeners are up: not ready.
    expect((await fetch(`${base}/readyz`)).status).toBe(503);
    // Listeners up.
    ready = true;
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    // Draining.
    ready = false;
    expect((await fetch(`${base}/readyz`)).status).toBe(503);
  });

  it('ignores the query string of a scrape', async () => {
    const { base } = await start();

    const response = await fetch(`${base}/metrics?module=breakwater`);

    expect(response.status).toBe(200);
    expect(await response.text()).toContain('# TYPE breakwater_requests_total counter');
  });

  it('answers HEAD like GET, without a body', async () => {
    const { base } = await start();

    const response = await fetch(`${base}/healthz`, { method: 'HEAD' });

    expect(response.status).toBe(200);
    expect(await response.text()).toBe('');
  });

  it('answers 404 for unknown paths and 405 with Allow for other methods', async () => {
    const { base } = await start();

    expect((await fetch(`${base}/config`)).status).toBe(404);
    expect((await fetch(`${base}/metrics/extra`)).status).toBe(404);
    const post = await fetch(`${base}/metrics`, { method: 'POST', body: 'x' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
  });

  it('answers 500 when the metrics cannot be rendered', async () => {
    const metrics = createMetrics();
    const { base } = await start({ metrics: { ...metrics, render: () => Promise.reject(new Error('collector failed')) } });

    const response = await fetch(`${base}/metrics`);

    expect(response.status).toBe(500);
    expect(await response.text()).toContain('collector failed');
  });

  it('closes promptly with an idle keep-alive connection open, and then refuses connections', async () => {
    const { base, server } = await start();
    // fetch keeps the connection alive in its pool after this response.
    expect((await fetch(`${base}/healthz`)).status).toBe(200);

    await server.close();
    running.splice(running.indexOf(server), 1);

    await expect(fetch(`${base}/healthz`)).rejects.toThrow();
  });

  it('fails to start when the address is taken', async () => {
    const { server } = await start();

    await expect(
      startTelemetryServer({ address: { host: '127.0.0.1', port: server.port }, metrics: createMetrics(), health: { isReady: () => true } }),
    ).rejects.toThrow(/EADDRINUSE/);
  });
});
