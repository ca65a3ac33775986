// node http-proxy, as many Node services embed it: http.createServer + proxy.web with a
// keep-alive agent to the upstream.
// Usage: node bench/peers/http-proxy.ts --port PORT --upstream http://HOST:PORT
import http from 'node:http';
import { parseArgs } from 'node:util';
import httpProxy from 'http-proxy';

const { values } = parseArgs({ options: { port: { type: 'string' }, upstream: { type: 'string' } } });
if (values.port === undefined || values.upstream === undefined) {
  throw new Error('usage: http-proxy.ts --port PORT --upstream URL');
}

const agent = new http.Agent({ keepAlive: true, maxFreeSockets: 64 });
const proxy = httpProxy.createProxyServer({ target: values.upstream, agent, xfwd: false });
proxy.on('error', (_err, _req, res) => {
  if (!(res instanceof http.ServerResponse)) {
    res.destroy();
    return;
  }
  if (res.headersSent) res.destroy();
  else res.writeHead(502, { 'content-type': 'text/plain' }).end('bad gateway\n');
});

const server = http.createServer((req, res) => proxy.web(req, res));
server.keepAliveTimeout = 65_000;
server.listen(Number(values.port), '127.0.0.1');

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => process.exit(0));
}
