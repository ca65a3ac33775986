// dns:// endpoints: a DNS name standing for every address it resolves to, as Envoy's STRICT_DNS
// clusters do. Pointed at a Kubernetes headless Service, whose name resolves to the address of
// every ready pod, it balances across the pods themselves rather than through a ClusterIP.

import { promises as dns } from 'node:dns';
import type { DnsConfig } from '../config/types.ts';

/** A dns:// endpoint as the config writes it: `dns://NAME:PORT`. */
export interface DnsSource {
  /** The endpoint as written in the config (normalised), which names it in logs and /endpoints. */
  readonly source: string;
  readonly name: string;
  readonly port: number;
}

/** The dns:// endpoint `text` stands for; undefined for an http:// origin. */
export function dnsSource(text: string): DnsSource | undefined {
  const match = /^dns:\/\/([^:/]+):([0-9]+)$/.exec(text);
  if (match === null) return undefined;
  return { source: text, name: match[1]!, port: Number(match[2]) };
}

/** The origin an address of a dns:// endpoint is reached at. */
export function originOf(address: string, port: number): string {
  return address.includes(':') ? `http://[${address}]:${port}` : `http://${address}:${port}`;
}

/** Every address `name` resolves to, at least one; rejects when the lookup fails or finds none. */
export type Resolve = (name: string) => Promise<readonly string[]>;

// A name with no record of one family (no AAAA for an IPv4-only Service) is no failure.
const noRecords = new Set(['ENODATA', 'ENOTFOUND', 'NOTFOUND', 'NODATA']);

/**
 * The resolver `config` asks for: with `servers`, A and AAAA queries sent to those servers;
 * without, the system's resolver (getaddrinfo: /etc/hosts, /etc/resolv.conf and its search
 * domains), as every other program in the container resolves names.
 */
export function createResolve(config: DnsConfig): Resolve {
  if (config.servers.length === 0) return systemResolve;
  // Short timeouts: a refresh that fails keeps the last good set and tries again at the next.
  const resolver = new dns.Resolver({ timeout: 1_000, tries: 2 });
  resolver.setServers([...config.servers]);
  return async (name) => {
    const [v4, v6] = await Promise.allSettled([resolver.resolve4(name), resolver.resolve6(name)]);
    const addresses: string[] = [];
    for (const answer of [v4, v6]) {
      if (answer.status === 'fulfilled') addresses.push(...answer.value);
      else if (!noRecords.has((answer.reason as { code?: string }).code ?? '')) throw answer.reason;
    }
    return nonEmpty(name, addresses);
  };
}

const systemResolve: Resolve = async (name) => {
  const answers = await dns.lookup(name, { all: true, order: 'verbatim' });
  return nonEmpty(name, answers.map((answer) => answer.address));
};

function nonEmpty(name: string, addresses: readonly string[]): readonly string[] {
  const unique = [...new Set(addresses)];
  if (unique.length === 0) throw Object.assign(new Error(`${name} has no A or AAAA record`), { code: 'ENODATA' });
  return unique;
}

/** What an operator reads about a failed lookup. */
export function lookupFailure(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  return typeof code === 'string' && !message.includes(code) ? `${code}: ${message}` : message;
}
