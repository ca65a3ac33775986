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

export interface UpstreamOptions {
  /** An upstream of the previous config whose connections this one keeps. */
  readonly reuse?: Upstream | undefined;
  /** Response heads larger than this fail the attempt (limits.maxResponseHeaderBytes). */
  readonly maxResponseHeaderBytes: number;
}

/** One configured destination: a keep-alive pool per endpoint and a balancer across them. */
export class Upstream {
  readonly name: string;
  readonly config: UpstreamConfig;
  readonly endpoints: readonly Endpoint[];
  readonly maxResponseHeaderBytes: number;
  readonly #pick: Pick<Endpoint>;

  constructor(config: UpstreamConfig, random: Random, options: UpstreamOptions) {
    this.name = config.name;
    this.config = config;
    this.maxResponseHeaderBytes = options.maxResponseHeaderBytes;
    this.endpoints = options.reuse?.endpoints ?? config.endpoints.map((origin) => ({
      upstream: config.name,
      origin,
      inFlight: 0,
      pool: new Pool(origin, {
        connections: config.maxConnections ?? null,
        connect: { timeout: config.connectTimeoutMs },
        // The wait for a response head is the route's and the per-try timeout's business: an
        // upstream may rightly think for a long time (a long poll) before it answers.
        headersTimeout: 0,
        // Between two pieces of a body, silence means a stuck upstream whatever the route
        // allows: the connection is given up after idleTimeout.
        bodyTimeout: config.idleTimeoutMs,
        maxHeaderSize: options.maxResponseHeaderBytes,
      }),
    }));
    this.#pick = createBalancer<Endpoint>(config.loadBalancing, random);
  }

  pick(): Endpoint {
    return this.#pick(this.endpoints);
  }

  /** True when `config` can be served by this upstream's pools as they are. */
  sameConnectionSettings(config: UpstreamConfig, maxResponseHeaderBytes: number): boolean {
    const current = this.config;
    return (
      current.connectTimeoutMs === config.connectTimeoutMs &&
      current.idleTimeoutMs === config.idleTimeoutMs &&
      this.maxResponseHeaderBytes === maxResponseHeaderBytes &&
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
