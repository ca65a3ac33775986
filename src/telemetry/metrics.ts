// Breakwater's Prometheus metrics. Every family is declared once in `families` below: the names,
// types, help texts and label names there are what users' dashboards and alerts depend on, so
// they change only with a release note. Label values come from the config (listener, route and
// upstream names) or from small closed sets (status codes, reasons, outcomes), never from paths
// or ids, so the number of series stays bounded.

import type { HistogramSeries } from './histogram-series.ts';
import { collectDefaultMetrics, Counter, Gauge, Registry } from './prom.ts';
import { batchedHistogram, flushPending, SeriesIndex, type CountedSeries } from './series.ts';
import { grpcCodeName } from '../exchange/grpc.ts';
import type { AttemptRecord, ConnectionRejection, RequestRecord } from '../exchange/record.ts';
import { breakwaterVersion } from '../runtime/version.ts';

/** Seconds. From half a millisecond (a local hop) to 30 s (beyond any sane route timeout). */
const latencyBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** Seconds. The latency buckets plus 60 s, the default deadline.maxInbound, the longest budget a caller can usually grant. */
const deadlineRemainingBuckets = [...latencyBuckets, 60];

const families = {
  requests: {
    type: 'counter',
    name: 'breakwater_requests_total',
    help: 'Client requests answered, by final status code. reason is the x-breakwater-reason of a response Breakwater made itself, empty when the upstream answered. protocol is http1, h2c, grpc for a gRPC call (whose outcome breakwater_grpc_requests_total counts), or websocket for a WebSocket handshake.',
    labelNames: ['listener', 'route', 'upstream', 'code', 'reason', 'protocol'],
  },
  grpcRequests: {
    type: 'counter',
    name: 'breakwater_grpc_requests_total',
    help: 'gRPC calls answered, by the grpc-status their client read (grpc_code: OK, UNAVAILABLE, DEADLINE_EXCEEDED...; CANCELLED when the client left first). grpc_service and grpc_method are set only for routes with telemetry.grpcMethods, else empty.',
    labelNames: ['listener', 'route', 'upstream', 'grpc_code', 'grpc_service', 'grpc_method'],
  },
  requestDuration: {
    type: 'histogram',
    name: 'breakwater_request_duration_seconds',
    help: 'Time from receiving a client request to finishing its response, all attempts and backoff included.',
    labelNames: ['listener', 'route', 'upstream'],
    buckets: latencyBuckets,
  },
  requestsInFlight: {
    type: 'gauge',
    name: 'breakwater_requests_in_flight',
    help: 'Client requests received and not yet finished.',
    labelNames: ['listener'],
  },
  connections: {
    type: 'gauge',
    name: 'breakwater_connections',
    help: 'Client connections open on the listener, idle keep-alive connections included; refused connections are not counted.',
    labelNames: ['listener'],
  },
  connectionsRejected: {
    type: 'counter',
    name: 'breakwater_connections_rejected_total',
    help: 'Client connections closed unserved, by reason: max_connections or per_client (refused on arrival, before any byte was read), headers_timeout (the request head did not arrive within headersTimeout).',
    labelNames: ['listener', 'reason'],
  },
  websocketConnections: {
    type: 'gauge',
    name: 'breakwater_websocket_connections',
    help: "WebSocket tunnels open (after the upstream's 101, until either side closes), by the listener and route of their handshake.",
    labelNames: ['listener', 'route'],
  },
  attempts: {
    type: 'counter',
    name: 'breakwater_upstream_attempts_total',
    help: "Attempts sent to upstreams, retries and hedges included. outcome is response, connect-failure, reset, timeout, or cancelled (ended by Breakwater: a hedge that lost, a client gone); code is the status when outcome is response, else empty; grpc_code is a gRPC call's grpc-status (OK, UNAVAILABLE...), else empty.",
    labelNames: ['route', 'upstream', 'outcome', 'code', 'grpc_code'],
  },
  attemptDuration: {
    type: 'histogram',
    name: 'breakwater_upstream_attempt_duration_seconds',
    help: 'Time from starting an upstream attempt to its outcome (response headers, failure or timeout).',
    labelNames: ['route', 'upstream'],
    buckets: latencyBuckets,
  },
  attemptDeadlineRemaining: {
    type: 'histogram',
    name: 'breakwater_upstream_attempt_deadline_remaining_seconds',
    help: "What was left of the request's deadline when an upstream attempt started. Low values mean attempts start with little time to succeed.",
    labelNames: ['route', 'upstream'],
    buckets: deadlineRemainingBuckets,
  },
  reloads: {
    type: 'counter',
    name: 'breakwater_config_reloads_total',
    help: 'Config reloads by result: success, failure (the running config is kept) or unchanged (the file is the running config).',
    labelNames: ['result'],
  },
  lastReloadSuccess: {
    type: 'gauge',
    name: 'breakwater_config_last_reload_success_timestamp_seconds',
    help: 'Unix time of the last successful config reload; 0 when none since start.',
    labelNames: [],
  },
  configInfo: {
    type: 'gauge',
    name: 'breakwater_config_info',
    help: 'Always 1; hash identifies the config in force.',
    labelNames: ['hash'],
  },
  buildInfo: {
    type: 'gauge',
    name: 'breakwater_build_info',
    help: 'Always 1; the Breakwater version and the Node.js version running it.',
    labelNames: ['version', 'node_version'],
  },
} as const;

/** The results a config reload is counted under. */
export const reloadResults = ['success', 'failure', 'unchanged'] as const;
export type ReloadResultLabel = (typeof reloadResults)[number];

export interface Metrics {
  readonly registry: Registry;
  /** Once per client request, when it finishes. */
  recordRequest(record: RequestRecord): void;
  /** Once per upstream attempt. */
  recordAttempt(record: AttemptRecord): void;
  requestStarted(listener: string): void;
  requestFinished(listener: string): void;
  /** Makes the listener's connection series exist at 0 before its first connection. */
  listenerStarted(listener: string): void;
  connectionOpened(listener: string): void;
  connectionClosed(listener: string): void;
  connectionRejected(listener: string, reason: ConnectionRejection): void;
  tunnelOpened(listener: string, route: string): void;
  tunnelClosed(listener: string, route: string): void;
  recordReload(result: ReloadResultLabel, wallTimeMs: number): void;
  /** Sets breakwater_config_info{hash} to 1 and drops the series of any previous hash. */
  setConfigInfo(hash: string): void;
  /** The Prometheus text exposition format (`registry.contentType`). */
  render(): Promise<string>;
}

/** Every reason a connection is rejected for; each listener has all three series from its start. */
const connectionRejections: readonly ConnectionRejection[] = ['max_connections', 'per_client', 'headers_timeout'];

// prom-client exports these gauges with a `_total` suffix, which Prometheus reserves for
// counters (promtool rejects them). Each is the sum of its per-type sibling that stays
// exported (nodejs_active_handles{type}, ...), so nothing is lost.
const misnamedDefaultMetrics = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** One counter series and its duration histogram series. */
interface TimedSeries extends CountedSeries {
  readonly duration: HistogramSeries;
}

/** An attempt's counter and duration series, and its deadline-remaining series. */
interface AttemptSeries extends TimedSeries {
  readonly deadlineRemaining: HistogramSeries;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  for (const name of misnamedDefaultMetrics) registry.removeSingleMetric(name);

  // The hot path keeps plain numbers and hands them to prom-client when the registry is read
  // (its `collect` hook), because a prom-client increment or observation validates and hashes
  // the label set on every call (bench: bench/micro/telemetry.bench.ts).
  const inFlightByListener = new Map<string, number>();
  const connectionsByListener = new Map<string, number>();
  // listener, route: a series per pair that has had a tunnel, kept at 0 once they have all closed.
  const tunnels: SeriesIndex<{ open: number; readonly labels: readonly string[] }> = new SeriesIndex((labels) => ({ open: 0, labels }));

  const requests = new Counter({ ...families.requests, registers: [registry], collect: (): void => flushPending(requestSeries.all) });
  const grpcRequests = new Counter({ ...families.grpcRequests, registers: [registry], collect: (): void => flushPending(grpcRequestSeries.all) });
  const requestDurationSeries = batchedHistogram(registry, families.requestDuration);
  // Registered through `registers`; its only writer is its own collect hook.
  new Gauge({
    ...families.requestsInFlight,
    registers: [registry],
    collect() {
      for (const [listener, count] of inFlightByListener) this.labels(listener).set(count);
    },
  });
  new Gauge({
    ...families.connections,
    registers: [registry],
    collect() {
      for (const [listener, count] of connectionsByListener) this.labels(listener).set(count);
    },
  });
  new Gauge({
    ...families.websocketConnections,
    registers: [registry],
    collect() {
      for (const series of tunnels.all) this.labels(...series.labels).set(series.open);
    },
  });
  const connectionsRejected = new Counter({
    ...families.connectionsRejected,
    registers: [registry],
    collect: (): void => flushPending(rejectionSeries.all),
  });
  const attempts = new Counter({ ...families.attempts, registers: [registry], collect: (): void => flushPending(attemptSeries.all) });
  const attemptDurationSeries = batchedHistogram(registry, families.attemptDuration);
  const deadlineRemainingSeries = batchedHistogram(registry, families.attemptDeadlineRemaining);
  const reloads = new Counter({ ...families.reloads, registers: [registry] });
  const lastReloadSuccess = new Gauge({ ...families.lastReloadSuccess, registers: [registry] });
  const configInfo = new Gauge({ ...families.configInfo, registers: [registry] });
  const buildInfo = new Gauge({ ...families.buildInfo, registers: [registry] });

  // Each histogram series is shared by every counter series with its labels.
  // listener, route, upstream, code, reason, protocol
  const requestSeries: SeriesIndex<TimedSeries> = new SeriesIndex(([listener = '', route = '', upstream = '', code = '', reason = '', protocol = '']) => ({
    pending: 0,
    count: requests.labels(listener, route, upstream, code, reason, protocol),
    duration: requestDurationSeries.get([listener, route, upstream]),
  }));
  // listener, route, upstream, grpc_code, grpc_service, grpc_method
  const grpcRequestSeries: SeriesIndex<CountedSeries> = new SeriesIndex(([listener = '', route = '', upstream = '', code = '', service = '', method = '']) => ({
    pending: 0,
    count: grpcRequests.labels(listener, route, upstream, code, service, method),
  }));
  // listener, reason: a flood refuses connections by the thousand, so they are batched too.
  const rejectionSeries: SeriesIndex<CountedSeries> = new SeriesIndex(([listener = '', reason = '']) => ({
    pending: 0,
    count: connectionsRejected.labels(listener, reason),
  }));
  // route, upstream, outcome, code, grpc_code
  const attemptSeries: SeriesIndex<AttemptSeries> = new SeriesIndex(([route = '', upstream = '', outcome = '', code = '', grpcCode = '']) => ({
    pending: 0,
    count: attempts.labels(route, upstream, outcome, code, grpcCode),
    duration: attemptDurationSeries.get([route, upstream]),
    deadlineRemaining: deadlineRemainingSeries.get([route, upstream]),
  }));

  // Every result exists from the start, so `increase(...{result="failure"}[5m])` works before
  // the first failure.
  for (const result of reloadResults) reloads.labels(result).inc(0);
  lastReloadSuccess.set(0);
  buildInfo.labels(breakwaterVersion, process.version).set(1);

  return {
    registry,

    recordRequest(s) {
      // No route or upstream is the empty label value: it cannot clash with a configured name.
      const series = requestSeries.get([s.listener, s.route ?? '', s.upstream ?? '', s.status, s.reason ?? '', s.protocol]);
      series.pending++;
      series.duration.observe(s.durationMs / 1000);
      if (s.grpcStatus !== undefined) {
        const method = s.grpcMethod;
        grpcRequestSeries.get([s.listener, s.route ?? '', s.upstream ?? '', grpcCodeName(s.grpcStatus), method?.service ?? '', method?.method ?? '']).pending++;
      }
    },

    recordAttempt(s) {
      const outcome = s.outcome;
      const series =
        outcome.kind === 'response'
          ? attemptSeries.get([s.route, s.upstream, 'response', outcome.status, outcome.grpcStatus === undefined ? '' : grpcCodeName(outcome.grpcStatus)])
          : attemptSeries.get([s.route, s.upstream, outcome.kind === 'failure' ? outcome.failure : 'cancelled', '', '']);
      series.pending++;
      series.duration.observe(s.durationMs / 1000);
      // An attempt starts only with budget left; the clamp keeps a clock step from making the sum negative.
      series.deadlineRemaining.observe(Math.max(0, s.remainingMs) / 1000);
    },

    requestStarted(listener) {
      inFlightByListener.set(listener, (inFlightByListener.get(listener) ?? 0) + 1);
    },

    requestFinished(listener) {
      inFlightByListener.set(listener, (inFlightByListener.get(listener) ?? 0) - 1);
    },

    listenerStarted(listener) {
      if (!connectionsByListener.has(listener)) connectionsByListener.set(listener, 0);
      // prom-client exports a labelled series only once it has been incremented.
      for (const reason of connectionRejections) rejectionSeries.get([listener, reason]).count.inc(0);
    },

    connectionOpened(listener) {
      connectionsByListener.set(listener, (connectionsByListener.get(listener) ?? 0) + 1);
    },

    connectionClosed(listener) {
      connectionsByListener.set(listener, (connectionsByListener.get(listener) ?? 0) - 1);
    },

    connectionRejected(listener, reason) {
      rejectionSeries.get([listener, reason]).pending++;
    },

    tunnelOpened(listener, route) {
      tunnels.get([listener, route]).open++;
    },

    tunnelClosed(listener, route) {
      tunnels.get([listener, route]).open--;
    },

    recordReload(result, wallTimeMs) {
      reloads.labels(result).inc();
      if (result === 'success') lastReloadSuccess.set(wallTimeMs / 1000);
    },

    setConfigInfo(hash) {
      configInfo.reset();
      configInfo.labels(hash).set(1);
    },

    render() {
      return registry.metrics();
    },
  };
}
