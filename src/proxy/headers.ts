import type { ArrivedRequest } from '../exchange/request.ts';
import { connectionTokens, endToEndHeaders, hopByHop } from '../exchange/headers.ts';

export interface UpstreamHeaderOptions {
  /** The authority to send as Host (the absolute-form URI's, when the request used one). */
  readonly host: string;
  readonly requestId: string;
  /** Lower-cased header names consumed by Breakwater and not forwarded. */
  readonly consumed?: ReadonlySet<string>;
}

/**
 * The header list to send upstream: the client's headers in order without hop-by-hop ones,
 * Host set to the target authority, x-forwarded-for with the peer appended,
 * x-forwarded-proto set, and x-request-id kept or added.
 */
export function upstreamHeaders(req: ArrivedRequest, options: UpstreamHeaderOptions): string[] {
  const raw = req.rawHeaders;
  const dropped = connectionTokens(req.headers.connection);
  const consumed = options.consumed;
  const out: string[] = ['host', options.host];
  let forwardedFor: string | undefined;
  let hasRequestId = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (lower === 'host' || lower === 'x-forwarded-proto') continue;
    if (hopByHop.has(lower)) {
      // gRPC and other trailer-aware clients need `te: trailers` end to end.
      if (lower === 'te' && raw[i + 1]!.trim().toLowerCase() === 'trailers') out.push(name, 'trailers');
      continue;
    }
    if (dropped?.has(lower) || consumed?.has(lower)) continue;
    if (lower === 'x-forwarded-for') {
      forwardedFor = forwardedFor === undefined ? raw[i + 1]! : `${forwardedFor}, ${raw[i + 1]!}`;
      continue;
    }
    if (lower === 'x-request-id') hasRequestId = true;
    out.push(name, raw[i + 1]!);
  }
  return withForwarding(out, forwardedFor, req.socket.remoteAddress, hasRequestId ? undefined : options.requestId);
}

/**
 * Ends an upstream header list with what Breakwater adds: the peer appended to the caller's
 * x-forwarded-for, x-forwarded-proto, and `requestId` when the caller sent no x-request-id.
 */
function withForwarding(out: string[], forwardedFor: string | undefined, peer: string | undefined, requestId: string | undefined): string[] {
  if (peer !== undefined) forwardedFor = forwardedFor === undefined ? peer : `${forwardedFor}, ${peer}`;
  if (forwardedFor !== undefined) out.push('x-forwarded-for', forwardedFor);
  out.push('x-forwarded-proto', 'http');
  if (requestId !== undefined) out.push('x-request-id', requestId);
  return out;
}

/**
 * The header list to send upstream for a request that came by HTTP/2: as upstreamHeaders
 * does for HTTP/1.1, with the pseudo-headers left out (:authority becomes Host). HTTP/2 has no
 * Connection header and no hop-by-hop fields but `te: trailers` (RFC 9113 8.2.2).
 */
export function upstreamHeadersH2(req: ArrivedRequest, options: UpstreamHeaderOptions): string[] {
  const raw = req.rawHeaders;
  const consumed = options.consumed;
  const out: string[] = ['host', options.host];
  let forwardedFor: string | undefined;
  let hasRequestId = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    // Pseudo-headers (:method, :path, :authority, :scheme) are the request line.
    if (name.charCodeAt(0) === 58 /* ':' */) continue;
    if (name === 'host' || name === 'x-forwarded-proto') continue;
    if (hopByHop.has(name)) {
      if (name === 'te' && raw[i + 1]!.trim().toLowerCase() === 'trailers') out.push(name, 'trailers');
      continue;
    }
    if (consumed?.has(name)) continue;
    if (name === 'x-forwarded-for') {
      forwardedFor = forwardedFor === undefined ? raw[i + 1]! : `${forwardedFor}, ${raw[i + 1]!}`;
      continue;
    }
    if (name === 'x-request-id') hasRequestId = true;
    out.push(name, raw[i + 1]!);
  }
  return withForwarding(out, forwardedFor, req.socket.remoteAddress, hasRequestId ? undefined : options.requestId);
}

/**
 * The upstream's response headers for the client: hop-by-hop ones removed (Node's server
 * frames the body itself), x-breakwater-attempts added, and x-request-id set to the request's,
 * so a client can always quote the id the access log knows the request by.
 */
export function clientResponseHeaders(
  headers: Record<string, string | string[] | undefined>,
  attempts: number,
  requestId: string,
): Record<string, string | string[]> {
  const out = endToEndHeaders(headers);
  out['x-breakwater-attempts'] = String(attempts);
  out['x-request-id'] = requestId;
  return out;
}

// W3C Trace Context: version, trace id, parent id and flags; a later version may add fields.
const traceparentFormat = /^([0-9a-f]{2})-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}(-|$)/;
const invalidTraceId = '0'.repeat(32);

/** The trace id of a caller's `traceparent`, or undefined when it sent none or one that is invalid. */
export function callerTraceId(traceparent: string | string[] | undefined): string | undefined {
  if (typeof traceparent !== 'string') return undefined;
  const parts = traceparentFormat.exec(traceparent.trim());
  if (parts === null || parts[1] === 'ff' || parts[2] === invalidTraceId) return undefined;
  // Version 00 has exactly these four fields.
  if (parts[1] === '00' && parts[3] === '-') return undefined;
  return parts[2];
}
