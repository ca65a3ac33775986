import { Pool } from 'undici';
import type { UpstreamConfig } from '../config/types.ts';
import type { Random } from '../runtime/random.ts';
import { createBalancer, type Pick } from './balancer.ts';

export interface Endpoint {
  /** The upstream's name. */
  readonly upstream: string;
  readonly origin: string;
  readonly pool: Pool;
  inFlight: number;
}

/** One configured destination: a keep-alive pool per endpoint and a balancer across them. */
export class Upstream {
  readonly name: string;
  readonly config: UpstreamConfig;
  readonly endpoints: readonly Endpoint[];
  readonly #pick: Pick<Endpoint>;

  /** `reuse`: an upstream of the previous config whose connections this one keeps. */
  constructor(config: UpstreamConfig, random: Random, reuse?: Upstream) {
    this.name = config.name;
    this.config = config;
    this.endpoints = reuse?.endpoints ?? config.endpoints.map((origin) => ({
      upstream: config.name,
      origin,
      inFlight: 0,
      pool: new Pool(origin, {
        connections: config.maxConnections ?? null,
        connect: { timeout: config.connectTimeoutMs },
        // The route timeout bounds the whole exchange; undici's own timers would only add work.
        headersTimeout: 0,
        bodyTimeout: 0,
      }),
    }));
    this.#pick = createBalancer<Endpoint>(config.loadBalancing, random);
  }

  /** An endpoint for the next attempt, passing over the origins in `tried` while others remain. */
  pick(tried: readonly string[]): Endpoint {
    if (tried.length === 0) return this.#pick(this.endpoints);
    return this.#pick(this.endpoints, this.endpoints.filter((endpoint) => tried.includes(endpoint.origin)));
  }

  /** True when `config` can be served by this upstream's pools as they are. */
  sameConnectionSettings(config: UpstreamConfig): boolean {
    const current = this.config;
    return (
      current.connectTimeoutMs === config.connectTimeoutMs &&
      current.maxConnections === config.maxConnections &&
      current.endpoints.length === config.endpoints.length &&
      current.endpoints.every((origin, index) => origin === config.endpoints[index])
    );
  }

  /** Waits for requests in flight, then closes every connection. */
  async close(): Promise<void> {
    await Promise.all(this.endpoints.map((endpoint) => endpoint.pool.close()));
  }

  /** Closes every connection now, failing requests in flight. */
  async destroy(): Promise<void> {
    await Promise.all(this.endpoints.map((endpoint) => endpoint.pool.destroy()));
  }
}
