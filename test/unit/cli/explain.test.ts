import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../../src/cli/main.ts';

// Line numbers matter here: the tests read them back from `explain`.
const policies = `listeners:
  - {name: outbound, address: 127.0.0.1:15001}
  - {name: inbound, address: 0.0.0.0:15006}
upstreams:
  payments:
    endpoints: [http://payments:8080]
    connectTimeout: 250ms
    circuitBreaker:
      failureRate: 25%
  local-app:
    endpoints: [http://127.0.0.1:8080]
deadline:
  maxInbound: 30s
routes:
  - name: charge-canary
    match:
      host: payments
      pathPrefix: /charge
      methods: [POST]
      headers: {x-canary: "true"}
    upstream: payments
    timeout: 2s
    retry:
      maxAttempts: 2
      perTryTimeout: 500ms
  - name: charge
    match: {host: payments, pathPrefix: /charge, methods: [POST]}
    upstream: payments
    timeout: 3s
  - name: refunds
    match: {host: "*.payments.svc", path: /refunds}
    upstream: payments
  - name: to-local-app
    listener: inbound
    match: {pathPrefix: /}
    upstream: local-app
`;

let dir: string;
let file: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'breakwater-explain-'));
  file = join(dir, 'policies.yaml');
  await writeFile(file, policies);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function explain(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(['explain', '--config', file, ...args], {
    stdout: (text) => (stdout += text),
    stderr: (text) => (stderr += text),
    env: {},
  });
  return { code, stdout, stderr };
}

/** The line of the output that starts with `start` (after any indent), spaces squeezed. */
function row(output: string, start: string): string | undefined {
  return output
    .split('\n')
    .map((line) => line.trim().replace(/\s+/g, ' '))
    .find((line) => line.startsWith(start));
}

// `explain --json` parsed: only the fields the tests read.
interface Json {
  matched: boolean;
  route?: { name: string; line: number };
  deadline?: { kind: string; ms: number | null; source: string; attemptMs: number | null; announced: { header: string; value: string } | null };
  policy?: { title: string; values: { name: string; value: unknown; text: string; line: number | null }[] }[];
  closest?: { name: string; failed: string[]; checks: { field: string; ok: boolean; line: number | null }[] } | null;
  elsewhere?: { listener: string; route: string }[];
}

async function explainJson(...args: string[]): Promise<{ code: number; json: Json }> {
  const { code, stdout } = await explain(...args);
  return { code, json: JSON.parse(stdout) as Json };
}

describe('breakwater explain', () => {
  it('names the route a request takes, with its upstream, deadline and per-try timeout first', async () => {
    const { code, stdout } = await explain('POST', 'http://payments/charge/42', '-H', 'x-canary: true');

    expect(code).toBe(0);
    const lines = stdout.split('\n');
    expect(lines[0]).toBe('POST http://payments/charge/42 on listener outbound');
    expect(row(stdout, 'route ')).toBe(`route charge-canary (${file}:15)`);
    expect(row(stdout, 'upstream ')).toBe('upstream payments: http://payments:8080');
    expect(row(stdout, 'deadline ')).toBe('deadline 2s, the route timeout (no caller budget header)');
    expect(row(stdout, 'per try ')).toBe('per try 500ms, retry.perTryTimeout; the upstream is told x-request-timeout-ms: 500');
    // Each condition of the match, with the line that sets it.
    expect(row(stdout, 'host ')).toBe('host payments payments line 17');
    expect(row(stdout, 'headers.x-canary')).toBe('headers.x-canary true true line 20');
  });

  it('shows every policy value with the line that sets it, or "default"', async () => {
    const { stdout } = await explain('POST', 'http://payments/charge', '-H', 'X-Canary: true');

    expect(row(stdout, 'timeout ')).toBe('timeout line 22 2s');
    expect(row(stdout, 'retry.maxAttempts')).toBe('retry.maxAttempts line 24 2');
    expect(row(stdout, 'retry.perTryTimeout')).toBe('retry.perTryTimeout line 25 500ms');
    // Defaults, filled in as the proxy fills them.
    expect(row(stdout, 'retry.retryOn')).toBe('retry.retryOn default connect-failure, reset, 502, 503, 504');
    expect(row(stdout, 'retry.backoff.max')).toBe('retry.backoff.max default 250ms');
    expect(row(stdout, 'retry.bufferLimit')).toBe('retry.bufferLimit default 64KiB');
    expect(row(stdout, 'fallback ')).toBe('fallback default none');
    // The upstream's values, and its breaker (the route has none of its own).
    expect(row(stdout, 'connectTimeout')).toBe('connectTimeout line 7 250ms');
    expect(row(stdout, 'loadBalancing')).toBe('loadBalancing default round-robin');
    expect(row(stdout, 'bulkhead ')).toBe('bulkhead default none');
    expect(row(stdout, 'outlierDetection ')).toBe('outlierDetection default none: no endpoint is ejected');
    expect(row(stdout, 'hedge ')).toBe('hedge default none');
    expect(row(stdout, 'circuitBreaker ')).toBe("circuitBreaker default upstream payments's (below)");
    expect(row(stdout, 'circuitBreaker.failureRate')).toBe('circuitBreaker.failureRate line 9 25%');
    expect(row(stdout, 'circuitBreaker.window')).toBe('circuitBreaker.window default 10s');
    expect(row(stdout, 'maxInbound')).toBe('maxInbound line 13 30s');
    expect(row(stdout, 'header ')).toBe('header default x-request-timeout-ms');
  });

  it('matches on headers: without the canary header the request falls through to the next route', async () => {
    const { code, stdout } = await explain('POST', 'http://payments/charge');

    expect(code).toBe(0);
    expect(row(stdout, 'route ')).toBe(`route charge (${file}:26)`);
    expect(row(stdout, 'retry ')).toBe('retry default none: one attempt');
    expect(row(stdout, 'per try ')).toBe('per try 3s, the whole deadline (no retry.perTryTimeout); the upstream is told x-request-timeout-ms: 3000');
  });

  it('takes a path with a Host header as the listener does, and methods in any case', async () => {
    const { code, json } = await explainJson('post', '/charge', '-H', 'Host: Payments:8080', '--json');

    expect(code).toBe(0);
    expect(json.route).toEqual({ name: 'charge', upstream: 'payments', line: 26 });
  });

  it('on a method no route takes, names the closest route and the field that failed, and exits 1', async () => {
    const { code, stdout } = await explain('GET', 'http://payments/charge');

    expect(code).toBe(1);
    expect(stdout).toContain('no route matches: the proxy answers 404 no_route and dials no upstream');
    // charge fails on the method alone; charge-canary on the method and its header.
    expect(row(stdout, 'closest route:')).toBe(`closest route: charge (${file}:26), which fails on methods`);
    expect(row(stdout, 'methods ')).toBe('methods POST GET line 27 FAILS');
    expect(row(stdout, 'host ')).toBe('host payments payments line 27 ok');
    expect(row(stdout, 'on listener inbound')).toBe('on listener inbound, route to-local-app would take it (--listener inbound)');
  });

  it('on a host no route takes, names the host as the failed field', async () => {
    const { code, json } = await explainJson('--json', 'GET', 'http://payments.svc/refunds');

    expect(code).toBe(1);
    expect(json.matched).toBe(false);
    expect(json.closest?.name).toBe('refunds');
    expect(json.closest?.failed).toEqual(['host']);
    expect(json.closest?.checks).toEqual([
      { field: 'host', wanted: '*.payments.svc', got: 'payments.svc', ok: false, line: 31 },
      { field: 'path', wanted: '/refunds', got: '/refunds', ok: true, line: 31 },
    ]);
  });

  it('on a path no route takes, names the path', async () => {
    const { code, stdout } = await explain('POST', 'http://payments/charges', '-H', 'x-canary: true');

    expect(code).toBe(1);
    expect(row(stdout, 'closest route:')).toBe(`closest route: charge-canary (${file}:15), which fails on pathPrefix`);
    expect(row(stdout, 'pathPrefix ')).toBe('pathPrefix /charge /charges line 18 FAILS');
  });

  it('explains another listener with --listener', async () => {
    const { code, stdout } = await explain('--listener', 'inbound', 'GET', '/orders', '--json');

    expect(code).toBe(0);
    expect((JSON.parse(stdout) as Json).route?.name).toBe('to-local-app');
  });

  describe('the deadline, given the caller\'s headers', () => {
    it('takes a shorter caller budget, and bounds the attempt by what it leaves', async () => {
      const { stdout } = await explain('POST', 'http://payments/charge', '-H', 'x-canary: true', '-H', 'x-request-timeout-ms: 300');

      expect(row(stdout, 'deadline ')).toBe("deadline 300ms, the caller's budget x-request-timeout-ms: 300 (the route timeout is 2s)");
      expect(row(stdout, 'per try ')).toBe(
        'per try 300ms, all the deadline leaves (retry.perTryTimeout is 500ms); the upstream is told x-request-timeout-ms: 300',
      );
    });

    it('reads grpc-timeout, keeps the route timeout when it is shorter, and caps at maxInbound', async () => {
      const shorter = await explainJson('POST', 'http://payments/charge', '-H', 'x-canary: true', '-H', 'grpc-timeout: 1S', '--json');
      const longer = await explain('POST', 'http://payments/charge', '-H', 'x-canary: true', '-H', 'grpc-timeout: 5M');

      expect(shorter.json.deadline).toMatchObject({ kind: 'set', ms: 1000, source: 'caller', attemptMs: 500 });
      expect(row(longer.stdout, 'deadline ')).toBe(
        "deadline 2s, the route timeout (the caller's grpc-timeout: 5M, capped at deadline.maxInbound 30s, is not shorter)",
      );
    });

    it('says a spent budget is refused before any upstream is called', async () => {
      const { code, json } = await explainJson('POST', 'http://payments/charge', '-H', 'x-request-timeout-ms: 0', '--json');
      const text = await explain('POST', 'http://payments/charge', '-H', 'x-request-timeout-ms: 0');

      expect(code).toBe(0);
      expect(json.deadline).toMatchObject({ kind: 'spent', ms: null, attemptMs: null, announced: null });
      expect(row(text.stdout, 'deadline ')).toBe(
        "deadline spent: the caller's x-request-timeout-ms: 0; the proxy answers 504 deadline_exceeded at once and calls no upstream",
      );
    });

    it('ignores a malformed budget, and says so', async () => {
      const { stdout } = await explain('POST', 'http://payments/charge', '-H', 'x-request-timeout-ms: soon');

      expect(row(stdout, 'deadline ')).toBe('deadline 3s, the route timeout (no caller budget header); x-request-timeout-ms: soon ignored (not a valid budget)');
    });
  });

  it('gives scripts every value in JSON, effective numbers beside the line', async () => {
    const { json } = await explainJson('POST', 'http://payments/charge', '--json', '-H', 'x-canary: true');

    const route = json.policy?.find((section) => section.title === 'route charge-canary');
    expect(route?.values).toContainEqual({ path: 'routes[0](charge-canary).retry.perTryTimeout', name: 'retry.perTryTimeout', value: 500, text: '500ms', line: 25 });
    expect(route?.values).toContainEqual({ path: 'routes[0](charge-canary).retry.budget.ratio', name: 'retry.budget.ratio', value: 0.2, text: '20%', line: null });
    expect(json.deadline?.announced).toEqual({ header: 'x-request-timeout-ms', value: '500' });
  });

  it('explains a percentile-based per-try timeout and hedging, with the lines of their keys', async () => {
    const adaptive = join(dir, 'adaptive.yaml');
    await writeFile(
      adaptive,
      `upstreams:
  search:
    endpoints: [http://search:8080]
    outlierDetection: {consecutiveFailures: 5}
routes:
  - name: search
    match: {host: search}
    upstream: search
    timeout: 3s
    retry:
      maxAttempts: 2
      perTryTimeout: {percentile: 99, multiplier: 1.5, min: 20ms, max: 800ms}
    hedge:
      delay: {percentile: 95, min: 5ms, max: 500ms}
      maxAttempts: 2
`,
    );
    let stdout = '';
    const code = await runCli(['explain', '-c', adaptive, 'GET', 'http://search/q'], { stdout: (text) => (stdout += text), stderr: () => undefined, env: {} });

    expect(code).toBe(0);
    expect(row(stdout, 'per try ')).toBe(
      "per try 800ms at most: 1.5 × p99 of the last 1m's good attempts, within 20ms..800ms, 800ms until 100 of them (GET /routes has the value in force); the upstream is told x-request-timeout-ms: 800 at most",
    );
    expect(row(stdout, 'retry.perTryTimeout.max')).toBe('retry.perTryTimeout.max line 12 800ms');
    expect(row(stdout, 'retry.perTryTimeout.minSamples')).toBe('retry.perTryTimeout.minSamples default 100');
    expect(row(stdout, 'hedge.delay.percentile')).toBe('hedge.delay.percentile line 14 95');
    expect(row(stdout, 'hedge.maxAttempts')).toBe('hedge.maxAttempts line 15 2');
    expect(row(stdout, 'outlierDetection.consecutiveFailures')).toBe('outlierDetection.consecutiveFailures line 4 5');
    expect(row(stdout, 'outlierDetection.baseEjectionTime')).toBe('outlierDetection.baseEjectionTime default 30s');
  });

  it('never prints credentials: endpoint userinfo and secret header values are redacted', async () => {
    const secrets = join(dir, 'secrets.yaml');
    await writeFile(
      secrets,
      `upstreams:
  vault: {endpoints: ["http://admin:hunter2@vault:8200"]}
routes:
  - name: vault
    match: {host: vault, headers: {x-api-key: s3cret}}
    upstream: vault
    fallback:
      chain:
        - response: {status: 503, headers: {authorization: Bearer abc}}
`,
    );
    let stdout = '';
    const matched = await runCli(['explain', '-c', secrets, 'GET', 'http://vault/', '-H', 'x-api-key: s3cret'], { stdout: (text) => (stdout += text), stderr: () => undefined, env: {} });
    const missed = await runCli(['explain', '-c', secrets, 'GET', 'http://vault/', '-H', 'x-api-key: wrong', '--json'], { stdout: (text) => (stdout += text), stderr: () => undefined, env: {} });

    expect(matched).toBe(0);
    expect(missed).toBe(1);
    expect(stdout).not.toMatch(/hunter2|s3cret|wrong|Bearer/);
    expect(row(stdout, 'endpoints')).toBe('endpoints line 2 http://[redacted]@vault:8200');
    expect(row(stdout, 'headers.x-api-key')).toBe('headers.x-api-key [redacted] [redacted] line 5');
  });

  it('exits 2 with the problems of a bad config, and with an unknown listener', async () => {
    const broken = join(dir, 'broken.yaml');
    await writeFile(broken, 'upstreams:\n  a: {endpoints: [http://a]}\nroutes:\n  - {name: r, upstream: b}\n');
    let stderr = '';
    const code = await runCli(['explain', '-c', broken, 'GET', 'http://a/'], { stdout: () => undefined, stderr: (text) => (stderr += text), env: {} });
    const unknown = await explain('--listener', 'sideways', 'GET', '/');

    expect(code).toBe(2);
    expect(stderr).toContain(`${broken}:4:25 routes[0](r).upstream: unknown upstream "b"`);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('has no listener "sideways"; give --listener with one of: outbound, inbound');
  });

  it('refuses a target the proxy does not take, and a malformed -H, as usage', async () => {
    const https = await explain('GET', 'https://payments/charge');
    const header = await explain('GET', 'http://payments/', '-H', 'x-canary');

    expect(https.code).toBe(1);
    expect(https.stdout).toContain('is not a target Breakwater proxies');
    expect(header.code).toBe(2);
    expect(header.stderr).toContain('-H takes "Name: value"');
  });
});
