// From a schema-valid config file to the effective Config: checks the rules a JSON Schema
// cannot express (names that refer to each other, URL shapes, min/max pairs), applies the
// defaults and converts durations, sizes and ratios to plain numbers.

import { DEFAULTS } from './defaults.ts';
import type { PathSegment } from './positions.ts';
import type { ConfigFile } from './schema.ts';
import { didYouMean } from './suggest.ts';
import type {
  Address,
  BackoffConfig,
  BulkheadConfig,
  CircuitBreakerConfig,
  Config,
  ConnectionLimits,
  DeadlineConfig,
  FallbackConfig,
  FallbackStep,
  FallbackTrigger,
  FailureKind,
  FaultConfig,
  Limits,
  ListenerConfig,
  LoadBalancing,
  RetryCondition,
  RetryConfig,
  RouteConfig,
  RouteMatch,
  UpstreamConfig,
} from './types.ts';
import { formatDuration, parseDuration, parsePercent, parseRatio, parseSize } from './units.ts';

export type ReportProblem = (path: readonly PathSegment[], message: string, part?: 'key' | 'value') => void;

type UpstreamFile = NonNullable<ConfigFile['upstreams']>[string];
type RouteFile = NonNullable<ConfigFile['routes']>[number];
type BreakerFile = NonNullable<UpstreamFile['circuitBreaker']>;
type RetryFile = NonNullable<RouteFile['retry']>;
type FallbackFile = NonNullable<RouteFile['fallback']>;
type FaultFile = NonNullable<RouteFile['fault']>;
type MatchFile = NonNullable<RouteFile['match']>;
type ListenerFile = NonNullable<ConfigFile['listeners']>[number];
type ConnectionLimitsFile = Pick<ListenerFile, 'headersTimeout' | 'idleTimeout' | 'maxConnections' | 'maxConnectionsPerClient' | 'maxRequestsPerConnection'>;

// Hosts that listen on every interface, so they clash with any host on the same port.
const WILDCARD_HOSTS = new Set(['0.0.0.0', '::']);

/**
 * Builds the effective config from a file that passed the schema. Every rule broken is passed
 * to `report`; the returned config is only meaningful when nothing was reported.
 */
export function normalizeConfig(file: ConfigFile, report: ReportProblem): Config {
  const check = new Checker(report);
  const limits = check.limits(file.limits);
  const listeners = check.listeners(file, limits);
  const telemetry = { address: check.address(['telemetry', 'address'], file.telemetry?.address ?? DEFAULTS.telemetry.address) };
  const admin = { address: check.address(['admin', 'address'], file.admin?.address ?? DEFAULTS.admin.address) };
  check.distinctAddresses([
    ...listeners.map((listener, index) => ({ path: ['listeners', index, 'address'], name: `listener ${listener.name}`, address: listener.address })),
    { path: ['telemetry', 'address'], name: 'the telemetry server', address: telemetry.address },
    { path: ['admin', 'address'], name: 'the admin server', address: admin.address },
  ]);
  const upstreams = new Map<string, UpstreamConfig>();
  for (const [name, upstream] of Object.entries(file.upstreams ?? {})) {
    upstreams.set(name, check.upstream(['upstreams', name], name, upstream));
  }
  const listenerNames = new Set(listeners.map((listener) => listener.name));
  const routeNames = new Map<string, number>();
  const routes = (file.routes ?? []).map((route, index) => {
    const earlier = routeNames.get(route.name);
    if (earlier === undefined) routeNames.set(route.name, index);
    else report(['routes', index, 'name'], `route name "${route.name}" is already used by routes[${earlier}]`);
    return check.route(['routes', index], route, listenerNames, upstreams);
  });
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
  };
}

class Checker {
  readonly #report: ReportProblem;

  constructor(report: ReportProblem) {
    this.#report = report;
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
    const seen = new Map<string, number>();
    return given.map((listener, index) => {
      const earlier = seen.get(listener.name);
      if (earlier === undefined) seen.set(listener.name, index);
      else this.#report(['listeners', index, 'name'], `listener name "${listener.name}" is already used by listeners[${earlier}]`);
      const maxConcurrent = listener.maxConcurrent;
      return {
        name: listener.name,
        address: this.address(['listeners', index, 'address'], listener.address),
        ...(maxConcurrent === undefined ? {} : { maxConcurrent }),
        limits: this.connectionLimits(['listeners', index], listener, limits),
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
    const endpoints = upstream.endpoints.map((endpoint, index) => this.endpoint([...path, 'endpoints', index], endpoint));
    const bulkhead = upstream.bulkhead && this.bulkhead([...path, 'bulkhead'], upstream.bulkhead);
    const circuitBreaker = upstream.circuitBreaker && this.circuitBreaker([...path, 'circuitBreaker'], upstream.circuitBreaker);
    return {
      name,
      endpoints,
      loadBalancing: (upstream.loadBalancing ?? DEFAULTS.upstream.loadBalancing) as LoadBalancing,
      connectTimeoutMs: this.duration([...path, 'connectTimeout'], upstream.connectTimeout ?? DEFAULTS.upstream.connectTimeout, {
        positive: true,
      }),
      idleTimeoutMs: this.duration([...path, 'idleTimeout'], upstream.idleTimeout ?? DEFAULTS.upstream.idleTimeout, { positive: true }),
      ...(upstream.maxConnections === undefined ? {} : { maxConnections: upstream.maxConnections }),
      ...(bulkhead ? { bulkhead } : {}),
      ...(circuitBreaker ? { circuitBreaker } : {}),
    };
  }

  /** An http:// origin; returned without a trailing slash, userinfo kept. */
  endpoint(path: readonly PathSegment[], text: string): string {
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
    if (openForMaxMs < openForMs) {
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
    listeners: ReadonlySet<string>,
    upstreams: ReadonlyMap<string, UpstreamConfig>,
  ): RouteConfig {
    const listener = route.listener ?? DEFAULTS.routeListener;
    if (!listeners.has(listener)) {
      const message =
        route.listener === undefined
          ? `route has no listener and there is no "${listener}" listener to default to; add listener: with one of: ${[...listeners].join(', ')}`
          : `unknown listener "${listener}"${didYouMean(listener, listeners)}`;
      this.#report([...path, 'listener'], message);
    }
    if (!upstreams.has(route.upstream)) {
      this.#report([...path, 'upstream'], `unknown upstream "${route.upstream}"${didYouMean(route.upstream, upstreams.keys())}`);
    }
    const circuitBreaker = route.circuitBreaker && this.circuitBreaker([...path, 'circuitBreaker'], route.circuitBreaker);
    const retry = route.retry && this.retry([...path, 'retry'], route.retry);
    const fallback = route.fallback && this.fallback([...path, 'fallback'], route.fallback, upstreams);
    const fault = route.fault && this.fault([...path, 'fault'], route.fault);
    return {
      name: route.name,
      listener,
      match: this.match([...path, 'match'], route.match ?? {}),
      upstream: route.upstream,
      timeoutMs: this.duration([...path, 'timeout'], route.timeout ?? DEFAULTS.route.timeout, { positive: true }),
      ...(circuitBreaker ? { circuitBreaker } : {}),
      ...(retry ? { retry } : {}),
      ...(fallback ? { fallback } : {}),
      ...(fault ? { fault } : {}),
    };
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

  retry(path: readonly PathSegment[], retry: RetryFile): RetryConfig {
    const retryOn = (retry.retryOn ?? DEFAULTS.retry.retryOn) as readonly RetryCondition[];
    retryOn.forEach((condition, index) => {
      if (typeof condition !== 'number' || condition === 429 || (condition >= 500 && condition <= 599)) return;
      const message =
        condition >= 400
          ? `${condition} cannot be retried: retryOn may list 429 but no other 4xx`
          : `${condition} is not an error status; retryOn lists 429 or 500 to 599`;
      this.#report([...path, 'retryOn', index], message);
    });
    const budget = retry.budget ?? {};
    const perTryTimeout = retry.perTryTimeout;
    return {
      maxAttempts: retry.maxAttempts ?? DEFAULTS.retry.maxAttempts,
      ...(perTryTimeout === undefined
        ? {}
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

  backoff(path: readonly PathSegment[], backoff: NonNullable<RetryFile['backoff']>): BackoffConfig {
    const baseMs = this.duration([...path, 'base'], backoff.base ?? DEFAULTS.backoff.base);
    const maxMs = backoff.max === undefined ? baseMs * DEFAULTS.backoff.maxTimesBase : this.duration([...path, 'max'], backoff.max);
    if (maxMs < baseMs) {
      this.#report([...path, 'max'], `must be at least base (${formatDuration(baseMs)}), got ${formatDuration(maxMs)}`);
    }
    return {
      type: backoff.type ?? DEFAULTS.backoff.type,
      baseMs,
      maxMs,
      jitter: backoff.jitter ?? DEFAULTS.backoff.jitter,
    };
  }

  fallback(path: readonly PathSegment[], fallback: FallbackFile, upstreams: ReadonlyMap<string, UpstreamConfig>): FallbackConfig {
    const chain = fallback.chain.map((step, index): FallbackStep => {
      const stepPath = [...path, 'chain', index];
      if (step.staleCache) {
        return { kind: 'staleCache', maxAgeMs: this.duration([...stepPath, 'staleCache', 'maxAge'], step.staleCache.maxAge, { positive: true }) };
      }
      if (step.upstream !== undefined) {
        if (!upstreams.has(step.upstream)) {
          this.#report([...stepPath, 'upstream'], `unknown upstream "${step.upstream}"${didYouMean(step.upstream, upstreams.keys())}`);
        }
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
      ...(fault.abort ? { abort: { percent: parsePercent(fault.abort.percent), status: fault.abort.status } } : {}),
    };
  }
}
