// What the admin server reads and steers, taken from the running sidecar.

import type { BreakerRegistry } from '../policies/breaker/registry.ts';
import type { LatencyWindows } from '../policies/deadline/registry.ts';
import type { Bulkheads } from '../policies/bulkhead/registry.ts';
import { redactConfig, type ServerAddresses } from '../config/redact.ts';
import type { Clock } from '../runtime/clock.ts';
import type { RunningState } from '../stack/state.ts';
import type { StoreRegistry } from '../stores/registry.ts';
import type { ReloadHistory } from './reloads.ts';
import type { AdminSource } from './server.ts';

export interface AdminSourceDeps {
  readonly state: () => RunningState;
  /** Where the telemetry and admin servers run (they move only at a restart); undefined before they start. */
  readonly servers?: () => ServerAddresses | undefined;
  readonly breakers: BreakerRegistry;
  readonly latencies: LatencyWindows;
  readonly bulkheads: Bulkheads;
  readonly reloads: ReloadHistory;
  readonly stores: StoreRegistry;
  readonly clock: Clock;
  readonly reload: () => Promise<{ ok: true; changed: boolean } | { ok: false; problems: string[] }>;
}

export function adminSource(deps: AdminSourceDeps): AdminSource {
  const { state, breakers, clock } = deps;
  return {
    config: () => redactConfig(state().config, deps.servers?.()),
    routes: () => {
      const adaptive = new Map(deps.latencies.adaptiveTimeouts(clock.now()).map(({ route, timeoutMs }) => [route, timeoutMs]));
      return state().routes.map((route) => ({
        name: route.name,
        listener: route.listener,
        match: route.match,
        upstream: route.upstream,
        timeoutMs: route.timeoutMs,
        // The per-try timeout a percentile gives now, for a route with an adaptive one.
        ...(adaptive.has(route.name) ? { adaptivePerTryTimeoutMs: Math.round(adaptive.get(route.name)!) } : {}),
      }));
    },
    circuits: () => breakers.snapshot(clock.now()),
    endpoints: () => [...state().upstreams.values()].map((upstream) => upstream.snapshot()),
    bulkheads: () => deps.bulkheads.snapshot(),
    reloads: () => deps.reloads.list(),
    stores: () => deps.stores.health(),
    setCircuit: (name, mode) => breakers.setMode(name, mode),
    reload: deps.reload,
  };
}
