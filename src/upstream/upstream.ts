import type { UpstreamConfig } from '../config/types.ts';
import { ProxyError } from '../exchange/errors.ts';
import type { PolicyEvents } from '../exchange/events.ts';
import type { AttemptOutcome } from '../exchange/outcome.ts';
import { systemClock, type Clock } from '../runtime/clock.ts';
import type { Random } from '../runtime/random.ts';
import { createBalancer, type Pick } from './balancer.ts';
import { createResolve, type Resolve } from './discovery.ts';
import { EndpointSet, type DiscoveryRow, type Endpoint, type EndpointRow } from './endpoints.ts';

export type { Endpoint } from './endpoints.ts';

export interface UpstreamDependencies {
  readonly random: Random;
  /** Default: the system clock. */
  readonly clock?: Clock;
  /** Where ejections and discovery changes are told; default: nowhere. */
  readonly events?: PolicyEvents;
  /** How dns:// endpoints are resolved; default: the system's resolver. */
  readonly resolve?: Resolve;
  /** Response heads larger than this fail the attempt (limits.maxResponseHeaderBytes); default 64 KiB. */
  readonly maxResponseHeaderBytes?: number;
}

const defaultMaxResponseHeaderBytes = 64 * 1024;

const noEvents: PolicyEvents = { emit: () => undefined };
let systemResolve: Resolve | undefined;

/** One upstream as /endpoints shows it. */
export interface UpstreamEndpointsRow {
  readonly upstream: string;
  readonly loadBalancing: string;
  readonly outlierDetection: boolean;
  readonly endpoints: readonly EndpointRow[];
  /** Present when some endpoints come from DNS. */
  readonly discovery?: readonly DiscoveryRow[];
}

/**
 * One configured destination: its endpoints (a keep-alive pool each, discovered from DNS where
 * the config says dns://, ejected by outlier detection where it is on) and a balancer across
 * the ones that may be picked.
 */
export class Upstream {
  readonly name: string;
  readonly config: UpstreamConfig;
  /** The endpoints with their pools; shared with the upstream of the previous config when its settings are the same. */
  readonly endpointSet: EndpointSet;
  /** Response heads larger than this fail the attempt. */
  readonly maxResponseHeaderBytes: number;
  readonly #pick: Pick<Endpoint>;
  readonly #clock: Clock;

  /** `reuse`: the upstream of the previous config, whose endpoints and connections this one keeps when it can. */
  constructor(config: UpstreamConfig, deps: UpstreamDependencies | Random, reuse?: Upstream) {
    const dependencies: UpstreamDependencies = typeof deps === 'function' ? { random: deps } : deps;
    const clock = dependencies.clock ?? systemClock;
    this.name = config.name;
    this.config = config;
    this.#clock = clock;
    const resolve = dependencies.resolve ?? (systemResolve ??= createResolve({ servers: [] }));
    const maxResponseHeaderBytes = dependencies.maxResponseHeaderBytes ?? defaultMaxResponseHeaderBytes;
    this.maxResponseHeaderBytes = maxResponseHeaderBytes;
    if (reuse !== undefined && reuse.endpointSet.resolve === resolve && reuse.endpointSet.serves(config, maxResponseHeaderBytes)) {
      this.endpointSet = reuse.endpointSet;
      this.endpointSet.configure(config.outlierDetection);
    } else {
      this.endpointSet = new EndpointSet(
        config,
        {
          clock,
          random: dependencies.random,
          events: dependencies.events ?? noEvents,
          resolve,
          maxResponseHeaderBytes,
        },
        // The same names start from the addresses last seen, not from nothing, while they are looked up again.
        reuse?.endpointSet.addresses,
      );
    }
    this.#pick = createBalancer<Endpoint>(config.loadBalancing, dependencies.random, clock);
  }

  /** Every endpoint, ejected ones included. */
  get endpoints(): readonly Endpoint[] {
    return this.endpointSet.endpoints;
  }

  /**
   * An endpoint for the next attempt among those outlier detection has not ejected, passing
   * over the origins in `tried` while others remain. Throws a connect-failure when there is
   * none (no DNS answer yet): the request never left, so it may be retried.
   */
  pick(tried: readonly string[]): Endpoint {
    const candidates = this.endpointSet.available(this.#clock.now());
    if (candidates.length === 0) {
      throw new ProxyError('upstream_unavailable', { message: this.endpointSet.emptyReason(), attemptFailure: 'connect-failure' });
    }
    if (tried.length === 0) return this.#pick(candidates);
    return this.#pick(candidates, candidates.filter((endpoint) => tried.includes(endpoint.origin)));
  }

  /** True when an endpoint the balancer may pick now is not among the origins in `tried`. */
  hasUntried(tried: readonly string[]): boolean {
    const candidates = this.endpointSet.available(this.#clock.now());
    return candidates.some((endpoint) => !tried.includes(endpoint.origin));
  }

  /** Told of each attempt's end; `outcome` undefined when the attempt was cancelled. */
  attemptEnded(endpoint: Endpoint, outcome: AttemptOutcome | undefined, startedAt: number, now: number, respondedAt?: number): void {
    this.endpointSet.attemptEnded(endpoint, outcome, startedAt, now, respondedAt);
  }

  /** True when `config` can be served by this upstream's pools as they are. */
  sameConnectionSettings(config: UpstreamConfig): boolean {
    return this.endpointSet.serves(config, this.maxResponseHeaderBytes);
  }

  /** The upstream's endpoints as /endpoints shows them. */
  snapshot(): UpstreamEndpointsRow {
    const discovery = this.endpointSet.discoveryRows();
    return {
      upstream: this.name,
      loadBalancing: this.config.loadBalancing,
      outlierDetection: this.config.outlierDetection !== undefined,
      endpoints: this.endpointSet.rows(this.#clock.now()),
      ...(discovery.length === 0 ? {} : { discovery }),
    };
  }

  /** Waits for requests in flight, then closes every connection. */
  close(): Promise<void> {
    return this.endpointSet.close();
  }

  /** Closes every connection now, failing requests in flight. */
  destroy(): Promise<void> {
    return this.endpointSet.destroy();
  }
}
