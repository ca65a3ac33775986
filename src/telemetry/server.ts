// The telemetry server (default 0.0.0.0:15020): what Prometheus scrapes and what the kubelet
// probes, Breakwater's own health and the service's (/app-health/). It stays up while
// Breakwater drains, so /readyz can report the drain.

import type { ServerResponse } from 'node:http';
import { createServer } from '../runtime/node-http.ts';
import type { Address, AppProbeSet } from '../config/types.ts';
import { systemClock, type Clock } from '../runtime/clock.ts';
import { APP_HEALTH_PREFIX, AppHealth } from './app-health.ts';
import { listen, lookupRoute, type RouteTable, type RunningServer } from './http-server.ts';
import type { Metrics } from './metrics.ts';

export interface HealthSource {
  /** Config loaded, listeners up, not draining. */
  isReady(): boolean;
}

export interface TelemetryServerOptions {
  readonly address: Address;
  readonly metrics: Metrics;
  readonly health: HealthSource;
  /** The service's probes (telemetry.appProbes), read at each request. Absent: none. */
  readonly appProbes?: () => Readonly<Record<string, AppProbeSet>>;
  readonly clock?: Clock;
}

interface TextReply {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
}

const plainText = 'text/plain; charset=utf-8';

export function startTelemetryServer(opts: TelemetryServerOptions): Promise<RunningServer> {
  const { metrics, health } = opts;
  const routes: RouteTable<() => Promise<TextReply> | TextReply> = new Map([
    ['/metrics', { GET: async () => ({ status: 200, contentType: metrics.registry.contentType, body: await metrics.render() }) }],
    ['/healthz', { GET: () => ({ status: 200, contentType: plainText, body: 'ok\n' }) }],
    [
      '/readyz',
      {
        GET: () =>
          health.isReady()
            ? { status: 200, contentType: plainText, body: 'ready\n' }
            : { status: 503, contentType: plainText, body: 'not ready\n' },
      },
    ],
  ]);

  const appHealth = new AppHealth({ probes: opts.appProbes ?? (() => ({})), clock: opts.clock ?? systemClock });

  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0]!;
    if (path.startsWith(APP_HEALTH_PREFIX)) {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.setHeader('allow', 'GET, HEAD');
        return send(res, { status: 405, contentType: plainText, body: 'method not allowed\n' });
      }
      return void appHealth.answer(path, req.headers['user-agent']).then((reply) => send(res, { ...reply, contentType: plainText }));
    }
    const route = lookupRoute(routes, req);
    switch (route.kind) {
      case 'not-found':
        return send(res, { status: 404, contentType: plainText, body: 'not found\n' });
      case 'wrong-method':
        res.setHeader('allow', route.allow);
        return send(res, { status: 405, contentType: plainText, body: 'method not allowed\n' });
      case 'found':
        return void Promise.resolve()
          .then(route.handler)
          .then(
            (reply) => send(res, reply),
            (error: unknown) => send(res, { status: 500, contentType: plainText, body: `${String(error)}\n` }),
          );
      default:
        return route satisfies never;
    }
  });
  return listen(server, opts.address);
}

function send(res: ServerResponse, reply: TextReply): void {
  // The caller (kubelet, after its own timeout) may be gone by the time a probe answers.
  if (res.destroyed) return;
  res.writeHead(reply.status, { 'content-type': reply.contentType, 'content-length': Buffer.byteLength(reply.body) });
  res.end(reply.body);
}
