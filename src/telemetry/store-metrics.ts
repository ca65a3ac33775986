// The state stores as telemetry sees them: the latency of every operation and its failures as
// Prometheus series, and a log line whenever a store becomes unreachable or reachable again.
// Label values are store names from the config and the closed set of operations.

import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { Counter } from './prom.ts';
import type { StoreEvent, StoreEvents } from '../stores/store.ts';
import { batchedHistogram } from './series.ts';

/** Seconds. From a tenth of a millisecond (memory) to a second, past any store timeout worth setting. */
const storeBuckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

const families = {
  operationDuration: {
    name: 'breakwater_store_operation_duration_seconds',
    help: 'Time each state-store operation took, failed ones included (up to the store timeout). operation is take, replace, release, get, open or sweep.',
    labelNames: ['store', 'operation'],
    buckets: storeBuckets,
  },
  errors: {
    name: 'breakwater_store_errors_total',
    help: 'State-store operations that failed: timed out, store unreachable, or refused.',
    labelNames: ['store', 'operation'],
  },
} as const;

/** Registers the store families in `registry` and returns the event sink that updates them. */
export function createStoreMetrics(registry: Registry, logger: Logger): StoreEvents {
  const errorCounter = new Counter({ ...families.errors, labelNames: [...families.errors.labelNames], registers: [registry] });
  const durations = batchedHistogram(registry, families.operationDuration);
  return {
    emit(event: StoreEvent): void {
      switch (event.type) {
        case 'store-operation':
          durations.get([event.store, event.operation]).observe(event.durationMs / 1000);
          if (event.error !== undefined) errorCounter.labels(event.store, event.operation).inc();
          return;
        case 'store-reachability':
          if (event.reachable) logger.info({ store: event.store, kind: event.kind }, 'store reachable');
          else logger.warn({ store: event.store, kind: event.kind, error: event.error?.message }, 'store unreachable');
          return;
        default:
          event satisfies never;
      }
    },
  };
}
