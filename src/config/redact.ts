// The effective config as JSON for the admin /config endpoint, with secrets taken out: header
// values that look like credentials, and credentials inside endpoint URLs.

import type { Config, FallbackStep, RouteConfig, UpstreamConfig } from './types.ts';

const REDACTED = '[redacted]';

const SECRET_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key']);
const SECRET_WORDS = /token|secret|password|key/i;

/** Whether a header's value should never be shown: credentials, cookies, keys. */
function isSecretHeader(name: string): boolean {
  return SECRET_HEADERS.has(name.toLowerCase()) || SECRET_WORDS.test(name);
}

function redactHeaders(headers: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, isSecretHeader(name) ? REDACTED : value]));
}

function redactEndpoint(endpoint: string): string {
  const url = new URL(endpoint);
  if (url.username === '' && url.password === '') return endpoint;
  return `${url.protocol}//${REDACTED}@${url.host}`;
}

function redactUpstream(upstream: UpstreamConfig): UpstreamConfig {
  return { ...upstream, endpoints: upstream.endpoints.map(redactEndpoint) };
}

function redactStep(step: FallbackStep): FallbackStep {
  return step.kind === 'response' ? { ...step, headers: redactHeaders(step.headers) } : step;
}

function redactRoute(route: RouteConfig): RouteConfig {
  return {
    ...route,
    match: route.match.headers ? { ...route.match, headers: redactHeaders(route.match.headers) } : route.match,
    ...(route.fallback ? { fallback: { ...route.fallback, chain: route.fallback.chain.map(redactStep) } } : {}),
  };
}

/**
 * A JSON-able copy of the effective config (upstreams as an object keyed by name), safe to
 * show: secret-looking header values and endpoint userinfo are replaced by "[redacted]".
 */
export function redactConfig(config: Config): Record<string, unknown> {
  const copy = {
    ...config,
    upstreams: Object.fromEntries([...config.upstreams].map(([name, upstream]) => [name, redactUpstream(upstream)])),
    routes: config.routes.map(redactRoute),
  };
  // A JSON round trip gives plain, unfrozen objects the caller may serialize or extend.
  return JSON.parse(JSON.stringify(copy)) as Record<string, unknown>;
}
