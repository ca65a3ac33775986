import { describe, expect, it } from 'vitest';
import type { RouteMatch } from '../../../src/config/types.ts';
import { compileRouter, normalizeHost, pathOnly, type RouteRequest } from '../../../src/routing/match.ts';

function route(name: string, match: RouteMatch, listener = 'outbound') {
  return { name, listener, match };
}

function request(overrides: Partial<RouteRequest>): RouteRequest {
  return { method: 'GET', host: 'payments', path: '/', headers: {}, ...overrides };
}

describe('route matching', () => {
  it('matches an exact host whatever its case, port or trailing dot', () => {
    const router = compileRouter([route('payments', { host: 'payments' })]);
    expect(router.match('outbound', request({ host: 'Payments:8080' }))?.name).toBe('payments');
    expect(router.match('outbound', request({ host: 'payments.' }))?.name).toBe('payments');
    expect(router.match('outbound', request({ host: 'payments2' }))).toBeUndefined();
  });

  it('matches *.suffix at any depth but not the bare suffix', () => {
    const router = compileRouter([route('wild', { host: '*.example.com' })]);
    expect(router.match('outbound', request({ host: 'a.example.com' }))?.name).toBe('wild');
    expect(router.match('outbound', request({ host: 'a.b.example.com:80' }))?.name).toBe('wild');
    expect(router.match('outbound', request({ host: 'example.com' }))).toBeUndefined();
    expect(router.match('outbound', request({ host: 'badexample.com' }))).toBeUndefined();
  });

  it('matches pathPrefix on whole segments only', () => {
    const router = compileRouter([route('charge', { pathPrefix: '/charge' })]);
    expect(router.match('outbound', request({ path: '/charge' }))?.name).toBe('charge');
    expect(router.match('outbound', request({ path: '/charge/42' }))?.name).toBe('charge');
    expect(router.match('outbound', request({ path: '/charge?x=1' }))?.name).toBe('charge');
    expect(router.match('outbound', request({ path: '/charges' }))).toBeUndefined();
    expect(router.match('outbound', request({ path: '/' }))).toBeUndefined();
  });

  it('treats a prefix with a trailing slash like the same prefix without it', () => {
    const router = compileRouter([route('api', { pathPrefix: '/api/' })]);
    expect(router.match('outbound', request({ path: '/api/v1' }))?.name).toBe('api');
    expect(router.match('outbound', request({ path: '/apis' }))).toBeUndefined();
  });

  it('matches an exact path without its query', () => {
    const router = compileRouter([route('health', { path: '/health' })]);
    expect(router.match('outbound', request({ path: '/health?verbose=1' }))?.name).toBe('health');
    expect(router.match('outbound', request({ path: '/health/x' }))).toBeUndefined();
  });

  it('matches methods and exact header values', () => {
    const router = compileRouter([route('canary', { methods: ['POST'], headers: { 'x-canary': 'true' } })]);
    expect(router.match('outbound', request({ method: 'POST', headers: { 'x-canary': 'true' } }))?.name).toBe('canary');
    expect(router.match('outbound', request({ method: 'GET', headers: { 'x-canary': 'true' } }))).toBeUndefined();
    expect(router.match('outbound', request({ method: 'POST', headers: { 'x-canary': 'false' } }))).toBeUndefined();
    expect(router.match('outbound', request({ method: 'POST' }))).toBeUndefined();
  });

  it('takes the first match in file order, per listener', () => {
    const router = compileRouter([
      route('specific', { pathPrefix: '/charge' }),
      route('catch-all', { pathPrefix: '/' }),
      route('inbound-all', { pathPrefix: '/' }, 'inbound'),
    ]);
    expect(router.match('outbound', request({ path: '/charge/1' }))?.name).toBe('specific');
    expect(router.match('outbound', request({ path: '/other' }))?.name).toBe('catch-all');
    expect(router.match('inbound', request({ path: '/charge/1' }))?.name).toBe('inbound-all');
    expect(router.match('admin', request({ path: '/' }))).toBeUndefined();
  });

  it('normalizes hosts and paths', () => {
    expect(normalizeHost('[::1]:8080')).toBe('[::1]');
    expect(normalizeHost('EXAMPLE.com')).toBe('example.com');
    expect(pathOnly('/a/b?c#d')).toBe('/a/b');
    expect(pathOnly('/a#d?c')).toBe('/a');
    expect(pathOnly('/plain')).toBe('/plain');
  });
});
