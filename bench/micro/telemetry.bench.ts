// The per-request cost of telemetry: `npx vitest bench bench/micro`.
// recordRequest is compared with the plain prom-client calls it replaces.

import { Writable } from 'node:stream';
import { Counter, Histogram, Registry } from 'prom-client';
import { test } from 'vitest';
import type { RequestRecord } from '../../src/exchange/record.ts';
import { createLogger, writeAccessLog } from '../../src/telemetry/logger.ts';
import { createMetrics } from '../../src/telemetry/metrics.ts';
import { requestRecord } from '../../test/support/records.ts';

// A realistic mix: a few routes and upstreams, a few status codes, one local reason.
const samples: RequestRecord[] = Array.from({ length: 64 }, (_, i) =>
  requestRecord({
    listener: i % 8 === 0 ? 'inbound' : 'outbound',
    route: ['charge', 'list-items', 'get-user', 'to-local-app'][i % 4],
    upstream: ['payments', 'catalog', 'users'][i % 3],
    status: [200, 201, 404, 503][(i >> 2) % 4] ?? 200,
    reason: i % 16 === 15 ? 'timeout' : undefined,
    durationMs: (i % 13) * 0.9,
    method: 'GET',
  }),
);

test('metrics, per request', async ({ bench }) => {
  const metrics = createMetrics();
  const registry = new Registry();
  const requests = new Counter({ name: 'plain_requests_total', help: 'h', labelNames: ['listener', 'route', 'upstream', 'code', 'reason'], registers: [registry] });
  const duration = new Histogram({
    name: 'plain_request_duration_seconds',
    help: 'h',
    labelNames: ['listener', 'route', 'upstream'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  let i = 0;
  let j = 0;

  await bench.compare(
    bench('recordRequest', () => {
      metrics.recordRequest(samples[i++ & 63] as RequestRecord);
    }),
    bench('prom-client inc + observe with label objects', () => {
      const s = samples[j++ & 63] as RequestRecord;
      const route = s.route ?? '';
      const upstream = s.upstream ?? '';
      requests.inc({ listener: s.listener, route, upstream, code: String(s.status), reason: s.reason ?? '' });
      duration.observe({ listener: s.listener, route, upstream }, s.durationMs / 1000);
    }),
  );
});

test('access log, per request', async ({ bench }) => {
  const logger = createLogger({
    destination: new Writable({
      write(_chunk, _encoding, done) {
        done();
      },
    }),
  });
  const entry = requestRecord({ requestId: '5f1c0a4e-9d0b-4b53-8f1e-2f7e0b1c9a77', path: '/charge/42?amount=5', status: 201, durationMs: 12.3456 });

  await bench('writeAccessLog', () => {
    writeAccessLog(logger, entry);
  }).run();
});
