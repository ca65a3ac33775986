// The one schema of breakwater.yaml. It drives validation (load.ts, through Ajv), the
// JSON Schema that editors use (config/schema.json, written by scripts/generate-schema.ts)
// and the TypeScript type of a parsed file before defaults are applied.

import { Type } from '@sinclair/typebox';
import type { SchemaOptions, Static, TSchema } from '@sinclair/typebox';
import { DEFAULTS } from './defaults.ts';
import { DURATION_PATTERN, PERCENT_PATTERN, SIZE_PATTERN } from './units.ts';

// Every property carries a title and a description, for editors' hover help.
interface Described extends SchemaOptions {
  title: string;
  description: string;
}

// `errorMessage` is what editors (VS Code's JSON service) and load.ts show when a value fails;
// without it a union such as "string with unit or integer" reports one error per branch.
const DURATION_MESSAGE = 'must be a duration: a number with a unit ms, s, m, h or d (250ms, 1.5s, 1m, 7d) or integer milliseconds';
const SIZE_MESSAGE = 'must be a size: integer bytes or a number with a unit B, KB, KiB, MB, MiB, GB or GiB (16KiB, 1MiB)';
const RATIO_MESSAGE = 'must be a ratio: a number from 0 to 1, or a percentage string such as "20%"';
const PERCENT_MESSAGE = 'must be a percentage: a number from 0 to 100, or a string such as "10%"';
const ADDRESS_MESSAGE = 'must be host:port, for example 127.0.0.1:15001, 0.0.0.0:15006 or [::1]:15000';
const HEADER_NAME_MESSAGE = 'must be an HTTP header name (letters, digits and !#$%&\'*+-.^_`|~)';

const NAME_MESSAGE = 'must be a name of letters, digits, ".", "_" and "-", starting with a letter or digit';

// Names show up in admin URLs (/circuits/NAME), metric labels and log lines.
const NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]*$';
const ADDRESS_PATTERN = '^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?):[0-9]{1,5}$';
// An RFC 9110 token: what header names and methods are made of.
const TOKEN_PATTERN = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";
const HOST_PATTERN_PATTERN = '^(\\*\\.)?[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$|^\\[[0-9A-Fa-f:.]+\\]$';

const Duration = (options: Described) =>
  Type.Union([Type.String({ pattern: DURATION_PATTERN }), Type.Integer({ minimum: 0 })], {
    ...options,
    errorMessage: DURATION_MESSAGE,
  });

const Size = (options: Described) =>
  Type.Union([Type.String({ pattern: SIZE_PATTERN }), Type.Integer({ minimum: 0 })], {
    ...options,
    errorMessage: SIZE_MESSAGE,
  });

const Ratio = (options: Described) =>
  Type.Union([Type.Number({ minimum: 0, maximum: 1 }), Type.String({ pattern: PERCENT_PATTERN })], {
    ...options,
    errorMessage: RATIO_MESSAGE,
  });

const Percent = (options: Described) =>
  Type.Union([Type.Number({ minimum: 0, maximum: 100 }), Type.String({ pattern: PERCENT_PATTERN })], {
    ...options,
    errorMessage: PERCENT_MESSAGE,
  });

const Address = (options: Described) =>
  Type.String({ ...options, pattern: ADDRESS_PATTERN, errorMessage: ADDRESS_MESSAGE });

const HeaderName = (options: Described) =>
  Type.String({ ...options, pattern: TOKEN_PATTERN, errorMessage: HEADER_NAME_MESSAGE });

// A plain `enum` rather than TypeBox's union of literals: one error, one completion list.
function StringEnum<const T extends readonly string[]>(values: T, options: Described) {
  return Type.Unsafe<T[number]>({ ...options, type: 'string', enum: [...values] });
}

// A mapping with free keys: `additionalProperties` holds the value schema, which editors
// understand better than TypeBox's catch-all `patternProperties`.
const MapOf = <T extends TSchema>(values: T, options: SchemaOptions) =>
  Type.Unsafe<Record<string, Static<T>>>({ ...options, type: 'object', additionalProperties: values });

const HeaderMap = (options: Described) =>
  MapOf(Type.String({ title: 'Header value', description: 'An exact header value.' }), {
    ...options,
    propertyNames: { pattern: TOKEN_PATTERN, errorMessage: 'is not a valid header name' },
  });

const Name = (options: Described) => Type.String({ ...options, pattern: NAME_PATTERN, errorMessage: NAME_MESSAGE });

const Strict = { additionalProperties: false } as const;

const GRPC_CONDITIONS = ['cancelled', 'deadline-exceeded', 'resource-exhausted', 'internal', 'unavailable'] as const;
const FAILURE_KINDS = ['5xx', 'connect-failure', 'reset', 'timeout', ...GRPC_CONDITIONS] as const;
const RETRY_CONDITIONS = ['connect-failure', 'reset', 'timeout', '5xx', 'gateway-error', ...GRPC_CONDITIONS] as const;
const FALLBACK_TRIGGERS = ['circuit-open', 'bulkhead-full', 'timeout', 'upstream-unavailable', '5xx'] as const;
const BACKOFF_TYPES = ['none', 'fixed', 'linear', 'exponential'] as const;
const JITTERS = ['none', 'full', 'equal', 'decorrelated'] as const;
const LOAD_BALANCING = ['round-robin', 'least-request', 'peak-ewma'] as const;
const UPSTREAM_PROTOCOLS = ['http1', 'h2c'] as const;

// The connection limits of a listener: set under `limits` for every listener, and under a
// listener to override them there. Defaults are given once, under `limits`.
function connectionLimits(withDefaults: boolean) {
  const d = withDefaults ? DEFAULTS.limits : undefined;
  return {
    headersTimeout: Type.Optional(
      Duration({
        title: 'Request headers timeout',
        description:
          'A connection whose request headers are not complete this long after it opened (or after the first byte of its next request) gets 408 request_timeout and is closed. A request whose headers arrived is never cut by it.',
        ...(d ? { default: d.headersTimeout } : {}),
      }),
    ),
    idleTimeout: Type.Optional(
      Duration({
        title: 'Idle connection timeout',
        description: 'A keep-alive connection with no request in progress is closed after this long.',
        ...(d ? { default: d.idleTimeout } : {}),
      }),
    ),
    maxConnections: Type.Optional(
      Type.Integer({
        title: 'Maximum open connections',
        description: 'Per listener. Beyond it, a new connection is closed at once, before any byte is read.',
        minimum: 1,
        ...(d ? { default: d.maxConnections } : {}),
      }),
    ),
    maxConnectionsPerClient: Type.Optional(
      Type.Integer({
        title: 'Maximum open connections per client',
        description: 'Per listener and client IP address. Beyond it, a new connection from that address is closed at once.',
        minimum: 1,
        ...(d ? { default: d.maxConnectionsPerClient } : {}),
      }),
    ),
    maxRequestsPerConnection: Type.Optional(
      Type.Integer({
        title: 'Maximum requests per connection',
        description: '0: unlimited. Otherwise the Nth response on a connection carries Connection: close and the connection is closed after it.',
        minimum: 0,
        ...(d ? { default: d.maxRequestsPerConnection } : {}),
      }),
    ),
  };
}

const ListenerSchema = Type.Object(
  {
    name: Name({
      title: 'Listener name',
      description: 'Routes refer to a listener by this name. A route without `listener` belongs to `outbound`.',
    }),
    address: Address({
      title: 'Listen address',
      description: 'host:port to accept connections on. IPv6 hosts go in brackets: [::1]:15001.',
    }),
    maxConcurrent: Type.Optional(
      Type.Integer({
        title: 'Maximum concurrent requests',
        description:
          'Load shedding: requests in flight on this listener beyond this number get 503 bulkhead_full. Absent: no limit.',
        minimum: 1,
      }),
    ),
    ...connectionLimits(false),
  },
  {
    ...Strict,
    title: 'Listener',
    description: 'A port Breakwater accepts HTTP on. The connection limits set here override those under `limits` for this listener.',
  },
);

const CircuitBreakerSchema = Type.Object(
  {
    window: Type.Optional(
      Duration({
        title: 'Statistics window',
        description: 'Sliding time window over which call outcomes are counted.',
        default: DEFAULTS.circuitBreaker.window,
      }),
    ),
    minRequests: Type.Optional(
      Type.Integer({
        title: 'Minimum calls',
        description: 'No decision is made while the window holds fewer calls than this.',
        minimum: 1,
        default: DEFAULTS.circuitBreaker.minRequests,
      }),
    ),
    failureRate: Type.Optional(
      Ratio({
        title: 'Failure rate threshold',
        description: 'The breaker opens when this share of the calls in the window failed (or more).',
        default: DEFAULTS.circuitBreaker.failureRate,
      }),
    ),
    slowCallDuration: Type.Optional(
      Duration({
        title: 'Slow call duration',
        description: 'A call that takes longer than this counts as slow.',
        default: DEFAULTS.circuitBreaker.slowCallDuration,
      }),
    ),
    slowCallRate: Type.Optional(
      Ratio({
        title: 'Slow call rate threshold',
        description: 'The breaker opens when this share of the calls in the window was slow (or more). 1.0 turns it off.',
        default: DEFAULTS.circuitBreaker.slowCallRate,
      }),
    ),
    openFor: Type.Optional(
      Duration({
        title: 'Open duration',
        description: 'How long the breaker stays open before it lets probes through (half-open).',
        default: DEFAULTS.circuitBreaker.openFor,
      }),
    ),
    openForMax: Type.Optional(
      Duration({
        title: 'Maximum open duration',
        description:
          'Each consecutive re-open doubles openFor, up to this. Absent: equal to openFor, so the open time does not grow.',
      }),
    ),
    halfOpenRequests: Type.Optional(
      Type.Integer({
        title: 'Half-open probes',
        description: 'Calls let through while half-open; all must succeed for the breaker to close.',
        minimum: 1,
        default: DEFAULTS.circuitBreaker.halfOpenRequests,
      }),
    ),
    failOn: Type.Optional(
      Type.Array(
        StringEnum(FAILURE_KINDS, {
          title: 'Failure kind',
          description:
            "5xx: a 5xx response, or a gRPC call's server error (UNKNOWN, DEADLINE_EXCEEDED, INTERNAL, UNAVAILABLE, DATA_LOSS); connect-failure: no connection; reset: connection lost before a response; timeout: the attempt timed out; cancelled, deadline-exceeded, resource-exhausted, internal, unavailable: a gRPC call ended with that status.",
        }),
        {
          title: 'Outcomes counted as failures',
          description: 'Which call outcomes count as failures for the failure rate.',
          minItems: 1,
          uniqueItems: true,
          default: DEFAULTS.circuitBreaker.failOn,
        },
      ),
    ),
  },
  {
    ...Strict,
    title: 'Circuit breaker',
    description:
      'Stops calling a failing destination for a while (503 circuit_open), then probes it. Absent: no breaker.',
  },
);

const BulkheadSchema = Type.Object(
  {
    maxConcurrent: Type.Integer({
      title: 'Maximum concurrent calls',
      description: 'Requests to this upstream allowed in flight at once.',
      minimum: 1,
    }),
    maxQueued: Type.Optional(
      Type.Integer({
        title: 'Maximum queued calls',
        description: 'Requests allowed to wait for a free slot; beyond it, 503 bulkhead_full at once.',
        minimum: 0,
        default: DEFAULTS.bulkhead.maxQueued,
      }),
    ),
    queueTimeout: Type.Optional(
      Duration({
        title: 'Queue timeout',
        description: 'How long a queued request waits for a slot before 503 bulkhead_full (never past its deadline).',
        default: DEFAULTS.bulkhead.queueTimeout,
      }),
    ),
  },
  {
    ...Strict,
    title: 'Bulkhead',
    description: 'Concurrency isolation for this destination. Absent: no limit.',
  },
);

const OutlierDetectionSchema = Type.Object(
  {
    consecutiveFailures: Type.Optional(
      Type.Integer({
        title: 'Consecutive failures',
        description:
          "Failures in a row (as the upstream breaker's failOn counts them, else 5xx, connect-failure, reset and timeout) that eject an endpoint. 0 turns this rule off.",
        minimum: 0,
        default: DEFAULTS.outlierDetection.consecutiveFailures,
      }),
    ),
    failureRate: Type.Optional(
      Type.Object(
        {
          threshold: Type.Optional(
            Ratio({
              title: 'Failure rate threshold',
              description: "An endpoint is ejected when this share of its attempts in the window failed (or more).",
              default: DEFAULTS.outlierDetection.failureRate.threshold,
            }),
          ),
          minRequests: Type.Optional(
            Type.Integer({
              title: 'Minimum attempts',
              description: 'No decision while the endpoint has fewer attempts than this in the window.',
              minimum: 1,
              default: DEFAULTS.outlierDetection.failureRate.minRequests,
            }),
          ),
          window: Type.Optional(
            Duration({
              title: 'Failure rate window',
              description: "Sliding time window over which each endpoint's attempts are counted.",
              default: DEFAULTS.outlierDetection.failureRate.window,
            }),
          ),
        },
        {
          ...Strict,
          title: 'Failure rate ejection',
          description: 'Ejects an endpoint whose share of failed attempts over a window is too high. Absent: off.',
        },
      ),
    ),
    latency: Type.Optional(
      Type.Object(
        {
          factor: Type.Optional(
            Type.Number({
              title: 'Latency factor',
              description: "An endpoint is ejected when its median latency is above this many times the median of the other endpoints' medians.",
              exclusiveMinimum: 1,
              default: DEFAULTS.outlierDetection.latency.factor,
            }),
          ),
          minRequests: Type.Optional(
            Type.Integer({
              title: 'Minimum attempts',
              description: 'An endpoint with fewer timed attempts than this in the window is neither judged nor compared with.',
              minimum: 1,
              default: DEFAULTS.outlierDetection.latency.minRequests,
            }),
          ),
          window: Type.Optional(
            Duration({
              title: 'Latency window',
              description: "Sliding time window over which each endpoint's latencies are kept.",
              default: DEFAULTS.outlierDetection.latency.window,
            }),
          ),
        },
        {
          ...Strict,
          title: 'Latency ejection',
          description: 'Ejects an endpoint much slower than the others (its p50 against the median of theirs). Absent: off.',
        },
      ),
    ),
    baseEjectionTime: Type.Optional(
      Duration({
        title: 'Base ejection time',
        description: 'How long an ejection lasts, times the number of times in a row the endpoint was ejected, with ±15% jitter.',
        default: DEFAULTS.outlierDetection.baseEjectionTime,
      }),
    ),
    maxEjectionTime: Type.Optional(
      Duration({
        title: 'Maximum ejection time',
        description: 'No ejection lasts longer than this.',
        default: DEFAULTS.outlierDetection.maxEjectionTime,
      }),
    ),
    maxEjectionPercent: Type.Optional(
      Percent({
        title: 'Maximum ejected share',
        description:
          "The largest share of the upstream's endpoints that may be ejected at once, counting the ejection being decided; an ejection beyond it does not happen, and the last endpoint is never ejected.",
        default: DEFAULTS.outlierDetection.maxEjectionPercent,
      }),
    ),
  },
  {
    ...Strict,
    title: 'Outlier detection',
    description:
      'Takes failing or slow endpoints out of the balancer for a while, judged from the attempts sent to them. Absent: no endpoint is ever ejected.',
  },
);

const UpstreamSchema = Type.Object(
  {
    endpoints: Type.Array(
      Type.String({
        title: 'Endpoint',
        description:
          'An http:// origin (scheme, host and optional port, no path or query), or dns://NAME:PORT: every A and AAAA record of NAME, re-resolved every dnsRefresh (a headless Service gives every ready pod).',
        minLength: 1,
      }),
      {
        title: 'Endpoints',
        description: 'The origins (or DNS names) requests to this upstream are balanced across.',
        minItems: 1,
        uniqueItems: true,
      },
    ),
    protocol: Type.Optional(
      StringEnum(UPSTREAM_PROTOCOLS, {
        title: 'Protocol',
        description:
          'How Breakwater talks to the endpoints: http1 (HTTP/1.1, a request per connection at a time) or h2c (cleartext HTTP/2 with prior knowledge, requests multiplexed over maxConnections connections per endpoint). gRPC upstreams need h2c.',
        default: DEFAULTS.upstream.protocol,
      }),
    ),
    loadBalancing: Type.Optional(
      StringEnum(LOAD_BALANCING, {
        title: 'Load balancing',
        description:
          'round-robin; least-request (power of two choices, fewer requests in flight wins); peak-ewma (power of two choices, lower latency EWMA × requests in flight wins).',
        default: DEFAULTS.upstream.loadBalancing,
      }),
    ),
    connectTimeout: Type.Optional(
      Duration({
        title: 'Connect timeout',
        description: 'How long to wait for a TCP connection to an endpoint.',
        default: DEFAULTS.upstream.connectTimeout,
      }),
    ),
    maxConnections: Type.Optional(
      Type.Integer({
        title: 'Maximum connections',
        description: 'Connections per endpoint. Absent: no limit (h2c: a new connection opens when every open one carries 100 streams).',
        minimum: 1,
      }),
    ),
    idleTimeout: Type.Optional(
      Duration({
        title: 'Response idle timeout',
        description:
          'Once a response head arrived, a body from which nothing arrives for this long is cut: the connection to the endpoint and the client response are closed.',
        default: DEFAULTS.upstream.idleTimeout,
      }),
    ),
    bulkhead: Type.Optional(BulkheadSchema),
    circuitBreaker: Type.Optional(CircuitBreakerSchema),
    dnsRefresh: Type.Optional(
      Duration({
        title: 'DNS refresh interval',
        description: 'How often dns:// endpoints are resolved again. A failed lookup keeps the endpoints of the last good one.',
        default: DEFAULTS.upstream.dnsRefresh,
      }),
    ),
    outlierDetection: Type.Optional(OutlierDetectionSchema),
  },
  {
    ...Strict,
    title: 'Upstream',
    description: 'A destination (like an Istio DestinationRule): its endpoints and the policies shared by every route to it.',
  },
);

const MatchSchema = Type.Object(
  {
    host: Type.Optional(
      Type.String({
        title: 'Host',
        description:
          'Host header or absolute-form URI host, port ignored. Exact, or "*.suffix" for any name ending in .suffix (not suffix itself). Absent: any host.',
        pattern: HOST_PATTERN_PATTERN,
        errorMessage: 'must be a host name, "*.domain" or a bracketed IPv6 address, without a port',
      }),
    ),
    path: Type.Optional(
      Type.String({
        title: 'Exact path',
        description: 'The request path must equal this (query string ignored). Not together with pathPrefix.',
        minLength: 1,
      }),
    ),
    pathPrefix: Type.Optional(
      Type.String({
        title: 'Path prefix',
        description: 'Whole segments: /charge matches /charge and /charge/x, not /charges. Not together with path.',
        minLength: 1,
      }),
    ),
    methods: Type.Optional(
      Type.Array(
        Type.String({
          title: 'Method',
          description: 'An HTTP method such as GET or POST (case-insensitive).',
          pattern: TOKEN_PATTERN,
          errorMessage: 'must be an HTTP method such as GET or POST',
        }),
        {
          title: 'Methods',
          description: 'The request method must be one of these. Absent: any method.',
          minItems: 1,
          uniqueItems: true,
        },
      ),
    ),
    headers: Type.Optional(
      HeaderMap({
        title: 'Headers',
        description:
          'Request headers that must be present with exactly these values (names case-insensitive). Quote values YAML would read as numbers or booleans: "true".',
      }),
    ),
  },
  {
    ...Strict,
    title: 'Match',
    description: 'Which requests the route takes. Every given condition must hold. Absent or empty: every request.',
  },
);

const BackoffSchema = Type.Object(
  {
    type: Type.Optional(
      StringEnum(BACKOFF_TYPES, {
        title: 'Backoff type',
        description:
          'none: retry at once; fixed: base each time; linear: base × retry number; exponential: base × 2^(retry−1). Capped at max.',
        default: DEFAULTS.backoff.type,
      }),
    ),
    base: Type.Optional(
      Duration({
        title: 'Base delay',
        description: 'The first retry waits (up to) this long.',
        default: DEFAULTS.backoff.base,
      }),
    ),
    max: Type.Optional(
      Duration({
        title: 'Maximum delay',
        description: 'No retry waits longer than this. Absent: 10 × base (250ms for the default base).',
      }),
    ),
    jitter: Type.Optional(
      StringEnum(JITTERS, {
        title: 'Jitter',
        description:
          'none: the computed delay; full: random in [0, delay); equal: delay/2 + random in [0, delay/2); decorrelated: random in [base, 3 × previous delay), capped at max.',
        default: DEFAULTS.backoff.jitter,
      }),
    ),
  },
  {
    ...Strict,
    title: 'Backoff',
    description: 'The wait before each retry. Default: exponential, 25ms to 250ms, full jitter.',
  },
);

const BudgetSchema = Type.Object(
  {
    ratio: Type.Optional(
      Ratio({
        title: 'Retry ratio',
        description: 'Retries may add at most this share of the upstream\'s requests in the window.',
        default: DEFAULTS.budget.ratio,
      }),
    ),
    minPerSecond: Type.Optional(
      Type.Number({
        title: 'Minimum retries per second',
        description: 'Retries always allowed per second on top of the ratio, so low traffic can still retry.',
        minimum: 0,
        default: DEFAULTS.budget.minPerSecond,
      }),
    ),
    window: Type.Optional(
      Duration({
        title: 'Budget window',
        description: 'The time over which requests and retries are counted.',
        default: DEFAULTS.budget.window,
      }),
    ),
  },
  {
    ...Strict,
    title: 'Retry budget',
    description: 'Caps retries per upstream (as Linkerd), so a full outage cannot be multiplied by retries.',
  },
);

const RetryConditionSchema = Type.Union(
  [
    StringEnum(RETRY_CONDITIONS, {
      title: 'Named condition',
      description:
        'connect-failure, reset, timeout (per-try timeout), 5xx (any 5xx response), gateway-error (502, 503, 504); for gRPC calls, cancelled, deadline-exceeded, resource-exhausted, internal and unavailable (the grpc-status of a response that carries nothing else), whose presence marks the route\'s gRPC calls as safe to retry.',
    }),
    Type.Integer({ title: 'Status code', description: '429 or a code from 500 to 599.', minimum: 100, maximum: 599 }),
  ],
  {
    title: 'Retry condition',
    description: 'A named condition or a response status code (429 or 5xx).',
    errorMessage:
      'must be connect-failure, reset, timeout, 5xx, gateway-error, cancelled, deadline-exceeded, resource-exhausted, internal, unavailable, 429 or a status code from 500 to 599',
  },
);

/** A bound drawn from observed latencies: a per-try timeout, a hedge delay. */
const LatencyPercentileSchema = (options: Described, defaults: { multiplier: number }) =>
  Type.Object(
    {
      percentile: Type.Number({
        title: 'Percentile',
        description: "Of the route's successful attempt latencies over the window, e.g. 99.",
        exclusiveMinimum: 0,
        maximum: 100,
      }),
      multiplier: Type.Optional(
        Type.Number({ title: 'Multiplier', description: 'The percentile is multiplied by this.', exclusiveMinimum: 0, default: defaults.multiplier }),
      ),
      min: Type.Optional(Duration({ title: 'Minimum', description: 'Never below this.', default: DEFAULTS.latencyPercentile.min })),
      max: Duration({ title: 'Maximum', description: 'Never above this; also the value until minSamples latencies are known.' }),
      minSamples: Type.Optional(
        Type.Integer({
          title: 'Minimum samples',
          description: 'Below this many latencies in the window, the value is max.',
          minimum: 1,
          default: DEFAULTS.latencyPercentile.minSamples,
        }),
      ),
      window: Type.Optional(Duration({ title: 'Window', description: 'The latencies counted are this recent.', default: DEFAULTS.latencyPercentile.window })),
    },
    { ...Strict, ...options },
  );

const RetrySchema = Type.Object(
  {
    maxAttempts: Type.Optional(
      Type.Integer({
        title: 'Maximum attempts',
        description: 'Total attempts, the first one included. 1 turns retries off.',
        minimum: 1,
        default: DEFAULTS.retry.maxAttempts,
      }),
    ),
    perTryTimeout: Type.Optional(
      Type.Union(
        [
          Duration({ title: 'Fixed per-try timeout', description: 'The same bound for every attempt.' }),
          LatencyPercentileSchema(
            {
              title: 'Adaptive per-try timeout',
              description: "clamp(multiplier × the percentile of the route's successful attempt latencies, min, max).",
            },
            { multiplier: DEFAULTS.adaptiveTimeout.multiplier },
          ),
        ],
        {
          title: 'Per-try timeout',
          description: 'Timeout of each attempt: a duration, or a percentile of observed latencies. Absent: each attempt may use what is left of the route timeout.',
        },
      ),
    ),
    retryOn: Type.Optional(
      Type.Array(RetryConditionSchema, {
        title: 'Retry on',
        description: 'Outcomes that are retried. Other 4xx than 429 are never retried.',
        minItems: 1,
        uniqueItems: true,
        default: DEFAULTS.retry.retryOn,
      }),
    ),
    backoff: Type.Optional(BackoffSchema),
    respectRetryAfter: Type.Optional(
      Type.Boolean({
        title: 'Respect Retry-After',
        description: 'On 429/503, wait for Retry-After if it fits in the deadline, else do not retry.',
        default: DEFAULTS.retry.respectRetryAfter,
      }),
    ),
    budget: Type.Optional(BudgetSchema),
    bufferLimit: Type.Optional(
      Size({
        title: 'Request buffer limit',
        description: 'Request bodies up to this size are kept for retries; larger bodies stream through and are not retried.',
        default: DEFAULTS.retry.bufferLimit,
      }),
    ),
  },
  {
    ...Strict,
    title: 'Retry',
    description:
      'Retries failed attempts. POST and PATCH are retried only with an Idempotency-Key header or on connect-failure. Absent: no retry.',
  },
);

const FallbackStepSchema = Type.Object(
  {
    staleCache: Type.Optional(
      Type.Object(
        {
          maxAge: Duration({
            title: 'Maximum age',
            description: 'Serve the last good 2xx response to the same GET/HEAD URL if it is at most this old.',
          }),
        },
        { ...Strict, title: 'Stale cache', description: 'Serve the last good response to the same URL.' },
      ),
    ),
    upstream: Type.Optional(
      Type.String({
        title: 'Failover upstream',
        description: 'Send the request to this other upstream (a key of `upstreams`).',
        minLength: 1,
      }),
    ),
    response: Type.Optional(
      Type.Object(
        {
          status: Type.Integer({ title: 'Status', description: 'HTTP status code of the reply.', minimum: 200, maximum: 599 }),
          headers: Type.Optional(HeaderMap({ title: 'Headers', description: 'Response headers of the reply.' })),
          body: Type.Optional(Type.String({ title: 'Body', description: 'Response body of the reply.', default: '' })),
          grpcStatus: Type.Optional(
            Type.Integer({
              title: 'gRPC status',
              description:
                'What a gRPC caller gets instead: 0 (OK) answers one message with every field at its default value; another code answers with that status alone. Absent: OK when status is 2xx, else the gRPC status of that HTTP status (503: 14 UNAVAILABLE).',
              minimum: 0,
              maximum: 16,
            }),
          ),
        },
        { ...Strict, title: 'Static response', description: 'Reply with this fixed response.' },
      ),
    ),
  },
  {
    ...Strict,
    title: 'Fallback step',
    description: 'Exactly one of staleCache, upstream or response.',
    minProperties: 1,
    maxProperties: 1,
  },
);

const FallbackSchema = Type.Object(
  {
    on: Type.Optional(
      Type.Array(
        StringEnum(FALLBACK_TRIGGERS, {
          title: 'Trigger',
          description: 'circuit-open, bulkhead-full, timeout, upstream-unavailable, or 5xx (an upstream 5xx after retries).',
        }),
        {
          title: 'Fallback triggers',
          description: 'Failures that start the fallback chain.',
          minItems: 1,
          uniqueItems: true,
          default: DEFAULTS.fallback.on,
        },
      ),
    ),
    chain: Type.Array(FallbackStepSchema, {
      title: 'Fallback chain',
      description: 'Tried in order; the first step that yields a response wins.',
      minItems: 1,
    }),
  },
  { ...Strict, title: 'Fallback', description: 'What to answer when the call fails. Absent: no fallback.' },
);

const FaultSchema = Type.Object(
  {
    delay: Type.Optional(
      Type.Object(
        {
          percent: Percent({ title: 'Delay percentage', description: 'Share of requests delayed, 0 to 100.' }),
          duration: Duration({ title: 'Delay', description: 'How long the delayed requests wait.' }),
        },
        { ...Strict, title: 'Injected delay', description: 'Delay some requests before they are proxied.' },
      ),
    ),
    abort: Type.Optional(
      Type.Object(
        {
          percent: Percent({ title: 'Abort percentage', description: 'Share of requests aborted, 0 to 100.' }),
          status: Type.Integer({
            title: 'Abort status',
            description: 'Status of the injected reply (reason fault_injected).',
            minimum: 200,
            maximum: 599,
          }),
          grpcStatus: Type.Optional(
            Type.Integer({
              title: 'Abort gRPC status',
              description: 'The grpc-status a gRPC caller gets instead (HTTP 200, Trailers-Only).',
              minimum: 1,
              maximum: 16,
              default: DEFAULTS.fault.abortGrpcStatus,
            }),
          ),
        },
        { ...Strict, title: 'Injected abort', description: 'Answer some requests with an error instead of proxying them.' },
      ),
    ),
  },
  { ...Strict, title: 'Fault injection', description: 'Chaos testing. Absent: off.' },
);

const HedgeSchema = Type.Object(
  {
    delay: Type.Union(
      [
        Duration({ title: 'Fixed hedge delay', description: 'How long the first attempt may go unanswered before a hedge is sent.' }),
        LatencyPercentileSchema(
          { title: 'Percentile hedge delay', description: "A hedge goes out once the first attempt is slower than this share of the route's attempts." },
          { multiplier: DEFAULTS.hedge.multiplier },
        ),
      ],
      { title: 'Hedge delay', description: 'A duration, or a percentile of observed latencies.' },
    ),
    maxAttempts: Type.Optional(
      Type.Integer({
        title: 'Attempts in flight',
        description: 'Attempts of one request in flight at once, the first included.',
        minimum: 2,
        maximum: 5,
        default: DEFAULTS.hedge.maxAttempts,
      }),
    ),
    budget: Type.Optional(
      Type.Object(
        {
          ratio: Type.Optional(Ratio({ title: 'Hedge ratio', description: "Hedges may add at most this share of the route's requests in the window.", default: DEFAULTS.hedge.budget.ratio })),
          minPerSecond: Type.Optional(
            Type.Number({ title: 'Minimum hedges per second', description: 'Hedges always allowed per second on top of the ratio.', minimum: 0, default: DEFAULTS.hedge.budget.minPerSecond }),
          ),
          window: Type.Optional(Duration({ title: 'Budget window', description: 'The time over which requests and hedges are counted.', default: DEFAULTS.hedge.budget.window })),
        },
        { ...Strict, title: 'Hedge budget', description: 'Caps the extra load hedges put on the upstream.' },
      ),
    ),
  },
  {
    ...Strict,
    title: 'Hedged requests',
    description:
      'When an attempt has not answered within the delay, another goes to a different endpoint; the first good answer wins and the others are cancelled. Idempotent methods, or POST/PATCH with an idempotency key, with a body within retry.bufferLimit. Absent: off.',
  },
);

const IdempotencySchema = Type.Object(
  {
    store: Type.Optional(
      Type.String({ title: 'Store', description: 'Name of the store (a key of `stores`) the records live in.', minLength: 1, default: DEFAULTS.idempotency.store }),
    ),
    header: Type.Optional(
      Type.String({
        title: 'Key header',
        description: 'The request header carrying the key; its value may be an sf-string ("...") or bare.',
        minLength: 1,
        pattern: '^[!#$%&\'*+.^_`|~0-9A-Za-z-]+$',
        default: DEFAULTS.idempotency.header,
      }),
    ),
    methods: Type.Optional(
      Type.Array(Type.String({ title: 'Method', pattern: '^[A-Za-z]+$' }), {
        title: 'Methods',
        description: 'Requests with these methods are de-duplicated; others pass untouched.',
        minItems: 1,
        uniqueItems: true,
        default: DEFAULTS.idempotency.methods,
      }),
    ),
    required: Type.Optional(
      Type.Boolean({
        title: 'Key required',
        description: 'A request with a listed method and no key gets 400 idempotency_key_missing.',
        default: DEFAULTS.idempotency.required,
      }),
    ),
    ttl: Type.Optional(Duration({ title: 'Record TTL', description: 'How long a finished response is kept for duplicates.', default: DEFAULTS.idempotency.ttl })),
    maxResponseBytes: Type.Optional(
      Size({
        title: 'Largest stored response',
        description: 'A larger response body is not stored: the key is released.',
        default: DEFAULTS.idempotency.maxResponseBytes,
      }),
    ),
    maxRequestBytes: Type.Optional(
      Size({
        title: 'Largest keyed request body',
        description: 'A keyed request body is read whole to fingerprint it; a larger one gets 413 payload_too_large.',
        default: DEFAULTS.idempotency.maxRequestBytes,
      }),
    ),
    onStoreError: Type.Optional(
      StringEnum(['reject', 'forward'] as const, {
        title: 'On store error',
        description: 'reject: 503 idempotency_store_unavailable; forward: the request goes on without de-duplication.',
        default: DEFAULTS.idempotency.onStoreError,
      }),
    ),
    whileInProgress: Type.Optional(
      StringEnum(['reject', 'wait'] as const, {
        title: 'While in progress',
        description: 'reject: 409 idempotency_in_progress; wait: hold the duplicate until the first finishes, within its deadline.',
        default: DEFAULTS.idempotency.whileInProgress,
      }),
    ),
  },
  {
    ...Strict,
    title: 'Idempotency keys',
    description: 'De-duplicates keyed requests: a repeat gets the stored response of the first, and no upstream sees it. Absent: off.',
  },
);

const DeadLetterSchema = Type.Object(
  {
    store: Type.Optional(
      Type.String({ title: 'Store', description: 'Name of the store (a key of `stores`) the dead letters live in.', minLength: 1, default: DEFAULTS.deadLetter.store }),
    ),
    on: Type.Optional(
      Type.Array(
        StringEnum(FALLBACK_TRIGGERS, {
          title: 'Outcome',
          description: 'circuit-open, bulkhead-full, timeout, upstream-unavailable, or 5xx (an upstream 5xx after retries).',
        }),
        {
          title: 'Captured outcomes',
          description: 'Final outcomes, after retries and fallbacks, that make a request a dead letter.',
          minItems: 1,
          uniqueItems: true,
          default: DEFAULTS.deadLetter.on,
        },
      ),
    ),
    maxBodyBytes: Type.Optional(
      Size({
        title: 'Largest kept body',
        description: 'A larger request body is not kept: the dead letter is marked truncated and cannot be replayed.',
        default: DEFAULTS.deadLetter.maxBodyBytes,
      }),
    ),
    retention: Type.Optional(Duration({ title: 'Retention', description: 'Older dead letters are deleted.', default: DEFAULTS.deadLetter.retention })),
    maxEntries: Type.Optional(
      Type.Integer({
        title: 'Most dead letters',
        description: 'Per route; beyond it new failures are dropped and counted.',
        minimum: 1,
        default: DEFAULTS.deadLetter.maxEntries,
      }),
    ),
    keepHeaders: Type.Optional(
      Type.Array(HeaderName({ title: 'Header', description: 'A credential header to keep.' }), {
        title: 'Kept credential headers',
        description: 'authorization, cookie and proxy-authorization are dropped from dead letters unless listed here.',
        uniqueItems: true,
        default: DEFAULTS.deadLetter.keepHeaders,
      }),
    ),
  },
  {
    ...Strict,
    title: 'Dead letters',
    description: 'Keeps requests that finally failed, to inspect and replay them once the upstream is fixed. Absent: off.',
  },
);

const WebSocketSchema = Type.Object(
  {
    idleTimeout: Type.Optional(
      Duration({
        title: 'Idle timeout',
        description: 'A tunnel that carries no byte either way for this long is closed, with a close frame 1001 to both sides. Pings count as traffic. 0: never.',
        default: DEFAULTS.websocket.idleTimeout,
      }),
    ),
    maxDuration: Type.Optional(
      Duration({
        title: 'Maximum duration',
        description: 'A tunnel open this long is closed, with a close frame 1001 to both sides, so that clients reconnect (and spread over the endpoints there are now). 0: unbounded.',
        default: DEFAULTS.websocket.maxDuration,
      }),
    ),
  },
  {
    ...Strict,
    title: 'WebSocket',
    description:
      'Bounds of the tunnels this route opens for `Upgrade: websocket` requests. The handshake is routed and bounded like a request (route timeout, per-try timeout, breaker, bulkhead, fault; retried only when no connection could be made); after the upstream\'s 101 these bounds apply instead.',
  },
);

const RouteSchema = Type.Object(
  {
    name: Name({
      title: 'Route name',
      description: 'Unique name, used in metrics, logs, traces and error replies.',
    }),
    listener: Type.Optional(
      Type.String({
        title: 'Listener',
        description: 'Name of the listener this route serves.',
        minLength: 1,
        default: DEFAULTS.routeListener,
      }),
    ),
    match: Type.Optional(MatchSchema),
    upstream: Type.String({
      title: 'Upstream',
      description: 'Name of the upstream (a key of `upstreams`) requests go to.',
      minLength: 1,
    }),
    timeout: Type.Optional(
      Duration({
        title: 'Route timeout',
        description: 'The whole request: all attempts and backoff included. 504 timeout when it fires. For a WebSocket, the handshake up to the upstream\'s 101.',
        default: DEFAULTS.route.timeout,
      }),
    ),
    circuitBreaker: Type.Optional(
      Type.Object(CircuitBreakerSchema.properties, {
        ...Strict,
        title: 'Route circuit breaker',
        description: 'Gives this route its own breaker (keyed by route) instead of sharing the upstream\'s.',
      }),
    ),
    idempotency: Type.Optional(IdempotencySchema),
    retry: Type.Optional(RetrySchema),
    hedge: Type.Optional(HedgeSchema),
    fallback: Type.Optional(FallbackSchema),
    fault: Type.Optional(FaultSchema),
    deadLetter: Type.Optional(DeadLetterSchema),
    telemetry: Type.Optional(
      Type.Object(
        {
          grpcMethods: Type.Optional(
            Type.Boolean({
              title: 'gRPC method labels',
              description:
                "Label this route's breakwater_grpc_requests_total with each call's service and method (grpc_service, grpc_method). Each method called is a series of its own: set it for routes whose services have a known, small set of methods.",
              default: false,
            }),
          ),
        },
        { ...Strict, title: 'Route telemetry', description: 'What the metrics tell of this route beyond the defaults.' },
      ),
    ),
    websocket: Type.Optional(WebSocketSchema),
  },
  {
    ...Strict,
    title: 'Route',
    description: 'Requests matching `match` on `listener` go to `upstream` under these policies. First match in file order wins.',
  },
);

const STORE_TYPES = ['memory', 'sqlite', 'redis'] as const;

// Free-text values of a store may name environment variables, so that credentials stay out
// of the file; normalize.ts expands them and checks the result.
const ENV_NOTE = ' May use ${VAR} or ${VAR:-default} for an environment variable.';

const RedisNodes = (options: Described) =>
  Type.Array(
    Type.String({ title: 'Node URL', description: `redis://host:port (rediss:// for TLS).${ENV_NOTE}`, minLength: 1 }),
    { ...options, minItems: 1, uniqueItems: true },
  );

const StoreSchema = Type.Object(
  {
    type: StringEnum(STORE_TYPES, {
      title: 'Store type',
      description:
        'memory: in this process, lost on restart; sqlite: a file on local disk, kept across restarts; redis: a Redis server, cluster or sentinel set shared by every replica.',
    }),
    timeout: Type.Optional(
      Duration({
        title: 'Operation timeout',
        description: 'No store operation keeps a request waiting longer than this; it fails with a store error instead.',
        default: DEFAULTS.store.timeout,
      }),
    ),
    maxEntries: Type.Optional(
      Type.Integer({
        title: 'Maximum entries (memory)',
        description: 'The least recently used records are dropped beyond this many.',
        minimum: 1,
        default: DEFAULTS.memoryStore.maxEntries,
      }),
    ),
    maxBytes: Type.Optional(
      Size({
        title: 'Maximum bytes (memory)',
        description: 'The least recently used records are dropped once keys, metadata and bodies add up to more than this.',
        default: DEFAULTS.memoryStore.maxBytes,
      }),
    ),
    path: Type.Optional(
      Type.String({
        title: 'Database file (sqlite)',
        description: `Path of the SQLite database file; its folder is created when missing.${ENV_NOTE}`,
        minLength: 1,
      }),
    ),
    url: Type.Optional(
      Type.String({
        title: 'Server URL (redis)',
        description: `One Redis server: redis://[user:password@]host[:port][/db], or rediss:// for TLS. Not with cluster or sentinel.${ENV_NOTE}`,
        minLength: 1,
      }),
    ),
    cluster: Type.Optional(
      RedisNodes({
        title: 'Cluster seed nodes (redis)',
        description: 'Some nodes of a Redis Cluster; the others are discovered from them. Not with url or sentinel.',
      }),
    ),
    sentinel: Type.Optional(
      Type.Object(
        {
          name: Type.String({
            title: 'Master name',
            description: `The name the sentinels monitor the master under.${ENV_NOTE}`,
            minLength: 1,
          }),
          nodes: RedisNodes({
            title: 'Sentinel nodes',
            description: 'Sentinels to ask for the current master; credentials in these URLs are the sentinels\' own.',
          }),
        },
        { ...Strict, title: 'Sentinel (redis)', description: 'A master and its replicas watched by Redis Sentinel. Not with url or cluster.' },
      ),
    ),
    username: Type.Optional(
      Type.String({
        title: 'Username (redis)',
        description: `ACL user for the Redis data nodes (not the sentinels).${ENV_NOTE}`,
        minLength: 1,
      }),
    ),
    password: Type.Optional(
      Type.String({
        title: 'Password (redis)',
        description: `Password for the Redis data nodes (not the sentinels). Never shown by /config.${ENV_NOTE}`,
        minLength: 1,
      }),
    ),
    keyPrefix: Type.Optional(
      Type.String({
        title: 'Key prefix (redis)',
        description: `Put before every key Breakwater writes, so that it can share a Redis with others. No braces.${ENV_NOTE}`,
        default: DEFAULTS.redisStore.keyPrefix,
      }),
    ),
  },
  {
    ...Strict,
    title: 'Store',
    description: 'Where state such as idempotency records is kept. Keys that belong to another type are refused.',
  },
);

const AppProbeSchema = (kind: string, kubeletProbe: string) =>
  Type.Object(
    {
      port: Type.Integer({
        title: 'Service port',
        description: "The port of the service's health endpoint, called on 127.0.0.1.",
        minimum: 1,
        maximum: 65535,
      }),
      path: Type.Optional(
        Type.String({
          title: 'Service path',
          description: "The path of the service's health endpoint, with its query if any.",
          pattern: '^/\\S*$',
          errorMessage: 'must be a path starting with "/", without spaces',
          default: DEFAULTS.appProbe.path,
        }),
      ),
      timeout: Type.Optional(
        Duration({
          title: 'Probe timeout',
          description:
            "How long Breakwater waits for the service's answer before it answers 503 itself; keep it at or below the kubelet probe's timeoutSeconds.",
          default: DEFAULTS.appProbe.timeout,
        }),
      ),
    },
    {
      ...Strict,
      title: `App ${kind} probe`,
      description: `Served as /app-health/NAME/${kind}, for the service container's ${kubeletProbe}.`,
    },
  );

const AppProbeSetSchema = Type.Object(
  {
    readyz: Type.Optional(AppProbeSchema('readyz', 'readinessProbe')),
    livez: Type.Optional(AppProbeSchema('livez', 'livenessProbe')),
    startupz: Type.Optional(AppProbeSchema('startupz', 'startupProbe')),
  },
  {
    ...Strict,
    minProperties: 1,
    title: 'Probes of one service container',
    description: 'The name (usually the container\'s) is the NAME in /app-health/NAME/KIND.',
  },
);

export const ConfigSchema = Type.Object(
  {
    $schema: Type.Optional(
      Type.String({ title: 'JSON Schema', description: 'The schema this file follows; ignored by Breakwater.' }),
    ),
    listeners: Type.Optional(
      Type.Array(ListenerSchema, {
        title: 'Listeners',
        description: 'Ports that accept HTTP. Absent: outbound on 127.0.0.1:15001 and inbound on 0.0.0.0:15006.',
        minItems: 1,
        default: DEFAULTS.listeners,
      }),
    ),
    telemetry: Type.Optional(
      Type.Object(
        {
          address: Type.Optional(
            Address({
              title: 'Telemetry address',
              description: 'Serves /metrics, /healthz and /readyz, and /app-health/NAME/KIND for the service\'s own probes.',
              default: DEFAULTS.telemetry.address,
            }),
          ),
          appProbes: Type.Optional(
            MapOf(AppProbeSetSchema, {
              title: 'App probes',
              description:
                'The local service\'s health checks, served on the telemetry port as GET /app-health/NAME/readyz, /livez and /startupz: Breakwater calls the service over loopback and answers with its status, so kubelet can probe a service that listens on 127.0.0.1 only. Absent: none.',
              propertyNames: { pattern: NAME_PATTERN, errorMessage: NAME_MESSAGE },
            }),
          ),
        },
        { ...Strict, title: 'Telemetry', description: 'The metrics and health port.' },
      ),
    ),
    admin: Type.Optional(
      Type.Object(
        {
          address: Type.Optional(
            Address({
              title: 'Admin address',
              description:
                'Serves /config, /routes, /circuits, /endpoints and /reload. Loopback by default; a non-loopback address here exposes breaker control.',
              default: DEFAULTS.admin.address,
            }),
          ),
        },
        { ...Strict, title: 'Admin', description: 'The admin port.' },
      ),
    ),
    shutdown: Type.Optional(
      Type.Object(
        {
          drainTimeout: Type.Optional(
            Duration({
              title: 'Drain timeout',
              description: 'On SIGTERM, how long requests in flight may take to finish before the process exits.',
              default: DEFAULTS.shutdown.drainTimeout,
            }),
          ),
        },
        { ...Strict, title: 'Shutdown', description: 'Graceful shutdown.' },
      ),
    ),
    limits: Type.Optional(
      Type.Object(
        {
          maxHeaderBytes: Type.Optional(
            Size({
              title: 'Maximum request header size',
              description: 'Larger request headers get 431.',
              default: DEFAULTS.limits.maxHeaderBytes,
            }),
          ),
          maxBodyBytes: Type.Optional(
            Size({
              title: 'Maximum request body size',
              description: '0: unlimited (bodies stream). Above a set limit: 413 payload_too_large.',
              default: DEFAULTS.limits.maxBodyBytes,
            }),
          ),
          maxResponseHeaderBytes: Type.Optional(
            Size({
              title: 'Maximum response header size',
              description: 'An upstream response whose headers are larger gets 502 upstream_invalid_response instead.',
              default: DEFAULTS.limits.maxResponseHeaderBytes,
            }),
          ),
          ...connectionLimits(true),
        },
        {
          ...Strict,
          title: 'Limits',
          description: 'Size limits, and the connection limits of every listener (a listener may override the connection limits).',
        },
      ),
    ),
    upstreams: Type.Optional(
      MapOf(UpstreamSchema, {
        title: 'Upstreams',
        description: 'Destinations by name; routes refer to them by this name. Only these are ever dialled.',
        propertyNames: { pattern: NAME_PATTERN, errorMessage: NAME_MESSAGE },
      }),
    ),
    deadline: Type.Optional(
      Type.Object(
        {
          header: Type.Optional(
            HeaderName({
              title: 'Deadline header',
              description: 'Remaining budget in ms, written to upstreams (and to the local service on inbound).',
              default: DEFAULTS.deadline.header,
            }),
          ),
          accept: Type.Optional(
            Type.Array(HeaderName({ title: 'Accepted header', description: 'A header carrying the caller\'s budget.' }), {
              title: 'Accepted deadline headers',
              description: 'Headers read from callers for their remaining budget.',
              uniqueItems: true,
              default: DEFAULTS.deadline.accept,
            }),
          ),
          maxInbound: Type.Optional(
            Duration({
              title: 'Maximum inbound budget',
              description: 'A caller cannot ask for more than this.',
              default: DEFAULTS.deadline.maxInbound,
            }),
          ),
        },
        { ...Strict, title: 'Deadline', description: 'Deadline propagation across the call chain.' },
      ),
    ),
    dns: Type.Optional(
      Type.Object(
        {
          servers: Type.Optional(
            Type.Array(
              Type.String({
                title: 'DNS server',
                description: 'An IP address, with an optional port: 10.96.0.10, 127.0.0.1:5353, [::1]:5353.',
                minLength: 1,
              }),
              {
                title: 'DNS servers',
                description: "The servers dns:// endpoints are resolved with. Absent: the system's resolver (/etc/resolv.conf, /etc/hosts).",
                minItems: 1,
                uniqueItems: true,
              },
            ),
          ),
        },
        { ...Strict, title: 'DNS', description: 'How dns:// endpoints are resolved.' },
      ),
    ),
    stores: Type.Optional(
      MapOf(StoreSchema, {
        title: 'Stores',
        description:
          'State stores by name; policies name the store they use, `default` when they name none. Absent: one memory store named default.',
        propertyNames: { pattern: NAME_PATTERN, errorMessage: NAME_MESSAGE },
      }),
    ),
    routes: Type.Optional(
      Type.Array(RouteSchema, {
        title: 'Routes',
        description: 'Per listener, the first route that matches in file order wins. No match: 404 no_route.',
      }),
    ),
  },
  {
    ...Strict,
    title: 'Breakwater configuration',
    description: 'breakwater.yaml: listeners, upstreams, routes and their resilience policies.',
  },
);

/** A config file as written, after schema validation and before defaults. */
export type ConfigFile = Static<typeof ConfigSchema>;

const SCHEMA_ID = 'urn:breakwater:config';
const SCHEMA_DRAFT = 'http://json-schema.org/draft-07/schema#';

/** The JSON Schema document written to config/schema.json and compiled by load.ts. */
export function configJsonSchema(): Record<string, unknown> {
  // Round-trip through JSON: drops TypeBox's symbol keys and undefined options.
  const body = JSON.parse(JSON.stringify(ConfigSchema)) as Record<string, unknown>;
  return { $schema: SCHEMA_DRAFT, $id: SCHEMA_ID, ...body };
}

/** The exact text of config/schema.json. */
export function configJsonSchemaText(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}
