// Prometheus metrics for the resilience policies. The policies emit `PolicyEvent`s and know
// nothing of Prometheus; this module turns each event into metric updates and reads the state
// of breakers and bulkheads when the registry is scraped. Every family is declared once in
// `families` below, with the same rules as src/telemetry/metrics.ts: base units in the names,
// label values taken from the config (route, upstream and breaker names) or from the closed
// sets of src/policies/events.ts, so the number of series depends on the config only.

import type { Registry } from 'prom-client';
import { Gauge } from './prom.ts';
import type { BreakerStateName, PolicyEvent, PolicyEvents } from '../exchange/events.ts';
import { batchedCounter, batchedHistogram, type MetricFamily } from './series.ts';

export interface PolicyGaugeSources {
  /** Every breaker: state is closed | open | half-open | forced-open | disabled. */
  breakers(): readonly { name: string; upstream: string; state: BreakerStateName }[];
  /** Every bulkhead. */
  bulkheads(): readonly { upstream: string; inFlight: number; queued: number; maxConcurrent: number; maxQueued: number }[];
  /** Every endpoint of every upstream with outlier detection on, and whether it is ejected now. */
  endpoints?(): readonly { upstream: string; endpoint: string; ejected: boolean }[];
  /** Every route's adaptive per-try timeout as it stands. */
  adaptiveTimeouts(): readonly { route: string; timeoutMs: number }[];
  /** Each route that keeps dead letters: its depth and the age of its oldest, read from its store. */
  deadLetters?(): Promise<readonly { route: string; entries: number; oldestAgeSeconds: number }[]>;
}

/** Every state a breaker can be in; the state gauge exports one series for each. */
const breakerStates: readonly BreakerStateName[] = ['closed', 'open', 'half-open', 'forced-open', 'disabled'];

/** Seconds. From half a millisecond (a slot freed almost at once) to 5 s, beyond the 1 s default queueTimeout. */
const queueWaitBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

const families = {
  retries: {
    type: 'counter',
    name: 'breakwater_retries_total',
    help: 'Retries started, the first attempt not included. trigger is what the failed attempt ended with: connect-failure, reset, timeout or status.',
    labelNames: ['route', 'upstream', 'trigger'],
  },
  retriesExhausted: {
    type: 'counter',
    name: 'breakwater_retries_exhausted_total',
    help: 'Requests whose last attempt failed and that were not retried again. reason is attempts, budget, deadline, breaker, method, body or retry-after.',
    labelNames: ['route', 'upstream', 'reason'],
  },
  retryBudgetExhausted: {
    type: 'counter',
    name: 'breakwater_retry_budget_exhausted_total',
    help: "Retries refused because the upstream's retry budget was spent.",
    labelNames: ['route', 'upstream'],
  },
  perTryTimeouts: {
    type: 'counter',
    name: 'breakwater_per_try_timeouts_total',
    help: 'Upstream attempts cut off by the per-try timeout.',
    labelNames: ['route', 'upstream'],
  },
  deadlineExceeded: {
    type: 'counter',
    name: 'breakwater_deadline_exceeded_total',
    help: "Requests refused because the caller's budget was spent, on arrival (stage arrival) or before an attempt could start (stage attempt).",
    labelNames: ['route', 'upstream', 'stage'],
  },
  breakerState: {
    type: 'gauge',
    name: 'breakwater_circuit_breaker_state',
    help: 'Circuit breaker state: 1 for the current state, 0 for the others. state is closed, open, half-open, forced-open or disabled.',
    labelNames: ['breaker', 'upstream', 'state'],
  },
  breakerTransitions: {
    type: 'counter',
    name: 'breakwater_circuit_breaker_transitions_total',
    help: 'Circuit breaker state changes, from one state to another.',
    labelNames: ['breaker', 'upstream', 'from', 'to'],
  },
  breakerRejected: {
    type: 'counter',
    name: 'breakwater_circuit_breaker_rejected_total',
    help: 'Calls refused by a circuit breaker that was open, forced open, or half-open with no probe slot free.',
    labelNames: ['breaker', 'route', 'upstream'],
  },
  bulkheadInFlight: {
    type: 'gauge',
    name: 'breakwater_bulkhead_in_flight',
    help: "Requests holding one of the upstream bulkhead's slots.",
    labelNames: ['upstream'],
  },
  bulkheadQueued: {
    type: 'gauge',
    name: 'breakwater_bulkhead_queued',
    help: "Requests waiting in the upstream bulkhead's queue for a slot.",
    labelNames: ['upstream'],
  },
  bulkheadMaxConcurrent: {
    type: 'gauge',
    name: 'breakwater_bulkhead_max_concurrent',
    help: "The upstream bulkhead's configured number of slots (bulkhead.maxConcurrent).",
    labelNames: ['upstream'],
  },
  bulkheadMaxQueued: {
    type: 'gauge',
    name: 'breakwater_bulkhead_max_queued',
    help: "The upstream bulkhead's configured queue length (bulkhead.maxQueued).",
    labelNames: ['upstream'],
  },
  bulkheadRejected: {
    type: 'counter',
    name: 'breakwater_bulkhead_rejected_total',
    help: 'Requests refused by a bulkhead. reason is full (slots and queue full), queue-timeout or deadline (the deadline ran out while queued).',
    labelNames: ['upstream', 'route', 'reason'],
  },
  bulkheadQueueWait: {
    type: 'histogram',
    name: 'breakwater_bulkhead_queue_wait_seconds',
    help: 'Time a request waited in the bulkhead queue before it got a slot.',
    labelNames: ['upstream'],
    buckets: queueWaitBuckets,
  },
  fallbacks: {
    type: 'counter',
    name: 'breakwater_fallbacks_total',
    help: 'Fallbacks tried, by kind (stale, upstream or static) and result: success when the fallback produced the response, failure when it could not.',
    labelNames: ['route', 'kind', 'result'],
  },
  faultsInjected: {
    type: 'counter',
    name: 'breakwater_faults_injected_total',
    help: 'Faults injected by the route fault policy, by kind (delay or abort).',
    labelNames: ['route', 'kind'],
  },
  endpointEjected: {
    type: 'gauge',
    name: 'breakwater_endpoint_ejected',
    help: 'Whether outlier detection has ejected the endpoint (1) or the balancer may pick it (0), for each endpoint of an upstream with outlierDetection.',
    labelNames: ['upstream', 'endpoint'],
  },
  outlierEjections: {
    type: 'counter',
    name: 'breakwater_outlier_ejections_total',
    help: 'Endpoints ejected by outlier detection, by reason: consecutive (failures in a row), failure_rate or latency.',
    labelNames: ['upstream', 'reason'],
  },
  adaptiveTimeout: {
    type: 'gauge',
    name: 'breakwater_adaptive_timeout_seconds',
    help: "A route's adaptive per-try timeout as it stands: clamp(multiplier × the percentile of its successful attempt latencies, min, max).",
    labelNames: ['route'],
  },
  hedges: {
    type: 'counter',
    name: 'breakwater_hedges_total',
    help: 'Hedged attempts by result: sent (a hedge went out), won (a hedge answered first), budget_exhausted (the hedge budget refused one).',
    labelNames: ['route', 'result'],
  },
  idempotencyRequests: {
    type: 'counter',
    name: 'breakwater_idempotency_requests_total',
    help: 'Requests of a route with idempotency keys, by result: first, replayed, conflict (409), mismatch (422), missing (400), store_error, or bypassed (no key, not required).',
    labelNames: ['route', 'result'],
  },
  deadLetters: {
    type: 'counter',
    name: 'breakwater_dead_letters_total',
    help: "Requests kept as dead letters. reason is Breakwater's reply reason (timeout, deadline_exceeded, upstream_unavailable, circuit_open, bulkhead_full) or the upstream's 5xx status.",
    labelNames: ['route', 'reason'],
  },
  deadLettersDropped: {
    type: 'counter',
    name: 'breakwater_dead_letters_dropped_total',
    help: 'Dead letters not kept. cause is full (the route holds deadLetter.maxEntries), store_error (the store failed or did not keep up) or too_large (the store refused an entry that size).',
    labelNames: ['route', 'cause'],
  },
  deadLetterReplays: {
    type: 'counter',
    name: 'breakwater_dead_letter_replays_total',
    help: 'Dead letters sent again. result is success (delivered: the entry was removed) or failure (kept, with the attempt in its history).',
    labelNames: ['route', 'result'],
  },
  deadLetterEntries: {
    type: 'gauge',
    name: 'breakwater_dead_letter_entries',
    help: "Dead letters a route holds, read from its store at scrape time; absent while the store does not answer.",
    labelNames: ['route'],
  },
  deadLetterOldestAge: {
    type: 'gauge',
    name: 'breakwater_dead_letter_oldest_age_seconds',
    help: "Age of a route's oldest dead letter, read from its store at scrape time; 0 when it holds none.",
    labelNames: ['route'],
  },
} as const;

type BulkheadSample = ReturnType<PolicyGaugeSources['bulkheads']>[number];

/** A bulkhead gauge read from the sources at scrape time, so a removed bulkhead's series goes with it. */
function bulkheadGauge(registry: Registry, family: MetricFamily, sources: PolicyGaugeSources, read: (bulkhead: BulkheadSample) => number): void {
  // Registered through `registers`; its only writer is its own collect hook.
  new Gauge({
    name: family.name,
    help: family.help,
    labelNames: family.labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const bulkhead of sources.bulkheads()) this.labels(bulkhead.upstream).set(read(bulkhead));
    },
  });
}

/**
 * The depth and oldest age of each route's dead letters, read from the stores when the registry
 * is scraped. Both gauges are collected at once, so they share one read of the stores.
 */
function deadLetterGauges(registry: Registry, sources: PolicyGaugeSources): void {
  if (sources.deadLetters === undefined) return;
  type Depths = ReturnType<NonNullable<PolicyGaugeSources['deadLetters']>>;
  let reading: Depths | undefined;
  const depths = (): Depths => {
    reading ??= sources.deadLetters!().finally(() => {
      reading = undefined;
    });
    return reading;
  };
  for (const [family, value] of [
    [families.deadLetterEntries, (depth: { entries: number }) => depth.entries],
    [families.deadLetterOldestAge, (depth: { oldestAgeSeconds: number }) => depth.oldestAgeSeconds],
  ] as const) {
    new Gauge({
      name: family.name,
      help: family.help,
      labelNames: family.labelNames,
      registers: [registry],
      async collect() {
        const rows = await depths().catch(() => []);
        // Rebuilt on every scrape: a route that stopped keeping dead letters, or whose store
        // does not answer, has no series rather than a frozen one.
        this.reset();
        for (const row of rows) this.labels(row.route).set(value(row as { entries: number; oldestAgeSeconds: number }));
      },
    });
  }
}

/** Registers the policy metric families in `registry` and returns the event sink that updates them. */
export function createPolicyMetrics(registry: Registry, sources: PolicyGaugeSources): PolicyEvents {
  const retries = batchedCounter(registry, families.retries);
  const retriesExhausted = batchedCounter(registry, families.retriesExhausted);
  const retryBudgetExhausted = batchedCounter(registry, families.retryBudgetExhausted);
  const perTryTimeouts = batchedCounter(registry, families.perTryTimeouts);
  const deadlineExceeded = batchedCounter(registry, families.deadlineExceeded);

  new Gauge({
    ...families.breakerState,
    registers: [registry],
    collect() {
      // Rebuilt on every scrape, so the series of a breaker that is gone (a route or upstream
      // removed by a reload) disappear instead of freezing at their last value.
      this.reset();
      for (const breaker of sources.breakers()) {
        for (const state of breakerStates) this.labels(breaker.name, breaker.upstream, state).set(state === breaker.state ? 1 : 0);
      }
    },
  });
  const breakerTransitions = batchedCounter(registry, families.breakerTransitions);
  const breakerRejected = batchedCounter(registry, families.breakerRejected);

  bulkheadGauge(registry, families.bulkheadInFlight, sources, (bulkhead) => bulkhead.inFlight);
  bulkheadGauge(registry, families.bulkheadQueued, sources, (bulkhead) => bulkhead.queued);
  bulkheadGauge(registry, families.bulkheadMaxConcurrent, sources, (bulkhead) => bulkhead.maxConcurrent);
  bulkheadGauge(registry, families.bulkheadMaxQueued, sources, (bulkhead) => bulkhead.maxQueued);
  const bulkheadRejected = batchedCounter(registry, families.bulkheadRejected);
  const queueWait = batchedHistogram(registry, families.bulkheadQueueWait);

  const fallbacks = batchedCounter(registry, families.fallbacks);
  const faultsInjected = batchedCounter(registry, families.faultsInjected);
  const idempotencyRequests = batchedCounter(registry, families.idempotencyRequests);
  new Gauge({
    ...families.endpointEjected,
    registers: [registry],
    collect() {
      // Rebuilt on every scrape: an endpoint gone from discovery takes its series with it.
      this.reset();
      for (const endpoint of sources.endpoints?.() ?? []) this.labels(endpoint.upstream, endpoint.endpoint).set(endpoint.ejected ? 1 : 0);
    },
  });
  const outlierEjections = batchedCounter(registry, families.outlierEjections);
  const hedges = batchedCounter(registry, families.hedges);
  // Registered through `registers`; its only writer is its own collect hook.
  new Gauge({
    ...families.adaptiveTimeout,
    registers: [registry],
    collect() {
      this.reset();
      for (const { route, timeoutMs } of sources.adaptiveTimeouts()) this.labels(route).set(timeoutMs / 1000);
    },
  });
  const deadLetters = batchedCounter(registry, families.deadLetters);
  const deadLettersDropped = batchedCounter(registry, families.deadLettersDropped);
  const deadLetterReplays = batchedCounter(registry, families.deadLetterReplays);
  deadLetterGauges(registry, sources);

  return {
    emit(event: PolicyEvent): void {
      switch (event.type) {
        case 'retry':
          retries.get([event.route, event.upstream, event.trigger]).pending++;
          return;
        case 'retry-give-up':
          retriesExhausted.get([event.route, event.upstream, event.reason]).pending++;
          if (event.reason === 'budget') retryBudgetExhausted.get([event.route, event.upstream]).pending++;
          return;
        case 'per-try-timeout':
          perTryTimeouts.get([event.route, event.upstream]).pending++;
          return;
        case 'deadline-exceeded':
          deadlineExceeded.get([event.route, event.upstream, event.stage]).pending++;
          return;
        case 'breaker-transition':
          breakerTransitions.get([event.breaker, event.upstream, event.from, event.to]).pending++;
          return;
        case 'breaker-rejected':
          breakerRejected.get([event.breaker, event.route, event.upstream]).pending++;
          return;
        case 'bulkhead-queued':
          queueWait.get([event.upstream]).observe(event.waitedMs / 1000);
          return;
        case 'bulkhead-rejected':
          bulkheadRejected.get([event.upstream, event.route, event.reason]).pending++;
          return;
        case 'fallback':
          fallbacks.get([event.route, event.kind, event.result]).pending++;
          return;
        case 'fault-injected':
          faultsInjected.get([event.route, event.kind]).pending++;
          return;
        case 'idempotency':
          idempotencyRequests.get([event.route, event.result]).pending++;
          return;
        case 'hedge':
          hedges.get([event.route, event.result]).pending++;
          return;
        case 'dead-letter':
          deadLetters.get([event.route, event.reason]).pending++;
          return;
        case 'dead-letter-dropped':
          deadLettersDropped.get([event.route, event.cause]).pending++;
          return;
        case 'dead-letter-replay':
          deadLetterReplays.get([event.route, event.result]).pending++;
          return;
        case 'endpoint-ejected':
          outlierEjections.get([event.upstream, event.reason]).pending++;
          return;
        case 'endpoint-returned':
        case 'endpoints-discovered':
        case 'dns-lookup-failed':
          // Read as a gauge at scrape time, or told in the log only.
          return;
        default:
          // A new event type fails to compile here until it is given its metrics.
          event satisfies never;
      }
    },
  };
}
