// Which headers belong to one connection (hop-by-hop) and which to the message end to end.

// RFC 9110 section 7.6.1 connection-specific fields, plus the proxy credentials meant for
// Breakwater itself (it is the proxy an HTTP_PROXY client talks to) and `expect`, which the
// listener has already answered. `Trailer` is end to end (RFC 9110 6.6.2): it announces the
// trailers that pass through with the body.
export const hopByHop: ReadonlySet<string> = new Set([
  'connection',
  'proxy-connection',
  'keep-alive',
  'te',
  'transfer-encoding',
  'upgrade',
  'proxy-authorization',
  'proxy-authenticate',
  'expect',
]);

/** Names listed in a Connection header, which are hop-by-hop for this message only. */
export function connectionTokens(value: string | string[] | undefined): Set<string> | null {
  if (value === undefined) return null;
  // The header as nearly every peer sends it names no other header: nothing to split.
  if (typeof value === 'string' && (value === 'keep-alive' || value === 'close')) return null;
  const tokens = new Set<string>();
  for (const line of Array.isArray(value) ? value : [value]) {
    for (const token of line.split(',')) {
      const name = token.trim().toLowerCase();
      if (name !== '' && name !== 'close' && name !== 'keep-alive') tokens.add(name);
    }
  }
  return tokens.size === 0 ? null : tokens;
}

/** A response's end-to-end headers: hop-by-hop ones, and any its Connection header names, left out. */
export function endToEndHeaders(headers: Readonly<Record<string, string | string[] | undefined>>): Record<string, string | string[]> {
  const dropped = connectionTokens(headers.connection);
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || hopByHop.has(name) || dropped?.has(name)) continue;
    out[name] = value;
  }
  return out;
}

/** Every value of header `name` in a flat [name, value, ...] list, in order; names match in any case. */
export function headerValues(headers: readonly string[], name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    const candidate = headers[i]!;
    if (candidate.length === name.length && candidate.toLowerCase() === name) values.push(headers[i + 1]!);
  }
  return values;
}
