import { readFileSync } from 'node:fs';
import { register as globalRegistry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createMetrics, type Metrics } from '../../../src/telemetry/metrics.ts';
import { answered, attemptRecord, failed, requestRecord } from '../../support/records.ts';

interface Sample {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

/** The samples of one metric family, as Prometheus would scrape them. */
async function samples(metrics: Metrics, name: string): Promise<Sample[]> {
  const family = (await metrics.registry.getMetricsAsJSON()).find((metric) => metric.name === name);
  if (family === undefined) throw new Error(`metric ${name} is not registered`);
  return family.values as Sample[];
}

/** The value of one series; `name` is a sample name, e.g. `x_seconds_bucket` of histogram `x_seconds`. */
async function value(metrics: Metrics, name: string, labels: Record<string, string | number>): Promise<number | undefined> {
  const families = await metrics.registry.getMetricsAsJSON();
  const family = families.find((metric) => metric.name === name) ?? families.find((metric) => metric.name === name.replace(/_(bucket|sum|count)$/, ''));
  if (family === undefined) throw new Error(`metric ${name} is not registered`);
  const matching = (family.values as Sample[]).filter(
    (sample) => (sample.metricName ?? family.name) === name && Object.entries(labels).every(([key, want]) => sample.labels[key] === want),
  );
  if (matching.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${matching.length} series`);
  return matching[0]?.value;
}

const charge = requestRecord();

describe('connection metrics', () => {
  it('has every series of a listener at 0 from its start', async () => {
    const metrics = createMetrics();

    metrics.listenerStarted('inbound');

    expect(await value(metrics, 'breakwater_connections', { listener: 'inbound' })).toBe(0);
    for (const reason of ['max_connections', 'per_client', 'headers_timeout']) {
      expect(await value(metrics, 'breakwater_connections_rejected_total', { listener: 'inbound', reason })).toBe(0);
    }
  });

  it('gauges the open connections and counts the rejected ones by reason', async () => {
    const metrics = createMetrics();
    metrics.listenerStarted('inbound');

    metrics.connectionOpened('inbound');
    metrics.connectionOpened('inbound');
    metrics.connectionClosed('inbound');
    metrics.connectionRejected('inbound', 'per_client');
    metrics.connectionRejected('inbound', 'per_client');
    metrics.connectionRejected('inbound', 'headers_timeout');

    expect(await value(metrics, 'breakwater_connections', { listener: 'inbound' })).toBe(1);
    expect(await value(metrics, 'breakwater_connections_rejected_total', { listener: 'inbound', reason: 'per_client' })).toBe(2);
    expect(await value(metrics, 'breakwater_connections_rejected_total', { listener: 'inbound', reason: 'headers_timeout' })).toBe(1);
    expect(await value(metrics, 'breakwater_connections_rejected_total', { listener: 'inbound', reason: 'max_connections' })).toBe(0);
  });
});

describe('WebSocket metrics', () => {
  it('gauges the open tunnels per listener and route, down to 0 once they have closed', async () => {
    const metrics = createMetrics();

    metrics.tunnelOpened('outbound', 'chat');
    metrics.tunnelOpened('outbound', 'chat');
    metrics.tunnelOpened('inbound', 'feed');
    metrics.tunnelClosed('outbound', 'chat');
    metrics.tunnelClosed('inbound', 'feed');

    expect(await value(metrics, 'breakwater_websocket_connections', { listener: 'outbound', route: 'chat' })).toBe(1);
    expect(await value(metrics, 'breakwater_websocket_connections', { listener: 'inbound', route: 'feed' })).toBe(0);
    expect(await samples(metrics, 'breakwater_websocket_connections')).toHaveLength(2);
  });
});

describe('request metrics', () => {
  it('counts a finished request under its listener, route, upstream and status', async () => {
    const metrics = createMetrics();

    metrics.recordRequest(charge);
    metrics.recordRequest(charge);
    metrics.recordRequest({ ...charge, status: 502 });

    const labels = { listener: 'outbound', route: 'charge', upstream: 'payments', reason: '' };
    expect(await value(metrics, 'breakwater_requests_total', { ...labels, code: '200' })).toBe(2);
    expect(await value(metrics, 'breakwater_requests_total', { ...labels, code: '502' })).toBe(1);
  });

  it('labels a request no route matched with empty route and upstream and the local reason', async () => {
    const metrics = createMetrics();

    metrics.recordRequest({ ...charge, route: undefined, upstream: undefined, status: 404, reason: 'no_route' });

    expect(
      await value(metrics, 'breakwater_requests_total', { listener: 'outbound', route: '', upstream: '', code: '404', reason: 'no_route' }),
    ).toBe(1);
    expect(await value(metrics, 'breakwater_request_duration_seconds_count', { listener: 'outbound', route: '', upstream: '' })).toBe(1);
  });

  it('puts the request duration, in seconds, into the bucket that holds it', async () => {
    const metrics = createMetrics();

    // 12 ms lies between the 10 ms and 25 ms bounds.
    metrics.recordRequest(charge);

    const series = { listener: 'outbound', route: 'charge', upstream: 'payments' };
    const name = 'breakwater_request_duration_seconds';
    const buckets = (await samples(metrics, name)).filter((sample) => sample.metricName === `${name}_bucket`);
    expect(buckets.map((bucket) => bucket.labels.le)).toEqual([
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, '+Inf',
    ]);
    expect(buckets.map((bucket) => bucket.value)).toEqual([0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    expect(await samples(metrics, name)).toContainEqual({ metricName: `${name}_sum`, labels: series, value: 0.012 });
    expect(await samples(metrics, name)).toContainEqual({ metricName: `${name}_count`, labels: series, value: 1 });
  });

  it('tracks requests in flight per listener', async () => {
    const metrics = createMetrics();

    metrics.requestStarted('outbound');
    metrics.requestStarted('outbound');
    metrics.requestStarted('inbound');
    metrics.requestFinished('outbound');

    expect(await value(metrics, 'breakwater_requests_in_flight', { listener: 'outbound' })).toBe(1);
    expect(await value(metrics, 'breakwater_requests_in_flight', { listener: 'inbound' })).toBe(1);
  });

  it('shows every increment made between two reads', async () => {
    const metrics = createMetrics();

    metrics.recordRequest(charge);
    const labels = { listener: 'outbound', route: 'charge', upstream: 'payments', code: '200', reason: '' };
    expect(await value(metrics, 'breakwater_requests_total', labels)).toBe(1);
    metrics.recordRequest(charge);
    metrics.recordRequest(charge);

    expect(await value(metrics, 'breakwater_requests_total', labels)).toBe(3);
  });
});

describe('upstream attempt metrics', () => {
  it('counts attempts by outcome, with the status code only for responses', async () => {
    const metrics = createMetrics();

    metrics.recordAttempt(attemptRecord({ outcome: answered(503), durationMs: 4, remainingMs: 2000 }));
    metrics.recordAttempt(attemptRecord({ outcome: failed('timeout'), durationMs: 500, remainingMs: 500 }));
    metrics.recordAttempt(attemptRecord({ outcome: answered(200), durationMs: 3, remainingMs: 1500 }));

    const series = { route: 'charge', upstream: 'payments' };
    expect(await value(metrics, 'breakwater_upstream_attempts_total', { ...series, outcome: 'response', code: '503' })).toBe(1);
    expect(await value(metrics, 'breakwater_upstream_attempts_total', { ...series, outcome: 'timeout', code: '' })).toBe(1);
    expect(await value(metrics, 'breakwater_upstream_attempts_total', { ...series, outcome: 'response', code: '200' })).toBe(1);
    expect(await value(metrics, 'breakwater_upstream_attempt_duration_seconds_bucket', { ...series, le: 0.005 })).toBe(2);
    expect(await value(metrics, 'breakwater_upstream_attempt_duration_seconds_bucket', { ...series, le: '+Inf' })).toBe(3);
  });
});

describe('config metrics', () => {
  it('exports every reload result at zero before any reload', async () => {
    const metrics = createMetrics();

    expect(await value(metrics, 'breakwater_config_reloads_total', { result: 'success' })).toBe(0);
    expect(await value(metrics, 'breakwater_config_reloads_total', { result: 'failure' })).toBe(0);
    expect(await value(metrics, 'breakwater_config_reloads_total', { result: 'unchanged' })).toBe(0);
    expect(await value(metrics, 'breakwater_config_last_reload_success_timestamp_seconds', {})).toBe(0);
  });

  it('counts reloads by result and keeps the time of the last success', async () => {
    const metrics = createMetrics();

    metrics.recordReload('success', 1_750_000_000_000);
    metrics.recordReload('failure', 1_750_000_060_000);
    metrics.recordReload('unchanged', 1_750_000_120_000);

    expect(await value(metrics, 'breakwater_config_reloads_total', { result: 'success' })).toBe(1);
    expect(await value(metrics, 'breakwater_config_reloads_total', { result: 'failure' })).toBe(1);
    expect(await value(metrics, 'breakwater_config_reloads_total', { result: 'unchanged' })).toBe(1);
    // An unchanged file applies nothing, so it is not a successful reload.
    expect(await value(metrics, 'breakwater_config_last_reload_success_timestamp_seconds', {})).toBe(1_750_000_000);
  });

  it('exports only the hash of the config in force', async () => {
    const metrics = createMetrics();

    metrics.setConfigInfo('first');
    metrics.setConfigInfo('second');

    expect(await samples(metrics, 'breakwater_config_info')).toEqual([{ labels: { hash: 'second' }, value: 1 }]);
  });
});

describe('the registry', () => {
  it('carries the build info and Node default process metrics', async () => {
    const metrics = createMetrics();
    const { version } = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

    expect(await samples(metrics, 'breakwater_build_info')).toEqual([{ labels: { version, node_version: process.version }, value: 1 }]);
    const text = await metrics.render();
    expect(text).toMatch(/^process_cpu_user_seconds_total \d/m);
    expect(text).toMatch(/^nodejs_heap_size_used_bytes \d/m);
  });

  it('is private to each instance and leaves the global registry alone', async () => {
    const first = createMetrics();
    const second = createMetrics();

    first.recordRequest(charge);

    expect(await second.render()).not.toContain('route="charge"');
    expect((await globalRegistry.metrics()).trim()).toBe('');
  });
});
