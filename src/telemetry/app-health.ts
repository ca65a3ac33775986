// The service's own health checks, served on the telemetry port as Istio's agent serves them:
// the service listens on 127.0.0.1, where kubelet cannot reach it, so kubelet probes
// /app-health/NAME/KIND here and Breakwater calls the service's endpoint over loopback. Without
// this the pod would turn Ready when Breakwater is ready, whether the service is up or not.

import { request } from '../runtime/node-http.ts';
import type { AppProbeConfig, AppProbeKind, AppProbeSet } from '../config/types.ts';
import type { Clock } from '../runtime/clock.ts';

export const APP_HEALTH_PREFIX = '/app-health/';

const KINDS: ReadonlySet<string> = new Set<AppProbeKind>(['readyz', 'livez', 'startupz']);

export interface AppProbeReply {
  readonly status: number;
  readonly body: string;
}

export interface AppHealthOptions {
  /** Read at each request, so that a config reload changes the probes at once. */
  readonly probes: () => Readonly<Record<string, AppProbeSet>>;
  readonly clock: Clock;
}

/** Answers `/app-health/NAME/KIND` from the service's own endpoint. */
export class AppHealth {
  readonly #options: AppHealthOptions;
  /**
   * One call to the service per probe at a time: kubelet's next period, or a second caller,
   * shares the call in flight instead of piling connections onto a service that is already slow.
   */
  readonly #inFlight = new Map<string, Promise<AppProbeReply>>();

  constructor(options: AppHealthOptions) {
    this.#options = options;
  }

  /** The reply for a path under APP_HEALTH_PREFIX (query already removed). */
  answer(path: string, userAgent: string | undefined): Promise<AppProbeReply> {
    const [name = '', kind = '', ...rest] = path.slice(APP_HEALTH_PREFIX.length).split('/');
    const probes = this.#options.probes();
    const probe = rest.length === 0 && KINDS.has(kind) && Object.hasOwn(probes, name) ? probes[name]![kind as AppProbeKind] : undefined;
    if (probe === undefined) {
      return Promise.resolve({ status: 404, body: `no app probe ${name}/${kind} is configured (telemetry.appProbes)\n` });
    }
    // Keyed by target too, so a reload that moves the probe never shares a call to the old target.
    const key = `${name}/${kind} ${probe.port}${probe.path} ${probe.timeoutMs}`;
    let call = this.#inFlight.get(key);
    if (call === undefined) {
      call = callService(probe, userAgent, this.#options.clock).finally(() => this.#inFlight.delete(key));
      this.#inFlight.set(key, call);
    }
    return call;
  }
}

/**
 * GETs the service's endpoint on a fresh connection, as kubelet would, and resolves with the
 * service's status, or 503 when it cannot be reached or does not answer within the timeout.
 * Never rejects.
 */
function callService(probe: AppProbeConfig, userAgent: string | undefined, clock: Clock): Promise<AppProbeReply> {
  const target = `http://127.0.0.1:${probe.port}${probe.path}`;
  return new Promise((resolve) => {
    let settled = false;
    const settle = (reply: AppProbeReply): void => {
      if (settled) return;
      settled = true;
      resolve(reply);
    };
    const req = request({
      host: '127.0.0.1',
      port: probe.port,
      path: probe.path,
      method: 'GET',
      // A pooled connection could outlive a restart of the service and report on a dead socket.
      agent: false,
      headers: { 'user-agent': userAgent ?? 'breakwater-app-probe', connection: 'close' },
    });
    // Bounds the whole exchange, a body that never ends included: the connection is gone
    // by the timeout at the latest.
    const cancelTimer = clock.setTimer(probe.timeoutMs, () => {
      settle({ status: 503, body: `app probe ${target}: no answer within ${probe.timeoutMs} ms\n` });
      req.destroy();
    });
    req.on('close', cancelTimer);
    req.on('response', (res) => {
      const status = res.statusCode ?? 502;
      // Only the status matters, as for kubelet; the body is read and dropped so the service
      // can finish its response.
      res.on('error', () => undefined);
      res.resume();
      res.on('end', () => req.destroy());
      settle({ status, body: `app probe ${target}: ${status}\n` });
    });
    req.on('error', (error: NodeJS.ErrnoException) => {
      const cause = error.code === 'ECONNREFUSED' ? 'connection refused' : error.code === 'ECONNRESET' ? 'connection reset' : (error.code ?? error.message);
      settle({ status: 503, body: `app probe ${target}: ${cause}\n` });
    });
    req.end();
  });
}
