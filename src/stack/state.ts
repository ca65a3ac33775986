// The running state a config becomes: its upstreams' pools, each route's composed handler and
// the router over them. Built once per config version; requests in flight keep the state they
// started with, and policy state that outlives a config lives in PolicyRegistries.

import type { Config } from '../config/types.ts';
import type { PolicyEvents } from '../exchange/events.ts';
import type { AttemptObserver } from '../exchange/record.ts';
import type { ActiveRoute, ProxyState } from '../proxy/listener.ts';
import { compileRouter } from '../routing/match.ts';
import type { Clock } from '../runtime/clock.ts';
import type { Random } from '../runtime/random.ts';
import type { DeadLetterKeeper } from '../policies/dead-letter/keeper.ts';
import type { StoreRegistry } from '../stores/registry.ts';
import { createResolve, type Resolve } from '../upstream/discovery.ts';
import { Upstream } from '../upstream/upstream.ts';
import { buildHandshakeHandler, buildRouteHandler, type PolicyRegistries } from './build.ts';

export interface RunningState extends ProxyState {
  readonly upstreams: ReadonlyMap<string, Upstream>;
  readonly routes: readonly ActiveRoute[];
  /** Identifies the config in force (breakwater_config_info). */
  readonly hash: string;
  /** How dns:// endpoints are resolved under this config's `dns`. */
  readonly resolve: Resolve;
}

export interface StateDependencies {
  readonly registries: PolicyRegistries;
  readonly stores: StoreRegistry;
  readonly clock: Clock;
  readonly random: Random;
  readonly events: PolicyEvents;
  readonly observeAttempt: AttemptObserver;
  /** Told which routes keep dead letters, for their retention and gauges. */
  readonly deadLetters?: DeadLetterKeeper;
}

/**
 * The state `config` runs in. Upstreams whose connection settings did not change keep the
 * previous state's pools, so a reload does not drop warm connections.
 */
export function buildRunningState(config: Config, hash: string, previous: RunningState | undefined, deps: StateDependencies): RunningState {
  deps.stores.retainFor(config.stores);
  // The same DNS servers keep the same resolver, so that upstreams may keep their endpoints.
  const sameDns = previous !== undefined && JSON.stringify(previous.config.dns) === JSON.stringify(config.dns);
  const resolve = sameDns ? previous.resolve : createResolve(config.dns);
  const upstreams = new Map<string, Upstream>();
  for (const [name, upstreamConfig] of config.upstreams) {
    const reuse = previous?.upstreams.get(name);
    upstreams.set(
      name,
      new Upstream(
        upstreamConfig,
        { random: deps.random, clock: deps.clock, events: deps.events, resolve, maxResponseHeaderBytes: config.limits.maxResponseHeaderBytes },
        reuse,
      ),
    );
  }
  const routes: ActiveRoute[] = config.routes.map((route) => ({
    name: route.name,
    listener: route.listener,
    upstream: route.upstream,
    timeoutMs: route.timeoutMs,
    match: route.match,
    grpcMethodLabels: route.telemetry?.grpcMethods === true,
    handler: buildRouteHandler(route, { ...deps, upstreams, deadlineHeader: config.deadline.header }),
    handshake: buildHandshakeHandler(route, { ...deps, upstreams, deadlineHeader: config.deadline.header }),
    websocket: route.websocket,
  }));
  deps.registries.retainFor(config);
  deps.deadLetters?.retain(
    config.routes.flatMap((route) => (route.deadLetter === undefined ? [] : [{ route: route.name, config: route.deadLetter, log: deps.stores.get(route.deadLetter.store).log }])),
  );
  return {
    config,
    router: compileRouter(routes),
    routes,
    upstreams,
    hash,
    resolve,
    // The caller's budget headers are replaced by the budget of each attempt; a gRPC call's
    // attempts carry their own grpc-timeout, whether or not the caller's is read as a budget.
    consumedHeaders: new Set([...config.deadline.accept, config.deadline.header, 'grpc-timeout']),
  };
}

/** The upstreams of `previous` whose pools `next` does not keep: they close once their requests finish. */
export function retiredUpstreams(previous: RunningState, next: RunningState): Upstream[] {
  return [...previous.upstreams].filter(([name, upstream]) => next.upstreams.get(name)?.endpointSet !== upstream.endpointSet).map(([, upstream]) => upstream);
}
