// What keeps a web page from driving the admin API: the operator's browser may reach the admin
// port (on the same machine, or through `kubectl port-forward`), and any page it has open can
// send it requests. A state-changing request from a page of another origin is refused, and so
// is one whose body is not JSON (which a page can only send cross-origin after a CORS preflight
// that this server never grants).

import type { IncomingHttpHeaders } from 'node:http';
import { isIP } from 'node:net';

/** Methods that change state; GET and HEAD only read. */
const changing = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export interface Refusal {
  readonly status: 403 | 415;
  readonly message: string;
}

/** The hostname of a Host header value, brackets of an IPv6 literal removed. */
function hostnameOf(host: string): string {
  if (host.startsWith('[')) return host.slice(1, host.indexOf(']'));
  const colon = host.lastIndexOf(':');
  return colon === -1 ? host : host.slice(0, colon);
}

/**
 * True when `origin` is the admin server's own: the origin of the Host the request was sent to,
 * with that Host an IP address or `localhost`. A name a page controls could be rebound to a
 * loopback address (DNS rebinding) and would then look same-origin; an address cannot.
 */
export function isOwnOrigin(origin: string, host: string | undefined): boolean {
  if (host === undefined || origin !== `http://${host.toLowerCase()}`) return false;
  const hostname = hostnameOf(host.toLowerCase());
  return hostname === 'localhost' || isIP(hostname) !== 0;
}

/** Why a request may not change the sidecar's state, or undefined when it may. */
export function refusal(method: string | undefined, headers: IncomingHttpHeaders): Refusal | undefined {
  if (!changing.has(method ?? '')) return undefined;
  const origin = headers.origin;
  if (origin !== undefined && !isOwnOrigin(origin, headers.host)) {
    return { status: 403, message: `a request from ${origin} may not change Breakwater's state: only the admin server's own origin may` };
  }
  const hasBody = headers['transfer-encoding'] !== undefined || (headers['content-length'] !== undefined && headers['content-length'] !== '0');
  const type = (headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (hasBody && type !== 'application/json') {
    return { status: 415, message: 'a request body must be application/json' };
  }
  return undefined;
}
