import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatProblem, loadConfigFile, parseConfig } from '../../../src/config/load.ts';
import type { Config } from '../../../src/config/types.ts';

function valid(yaml: string): Config {
  const result = parseConfig(yaml, 'test.yaml');
  if (!result.ok) throw new Error(result.problems.map(formatProblem).join('\n'));
  return result.config;
}

function problems(yaml: string): string[] {
  const result = parseConfig(yaml, 'test.yaml');
  return result.ok ? [] : result.problems.map(formatProblem);
}

const minimal = `
upstreams:
  api:
    endpoints: [http://api:8080]
routes:
  - name: api
    upstream: api
`;

describe('defaults', () => {
  it('fills in every top-level section the file leaves out', () => {
    const config = valid(minimal);

    const connectionLimits = {
      headersTimeoutMs: 10_000,
      idleTimeoutMs: 60_000,
      maxConnections: 10_000,
      maxConnectionsPerClient: 1000,
      maxRequestsPerConnection: 0,
    };
    expect(config.listeners).toEqual([
      { name: 'outbound', address: { host: '127.0.0.1', port: 15001 }, limits: connectionLimits },
      { name: 'inbound', address: { host: '0.0.0.0', port: 15006 }, limits: connectionLimits },
    ]);
    expect(config.telemetry).toEqual({ address: { host: '0.0.0.0', port: 15020 }, appProbes: {} });
    expect(config.admin).toEqual({ address: { host: '127.0.0.1', port: 15000 } });
    expect(config.shutdown).toEqual({ drainTimeoutMs: 20_000 });
    expect(config.limits).toEqual({ maxHeaderBytes: 16 * 1024, maxBodyBytes: 0, maxResponseHeaderBytes: 64 * 1024, ...connectionLimits });
    expect(config.deadline).toEqual({
      header: 'x-request-timeout-ms',
      accept: ['x-request-timeout-ms', 'grpc-timeout', 'x-envoy-expected-rq-timeout-ms'],
      maxInboundMs: 60_000,
    });
  });

  it('gives a route the outbound listener, a 15s timeout and no policies', () => {
    const [route] = valid(minimal).routes;

    expect(route).toEqual({
      name: 'api',
      listener: 'outbound',
      match: {},
      upstream: 'api',
      timeoutMs: 15_000,
      // Every route proxies WebSocket: its tunnels close after 5 idle minutes, and may live forever.
      websocket: { idleTimeoutMs: 300_000, maxDurationMs: 0 },
    });
  });

  it('gives an upstream round-robin, a 1s connect timeout, a 60s idle timeout, and no bulkhead or breaker', () => {
    expect(valid(minimal).upstreams.get('api')).toEqual({
      name: 'api',
      endpoints: ['http://api:8080'],
      protocol: 'http1',
      loadBalancing: 'round-robin',
      connectTimeoutMs: 1000,
      dnsRefreshMs: 5000,
      idleTimeoutMs: 60_000,
    });
  });

  it('fills an empty retry block with the contract defaults', () => {
    const config = valid(`${minimal}    retry: {}\n`);

    expect(config.routes[0]?.retry).toEqual({
      maxAttempts: 3,
      retryOn: ['connect-failure', 'reset', 502, 503, 504],
      backoff: { type: 'exponential', baseMs: 25, maxMs: 250, jitter: 'full' },
      respectRetryAfter: true,
      budget: { ratio: 0.2, minPerSecond: 10, windowMs: 10_000 },
      bufferLimitBytes: 64 * 1024,
    });
  });

  it('caps backoff at ten times a given base when max is absent', () => {
    const config = valid(`${minimal}    retry: {backoff: {base: 100ms}}\n`);

    expect(config.routes[0]?.retry?.backoff).toEqual({ type: 'exponential', baseMs: 100, maxMs: 1000, jitter: 'full' });
  });

  it('fills an empty circuit breaker, with openForMax equal to openFor', () => {
    const config = valid(`${minimal}    circuitBreaker: {openFor: 10s}\n`);

    expect(config.routes[0]?.circuitBreaker).toEqual({
      windowMs: 10_000,
      minRequests: 20,
      failureRate: 0.5,
      slowCallDurationMs: 60_000,
      slowCallRate: 1,
      openForMs: 10_000,
      openForMaxMs: 10_000,
      halfOpenRequests: 3,
      failOn: ['5xx', 'connect-failure', 'reset', 'timeout'],
    });
  });

  it('fills a bulkhead with no queue, and a fallback with the failures Breakwater detects', () => {
    const config = valid(`
upstreams:
  api:
    endpoints: [http://api:8080]
    bulkhead: {maxConcurrent: 10}
routes:
  - name: api
    upstream: api
    fallback:
      chain: [{response: {status: 503}}]
`);

    expect(config.upstreams.get('api')?.bulkhead).toEqual({ maxConcurrent: 10, maxQueued: 0, queueTimeoutMs: 1000 });
    expect(config.routes[0]?.fallback).toEqual({
      on: ['circuit-open', 'bulkhead-full', 'timeout', 'upstream-unavailable'],
      chain: [{ kind: 'response', status: 503, headers: {}, body: '' }],
    });
  });
});

describe('connection limits', () => {
  it('give a listener the global limits, with only the keys it sets replaced', () => {
    const config = valid(`
limits: {headersTimeout: 5s, maxConnectionsPerClient: 100}
listeners:
  - {name: outbound, address: 127.0.0.1:15001}
  - {name: inbound, address: 0.0.0.0:15006, maxConnectionsPerClient: 20, idleTimeout: 90s}
upstreams:
  api: {endpoints: [http://api:8080]}
routes:
  - {name: api, upstream: api}
`);

    expect(config.listeners.map((listener) => listener.limits)).toEqual([
      { headersTimeoutMs: 5000, idleTimeoutMs: 60_000, maxConnections: 10_000, maxConnectionsPerClient: 100, maxRequestsPerConnection: 0 },
      { headersTimeoutMs: 5000, idleTimeoutMs: 90_000, maxConnections: 10_000, maxConnectionsPerClient: 20, maxRequestsPerConnection: 0 },
    ]);
  });
});

describe('the effective config of a file that sets every key', () => {
  it('converts units, lower-cases names and keeps every value', async () => {
    const text = await readFile(new URL('../../fixtures/config/valid/every-key.yaml', import.meta.url), 'utf8');
    const config = valid(text);

    const globalLimits = {
      headersTimeoutMs: 20_000,
      idleTimeoutMs: 120_000,
      maxConnections: 20_000,
      maxConnectionsPerClient: 2000,
      maxRequestsPerConnection: 100,
    };
    expect(config.listeners).toEqual([
      { name: 'outbound', address: { host: '127.0.0.1', port: 25001 }, limits: globalLimits },
      {
        name: 'inbound',
        address: { host: '::', port: 25006 },
        maxConcurrent: 200,
        // The listener's own limits replace the global ones, key by key.
        limits: { headersTimeoutMs: 5000, idleTimeoutMs: 30_000, maxConnections: 4096, maxConnectionsPerClient: 256, maxRequestsPerConnection: 1000 },
      },
      { name: 'egress-admin', address: { host: '::1', port: 25007 }, limits: globalLimits },
    ]);
    expect(config.telemetry.address).toEqual({ host: '127.0.0.1', port: 25020 });
    // A non-loopback admin address written in the file is taken as the explicit choice it is.
    expect(config.admin.address).toEqual({ host: '10.0.0.5', port: 25000 });
    expect(config.shutdown.drainTimeoutMs).toBe(45_000);
    expect(config.limits).toEqual({ maxHeaderBytes: 32 * 1024, maxBodyBytes: 10_000_000, maxResponseHeaderBytes: 128 * 1024, ...globalLimits });
    expect(config.deadline).toEqual({ header: 'x-deadline-ms', accept: ['x-deadline-ms', 'grpc-timeout'], maxInboundMs: 120_000 });
    expect([...config.upstreams.keys()]).toEqual(['payments', 'payments-dr', 'payments-headless']);
    expect(config.upstreams.get('payments')).toEqual({
      name: 'payments',
      endpoints: ['http://payments-0:8080', 'http://user:secret@payments-1:8080'],
      protocol: 'h2c',
      loadBalancing: 'least-request',
      connectTimeoutMs: 250,
      idleTimeoutMs: 30_000,
      maxConnections: 128,
      bulkhead: { maxConcurrent: 50, maxQueued: 20, queueTimeoutMs: 100 },
      circuitBreaker: {
        windowMs: 20_000,
        minRequests: 40,
        failureRate: 0.25,
        slowCallDurationMs: 1500,
        slowCallRate: 0.8,
        openForMs: 15_000,
        openForMaxMs: 120_000,
        halfOpenRequests: 5,
        failOn: ['5xx', 'timeout'],
      },
      dnsRefreshMs: 2000,
      outlierDetection: {
        consecutiveFailures: 3,
        failureRate: { threshold: 0.3, minRequests: 50, windowMs: 30_000 },
        latency: { factor: 2.5, minRequests: 40, windowMs: 20_000 },
        baseEjectionTimeMs: 10_000,
        maxEjectionTimeMs: 60_000,
        maxEjectionPercent: 33,
        // The upstream breaker's failOn.
        failOn: ['5xx', 'timeout'],
      },
    });
    expect(config.upstreams.get('payments-dr')?.loadBalancing).toBe('peak-ewma');
    expect(config.upstreams.get('payments-headless')?.endpoints).toEqual(['dns://payments-headless.shop.svc.cluster.local:8080', 'http://10.0.0.9:8080']);
    expect(config.dns).toEqual({ servers: ['10.96.0.10', '127.0.0.1:5353', '[::1]:5353'] });
    expect(config.upstreams.get('payments-dr')?.endpoints).toEqual(['http://payments.dr.example.com']);
    expect(config.routes[0]).toEqual({
      name: 'charge',
      listener: 'outbound',
      match: { host: '*.payments.svc', pathPrefix: '/charge', methods: ['POST', 'PUT'], headers: { 'x-canary': 'true' } },
      upstream: 'payments',
      timeoutMs: 3000,
      circuitBreaker: {
        windowMs: 10_000,
        minRequests: 20,
        failureRate: 0.5,
        slowCallDurationMs: 60_000,
        slowCallRate: 1,
        openForMs: 5000,
        openForMaxMs: 5000,
        halfOpenRequests: 3,
        failOn: ['5xx', 'connect-failure', 'reset', 'timeout'],
      },
      retry: {
        maxAttempts: 4,
        perTryTimeoutMs: 700,
        retryOn: ['connect-failure', 'reset', 'timeout', '5xx', 'gateway-error', 429, 503],
        backoff: { type: 'linear', baseMs: 50, maxMs: 400, jitter: 'decorrelated' },
        respectRetryAfter: false,
        budget: { ratio: 0.1, minPerSecond: 5, windowMs: 30_000 },
        bufferLimitBytes: 1024 * 1024,
      },
      fallback: {
        on: ['circuit-open', 'bulkhead-full', 'timeout', 'upstream-unavailable', '5xx'],
        chain: [
          { kind: 'staleCache', maxAgeMs: 600_000 },
          { kind: 'upstream', upstream: 'payments-dr' },
          { kind: 'response', status: 503, headers: { 'content-type': 'application/json', 'retry-after': '5' }, body: '{"error":"later"}', grpcStatus: 8 },
        ],
      },
      fault: { delay: { percent: 2.5, durationMs: 1000 }, abort: { percent: 1, status: 500, grpcStatus: 13 } },
      deadLetter: {
        store: 'local',
        on: ['timeout', 'upstream-unavailable', 'circuit-open', 'bulkhead-full', '5xx'],
        maxBodyBytes: 512 * 1024,
        retentionMs: 3 * 86_400_000,
        maxEntries: 5000,
        keepHeaders: ['authorization'],
      },
      telemetry: { grpcMethods: true },
      websocket: { idleTimeoutMs: 90_000, maxDurationMs: 3_600_000 },
    });
    expect(config.routes[1]).toEqual({
      name: 'health',
      listener: 'inbound',
      match: { path: '/healthz' },
      upstream: 'payments',
      timeoutMs: 15_000,
      websocket: { idleTimeoutMs: 300_000, maxDurationMs: 0 },
    });
    expect(Object.fromEntries(config.stores)).toEqual({
      scratch: { name: 'scratch', type: 'memory', timeoutMs: 20, maxEntries: 500, maxBytes: 4 * 1024 * 1024 },
      local: { name: 'local', type: 'sqlite', timeoutMs: 50, path: '/var/lib/breakwater/state.db' },
      shared: {
        name: 'shared',
        type: 'redis',
        timeoutMs: 50,
        topology: { mode: 'server', url: 'redis://redis.infra:6379/1' },
        keyPrefix: 'bw:',
        username: 'breakwater',
        password: 'not-a-secret',
      },
      fleet: {
        name: 'fleet',
        type: 'redis',
        timeoutMs: 50,
        topology: { mode: 'cluster', nodes: ['redis://r1:6379', 'redis://r2:6379'] },
        keyPrefix: 'breakwater:',
      },
      ha: {
        name: 'ha',
        type: 'redis',
        timeoutMs: 50,
        topology: { mode: 'sentinel', masterName: 'mymaster', nodes: ['redis://s1:26379', 'redis://s2:26379'] },
        keyPrefix: 'breakwater:',
      },
    });
  });

  it('is frozen, so no request can change the policy of another', () => {
    const config = valid(minimal);

    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.routes[0])).toBe(true);
    expect(Object.isFrozen(config.upstreams.get('api')?.endpoints)).toBe(true);
  });
});

describe('addresses', () => {
  it('accepts host:port, [IPv6]:port and port 0 (any free port)', () => {
    const config = valid(`
listeners:
  - {name: outbound, address: "localhost:0"}
  - {name: inbound, address: "[::1]:0"}
telemetry: {address: 127.0.0.1:0}
admin: {address: 127.0.0.1:0}
`);

    expect(config.listeners.map((listener) => listener.address)).toEqual([
      { host: 'localhost', port: 0 },
      { host: '::1', port: 0 },
    ]);
  });

  it('refuses two listeners on the same port when one of them listens on every interface', () => {
    expect(
      problems(`
listeners:
  - {name: outbound, address: 127.0.0.1:15001}
  - {name: inbound, address: 0.0.0.0:15001}
`),
    ).toEqual(['test.yaml:4:30 listeners[1](inbound).address: port 15001 is already used by listener outbound']);
  });
});

describe('problems', () => {
  it('are all reported at once, in file order', () => {
    expect(
      problems(`
upstreams:
  api:
    endpoints: [http://api:8080]
routes:
  - name: b
    upstream: nope
    timeout: 0
  - name: b
    upstream: api
`),
    ).toEqual([
      'test.yaml:7:15 routes[0](b).upstream: unknown upstream "nope"',
      'test.yaml:8:14 routes[0](b).timeout: must be greater than 0',
      'test.yaml:9:11 routes[1](b).name: route name "b" is already used by routes[0]',
    ]);
  });

  it('offer no suggestion when no allowed key is close', () => {
    expect(problems('upstreams: {}\nroutez: []\n')).toEqual(['test.yaml:2:1 routez: unknown key "routez" (did you mean "routes"?)']);
    expect(problems('upstreams: {}\nweather: sunny\n')).toEqual(['test.yaml:2:1 weather: unknown key "weather"']);
  });

  it('name the allowed values of a closed list, with a suggestion', () => {
    expect(
      problems(`
upstreams:
  api:
    endpoints: [http://api:8080]
    loadBalancing: round-robbin
`),
    ).toEqual([
      'test.yaml:5:20 upstreams.api.loadBalancing: must be one of: round-robin, least-request, peak-ewma (did you mean "round-robin"?)',
    ]);
  });

  it('point at a header name that is not a token', () => {
    expect(
      problems(`
upstreams:
  api: {endpoints: [http://api:8080]}
routes:
  - name: api
    upstream: api
    match: {headers: {"x canary": "1"}}
`),
    ).toEqual(['test.yaml:7:23 routes[0](api).match.headers["x canary"]: "x canary" is not a valid header name']);
  });

  it('refuse a file that is not a mapping', () => {
    expect(problems('- just\n- a list\n')).toEqual(['test.yaml:1:1: must be a mapping (key: value)']);
  });
});

describe('loadConfigFile', () => {
  it('reads and validates a file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'breakwater-load-'));
    try {
      const file = join(dir, 'breakwater.yaml');
      await writeFile(file, minimal);
      const result = await loadConfigFile(file);
      expect(result.ok && result.config.routes.map((route) => route.name)).toEqual(['api']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reports a file that cannot be read as a problem of that file', async () => {
    const result = await loadConfigFile('/nonexistent/breakwater.yaml');

    expect(result.ok ? [] : result.problems.map(formatProblem)).toEqual([
      '/nonexistent/breakwater.yaml:1:1: cannot read the file (ENOENT)',
    ]);
  });
});
