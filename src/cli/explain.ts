// `breakwater explain`: which listener and route a request would take, or why none does; the
// policy it would get, every default filled in, with the line of the file each value comes from;
// and the deadline and per-try timeout it would be given. The file goes through the parser and
// normaliser the proxy runs, the request through the proxy's router and deadline functions, so
// what this says is what the proxy would do.

import type { Config, LatencyPercentileConfig, RouteConfig, RouteMatch, UpstreamConfig } from '../config/types.ts';
import type { PathSegment, YamlLocator } from '../config/positions.ts';
import { formatPath } from '../config/positions.ts';
import { isSecretHeader, REDACTED, redactRoute, redactUpstream } from '../config/redact.ts';
import { formatDuration, formatSize } from '../config/units.ts';
import { parseBudgetHeader } from '../policies/deadline/budget.ts';
import { announcedBudgetMs, attemptDueAt, requestDeadline } from '../policies/deadline/deadline.ts';
import { absoluteForm, compileMatch, compileRouter, normalizeHost, pathOnly, type RouteRequest } from '../routing/match.ts';

/** What to explain: a request as a client would send it to one listener. */
export interface ExplainInput {
  readonly method: string;
  /** `http://host/path?query` (as sent to an HTTP proxy), or `/path?query` with a Host header. */
  readonly url: string;
  /** Lower-cased names. */
  readonly headers: Readonly<Record<string, string>>;
  readonly listener: string;
}

/** One effective value: what it is, and where the file sets it (`line` null: a default). */
export interface PolicyValue {
  /** Where in the file, as `breakwater validate` names places: `routes[1](demo-status).retry.maxAttempts`. */
  readonly path: string;
  /** The name within its section: `retry.maxAttempts`. */
  readonly name: string;
  /** The effective value (milliseconds, bytes, ratios in 0..1), or null for a policy that is off. */
  readonly value: unknown;
  /** The value as the file would write it: `500ms`, `64KiB`, `50%`. */
  readonly text: string;
  readonly line: number | null;
}

export interface PolicySection {
  /** `route demo-status`, `upstream demo`, `deadline`, `limits`. */
  readonly title: string;
  readonly values: readonly PolicyValue[];
}

/** One condition of a route's match, held against the request. */
export interface MatchCheck {
  /** `host`, `path`, `pathPrefix`, `methods`, or `headers.NAME`. */
  readonly field: string;
  /** What the route asks for. */
  readonly wanted: string;
  /** What the request has. */
  readonly got: string;
  readonly ok: boolean;
  readonly line: number | null;
}

export interface DeadlineExplanation {
  /** `spent`: the caller's budget is used up; the proxy answers 504 deadline_exceeded at once. */
  readonly kind: 'set' | 'spent';
  /** How long the whole request may take (set only). */
  readonly ms: number | null;
  /** What set it: the route's timeout or the caller's smaller budget. */
  readonly source: 'route' | 'caller';
  readonly routeTimeoutMs: number;
  /** The caller's budget header that counted (the smallest valid one), if any. */
  readonly caller: { readonly header: string; readonly value: string; readonly ms: number; readonly cappedMs: number | null } | null;
  /** Budget headers the caller sent that do not count: malformed values. */
  readonly ignored: readonly { readonly header: string; readonly value: string }[];
  /**
   * retry.perTryTimeout, or null when each attempt may use what is left of the deadline. For a
   * percentile-based one, its bound until the route has `minSamples` latencies: its `max`.
   */
  readonly perTryTimeoutMs: number | null;
  /** A per-try timeout drawn from the route's latencies; the running value is in GET /routes. */
  readonly adaptive: LatencyPercentileConfig | null;
  /** What the first attempt may take: min(perTryTimeout, deadline). Null when spent. */
  readonly attemptMs: number | null;
  /** The header each attempt carries to the upstream, and its value on the first attempt. */
  readonly announced: { readonly header: string; readonly value: string } | null;
}

interface Common {
  readonly listener: string;
  readonly request: { readonly method: string; readonly url: string; readonly host: string; readonly path: string };
}

export interface Matched extends Common {
  readonly matched: true;
  readonly route: { readonly name: string; readonly upstream: string; readonly line: number | null };
  readonly match: readonly MatchCheck[];
  readonly deadline: DeadlineExplanation;
  readonly policy: readonly PolicySection[];
}

export interface Missed extends Common {
  readonly matched: false;
  /** Why no route could even be tried, when that is the reason. */
  readonly problem: string | null;
  /** The route that comes nearest: the fewest failed conditions, then the most met, then file order. */
  readonly closest: {
    readonly name: string;
    readonly line: number | null;
    readonly failed: readonly string[];
    readonly checks: readonly MatchCheck[];
  } | null;
  /** Routes of other listeners that would take the request. */
  readonly elsewhere: readonly { readonly listener: string; readonly route: string }[];
}

export type Explanation = Matched | Missed;

/** The listeners' view of a target: the host and path the router sees, or a problem. */
function target(input: ExplainInput): { host: string; path: string } | { problem: string } {
  if (input.url.startsWith('/')) return { host: input.headers.host ?? '', path: input.url };
  const parts = absoluteForm.exec(input.url);
  if (parts === null) {
    return { problem: `${input.url} is not a target Breakwater proxies (http://host/path, or a /path with -H "Host: NAME"): the proxy answers 400 bad_request` };
  }
  return { host: parts[1]!, path: parts[2] === '' ? '/' : parts[2]! };
}

export function explain(config: Config, locator: YamlLocator, input: ExplainInput): Explanation {
  const method = input.method.toUpperCase();
  const where = target(input);
  const host = 'host' in where ? where.host : '';
  const path = 'path' in where ? where.path : input.url;
  const common: Common = { listener: input.listener, request: { method, url: input.url, host, path } };
  if ('problem' in where) return { ...common, matched: false, problem: where.problem, closest: null, elsewhere: [] };

  const request: RouteRequest = { method, host, path, headers: input.headers };
  const router = compileRouter(config.routes);
  const route = router.match(input.listener, request);
  const lineOf = (at: readonly PathSegment[]): number | null => locator.find(at)?.line ?? null;
  const routeIndex = (chosen: RouteConfig): number => config.routes.indexOf(chosen);

  if (route === undefined) {
    const elsewhere = config.listeners
      .filter((listener) => listener.name !== input.listener)
      .flatMap((listener) => {
        const other = router.match(listener.name, request);
        return other === undefined ? [] : [{ listener: listener.name, route: other.name }];
      });
    const candidates = config.routes
      .filter((candidate) => candidate.listener === input.listener)
      .map((candidate) => ({ candidate, checks: checkMatch(candidate.match, request, ['routes', routeIndex(candidate), 'match'], lineOf) }));
    let best: (typeof candidates)[number] | undefined;
    for (const entry of candidates) {
      if (best === undefined || nearer(entry.checks, best.checks)) best = entry;
    }
    const problem = candidates.length === 0 ? `listener ${input.listener} has no routes` : null;
    return {
      ...common,
      matched: false,
      problem,
      closest:
        best === undefined
          ? null
          : {
              name: best.candidate.name,
              line: lineOf(['routes', routeIndex(best.candidate)]),
              failed: best.checks.filter((check) => !check.ok).map((check) => check.field),
              checks: best.checks,
            },
      elsewhere,
    };
  }

  const index = routeIndex(route);
  const upstream = config.upstreams.get(route.upstream)!;
  return {
    ...common,
    matched: true,
    route: { name: route.name, upstream: route.upstream, line: lineOf(['routes', index]) },
    match: checkMatch(route.match, request, ['routes', index, 'match'], lineOf),
    deadline: explainDeadline(config, route, input.headers),
    // Shown as GET /config shows them: endpoint credentials and secret header values redacted.
    policy: policySections(config, redactRoute(route), index, redactUpstream(upstream), input.listener, lineOf),
  };
}

/** Whether `a` comes nearer to matching than `b`: fewer failed conditions, then more met ones. */
function nearer(a: readonly MatchCheck[], b: readonly MatchCheck[]): boolean {
  const failed = (checks: readonly MatchCheck[]) => checks.filter((check) => !check.ok).length;
  if (failed(a) !== failed(b)) return failed(a) < failed(b);
  return a.length - failed(a) > b.length - failed(b);
}

/**
 * Each condition of `match` held against the request on its own, through the router's own
 * compiled predicates, so that a miss can name the condition that failed.
 */
function checkMatch(
  match: RouteMatch,
  request: RouteRequest,
  at: readonly PathSegment[],
  lineOf: (path: readonly PathSegment[]) => number | null,
): MatchCheck[] {
  const host = normalizeHost(request.host);
  const path = pathOnly(request.path);
  const holds = (part: RouteMatch) => compileMatch(part)(request, host, path);
  const checks: MatchCheck[] = [];
  if (match.host !== undefined) {
    checks.push({ field: 'host', wanted: match.host, got: host === '' ? '(none)' : host, ok: holds({ host: match.host }), line: lineOf([...at, 'host']) });
  }
  if (match.path !== undefined) {
    checks.push({ field: 'path', wanted: match.path, got: path, ok: holds({ path: match.path }), line: lineOf([...at, 'path']) });
  }
  if (match.pathPrefix !== undefined) {
    checks.push({ field: 'pathPrefix', wanted: match.pathPrefix, got: path, ok: holds({ pathPrefix: match.pathPrefix }), line: lineOf([...at, 'pathPrefix']) });
  }
  if (match.methods !== undefined) {
    checks.push({ field: 'methods', wanted: match.methods.join(', '), got: request.method, ok: holds({ methods: match.methods }), line: lineOf([...at, 'methods']) });
  }
  for (const [name, value] of Object.entries(match.headers ?? {})) {
    const got = request.headers[name];
    // Credentials are matched, never shown: what explain prints ends up in tickets and chats.
    const secret = isSecretHeader(name);
    checks.push({
      field: `headers.${name}`,
      wanted: secret ? REDACTED : value,
      got: got === undefined ? '(absent)' : secret ? REDACTED : String(got),
      ok: holds({ headers: { [name]: value } }),
      line: lineOf([...at, 'headers', name]),
    });
  }
  return checks;
}

function explainDeadline(config: Config, route: RouteConfig, headers: Readonly<Record<string, string>>): DeadlineExplanation {
  const settings = config.deadline;
  const deadline = requestDeadline(route.timeoutMs, headers, settings);
  // The header whose budget counted: the smallest valid one, as callerBudgetMs takes it.
  let caller: DeadlineExplanation['caller'] = null;
  const ignored: { header: string; value: string }[] = [];
  for (const header of settings.accept) {
    const value = headers[header];
    if (value === undefined) continue;
    const ms = parseBudgetHeader(header, value);
    if (ms === undefined) ignored.push({ header, value });
    else if (caller === null || ms < caller.ms) caller = { header, value, ms, cappedMs: ms > settings.maxInboundMs ? settings.maxInboundMs : null };
  }
  // A percentile-based bound is its max until the route has seen minSamples attempts, as a
  // freshly started proxy has not.
  const adaptive = route.retry?.adaptivePerTryTimeout ?? null;
  const perTryTimeoutMs = route.retry?.perTryTimeoutMs ?? adaptive?.maxMs ?? null;
  if (deadline.kind === 'spent') {
    return { kind: 'spent', ms: null, source: 'caller', routeTimeoutMs: route.timeoutMs, caller, ignored, perTryTimeoutMs, adaptive, attemptMs: null, announced: null };
  }
  // As the per-try layer bounds the first attempt, arriving at instant 0.
  const attemptMs = attemptDueAt(0, deadline.lifetimeMs, perTryTimeoutMs ?? undefined);
  return {
    kind: 'set',
    ms: deadline.lifetimeMs,
    source: deadline.source,
    routeTimeoutMs: route.timeoutMs,
    caller,
    ignored,
    perTryTimeoutMs,
    adaptive,
    attemptMs,
    announced: { header: settings.header, value: String(announcedBudgetMs(attemptMs, 0)) },
  };
}

type LineOf = (path: readonly PathSegment[]) => number | null;

function policySections(
  config: Config,
  route: RouteConfig,
  index: number,
  upstream: UpstreamConfig,
  listenerName: string,
  lineOf: LineOf,
): PolicySection[] {
  const routeAt: PathSegment[] = ['routes', index];
  const nameOf = (list: readonly PathSegment[], item: number) =>
    list.length === 1 && list[0] === 'routes' ? config.routes[item]?.name : list.length === 1 && list[0] === 'listeners' ? config.listeners[item]?.name : undefined;
  const values = (value: unknown, at: readonly PathSegment[], name: string) => describe(value, at, name, lineOf, nameOf);
  const off = (at: readonly PathSegment[], name: string, text: string): PolicyValue => ({
    path: formatPath(at, nameOf),
    name,
    value: null,
    text,
    line: lineOf(at),
  });

  const { name: _name, listener: _listener, match: _match, upstream: _upstream, ...routePolicy } = route;
  const routeValues = values(routePolicy, routeAt, '');
  const upstreamBreaker = upstream.circuitBreaker === undefined ? 'none' : `upstream ${upstream.name}'s (below)`;
  const absent: [key: string, text: string][] = [
    ['retry', 'none: one attempt'],
    ['circuitBreaker', upstreamBreaker],
    ['fallback', 'none'],
    ['hedge', 'none'],
    ['fault', 'none'],
    ['idempotency', 'none'],
  ];
  for (const [key, text] of absent) {
    if (!(key in route)) routeValues.push(off([...routeAt, key], key, text));
  }

  const upstreamAt: PathSegment[] = ['upstreams', upstream.name];
  const { name: _upstreamName, circuitBreaker, dnsRefreshMs, ...upstreamPolicy } = upstream;
  const upstreamValues = values(upstreamPolicy, upstreamAt, '');
  // How often names are looked up again matters only to an upstream that has dns:// endpoints.
  if (dnsRefreshMs !== undefined && upstream.endpoints.some((endpoint) => endpoint.startsWith('dns://'))) {
    const at = [...upstreamAt, 'dnsRefresh'];
    upstreamValues.push({ path: formatPath(at, nameOf), name: 'dnsRefresh', value: dnsRefreshMs, text: formatDuration(dnsRefreshMs), line: lineOf(at) });
  }
  if (upstream.maxConnections === undefined) upstreamValues.push(off([...upstreamAt, 'maxConnections'], 'maxConnections', 'unlimited'));
  if (upstream.bulkhead === undefined) upstreamValues.push(off([...upstreamAt, 'bulkhead'], 'bulkhead', 'none'));
  if (upstream.outlierDetection === undefined) upstreamValues.push(off([...upstreamAt, 'outlierDetection'], 'outlierDetection', 'none: no endpoint is ejected'));
  // A route with a breaker of its own does not use its upstream's.
  if (circuitBreaker !== undefined) {
    if (route.circuitBreaker === undefined) upstreamValues.push(...values(circuitBreaker, [...upstreamAt, 'circuitBreaker'], 'circuitBreaker'));
    else upstreamValues.push(off([...upstreamAt, 'circuitBreaker'], 'circuitBreaker', `not used: route ${route.name} has its own`));
  }

  const listenerIndex = config.listeners.findIndex((listener) => listener.name === listenerName);
  const listener = config.listeners[listenerIndex]!;
  const listenerAt: PathSegment[] = ['listeners', listenerIndex, 'maxConcurrent'];
  const listenerValues =
    listener.maxConcurrent === undefined
      ? [off(listenerAt, 'maxConcurrent', 'no limit')]
      : values(listener.maxConcurrent, listenerAt, 'maxConcurrent');

  return [
    { title: `route ${route.name}`, values: routeValues },
    { title: `upstream ${upstream.name}`, values: upstreamValues },
    { title: 'deadline', values: values(config.deadline, ['deadline'], '') },
    { title: `listener ${listener.name}`, values: listenerValues },
    { title: 'limits', values: values(config.limits, ['limits'], '') },
  ];
}

/**
 * The effective config's keys spell units (`timeoutMs`, `bufferLimitBytes`); the file's do not.
 */
function fileKey(key: string): string {
  const renamed = renamedKeys[key];
  if (renamed !== undefined) return renamed;
  return key.endsWith('Ms') ? key.slice(0, -2) : key;
}

// Effective keys whose file key is another word: a percentile bound is written where the fixed
// duration would be (`perTryTimeout: {percentile: 99, ...}`).
const renamedKeys: Readonly<Record<string, string>> = {
  bufferLimitBytes: 'bufferLimit',
  adaptivePerTryTimeout: 'perTryTimeout',
  adaptiveDelay: 'delay',
};

const ratioKeys = new Set(['failureRate', 'slowCallRate', 'ratio', 'threshold']);

/** A value as the file would write it. */
function valueText(key: string, value: unknown): string {
  if (value === '') return '""';
  if (isPlainObject(value)) return '{}';
  if (Array.isArray(value)) return value.length === 0 ? '[]' : value.map(String).join(', ');
  if (typeof value === 'number') {
    // A WebSocket's bounds are the only durations where 0 is allowed, and means none.
    if (key.endsWith('Ms')) return value === 0 && (key === 'maxDurationMs' || key === 'idleTimeoutMs') ? '0 (no limit)' : formatDuration(value);
    if (key.endsWith('Bytes')) return value === 0 && key === 'maxBodyBytes' ? '0 (no limit)' : formatSize(value);
    if (ratioKeys.has(key)) return `${Number((value * 100).toFixed(4))}%`;
    if (key === 'percent') return `${value}%`;
  }
  return String(value);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Every leaf of an effective value, named as the file names it, with the line that sets it. */
function describe(
  value: unknown,
  at: readonly PathSegment[],
  name: string,
  lineOf: LineOf,
  nameOf: (list: readonly PathSegment[], index: number) => string | undefined,
): PolicyValue[] {
  if (!isPlainObject(value)) {
    const key = String(at.at(-1) ?? name);
    return [{ path: formatPath(at, nameOf), name, value, text: valueText(key, value), line: lineOf(at) }];
  }
  const rows: PolicyValue[] = [];
  for (const [key, inner] of Object.entries(value)) {
    const fileName = fileKey(key);
    const innerAt = [...at, fileName];
    const innerName = name === '' ? fileName : `${name}.${fileName}`;
    if (key === 'chain' && Array.isArray(inner)) {
      inner.forEach((step: unknown, index) => {
        const stepAt = [...innerAt, index];
        rows.push({ path: formatPath(stepAt, nameOf), name: `${innerName}[${index}]`, value: step, text: stepText(step), line: lineOf(stepAt) });
      });
    } else if (isPlainObject(inner) && Object.keys(inner).length > 0) {
      rows.push(...describe(inner, innerAt, innerName, lineOf, nameOf));
    } else {
      rows.push({ path: formatPath(innerAt, nameOf), name: innerName, value: inner, text: valueText(key, inner), line: lineOf(innerAt) });
    }
  }
  return rows;
}

/** A fallback step in one line. */
function stepText(step: unknown): string {
  if (!isPlainObject(step)) return String(step);
  switch (step.kind) {
    case 'staleCache':
      return `staleCache, maxAge ${formatDuration(Number(step.maxAgeMs))}`;
    case 'upstream':
      return `upstream ${String(step.upstream)}`;
    case 'response': {
      const headers = Object.entries(isPlainObject(step.headers) ? step.headers : {}).map(([name, value]) => `${name}: ${String(value)}`);
      const body = String(step.body);
      const shown = body.length > 40 ? `${body.slice(0, 39)}…` : body;
      return [`response ${String(step.status)}`, ...headers, ...(shown === '' ? [] : [`body ${shown}`])].join(', ');
    }
    default:
      return JSON.stringify(step);
  }
}
