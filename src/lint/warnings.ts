// Mistakes a valid config can still hold: a route no request can ever reach, and retry
// timeouts that the route timeout cuts short. They do not stop a start or a reload (the file
// does what it says); `breakwater validate` prints them and the running sidecar logs them.
// The checks judge a route with the router's own matching and a retry with the policy's own
// backoff, so they live above config/, routing/ and policies/, and src/config/load.ts runs
// them when its caller passes `lint: lintConfig`.
//
// Each check is conservative: it warns only when the config alone proves the point, whatever
// the requests and the upstream's answers turn out to be.

import type { ConfigLint, ReportWarning, RouteInFile } from '../config/load.ts';
import { formatPath } from '../config/positions.ts';
import type { RetryConfig, RouteMatch } from '../config/types.ts';
import { formatDuration } from '../config/units.ts';
import { backoffDelay } from '../policies/retry/backoff.ts';
import { compileMatch, type RouteRequest } from '../routing/match.ts';

/** Reports the warnings of `routes`, leaving out the parts of the file with an error. */
export const lintConfig: ConfigLint = (routes, clean, warn) => {
  shadowedRoutes(
    routes.filter(({ path }) => clean([...path, 'match']) && clean([...path, 'listener'])),
    warn,
  );
  for (const entry of routes) {
    const { route, path } = entry;
    if (route.retry === undefined || !clean([...path, 'retry']) || !clean([...path, 'timeout'])) continue;
    retryTiming(entry, route.retry, warn);
  }
};

/** A route is never used when an earlier route on its listener takes every request it matches. */
function shadowedRoutes(routes: readonly RouteInFile[], warn: ReportWarning): void {
  for (const [index, later] of routes.entries()) {
    const earlier = routes
      .slice(0, index)
      .find(({ route }) => route.listener === later.route.listener && covers(route.match, later.route.match));
    if (earlier === undefined) continue;
    warn(
      later.path,
      `never used: ${label(earlier)} comes first on listener ${later.route.listener} and matches every request ` +
        'this route matches (the first matching route wins)',
    );
  }
}

function label({ route, path }: RouteInFile): string {
  return formatPath(path, () => route.name);
}

const anyRequest: RouteRequest = { method: '', host: '', path: '', headers: {} };

/**
 * Whether every request `later` matches is matched by `earlier`: each condition of `earlier`
 * must follow from a condition of `later`. Sound, not complete: a route covered only by several
 * earlier routes together is not reported.
 */
function covers(earlier: RouteMatch, later: RouteMatch): boolean {
  const { host, path, pathPrefix, methods, headers } = earlier;
  if (host !== undefined && (later.host === undefined || !hostCovers(host, later.host))) return false;
  if (path !== undefined && later.path !== path) return false;
  if (pathPrefix !== undefined && !prefixCovers(pathPrefix, later)) return false;
  if (methods !== undefined && (later.methods === undefined || !later.methods.every((method) => methods.includes(method)))) {
    return false;
  }
  return Object.entries(headers ?? {}).every(([name, value]) => later.headers?.[name] === value);
}

/** Whether every host `later` (a name or `*.suffix`) matches is matched by the pattern `earlier`. */
function hostCovers(earlier: string, later: string): boolean {
  if (later.startsWith('*.')) {
    // *.a.example.com is within *.example.com and within itself; never within an exact name.
    const suffix = later.slice(2);
    return earlier.startsWith('*.') && (suffix === earlier.slice(2) || suffix.endsWith(earlier.slice(1)));
  }
  // The router's own test, on the one host `later` matches.
  return compileMatch({ host: earlier })(anyRequest, later, '');
}

/** Whether every path `later` matches is under the prefix `prefix`. */
function prefixCovers(prefix: string, later: RouteMatch): boolean {
  const underPrefix = (path: string): boolean => compileMatch({ pathPrefix: prefix })(anyRequest, '', path);
  if (underPrefix('')) return true; // `/`: every path
  if (later.path !== undefined && underPrefix(later.path)) return true;
  if (later.pathPrefix === undefined) return false;
  // A prefix matches its own path (without a trailing slash) and everything below it: all of
  // that is under `prefix` exactly when that path is.
  const base = later.pathPrefix.endsWith('/') ? later.pathPrefix.slice(0, -1) : later.pathPrefix;
  return base !== '' && underPrefix(base);
}

/**
 * Per-try timeouts that the route timeout (which covers every attempt and every wait) cuts
 * short. The rule: each attempt may run for its whole perTryTimeout before its outcome is
 * known, and a retry waits at least the smallest delay its backoff can draw (0 with full
 * jitter, half the delay with equal jitter, base with decorrelated jitter, the whole delay
 * without jitter). When all of that is longer than the route timeout, the last attempts
 * never run in full when the upstream is slow.
 */
function retryTiming({ route, path, given }: RouteInFile, retry: RetryConfig, warn: ReportWarning): void {
  const perTryMs = retry.perTryTimeoutMs;
  if (perTryMs === undefined) return;
  const timeout = `the route timeout ${formatDuration(route.timeoutMs)}${given.timeout ? '' : ' (the default)'}`;
  if (perTryMs > route.timeoutMs) {
    warn(
      [...path, 'retry', 'perTryTimeout'],
      `perTryTimeout ${formatDuration(perTryMs)} is longer than ${timeout}, which covers all attempts: ` +
        'the route timeout ends an attempt first, so the per-try timeout never takes effect',
    );
    return;
  }
  if (retry.maxAttempts < 2) return;
  // The time `attempts` attempts need when each runs its full per-try timeout, with the
  // shortest waits between them.
  const needed = (attempts: number): number => {
    let total = attempts * perTryMs;
    for (let retryNumber = 1; retryNumber < attempts; retryNumber++) {
      total += backoffDelay(retry.backoff, retryNumber, retry.backoff.baseMs, () => 0);
    }
    return total;
  };
  const allMs = needed(retry.maxAttempts);
  if (allMs <= route.timeoutMs) return;
  let fit = 1;
  while (fit + 1 < retry.maxAttempts && needed(fit + 1) <= route.timeoutMs) fit++;
  const waitMs = allMs - retry.maxAttempts * perTryMs;
  warn(
    given.maxAttempts ? [...path, 'retry', 'maxAttempts'] : [...path, 'retry'],
    `retries do not fit in ${timeout}: ${retry.maxAttempts} attempts${given.maxAttempts ? '' : ' (the default)'} × perTryTimeout ${formatDuration(perTryMs)}` +
      ` + at least ${formatDuration(round(waitMs))} of backoff = ${formatDuration(round(allMs))}; ` +
      `when attempts time out, only ${fit} can run in full before the route timeout ends the request`,
  );
}

/** Backoff halves can be fractions of a millisecond; messages show whole ones. */
function round(ms: number): number {
  return Math.ceil(ms);
}
