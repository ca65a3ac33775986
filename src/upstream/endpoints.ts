// An upstream's endpoints: a keep-alive pool per endpoint, the dns:// names they are discovered
// from, the latency each shows and which of them outlier detection has ejected. This is the
// part of an upstream that outlives a reload while its connection settings hold, so that a
// reload keeps warm connections, discovered endpoints, ejections and latency estimates.

import type { Dispatcher } from 'undici';
import Pool from 'undici/lib/dispatcher/pool.js';
import type { OutlierDetectionConfig, UpstreamConfig } from '../config/types.ts';
import type { PolicyEvents } from '../exchange/events.ts';
import { matchesFailOn, type AttemptOutcome } from '../exchange/outcome.ts';
import type { Clock } from '../runtime/clock.ts';
import type { Random } from '../runtime/random.ts';
import { dnsSource, lookupFailure, originOf, type DnsSource, type Resolve } from './discovery.ts';
import { PeakEwma } from './ewma.ts';
import { H2cPool, type DispatchOptions } from './h2c-pool.ts';
import { OutlierDetector, type EndpointHealth } from './outlier.ts';

/** The default of `dnsRefresh`, for configs built without the normaliser. */
const defaultDnsRefreshMs = 5_000;

/**
 * The connections to one endpoint: undici's Pool for HTTP/1.1, an H2cPool on node:http2 for
 * h2c; both take an attempt with an undici dispatch handler.
 */
export interface ConnectionPool {
  dispatch(options: DispatchOptions & Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean;
  /** Waits for requests in flight, then closes every connection. */
  close(): Promise<void>;
  /** Closes every connection now, failing requests in flight. */
  destroy(): Promise<void>;
}

export interface Endpoint {
  /** The upstream's name. */
  readonly upstream: string;
  readonly origin: string;
  readonly pool: ConnectionPool;
  /** Attempts sent to this endpoint and not yet over. */
  inFlight: number;
  /** Its latency as peak-EWMA balancing sees it; kept whatever the balancing, for /endpoints. */
  readonly latency: PeakEwma;
  /** The dns:// endpoint it was found through; undefined for an origin the config names. */
  readonly source: string | undefined;
}

export interface EndpointSetDependencies {
  readonly clock: Clock;
  readonly random: Random;
  readonly events: PolicyEvents;
  readonly resolve: Resolve;
  /** Response heads larger than this fail the attempt (limits.maxResponseHeaderBytes). */
  readonly maxResponseHeaderBytes: number;
}

/** One endpoint as /endpoints and the ejection gauge show it. */
export interface EndpointRow {
  readonly endpoint: string;
  /** The dns:// endpoint it was found through; absent for one the config names. */
  readonly source?: string;
  /** draining: gone from discovery, finishing the requests it has. */
  readonly state: 'active' | 'ejected' | 'draining';
  readonly reason?: string;
  /** Wall-clock ISO time the ejection ends. */
  readonly ejectedUntil?: string;
  readonly inFlight: number;
  readonly latencyEwmaMs: number;
}

/** One dns:// endpoint's discovery as /endpoints shows it. */
export interface DiscoveryRow {
  readonly source: string;
  readonly addresses: readonly string[];
  /** Wall-clock ISO time of the last lookup that answered; absent before the first. */
  readonly lastResolved?: string;
  /** Why the last lookup failed; absent when it answered. */
  readonly lastError?: string;
}

interface Discovery {
  readonly dns: DnsSource;
  /** The last good answer; undefined before the first. */
  addresses: readonly string[] | undefined;
  resolvedAt: number | undefined;
  error: string | undefined;
}

export class EndpointSet {
  readonly upstream: string;
  readonly #config: UpstreamConfig;
  readonly #deps: EndpointSetDependencies;
  readonly #discoveries: Discovery[] = [];
  readonly #staticOrigins: readonly string[];
  #endpoints: readonly Endpoint[] = [];
  /** Endpoints gone from discovery whose pools are closing once their requests are done. */
  readonly #draining = new Set<Endpoint>();
  #detector: OutlierDetector | undefined;
  #outlierKey: string | undefined;
  // The endpoints the balancer may pick, recomputed when the list or an ejection changes.
  #available: readonly Endpoint[] = [];
  #availableFor: { list: readonly Endpoint[]; version: number } | undefined;
  #cancelRefresh: (() => void) | undefined;
  #closed = false;
  readonly #firstLookups: Promise<void>;

  /** `seed`: the last addresses of each dns:// endpoint, from the set this one replaces. */
  constructor(config: UpstreamConfig, deps: EndpointSetDependencies, seed?: ReadonlyMap<string, readonly string[]>) {
    this.upstream = config.name;
    this.#config = config;
    this.#deps = deps;
    const origins: string[] = [];
    for (const text of config.endpoints) {
      const dns = dnsSource(text);
      if (dns === undefined) origins.push(text);
      else this.#discoveries.push({ dns, addresses: seed?.get(dns.source), resolvedAt: undefined, error: undefined });
    }
    this.#staticOrigins = origins;
    this.configure(config.outlierDetection);
    this.#rebuild();
    this.#firstLookups = this.#discoveries.length === 0 ? Promise.resolve() : this.#refreshAll().then(() => this.#schedule());
  }

  /** Every endpoint, ejected ones included, in a list that is replaced (never changed) when discovery changes it. */
  get endpoints(): readonly Endpoint[] {
    return this.#endpoints;
  }

  /** How its dns:// endpoints are resolved. */
  get resolve(): Resolve {
    return this.#deps.resolve;
  }

  /** Settles once every dns:// endpoint has been looked up once (successfully or not). */
  get discovered(): Promise<void> {
    return this.#firstLookups;
  }

  /** The last addresses of each dns:// endpoint, to seed a set that replaces this one. */
  get addresses(): ReadonlyMap<string, readonly string[]> {
    const seed = new Map<string, readonly string[]>();
    for (const discovery of this.#discoveries) if (discovery.addresses !== undefined) seed.set(discovery.dns.source, discovery.addresses);
    return seed;
  }

  /** True when this set can serve `config` as it is: same endpoints and connection settings. */
  serves(config: UpstreamConfig, maxResponseHeaderBytes: number): boolean {
    const current = this.#config;
    return (
      (current.protocol ?? 'http1') === (config.protocol ?? 'http1') &&
      current.connectTimeoutMs === config.connectTimeoutMs &&
      current.idleTimeoutMs === config.idleTimeoutMs &&
      this.#deps.maxResponseHeaderBytes === maxResponseHeaderBytes &&
      current.maxConnections === config.maxConnections &&
      (current.dnsRefreshMs ?? defaultDnsRefreshMs) === (config.dnsRefreshMs ?? defaultDnsRefreshMs) &&
      current.endpoints.length === config.endpoints.length &&
      current.endpoints.every((origin, index) => origin === config.endpoints[index])
    );
  }

  /**
   * Takes the outlier detection of a (re)loaded config. The same settings keep the detector,
   * with its ejections and statistics; new ones start afresh, with every endpoint active.
   */
  configure(outlier: OutlierDetectionConfig | undefined): void {
    const key = outlier === undefined ? undefined : JSON.stringify(outlier);
    if (key === this.#outlierKey) return;
    this.#outlierKey = key;
    const { events, random, clock } = this.#deps;
    const upstream = this.upstream;
    this.#detector =
      outlier === undefined
        ? undefined
        : new OutlierDetector(outlier, random, (change) =>
            events.emit(
              change.kind === 'ejected'
                ? { type: 'endpoint-ejected', upstream, endpoint: change.endpoint, reason: change.reason, durationMs: change.durationMs, ejections: change.ejections }
                : { type: 'endpoint-returned', upstream, endpoint: change.endpoint },
            ),
          );
    this.#detector?.setEndpoints(
      this.#endpoints.map((endpoint) => endpoint.origin),
      clock.now(),
    );
    this.#availableFor = undefined;
  }

  /** The endpoints an attempt may go to as of `now`: all of them but the ejected ones. */
  available(now: number): readonly Endpoint[] {
    const detector = this.#detector;
    if (detector === undefined) return this.#endpoints;
    detector.settle(now);
    const cached = this.#availableFor;
    if (cached === undefined || cached.list !== this.#endpoints || cached.version !== detector.version) {
      this.#available = this.#endpoints.filter((endpoint) => !detector.isEjected(endpoint.origin));
      this.#availableFor = { list: this.#endpoints, version: detector.version };
    }
    return this.#available;
  }

  /**
   * Told of each attempt's end on `endpoint`: its outcome, or undefined when it was cancelled
   * (a hedge that lost, a client that left). The latency estimate and the latency rule take the
   * time to an answer (a status below 500, 429 aside), or the time waited before a timeout;
   * outlier detection judges the outcome by the upstream's failOn. A cancelled attempt is no
   * failure and no answer to time, but it did go unanswered for as long as it ran: the latency
   * estimate takes that as a floor. A gRPC call's time is to its response head (`respondedAt`),
   * its outcome having come later with the trailers.
   */
  attemptEnded(endpoint: Endpoint, outcome: AttemptOutcome | undefined, startedAt: number, now: number, respondedAt?: number): void {
    if (outcome === undefined) {
      // Without it, an endpoint whose slow attempts are all beaten by hedges would have no slow
      // sample at all, its estimate would fade, and it would draw ever more of the traffic.
      endpoint.latency.observeAtLeast(now - startedAt, now);
      return;
    }
    // A refusal (a 503 from a replica that sheds load, a 5xx from a broken one) comes back
    // quickly without the work being done: counted as latency, it would make the endpoint that
    // refuses look the fastest, draw traffic to it, and get the ones doing the work ejected
    // for being slower.
    const answered = outcome.kind === 'response' ? outcome.status < 500 && outcome.status !== 429 : outcome.failure === 'timeout';
    // A gRPC call's outcome comes with its trailers: its latency is the time to its head.
    const waited = respondedAt !== undefined || answered;
    const latencyMs = waited ? (respondedAt ?? now) - startedAt : undefined;
    if (latencyMs !== undefined) endpoint.latency.observe(latencyMs, now);
    const detector = this.#detector;
    if (detector !== undefined) {
      detector.record(endpoint.origin, { failed: matchesFailOn(outcome, detector.config.failOn), latencyMs, startedAt }, now);
    }
  }

  /** Every endpoint with its state, in-flight count and latency, the draining ones last. */
  rows(now: number): EndpointRow[] {
    const wall = this.#deps.clock.wallNow();
    const rows: EndpointRow[] = this.#endpoints.map((endpoint) => {
      const health: EndpointHealth = this.#detector?.health(endpoint.origin, now) ?? { kind: 'active' };
      return {
        endpoint: endpoint.origin,
        ...(endpoint.source === undefined ? {} : { source: endpoint.source }),
        state: health.kind,
        ...(health.kind === 'ejected' ? { reason: health.reason, ejectedUntil: new Date(wall + (health.until - now)).toISOString() } : {}),
        inFlight: endpoint.inFlight,
        latencyEwmaMs: round(endpoint.latency.estimate(now)),
      };
    });
    for (const endpoint of this.#draining) {
      rows.push({
        endpoint: endpoint.origin,
        ...(endpoint.source === undefined ? {} : { source: endpoint.source }),
        state: 'draining',
        inFlight: endpoint.inFlight,
        latencyEwmaMs: round(endpoint.latency.estimate(now)),
      });
    }
    return rows;
  }

  discoveryRows(): DiscoveryRow[] {
    const { clock } = this.#deps;
    const now = clock.now();
    const wall = clock.wallNow();
    return this.#discoveries.map((discovery) => ({
      source: discovery.dns.source,
      addresses: discovery.addresses ?? [],
      ...(discovery.resolvedAt === undefined ? {} : { lastResolved: new Date(wall - (now - discovery.resolvedAt)).toISOString() }),
      ...(discovery.error === undefined ? {} : { lastError: discovery.error }),
    }));
  }

  /** Why there is no endpoint to send to, for the 503 of a request that finds none. */
  emptyReason(): string {
    const errors = this.#discoveries.map((discovery) =>
      discovery.error !== undefined ? `DNS lookup of ${discovery.dns.name} failed: ${discovery.error}` : `${discovery.dns.name} not resolved yet`,
    );
    return `upstream ${this.upstream} has no endpoints${errors.length === 0 ? '' : ` (${errors.join('; ')})`}`;
  }

  /** Stops discovery, waits for requests in flight, then closes every connection. */
  async close(): Promise<void> {
    this.#stop();
    await Promise.all([...this.#endpoints, ...this.#draining].map((endpoint) => endpoint.pool.close()));
  }

  /** Stops discovery and closes every connection now, failing requests in flight. */
  async destroy(): Promise<void> {
    this.#stop();
    await Promise.all([...this.#endpoints, ...this.#draining].map((endpoint) => endpoint.pool.destroy()));
  }

  #stop(): void {
    this.#closed = true;
    this.#cancelRefresh?.();
    this.#cancelRefresh = undefined;
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#cancelRefresh = this.#deps.clock.setTimer(this.#config.dnsRefreshMs ?? defaultDnsRefreshMs, () => {
      this.#cancelRefresh = undefined;
      void this.#refreshAll().then(() => this.#schedule());
    });
  }

  async #refreshAll(): Promise<void> {
    // Settled, not all: one name's trouble must neither stop the others nor the next refresh.
    await Promise.allSettled(this.#discoveries.map((discovery) => this.#refresh(discovery)));
  }

  async #refresh(discovery: Discovery): Promise<void> {
    const { dns } = discovery;
    let addresses: readonly string[];
    try {
      addresses = await this.#deps.resolve(dns.name);
    } catch (error) {
      if (this.#closed) return;
      // The last good set stays: a DNS server that hiccups must not take every endpoint away.
      discovery.error = lookupFailure(error);
      this.#deps.events.emit({
        type: 'dns-lookup-failed',
        upstream: this.upstream,
        name: dns.source,
        message: discovery.error,
        kept: discovery.addresses?.length ?? 0,
      });
      return;
    }
    if (this.#closed) return;
    const before = new Set(discovery.addresses ?? []);
    const after = new Set(addresses);
    discovery.addresses = [...addresses].sort();
    discovery.resolvedAt = this.#deps.clock.now();
    discovery.error = undefined;
    const added = [...after].filter((address) => !before.has(address));
    const removed = [...before].filter((address) => !after.has(address));
    if (added.length === 0 && removed.length === 0) return;
    this.#rebuild();
    this.#deps.events.emit({
      type: 'endpoints-discovered',
      upstream: this.upstream,
      name: dns.source,
      added: added.map((address) => originOf(address, dns.port)),
      removed: removed.map((address) => originOf(address, dns.port)),
    });
  }

  /**
   * Makes the endpoint list match the config's origins and the discovered addresses: an
   * endpoint still there keeps its pool, latency and place in outlier detection; a new one
   * gets a pool; one that is gone drains, its pool closing once its requests are done.
   */
  #rebuild(): void {
    const wanted = new Map<string, string | undefined>();
    for (const origin of this.#staticOrigins) wanted.set(origin, undefined);
    for (const discovery of this.#discoveries) {
      for (const address of discovery.addresses ?? []) {
        const origin = originOf(address, discovery.dns.port);
        if (!wanted.has(origin)) wanted.set(origin, discovery.dns.source);
      }
    }
    const current = new Map(this.#endpoints.map((endpoint) => [endpoint.origin, endpoint]));
    const now = this.#deps.clock.now();
    const next: Endpoint[] = [];
    for (const [origin, source] of wanted) next.push(current.get(origin) ?? this.#create(origin, source, now));
    for (const endpoint of this.#endpoints) {
      if (wanted.has(endpoint.origin)) continue;
      this.#draining.add(endpoint);
      void endpoint.pool.close().finally(() => this.#draining.delete(endpoint));
    }
    this.#endpoints = next;
    this.#detector?.setEndpoints(
      next.map((endpoint) => endpoint.origin),
      now,
    );
  }

  #create(origin: string, source: string | undefined, now: number): Endpoint {
    const config = this.#config;
    return {
      upstream: config.name,
      origin,
      source,
      inFlight: 0,
      latency: new PeakEwma(now),
      pool:
        config.protocol === 'h2c'
          ? new H2cPool(origin, {
              connections: config.maxConnections ?? null,
              connectTimeoutMs: config.connectTimeoutMs,
              bodyTimeoutMs: config.idleTimeoutMs,
              maxHeaderBytes: this.#deps.maxResponseHeaderBytes,
              clock: this.#deps.clock,
            })
          : new Pool(origin, {
              connections: config.maxConnections ?? null,
              connect: { timeout: config.connectTimeoutMs },
              // The wait for a response head is the route's and the per-try timeout's business: an
              // upstream may rightly think for a long time (a long poll) before it answers.
              headersTimeout: 0,
              // Between two pieces of a body, silence means a stuck upstream whatever the route
              // allows: the connection is given up after idleTimeout.
              bodyTimeout: config.idleTimeoutMs,
              maxHeaderSize: this.#deps.maxResponseHeaderBytes,
            }),
    };
  }
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
