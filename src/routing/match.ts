import type { RouteMatch } from '../config/types.ts';

// Pure route matching: (listener, method, host, path, headers) → the first route that matches,
// in file order. Compiled once per config version.

export interface RouteRequest {
  readonly method: string;
  /** As received: may carry a port and any case. */
  readonly host: string;
  /** The request target's path, query included or not. */
  readonly path: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

/**
 * A request target in absolute form (`http://payments/charge`), as clients that use Breakwater
 * as their HTTP_PROXY send it: the host, then the path with its query. The listeners and
 * `breakwater explain` read targets with this one pattern.
 */
export const absoluteForm = /^http:\/\/([^/?#]*)([^#]*)/i;

type Predicate = (request: RouteRequest, host: string, path: string) => boolean;

export interface Router<T> {
  match(listener: string, request: RouteRequest): T | undefined;
}

/** Lower-cases a Host value and removes its port and any trailing dot. */
export function normalizeHost(host: string): string {
  let end = host.length;
  if (host.startsWith('[')) {
    const close = host.indexOf(']');
    end = close === -1 ? host.length : close + 1;
  } else {
    const colon = host.lastIndexOf(':');
    if (colon !== -1) end = colon;
  }
  let name = host.slice(0, end).toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  return name;
}

/** The path without query or fragment. */
export function pathOnly(target: string): string {
  const query = target.indexOf('?');
  const fragment = target.indexOf('#');
  const end = query === -1 ? fragment : fragment === -1 ? query : Math.min(query, fragment);
  return end === -1 ? target : target.slice(0, end);
}

function hostPredicate(pattern: string): Predicate {
  if (pattern.startsWith('*.')) {
    // `*.example.com` matches any depth below example.com, never example.com itself.
    const suffix = pattern.slice(1);
    return (_r, host) => host.length > suffix.length && host.endsWith(suffix);
  }
  return (_r, host) => host === pattern;
}

function pathPrefixPredicate(prefix: string): Predicate {
  if (prefix === '/') return () => true;
  // Whole segments: `/charge` matches `/charge` and `/charge/x`, never `/charges`.
  const base = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  return (_r, _h, path) =>
    path.startsWith(base) && (path.length === base.length || path.charCodeAt(base.length) === 47 /* '/' */);
}

function headersPredicate(headers: Readonly<Record<string, string>>): Predicate {
  const wanted = Object.entries(headers);
  return (request) => wanted.every(([name, value]) => request.headers[name] === value);
}

export function compileMatch(match: RouteMatch): (request: RouteRequest, host: string, path: string) => boolean {
  const predicates: Predicate[] = [];
  if (match.host !== undefined) predicates.push(hostPredicate(match.host));
  if (match.path !== undefined) {
    const exact = match.path;
    predicates.push((_r, _h, path) => path === exact);
  }
  if (match.pathPrefix !== undefined) predicates.push(pathPrefixPredicate(match.pathPrefix));
  if (match.methods !== undefined) {
    const methods = new Set(match.methods);
    predicates.push((request) => methods.has(request.method));
  }
  if (match.headers !== undefined && Object.keys(match.headers).length > 0) {
    predicates.push(headersPredicate(match.headers));
  }
  return (request, host, path) => predicates.every((predicate) => predicate(request, host, path));
}

export function compileRouter<T extends { readonly listener: string; readonly match: RouteMatch }>(
  routes: readonly T[],
): Router<T> {
  const byListener = new Map<string, { route: T; matches: Predicate }[]>();
  for (const route of routes) {
    let list = byListener.get(route.listener);
    if (list === undefined) byListener.set(route.listener, (list = []));
    list.push({ route, matches: compileMatch(route.match) });
  }
  return {
    match(listener, request) {
      const candidates = byListener.get(listener);
      if (candidates === undefined) return undefined;
      const host = normalizeHost(request.host);
      const path = pathOnly(request.path);
      for (const candidate of candidates) {
        if (candidate.matches(request, host, path)) return candidate.route;
      }
      return undefined;
    },
  };
}
