import { describe, expect, it } from 'vitest';
import { formatProblem, parseConfig } from '../../../src/config/load.ts';
import { lintConfig } from '../../../src/lint/warnings.ts';

const head = `
listeners:
  - {name: outbound, address: 127.0.0.1:15001}
  - {name: inbound, address: 0.0.0.0:15006}
upstreams:
  api: {endpoints: [http://api:8080]}
routes:
`;

/** The warnings of a file with these routes (one flow mapping each), which must be valid. */
function warnings(...routes: string[]): string[] {
  const result = parseConfig(`${head}${routes.map((route) => `  - ${route}\n`).join('')}`, 'test.yaml', { lint: lintConfig });
  if (!result.ok) throw new Error(result.problems.map(formatProblem).join('\n'));
  return result.warnings.map(formatProblem);
}

/** Whether the second of two routes is reported as never used. */
function shadowed(earlier: string, later: string): boolean {
  const found = warnings(`{name: earlier, upstream: api, match: ${earlier}}`, `{name: later, upstream: api, match: ${later}}`);
  return found.some((line) => line.includes('routes[1](later): warning: never used'));
}

describe('a route shadowed by an earlier one', () => {
  it('is reported at the later route, naming the route that takes its requests', () => {
    expect(warnings('{name: everything, upstream: api}', '{name: charge, upstream: api, match: {pathPrefix: /charge}}')).toEqual([
      'test.yaml:9:5 routes[1](charge): warning: never used: routes[0](everything) comes first on listener outbound and matches every request this route matches (the first matching route wins)',
    ]);
  });

  it('is not reported across listeners', () => {
    expect(
      warnings('{name: everything, upstream: api, listener: inbound}', '{name: charge, upstream: api, match: {pathPrefix: /charge}}'),
    ).toEqual([]);
  });

  it.each([
    ['{pathPrefix: /charge}', '{pathPrefix: /charge/refund}'],
    ['{pathPrefix: /charge}', '{path: /charge}'],
    ['{pathPrefix: /charge/}', '{pathPrefix: /charge}'],
    ['{pathPrefix: /}', '{path: /x, methods: [GET]}'],
    ['{path: /health}', '{path: /health, host: api}'],
    ['{host: "*.example.com"}', '{host: api.example.com}'],
    ['{host: "*.example.com"}', '{host: "*.eu.example.com"}'],
    ['{host: api.example.com}', '{host: API.example.com}'],
    ['{methods: [GET, POST]}', '{methods: [get]}'],
    ['{headers: {x-canary: "true"}}', '{headers: {X-Canary: "true", x-tenant: a}}'],
    ['{host: api, pathPrefix: /v1, methods: [GET], headers: {x-a: "1"}}', '{host: api, path: /v1/items, methods: [GET], headers: {x-a: "1", x-b: "2"}}'],
  ])('when %s comes before %s', (earlier, later) => {
    expect(shadowed(earlier, later)).toBe(true);
  });

  it.each([
    ['{pathPrefix: /charge}', '{pathPrefix: /charges}'],
    ['{pathPrefix: /charge/refund}', '{pathPrefix: /charge}'],
    ['{path: /charge}', '{pathPrefix: /charge}'],
    ['{path: /charge}', '{path: /charge/}'],
    ['{pathPrefix: /charge}', '{pathPrefix: /}'],
    ['{host: "*.example.com"}', '{host: example.com}'],
    ['{host: api.example.com}', '{host: "*.example.com"}'],
    ['{host: "*.eu.example.com"}', '{host: "*.example.com"}'],
    ['{host: api}', '{pathPrefix: /x}'],
    ['{methods: [GET]}', '{methods: [GET, POST]}'],
    ['{methods: [GET]}', '{pathPrefix: /x}'],
    ['{headers: {x-canary: "true"}}', '{pathPrefix: /x}'],
    ['{headers: {x-canary: "true"}}', '{headers: {x-canary: "false"}}'],
  ])('but not when %s comes before %s', (earlier, later) => {
    expect(shadowed(earlier, later)).toBe(false);
  });

  it('is not reported when the earlier route has a mistake in its match, which may be what widens it', () => {
    const result = parseConfig(
      `${head}  - {name: typo, upstream: api, match: {pathprefix: /charge}}\n  - {name: refund, upstream: api, match: {pathPrefix: /refund}}\n`,
      'test.yaml',
      { lint: lintConfig },
    );

    expect(result.ok).toBe(false);
    expect(result.warnings).toEqual([]);
  });
});

describe('retry timing', () => {
  it('warns when perTryTimeout is longer than the route timeout', () => {
    expect(warnings('{name: slow, upstream: api, timeout: 1s, retry: {perTryTimeout: 2s}}')).toEqual([
      'test.yaml:8:69 routes[0](slow).retry.perTryTimeout: warning: perTryTimeout 2s is longer than the route timeout 1s, which covers all attempts: the route timeout ends an attempt first, so the per-try timeout never takes effect',
    ]);
  });

  it('says when the route timeout is the default', () => {
    expect(warnings('{name: slow, upstream: api, retry: {perTryTimeout: 20s}}')).toEqual([
      'test.yaml:8:56 routes[0](slow).retry.perTryTimeout: warning: perTryTimeout 20s is longer than the route timeout 15s (the default), which covers all attempts: the route timeout ends an attempt first, so the per-try timeout never takes effect',
    ]);
  });

  it('warns when every attempt at its full perTryTimeout, with the shortest backoff, does not fit in the route timeout', () => {
    expect(
      warnings(
        '{name: charge, upstream: api, timeout: 1s, retry: {maxAttempts: 3, perTryTimeout: 400ms, backoff: {type: fixed, base: 100ms, jitter: none}}}',
      ),
    ).toEqual([
      'test.yaml:8:69 routes[0](charge).retry.maxAttempts: warning: retries do not fit in the route timeout 1s: 3 attempts × perTryTimeout 400ms + at least 200ms of backoff = 1400ms; when attempts time out, only 2 can run in full before the route timeout ends the request',
    ]);
  });

  it('counts the shortest wait each jitter can draw', () => {
    const route = (backoff: string): string =>
      `{name: r, upstream: api, timeout: 1s, retry: {maxAttempts: 3, perTryTimeout: 300ms, backoff: ${backoff}}}`;

    // Full jitter can wait 0: 3 × 300ms fit.
    expect(warnings(route('{type: fixed, base: 100ms, jitter: full}'))).toEqual([]);
    // Equal jitter waits at least half: 3 × 300ms + 50ms + 100ms (exponential) = 1050ms.
    expect(warnings(route('{type: exponential, base: 100ms, jitter: equal}'))).toEqual([
      expect.stringContaining('3 attempts × perTryTimeout 300ms + at least 150ms of backoff = 1050ms'),
    ]);
    // Decorrelated jitter waits at least base: 3 × 300ms + 2 × 60ms = 1020ms.
    expect(warnings(route('{type: linear, base: 60ms, jitter: decorrelated}'))).toEqual([
      expect.stringContaining('+ at least 120ms of backoff = 1020ms'),
    ]);
  });

  it('points at the retry block and says so when maxAttempts is the default', () => {
    expect(warnings('{name: r, upstream: api, timeout: 1s, retry: {perTryTimeout: 500ms}}')).toEqual([
      'test.yaml:8:50 routes[0](r).retry: warning: retries do not fit in the route timeout 1s: 3 attempts (the default) × perTryTimeout 500ms + at least 0ms of backoff = 1500ms; when attempts time out, only 2 can run in full before the route timeout ends the request',
    ]);
  });

  it('says nothing without a perTryTimeout, with one attempt, or when the attempts fit', () => {
    expect(
      warnings(
        '{name: a, upstream: api, timeout: 1s, retry: {maxAttempts: 5}, match: {host: a}}',
        '{name: b, upstream: api, timeout: 1s, retry: {maxAttempts: 1, perTryTimeout: 900ms}, match: {host: b}}',
        '{name: c, upstream: api, timeout: 2s, retry: {maxAttempts: 3, perTryTimeout: 500ms}, match: {host: c}}',
      ),
    ).toEqual([]);
  });

  it('leaves out a retry block with a mistake, and a route whose timeout has one', () => {
    const result = parseConfig(
      `${head}  - {name: a, upstream: api, timeout: 1s, retry: {perTryTimeout: 2s, retryon: [503]}, match: {host: a}}\n` +
        '  - {name: b, upstream: api, timeout: 0, retry: {perTryTimeout: 2s}, match: {host: b}}\n',
      'test.yaml',
      { lint: lintConfig },
    );

    expect(result.ok).toBe(false);
    expect(result.warnings).toEqual([]);
  });
});

describe('a file with warnings only', () => {
  it('is valid, and its warnings come with it', () => {
    const result = parseConfig(`${head}  - {name: a, upstream: api}\n  - {name: b, upstream: api}\n`, 'test.yaml', { lint: lintConfig });

    expect(result.ok).toBe(true);
    expect(result.warnings.map(formatProblem)).toEqual([
      'test.yaml:9:5 routes[1](b): warning: never used: routes[0](a) comes first on listener outbound and matches every request this route matches (the first matching route wins)',
    ]);
  });
});
