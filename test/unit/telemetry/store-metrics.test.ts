import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { StoreError, type StoreEvent, type StoreOperation } from '../../../src/stores/store.ts';
import { createStoreMetrics } from '../../../src/telemetry/store-metrics.ts';
import { logSink } from '../../support/log-sink.ts';

interface Sample {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
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

function operation(store: string, op: StoreOperation, durationMs: number, error?: StoreError): StoreEvent {
  return { type: 'store-operation', store, kind: 'redis', operation: op, durationMs, ...(error === undefined ? {} : { error }) };
}

const timeout = (store: string, op: StoreOperation): StoreError => new StoreError('timeout', 'no answer within 50ms', { store, operation: op });

describe('store metrics', () => {
  it('puts each operation, in seconds, into the bucket that holds it, failed ones included', async () => {
    const registry = new Registry();
    const events = createStoreMetrics(registry, logSink().logger);

    events.emit(operation('shared', 'take', 0.8));
    events.emit(operation('shared', 'take', 3));
    events.emit(operation('shared', 'take', 50, timeout('shared', 'take')));
    events.emit(operation('shared', 'replace', 2));

    const take = { store: 'shared', operation: 'take' };
    expect(await value(registry, 'breakwater_store_operation_duration_seconds_count', take)).toBe(3);
    expect(await value(registry, 'breakwater_store_operation_duration_seconds_sum', take)).toBeCloseTo(0.0538, 6);
    expect(await value(registry, 'breakwater_store_operation_duration_seconds_bucket', { ...take, le: 0.001 })).toBe(1);
    expect(await value(registry, 'breakwater_store_operation_duration_seconds_bucket', { ...take, le: 0.005 })).toBe(2);
    expect(await value(registry, 'breakwater_store_operation_duration_seconds_bucket', { ...take, le: 0.05 })).toBe(3);
    expect(await value(registry, 'breakwater_store_operation_duration_seconds_count', { store: 'shared', operation: 'replace' })).toBe(1);
  });

  it('counts failed operations by store and operation, and only those', async () => {
    const registry = new Registry();
    const events = createStoreMetrics(registry, logSink().logger);

    events.emit(operation('shared', 'take', 1));
    events.emit(operation('shared', 'take', 50, timeout('shared', 'take')));
    events.emit(operation('shared', 'take', 50, timeout('shared', 'take')));
    events.emit(operation('local', 'sweep', 4, new StoreError('failed', 'disk I/O error', { store: 'local', operation: 'sweep' })));

    expect(await value(registry, 'breakwater_store_errors_total', { store: 'shared', operation: 'take' })).toBe(2);
    expect(await value(registry, 'breakwater_store_errors_total', { store: 'local', operation: 'sweep' })).toBe(1);
    expect(await value(registry, 'breakwater_store_errors_total', { store: 'shared', operation: 'replace' })).toBeUndefined();
  });

  it('logs a store going unreachable and coming back, and counts nothing for it', async () => {
    const registry = new Registry();
    const sink = logSink();
    const events = createStoreMetrics(registry, sink.logger);

    events.emit({ type: 'store-reachability', store: 'shared', kind: 'redis', reachable: false, error: new StoreError('unavailable', 'connection refused', { store: 'shared', operation: 'take' }) });
    events.emit({ type: 'store-reachability', store: 'shared', kind: 'redis', reachable: true });
    await new Promise((resolve) => setImmediate(resolve));

    // pino's levels: 40 warn, 30 info.
    expect(sink.lines.map(({ level, msg, store, error }) => ({ level, msg, store, error }))).toEqual([
      { level: 40, msg: 'store unreachable', store: 'shared', error: 'connection refused' },
      { level: 30, msg: 'store reachable', store: 'shared', error: undefined },
    ]);
    expect((await registry.getMetricsAsJSON()).flatMap((family) => family.values)).toEqual([]);
  });
});
