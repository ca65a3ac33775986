// The practical ceiling of one Node process as an HTTP proxy: node:http in, undici's
// pool.stream out, bodies streamed both ways, hop-by-hop headers dropped, no policies at all.
// A proxy written in Node can at best approach this figure.
// Usage: node bench/peers/undici-passthrough.ts --port PORT --upstream http://HOST:PORT
import http from 'node:http';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';

const { values } = parseArgs({ options: { port: { type: 'string' }, upstream: { type: 'string' } } });
if (values.port === undefined || values.upstream === undefined) {
  throw new Error('usage: undici-passthrough.ts --port PORT --upstream URL');
}

const pool = new Pool(values.upstream, { connections: 64, keepAliveTimeout: 60_000 });

// RFC 9110 section 7.6.1, plus expect, which undici refuses to forward.
const hopByHop = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer',
  'upgrade', 'proxy-authenticate', 'proxy-authorization', 'expect',
]);

// Headers named in Connection are hop-by-hop too; most requests have none or "keep-alive".
function connectionTokens(connection: string | string[] | undefined): Set<string> | null {
  if (typeof connection !== 'string') return null;
  return new Set(connection.toLowerCase().split(',').map((token) => token.trim()));
}

function requestHeaders(req: http.IncomingMessage): string[] {
  const named = connectionTokens(req.headers.connection);
  const forwarded: string[] = [];
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    if (!hopByHop.has(name) && named?.has(name) !== true) forwarded.push(name, raw[i + 1] as string);
  }
  return forwarded;
}

function responseHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const named = connectionTokens(headers.connection);
  const forwarded: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (!hopByHop.has(name) && named?.has(name) !== true) forwarded[name] = value;
  }
  return forwarded;
}

const server = http.createServer((req, res) => {
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
  pool.stream(
    { path: req.url ?? '/', method: req.method ?? 'GET', headers: requestHeaders(req), body: hasBody ? req : null, opaque: res },
    ({ statusCode, headers, opaque }) => opaque.writeHead(statusCode, responseHeaders(headers)),
    (err) => {
      if (err === null) return;
      if (res.headersSent) res.destroy(err);
      else res.writeHead(502, { 'content-type': 'text/plain' }).end('bad gateway\n');
    },
  );
});
server.keepAliveTimeout = 65_000;
server.listen(Number(values.port), '127.0.0.1');

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => void pool.destroy().finally(() => process.exit(0)));
}
