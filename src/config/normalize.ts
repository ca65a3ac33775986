// From a schema-valid config file to the effective Config: checks the rules a JSON Schema
// cannot express (names that refer to each other, URL shapes, min/max pairs), applies the
// defaults and converts durations, sizes and ratios to plain numbers.
//
// The file may be the well-formed rest of a file whose malformed parts were cut away (see
// checkSchema), so that one run reports every problem. The rules then hold back wherever a cut
// part could be the only cause: a reference to a name defined in a malformed section, or a
// comparison with a value whose default stands in for the malformed one.

import { DEFAULTS } from './defaults.ts';
import { expandEnv } from './env.ts';
import type { PathSegment } from './positions.ts';
import type { ConfigFile } from './schema.ts';
import { didYouMean } from './suggest.ts';
import type {
  Address,
  AppProbeConfig,
  AppProbeKind,
  AppProbeSet,
  BackoffConfig,
  BulkheadConfig,
  CircuitBreakerConfig,
  Config,
  ConnectionLimits,
  DnsConfig,
  DeadlineConfig,
  FallbackConfig,
  FallbackStep,
  FallbackTrigger,
  FailureKind,
  FaultConfig,
  HedgeConfig,
  IdempotencyConfig,
  DeadLetterConfig,
  LatencyPercentileConfig,
  Limits,
  ListenerConfig,
  LoadBalancing,
  OutlierDetectionConfig,
  RetryCondition,
  UpstreamProtocol,
  RetryConfig,
  RouteConfig,
  RouteMatch,
  RedisTopology,
  StoreConfig,
  StoreType,
  UpstreamConfig,
} from './types.ts';
import { isIP } from 'node:net';
import { formatDuration, parseDuration, parsePercent, parseRatio, parseSize } from './units.ts';

export type ReportProblem = (path: readonly PathSegment[], message: string, part?: 'key' | 'value') => void;

/** The names a file defines, read from the file as written, malformed entries included. */
export interface FileNames {
  /**
   * Each listener's name by its index in the file (undefined where it has none); the default
   * listeners' when the file has no `listeners`; undefined when `listeners` is not a list.
   */
  readonly listeners: readonly (string | undefined)[] | undefined;
  /** Each route's name by its index in the file (undefined where it has none). */
  readonly routes: readonly (string | undefined)[];
  /** The keys of `upstreams`; undefined when `upstreams` is not a mapping. */
  readonly upstreams: ReadonlySet<string> | undefined;
  /** The keys of `stores` (the default store's when absent); undefined when it is not a mapping. */
  readonly stores: ReadonlySet<string> | undefined;
}

/** What normalizeConfig knows of the file beyond its well-formed part. */
export interface NormalizeContext {
  readonly names: FileNames;
  /** The index in the file of item `index` of a list of the well-formed part. */
  readonly fileIndex: (list: readonly unknown[], index: number) => number;
  /** Whether the value at `path` (or a part holding it) was malformed and cut away. */
  readonly broken: (path: readonly PathSegment[]) => boolean;
}

/** The names defined in a parsed file, as far as its shape allows reading them. */
export function fileNames(data: unknown): FileNames {
  const root = isMapping(data) ? data : {};
  const nameOf = (item: unknown): string | undefined => (isMapping(item) && typeof item.name === 'string' ? item.name : undefined);
  const listeners = root.listeners === undefined ? DEFAULTS.listeners : root.listeners;
  return {
    listeners: Array.isArray(listeners) ? listeners.map(nameOf) : undefined,
    routes: Array.isArray(root.routes) ? root.routes.map(nameOf) : [],
    upstreams: keysOf(root.upstreams, {}),
    stores: keysOf(root.stores, DEFAULTS.stores),
  };
}

/** The keys of a mapping section, of `absent` when the file leaves it out; undefined when it is not a mapping. */
function keysOf(section: unknown, absent: object): ReadonlySet<string> | undefined {
  if (section === undefined) return new Set(Object.keys(absent));
  return isMapping(section) ? new Set(Object.keys(section)) : undefined;
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * A set of names to check references against; `any` when the file's definitions could not
 * be read, so that no reference is reported for a mistake already reported where they are.
 */
type KnownNames = ReadonlySet<string> | 'any';

type UpstreamFile = NonNullable<ConfigFile['upstreams']>[string];
type RouteFile = NonNullable<ConfigFile['routes']>[number];
type BreakerFile = NonNullable<UpstreamFile['circuitBreaker']>;
type OutlierFile = NonNullable<UpstreamFile['outlierDetection']>;
type RetryFile = NonNullable<RouteFile['retry']>;
type FallbackFile = NonNullable<RouteFile['fallback']>;
type IdempotencyFile = NonNullable<RouteFile['idempotency']>;
type DeadLetterFile = NonNullable<RouteFile['deadLetter']>;
type HedgeFile = NonNullable<RouteFile['hedge']>;
type LatencyPercentileFile = Extract<HedgeFile['delay'], object>;
type FaultFile = NonNullable<RouteFile['fault']>;
type MatchFile = NonNullable<RouteFile['match']>;
type StoreFile = NonNullable<ConfigFile['stores']>[string];

export type Environment = Readonly<Record<string, string | undefined>>;

// The keys each store type reads, besides `type` and `timeout`; any other is refused, so a
// `path` on a redis store is not silently ignored.
const STORE_KEYS: Readonly<Record<StoreType, readonly string[]>> = {
  memory: ['maxEntries', 'maxBytes'],
  sqlite: ['path'],
  redis: ['url', 'cluster', 'sentinel', 'username', 'password', 'keyPrefix'],
};
const REDIS_TOPOLOGY_KEYS = ['url', 'cluster', 'sentinel'] as const;
type AppProbesFile = NonNullable<NonNullable<ConfigFile['telemetry']>['appProbes']>;

// A DNS name as a dns:// endpoint gives it: labels of letters, digits, "-" and "_" (SRV-style
// names), and no address, for which discovery has nothing to look up.
const DNS_NAME = /^(?![0-9.]+$)[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/;

/** `ip`, `ip:port` or `[ipv6]:port`, as node:dns takes them. */
function isDnsServer(text: string): boolean {
  const bracketed = /^\[([^\]]+)\](?::([0-9]{1,5}))?$/.exec(text);
  if (bracketed !== null) return isIP(bracketed[1]!) === 6 && validPort(bracketed[2]);
  if (isIP(text) !== 0) return true;
  const colon = text.lastIndexOf(':');
  return colon > 0 && isIP(text.slice(0, colon)) === 4 && validPort(text.slice(colon + 1));
}

function validPort(text: string | undefined): boolean {
  if (text === undefined) return true;
  const port = Number(text);
  return /^[0-9]{1,5}$/.test(text) && port >= 1 && port <= 65535;
}
type ListenerFile = NonNullable<ConfigFile['listeners']>[number];
type ConnectionLimitsFile = Pick<ListenerFile, 'headersTimeout' | 'idleTimeout' | 'maxConnections' | 'maxConnectionsPerClient' | 'maxRequestsPerConnection'>;

// Hosts that listen on every interface, so they clash with any host on the same port.
const WILDCARD_HOSTS = new Set(['0.0.0.0', '::']);

/**
 * Builds the effective config from a file that passed the schema. Every rule broken is passed
 * to `report`; the returned config is only meaningful when nothing was reported. `env` is read
 * for the `${VAR}` references in store values.
 */
export function normalizeConfig(
  file: ConfigFile,
  report: ReportProblem,
  env: Environment = process.env,
  context: NormalizeContext = wholeFile(file),
): Config {
  const check = new Checker(report, context);
  const { names, broken } = context;
  check.uniqueNames('listeners', 'listener', names.listeners ?? []);
  check.uniqueNames('routes', 'route', names.routes);
  const limits = check.limits(file.limits);
  const listeners = check.listeners(file, limits);
  const telemetryAddress = check.address(['telemetry', 'address'], file.telemetry?.address ?? DEFAULTS.telemetry.address);
  const admin = { address: check.address(['admin', 'address'], file.admin?.address ?? DEFAULTS.admin.address) };
  const telemetry = {
    address: telemetryAddress,
    appProbes: check.appProbes(
      file.telemetry?.appProbes ?? {},
      [
        ...listeners.map((listener) => ({ path: ['listeners'], name: `listener ${listener.name}`, port: listener.address.port })),
        { path: ['telemetry', 'address'], name: 'the telemetry server', port: telemetryAddress.port },
        { path: ['admin', 'address'], name: 'the admin server', port: admin.address.port },
      ].filter((server) => !broken(server.path)),
    ),
  };
  check.distinctAddresses(
    [
      ...listeners.map((listener, index) => ({
        path: ['listeners', check.fileIndex(file.listeners, index), 'address'],
        name: `listener ${listener.name}`,
        address: listener.address,
      })),
      { path: ['telemetry', 'address'], name: 'the telemetry server', address: telemetry.address },
      { path: ['admin', 'address'], name: 'the admin server', address: admin.address },
    ].filter((server) => !broken(server.path)),
  );
  const upstreams = new Map<string, UpstreamConfig>();
  for (const [name, upstream] of Object.entries(file.upstreams ?? {})) {
    upstreams.set(name, check.upstream(['upstreams', name], name, upstream));
  }
  const stores = check.stores(file.stores, env);
  // A reference is only checked against a section that was well-formed as a whole: a name
  // missing from a section cut for its own mistake may be missing only because of it.
  const listenerNames: KnownNames =
    !broken(['listeners']) && names.listeners?.every((name) => name !== undefined) === true ? new Set(names.listeners) : 'any';
  const upstreamNames: KnownNames = !broken(['upstreams']) && names.upstreams !== undefined ? names.upstreams : 'any';
  const storeNames: KnownNames = !broken(['stores']) && names.stores !== undefined ? names.stores : 'any';
  const routes = (file.routes ?? []).map((route, index) =>
    check.route(['routes', check.fileIndex(file.routes, index)], route, listenerNames, upstreamNames, storeNames),
  );
  return {
    listeners,
    telemetry,
    admin,
    shutdown: {
      drainTimeoutMs: check.duration(['shutdown', 'drainTimeout'], file.shutdown?.drainTimeout ?? DEFAULTS.shutdown.drainTimeout),
    },
    limits,
    upstreams,
    deadline: check.deadline(file.deadline),
    routes,
    stores,
    dns: check.dns(file.dns),
  };
}

/** The context of a file that is well-formed as a whole. */
function wholeFile(file: ConfigFile): NormalizeContext {
  return { names: fileNames(file), fileIndex: (_list, index) => index, broken: () => false };
}

class Checker {
  readonly #report: ReportProblem;
  readonly #context: NormalizeContext;

  constructor(report: ReportProblem, context: NormalizeContext) {
    this.#report = report;
    this.#context = context;
  }

  /** The index in the file of item `index` of `list`. */
  fileIndex(list: readonly unknown[] | undefined, index: number): number {
    return list === undefined ? index : this.#context.fileIndex(list, index);
  }

  /** Names of one kind are unique; each later use is reported at its name. */
  uniqueNames(section: string, kind: string, names: readonly (string | undefined)[]): void {
    const seen = new Map<string, number>();
    names.forEach((name, index) => {
      if (name === undefined) return;
      const earlier = seen.get(name);
      if (earlier === undefined) seen.set(name, index);
      else this.#report([section, index, 'name'], `${kind} name "${name}" is already used by ${section}[${earlier}]`);
    });
  }

  limits(limits: ConfigFile['limits']): Limits {
    const defaults = DEFAULTS.limits;
    return {
      maxHeaderBytes: this.size(['limits', 'maxHeaderBytes'], limits?.maxHeaderBytes ?? defaults.maxHeaderBytes, { positive: true }),
      maxBodyBytes: this.size(['limits', 'maxBodyBytes'], limits?.maxBodyBytes ?? defaults.maxBodyBytes),
      maxResponseHeaderBytes: this.size(['limits', 'maxResponseHeaderBytes'], limits?.maxResponseHeaderBytes ?? defaults.maxResponseHeaderBytes, {
        positive: true,
      }),
      ...this.connectionLimits(['limits'], limits ?? {}, {
        headersTimeoutMs: parseDuration(defaults.headersTimeout),
        idleTimeoutMs: parseDuration(defaults.idleTimeout),
        maxConnections: defaults.maxConnections,
        maxConnectionsPerClient: defaults.maxConnectionsPerClient,
        maxRequestsPerConnection: defaults.maxRequestsPerConnection,
      }),
    };
  }

  /** The connection limits written at `path`, each absent one taken from `base`. */
  connectionLimits(path: readonly PathSegment[], given: ConnectionLimitsFile, base: ConnectionLimits): ConnectionLimits {
    const duration = (key: 'headersTimeout' | 'idleTimeout', fallback: number): number => {
      const value = given[key];
      return value === undefined ? fallback : this.duration([...path, key], value, { positive: true });
    };
    return {
      headersTimeoutMs: duration('headersTimeout', base.headersTimeoutMs),
      idleTimeoutMs: duration('idleTimeout', base.idleTimeoutMs),
      maxConnections: given.maxConnections ?? base.maxConnections,
      maxConnectionsPerClient: given.maxConnectionsPerClient ?? base.maxConnectionsPerClient,
      maxRequestsPerConnection: given.maxRequestsPerConnection ?? base.maxRequestsPerConnection,
    };
  }

  listeners(file: ConfigFile, limits: ConnectionLimits): ListenerConfig[] {
    const given: readonly ListenerFile[] = file.listeners ?? DEFAULTS.listeners;
    return given.map((listener, index) => {
      const maxConcurrent = listener.maxConcurrent;
      return {
        name: listener.name,
        address: this.address(['listeners', this.fileIndex(file.listeners, index), 'address'], listener.address),
        ...(maxConcurrent === undefined ? {} : { maxConcurrent }),
        limits: this.connectionLimits(['listeners', this.fileIndex(file.listeners, index)], listener, limits),
      };
    });
  }

  /** `host:port` or `[v6]:port` → `{ host, port }` (brackets dropped). */
  address(path: readonly PathSegment[], text: string): Address {
    const colon = text.lastIndexOf(':');
    const rawHost = text.slice(0, colon);
    const port = Number(text.slice(colon + 1));
    // Port 0 asks the system for a free port: how tests run whole processes side by side.
    if (!Number.isInteger(port) || port > 65535) {
      this.#report(path, `port must be from 1 to 65535 (or 0 for any free port), got ${text.slice(colon + 1)}`);
    }
    const host = rawHost.startsWith('[') ? rawHost.slice(1, -1) : rawHost;
    return { host, port };
  }

  /** The service's probes; a port of Breakwater's own would have Breakwater probe itself. */
  appProbes(probes: AppProbesFile, ownPorts: readonly { name: string; port: number }[]): Record<string, AppProbeSet> {
    const result: Record<string, AppProbeSet> = {};
    for (const [name, set] of Object.entries(probes)) {
      const normalized: Partial<Record<AppProbeKind, AppProbeConfig>> = {};
      for (const kind of ['readyz', 'livez', 'startupz'] as const) {
        const probe = set[kind];
        if (probe === undefined) continue;
        const path = ['telemetry', 'appProbes', name, kind];
        const own = ownPorts.find((server) => server.port === probe.port);
        if (own !== undefined) {
          this.#report([...path, 'port'], `port ${probe.port} is ${own.name} of Breakwater itself; give the port the service listens on`);
        }
        normalized[kind] = {
          port: probe.port,
          path: probe.path ?? DEFAULTS.appProbe.path,
          timeoutMs: this.duration([...path, 'timeout'], probe.timeout ?? DEFAULTS.appProbe.timeout, { positive: true }),
        };
      }
      result[name] = normalized;
    }
    return result;
  }

  /** Two servers cannot listen on the same port of the same (or a wildcard) host; port 0 never clashes. */
  distinctAddresses(servers: readonly { path: readonly PathSegment[]; name: string; address: Address }[]): void {
    for (const [index, server] of servers.entries()) {
      if (server.address.port === 0) continue;
      const clash = servers.slice(0, index).find(
        (other) =>
          other.address.port === server.address.port &&
          (other.address.host === server.address.host ||
            WILDCARD_HOSTS.has(other.address.host) ||
            WILDCARD_HOSTS.has(server.address.host)),
      );
      if (clash) this.#report(server.path, `port ${server.address.port} is already used by ${clash.name}`);
    }
  }

  duration(path: readonly PathSegment[], value: string | number, options: { positive?: boolean } = {}): number {
    const ms = parseDuration(value);
    if (options.positive && ms <= 0) this.#report(path, 'must be greater than 0');
    return ms;
  }

  size(path: readonly PathSegment[], value: string | number, options: { positive?: boolean } = {}): number {
    const bytes = parseSize(value);
    if (options.positive && bytes <= 0) this.#report(path, 'must be greater than 0');
    return bytes;
  }

  ratio(path: readonly PathSegment[], value: string | number, options: { positive?: boolean } = {}): number {
    const ratio = parseRatio(value);
    if (options.positive && ratio <= 0) this.#report(path, 'must be greater than 0');
    return ratio;
  }

  upstream(path: readonly PathSegment[], name: string, upstream: UpstreamFile): UpstreamConfig {
    const endpoints = upstream.endpoints.map((endpoint, index) =>
      this.endpoint([...path, 'endpoints', this.fileIndex(upstream.endpoints, index)], endpoint),
    );
    const bulkhead = upstream.bulkhead && this.bulkhead([...path, 'bulkhead'], upstream.bulkhead);
    const circuitBreaker = upstream.circuitBreaker && this.circuitBreaker([...path, 'circuitBreaker'], upstream.circuitBreaker);
    const outlierDetection =
      upstream.outlierDetection &&
      this.outlierDetection([...path, 'outlierDetection'], upstream.outlierDetection, circuitBreaker?.failOn ?? DEFAULTS.circuitBreaker.failOn);
    return {
      name,
      endpoints,
      protocol: (upstream.protocol ?? DEFAULTS.upstream.protocol) as UpstreamProtocol,
      loadBalancing: (upstream.loadBalancing ?? DEFAULTS.upstream.loadBalancing) as LoadBalancing,
      connectTimeoutMs: this.duration([...path, 'connectTimeout'], upstream.connectTimeout ?? DEFAULTS.upstream.connectTimeout, {
        positive: true,
      }),
      idleTimeoutMs: this.duration([...path, 'idleTimeout'], upstream.idleTimeout ?? DEFAULTS.upstream.idleTimeout, { positive: true }),
      ...(upstream.maxConnections === undefined ? {} : { maxConnections: upstream.maxConnections }),
      ...(bulkhead ? { bulkhead } : {}),
      ...(circuitBreaker ? { circuitBreaker } : {}),
      dnsRefreshMs: this.duration([...path, 'dnsRefresh'], upstream.dnsRefresh ?? DEFAULTS.upstream.dnsRefresh, { positive: true }),
      ...(outlierDetection ? { outlierDetection } : {}),
    };
  }

  /**
   * Outlier detection. Failures are what the upstream's breaker counts as failures, so that an
   * endpoint is ejected for the same outcomes that would open the breaker.
   */
  outlierDetection(path: readonly PathSegment[], outlier: OutlierFile, failOn: readonly string[]): OutlierDetectionConfig {
    const defaults = DEFAULTS.outlierDetection;
    const baseEjectionTimeMs = this.duration([...path, 'baseEjectionTime'], outlier.baseEjectionTime ?? defaults.baseEjectionTime, {
      positive: true,
    });
    const maxEjectionTimeMs = this.duration([...path, 'maxEjectionTime'], outlier.maxEjectionTime ?? defaults.maxEjectionTime, {
      positive: true,
    });
    if (maxEjectionTimeMs < baseEjectionTimeMs && !this.#context.broken([...path, 'baseEjectionTime'])) {
      this.#report(
        [...path, 'maxEjectionTime'],
        `must be at least baseEjectionTime (${formatDuration(baseEjectionTimeMs)}), got ${formatDuration(maxEjectionTimeMs)}`,
      );
    }
    const rate = outlier.failureRate;
    const latency = outlier.latency;
    return {
      consecutiveFailures: outlier.consecutiveFailures ?? defaults.consecutiveFailures,
      ...(rate === undefined
        ? {}
        : {
            failureRate: {
              threshold: this.ratio([...path, 'failureRate', 'threshold'], rate.threshold ?? defaults.failureRate.threshold, { positive: true }),
              minRequests: rate.minRequests ?? defaults.failureRate.minRequests,
              windowMs: this.duration([...path, 'failureRate', 'window'], rate.window ?? defaults.failureRate.window, { positive: true }),
            },
          }),
      ...(latency === undefined
        ? {}
        : {
            latency: {
              factor: latency.factor ?? defaults.latency.factor,
              minRequests: latency.minRequests ?? defaults.latency.minRequests,
              windowMs: this.duration([...path, 'latency', 'window'], latency.window ?? defaults.latency.window, { positive: true }),
            },
          }),
      baseEjectionTimeMs,
      maxEjectionTimeMs,
      maxEjectionPercent: parsePercent(outlier.maxEjectionPercent ?? defaults.maxEjectionPercent),
      failOn: failOn as readonly FailureKind[],
    };
  }

  dns(dns: ConfigFile['dns']): DnsConfig {
    const servers = dns?.servers ?? [];
    servers.forEach((server, index) => {
      if (!isDnsServer(server)) {
        this.#report(
          ['dns', 'servers', this.fileIndex(servers, index)],
          `must be an IP address with an optional port (10.96.0.10, 127.0.0.1:5353, [::1]:5353), got "${server}"`,
        );
      }
    });
    return { servers };
  }

  /** An http:// origin, returned without a trailing slash, userinfo kept; or dns://NAME:PORT, lower-cased. */
  endpoint(path: readonly PathSegment[], text: string): string {
    if (/^dns:/i.test(text)) return this.dnsEndpoint(path, text);
    let url: URL | undefined;
    try {
      url = new URL(text);
    } catch {
      url = undefined;
    }
    if (url?.protocol === 'https:') {
      this.#report(path, `only http:// endpoints are supported (Breakwater does not speak TLS to upstreams), got "${text}"`);
    } else if (url?.protocol !== 'http:' || url.host === '') {
      this.#report(path, `endpoint must be an http:// origin such as http://payments:8080, got "${text}"`);
    } else if (url.pathname !== '/' || url.search !== '' || url.hash !== '') {
      this.#report(path, `endpoint must be an origin without path or query (http://host:port), got "${text}"`);
    }
    if (!url) return text;
    const userinfo = url.username || url.password ? `${url.username}${url.password ? `:${url.password}` : ''}@` : '';
    return `${url.protocol}//${userinfo}${url.host}`;
  }

  /** `dns://NAME:PORT`: a DNS name (not an address) and a port, nothing else. */
  dnsEndpoint(path: readonly PathSegment[], text: string): string {
    const match = /^dns:\/\/([^/:?#@]+):([0-9]{1,5})\/?$/i.exec(text);
    const name = match?.[1]?.toLowerCase().replace(/\.$/, '');
    const port = Number(match?.[2]);
    if (match === null || name === undefined || !DNS_NAME.test(name)) {
      this.#report(path, `a dns endpoint is dns://NAME:PORT, such as dns://payments-headless.shop.svc.cluster.local:8080, got "${text}"`);
      return text;
    }
    if (port < 1 || port > 65535) {
      this.#report(path, `port must be from 1 to 65535, got ${match[2]}`);
    }
    return `dns://${name}:${port}`;
  }

  bulkhead(path: readonly PathSegment[], bulkhead: NonNullable<UpstreamFile['bulkhead']>): BulkheadConfig {
    return {
      maxConcurrent: bulkhead.maxConcurrent,
      maxQueued: bulkhead.maxQueued ?? DEFAULTS.bulkhead.maxQueued,
      queueTimeoutMs: this.duration([...path, 'queueTimeout'], bulkhead.queueTimeout ?? DEFAULTS.bulkhead.queueTimeout),
    };
  }

  circuitBreaker(path: readonly PathSegment[], breaker: BreakerFile): CircuitBreakerConfig {
    const defaults = DEFAULTS.circuitBreaker;
    const openForMs = this.duration([...path, 'openFor'], breaker.openFor ?? defaults.openFor, { positive: true });
    const openForMaxMs = breaker.openForMax === undefined ? openForMs : this.duration([...path, 'openForMax'], breaker.openForMax);
    if (openForMaxMs < openForMs && !this.#context.broken([...path, 'openFor'])) {
      this.#report(
        [...path, 'openForMax'],
        `must be at least openFor (${formatDuration(openForMs)}), got ${formatDuration(openForMaxMs)}`,
      );
    }
    return {
      windowMs: this.duration([...path, 'window'], breaker.window ?? defaults.window, { positive: true }),
      minRequests: breaker.minRequests ?? defaults.minRequests,
      failureRate: this.ratio([...path, 'failureRate'], breaker.failureRate ?? defaults.failureRate, { positive: true }),
      slowCallDurationMs: this.duration([...path, 'slowCallDuration'], breaker.slowCallDuration ?? defaults.slowCallDuration, {
        positive: true,
      }),
      slowCallRate: this.ratio([...path, 'slowCallRate'], breaker.slowCallRate ?? defaults.slowCallRate, { positive: true }),
      openForMs,
      openForMaxMs,
      halfOpenRequests: breaker.halfOpenRequests ?? defaults.halfOpenRequests,
      failOn: (breaker.failOn ?? defaults.failOn) as readonly FailureKind[],
    };
  }

  deadline(deadline: ConfigFile['deadline']): DeadlineConfig {
    return {
      header: (deadline?.header ?? DEFAULTS.deadline.header).toLowerCase(),
      accept: [...new Set((deadline?.accept ?? DEFAULTS.deadline.accept).map((name) => name.toLowerCase()))],
      maxInboundMs: this.duration(['deadline', 'maxInbound'], deadline?.maxInbound ?? DEFAULTS.deadline.maxInbound, {
        positive: true,
      }),
    };
  }

  route(
    path: readonly PathSegment[],
    route: RouteFile,
    listeners: KnownNames,
    upstreams: KnownNames,
    stores: KnownNames,
  ): RouteConfig {
    const listener = route.listener ?? DEFAULTS.routeListener;
    if (listeners !== 'any' && !listeners.has(listener) && !this.#context.broken([...path, 'listener'])) {
      const message =
        route.listener === undefined
          ? `route has no listener and there is no "${listener}" listener to default to; add listener: with one of: ${[...listeners].join(', ')}`
          : `unknown listener "${listener}"${didYouMean(listener, listeners)}`;
      this.#report([...path, 'listener'], message);
    }
    this.reference([...path, 'upstream'], route.upstream, upstreams);
    const circuitBreaker = route.circuitBreaker && this.circuitBreaker([...path, 'circuitBreaker'], route.circuitBreaker);
    const idempotency = route.idempotency && this.idempotency([...path, 'idempotency'], route.idempotency, stores);
    const retry = route.retry && this.retry([...path, 'retry'], route.retry);
    const hedge = route.hedge && this.hedge([...path, 'hedge'], route.hedge);
    const fallback = route.fallback && this.fallback([...path, 'fallback'], route.fallback, upstreams);
    const fault = route.fault && this.fault([...path, 'fault'], route.fault);
    const deadLetter = route.deadLetter && this.deadLetter([...path, 'deadLetter'], route.deadLetter, stores);
    return {
      name: route.name,
      listener,
      match: this.match([...path, 'match'], route.match ?? {}),
      upstream: route.upstream,
      timeoutMs: this.duration([...path, 'timeout'], route.timeout ?? DEFAULTS.route.timeout, { positive: true }),
      ...(circuitBreaker ? { circuitBreaker } : {}),
      ...(idempotency ? { idempotency } : {}),
      ...(retry ? { retry } : {}),
      ...(hedge ? { hedge } : {}),
      ...(fallback ? { fallback } : {}),
      ...(fault ? { fault } : {}),
      ...(deadLetter ? { deadLetter } : {}),
      ...(route.telemetry?.grpcMethods === true ? { telemetry: { grpcMethods: true } } : {}),
      websocket: {
        idleTimeoutMs: this.duration([...path, 'websocket', 'idleTimeout'], route.websocket?.idleTimeout ?? DEFAULTS.websocket.idleTimeout),
        maxDurationMs: this.duration([...path, 'websocket', 'maxDuration'], route.websocket?.maxDuration ?? DEFAULTS.websocket.maxDuration),
      },
    };
  }

  /** A reference to an upstream by name. */
  reference(path: readonly PathSegment[], name: string, upstreams: KnownNames): void {
    if (upstreams === 'any' || upstreams.has(name)) return;
    this.#report(path, `unknown upstream "${name}"${didYouMean(name, upstreams)}`);
  }

  match(path: readonly PathSegment[], match: MatchFile): RouteMatch {
    if (match.path !== undefined && match.pathPrefix !== undefined) {
      this.#report([...path, 'pathPrefix'], 'use either path (exact) or pathPrefix, not both');
    }
    for (const key of ['path', 'pathPrefix'] as const) {
      const value = match[key];
      if (value !== undefined && !value.startsWith('/')) this.#report([...path, key], `must start with "/", got "${value}"`);
    }
    let headers: Record<string, string> | undefined;
    if (match.headers) {
      headers = {};
      for (const [name, value] of Object.entries(match.headers)) {
        const lower = name.toLowerCase();
        if (lower in headers) this.#report([...path, 'headers', name], `header "${lower}" is listed twice (names are case-insensitive)`, 'key');
        headers[lower] = value;
      }
    }
    return {
      ...(match.host === undefined ? {} : { host: match.host.toLowerCase() }),
      ...(match.path === undefined ? {} : { path: match.path }),
      ...(match.pathPrefix === undefined ? {} : { pathPrefix: match.pathPrefix }),
      ...(match.methods === undefined ? {} : { methods: [...new Set(match.methods.map((method) => method.toUpperCase()))] }),
      ...(headers === undefined ? {} : { headers }),
    };
  }

  idempotency(path: readonly PathSegment[], idempotency: IdempotencyFile, stores: KnownNames): IdempotencyConfig {
    const store = idempotency.store ?? DEFAULTS.idempotency.store;
    if (stores !== 'any' && !stores.has(store) && !this.#context.broken([...path, 'store'])) {
      this.#report([...path, 'store'], `unknown store "${store}"${didYouMean(store, stores)}`);
    }
    return {
      store,
      header: (idempotency.header ?? DEFAULTS.idempotency.header).toLowerCase(),
      methods: [...new Set((idempotency.methods ?? DEFAULTS.idempotency.methods).map((method) => method.toUpperCase()))],
      required: idempotency.required ?? DEFAULTS.idempotency.required,
      ttlMs: this.duration([...path, 'ttl'], idempotency.ttl ?? DEFAULTS.idempotency.ttl, { positive: true }),
      maxResponseBytes: this.size([...path, 'maxResponseBytes'], idempotency.maxResponseBytes ?? DEFAULTS.idempotency.maxResponseBytes),
      maxRequestBytes: this.size([...path, 'maxRequestBytes'], idempotency.maxRequestBytes ?? DEFAULTS.idempotency.maxRequestBytes),
      onStoreError: idempotency.onStoreError ?? DEFAULTS.idempotency.onStoreError,
      whileInProgress: idempotency.whileInProgress ?? DEFAULTS.idempotency.whileInProgress,
    };
  }

  deadLetter(path: readonly PathSegment[], deadLetter: DeadLetterFile, stores: KnownNames): DeadLetterConfig {
    const store = deadLetter.store ?? DEFAULTS.deadLetter.store;
    if (stores !== 'any' && !stores.has(store) && !this.#context.broken([...path, 'store'])) {
      this.#report([...path, 'store'], `unknown store "${store}"${didYouMean(store, stores)}`);
    }
    return {
      store,
      on: (deadLetter.on ?? DEFAULTS.deadLetter.on) as readonly FallbackTrigger[],
      maxBodyBytes: this.size([...path, 'maxBodyBytes'], deadLetter.maxBodyBytes ?? DEFAULTS.deadLetter.maxBodyBytes),
      retentionMs: this.duration([...path, 'retention'], deadLetter.retention ?? DEFAULTS.deadLetter.retention, { positive: true }),
      maxEntries: deadLetter.maxEntries ?? DEFAULTS.deadLetter.maxEntries,
      keepHeaders: [...new Set((deadLetter.keepHeaders ?? DEFAULTS.deadLetter.keepHeaders).map((name) => name.toLowerCase()))],
    };
  }

  retry(path: readonly PathSegment[], retry: RetryFile): RetryConfig {
    const retryOn = (retry.retryOn ?? DEFAULTS.retry.retryOn) as readonly RetryCondition[];
    retryOn.forEach((condition, index) => {
      if (typeof condition !== 'number' || condition === 429 || (condition >= 500 && condition <= 599)) return;
      const message =
        condition >= 400
          ? `${condition} cannot be retried: retryOn may list 429 but no other 4xx`
          : `${condition} is not an error status; retryOn lists 429 or 500 to 599`;
      this.#report([...path, 'retryOn', this.fileIndex(retryOn, index)], message);
    });
    const budget = retry.budget ?? {};
    const perTryTimeout = retry.perTryTimeout;
    return {
      maxAttempts: retry.maxAttempts ?? DEFAULTS.retry.maxAttempts,
      ...(perTryTimeout === undefined
        ? {}
        : typeof perTryTimeout === 'object'
          ? { adaptivePerTryTimeout: this.latencyPercentile([...path, 'perTryTimeout'], perTryTimeout, DEFAULTS.adaptiveTimeout.multiplier) }
          : { perTryTimeoutMs: this.duration([...path, 'perTryTimeout'], perTryTimeout, { positive: true }) }),
      retryOn,
      backoff: this.backoff([...path, 'backoff'], retry.backoff ?? {}),
      respectRetryAfter: retry.respectRetryAfter ?? DEFAULTS.retry.respectRetryAfter,
      budget: {
        ratio: this.ratio([...path, 'budget', 'ratio'], budget.ratio ?? DEFAULTS.budget.ratio),
        minPerSecond: budget.minPerSecond ?? DEFAULTS.budget.minPerSecond,
        windowMs: this.duration([...path, 'budget', 'window'], budget.window ?? DEFAULTS.budget.window, { positive: true }),
      },
      bufferLimitBytes: this.size([...path, 'bufferLimit'], retry.bufferLimit ?? DEFAULTS.retry.bufferLimit),
    };
  }

  latencyPercentile(path: readonly PathSegment[], file: LatencyPercentileFile, multiplier: number): LatencyPercentileConfig {
    const minMs = this.duration([...path, 'min'], file.min ?? DEFAULTS.latencyPercentile.min);
    const maxMs = this.duration([...path, 'max'], file.max, { positive: true });
    if (maxMs < minMs && !this.#context.broken([...path, 'min'])) {
      this.#report([...path, 'max'], `must be at least min (${formatDuration(minMs)}), got ${formatDuration(maxMs)}`);
    }
    return {
      percentile: file.percentile,
      multiplier: file.multiplier ?? multiplier,
      minMs,
      maxMs,
      minSamples: file.minSamples ?? DEFAULTS.latencyPercentile.minSamples,
      windowMs: this.duration([...path, 'window'], file.window ?? DEFAULTS.latencyPercentile.window, { positive: true }),
    };
  }

  hedge(path: readonly PathSegment[], hedge: HedgeFile): HedgeConfig {
    const budget = hedge.budget ?? {};
    return {
      ...(typeof hedge.delay === 'object'
        ? { adaptiveDelay: this.latencyPercentile([...path, 'delay'], hedge.delay, DEFAULTS.hedge.multiplier) }
        : { delayMs: this.duration([...path, 'delay'], hedge.delay) }),
      maxAttempts: hedge.maxAttempts ?? DEFAULTS.hedge.maxAttempts,
      budget: {
        ratio: this.ratio([...path, 'budget', 'ratio'], budget.ratio ?? DEFAULTS.hedge.budget.ratio),
        minPerSecond: budget.minPerSecond ?? DEFAULTS.hedge.budget.minPerSecond,
        windowMs: this.duration([...path, 'budget', 'window'], budget.window ?? DEFAULTS.hedge.budget.window, { positive: true }),
      },
    };
  }

  backoff(path: readonly PathSegment[], backoff: NonNullable<RetryFile['backoff']>): BackoffConfig {
    const baseMs = this.duration([...path, 'base'], backoff.base ?? DEFAULTS.backoff.base);
    const maxMs = backoff.max === undefined ? baseMs * DEFAULTS.backoff.maxTimesBase : this.duration([...path, 'max'], backoff.max);
    if (maxMs < baseMs && !this.#context.broken([...path, 'base'])) {
      this.#report([...path, 'max'], `must be at least base (${formatDuration(baseMs)}), got ${formatDuration(maxMs)}`);
    }
    return {
      type: backoff.type ?? DEFAULTS.backoff.type,
      baseMs,
      maxMs,
      jitter: backoff.jitter ?? DEFAULTS.backoff.jitter,
    };
  }

  fallback(path: readonly PathSegment[], fallback: FallbackFile, upstreams: KnownNames): FallbackConfig {
    const chain = fallback.chain.map((step, index): FallbackStep => {
      const stepPath = [...path, 'chain', this.fileIndex(fallback.chain, index)];
      if (step.staleCache) {
        return { kind: 'staleCache', maxAgeMs: this.duration([...stepPath, 'staleCache', 'maxAge'], step.staleCache.maxAge, { positive: true }) };
      }
      if (step.upstream !== undefined) {
        this.reference([...stepPath, 'upstream'], step.upstream, upstreams);
        return { kind: 'upstream', upstream: step.upstream };
      }
      const response = step.response!;
      return {
        kind: 'response',
        status: response.status,
        headers: Object.fromEntries(
          Object.entries<string>(response.headers ?? DEFAULTS.fallbackResponse.headers).map(([name, value]) => [name.toLowerCase(), value]),
        ),
        body: response.body ?? DEFAULTS.fallbackResponse.body,
        ...(response.grpcStatus === undefined ? {} : { grpcStatus: response.grpcStatus }),
      };
    });
    return { on: (fallback.on ?? DEFAULTS.fallback.on) as readonly FallbackTrigger[], chain };
  }

  fault(path: readonly PathSegment[], fault: FaultFile): FaultConfig {
    return {
      ...(fault.delay
        ? {
            delay: {
              percent: parsePercent(fault.delay.percent),
              durationMs: this.duration([...path, 'delay', 'duration'], fault.delay.duration),
            },
          }
        : {}),
      ...(fault.abort
        ? { abort: { percent: parsePercent(fault.abort.percent), status: fault.abort.status, grpcStatus: fault.abort.grpcStatus ?? DEFAULTS.fault.abortGrpcStatus } }
        : {}),
    };
  }

  stores(stores: ConfigFile['stores'], env: Environment): Map<string, StoreConfig> {
    const result = new Map<string, StoreConfig>();
    for (const [name, store] of Object.entries<StoreFile>(stores ?? DEFAULTS.stores)) {
      result.set(name, this.store(['stores', name], name, store, env));
    }
    return result;
  }

  store(path: readonly PathSegment[], name: string, store: StoreFile, env: Environment): StoreConfig {
    for (const key of Object.keys(store)) {
      const owner = (Object.keys(STORE_KEYS) as StoreType[]).find((type) => STORE_KEYS[type].includes(key));
      if (owner !== undefined && owner !== store.type) {
        this.#report([...path, key], `"${key}" applies only to stores of type ${owner}, not ${store.type}`, 'key');
      }
    }
    const timeoutMs = this.duration([...path, 'timeout'], store.timeout ?? DEFAULTS.store.timeout, { positive: true });
    switch (store.type) {
      case 'memory':
        return {
          name,
          type: 'memory',
          timeoutMs,
          maxEntries: store.maxEntries ?? DEFAULTS.memoryStore.maxEntries,
          maxBytes: this.size([...path, 'maxBytes'], store.maxBytes ?? DEFAULTS.memoryStore.maxBytes, { positive: true }),
        };
      case 'sqlite': {
        if (store.path === undefined && !this.#context.broken([...path, 'path'])) {
          this.#report([...path, 'type'], 'a sqlite store needs path: the database file');
        }
        return { name, type: 'sqlite', timeoutMs, path: this.expand([...path, 'path'], store.path ?? '', env) };
      }
      case 'redis': {
        const keyPrefix = this.expand([...path, 'keyPrefix'], store.keyPrefix ?? DEFAULTS.redisStore.keyPrefix, env);
        if (/[{}]/.test(keyPrefix)) {
          this.#report(
            [...path, 'keyPrefix'],
            'must not contain "{" or "}": each record\'s key goes in braces, so Redis Cluster keeps a record on one node',
          );
        }
        const username = store.username === undefined ? undefined : this.expand([...path, 'username'], store.username, env);
        const password = store.password === undefined ? undefined : this.expand([...path, 'password'], store.password, env);
        return {
          name,
          type: 'redis',
          timeoutMs,
          topology: this.redisTopology(path, store, env),
          keyPrefix,
          ...(username === undefined ? {} : { username }),
          ...(password === undefined ? {} : { password }),
        };
      }
    }
  }

  redisTopology(path: readonly PathSegment[], store: StoreFile, env: Environment): RedisTopology {
    const given = REDIS_TOPOLOGY_KEYS.filter((key) => store[key] !== undefined);
    if (given.length === 0) {
      // A malformed url, cluster or sentinel is reported where it is.
      if (!REDIS_TOPOLOGY_KEYS.some((key) => this.#context.broken([...path, key]))) {
        this.#report([...path, 'type'], 'a redis store needs one of url, cluster or sentinel');
      }
      return { mode: 'server', url: '' };
    }
    for (const extra of given.slice(1)) {
      this.#report([...path, extra], `give only one of url, cluster or sentinel (${given[0]} is already given)`, 'key');
    }
    const nodes = (key: PathSegment[], urls: readonly string[]) =>
      urls.map((url, index) => {
        const at = [...path, ...key, this.fileIndex(urls, index)];
        return this.redisUrl(at, this.expand(at, url, env), 'node');
      });
    if (store.cluster !== undefined) return { mode: 'cluster', nodes: nodes(['cluster'], store.cluster) };
    if (store.sentinel !== undefined) {
      return {
        mode: 'sentinel',
        masterName: this.expand([...path, 'sentinel', 'name'], store.sentinel.name, env),
        nodes: nodes(['sentinel', 'nodes'], store.sentinel.nodes),
      };
    }
    return { mode: 'server', url: this.redisUrl([...path, 'url'], this.expand([...path, 'url'], store.url ?? '', env), 'server') };
  }

  /** A redis:// or rediss:// URL; a cluster or sentinel node's has no database number. */
  redisUrl(path: readonly PathSegment[], text: string, role: 'server' | 'node'): string {
    let url: URL | undefined;
    try {
      url = new URL(text);
    } catch {
      url = undefined;
    }
    // Echoing the value could print a password taken from the environment, so messages do not.
    if (url === undefined || (url.protocol !== 'redis:' && url.protocol !== 'rediss:') || url.hostname === '') {
      this.#report(path, 'must be a redis:// or rediss:// URL with a host, such as redis://redis.infra:6379');
    } else if (role === 'node' && url.pathname !== '' && url.pathname !== '/') {
      this.#report(path, 'a cluster or sentinel node is redis://host:port, without a database number');
    } else if (role === 'server' && !/^(\/[0-9]*)?$/.test(url.pathname)) {
      this.#report(path, 'the path of a redis URL is a database number, such as redis://redis:6379/0');
    }
    return text;
  }

  /** Expands `${VAR}` references; an unset variable is a problem at the value that names it. */
  expand(path: readonly PathSegment[], text: string, env: Environment): string {
    const expansion = expandEnv(text, env);
    if (expansion.ok) return expansion.value;
    for (const name of expansion.missing) this.#report(path, `environment variable ${name} is not set`);
    return text;
  }
}
