// The effective configuration after validation and defaults: every duration is in
// milliseconds, every size in bytes, every ratio in 0..1. The data path only ever sees this
// shape; the YAML's spelling of it lives in schema.ts.

export interface Config {
  readonly listeners: readonly ListenerConfig[];
  readonly telemetry: TelemetryConfig;
  readonly admin: { readonly address: Address };
  readonly shutdown: { readonly drainTimeoutMs: number };
  readonly limits: Limits;
  readonly upstreams: ReadonlyMap<string, UpstreamConfig>;
  readonly deadline: DeadlineConfig;
  readonly routes: readonly RouteConfig[];
  /** State stores by name (contract section 10). */
  readonly stores: ReadonlyMap<string, StoreConfig>;
  readonly dns: DnsConfig;
}

export interface DnsConfig {
  /** `ip`, `ip:port` or `[ipv6]:port`; empty: the system's resolver. */
  readonly servers: readonly string[];
}

export interface TelemetryConfig {
  readonly address: Address;
  /** The service's health checks served as /app-health/NAME/KIND, by NAME. */
  readonly appProbes: Readonly<Record<string, AppProbeSet>>;
}

export type AppProbeKind = 'readyz' | 'livez' | 'startupz';

export type AppProbeSet = Readonly<Partial<Record<AppProbeKind, AppProbeConfig>>>;

export interface AppProbeConfig {
  /** Called on 127.0.0.1. */
  readonly port: number;
  /** With its query, if any. */
  readonly path: string;
  readonly timeoutMs: number;
}

export interface Address {
  readonly host: string;
  readonly port: number;
}

/** What a listener allows one connection and its clients: `limits`, overridden per listener. */
export interface ConnectionLimits {
  /** Time for a request head to arrive, from the connection's start or its next request's first byte. */
  readonly headersTimeoutMs: number;
  /** A keep-alive connection with no request in progress is closed after this. */
  readonly idleTimeoutMs: number;
  readonly maxConnections: number;
  /** Per client IP address. */
  readonly maxConnectionsPerClient: number;
  /** 0: unlimited. */
  readonly maxRequestsPerConnection: number;
}

export interface Limits extends ConnectionLimits {
  readonly maxHeaderBytes: number;
  readonly maxBodyBytes: number;
  readonly maxResponseHeaderBytes: number;
}

export interface ListenerConfig {
  readonly name: string;
  readonly address: Address;
  /** Load shedding for the local service: 503 bulkhead_full beyond it. Absent: no limit. */
  readonly maxConcurrent?: number;
  /** `limits` with this listener's overrides applied. */
  readonly limits: ConnectionLimits;
}

export type LoadBalancing = 'round-robin' | 'least-request' | 'peak-ewma';

/** How Breakwater talks to an upstream's endpoints: HTTP/1.1, or cleartext HTTP/2 with prior knowledge. */
export type UpstreamProtocol = 'http1' | 'h2c';

export interface UpstreamConfig {
  readonly name: string;
  /**
   * Origins, e.g. `http://payments.default.svc.cluster.local:8080` (no path), or
   * `dns://NAME:PORT`, resolved to an origin per A and AAAA record (src/upstream/discovery.ts).
   */
  readonly endpoints: readonly string[];
  /** Absent (a config built by hand): http1. */
  readonly protocol?: UpstreamProtocol;
  readonly loadBalancing: LoadBalancing;
  readonly connectTimeoutMs: number;
  /** Once a response head arrived, the longest wait for the next piece of its body. */
  readonly idleTimeoutMs: number;
  /** Per endpoint. Absent: undici's default (unlimited). */
  readonly maxConnections?: number;
  readonly bulkhead?: BulkheadConfig;
  readonly circuitBreaker?: CircuitBreakerConfig;
  /** How often dns:// endpoints are resolved again. Absent (a config built by hand): the default 5 s. */
  readonly dnsRefreshMs?: number;
  /** Absent: no endpoint is ever ejected. */
  readonly outlierDetection?: OutlierDetectionConfig;
}

export interface OutlierDetectionConfig {
  /** Failures in a row that eject an endpoint; 0: this rule is off. */
  readonly consecutiveFailures: number;
  readonly failureRate?: { readonly threshold: number; readonly minRequests: number; readonly windowMs: number };
  readonly latency?: { readonly factor: number; readonly minRequests: number; readonly windowMs: number };
  readonly baseEjectionTimeMs: number;
  readonly maxEjectionTimeMs: number;
  /** 0..100. */
  readonly maxEjectionPercent: number;
  /** The outcomes that count as failures: the upstream breaker's failOn, else the default list. */
  readonly failOn: readonly FailureKind[];
}

export interface BulkheadConfig {
  readonly maxConcurrent: number;
  readonly maxQueued: number;
  readonly queueTimeoutMs: number;
}

/** The gRPC statuses `retryOn` and `failOn` may name (contract section 14). */
export type GrpcCondition = 'cancelled' | 'deadline-exceeded' | 'resource-exhausted' | 'internal' | 'unavailable';

/** `5xx` counts a gRPC call's server errors too (src/exchange/grpc.ts); a gRPC name counts that status. */
export type FailureKind = '5xx' | 'connect-failure' | 'reset' | 'timeout' | GrpcCondition;

export interface CircuitBreakerConfig {
  readonly windowMs: number;
  readonly minRequests: number;
  readonly failureRate: number;
  readonly slowCallDurationMs: number;
  readonly slowCallRate: number;
  readonly openForMs: number;
  readonly openForMaxMs: number;
  readonly halfOpenRequests: number;
  readonly failOn: readonly FailureKind[];
}

export interface DeadlineConfig {
  readonly header: string;
  /** Lower-cased header names. */
  readonly accept: readonly string[];
  readonly maxInboundMs: number;
}

export interface RouteMatch {
  /** Lower-cased; exact, or `*.suffix`. Absent: any host. */
  readonly host?: string;
  readonly path?: string;
  readonly pathPrefix?: string;
  /** Upper-cased. Absent: any method. */
  readonly methods?: readonly string[];
  /** Lower-cased names, exact values. */
  readonly headers?: Readonly<Record<string, string>>;
}

export interface RouteConfig {
  readonly name: string;
  readonly listener: string;
  readonly match: RouteMatch;
  readonly upstream: string;
  readonly timeoutMs: number;
  readonly circuitBreaker?: CircuitBreakerConfig;
  readonly idempotency?: IdempotencyConfig;
  readonly retry?: RetryConfig;
  readonly hedge?: HedgeConfig;
  readonly fallback?: FallbackConfig;
  readonly fault?: FaultConfig;
  readonly deadLetter?: DeadLetterConfig;
  /** The bounds of the WebSocket tunnels this route opens; always present (defaults filled in). */
  readonly websocket: WebSocketConfig;
  /** Absent: the default metrics (no gRPC method labels). */
  readonly telemetry?: RouteTelemetryConfig;
}

/** The bounds of a WebSocket tunnel after the upstream's 101; 0 means none. */
export interface WebSocketConfig {
  /** No byte in either direction for this long closes the tunnel. */
  readonly idleTimeoutMs: number;
  /** The tunnel is closed once it has been open this long. */
  readonly maxDurationMs: number;
}

export interface RouteTelemetryConfig {
  /** Label breakwater_grpc_requests_total with each call's service and method. */
  readonly grpcMethods: boolean;
}

export interface DeadLetterConfig {
  /** A name of `stores`. */
  readonly store: string;
  readonly on: readonly FallbackTrigger[];
  readonly maxBodyBytes: number;
  readonly retentionMs: number;
  readonly maxEntries: number;
  /** Lower-cased credential headers kept in dead letters. */
  readonly keepHeaders: readonly string[];
}

/** Extra attempts (retries, hedges) allowed: `ratio` of the requests over `windowMs`, plus `minPerSecond`. */
export interface BudgetConfig {
  readonly ratio: number;
  readonly minPerSecond: number;
  readonly windowMs: number;
}

/** A bound drawn from observed latencies: clamp(multiplier × percentile, min, max), max below minSamples. */
export interface LatencyPercentileConfig {
  /** 0 < percentile ≤ 100. */
  readonly percentile: number;
  readonly multiplier: number;
  readonly minMs: number;
  readonly maxMs: number;
  readonly minSamples: number;
  readonly windowMs: number;
}

export interface HedgeConfig {
  /** A fixed delay; absent when the delay is a percentile. */
  readonly delayMs?: number;
  readonly adaptiveDelay?: LatencyPercentileConfig;
  /** Attempts in flight at once, the first included (2..5). */
  readonly maxAttempts: number;
  readonly budget: BudgetConfig;
}

export interface IdempotencyConfig {
  /** A name of `stores`. */
  readonly store: string;
  /** Lower-cased. */
  readonly header: string;
  /** Upper-cased. */
  readonly methods: readonly string[];
  readonly required: boolean;
  readonly ttlMs: number;
  readonly maxResponseBytes: number;
  readonly maxRequestBytes: number;
  readonly onStoreError: 'reject' | 'forward';
  readonly whileInProgress: 'reject' | 'wait';
}

/** `connect-failure`, `reset`, `timeout`, `5xx`, `gateway-error`, a gRPC status name, or a status code (429 or 5xx). */
export type RetryCondition = 'connect-failure' | 'reset' | 'timeout' | '5xx' | 'gateway-error' | GrpcCondition | number;

export interface BackoffConfig {
  readonly type: 'none' | 'fixed' | 'linear' | 'exponential';
  readonly baseMs: number;
  readonly maxMs: number;
  readonly jitter: 'none' | 'full' | 'equal' | 'decorrelated';
}

export interface RetryConfig {
  readonly maxAttempts: number;
  /** Absent: each attempt may use the whole remaining deadline. */
  readonly perTryTimeoutMs?: number;
  /** A per-try timeout drawn from the route's latencies; absent when it is fixed or unset. */
  readonly adaptivePerTryTimeout?: LatencyPercentileConfig;
  readonly retryOn: readonly RetryCondition[];
  readonly backoff: BackoffConfig;
  readonly respectRetryAfter: boolean;
  readonly budget: BudgetConfig;
  readonly bufferLimitBytes: number;
}

export type FallbackTrigger = 'circuit-open' | 'bulkhead-full' | 'timeout' | 'upstream-unavailable' | '5xx';

export type FallbackStep =
  | { readonly kind: 'staleCache'; readonly maxAgeMs: number }
  | { readonly kind: 'upstream'; readonly upstream: string }
  | {
      readonly kind: 'response';
      readonly status: number;
      readonly headers: Readonly<Record<string, string>>;
      readonly body: string;
      /** What a gRPC caller is answered: absent, OK for a 2xx status, else the status's gRPC equivalent. */
      readonly grpcStatus?: number;
    };

export interface FallbackConfig {
  readonly on: readonly FallbackTrigger[];
  readonly chain: readonly FallbackStep[];
}

export interface FaultConfig {
  readonly delay?: { readonly percent: number; readonly durationMs: number };
  /** `grpcStatus`: what a gRPC caller is answered instead of `status` (absent in a config built by hand: 14). */
  readonly abort?: { readonly percent: number; readonly status: number; readonly grpcStatus?: number };
}

export type StoreType = 'memory' | 'sqlite' | 'redis';

interface StoreConfigBase {
  readonly name: string;
  /** The longest any store operation may keep a caller waiting. */
  readonly timeoutMs: number;
}

export interface MemoryStoreConfig extends StoreConfigBase {
  readonly type: 'memory';
  readonly maxEntries: number;
  readonly maxBytes: number;
}

export interface SqliteStoreConfig extends StoreConfigBase {
  readonly type: 'sqlite';
  /** Environment variables expanded. */
  readonly path: string;
}

/** How to reach Redis: exactly one of a server URL, cluster seed nodes or sentinels. */
export type RedisTopology =
  | { readonly mode: 'server'; readonly url: string }
  | { readonly mode: 'cluster'; readonly nodes: readonly string[] }
  | { readonly mode: 'sentinel'; readonly masterName: string; readonly nodes: readonly string[] };

export interface RedisStoreConfig extends StoreConfigBase {
  readonly type: 'redis';
  readonly topology: RedisTopology;
  readonly keyPrefix: string;
  /** Credentials of the data nodes; URLs may carry them too. Environment variables expanded. */
  readonly username?: string;
  readonly password?: string;
}

export type StoreConfig = MemoryStoreConfig | SqliteStoreConfig | RedisStoreConfig;
