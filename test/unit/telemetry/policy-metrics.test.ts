import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { BreakerStateName, PolicyEvent, PolicyEvents } from '../../../src/exchange/events.ts';
import { createMetrics } from '../../../src/telemetry/metrics.ts';
import { createPolicyMetrics, type PolicyGaugeSources } from '../../../src/telemetry/policy-metrics.ts';
import { createStoreMetrics } from '../../../src/telemetry/store-metrics.ts';
import { StoreError, type StoreEvent } from '../../../src/stores/store.ts';
import { logSink } from '../../support/log-sink.ts';
import { checkMetrics } from '../../support/promtool.ts';

interface Sample {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

type BreakerSample = ReturnType<PolicyGaugeSources['breakers']>[number];
type BulkheadSample = ReturnType<PolicyGaugeSources['bulkheads']>[number];

/** Gauge sources whose contents a test changes between scrapes. */
class FakeSources implements PolicyGaugeSources {
  breakerList: BreakerSample[] = [];
  bulkheadList: BulkheadSample[] = [];
  adaptiveList: { route: string; timeoutMs: number }[] = [];
  depthList: { route: string; entries: number; oldestAgeSeconds: number }[] = [];
  depthReads = 0;
  storeDown = false;

  async deadLetters(): Promise<readonly { route: string; entries: number; oldestAgeSeconds: number }[]> {
    this.depthReads += 1;
    if (this.storeDown) throw new Error('store down');
    return this.depthList;
  }

  breakers(): readonly BreakerSample[] {
    return this.breakerList;
  }

  bulkheads(): readonly BulkheadSample[] {
    return this.bulkheadList;
  }

  endpointList: { upstream: string; endpoint: string; ejected: boolean }[] = [];

  endpoints(): readonly { upstream: string; endpoint: string; ejected: boolean }[] {
    return this.endpointList;
  }

  adaptiveTimeouts(): readonly { route: string; timeoutMs: number }[] {
    return this.adaptiveList;
  }
}

function setup(): { registry: Registry; events: PolicyEvents; sources: FakeSources } {
  const registry = new Registry();
  const sources = new FakeSources();
  return { registry, events: createPolicyMetrics(registry, sources), sources };
}

/** The samples of one metric family, as Prometheus would scrape them. */
async function samples(registry: Registry, name: string): Promise<Sample[]> {
  const family = (await registry.getMetricsAsJSON()).find((metric) => metric.name === name);
  if (family === undefined) throw new Error(`metric ${name} is not registered`);
  return family.values as Sample[];
}

/** The value of one series, undefined when it is not exported; `name` may be a histogram's `_bucket`, `_sum` or `_count`. */
async function value(registry: Registry, name: string, labels: Record<string, string | number>): Promise<number | undefined> {
  const families = await registry.getMetricsAsJSON();
  const family = families.find((metric) => metric.name === name) ?? families.find((metric) => metric.name === name.replace(/_(bucket|sum|count)$/, ''));
  if (family === undefined) throw new Error(`metric ${name} is not registered`);
  const matching = (family.values as Sample[]).filter(
    (sample) => (sample.metricName ?? family.name) === name && Object.entries(labels).every(([key, want]) => sample.labels[key] === want),
  );
  if (matching.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${matching.length} series`);
  return matching[0]?.value;
}

function emitAll(events: PolicyEvents, list: readonly PolicyEvent[]): void {
  for (const event of list) events.emit(event);
}

const charge = { route: 'charge', upstream: 'payments' };

describe('retry metrics', () => {
  it('counts retries by what triggered them', async () => {
    const { registry, events } = setup();

    emitAll(events, [
      { type: 'retry', ...charge, attempt: 2, delayMs: 25, trigger: 'status' },
      { type: 'retry', ...charge, attempt: 3, delayMs: 50, trigger: 'status' },
      { type: 'retry', ...charge, attempt: 2, delayMs: 25, trigger: 'connect-failure' },
    ]);

    expect(await value(registry, 'breakwater_retries_total', { ...charge, trigger: 'status' })).toBe(2);
    expect(await value(registry, 'breakwater_retries_total', { ...charge, trigger: 'connect-failure' })).toBe(1);
    expect(await value(registry, 'breakwater_retries_total', { ...charge, trigger: 'reset' })).toBeUndefined();
  });

  it('counts give-ups by reason, and budget give-ups once more in the budget family', async () => {
    const { registry, events } = setup();

    emitAll(events, [
      { type: 'retry-give-up', ...charge, reason: 'attempts' },
      { type: 'retry-give-up', ...charge, reason: 'budget' },
      { type: 'retry-give-up', ...charge, reason: 'budget' },
      { type: 'retry-give-up', route: 'list-items', upstream: 'catalog', reason: 'deadline' },
    ]);

    expect(await value(registry, 'breakwater_retries_exhausted_total', { ...charge, reason: 'attempts' })).toBe(1);
    expect(await value(registry, 'breakwater_retries_exhausted_total', { ...charge, reason: 'budget' })).toBe(2);
    expect(await value(registry, 'breakwater_retries_exhausted_total', { route: 'list-items', upstream: 'catalog', reason: 'deadline' })).toBe(1);
    expect(await samples(registry, 'breakwater_retry_budget_exhausted_total')).toEqual([{ labels: charge, value: 2 }]);
  });

  it('counts per-try timeouts', async () => {
    const { registry, events } = setup();

    emitAll(events, [
      { type: 'per-try-timeout', ...charge },
      { type: 'per-try-timeout', ...charge },
    ]);

    expect(await samples(registry, 'breakwater_per_try_timeouts_total')).toEqual([{ labels: charge, value: 2 }]);
  });

  it('shows every event emitted between two reads', async () => {
    const { registry, events } = setup();

    events.emit({ type: 'per-try-timeout', ...charge });
    expect(await value(registry, 'breakwater_per_try_timeouts_total', charge)).toBe(1);
    events.emit({ type: 'per-try-timeout', ...charge });
    events.emit({ type: 'per-try-timeout', ...charge });

    expect(await value(registry, 'breakwater_per_try_timeouts_total', charge)).toBe(3);
  });
});

describe('deadline metrics', () => {
  it('counts requests refused with the budget spent, by stage', async () => {
    const { registry, events } = setup();

    emitAll(events, [
      { type: 'deadline-exceeded', ...charge, stage: 'arrival' },
      { type: 'deadline-exceeded', ...charge, stage: 'attempt' },
      { type: 'deadline-exceeded', ...charge, stage: 'attempt' },
    ]);

    expect(await value(registry, 'breakwater_deadline_exceeded_total', { ...charge, stage: 'arrival' })).toBe(1);
    expect(await value(registry, 'breakwater_deadline_exceeded_total', { ...charge, stage: 'attempt' })).toBe(2);
  });
});

describe('circuit breaker metrics', () => {
  it('exports one state series per state, 1 for the current state', async () => {
    const { registry, sources } = setup();
    sources.breakerList = [
      { name: 'payments', upstream: 'payments', state: 'open' },
      { name: 'list-items', upstream: 'catalog', state: 'closed' },
    ];

    const states = await samples(registry, 'breakwater_circuit_breaker_state');

    const all: BreakerStateName[] = ['closed', 'open', 'half-open', 'forced-open', 'disabled'];
    expect(states).toHaveLength(10);
    for (const state of all) {
      expect(states).toContainEqual({ labels: { breaker: 'payments', upstream: 'payments', state }, value: state === 'open' ? 1 : 0 });
      expect(states).toContainEqual({ labels: { breaker: 'list-items', upstream: 'catalog', state }, value: state === 'closed' ? 1 : 0 });
    }
  });

  it('reads the state at each scrape and drops the series of a breaker that is gone', async () => {
    const { registry, sources } = setup();
    sources.breakerList = [
      { name: 'payments', upstream: 'payments', state: 'open' },
      { name: 'list-items', upstream: 'catalog', state: 'closed' },
    ];
    expect(await value(registry, 'breakwater_circuit_breaker_state', { breaker: 'payments', state: 'open' })).toBe(1);

    // The payments breaker moves to half-open; a reload removes the list-items route.
    sources.breakerList = [{ name: 'payments', upstream: 'payments', state: 'half-open' }];

    expect(await value(registry, 'breakwater_circuit_breaker_state', { breaker: 'payments', state: 'open' })).toBe(0);
    expect(await value(registry, 'breakwater_circuit_breaker_state', { breaker: 'payments', state: 'half-open' })).toBe(1);
    const breakers = new Set((await samples(registry, 'breakwater_circuit_breaker_state')).map((sample) => sample.labels.breaker));
    expect([...breakers]).toEqual(['payments']);
  });

  it('counts transitions by from and to, and rejected calls by route', async () => {
    const { registry, events } = setup();

    emitAll(events, [
      { type: 'breaker-transition', breaker: 'payments', upstream: 'payments', from: 'closed', to: 'open' },
      { type: 'breaker-transition', breaker: 'payments', upstream: 'payments', from: 'open', to: 'half-open' },
      { type: 'breaker-transition', breaker: 'payments', upstream: 'payments', from: 'half-open', to: 'open' },
      { type: 'breaker-transition', breaker: 'payments', upstream: 'payments', from: 'open', to: 'half-open' },
      { type: 'breaker-rejected', breaker: 'payments', ...charge },
      { type: 'breaker-rejected', breaker: 'payments', ...charge },
      { type: 'breaker-rejected', breaker: 'payments', route: 'refund', upstream: 'payments' },
    ]);

    const breaker = { breaker: 'payments', upstream: 'payments' };
    expect(await value(registry, 'breakwater_circuit_breaker_transitions_total', { ...breaker, from: 'closed', to: 'open' })).toBe(1);
    expect(await value(registry, 'breakwater_circuit_breaker_transitions_total', { ...breaker, from: 'open', to: 'half-open' })).toBe(2);
    expect(await value(registry, 'breakwater_circuit_breaker_transitions_total', { ...breaker, from: 'half-open', to: 'open' })).toBe(1);
    expect(await value(registry, 'breakwater_circuit_breaker_rejected_total', { breaker: 'payments', ...charge })).toBe(2);
    expect(await value(registry, 'breakwater_circuit_breaker_rejected_total', { breaker: 'payments', route: 'refund', upstream: 'payments' })).toBe(1);
  });
});

describe('bulkhead metrics', () => {
  it('reads occupancy and limits at each scrape and drops the series of a bulkhead that is gone', async () => {
    const { registry, sources } = setup();
    sources.bulkheadList = [
      { upstream: 'payments', inFlight: 50, queued: 7, maxConcurrent: 50, maxQueued: 20 },
      { upstream: 'catalog', inFlight: 3, queued: 0, maxConcurrent: 10, maxQueued: 0 },
    ];

    expect(await value(registry, 'breakwater_bulkhead_in_flight', { upstream: 'payments' })).toBe(50);
    expect(await value(registry, 'breakwater_bulkhead_queued', { upstream: 'payments' })).toBe(7);
    expect(await value(registry, 'breakwater_bulkhead_max_concurrent', { upstream: 'payments' })).toBe(50);
    expect(await value(registry, 'breakwater_bulkhead_max_queued', { upstream: 'payments' })).toBe(20);
    expect(await value(registry, 'breakwater_bulkhead_in_flight', { upstream: 'catalog' })).toBe(3);

    // The queue drains; a reload removes the catalog bulkhead.
    sources.bulkheadList = [{ upstream: 'payments', inFlight: 12, queued: 0, maxConcurrent: 50, maxQueued: 20 }];

    expect(await value(registry, 'breakwater_bulkhead_in_flight', { upstream: 'payments' })).toBe(12);
    expect(await value(registry, 'breakwater_bulkhead_queued', { upstream: 'payments' })).toBe(0);
    for (const name of ['breakwater_bulkhead_in_flight', 'breakwater_bulkhead_queued', 'breakwater_bulkhead_max_concurrent', 'breakwater_bulkhead_max_queued']) {
      expect((await samples(registry, name)).map((sample) => sample.labels.upstream)).toEqual(['payments']);
    }
  });

  it('counts rejections by route and reason', async () => {
    const { registry, events } = setup();

    emitAll(events, [
      { type: 'bulkhead-rejected', ...charge, reason: 'full' },
      { type: 'bulkhead-rejected', ...charge, reason: 'full' },
      { type: 'bulkhead-rejected', ...charge, reason: 'queue-timeout' },
      { type: 'bulkhead-rejected', route: 'refund', upstream: 'payments', reason: 'deadline' },
    ]);

    expect(await value(registry, 'breakwater_bulkhead_rejected_total', { ...charge, reason: 'full' })).toBe(2);
    expect(await value(registry, 'breakwater_bulkhead_rejected_total', { ...charge, reason: 'queue-timeout' })).toBe(1);
    expect(await value(registry, 'breakwater_bulkhead_rejected_total', { route: 'refund', upstream: 'payments', reason: 'deadline' })).toBe(1);
  });

  it('puts each queue wait, in seconds, into the bucket that holds it', async () => {
    const { registry, events } = setup();

    // 3 ms lies between the 2.5 ms and 5 ms bounds; 0.2 ms is below the first, 0.5 ms.
    emitAll(events, [
      { type: 'bulkhead-queued', ...charge, waitedMs: 3 },
      { type: 'bulkhead-queued', route: 'refund', upstream: 'payments', waitedMs: 0.2 },
    ]);

    const name = 'breakwater_bulkhead_queue_wait_seconds';
    const buckets = (await samples(registry, name)).filter((sample) => sample.metricName === `${name}_bucket`);
    expect(buckets.map((bucket) => bucket.labels.le)).toEqual([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, '+Inf']);
    expect(buckets.map((bucket) => bucket.labels.upstream)).toEqual(buckets.map(() => 'payments'));
    expect(buckets.map((bucket) => bucket.value)).toEqual([1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2]);
    expect(await value(registry, `${name}_sum`, { upstream: 'payments' })).toBeCloseTo(0.0032, 10);
    expect(await value(registry, `${name}_count`, { upstream: 'payments' })).toBe(2);
  });
});

describe('fallback and fault metrics', () => {
  it('counts fallbacks by kind and result', async () => {
    const { registry, events } = setup();

    emitAll(events, [
      { type: 'fallback', route: 'list-items', kind: 'stale', result: 'failure' },
      { type: 'fallback', route: 'list-items', kind: 'static', result: 'success' },
      { type: 'fallback', route: 'list-items', kind: 'static', result: 'success' },
    ]);

    expect(await value(registry, 'breakwater_fallbacks_total', { route: 'list-items', kind: 'stale', result: 'failure' })).toBe(1);
    expect(await value(registry, 'breakwater_fallbacks_total', { route: 'list-items', kind: 'static', result: 'success' })).toBe(2);
    expect(await value(registry, 'breakwater_fallbacks_total', { route: 'list-items', kind: 'stale', result: 'success' })).toBeUndefined();
  });

  it('counts idempotency results by route', async () => {
    const { registry, events } = setup();

    emitAll(events, [
      { type: 'idempotency', route: 'charge', result: 'first' },
      { type: 'idempotency', route: 'charge', result: 'replayed' },
      { type: 'idempotency', route: 'charge', result: 'replayed' },
    ]);

    expect(await value(registry, 'breakwater_idempotency_requests_total', { route: 'charge', result: 'first' })).toBe(1);
    expect(await value(registry, 'breakwater_idempotency_requests_total', { route: 'charge', result: 'replayed' })).toBe(2);
  });

  it('counts injected faults by kind', async () => {
    const { registry, events } = setup();

    emitAll(events, [
      { type: 'fault-injected', route: 'charge', kind: 'delay' },
      { type: 'fault-injected', route: 'charge', kind: 'abort' },
      { type: 'fault-injected', route: 'charge', kind: 'abort' },
    ]);

    expect(await value(registry, 'breakwater_faults_injected_total', { route: 'charge', kind: 'delay' })).toBe(1);
    expect(await value(registry, 'breakwater_faults_injected_total', { route: 'charge', kind: 'abort' })).toBe(2);
  });
});

describe('dead-letter metrics', () => {
  it('counts kept, dropped and replayed dead letters by route and their closed labels', async () => {
    const { registry, events } = setup();
    emitAll(events, [
      { type: 'dead-letter', route: 'notify', reason: 'timeout' },
      { type: 'dead-letter', route: 'notify', reason: '503' },
      { type: 'dead-letter', route: 'notify', reason: 'timeout' },
      { type: 'dead-letter-dropped', route: 'notify', cause: 'full', detail: 'x' },
      { type: 'dead-letter-replay', route: 'notify', result: 'success' },
      { type: 'dead-letter-replay', route: 'notify', result: 'failure' },
      { type: 'dead-letter-replay', route: 'notify', result: 'failure' },
    ]);

    expect(await value(registry, 'breakwater_dead_letters_total', { route: 'notify', reason: 'timeout' })).toBe(2);
    expect(await value(registry, 'breakwater_dead_letters_total', { route: 'notify', reason: '503' })).toBe(1);
    expect(await value(registry, 'breakwater_dead_letters_dropped_total', { route: 'notify', cause: 'full' })).toBe(1);
    expect(await value(registry, 'breakwater_dead_letter_replays_total', { route: 'notify', result: 'failure' })).toBe(2);
  });

  it('reads depth and oldest age at scrape time, once for both gauges, and shows nothing while the store is down', async () => {
    const { registry, sources } = setup();
    sources.depthList = [{ route: 'notify', entries: 12, oldestAgeSeconds: 3600 }];

    await registry.metrics();
    expect(sources.depthReads).toBe(1);
    expect(await value(registry, 'breakwater_dead_letter_entries', { route: 'notify' })).toBe(12);
    expect(await value(registry, 'breakwater_dead_letter_oldest_age_seconds', { route: 'notify' })).toBe(3600);

    sources.storeDown = true;
    expect(await samples(registry, 'breakwater_dead_letter_entries')).toEqual([]);
  });
});

describe('the exposition', () => {
  /** At least one event of every type, and every value of every closed label set. */
  const burst: PolicyEvent[] = [
    ...(['connect-failure', 'reset', 'timeout', 'status'] as const).map((trigger) => ({ type: 'retry', ...charge, attempt: 2, delayMs: 10, trigger }) as const),
    ...(['attempts', 'budget', 'deadline', 'breaker', 'method', 'body', 'retry-after'] as const).map((reason) => ({ type: 'retry-give-up', ...charge, reason }) as const),
    { type: 'per-try-timeout', ...charge },
    { type: 'deadline-exceeded', route: 'to-local-app', upstream: 'local-app', stage: 'arrival' },
    { type: 'deadline-exceeded', ...charge, stage: 'attempt' },
    { type: 'breaker-transition', breaker: 'payments', upstream: 'payments', from: 'closed', to: 'open' },
    { type: 'breaker-transition', breaker: 'payments', upstream: 'payments', from: 'open', to: 'forced-open' },
    { type: 'breaker-transition', breaker: 'payments', upstream: 'payments', from: 'forced-open', to: 'disabled' },
    { type: 'breaker-rejected', breaker: 'payments', ...charge },
    { type: 'bulkhead-queued', ...charge, waitedMs: 42 },
    ...(['full', 'queue-timeout', 'deadline'] as const).map((reason) => ({ type: 'bulkhead-rejected', ...charge, reason }) as const),
    ...(['stale', 'upstream', 'static'] as const).map((kind) => ({ type: 'fallback', route: 'list-items', kind, result: 'success' }) as const),
    { type: 'fallback', route: 'list-items', kind: 'upstream', result: 'failure' },
    { type: 'fault-injected', route: 'charge', kind: 'delay' },
    { type: 'fault-injected', route: 'charge', kind: 'abort' },
    ...(['first', 'replayed', 'conflict', 'mismatch', 'missing', 'store_error', 'bypassed'] as const).map((result) => ({ type: 'idempotency', route: 'charge', result }) as const),
    ...(['consecutive', 'failure_rate', 'latency'] as const).map(
      (reason) => ({ type: 'endpoint-ejected', upstream: 'payments', endpoint: 'http://10.0.0.7:8080', reason, durationMs: 30_000, ejections: 1 }) as const,
    ),
    { type: 'endpoint-returned', upstream: 'payments', endpoint: 'http://10.0.0.7:8080' },
    { type: 'endpoints-discovered', upstream: 'payments', name: 'dns://payments:8080', added: ['http://10.0.0.8:8080'], removed: [] },
    { type: 'dns-lookup-failed', upstream: 'payments', name: 'dns://payments:8080', message: 'ETIMEOUT', kept: 2 },
    ...(['sent', 'won', 'budget_exhausted'] as const).map((result) => ({ type: 'hedge', route: 'search', upstream: 'catalog', result }) as const),
    { type: 'dead-letter', route: 'charge', reason: 'circuit_open' },
    ...(['full', 'store_error', 'too_large'] as const).map((cause) => ({ type: 'dead-letter-dropped', route: 'charge', cause, detail: 'x' }) as const),
    ...(['success', 'failure'] as const).map((result) => ({ type: 'dead-letter-replay', route: 'charge', result }) as const),
  ];

  /** Every store operation, once fine and once failed, as the idempotency layer and the sweeps make them. */
  const storeBurst: StoreEvent[] = (['open', 'take', 'replace', 'release', 'get', 'sweep'] as const).flatMap((operation) => [
    { type: 'store-operation', store: 'shared', kind: 'redis', operation, durationMs: 1.2 },
    { type: 'store-operation', store: 'shared', kind: 'redis', operation, durationMs: 50, error: new StoreError('timeout', 'no answer', { store: 'shared', operation }) },
  ]);

  it('passes promtool check metrics beside the request and store metrics, after a burst of every event', async () => {
    const metrics = createMetrics();
    const sources = new FakeSources();
    sources.breakerList = [{ name: 'payments', upstream: 'payments', state: 'half-open' }];
    sources.bulkheadList = [{ upstream: 'payments', inFlight: 50, queued: 3, maxConcurrent: 50, maxQueued: 20 }];
    sources.depthList = [{ route: 'charge', entries: 3, oldestAgeSeconds: 12.5 }];
    sources.endpointList = [
      { upstream: 'payments', endpoint: 'http://10.0.0.7:8080', ejected: true },
      { upstream: 'payments', endpoint: 'http://[fd00::8]:8080', ejected: false },
    ];
    sources.adaptiveList = [
      { route: 'search', timeoutMs: 182.5 },
      { route: 'charge', timeoutMs: 1_000 },
    ];
    const events = createPolicyMetrics(metrics.registry, sources);
    const storeEvents = createStoreMetrics(metrics.registry, logSink().logger);

    emitAll(events, burst);
    for (const event of storeBurst) storeEvents.emit(event);
    const text = await metrics.render();

    expect(text).toContain('breakwater_idempotency_requests_total{route="charge",result="store_error"} 1');
    expect(text).toContain('breakwater_store_errors_total{store="shared",operation="take"} 1');
    expect(text).toContain('breakwater_store_operation_duration_seconds_bucket{le="0.0025",store="shared",operation="take"} 1');
    // The tail-latency families, with series, are in what promtool checks.
    expect(text).toContain('breakwater_hedges_total{route="search",result="budget_exhausted"} 1');
    expect(text).toContain('breakwater_adaptive_timeout_seconds{route="search"} 0.1825');
    expect(text).toContain('breakwater_endpoint_ejected{upstream="payments",endpoint="http://[fd00::8]:8080"} 0');
    expect(text).toContain('breakwater_outlier_ejections_total{upstream="payments",reason="failure_rate"} 1');
    expect(await checkMetrics(text)).toEqual({ exitCode: 0, output: '' });
  });

  it('has a series in every policy family after the burst, each with HELP and TYPE', async () => {
    const { registry, events, sources } = setup();
    sources.breakerList = [{ name: 'payments', upstream: 'payments', state: 'closed' }];
    sources.bulkheadList = [{ upstream: 'payments', inFlight: 1, queued: 0, maxConcurrent: 50, maxQueued: 20 }];
    sources.endpointList = [{ upstream: 'payments', endpoint: 'http://10.0.0.7:8080', ejected: true }];
    sources.adaptiveList = [{ route: 'search', timeoutMs: 180 }];
    sources.depthList = [{ route: 'charge', entries: 0, oldestAgeSeconds: 0 }];

    emitAll(events, burst);
    const families = await registry.getMetricsAsJSON();
    const text = await registry.metrics();

    expect(families.map((family) => family.name).sort()).toEqual([
      'breakwater_adaptive_timeout_seconds',
      'breakwater_bulkhead_in_flight',
      'breakwater_bulkhead_max_concurrent',
      'breakwater_bulkhead_max_queued',
      'breakwater_bulkhead_queue_wait_seconds',
      'breakwater_bulkhead_queued',
      'breakwater_bulkhead_rejected_total',
      'breakwater_circuit_breaker_rejected_total',
      'breakwater_circuit_breaker_state',
      'breakwater_circuit_breaker_transitions_total',
      'breakwater_dead_letter_entries',
      'breakwater_dead_letter_oldest_age_seconds',
      'breakwater_dead_letter_replays_total',
      'breakwater_dead_letters_dropped_total',
      'breakwater_dead_letters_total',
      'breakwater_deadline_exceeded_total',
      'breakwater_endpoint_ejected',
      'breakwater_fallbacks_total',
      'breakwater_faults_injected_total',
      'breakwater_hedges_total',
      'breakwater_idempotency_requests_total',
      'breakwater_outlier_ejections_total',
      'breakwater_per_try_timeouts_total',
      'breakwater_retries_exhausted_total',
      'breakwater_retries_total',
      'breakwater_retry_budget_exhausted_total',
    ]);
    for (const family of families) {
      expect(family.values.length, family.name).toBeGreaterThan(0);
      expect(text).toContain(`# HELP ${family.name} `);
      expect(text).toContain(`# TYPE ${family.name} ${family.type}`);
    }
  });
});
