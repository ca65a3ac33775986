// Every default of the config file in one place, written as a user would write it in the YAML
// file, so that the same parser turns both into the effective config and the JSON Schema can
// show them to editors. docs/configuration.md explains where each value comes from.

const deepFreeze = <T>(value: T): T => {
  if (value !== null && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
};

export const DEFAULTS = deepFreeze({
  // The listener a route belongs to when it names none.
  routeListener: 'outbound',
  // Istio's port numbers (contract section 2).
  listeners: [
    { name: 'outbound', address: '127.0.0.1:15001' },
    { name: 'inbound', address: '0.0.0.0:15006' },
  ],
  telemetry: { address: '0.0.0.0:15020' },
  // Kubernetes' own probe defaults: timeoutSeconds 1, and an httpGet path of "/".
  appProbe: { path: '/', timeout: '1s' },
  // Loopback: the admin port can force breakers open, so it is never exposed unless asked.
  admin: { address: '127.0.0.1:15000' },
  shutdown: { drainTimeout: '20s' },
  limits: {
    maxHeaderBytes: '16KiB',
    maxBodyBytes: 0,
    // Envoy accepts 60 KiB of headers by default; undici's own limit of 16 KiB is one that
    // large cookies and tracing headers outgrow.
    maxResponseHeaderBytes: '64KiB',
    // Contract section 16: a client gets 10 s to send a request head, and an idle keep-alive
    // connection is kept a minute.
    headersTimeout: '10s',
    idleTimeout: '60s',
    maxConnections: 10000,
    maxConnectionsPerClient: 1000,
    maxRequestsPerConnection: 0,
  },
  upstream: {
    protocol: 'http1',
    loadBalancing: 'round-robin',
    connectTimeout: '1s',
    // Envoy's dns_refresh_rate, and Kubernetes' own DNS cache TTL: a new pod is seen within seconds.
    dnsRefresh: '5s',
    // The same minute an idle client connection is kept.
    idleTimeout: '60s',
  },
  outlierDetection: {
    // Envoy's consecutive_5xx.
    consecutiveFailures: 5,
    failureRate: { threshold: 0.5, minRequests: 20, window: '10s' },
    latency: { factor: 3, minRequests: 20, window: '10s' },
    // Envoy's base_ejection_time and max_ejection_time.
    baseEjectionTime: '30s',
    maxEjectionTime: '5m',
    // Above Envoy's 10%, which ejects nothing below ten endpoints; with the share counted after
    // the ejection, 50% lets one of two endpoints go and keeps the other.
    maxEjectionPercent: 50,
  },
  bulkhead: {
    // Resilience4j's maxWaitDuration 0: without a queue, a full bulkhead rejects at once.
    maxQueued: 0,
    queueTimeout: '1s',
  },
  circuitBreaker: {
    window: '10s',
    minRequests: 20,
    failureRate: 0.5,
    slowCallDuration: '60s',
    slowCallRate: 1,
    openFor: '30s',
    // openForMax has no default of its own: absent, it equals openFor (no growth).
    halfOpenRequests: 3,
    failOn: ['5xx', 'connect-failure', 'reset', 'timeout'],
  },
  deadline: {
    header: 'x-request-timeout-ms',
    accept: ['x-request-timeout-ms', 'grpc-timeout', 'x-envoy-expected-rq-timeout-ms'],
    maxInbound: '60s',
  },
  route: {
    timeout: '15s',
  },
  // Envoy's stream_idle_timeout, which bounds an idle upgraded stream the same way; a tunnel's
  // length is unbounded, as in Envoy and Istio, unless the route asks.
  websocket: { idleTimeout: '5m', maxDuration: 0 },
  retry: {
    maxAttempts: 3,
    retryOn: ['connect-failure', 'reset', 502, 503, 504],
    respectRetryAfter: true,
    bufferLimit: '64KiB',
  },
  backoff: {
    type: 'exponential',
    base: '25ms',
    // Envoy's rule: max_interval defaults to 10 × base_interval (25ms → 250ms).
    maxTimesBase: 10,
    jitter: 'full',
  },
  budget: { ratio: 0.2, minPerSecond: 10, window: '10s' },
  fallback: {
    // Failures Breakwater itself detects; an upstream's own 5xx passes through unless listed.
    on: ['circuit-open', 'bulkhead-full', 'timeout', 'upstream-unavailable'],
  },
  fallbackResponse: { headers: {}, body: '' },
  // Contract section 14: an injected abort tells a gRPC caller 14 UNAVAILABLE, what a failing
  // network or server would.
  fault: { abortGrpcStatus: 14 },
  // A percentile of a few latencies is noise: until a window holds this many, the bound is max.
  latencyPercentile: { min: '1ms', minSamples: 100, window: '60s' },
  // Headroom above the percentile, so that an attempt is cut only when it is clearly slower.
  adaptiveTimeout: { multiplier: 1.5 },
  hedge: {
    // "The Tail at Scale" hedges at the percentile itself: a hedge for the slowest share.
    multiplier: 1,
    maxAttempts: 2,
    // About the 5% extra load the paper's hedging costs, with a floor for quiet routes.
    budget: { ratio: 0.05, minPerSecond: 5, window: '10s' },
  },
  idempotency: {
    store: 'default',
    header: 'idempotency-key',
    methods: ['POST', 'PATCH'],
    required: false,
    // Stripe keeps keys at least a day: long enough for a client's retries after an outage.
    ttl: '24h',
    maxResponseBytes: '1MiB',
    maxRequestBytes: '1MiB',
    onStoreError: 'reject',
    whileInProgress: 'reject',
  },
  deadLetter: {
    store: 'default',
    // Every failure a later replay could cure; 4xx answers are the caller's to fix, not replay.
    on: ['timeout', 'upstream-unavailable', 'circuit-open', 'bulkhead-full', '5xx'],
    maxBodyBytes: '1MiB',
    // Long enough to outlast a weekend's outage and the fix after it.
    retention: '7d',
    maxEntries: 100_000,
    keepHeaders: [],
  },
  // With no `stores` block: one store, in memory, so policies work with nothing to install.
  stores: { default: { type: 'memory' } },
  // A store answers within a request's budget or not at all; 50ms leaves a request most of its time.
  store: { timeout: '50ms' },
  // Enough for a busy route's idempotency records for a while, small beside a sidecar's memory.
  memoryStore: { maxEntries: 10_000, maxBytes: '32MiB' },
  // Names Breakwater's keys in a Redis that others share.
  redisStore: { keyPrefix: 'breakwater:' },
} as const);
