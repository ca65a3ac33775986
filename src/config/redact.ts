// The effective config as JSON for the admin /config endpoint, with secrets taken out: header
// values that look like credentials, credentials inside endpoint and Redis URLs, and store
// passwords (which may have come from the environment through ${VAR}).

import type { Address, Config, FallbackStep, RedisTopology, RouteConfig, StoreConfig, UpstreamConfig } from './types.ts';

/** The addresses of the telemetry and admin servers, which change only at a restart. */
export interface ServerAddresses {
  readonly telemetry: Address;
  readonly admin: Address;
}

export const REDACTED = '[redacted]';

const SECRET_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key']);
const SECRET_WORDS = /token|secret|password|key/i;

/** Whether a header's value should never be shown: credentials, cookies, keys. */
export function isSecretHeader(name: string): boolean {
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

/** A Redis URL with its userinfo replaced; the database number stays, it is no secret. */
function redactRedisUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    // Valid configs only hold URLs; anything else is shown as nothing rather than risked.
    return REDACTED;
  }
  if (url.username === '' && url.password === '') return text;
  return `${url.protocol}//${REDACTED}@${url.host}${url.pathname}${url.search}`;
}

function redactTopology(topology: RedisTopology): RedisTopology {
  return topology.mode === 'server'
    ? { ...topology, url: redactRedisUrl(topology.url) }
    : { ...topology, nodes: topology.nodes.map(redactRedisUrl) };
}

function redactStore(store: StoreConfig): StoreConfig {
  if (store.type !== 'redis') return store;
  return {
    ...store,
    topology: redactTopology(store.topology),
    ...(store.password === undefined ? {} : { password: REDACTED }),
  };
}

export function redactUpstream(upstream: UpstreamConfig): UpstreamConfig {
  return { ...upstream, endpoints: upstream.endpoints.map(redactEndpoint) };
}

function redactStep(step: FallbackStep): FallbackStep {
  return step.kind === 'response' ? { ...step, headers: redactHeaders(step.headers) } : step;
}

export function redactRoute(route: RouteConfig): RouteConfig {
  return {
    ...route,
    match: route.match.headers ? { ...route.match, headers: redactHeaders(route.match.headers) } : route.match,
    ...(route.fallback ? { fallback: { ...route.fallback, chain: route.fallback.chain.map(redactStep) } } : {}),
  };
}

/**
 * A JSON-able copy of the effective config (upstreams and stores as objects keyed by name),
 * safe to show: secret-looking header values, URL userinfo and store passwords are replaced by
 * "[redacted]".
 *
 * With `running`, the telemetry and admin addresses are those the servers run on: a reload
 * cannot move them, so showing the file's would describe a server that is not there. An
 * address the config sets differently is listed under `pendingRestart`, in the same shape,
 * and takes effect at the next start; `pendingRestart` is absent when nothing is pending.
 */
export function redactConfig(config: Config, running?: ServerAddresses): Record<string, unknown> {
  const pendingRestart: Partial<Record<keyof ServerAddresses, { address: Address }>> = {};
  for (const server of ['telemetry', 'admin'] as const) {
    const inForce = running?.[server];
    const configured = config[server].address;
    if (inForce !== undefined && (inForce.host !== configured.host || inForce.port !== configured.port)) {
      pendingRestart[server] = { address: configured };
    }
  }
  const copy = {
    ...config,
    ...(running === undefined ? {} : { telemetry: { address: running.telemetry }, admin: { address: running.admin } }),
    upstreams: Object.fromEntries([...config.upstreams].map(([name, upstream]) => [name, redactUpstream(upstream)])),
    routes: config.routes.map(redactRoute),
    stores: Object.fromEntries([...config.stores].map(([name, store]) => [name, redactStore(store)])),
    ...(Object.keys(pendingRestart).length === 0 ? {} : { pendingRestart }),
  };
  // A JSON round trip gives plain, unfrozen objects the caller may serialize or extend.
  return JSON.parse(JSON.stringify(copy)) as Record<string, unknown>;
}
