// The effective configuration after validation and defaults: every duration is in
// milliseconds, every size in bytes, every ratio in 0..1. The data path only ever sees this
// shape; the YAML's spelling of it lives in schema.ts.

export interface Config {
  readonly listeners: readonly ListenerConfig[];
  readonly telemetry: { readonly address: Address };
  readonly admin: { readonly address: Address };
  readonly shutdown: { readonly drainTimeoutMs: number };
  readonly limits: Limits;
  readonly upstreams: ReadonlyMap<string, UpstreamConfig>;
  readonly deadline: DeadlineConfig;
  readonly routes: readonly RouteConfig[];
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

export type LoadBalancing = 'round-robin' | 'least-request';

export interface UpstreamConfig {
  readonly name: string;
  /** Origins, e.g. `http://payments.default.svc.cluster.local:8080` (no path). */
  readonly endpoints: readonly string[];
  readonly loadBalancing: LoadBalancing;
  readonly connectTimeoutMs: number;
  /** Once a response head arrived, the longest wait for the next piece of its body. */
  readonly idleTimeoutMs: number;
  /** Per endpoint. Absent: undici's default (unlimited). */
  readonly maxConnections?: number;
  readonly bulkhead?: BulkheadConfig;
  readonly circuitBreaker?: CircuitBreakerConfig;
}

export interface BulkheadConfig {
  readonly maxConcurrent: number;
  readonly maxQueued: number;
  readonly queueTimeoutMs: number;
}

export type FailureKind = '5xx' | 'connect-failure' | 'reset' | 'timeout';

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
  readonly retry?: RetryConfig;
  readonly fallback?: FallbackConfig;
  readonly fault?: FaultConfig;
}

/** `connect-failure`, `reset`, `timeout`, `5xx`, `gateway-error`, or a status code (429 or 5xx). */
export type RetryCondition = 'connect-failure' | 'reset' | 'timeout' | '5xx' | 'gateway-error' | number;

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
  readonly retryOn: readonly RetryCondition[];
  readonly backoff: BackoffConfig;
  readonly respectRetryAfter: boolean;
  readonly budget: { readonly ratio: number; readonly minPerSecond: number; readonly windowMs: number };
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
    };

export interface FallbackConfig {
  readonly on: readonly FallbackTrigger[];
  readonly chain: readonly FallbackStep[];
}

export interface FaultConfig {
  readonly delay?: { readonly percent: number; readonly durationMs: number };
  readonly abort?: { readonly percent: number; readonly status: number };
}
